//! Plain HTTP to the clouds' instance metadata services, through minreq (no features: no TLS,
//! no proxy support compiled in, so a pod's `http_proxy` can never divert a metadata request).
//!
//! One request per call, on a connection of its own (minreq keeps none). Every phase is bounded:
//! minreq runs connect, send and the response head on a thread of its own and gives up at the
//! timeout (whole seconds: minreq's unit); the body is read here with the socket timeouts minreq
//! sets from the same deadline, and capped ([`MAX_BODY`]: metadata documents are tiny). Redirects
//! are not followed: a metadata service never sends one, and a redirect elsewhere must not be
//! taken. URLs name an IPv4 address or a host name (minreq cannot reach `[IPv6]` literals, so the
//! configuration refuses them).

use std::io::Read;
use std::time::{Duration, SystemTime};

/// Metadata documents are tiny; anything larger is garbage.
pub const MAX_BODY: usize = 64 * 1024;

/// One answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The server's clock, from its `Date` header.
    pub fn date(&self) -> Option<SystemTime> {
        self.header("date").and_then(crate::time::parse_http_date)
    }

    /// The body as trimmed text (metadata values are plain text).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// A request that produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No HTTP answer: refused, reset, timed out, malformed.
    Transport { detail: String, timed_out: bool },
    /// The body is larger than [`MAX_BODY`].
    TooLarge,
}

impl Error {
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Transport {
                timed_out: true,
                ..
            }
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Transport { detail, .. } => f.write_str(detail),
            Error::TooLarge => write!(f, "body larger than {MAX_BODY} bytes"),
        }
    }
}

/// Methods the metadata services take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
}

/// The stack of minreq's request threads (one per request: see the module doc). They connect,
/// write a request line and read a small answer; the default 2 MiB costs measurably more to
/// map and unmap once a second (BENCHMARKS.md, idle cost).
pub const REQUEST_STACK: usize = 128 * 1024;

/// Makes [`REQUEST_STACK`] the stack of threads spawned without a size (minreq's; ours all
/// give theirs), unless `RUST_MIN_STACK` is set. Call before any thread starts: the runtime
/// reads the variable once, at the first spawn.
pub fn small_default_stacks() {
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        std::env::set_var("RUST_MIN_STACK", REQUEST_STACK.to_string());
    }
}

/// minreq's timeout is whole seconds: round up, at least one.
fn whole_seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// One request to `url` with `headers` and `body`, bounded by `timeout` (counted in `metrics`).
pub fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, Error> {
    let r = exchange(method, url, headers, body, timeout);
    crate::metrics::metadata_request(
        r.as_ref().ok().map(|a| a.status),
        r.as_ref().is_err_and(Error::is_timeout),
    );
    r
}

fn exchange(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, Error> {
    let mut req = match method {
        Method::Get => minreq::get(url),
        Method::Put => minreq::put(url),
        Method::Post => minreq::post(url),
    }
    .with_timeout(whole_seconds(timeout))
    .with_follow_redirects(false)
    .with_max_headers_size(16 * 1024)
    .with_max_status_line_length(1024);
    for (k, v) in headers {
        req = req.with_header(*k, *v);
    }
    if !body.is_empty() {
        req = req.with_body(body.to_vec());
    }
    let lazy = req.send_lazy().map_err(transport)?;
    let status = lazy.status_code;
    let headers = lazy.headers.clone();
    let mut buf = Vec::new();
    lazy.take(MAX_BODY as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| transport(minreq::Error::IoError(e)))?;
    if buf.len() > MAX_BODY {
        return Err(Error::TooLarge);
    }
    Ok(Answer {
        status,
        headers,
        body: buf,
    })
}

fn transport(e: minreq::Error) -> Error {
    let timed_out = matches!(&e, minreq::Error::IoError(io)
        if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock));
    let detail = match &e {
        minreq::Error::IoError(io) if timed_out => format!("timed out ({io})"),
        minreq::Error::IoError(io) => io.to_string(),
        other => other.to_string(),
    };
    Error::Transport { detail, timed_out }
}

