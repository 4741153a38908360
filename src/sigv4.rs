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
    insertion_sort(&mut pairs, |a, b| a > b);
    let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    items.join("&")
}

/// A stable sort for the few items a request has (smaller code than the standard sorts).
fn insertion_sort<T>(v: &mut [T], greater: impl Fn(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && greater(&v[j - 1], &v[j]) {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// `Trimall`, appended to `out`: leading and trailing whitespace removed, inner runs collapsed to
/// one space.
fn trim_all(v: &str, out: &mut String) {
    let mut space = false;
    for c in v.trim().chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
}

/// The concatenation of `parts` (smaller code than `format!`).
fn cat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Signs `req` with `keys`.
pub fn sign(req: &Request<'_>, keys: &Keys) -> Signed {
    let date_time = amz_date(req.time);
    let date = &date_time[..8];
    let token = keys.session_token.as_ref().map(Secret::expose);
    let mut headers: Vec<(String, &str)> = vec![
        ("host".to_string(), req.host),
        ("x-amz-date".to_string(), &date_time),
    ];
    if let Some(t) = token {
        headers.push(("x-amz-security-token".to_string(), t));
    }
    for (k, v) in req.headers {
        headers.push((k.to_ascii_lowercase(), v));
    }
    // Sorted by name; a stable sort keeps repeated names in the order sent.
    insertion_sort(&mut headers, |a, b| a.0 > b.0);
    let mut canonical_headers = String::new();
    let mut signed_headers = String::new();
    let mut last: Option<&str> = None;
    for (name, value) in &headers {
        if last == Some(name.as_str()) {
            canonical_headers.push(',');
        } else {
            if last.is_some() {
                canonical_headers.push('\n');
                signed_headers.push(';');
            }
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            signed_headers.push_str(name);
            last = Some(name);
        }
        trim_all(value, &mut canonical_headers);
    }
    let canonical_request = cat(&[
        &req.method.to_ascii_uppercase(),
        "\n",
        &uri_encode(&remove_dot_segments(req.path), true),
        "\n",
        &canonical_query(req.query),
        "\n",
        &canonical_headers,
        "\n\n",
        &signed_headers,
        "\n",
        &sha256_hex(req.body),
    ]);
    let scope = cat(&[date, "/", req.region, "/", req.service, "/aws4_request"]);
    let string_to_sign = cat(&[
        "AWS4-HMAC-SHA256\n",
        &date_time,
        "\n",
        &scope,
        "\n",
        &sha256_hex(canonical_request.as_bytes()),
    ]);
    let mut key = hmac(
        cat(&["AWS4", keys.secret_access_key.expose()]).as_bytes(),
        date.as_bytes(),
    );
    for part in [req.region, req.service, "aws4_request"] {
        key = hmac(key.as_ref(), part.as_bytes());
    }
    let signature = hex(hmac(key.as_ref(), string_to_sign.as_bytes()).as_ref());
    let authorization = cat(&[
        "AWS4-HMAC-SHA256 Credential=",
        &keys.access_key_id,
        "/",
        &scope,
        ", SignedHeaders=",
        &signed_headers,
        ", Signature=",
        &signature,
    ]);
    let mut out_headers = vec![("X-Amz-Date", date_time.clone())];
    if let Some(t) = token {
        out_headers.push(("X-Amz-Security-Token", t.to_string()));
    }
    out_headers.push(("Authorization", authorization));
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
        let mut t = String::new();
        trim_all("  a   b \t c ", &mut t);
        assert_eq!(t, "a b c");
        assert_eq!(
            amz_date(crate::time::parse_rfc3339("2024-01-02T03:04:05Z").unwrap()),
            "20240102T030405Z"
        );
    }
}
