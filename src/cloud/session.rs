//! A metadata service with IMDSv2-style session tokens: AWS (IMDSv2) and Alibaba (security
//! hardening mode) work alike, with their own header names ([`Flavor`]).
//!
//! A token comes from `PUT /latest/api/token` with a TTL header; it is shared by the cloud's
//! watchers, reused until shortly before it expires, and dropped and fetched again when the
//! service refuses it (AWS 401; Alibaba 401 for a bad token, 403 for a tokenless GET in
//! hardened-only mode). When the token endpoint says no (403/404/405…), requests go without a
//! token (IMDSv1, Alibaba's normal mode), and the endpoint is asked again after a minute. When
//! the PUT times out, its response probably died at a hop limit of 1 inside a pod network
//! namespace: we say so once, with the fix.
//!
//! Every answer's `Date` header is compared with this machine's clock ([`Session::skew`]), so
//! the times a cloud gives can be moved into our clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::metadata::{self, Answer, Method, Skew};
use crate::{debug, info, warn};

const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// Fetch a new token this long before the old one expires.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// After the token endpoint failed, try it again at most this often (a hanging PUT costs a
/// whole timeout, so it must not run on every poll).
const TOKEN_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// One cloud's spelling of the token protocol, and its words in logs.
pub struct Flavor {
    pub ttl_header: &'static str,
    pub token_header: &'static str,
    /// Statuses that mean "this token (or its absence) is refused": fetch one again.
    pub refused: &'static [u16],
    pub msg_refused: &'static str,
    pub msg_required: &'static str,
    pub msg_unusable: &'static str,
    pub msg_timeout: &'static str,
}

pub const AWS: Flavor = Flavor {
    ttl_header: "X-aws-ec2-metadata-token-ttl-seconds",
    token_header: "X-aws-ec2-metadata-token",
    refused: &[401],
    msg_refused: "IMDSv2 token endpoint refused; using IMDSv1",
    msg_required: "metadata service requires IMDSv2; asking for a token again",
    msg_unusable: "IMDSv2 token endpoint returned an unusable token; using IMDSv1",
    msg_timeout:
        "IMDSv2 token request timed out: the instance's metadata hop limit is probably 1, \
                  which pod networking cannot reach; run with hostNetwork: true or set the \
                  instance's HttpPutResponseHopLimit to 2. Using IMDSv1 meanwhile",
};

pub const ALIBABA: Flavor = Flavor {
    ttl_header: "X-aliyun-ecs-metadata-token-ttl-seconds",
    token_header: "X-aliyun-ecs-metadata-token",
    refused: &[401, 403],
    msg_refused: "metadata token endpoint refused; using normal mode (no token)",
    msg_required: "metadata service requires security hardening mode; asking for a token again",
    msg_unusable:
        "metadata token endpoint returned an unusable token; using normal mode (no token)",
    msg_timeout: "metadata token request timed out; run with hostNetwork: true. Using normal mode \
                  (no token) meanwhile",
};

enum TokenState {
    /// Not tried yet, or to be tried again.
    Unknown,
    Valid {
        token: String,
        refresh_at: Instant,
    },
    /// The token endpoint refused or failed: no token until `retry_at`.
    NoneUntil {
        retry_at: Instant,
    },
}

/// The metadata service client a cloud's watchers share (one token for all of them).
pub struct Session {
    pub base: String,
    timeout: Duration,
    flavor: &'static Flavor,
    token: Mutex<TokenState>,
    timeout_hint_logged: AtomicBool,
    /// The last clock skew we logged (seconds), to log changes only.
    skew_logged: Mutex<Option<i64>>,
}

/// A metadata request that failed (a 404 is not a failure: it means "absent").
pub fn fail(path: &str, detail: impl std::fmt::Display) -> String {
    format!("metadata request {path}: {detail}")
}

/// The path of a URL, for messages.
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/')
        .map_or("/".to_string(), |i| rest[i..].to_string())
}

impl Session {
    pub fn new(base: &str, timeout: Duration, flavor: &'static Flavor) -> Session {
        Session {
            base: base.trim_end_matches('/').to_string(),
            timeout,
            flavor,
            token: Mutex::new(TokenState::Unknown),
            timeout_hint_logged: AtomicBool::new(false),
            skew_logged: Mutex::new(None),
        }
    }

    /// GET `path` (below the base URL) with the session token when we have one; one retry with
    /// a fresh token when the service refuses the one we sent (or its absence).
    pub fn get(&self, path: &str) -> Result<Answer, String> {
        self.get_url(&format!("{}{path}", self.base), true)
    }

    /// GET any URL; the token is sent only to the metadata service itself.
    pub fn get_url(&self, url: &str, on_service: bool) -> Result<Answer, String> {
        self.get_labelled(url, on_service, "polled")
    }

