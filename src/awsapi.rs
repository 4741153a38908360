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
use crate::xml;

/// Largest answer we read.
const MAX_BODY: usize = 64 * 1024;

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

/// `got`: the value (shown quoted, shortened), or `None` for "nothing".
fn bad(setting: &str, expected: &str, got: Option<&str>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        expected: expected.to_string(),
        got: got.map_or("nothing".to_string(), |v| {
            format!("{:?}", crate::json::snippet(v.as_bytes()))
        }),
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
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rfind(':') {
        Some(i) if !authority.ends_with(']') => &authority[..i],
        _ => authority,
    }
}

/// True for 127.0.0.0/8, `localhost` and `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Reads the AWS SDK variables (only when the handler needs AWS: `DETACH_ASG`).
pub fn env_from(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Env, ConfigError> {
    let get = |k: &str| {
        lookup(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    // Both of a pair, or neither; one alone names the other as missing.
    let pair = |a: &str, b: &str, what: &str| match (get(a), get(b)) {
        (Some(x), Some(y)) => Ok(Some((x, y))),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(bad(a, what, None)),
        (Some(_), None) => Err(bad(b, what, None)),
    };
    let name = if get("AWS_REGION").is_some() {
        "AWS_REGION"
    } else {
        "AWS_DEFAULT_REGION"
    };
    let region = get(name);
    if let Some(r) = region.as_deref().filter(|r| !valid_region(r)) {
        return Err(bad(name, "an AWS region name such as us-east-1", Some(r)));
    }
    // An AWS API endpoint: https, or plain http to a loopback address.
    let endpoint = |name: &str| -> Result<Option<String>, ConfigError> {
        let Some(v) = get(name) else { return Ok(None) };
        let v = v.trim_end_matches('/').to_string();
        let host = url_host(&v);
        let ok = !host.is_empty()
            && !v.contains(['?', '#', '@', ' '])
            && (v.starts_with("https://") || v.starts_with("http://") && is_loopback(host));
        if ok {
            Ok(Some(v))
        } else {
            Err(bad(
                name,
                "an https:// URL naming a host (plain http:// only to a loopback address, for tests)",
                Some(&v),
            ))
        }
    };
    let any = endpoint("AWS_ENDPOINT_URL")?;
    let autoscaling_url = endpoint("AWS_ENDPOINT_URL_AUTO_SCALING")?.or(any.clone());
    let sts_url = endpoint("AWS_ENDPOINT_URL_STS")?.or(any);

    let keys = pair(
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together",
    )?;
    let web = pair(
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE together",
    )?;
    let source = if let Some((id, secret)) = keys {
        if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(
                "AWS_ACCESS_KEY_ID",
                "an access key id (16 to 128 letters and digits)",
                Some(&id),
            ));
        }
        Source::Static(Keys {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
        })
    } else if let Some((role_arn, file)) = web {
        if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
            return Err(bad(
                "AWS_ROLE_ARN",
                "a role ARN such as arn:aws:iam::123456789012:role/name",
                Some(&role_arn),
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
                    Some(s),
                ));
            }
        }
        Source::WebIdentity {
            role_arn,
            token_file: PathBuf::from(file),
            session_name,
        }
    } else if let Some(url) = get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        // EKS Pod Identity's agent (and ECS's) is plain http on a link-local address; the SDKs
        // also take https anywhere, which this handler does not need.
        let host = url_host(&url);
        let ok = url.starts_with("http://")
            && (is_loopback(host) || host == "169.254.170.2" || host == "169.254.170.23");
        if !ok {
            return Err(bad(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http:// to 169.254.170.23 (EKS Pod Identity), 169.254.170.2 or a loopback address",
                Some(&url),
            ));
        }
        Source::Container {
            url,
            token_file: get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from),
            token: get("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
        }
    } else {
        Source::InstanceProfile
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
    /// Worth trying again (network, throttling, a 5xx, an answer that made no sense).
    pub fn is_retryable(&self) -> bool {
        const RETRY: [&str; 7] = [
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "ServiceUnavailable",
            "InternalFailure",
            "IDPCommunicationError",
            "malformed",
        ];
        self.status == 0
            || self.status >= 500
            || self.status == 429
            || RETRY.contains(&self.code.as_str())
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

/// At most `max` characters of `text` (logs and messages escape control characters).
fn short(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// One AWS service endpoint in one region.
pub struct Api {
    ep: Endpoint,
    /// The `Host` header http.rs sends (what is signed).
    host: String,
    /// Signing name: `autoscaling`, `sts`.
    service: &'static str,
    region: String,
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
        if !ep.is_tls() && !is_loopback(url_host(url)) {
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
        })
    }

    pub fn authority(&self) -> String {
        self.ep.authority()
    }

    /// POSTs `params` (signed with `keys`, or unsigned) and returns the answer (XML; an AWS
    /// answer always names its `RequestId`).
    /// `secret_params` names parameters whose values are secrets (scrubbed from errors).
    pub fn call(
        &mut self,
        params: &[(&str, &str)],
        keys: Option<&Keys>,
        secret_params: &[&str],
        timeout: Duration,
    ) -> Result<String, ApiError> {
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
        let resp = self.post(&body, keys, SystemTime::now(), timeout)?;
        if resp.status != 200 {
            return Err(self.error_of(&resp, &secrets));
        }
        let text = String::from_utf8_lossy(&resp.body).into_owned();
        if xml::text(&text, "RequestId").is_none() {
            return Err(ApiError {
                code: "malformed".to_string(),
                message: format!("{}: not an AWS answer (no RequestId)", self.authority()),
                status: resp.status,
            });
        }
        Ok(text)
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
        let code = xml::text(&text, "Code");
        let message = xml::text(&text, "Message").unwrap_or_default();
        match code.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => ApiError {
                code: crate::cloud::clean_value(c),
                message: short(&scrub(message.trim(), secrets), 400),
                status: resp.status,
            },
            _ => ApiError {
                code: format!("HTTP {}", resp.status),
                message: format!(
                    "{}: {}",
                    self.authority(),
                    short(&scrub(&text, secrets), 80)
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
            (&[("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")], "invalid AWS_SECRET_ACCESS_KEY: expected AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together, got nothing"),
            (&[("AWS_SECRET_ACCESS_KEY", "topsecretvalue")], "invalid AWS_ACCESS_KEY_ID: expected AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together, got nothing"),
            (&[("AWS_ACCESS_KEY_ID", "short"), ("AWS_SECRET_ACCESS_KEY", "topsecretvalue")], "invalid AWS_ACCESS_KEY_ID: expected an access key id (16 to 128 letters and digits), got \"short\""),
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
        .is_err());
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
