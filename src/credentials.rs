//! AWS credentials for the handler's API calls, from the first configured source in the AWS
//! SDKs' order ([`awsapi::Source`]), cached and fetched again before they expire.
//!
//! - environment: the keys as given (they never expire here);
//! - web identity (IRSA): STS `AssumeRoleWithWebIdentity`, unsigned, with the projected token
//!   read again at every refresh (the kubelet rotates it); one hour of credentials;
//! - container (EKS Pod Identity): GET the agent's URL with the token file's content as
//!   `Authorization` (read again each time); plain http through `metadata` (minreq), https
//!   through the rustls client;
//! - instance profile: the metadata service's `iam/security-credentials/<role>` through the AWS
//!   module's [`Imds`] (its IMDSv2 token logic, not a copy).
//!
//! Credentials are fetched again when less than [`REFRESH_MARGIN`] is left (the metadata
//! service rotates its credentials at least five minutes before they expire) or when AWS says
//! they expired. Only when a call needs them: an idle handler makes no request.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nanoserde::DeJson;

use crate::awsapi::{self, Api, ApiError, Source};
use crate::cloud::aws::Imds;
use crate::config::Secret;
use crate::sigv4::Keys;
use crate::xml;

/// Fetch new credentials when less than this is left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
pub const PROFILE_PATH: &str = "/latest/meta-data/iam/security-credentials/";
/// The web-identity token and agent tokens are small; anything larger is not one.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

fn err(code: &str, message: impl Into<String>, retryable: bool) -> ApiError {
    ApiError {
        code: code.to_string(),
        message: message.into(),
        // 0 marks a retryable failure (no answer); 400 a permanent one.
        status: if retryable { 0 } else { 400 },
    }
}

/// The credentials document of the metadata service and of the container agents.
#[derive(DeJson)]
struct Document {
    #[nserde(rename = "Code")]
    code: Option<String>,
    #[nserde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[nserde(rename = "SecretAccessKey")]
    secret_access_key: Option<String>,
    #[nserde(rename = "Token")]
    token: Option<String>,
    #[nserde(rename = "Expiration")]
    expiration: Option<String>,
}

/// Keys and expiry from a credentials document (the message names no value of it).
pub fn parse_document(body: &[u8], what: &str) -> Result<(Keys, Option<SystemTime>), ApiError> {
    let shape = || {
        err(
            "credentials",
            format!("{what}: not the credentials document expected"),
            true,
        )
    };
    let d: Document = crate::json::parse(body).map_err(|_| shape())?;
    if let Some(c) = d.code.as_deref().filter(|c| *c != "Success") {
        return Err(err(
            "credentials",
            format!("{what}: Code {:?}", crate::cloud::clean_value(c)),
            true,
        ));
    }
    let (Some(id), Some(secret)) = (d.access_key_id, d.secret_access_key) else {
        return Err(shape());
    };
    if id.is_empty() || secret.is_empty() {
        return Err(shape());
    }
    let expires = match d.expiration.as_deref() {
        None => None,
        Some(t) => Some(crate::time::parse_rfc3339(t).ok_or_else(|| {
            err(
                "credentials",
                format!("{what}: Expiration is not an RFC 3339 time"),
                true,
            )
        })?),
    };
    Ok((
        Keys {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: d.token.filter(|t| !t.is_empty()).map(Secret::new),
        },
        expires,
    ))
}

/// A token file's content, trimmed.
fn read_token(path: &Path, setting: &str) -> Result<Secret, ApiError> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_FILE).read_to_string(&mut s))
        .map_err(|e| {
            err(
                "credentials",
                format!("{setting} {}: {e}", path.display()),
                true,
            )
        })?;
    let t = s.trim();
    if t.is_empty() {
        return Err(err(
            "credentials",
            format!("{setting} {}: empty", path.display()),
            true,
        ));
    }
    Ok(Secret::new(t))
}

/// The STS answer to `AssumeRoleWithWebIdentity`.
pub fn parse_assume_role(leaves: &[xml::Leaf]) -> Result<(Keys, Option<SystemTime>), ApiError> {
    let get = |n: &str| {
        xml::leaf(
            leaves,
            &["AssumeRoleWithWebIdentityResult", "Credentials", n],
        )
    };
    match (
        get("AccessKeyId"),
        get("SecretAccessKey"),
        get("SessionToken"),
    ) {
        (Some(id), Some(secret), Some(token)) if !id.is_empty() && !secret.is_empty() => Ok((
            Keys {
                access_key_id: id.trim().to_string(),
                secret_access_key: Secret::new(secret.trim()),
                session_token: Some(Secret::new(token.trim())),
            },
            get("Expiration").and_then(crate::time::parse_rfc3339),
        )),
        _ => Err(err("malformed", "STS answered without credentials", true)),
    }
}