    /// `what` names the request in the debug log (`VERBOSE=1`): "polled" for a signal's poll,
    /// whose status the seed script printed too; "metadata read" for identity reads.
    fn get_labelled(&self, url: &str, on_service: bool, what: &str) -> Result<Answer, String> {
        let token = if on_service { self.token() } else { None };
        let answer = self.send_get(url, token.as_deref(), what)?;
        if !on_service || !self.flavor.refused.contains(&answer.status) {
            return Ok(answer);
        }
        // The token expired or was revoked, or a token is required and we had none.
        {
            let mut state = self.lock();
            if token.is_none() && matches!(*state, TokenState::NoneUntil { .. }) {
                info!(self.flavor.msg_required);
            }
            *state = TokenState::Unknown;
        }
        match self.token() {
            Some(fresh) => self.send_get(url, Some(&fresh), what),
            None => Ok(answer),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenState> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_get(&self, url: &str, token: Option<&str>, what: &str) -> Result<Answer, String> {
        let headers: &[(&str, &str)] = match &token {
            Some(t) => &[(self.flavor.token_header, t)],
            None => &[],
        };
        let answer = metadata::send(Method::Get, url, headers, b"", self.timeout).map_err(|e| {
            debug!(what, url = url, error = e);
            fail(&path_of(url), e)
        })?;
        debug!(what, url = url, status = answer.status);
        Ok(answer)
    }

    /// The current token, fetching one when needed; `None` means go without.
    fn token(&self) -> Option<String> {
        let mut state = self.lock();
        let now = Instant::now();
        match &*state {
            TokenState::Valid { token, refresh_at } if now < *refresh_at => {
                return Some(token.clone())
            }
            TokenState::NoneUntil { retry_at } if now < *retry_at => return None,
            _ => {}
        }
        let was_none = matches!(*state, TokenState::NoneUntil { .. });
        let fallback = TokenState::NoneUntil {
            retry_at: now + TOKEN_RETRY_INTERVAL,
        };
        let ttl = TOKEN_TTL.as_secs().to_string();
        let url = format!("{}{TOKEN_PATH}", self.base);
        let result = metadata::send(
            Method::Put,
            &url,
            &[(self.flavor.ttl_header, &ttl)],
            b"",
            self.timeout,
        );
        match result {
            Ok(a) if a.status == 200 => {
                let token = a.text();
                if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    warn!(self.flavor.msg_unusable);
                    *state = fallback;
                    return None;
                }
                debug!("obtained metadata token", ttl_s = TOKEN_TTL.as_secs());
                *state = TokenState::Valid {
                    token: token.clone(),
                    refresh_at: now + TOKEN_TTL - TOKEN_REFRESH_MARGIN,
                };
                Some(token)
            }
            Ok(a) => {
                if !was_none {
                    info!(self.flavor.msg_refused, status = a.status);
                }
                *state = fallback;
                None
            }
            Err(e) if e.is_timeout() => {
                if !self.timeout_hint_logged.swap(true, Ordering::Relaxed) {
                    warn!(self.flavor.msg_timeout, timeout_s = self.timeout.as_secs());
                }
                *state = fallback;
                None
            }
            Err(e) => {
                debug!("metadata token request failed; going without", error = e);
                *state = fallback;
                None
            }
        }
    }

    /// The clock difference an answer shows, logged when it first appears or changes.
    pub fn skew(&self, answer: &Answer) -> Option<Skew> {
        let skew = metadata::clock_skew(answer, SystemTime::now());
        let secs = skew.map(|s| s.seconds().round() as i64);
        let mut logged = self.skew_logged.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match (*logged, secs) {
            (None, None) => false,
            (Some(a), Some(b)) => (a - b).abs() > 5,
            _ => true,
        };
        if changed {
            match secs {
                Some(s) => warn!(
                    "this node's clock differs from the metadata service's; notice times are corrected",
                    metadata_clock_ahead_s = s
                ),
                None => info!("this node's clock agrees with the metadata service's again"),
            }
            *logged = secs;
        }
        skew
    }

    /// One value below `/latest/meta-data/`; "unknown" (with a warning) when it cannot be read.
    pub fn identity_value(&self, path: &str) -> String {
        let url = format!("{}/latest/meta-data/{path}", self.base);
        match self.get_labelled(&url, true, "metadata read") {
            Ok(a) if a.status == 200 => super::clean_value(&a.text()),
            Ok(a) => {
                warn!(
                    "could not read instance metadata",
                    path = path,
                    status = a.status
                );
                super::UNKNOWN.to_string()
            }
            Err(e) => {
                warn!("could not read instance metadata", path = path, error = e);
                super::UNKNOWN.to_string()
            }
        }
    }
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
}
