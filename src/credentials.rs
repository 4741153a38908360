//! AWS credentials for the handler's API calls, from the first configured source in the AWS
//! SDKs' order ([`awsapi::Source`]), cached and fetched again before they expire.
//!
//! - environment: the keys as given (they never expire here);
//! - web identity (IRSA): STS `AssumeRoleWithWebIdentity`, unsigned, with the projected token
//!   read again at every refresh (the kubelet rotates it); one hour of credentials;
//! - container (EKS Pod Identity): GET the agent's URL (plain http to its link-local address,
//!   through `metadata`, minreq) with the token file's content as `Authorization` (read again
//!   each time);
//! - instance profile: the metadata service's `iam/security-credentials/<role>` through the AWS
//!   module's [`Session`](crate::cloud::session::Session) (its IMDSv2 token logic, not a copy).
//!
//! Credentials are fetched again when less than [`REFRESH_MARGIN`] is left (the metadata
//! service rotates its credentials at least five minutes before they expire) or when AWS says
//! they expired. Only when a call needs them: an idle handler makes no request.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::awsapi::{self, Api, ApiError, Source};
use crate::cloud::session::Session;
use crate::config::Secret;
use crate::sigv4::Keys;
use crate::xml;

/// Fetch new credentials when less than this is left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
pub const PROFILE_PATH: &str = "/latest/meta-data/iam/security-credentials/";
/// The web-identity token and agent tokens are small; anything larger is not one.
const MAX_TOKEN: usize = 64 * 1024;

fn err(code: &str, message: impl Into<String>, retryable: bool) -> ApiError {
    ApiError {
        code: code.to_string(),
        message: message.into(),
        // 0 marks a retryable failure (no answer); 400 a permanent one.
        status: if retryable { 0 } else { 400 },
    }
}

