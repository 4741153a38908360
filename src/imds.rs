//! The AWS instance metadata service: plain HTTP (`http.rs`, no proxy, no TLS) on the polling
//! thread, one connection kept open between polls.
//!
//! IMDSv2 first: a session token from `PUT /latest/api/token`, reused until shortly before it
//! expires, dropped and fetched again on a 401. When the token endpoint says no (403/404/405…),
//! IMDSv1 (no token) is used. When the PUT times out, the PUT's response probably died at the
//! hop limit of 1 inside a pod network namespace: we say so once, with the fix, and fall back.
//!
//! `spot/instance-action` answers 404 until a notice exists. In seed mode (`NOTICE_URL`) the
//! configured URL is polled instead and HTTP 200 is the notice, as the shell script did.

use std::time::{Duration, Instant, SystemTime};

use crate::http;

use crate::notice::Notice;
use crate::{debug, info, warn};

pub const INSTANCE_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// Fetch a new token this long before the old one expires.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// After the token endpoint failed, try it again at most this often (a hanging PUT costs a
/// whole timeout, so it must not run on every poll).
const TOKEN_RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Metadata documents are tiny; anything larger is garbage.
const MAX_BODY: usize = 64 * 1024;

/// A metadata request that failed (not a 404: that is "absent").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No HTTP answer: refused, reset, timed out.
    Transport {
        path: String,
        detail: String,
        timed_out: bool,
    },
    /// An HTTP status other than 200 and 404.
    Status { path: String, status: u16 },
    /// The body is too large or not what the path promises.
    Body { path: String, detail: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Transport { path, detail, .. } => write!(f, "metadata request {path}: {detail}"),
            Error::Status { path, status } => write!(
                f,
                "metadata request {path}: expected 200 or 404, got HTTP {status}"
            ),
            Error::Body { path, detail } => write!(f, "metadata response {path}: {detail}"),
        }
    }
}

/// Instance facts for messages; "unknown" where the metadata service did not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
}

enum TokenState {
    /// Not tried yet, or to be tried again.
    Unknown,
    Valid {
        token: String,
        refresh_at: Instant,
    },
    /// The token endpoint refused or failed: IMDSv1 until `retry_at`.
    V1Until {
        retry_at: Instant,
    },
}

/// One answer: the status and, for 200, the body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

pub struct Imds {
    base: String,
    /// Connections to the metadata service.
    metadata: http::Pool,
    /// Seed mode: poll this URL instead of `spot/instance-action`.
    notice_url: Option<String>,
    /// Connections for a `NOTICE_URL` outside the metadata service.
    notice_pool: Option<http::Pool>,
    timeout: Duration,
    token: TokenState,
    hop_limit_hint_logged: bool,
}

impl Imds {
    /// Fails only on a URL that names no usable host (a configuration error).
    pub fn new(base: &str, notice_url: Option<String>, timeout: Duration) -> Result<Imds, String> {
        let base = base.trim_end_matches('/').to_string();
        // One idle connection: polls are sequential.
        let metadata = http::Pool::new(http::Endpoint::parse(&base, None)?, 1);
        let notice_pool = match &notice_url {
            Some(u) if !is_under(u, &base) => {
                Some(http::Pool::new(http::Endpoint::parse(u, None)?, 1))
            }
            _ => None,
        };
        Ok(Imds {
            base,
            metadata,
            notice_url,
            notice_pool,
            timeout: timeout.max(Duration::from_secs(1)),
            token: TokenState::Unknown,
            hop_limit_hint_logged: false,
        })
    }

    /// One poll: `Ok(None)` while there is no notice.
    pub fn poll(&mut self, now: SystemTime) -> Result<Option<Notice>, Error> {
        let url = self
            .notice_url
            .clone()
            .unwrap_or_else(|| format!("{}{INSTANCE_ACTION_PATH}", self.base));
        let answer = self.get(&url);
        match &answer {
            Ok(a) => debug!("polled", url = url, status = a.status),
            Err(e) => debug!("polled", url = url, error = e),
        }
        let answer = answer?;
        match answer.status {
            404 => Ok(None),
            200 if self.notice_url.is_some() => {
                Ok(Some(Notice::from_notice_url(&answer.body, now)))
            }
            200 => Notice::from_instance_action(&answer.body, now)
                .map(Some)
                .map_err(|detail| Error::Body {
                    path: INSTANCE_ACTION_PATH.to_string(),
                    detail,
                }),
            status => Err(Error::Status {
                path: path_of(&url),
                status,
            }),
        }
    }

    /// Instance id, type and zone, read once at start-up for messages. Never fails.
    pub fn identity(&mut self) -> Identity {
        let mut read = |path: &str| -> String {
            let url = format!("{}/latest/meta-data/{path}", self.base);
            match self.get(&url) {
                Ok(Answer { status: 200, body }) => {
                    let v = String::from_utf8_lossy(&body).trim().to_string();
                    let clean =
                        !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
                    if clean {
                        v
                    } else {
                        "unknown".to_string()
                    }
                }
                Ok(a) => {
                    warn!(
                        "could not read instance metadata",
                        path = path,
                        status = a.status
                    );
                    "unknown".to_string()
                }
                Err(e) => {
                    warn!("could not read instance metadata", path = path, error = e);
                    "unknown".to_string()
                }
            }
        };
        Identity {
            instance_id: read("instance-id"),
            instance_type: read("instance-type"),
            zone: read("placement/availability-zone"),
        }
    }