/// The credentials of one source, cached.
pub struct Credentials {
    source: Source,
    imds: Arc<Imds>,
    sts_url: Option<String>,
    sts: Option<Api>,
    cached: Option<(Keys, Option<SystemTime>)>,
    timeout: Duration,
}

impl Credentials {
    pub fn new(
        source: Source,
        sts_url: Option<String>,
        imds: Arc<Imds>,
        timeout: Duration,
    ) -> Credentials {
        Credentials {
            source,
            imds,
            sts_url,
            sts: None,
            cached: None,
            timeout,
        }
    }

    pub fn source(&self) -> &'static str {
        self.source.name()
    }

    /// Forget the cached credentials (AWS said they expired).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// Usable credentials, fetched when there are none or they expire within the margin.
    pub fn keys(&mut self, region: &str) -> Result<Keys, ApiError> {
        let now = SystemTime::now();
        if let Some((k, exp)) = &self.cached {
            if exp.is_none_or(|e| e > now + REFRESH_MARGIN) {
                return Ok(k.clone());
            }
        }
        let (keys, expires) = self.fetch(region)?;
        crate::debug!(
            "obtained AWS credentials",
            source = self.source(),
            access_key_id = keys.access_key_id,
            expires = expires.map_or("never".to_string(), crate::time::format_rfc3339)
        );
        self.cached = Some((keys.clone(), expires));
        Ok(keys)
    }

    fn fetch(&mut self, region: &str) -> Result<(Keys, Option<SystemTime>), ApiError> {
        match self.source.clone() {
            Source::Static(k) => Ok((k, None)),
            Source::InstanceProfile => self.instance_profile(),
            Source::Container {
                url,
                token_file,
                token,
            } => {
                let token = match (&token_file, token) {
                    (Some(f), _) => Some(read_token(f, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")?),
                    (None, t) => t,
                };
                self.container(&url, token.as_ref())
            }
            Source::WebIdentity {
                role_arn,
                token_file,
                session_name,
            } => {
                let token = read_token(&token_file, "AWS_WEB_IDENTITY_TOKEN_FILE")?;
                if self.sts.is_none() {
                    let url = self
                        .sts_url
                        .clone()
                        .unwrap_or_else(|| awsapi::default_url("sts", region));
                    self.sts = Some(
                        Api::new(&url, "sts", region)
                            .map_err(|e| err("configuration", e, false))?,
                    );
                }
                let session = session_name.unwrap_or_else(|| {
                    let secs = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    format!("spot-termination-notice-handler-{secs}")
                });
                let sts = self.sts.as_mut().expect("built above");
                let leaves = sts.call(
                    &[
                        ("Action", "AssumeRoleWithWebIdentity"),
                        ("Version", "2011-06-15"),
                        ("RoleArn", &role_arn),
                        ("RoleSessionName", &session),
                        ("WebIdentityToken", token.expose()),
                        ("DurationSeconds", "3600"),
                    ],
                    None,
                    &["WebIdentityToken"],
                    self.timeout,
                )?;
                parse_assume_role(&leaves)
            }
        }
    }

    fn instance_profile(&self) -> Result<(Keys, Option<SystemTime>), ApiError> {
        let transport = |e: String| err("transport", e, true);
        let list = self.imds.get(PROFILE_PATH).map_err(transport)?;
        match list.status {
            200 => {}
            404 => {
                return Err(err(
                    "NoInstanceProfile",
                    "the metadata service lists no instance profile role (iam/security-credentials/ is 404): attach an instance profile, or give the pod IRSA or Pod Identity credentials",
                    false,
                ))
            }
            s => return Err(err("credentials", format!("{PROFILE_PATH}: HTTP {s}"), true)),
        }
        let text = list.text();
        let role = text.lines().next().unwrap_or("").trim().to_string();
        let ok = !role.is_empty()
            && role.len() <= 128
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
        if !ok {
            return Err(err(
                "credentials",
                format!("{PROFILE_PATH}: no role name in the listing"),
                true,
            ));
        }
        let a = self
            .imds
            .get(&format!("{PROFILE_PATH}{role}"))
            .map_err(transport)?;
        if a.status != 200 {
            return Err(err(
                "credentials",
                format!("{PROFILE_PATH}{role}: HTTP {}", a.status),
                true,
            ));
        }
        parse_document(&a.body, &format!("{PROFILE_PATH}{role}"))
    }

    fn container(
        &self,
        url: &str,
        token: Option<&Secret>,
    ) -> Result<(Keys, Option<SystemTime>), ApiError> {
        let auth: Vec<(&str, &str)> = token
            .map(|t| ("Authorization", t.expose()))
            .into_iter()
            .collect();
        let what = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
        let (status, body) = if url.starts_with("https://") {
            let tls =
                crate::http::tls_config_public().map_err(|e| err("configuration", e, false))?;
            let ep = crate::http::Endpoint::parse(url, Some(tls))
                .map_err(|e| err("configuration", e, false))?;
            let resp = crate::http::exchange(
                &ep,
                &crate::http::Request {
                    method: "GET",
                    path: "",
                    headers: &auth,
                    body: b"",
                },
                self.timeout,
                crate::metadata::MAX_BODY,
            )
            .map_err(|e| err("transport", e.to_string(), true))?;
            (resp.status, resp.body)
        } else {
            let a =
                crate::metadata::send(crate::metadata::Method::Get, url, &auth, b"", self.timeout)
                    .map_err(|e| err("transport", format!("{what}: {e}"), true))?;
            (a.status, a.body)
        };
        if status != 200 {
            return Err(err(
                "credentials",
                format!("{what}: the credentials agent answered HTTP {status}"),
                status >= 500 || status == 429,
            ));
        }
        parse_document(&body, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_documents() {
        let (k, exp) = parse_document(
            br#"{"Code":"Success","LastUpdated":"2024-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t","Token":"t0k3n","Expiration":"2024-01-01T06:00:00Z"}"#,
            "imds",
        )
        .unwrap();
        assert_eq!(k.access_key_id, "ASIAEXAMPLE");
        assert_eq!(k.secret_access_key.expose(), "s3cr3t");
        assert_eq!(k.session_token.as_ref().unwrap().expose(), "t0k3n");
        assert_eq!(exp, crate::time::parse_rfc3339("2024-01-01T06:00:00Z"));
        // Pod Identity's document: no Code, an AccountId.
        let (k, _) = parse_document(
            br#"{"AccessKeyId":"ASIA2","SecretAccessKey":"x","Token":"y","AccountId":"123","Expiration":"2024-01-01T06:00:00.000Z"}"#,
            "agent",
        )
        .unwrap();
        assert_eq!(k.access_key_id, "ASIA2");
        for bad in [
            &br#"{"Code":"Failure","Message":"s3cr3t"}"#[..],
            br#"{"AccessKeyId":"A"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"s3cr3t","Expiration":"soon"}"#,
            br#"s3cr3t"#,
        ] {
            let e = parse_document(bad, "imds").unwrap_err();
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn sts_answers() {
        let doc = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:kube-system:stnh</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>FQoGZXIvYXdzE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let (k, exp) = parse_assume_role(&xml::parse(doc).unwrap()).unwrap();
        assert_eq!(k.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(k.session_token.unwrap().expose(), "FQoGZXIvYXdzE");
        assert_eq!(exp, crate::time::parse_rfc3339("2014-10-24T23:00:23Z"));
        assert!(parse_assume_role(&xml::parse("<R/>").unwrap()).is_err());
    }

    #[test]
    fn cached_until_the_margin() {
        let imds = Arc::new(Imds::new("http://127.0.0.1:9", Duration::from_secs(1)));
        let keys = Keys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("x"),
            session_token: None,
        };
        let mut c = Credentials::new(Source::InstanceProfile, None, imds, Duration::from_secs(1));
        c.cached = Some((
            keys.clone(),
            Some(SystemTime::now() + REFRESH_MARGIN + Duration::from_secs(60)),
        ));
        assert_eq!(
            c.keys("us-east-1").unwrap(),
            keys,
            "fresh enough: no request"
        );
        c.cached = Some((
            keys,
            Some(SystemTime::now() + REFRESH_MARGIN - Duration::from_secs(1)),
        ));
        // Within the margin: fetched again (nothing listens on port 9: a transport error).
        let e = c.keys("us-east-1").unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }
}