/// The string members of a flat JSON object (the credentials documents of the metadata
/// service and of the container agents: string values only, no escapes but `\/`, `\"`,
/// `\\`). Members of other types are skipped. `None` for anything else.
fn string_members(body: &[u8]) -> Option<Vec<(String, String)>> {
    crate::json::check(body).ok()?;
    let b = body;
    let ws = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    // A string starting at the quote at `i`: its text and the index after it.
    let string = |i: usize| -> Option<(String, usize)> {
        let mut out = Vec::new();
        let mut j = i + 1;
        loop {
            match *b.get(j)? {
                b'"' => return Some((String::from_utf8(out).ok()?, j + 1)),
                b'\\' => {
                    out.push(match *b.get(j + 1)? {
                        c @ (b'/' | b'"' | b'\\') => c,
                        _ => return None,
                    });
                    j += 2;
                }
                c => {
                    out.push(c);
                    j += 1;
                }
            }
        }
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    let mut out = Vec::new();
    while b.get(i) == Some(&b'"') {
        let (key, next) = string(i)?;
        i = ws(ws(next) + 1);
        if b.get(i) == Some(&b'"') {
            let (value, next) = string(i)?;
            out.push((key, value));
            i = next;
        } else {
            // Skip a number, literal, array or object (well-formed: `check` said so).
            let (mut depth, mut in_str) = (0usize, false);
            while let Some(&c) = b.get(i) {
                match (in_str, c) {
                    (true, b'\\') => i += 1,
                    (true, b'"') | (false, b'"') => in_str = !in_str,
                    (false, b'{' | b'[') => depth += 1,
                    (false, b'}' | b']') if depth > 0 => depth -= 1,
                    (false, b',' | b'}') if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
        }
        i = ws(i);
        if b.get(i) == Some(&b',') {
            i = ws(i + 1);
        }
    }
    Some(out)
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
    let members = string_members(body).ok_or_else(shape)?;
    let get = |k: &str| {
        members
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if let Some(c) = get("Code").filter(|c| *c != "Success") {
        return Err(err(
            "credentials",
            format!("{what}: Code {:?}", crate::cloud::clean_value(c)),
            true,
        ));
    }
    let (Some(id), Some(secret)) = (get("AccessKeyId"), get("SecretAccessKey")) else {
        return Err(shape());
    };
    let expires = match get("Expiration") {
        None => None,
        Some(t) => Some(crate::time::parse_rfc3339(t).ok_or_else(shape)?),
    };
    Ok((
        Keys {
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret),
            session_token: get("Token").map(Secret::new),
        },
        expires,
    ))
}

/// A token file's content, trimmed.
fn read_token(path: &Path, setting: &str) -> Result<Secret, ApiError> {
    let fail = |why: String| {
        err(
            "credentials",
            format!("{setting} {}: {why}", path.display()),
            true,
        )
    };
    let s = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_TOKEN {
        return Err(fail(format!("expected a token of 1 to {MAX_TOKEN} bytes")));
    }
    Ok(Secret::new(t))
}

/// The STS answer to `AssumeRoleWithWebIdentity`.
pub fn parse_assume_role(doc: &str) -> Result<(Keys, Option<SystemTime>), ApiError> {
    let get = |n: &str| {
        xml::text(doc, n)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (
        get("AccessKeyId"),
        get("SecretAccessKey"),
        get("SessionToken"),
    ) {
        (Some(id), Some(secret), Some(token)) => Ok((
            Keys {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: Some(Secret::new(token)),
            },
            get("Expiration").and_then(|t| crate::time::parse_rfc3339(&t)),
        )),
        _ => Err(err("malformed", "STS answered without credentials", true)),
    }
}

/// The credentials of one source, cached.
pub struct Credentials {
    source: Source,
    imds: Arc<Session>,
    sts_url: Option<String>,
    sts: Option<Api>,
    cached: Option<(Keys, Option<SystemTime>)>,
    timeout: Duration,
}

impl Credentials {
    pub fn new(
        source: Source,
        sts_url: Option<String>,
        imds: Arc<Session>,
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
        self.cached = Some((keys.clone(), expires));
        Ok(keys)
    }

    fn fetch(&mut self, region: &str) -> Result<(Keys, Option<SystemTime>), ApiError> {
        match &self.source {
            Source::Static(k) => Ok((k.clone(), None)),
            Source::InstanceProfile => {
                let list = self.imds_get(PROFILE_PATH)?;
                let role = list.lines().next().unwrap_or("").trim();
                let ok = !role.is_empty()
                    && role.len() <= 128
                    && role
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
                if !ok {
                    return Err(err(
                        "credentials",
                        format!("{PROFILE_PATH}: no role name"),
                        true,
                    ));
                }
                let path = format!("{PROFILE_PATH}{role}");
                parse_document(self.imds_get(&path)?.as_bytes(), &path)
            }
            Source::Container {
                url,
                token_file,
                token,
            } => {
                let token = match token_file {
                    Some(f) => Some(read_token(f, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")?),
                    None => token.clone(),
                };
                let auth: Vec<(&str, &str)> = token
                    .iter()
                    .map(|t| ("Authorization", t.expose()))
                    .collect();
                let what = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
                let a = crate::metadata::send(
                    crate::metadata::Method::Get,
                    url,
                    &auth,
                    b"",
                    self.timeout,
                )
                .map_err(|e| err("transport", format!("{what}: {e}"), true))?;
                if a.status != 200 {
                    return Err(err(
                        "credentials",
                        format!("{what}: the credentials agent answered HTTP {}", a.status),
                        a.status >= 500 || a.status == 429,
                    ));
                }
                parse_document(&a.body, what)
            }
            Source::WebIdentity {
                role_arn,
                token_file,
                session_name,
            } => {
                let token = read_token(token_file, "AWS_WEB_IDENTITY_TOKEN_FILE")?;
                let session = session_name
                    .as_deref()
                    .unwrap_or("spot-termination-notice-handler");
                let params = [
                    ("Action", "AssumeRoleWithWebIdentity"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", role_arn.as_str()),
                    ("RoleSessionName", session),
                    ("WebIdentityToken", token.expose()),
                    ("DurationSeconds", "3600"),
                ];
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
                let sts = self.sts.as_mut().expect("built above");
                parse_assume_role(&sts.call(&params, None, &["WebIdentityToken"], self.timeout)?)
            }
        }
    }

    /// A metadata path's text (200), through the AWS module's IMDSv2 client.
    fn imds_get(&self, path: &str) -> Result<String, ApiError> {
        let a = self.imds.get(path).map_err(|e| err("transport", e, true))?;
        match a.status {
            200 => Ok(a.text()),
            404 if path == PROFILE_PATH => Err(err(
                "NoInstanceProfile",
                "the metadata service lists no instance profile role (iam/security-credentials/ is 404): attach an instance profile, or give the pod IRSA or Pod Identity credentials",
                false,
            )),
            s => Err(err("credentials", format!("{path}: HTTP {s}"), true)),
        }
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
        // Other member types are skipped; `\/` is decoded.
        let (k, exp) = parse_document(
            br#"{"n": 1.5e3, "o": {"AccessKeyId": "nested", "a": [1, "}"]}, "AccessKeyId": "ASIA3", "l": [true, null], "SecretAccessKey": "a\/b", "Token": ""}"#,
            "agent",
        )
        .unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.expose()),
            ("ASIA3", "a/b")
        );
        assert_eq!((k.session_token, exp), (None, None));
        for bad in [
            &br#"{"Code":"Failure","Message":"s3cr3t"}"#[..],
            br#"{"AccessKeyId":"A"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"s3cr3t","Expiration":"soon"}"#,
            br#"s3cr3t"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"s3cr3t\u0041"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"s3cr3t""#,
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
        let (k, exp) = parse_assume_role(doc).unwrap();
        assert_eq!(k.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(k.session_token.unwrap().expose(), "FQoGZXIvYXdzE");
        assert_eq!(exp, crate::time::parse_rfc3339("2014-10-24T23:00:23Z"));
        assert!(parse_assume_role("<R/>").is_err());
    }

    #[test]
    fn cached_until_the_margin() {
        let imds = Arc::new(Session::new(
            "http://127.0.0.1:9",
            Duration::from_secs(1),
            &crate::cloud::session::AWS,
        ));
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
