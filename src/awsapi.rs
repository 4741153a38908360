//! The AWS APIs the handler calls (EC2 Auto Scaling, and STS for web identity), over the Query
//! protocol: a form-encoded POST to `/`, signed with [`crate::sigv4`], answered in XML
//! ([`crate::xml`]). No SDK: the few calls are a few lines each.
//!
//! Where, and as whom, the AWS SDK way (the SDKs' variable names and order):
//! - region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the metadata service's
//!   `placement/region`;
//! - endpoints: `AWS_ENDPOINT_URL_AUTO_SCALING` / `AWS_ENDPOINT_URL_STS`, else
//!   `AWS_ENDPOINT_URL`, else `https://<service>.<region>.amazonaws.com` (`.com.cn` in China);
//!   https through the rustls client with the compiled-in web roots; plain http only to a
//!   loopback address (tests);
//! - credentials ([`Source`]): `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`;
//!   else web identity (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`: IRSA); else EKS Pod
//!   Identity (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`);
//!   else the instance profile through the metadata service (see `credentials`).
//!
//! Secrets (secret keys, session tokens, the web-identity token, signatures) never appear in an
//! error: errors carry the service's code and message, with any secret we sent scrubbed out.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::{Error as ConfigError, Secret};
use crate::http::{self, Endpoint};
use crate::sigv4::{self, Keys};
use crate::xml::{self, Leaf};

/// Largest answer we read.
const MAX_BODY: usize = 64 * 1024;
/// A `Date` this far from our clock, with a signature-time error, is a skewed clock: sign again
/// with the service's time (the SDKs do the same).
const SKEW_LIMIT: Duration = Duration::from_secs(240);

/// Where the credentials come from (the first source that is configured wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` [/ `AWS_SESSION_TOKEN`].
    Static(Keys),
    /// IRSA: STS `AssumeRoleWithWebIdentity` with the projected token (re-read at each refresh).
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
    },
    /// EKS Pod Identity (or any container credentials endpoint).
    Container {
        url: String,
        token_file: Option<PathBuf>,
        token: Option<Secret>,
    },
    /// The instance profile, from the metadata service (IMDSv2).
    InstanceProfile,
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Source::Static(_) => "environment",
            Source::WebIdentity { .. } => "web-identity",
            Source::Container { .. } => "pod-identity",
            Source::InstanceProfile => "instance-profile",
        }
    }
}

/// What the AWS SDK variables say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub region: Option<String>,
    pub autoscaling_url: Option<String>,
    pub sts_url: Option<String>,
    pub source: Source,
}

fn bad(setting: &str, expected: &str, got: String) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        expected: expected.to_string(),
        got,
    }
}

