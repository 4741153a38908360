//! The metrics and health endpoint (`METRICS_ADDR`): `GET /metrics` (Prometheus text format
//! 0.0.4) and `GET /healthz` (200 or 503 with a one-line reason), nothing else.
//!
//! Small and hard to abuse: one thread blocks in `accept` (no work between scrapes), each
//! connection gets a short-lived thread of its own, at most [`MAX_CONNECTIONS`] at once (more
//! wait in the kernel's listen queue), so a slow or idle client holds one slot for at most
//! [`HEAD_TIMEOUT`] + [`WRITE_TIMEOUT`] and never another client's. The request head is read into
//! a fixed [`HEAD_MAX`]-byte buffer (431 beyond, 400 when malformed, 405 for anything but GET,
//! 408 when it does not arrive in time); bodies are never read; one request per connection. The
//! handler shares nothing with it but atomics, so nothing a client does can delay a drain.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::{self, Limits};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The request line and headers must fit here.
pub const HEAD_MAX: usize = 4096;
/// The whole request head must arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Writing the answer may take this long (a client that does not read).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, what the client still sends is read and dropped for up to this long (and
/// [`LINGER_MAX`] bytes), so that closing does not reset the connection before the answer is read.
const LINGER: Duration = Duration::from_millis(300);
const LINGER_MAX: usize = 256 * 1024;

static BUSY: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// Binds `addr` and serves on a thread of its own. Returns the bound address (port 0 picks one).
pub fn start(addr: SocketAddr, limits: Limits) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .stack_size(64 * 1024)
        .spawn(move || accept_loop(&listener, limits))?;
    Ok(bound)
}

fn lock() -> std::sync::MutexGuard<'static, usize> {
    BUSY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives a connection's slot back when its thread ends.
struct Slot;

impl Drop for Slot {
    fn drop(&mut self) {
        *lock() -= 1;
        FREED.notify_one();
    }
}

fn accept_loop(listener: &TcpListener, limits: Limits) {
    loop {
        {
            let mut busy = lock();
            while *busy >= MAX_CONNECTIONS {
                busy = FREED.wait(busy).unwrap_or_else(|p| p.into_inner());
            }
            *busy += 1;
        }
        let slot = Slot;
        match listener.accept() {
            Ok((stream, _)) => {
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        let _slot = slot;
                        serve(stream, &limits);
                    });
                if spawned.is_err() {
                    // The closure (and with it the stream and the slot) is dropped.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(_) => {
                // Out of descriptors or similar: do not spin.
                drop(slot);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    /// An error answer: status and its one-line text.
    Error(u16, &'static str),
}

/// Reads a request head (all of it, up to the blank line). Pure.
pub fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Error(400, "malformed request line");
    };
    if !version.starts_with(b"HTTP/1.") || method.is_empty() || !target.starts_with(b"/") {
        return Route::Error(400, "malformed request line");
    }
    if method != b"GET" {
        return Route::Error(405, "only GET is served");
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or(target);
    match path {
        b"/metrics" => Route::Metrics,
        b"/healthz" => Route::Health,
        _ => Route::Error(404, "not found: try /metrics or /healthz"),
    }
}

/// Where the head ends (after `\r\n\r\n` or `\n\n`), if it is all in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Reads the head into a fixed buffer within [`HEAD_TIMEOUT`]; `None` when the client left.
fn read_head(s: &mut TcpStream) -> Option<Route> {
    let started = Instant::now();
    let mut buf = [0u8; HEAD_MAX];
    let mut n = 0;
    loop {
        if n == HEAD_MAX {
            return Some(Route::Error(431, "request head larger than 4096 bytes"));
        }
        let left = HEAD_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return Some(Route::Error(408, "request head not received in time"));
        }
        match s.read(&mut buf[n..]) {
            Ok(0) => return None,
            Ok(k) => {
                // The blank line may straddle the previous read.
                let from = n.saturating_sub(3);
                n += k;
                if let Some(end) = head_end(&buf[from..n]) {
                    return Some(route(&buf[..from + end]));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Some(Route::Error(408, "request head not received in time"))
            }
            Err(_) => return None,
        }
    }
}

fn serve(mut s: TcpStream, limits: &Limits) {
    let Some(route) = read_head(&mut s) else {
        return;
    };
    let (code, content_type, body) = match route {
        Route::Metrics => {
            let mut body = String::with_capacity(8 * 1024);
            metrics::render(&mut body);
            (200, "text/plain; version=0.0.4; charset=utf-8", body)
        }
        Route::Health => {
            let v = metrics::health(limits);
            (
                if v.ok() { 200 } else { 503 },
                "text/plain; charset=utf-8",
                format!("{v}\n"),
            )
        }
        Route::Error(code, text) => (code, "text/plain; charset=utf-8", format!("{text}\n")),
    };
    metrics::http_response(code);
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let allow = if code == 405 { "Allow: GET\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
    if s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .is_err()
    {
        return;
    }
    // Read (and drop) what the client still sends, briefly, before closing.
    let _ = s.shutdown(Shutdown::Write);
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < LINGER_MAX {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(k) => drained += k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases: &[(&[u8], Route)] = &[
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Route::Metrics),
            (b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n", Route::Metrics),
            (b"GET /healthz HTTP/1.1\n\n", Route::Health),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                Route::Error(405, "only GET is served"),
            ),
            (
                b"HEAD /healthz HTTP/1.1\r\n\r\n",
                Route::Error(405, "only GET is served"),
            ),
            (
                b"GET / HTTP/1.1\r\n\r\n",
                Route::Error(404, "not found: try /metrics or /healthz"),
            ),
            (
                b"GET /metricsx HTTP/1.1\r\n\r\n",
                Route::Error(404, "not found: try /metrics or /healthz"),
            ),
            (
                b"GET /metrics\r\n\r\n",
                Route::Error(400, "malformed request line"),
            ),
            (
                b"GET  /metrics HTTP/1.1\r\n\r\n",
                Route::Error(400, "malformed request line"),
            ),
            (
                b"GET metrics HTTP/1.1\r\n\r\n",
                Route::Error(400, "malformed request line"),
            ),
            (
                b"GET /metrics SPDY/3\r\n\r\n",
                Route::Error(400, "malformed request line"),
            ),
            (b"\r\n\r\n", Route::Error(400, "malformed request line")),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