/// The difference between a metadata service's clock and ours (positive: ours is behind),
/// when it is larger than the `Date` header's one-second resolution can explain.
pub fn clock_skew(answer: &Answer, local_now: SystemTime) -> Option<Skew> {
    let theirs = answer.date()?;
    let skew = Skew::between(theirs, local_now);
    (skew.abs() > SKEW_TOLERANCE).then_some(skew)
}

/// Clock differences up to this are noise (the header has whole seconds, the request takes time).
pub const SKEW_TOLERANCE: Duration = Duration::from_secs(2);

/// A signed clock difference: their clock minus ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skew {
    ahead: bool,
    by: Duration,
}

impl Skew {
    pub fn between(theirs: SystemTime, ours: SystemTime) -> Skew {
        match theirs.duration_since(ours) {
            Ok(d) => Skew { ahead: true, by: d },
            Err(e) => Skew {
                ahead: false,
                by: e.duration(),
            },
        }
    }

    pub fn abs(&self) -> Duration {
        self.by
    }

    /// Seconds their clock is ahead of ours (negative: behind).
    pub fn seconds(&self) -> f64 {
        if self.ahead {
            self.by.as_secs_f64()
        } else {
            -self.by.as_secs_f64()
        }
    }

    /// A time the service gave, expressed in our clock.
    pub fn to_local(&self, theirs: SystemTime) -> SystemTime {
        if self.ahead {
            theirs.checked_sub(self.by).unwrap_or(theirs)
        } else {
            theirs + self.by
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::time::{Instant, UNIX_EPOCH};

    /// Serves each connection `answer` after reading its request head.
    fn serve(answer: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(4) {
                let Ok(mut s) = s else { return };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = s.write_all(answer);
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn reads_status_headers_body_and_date() {
        let url = serve(b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\nhello");
        let a = send(
            Method::Get,
            &format!("{url}/x"),
            &[],
            b"",
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!((a.status, a.text().as_str()), (200, "hello"));
        assert_eq!(a.date(), crate::time::parse_rfc3339("1994-11-06T08:49:37Z"));
    }

    #[test]
    fn refuses_oversized_bodies_and_redirects_are_not_followed() {
        let big: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                MAX_BODY + 10,
                "x".repeat(MAX_BODY + 10)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let url = serve(big);
        assert_eq!(
            send(Method::Get, &url, &[], b"", Duration::from_secs(2)).unwrap_err(),
            Error::TooLarge
        );
        let url = serve(
            b"HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/\r\nContent-Length: 0\r\n\r\n",
        );
        let a = send(Method::Get, &url, &[], b"", Duration::from_secs(2)).unwrap();
        assert_eq!(a.status, 302);
    }

    #[test]
    fn a_silent_server_times_out_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let started = Instant::now();
        let e = send(Method::Get, &url, &[], b"", Duration::from_secs(1)).unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(l);
    }

    #[test]
    fn skew_is_measured_and_corrected() {
        let ours = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let answer = |date: &str| Answer {
            status: 200,
            headers: vec![("Date".into(), date.into())],
            body: vec![],
        };
        let theirs = ours + Duration::from_secs(300);
        let a = answer(&crate::time::format_http_date(theirs));
        let skew = clock_skew(&a, ours).unwrap();
        assert_eq!(skew.seconds(), 300.0);
        assert_eq!(
            skew.to_local(theirs + Duration::from_secs(120)),
            ours + Duration::from_secs(120)
        );
        let behind = Skew::between(ours - Duration::from_secs(60), ours);
        assert_eq!(behind.to_local(ours), ours + Duration::from_secs(60));
        let small = answer(&crate::time::format_http_date(
            ours + Duration::from_secs(1),
        ));
        assert_eq!(clock_skew(&small, ours), None);
        assert_eq!(clock_skew(&answer("garbage"), ours), None);
    }
}