/// A region name: `us-east-1`, `cn-north-1`, `us-gov-west-1`.
pub fn valid_region(r: &str) -> bool {
    (4..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && r.starts_with(|c: char| c.is_ascii_lowercase())
        && r.ends_with(|c: char| c.is_ascii_digit())
}

/// The host of an `http(s)://host[:port][/path]` URL (brackets kept for IPv6).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

/// True for 127.0.0.0/8, `localhost` and `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// An AWS API endpoint URL: https, or plain http to a loopback address.
fn endpoint_url(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(v) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let v = v.trim().trim_end_matches('/').to_string();
    let host = url_host(&v).filter(|h| !h.contains(char::is_whitespace) && !h.contains('@'));
    let ok = match (v.starts_with("https://"), v.starts_with("http://"), host) {
        (true, _, Some(_)) => true,
        (_, true, Some(h)) => is_loopback(h),
        _ => false,
    };
    if ok && !v.contains('?') && !v.contains('#') {
        Ok(Some(v))
    } else {
        Err(bad(
            name,
            "an https:// URL naming a host (plain http:// only to a loopback address, for tests)",
            format!("{:?}", crate::json::snippet(v.as_bytes())),
        ))
    }
}

/// Reads the AWS SDK variables (only when the handler needs AWS: `DETACH_ASG`).
pub fn env_from(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Env, ConfigError> {
    let get = |k: &str| {
        lookup(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let region = match get("AWS_REGION")
        .map(|r| ("AWS_REGION", r))
        .or_else(|| get("AWS_DEFAULT_REGION").map(|r| ("AWS_DEFAULT_REGION", r)))
    {
        Some((_, r)) if valid_region(&r) => Some(r),
        Some((name, r)) => {
            return Err(bad(
                name,
                "an AWS region name such as us-east-1",
                format!("{:?}", crate::json::snippet(r.as_bytes())),
            ))
        }
        None => None,
    };
    let any = endpoint_url(lookup, "AWS_ENDPOINT_URL")?;
    let autoscaling_url = endpoint_url(lookup, "AWS_ENDPOINT_URL_AUTO_SCALING")?.or(any.clone());
    let sts_url = endpoint_url(lookup, "AWS_ENDPOINT_URL_STS")?.or(any);

    let key_id = get("AWS_ACCESS_KEY_ID");
    let secret = get("AWS_SECRET_ACCESS_KEY");
    let source = match (key_id, secret) {
        (Some(id), Some(secret)) => {
            if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad(
                    "AWS_ACCESS_KEY_ID",
                    "an access key id (16 to 128 letters and digits)",
                    format!("a value of {} characters", id.chars().count()),
                ));
            }
            Source::Static(Keys {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            })
        }
        (Some(_), None) => {
            return Err(bad(
                "AWS_SECRET_ACCESS_KEY",
                "the secret key that goes with AWS_ACCESS_KEY_ID",
                "nothing".to_string(),
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                "AWS_ACCESS_KEY_ID",
                "the access key id that goes with AWS_SECRET_ACCESS_KEY",
                "nothing".to_string(),
            ))
        }
        (None, None) => match (get("AWS_ROLE_ARN"), get("AWS_WEB_IDENTITY_TOKEN_FILE")) {
            (Some(role_arn), Some(file)) => {
                if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
                    return Err(bad(
                        "AWS_ROLE_ARN",
                        "a role ARN such as arn:aws:iam::123456789012:role/name",
                        format!("{:?}", crate::json::snippet(role_arn.as_bytes())),
                    ));
                }
                let session_name = get("AWS_ROLE_SESSION_NAME");
                if let Some(s) = &session_name {
                    let ok = (2..=64).contains(&s.len())
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
                    if !ok {
                        return Err(bad(
                            "AWS_ROLE_SESSION_NAME",
                            "2 to 64 letters, digits and +=,.@-_",
                            format!("{:?}", crate::json::snippet(s.as_bytes())),
                        ));
                    }
                }
                Source::WebIdentity {
                    role_arn,
                    token_file: PathBuf::from(file),
                    session_name,
                }
            }
            (Some(_), None) => {
                return Err(bad(
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "the projected token file that goes with AWS_ROLE_ARN",
                    "nothing".to_string(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "AWS_ROLE_ARN",
                    "the role to assume with AWS_WEB_IDENTITY_TOKEN_FILE",
                    "nothing".to_string(),
                ))
            }
            (None, None) => match get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
                Some(url) => {
                    // The SDKs' rule: https anywhere; http only to loopback or the ECS/EKS
                    // credential agents' link-local addresses.
                    let host = url_host(&url).unwrap_or("");
                    let ok = url.starts_with("https://") && !host.is_empty()
                        || url.starts_with("http://")
                            && (is_loopback(host)
                                || host == "169.254.170.2"
                                || host == "169.254.170.23");
                    if !ok {
                        return Err(bad(
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                            "an https:// URL, or http:// to 169.254.170.23 (EKS Pod Identity), 169.254.170.2 or a loopback address",
                            format!("{:?}", crate::json::snippet(url.as_bytes())),
                        ));
                    }
                    Source::Container {
                        url,
                        token_file: get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
                            .map(PathBuf::from),
                        token: get("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
                    }
                }
                None => Source::InstanceProfile,
            },
        },
    };
    Ok(Env {
        region,
        autoscaling_url,
        sts_url,
        source,
    })
}

/// The public endpoint of `service` (`autoscaling`, `sts`) in `region`.
pub fn default_url(service: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{service}.{region}.{suffix}")
}

/// `k=v&k=v`, RFC 3986-encoded.
pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                sigv4::uri_encode(k, false),
                sigv4::uri_encode(v, false)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The service's error code (`AccessDenied`, `ValidationError`, `Throttling`, ...), or
    /// `transport` / `malformed` for answers that never came or made no sense.
    pub code: String,
    /// What went wrong, safe to log.
    pub message: String,
    /// HTTP status (0: no answer).
    pub status: u16,
}

impl ApiError {
    /// Worth trying again (network, throttling, a 5xx, a skewed clock).
    pub fn is_retryable(&self) -> bool {
        self.status == 0
            || self.status >= 500
            || self.status == 429
            || matches!(
                self.code.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
                    | "InternalFailure"
                    | "RequestExpired"
                    | "RequestTimeTooSkewed"
                    | "IDPCommunicationError"
                    | "malformed"
            )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 || self.code.starts_with("HTTP ") {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(f, "{} (HTTP {}): {}", self.code, self.status, self.message)
        }
    }
}

/// Replaces every secret in `text` by `<redacted>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(*s, "<redacted>");
    }
    out
}