    /// GET with the session token when we have one; one retry with a fresh token on 401.
    fn get(&mut self, url: &str) -> Result<Answer, Error> {
        let on_imds = is_under(url, &self.base);
        let token = if on_imds { self.token() } else { None };
        let answer = self.send_get(url, token.as_deref())?;
        if answer.status != 401 || !on_imds {
            return Ok(answer);
        }
        // 401: the token expired or was revoked, or IMDSv2 is required and we had none.
        if token.is_none() && matches!(self.token, TokenState::V1Until { .. }) {
            info!("metadata service requires IMDSv2; asking for a token again");
        }
        self.token = TokenState::Unknown;
        match self.token() {
            Some(fresh) => self.send_get(url, Some(&fresh)),
            None => Ok(answer),
        }
    }

    fn send_get(&self, url: &str, token: Option<&str>) -> Result<Answer, Error> {
        match token {
            Some(t) => self.send("GET", url, &[("X-aws-ec2-metadata-token", t)]),
            None => self.send("GET", url, &[]),
        }
    }

    /// One exchange, on the calling thread, bounded by the timeout. `url` is the metadata base
    /// plus a path, or the notice URL.
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Answer, Error> {
        let (pool, path) = match (is_under(url, &self.base), &self.notice_pool) {
            (false, Some(pool)) => (pool, ""),
            _ => (&self.metadata, &url[self.base.len().min(url.len())..]),
        };
        let req = http::Request {
            method,
            path,
            headers,
            body: b"",
        };
        match pool.exchange(&req, self.timeout, MAX_BODY) {
            Ok(r) => Ok(Answer {
                status: r.status,
                body: r.body,
            }),
            Err(e) if matches!(e.kind, http::ErrorKind::BodyTooLarge(_)) => Err(Error::Body {
                path: path_of(url),
                detail: format!("body larger than {MAX_BODY} bytes"),
            }),
            Err(e) => Err(Error::Transport {
                path: path_of(url),
                detail: e.to_string(),
                timed_out: e.is_timeout(),
            }),
        }
    }

    /// The current IMDSv2 token, fetching one when needed; `None` means use IMDSv1.
    fn token(&mut self) -> Option<String> {
        let now = Instant::now();
        match &self.token {
            TokenState::Valid { token, refresh_at } if now < *refresh_at => {
                return Some(token.clone())
            }
            TokenState::V1Until { retry_at } if now < *retry_at => return None,
            _ => {}
        }
        let url = format!("{}{TOKEN_PATH}", self.base);
        let ttl = TOKEN_TTL.as_secs().to_string();
        let fallback = TokenState::V1Until {
            retry_at: now + TOKEN_RETRY_INTERVAL,
        };
        match self.send(
            "PUT",
            &url,
            &[("X-aws-ec2-metadata-token-ttl-seconds", &ttl)],
        ) {
            Ok(Answer { status: 200, body }) => {
                let token = String::from_utf8_lossy(&body).trim().to_string();
                if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    warn!("IMDSv2 token endpoint returned an unusable token; using IMDSv1");
                    self.token = fallback;
                    return None;
                }
                debug!("obtained IMDSv2 token", ttl_s = TOKEN_TTL.as_secs());
                self.token = TokenState::Valid {
                    token: token.clone(),
                    refresh_at: now + TOKEN_TTL - TOKEN_REFRESH_MARGIN,
                };
                Some(token)
            }
            Ok(Answer { status, .. }) => {
                if !matches!(self.token, TokenState::V1Until { .. }) {
                    info!(
                        "IMDSv2 token endpoint refused; using IMDSv1",
                        status = status
                    );
                }
                self.token = fallback;
                None
            }
            Err(Error::Transport {
                timed_out: true, ..
            }) => {
                if !self.hop_limit_hint_logged {
                    warn!(
                        "IMDSv2 token request timed out: the instance's metadata hop limit is probably 1, \
                         which pod networking cannot reach; run with hostNetwork: true or set the \
                         instance's HttpPutResponseHopLimit to 2. Using IMDSv1 meanwhile",
                        timeout_s = self.timeout.as_secs()
                    );
                    self.hop_limit_hint_logged = true;
                }
                self.token = fallback;
                None
            }
            Err(e) => {
                debug!("IMDSv2 token request failed; using IMDSv1", error = e);
                self.token = fallback;
                None
            }
        }
    }
}

/// True when `url` is `base` or below it (`base/…`).
fn is_under(url: &str, base: &str) -> bool {
    url.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The path of a URL, for messages (metadata URLs carry no secrets, but keep them short).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_string(), |i| rest[i..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_for_messages() {
        assert_eq!(
            path_of("http://169.254.169.254/latest/meta-data/spot/instance-action"),
            "/latest/meta-data/spot/instance-action"
        );
        assert_eq!(path_of("http://127.0.0.1:9"), "/");
    }

    #[test]
    fn errors_read_well() {
        let e = Error::Status {
            path: INSTANCE_ACTION_PATH.to_string(),
            status: 500,
        };
        assert_eq!(e.to_string(), "metadata request /latest/meta-data/spot/instance-action: expected 200 or 404, got HTTP 500");
    }
}
