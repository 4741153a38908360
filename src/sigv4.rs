//! AWS Signature Version 4, by hand, over ring's SHA-256 and HMAC-SHA256 (ring is already in
//! the binary through rustls). Pure: the caller gives the request, the credentials and the time;
//! [`sign`] returns every intermediate (canonical request, string to sign, signature) so a test
//! can compare them byte for byte with botocore's signer (`tests/sigv4_oracle.rs`).
//!
//! The rules (AWS General Reference, "Create a signed AWS API request"):
//! - canonical request = method, canonical URI (dot segments removed, every byte but
//!   `A-Za-z0-9-_.~/` percent-encoded: services other than S3 sign the path encoded twice),
//!   canonical query (the URL's `k=v` pairs, as sent, sorted by key then value), the signed
//!   headers as `name:value` lines (names lowercased and sorted, values trimmed with inner
//!   runs of spaces collapsed, repeated names joined by `,`), a blank line, the signed header
//!   names joined by `;`, and the hex SHA-256 of the body;
//! - string to sign = `AWS4-HMAC-SHA256`, the time (`YYYYMMDDTHHMMSSZ`), the scope
//!   (`date/region/service/aws4_request`) and the hex SHA-256 of the canonical request;
//! - signing key = HMAC chain `AWS4`+secret → date → region → service → `aws4_request`.
//!
//! `X-Amz-Date` and, with temporary credentials, `X-Amz-Security-Token` are added and signed,
//! as botocore does. Nothing here logs: the secret key, the session token and the signature
//! stay in the returned values, whose `Debug` forms redact them.

use std::fmt;
use std::time::SystemTime;

use ring::{digest, hmac};

use crate::config::Secret;

/// An access key and its secret; `session_token` for temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The access key id is not a secret (it shows in CloudTrail and in error messages), but
        // nothing else is printed.
        write!(
            f,
            "Keys {{ access_key_id: {:?}, secret_access_key: <redacted>, session_token: {} }}",
            self.access_key_id,
            if self.session_token.is_some() {
                "<redacted>"
            } else {
                "none"
            }
        )
    }
}

/// What to sign. `host` is the `Host` header as sent (port only when not the scheme's
/// default); `query` is the URL's query as sent, without `?`.
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Headers sent besides `Host`, `X-Amz-Date`, `X-Amz-Security-Token` and `Authorization`.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

/// A signature and how it was made.
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// Hex HMAC-SHA256 (a bearer value for the request: never logged).
    pub signature: String,
    /// Headers to add to the request: `X-Amz-Date`, `X-Amz-Security-Token` (temporary
    /// credentials), `Authorization`.
    pub headers: Vec<(&'static str, String)>,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signed { <redacted> }")
    }
}

/// `20150830T123600Z`.
pub fn amz_date(t: SystemTime) -> String {
    crate::time::format_rfc3339(t).replace(['-', ':'], "")
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (and `/` when
/// `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986 §5.2.4 dot-segment removal, as botocore's `normalize_url_path`.
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = format!("/{}", out.join("/"));
    if path.ends_with('/') && p != "/" {
        p.push('/');
    }
    p
}

fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    items.join("&")
}

/// `Trimall`: leading and trailing whitespace removed, inner runs collapsed to one space.
fn trim_all(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Signs `req` with `keys`.
pub fn sign(req: &Request<'_>, keys: &Keys) -> Signed {
    let date_time = amz_date(req.time);
    let date = &date_time[..8];
    let mut headers: Vec<(String, String)> = vec![
        ("host".to_string(), req.host.to_string()),
        ("x-amz-date".to_string(), date_time.clone()),
    ];
    if let Some(t) = &keys.session_token {
        headers.push(("x-amz-security-token".to_string(), t.expose().to_string()));
    }
    for (k, v) in req.headers {
        headers.push((k.to_ascii_lowercase(), (*v).to_string()));
    }
    // Sorted by name; a stable sort keeps repeated names in the order sent.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical_headers = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, value) in &headers {
        if names.last() == Some(&name.as_str()) {
            canonical_headers.push(',');
        } else {
            if !names.is_empty() {
                canonical_headers.push('\n');
            }
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            names.push(name);
        }
        canonical_headers.push_str(&trim_all(value));
    }
    let signed_headers = names.join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n\n{signed_headers}\n{}",
        req.method.to_ascii_uppercase(),
        uri_encode(&remove_dot_segments(req.path), true),
        canonical_query(req.query),
        sha256_hex(req.body)
    );
    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_secret = format!("AWS4{}", keys.secret_access_key.expose());
    let k_date = hmac(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac(k_date.as_ref(), req.region.as_bytes());
    let k_service = hmac(k_region.as_ref(), req.service.as_bytes());
    let k_signing = hmac(k_service.as_ref(), b"aws4_request");
    let signature = hex(hmac(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());
    let mut out_headers: Vec<(&'static str, String)> = vec![("X-Amz-Date", date_time.clone())];
    if let Some(t) = &keys.session_token {
        out_headers.push(("X-Amz-Security-Token", t.expose().to_string()));
    }
    out_headers.push((
        "Authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            keys.access_key_id
        ),
    ));
    Signed {
        canonical_request,
        string_to_sign,
        signature,
        headers: out_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(token: Option<&str>) -> Keys {
        Keys {
            access_key_id: "AKIDEXAMPLE".to_string(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    /// AWS's own worked example (General Reference, "Signature Version 4 signing process":
    /// IAM ListUsers, 2015-08-30T12:36:00Z, the documentation's example keys).
    #[test]
    fn the_aws_documentation_example() {
        let req = Request {
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            body: b"",
            region: "us-east-1",
            service: "iam",
            time: crate::time::parse_rfc3339("2015-08-30T12:36:00Z").unwrap(),
        };
        let s = sign(&req, &keys(None));
        assert_eq!(
            s.canonical_request,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(s.canonical_request.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            s.signature,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(
            s.headers.last().unwrap().1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn session_token_is_signed_and_sent() {
        let req = Request {
            method: "POST",
            host: "autoscaling.us-east-1.amazonaws.com",
            path: "/",
            query: "",
            headers: &[],
            body: b"Action=DetachInstances",
            region: "us-east-1",
            service: "autoscaling",
            time: crate::time::parse_rfc3339("2024-01-02T03:04:05Z").unwrap(),
        };
        let s = sign(&req, &keys(Some("tok  en")));
        assert!(s
            .canonical_request
            .contains("\nx-amz-security-token:tok en\n\nhost;x-amz-date;x-amz-security-token\n"));
        assert_eq!(
            s.headers[1],
            ("X-Amz-Security-Token", "tok  en".to_string())
        );
        assert!(!format!("{s:?} {:?}", keys(Some("tok  en"))).contains("tok  en"));
        assert!(!format!("{:?}", keys(None)).contains("wJalr"));
    }

    #[test]
    fn paths_queries_and_headers_are_canonical() {
        assert_eq!(remove_dot_segments("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(remove_dot_segments(""), "/");
        assert_eq!(uri_encode("/a b/%2F~", true), "/a%20b/%252F~");
        assert_eq!(uri_encode("a/b=c", false), "a%2Fb%3Dc");
        assert_eq!(canonical_query("b=2&a=3&a=1&c"), "a=1&a=3&b=2&c=");
        assert_eq!(trim_all("  a   b \t c "), "a b c");
        assert_eq!(
            amz_date(crate::time::parse_rfc3339("2024-01-02T03:04:05Z").unwrap()),
            "20240102T030405Z"
        );
    }
}