/// At most `max` characters of `text`, control characters as spaces.
fn short(text: &str, max: usize) -> String {
    let mut s: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        s.push('…');
    }
    s
}

/// One AWS service endpoint in one region.
pub struct Api {
    ep: Endpoint,
    /// The `Host` header http.rs sends (what is signed).
    host: String,
    /// Signing name: `autoscaling`, `sts`.
    service: &'static str,
    region: String,
    /// Seconds the service's clock is ahead of ours, learnt from a skew error.
    offset: i64,
}

impl Api {
    /// `url` is https (webpki roots) or, for tests, http to a loopback address.
    pub fn new(url: &str, service: &'static str, region: &str) -> Result<Api, String> {
        let tls = if url.starts_with("https://") {
            Some(http::tls_config_public()?)
        } else {
            None
        };
        let ep = Endpoint::parse(url, tls)?;
        if !ep.is_tls() && !url_host(url).is_some_and(is_loopback) {
            return Err(format!(
                "{}: plain http is only allowed to a loopback address",
                ep.authority()
            ));
        }
        Ok(Api {
            host: ep.host_header(),
            ep,
            service,
            region: region.to_string(),
            offset: 0,
        })
    }

    pub fn authority(&self) -> String {
        self.ep.authority()
    }

    /// POSTs `params` (signed with `keys`, or unsigned) and returns the answer's leaves.
    /// `secret_params` names parameters whose values are secrets (scrubbed from errors).
    pub fn call(
        &mut self,
        params: &[(&str, &str)],
        keys: Option<&Keys>,
        secret_params: &[&str],
        timeout: Duration,
    ) -> Result<Vec<Leaf>, ApiError> {
        let mut secrets: Vec<&str> = params
            .iter()
            .filter(|(k, _)| secret_params.contains(k))
            .map(|(_, v)| *v)
            .collect();
        if let Some(k) = keys {
            secrets.push(k.secret_access_key.expose());
            if let Some(t) = &k.session_token {
                secrets.push(t.expose());
            }
        }
        let body = form(params);
        let mut retried_skew = false;
        loop {
            let now = SystemTime::now();
            let time = if self.offset >= 0 {
                now + Duration::from_secs(self.offset as u64)
            } else {
                now - Duration::from_secs(self.offset.unsigned_abs())
            };
            let resp = self.post(&body, keys, time, timeout)?;
            if resp.status == 200 {
                let text = String::from_utf8_lossy(&resp.body);
                return xml::parse(&text).map_err(|e| ApiError {
                    code: "malformed".to_string(),
                    message: format!("{}: answer is not the XML expected: {e}", self.authority()),
                    status: resp.status,
                });
            }
            let err = self.error_of(&resp, &secrets);
            let skew_code = matches!(
                err.code.as_str(),
                "RequestExpired"
                    | "RequestTimeTooSkewed"
                    | "SignatureDoesNotMatch"
                    | "InvalidSignatureException"
            );
            if keys.is_some() && skew_code && !retried_skew {
                if let Some(theirs) = resp.header("date").and_then(crate::time::parse_http_date) {
                    let skew = crate::metadata::Skew::between(theirs, SystemTime::now());
                    if skew.abs() > SKEW_LIMIT {
                        crate::warn!(
                            "this node's clock differs from AWS's; signing with AWS's time",
                            service = self.service,
                            aws_clock_ahead_s = skew.seconds().round()
                        );
                        self.offset = skew.seconds().round() as i64;
                        retried_skew = true;
                        continue;
                    }
                }
            }
            return Err(err);
        }
    }

    fn post(
        &self,
        body: &str,
        keys: Option<&Keys>,
        time: SystemTime,
        timeout: Duration,
    ) -> Result<http::Response, ApiError> {
        const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
        let path = format!("{}/", self.ep.base_path());
        let signed = keys.map(|k| {
            sigv4::sign(
                &sigv4::Request {
                    method: "POST",
                    host: &self.host,
                    path: &path,
                    query: "",
                    headers: &[("Content-Type", CONTENT_TYPE)],
                    body: body.as_bytes(),
                    region: &self.region,
                    service: self.service,
                    time,
                },
                k,
            )
        });
        let ua = concat!(
            "spot-termination-notice-handler/",
            env!("CARGO_PKG_VERSION")
        );
        let mut headers: Vec<(&str, &str)> =
            vec![("Content-Type", CONTENT_TYPE), ("User-Agent", ua)];
        if let Some(s) = &signed {
            headers.extend(s.headers.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let req = http::Request {
            method: "POST",
            path: "/",
            headers: &headers,
            body: body.as_bytes(),
        };
        http::exchange(&self.ep, &req, timeout, MAX_BODY).map_err(|e| ApiError {
            code: "transport".to_string(),
            message: e.to_string(),
            status: 0,
        })
    }

    fn error_of(&self, resp: &http::Response, secrets: &[&str]) -> ApiError {
        let text = String::from_utf8_lossy(&resp.body);
        let leaves = xml::parse(&text).unwrap_or_default();
        let code = xml::leaf(&leaves, &["Error", "Code"]).map(str::trim);
        let message = xml::leaf(&leaves, &["Error", "Message"]).map(str::trim);
        match code {
            Some(c) if !c.is_empty() => ApiError {
                code: crate::cloud::clean_value(c),
                message: short(&scrub(message.unwrap_or(""), secrets), 400),
                status: resp.status,
            },
            _ => ApiError {
                code: format!("HTTP {}", resp.status),
                message: format!(
                    "{}: {}",
                    self.authority(),
                    short(&scrub(&String::from_utf8_lossy(&resp.body), secrets), 80)
                ),
                status: resp.status,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env_from(&move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn credential_sources_in_the_sdk_order() {
        let all = [
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/stnh"),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            ),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
        ];
        let names: Vec<&str> = (0..4)
            .map(|skip| env(&all[(skip * 2).min(6)..]).unwrap().source.name())
            .collect();
        assert_eq!(
            names,
            [
                "environment",
                "web-identity",
                "pod-identity",
                "instance-profile"
            ]
        );
        let e = env(&all[..2]).unwrap();
        assert!(!format!("{e:?}").contains("wJalr"), "{e:?}");
        assert_eq!(e.region, None);
        assert_eq!(e.autoscaling_url, None);
    }

    #[test]
    fn regions_and_endpoints() {
        let e = env(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/"),
            ("AWS_ENDPOINT_URL_STS", "https://sts.example.test"),
        ])
        .unwrap();
        assert_eq!(e.region.as_deref(), Some("eu-west-1"));
        assert_eq!(e.autoscaling_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(e.sts_url.as_deref(), Some("https://sts.example.test"));
        let e = env(&[("AWS_REGION", "us-gov-west-1"), ("AWS_DEFAULT_REGION", "x")]).unwrap();
        assert_eq!(e.region.as_deref(), Some("us-gov-west-1"));
        assert_eq!(
            default_url("autoscaling", "us-east-1"),
            "https://autoscaling.us-east-1.amazonaws.com"
        );
        assert_eq!(
            default_url("sts", "cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn bad_aws_variables_name_the_variable_and_never_echo_a_secret() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("AWS_REGION", "US East")], "invalid AWS_REGION: expected an AWS region name such as us-east-1, got \"US East\""),
            (&[("AWS_ENDPOINT_URL", "http://10.0.0.1:5000")], "invalid AWS_ENDPOINT_URL: expected an https:// URL naming a host (plain http:// only to a loopback address, for tests), got \"http://10.0.0.1:5000\""),
            (&[("AWS_ENDPOINT_URL_AUTO_SCALING", "autoscaling.example")], "invalid AWS_ENDPOINT_URL_AUTO_SCALING: expected"),
            (&[("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")], "invalid AWS_SECRET_ACCESS_KEY: expected the secret key that goes with AWS_ACCESS_KEY_ID, got nothing"),
            (&[("AWS_SECRET_ACCESS_KEY", "topsecretvalue")], "invalid AWS_ACCESS_KEY_ID: expected the access key id that goes with AWS_SECRET_ACCESS_KEY, got nothing"),
            (&[("AWS_ACCESS_KEY_ID", "short"), ("AWS_SECRET_ACCESS_KEY", "topsecretvalue")], "got a value of 5 characters"),
            (&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/x")], "invalid AWS_WEB_IDENTITY_TOKEN_FILE"),
            (&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")], "invalid AWS_ROLE_ARN"),
            (&[("AWS_ROLE_ARN", "stnh"), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")], "invalid AWS_ROLE_ARN: expected a role ARN"),
            (&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/x"), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_SESSION_NAME", "a b")], "invalid AWS_ROLE_SESSION_NAME"),
            (&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds")], "invalid AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        ];
        for (pairs, want) in cases {
            let e = env(pairs).unwrap_err().to_string();
            assert!(e.starts_with(want) || e.contains(want), "{e}");
            assert!(!e.contains("topsecret"), "{e}");
        }
        assert!(env(&[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "https://creds.example/x"
        )])
        .is_ok());
        assert!(env(&[("AWS_ENDPOINT_URL", "http://localhost:1")]).is_ok());
    }

    #[test]
    fn forms_and_error_answers() {
        assert_eq!(
            form(&[
                ("Action", "DetachInstances"),
                ("InstanceIds.member.1", "i-1"),
                ("AutoScalingGroupName", "a b/c")
            ]),
            "Action=DetachInstances&InstanceIds.member.1=i-1&AutoScalingGroupName=a%20b%2Fc"
        );
        let api = Api::new("http://127.0.0.1:9", "autoscaling", "us-east-1").unwrap();
        assert!(Api::new("http://192.0.2.1:80", "autoscaling", "us-east-1").is_err());
        let resp = http::Response::canned(
            403,
            &[],
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no for SECRETTOKEN</Message></Error></ErrorResponse>",
        );
        let e = api.error_of(&resp, &["SECRETTOKEN"]);
        assert_eq!(e.to_string(), "AccessDenied (HTTP 403): no for <redacted>");
        assert!(!e.is_retryable());
        let e = api.error_of(
            &http::Response::canned(502, &[], "<html>bad gateway SECRETTOKEN"),
            &["SECRETTOKEN"],
        );
        assert_eq!(
            e.to_string(),
            "HTTP 502: 127.0.0.1:9: <html>bad gateway <redacted>"
        );
        assert!(e.is_retryable());
        let throttled = ApiError {
            code: "Throttling".into(),
            message: String::new(),
            status: 400,
        };
        assert!(throttled.is_retryable());
    }
}
