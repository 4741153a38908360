//! HTTP/1.1 over TCP or rustls: the client behind the Kubernetes API, Slack and webhooks.
//!
//! Boundaries, on purpose: no redirects, no compression, no pipelining. Proxies only as an
//! HTTP CONNECT tunnel ([`Proxy`]), and only for endpoints that are given one: Slack and
//! webhooks (`HTTPS_PROXY`/`WEBHOOK_PROXY`, minus `NO_PROXY`), never the
//! Kubernetes API (the metadata services go through minreq, which has no proxy support). A [`Pool`]
//! keeps finished connections open for the next exchange to the same endpoint (keep-alive), so
//! a drain does not pay a TLS handshake per eviction and an idle poll costs no TCP setup; a
//! reused connection that the server closed meanwhile is replaced once, transparently.
//! Every phase (connect, TLS handshake, write, read) of an exchange is bounded by one overall
//! deadline: the handshake is driven explicitly, and every socket read and write (rustls's
//! included) first sets the socket timeout to the time left, so neither a peer that never
//! answers nor one that trickles a byte at a time can hold the caller past it. (Name
//! resolution is the system resolver's, bounded by its own timeouts; the API server and the
//! metadata service are IP addresses.) The body is capped. Bodies may come with `Content-Length`, chunked, or until
//! close (a TLS peer that closes without `close_notify` is tolerated).
//!
//! Errors name the endpoint as `host:port` only: a Slack URL's path is the secret, so it never
//! appears in an error.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Largest response head we accept.
const MAX_HEAD: usize = 64 * 1024;

/// Where requests go: scheme, host, port and the TLS settings for https.
#[derive(Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// Request path prefix (for URLs with a path, e.g. a webhook).
    base_path: String,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// Reach the host through this proxy's CONNECT tunnel.
    proxy: Option<Proxy>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.authority())
    }
}

/// A URL as this client takes it: `http(s)://host[:port][/path[?query]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Empty or starting with `/`, trailing slashes removed.
    pub path: String,
}

impl Url {
    /// Parses and checks a URL. The reasons never quote the URL (a webhook URL is a secret):
    /// the scheme, a host (a DNS name, an IPv4 address or a bracketed IPv6 one), a port from 1
    /// to 65535, no user info, no `?` or `#` before the path, no fragment, no whitespace or
    /// control characters.
    pub fn parse(url: &str) -> Result<Url, &'static str> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace or control characters");
        }
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("it does not start with http:// or https://");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains(['?', '#']) {
            return Err("it has a '?' or '#' before the path");
        }
        if url.contains('#') {
            return Err("it has a fragment ('#')");
        }
        if authority.contains('@') {
            return Err("it has user info (user@host), which is not allowed");
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let end = r.find(']').ok_or("its IPv6 address has no closing ']'")?;
            let host = &r[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("the host in [...] is not an IPv6 address");
            }
            match &r[end + 1..] {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or("something follows the IPv6 address")?,
                    ),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let bracketed = authority.starts_with('[');
        if host.is_empty() {
            return Err("it names no host");
        }
        if !bracketed
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err("the host has characters a host name cannot have");
        }
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err("its port is not a number from 1 to 65535"),
            },
        };
        if https && ServerName::try_from(host.to_string()).is_err() {
            return Err("the host is not a valid TLS server name");
        }
        Ok(Url {
            https,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// A loopback host: 127.0.0.0/8, ::1 or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/path]` (see [`Url::parse`]). `tls` is required for https.
    pub fn parse(url: &str, tls: Option<Arc<ClientConfig>>) -> Result<Endpoint, String> {
        let u = Url::parse(url).map_err(|why| format!("not a usable URL: {why}"))?;
        let tls = if u.https {
            let config = tls.ok_or("https needs a TLS configuration")?;
            let name = ServerName::try_from(u.host.clone())
                .map_err(|_| "the host is not a valid TLS server name".to_string())?;
            Some((config, name))
        } else {
            None
        };
        Ok(Endpoint {
            host: u.host,
            port: u.port,
            base_path: u.path,
            tls,
            proxy: None,
        })
    }

    /// The same endpoint, reached through `proxy` (a CONNECT tunnel).
    pub fn via(mut self, proxy: Option<Proxy>) -> Endpoint {
        self.proxy = proxy;
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `host:port`, safe to log.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The URL's path, without a trailing slash ("" for none).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The `Host` header this endpoint's requests carry (what a request signature covers).
    pub fn host_header(&self) -> String {
        let default = if self.is_tls() { 443 } else { 80 };
        if self.port == default {
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            }
        } else {
            self.authority()
        }
    }
}

/// One request. `path` is appended to the endpoint's base path and may carry a query.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response built in memory, for unit tests of code that judges responses.
    #[cfg(test)]
    pub fn canned(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Response {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The phase an exchange was in when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Handshake,
    Write,
    Read,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Handshake => "TLS handshake",
            Phase::Write => "send request",
            Phase::Read => "read response",
        })
    }
}

#[derive(Debug)]
pub enum ErrorKind {
    TimedOut,
    Io(io::Error),
    /// The server's certificate or the TLS protocol failed.
    Tls(String),
    /// The response is not HTTP/1.x as we understand it.
    Protocol(String),
    BodyTooLarge(usize),
    /// The proxy refused or failed to open the tunnel.
    Proxy(String),
}

/// A failed exchange: the endpoint, the phase and why.
#[derive(Debug)]
pub struct Error {
    pub authority: String,
    pub phase: Phase,
    pub kind: ErrorKind,
}

impl Error {
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::TimedOut)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.phase, self.authority)?;
        match &self.kind {
            ErrorKind::TimedOut => f.write_str("timed out"),
            ErrorKind::Io(e) => write!(f, "{e}"),
            ErrorKind::Tls(e) => write!(f, "{e}"),
            ErrorKind::Protocol(e) => write!(f, "malformed HTTP response: {e}"),
            ErrorKind::BodyTooLarge(n) => write!(f, "response body larger than {n} bytes"),
            ErrorKind::Proxy(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

enum Stream {
    Plain(TcpStream),
    /// The TLS state and its socket, kept apart so that every socket operation rustls makes
    /// goes through [`Timed`].
    Tls(Box<ClientConnection>, TcpStream),
}

/// The socket of a stream, every read and write bounded by `deadline`: each one first sets the
/// socket's timeout to the time left (and fails with `TimedOut` once none is left), so a peer
/// that never answers, or trickles one byte at a time, cannot hold the caller past it.
struct Timed<'a> {
    tcp: &'a TcpStream,
    deadline: Instant,
}

fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline reached"))
    } else {
        Ok(left)
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(time_left(self.deadline)?))?;
        let mut tcp = self.tcp;
        tcp.read(buf)
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp
            .set_write_timeout(Some(time_left(self.deadline)?))?;
        let mut tcp = self.tcp;
        tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stream whose every read and write, TLS records included, is bounded by `deadline`.
struct Bounded {
    stream: Stream,
    deadline: Instant,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.deadline;
        match &mut self.stream {
            Stream::Plain(s) => Timed { tcp: s, deadline }.read(buf),
            Stream::Tls(conn, s) => {
                rustls::Stream::new(&mut **conn, &mut Timed { tcp: s, deadline }).read(buf)
            }
        }
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let deadline = self.deadline;
        match &mut self.stream {
            Stream::Plain(s) => Timed { tcp: s, deadline }.write(buf),
            Stream::Tls(conn, s) => {
                rustls::Stream::new(&mut **conn, &mut Timed { tcp: s, deadline }).write(buf)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        let deadline = self.deadline;
        match &mut self.stream {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(conn, s) => {
                rustls::Stream::new(&mut **conn, &mut Timed { tcp: s, deadline }).flush()
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// An idle connection older than this is closed instead of reused (servers time idle
/// connections out; the Kubernetes API server after 90 s or more).
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// Connections to one endpoint, kept open between exchanges (HTTP/1.1 keep-alive).
pub struct Pool {
    ep: Endpoint,
    idle: Mutex<Vec<(Stream, Instant)>>,
    /// How many idle connections to keep; 0 sends `Connection: close` and keeps none.
    max_idle: usize,
}

/// How one attempt on one connection ended, when it did not produce a response.
enum Failure {
    /// A reused connection turned out closed before any byte of a response: try a new one.
    Stale,
    Failed(Error),
}

impl Pool {
    pub fn new(ep: Endpoint, max_idle: usize) -> Pool {
        Pool {
            ep,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Sends `req` and reads the whole response, all within `timeout`: on an idle connection
    /// when there is one (replaced once if the server had closed it), else on a new one.
    pub fn exchange(
        &self,
        req: &Request<'_>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response, Error> {
        let deadline = Instant::now() + timeout;
        if let Some(stream) = self.take_idle() {
            match self.exchange_on(stream, true, req, deadline, max_body) {
                Ok(resp) => return Ok(resp),
                Err(Failure::Failed(e)) => return Err(e),
                Err(Failure::Stale) => {}
            }
        }
        let stream = self.open(deadline)?;
        match self.exchange_on(stream, false, req, deadline, max_body) {
            Ok(resp) => Ok(resp),
            Err(Failure::Failed(e)) => Err(e),
            Err(Failure::Stale) => Err(self.fail(
                Phase::Read,
                ErrorKind::Protocol("connection closed before the response".to_string()),
            )),
        }
    }

    /// Closes the idle connections (e.g. once a drain is over).
    pub fn close_idle(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Stream, Instant)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_idle(&self) -> Option<Stream> {
        let mut idle = self.lock();
        idle.retain(|(_, since)| since.elapsed() < MAX_IDLE_AGE);
        idle.pop().map(|(s, _)| s)
    }

    fn fail(&self, phase: Phase, kind: ErrorKind) -> Error {
        Error {
            authority: self.ep.authority(),
            phase,
            kind,
        }
    }

    fn io_fail(&self, phase: Phase, e: io::Error) -> Error {
        if is_timeout(&e) {
            return self.fail(phase, ErrorKind::TimedOut);
        }
        // rustls reports certificate problems as io errors wrapping a rustls::Error.
        if let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return self.fail(Phase::Handshake, ErrorKind::Tls(tls.to_string()));
        }
        self.fail(phase, ErrorKind::Io(e))
    }

    /// A new connection, the TLS handshake done, all within `deadline`.
    fn open(&self, deadline: Instant) -> Result<Stream, Error> {
        let tcp = match &self.ep.proxy {
            None => connect(&self.ep.host, self.ep.port, deadline)
                .map_err(|e| self.io_fail(Phase::Connect, e))?,
            Some(p) => self.tunnel(p, deadline)?,
        };
        let _ = tcp.set_nodelay(true);
        Ok(match &self.ep.tls {
            None => Stream::Plain(tcp),
            Some((config, name)) => {
                let mut conn = ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| self.fail(Phase::Handshake, ErrorKind::Tls(e.to_string())))?;
                // Explicitly, not inside the first write: each of its reads and writes is
                // bounded by the deadline, and a failure is reported as the handshake's.
                let mut io = Timed {
                    tcp: &tcp,
                    deadline,
                };
                while conn.is_handshaking() {
                    conn.complete_io(&mut io)
                        .map_err(|e| self.io_fail(Phase::Handshake, e))?;
                }
                Stream::Tls(Box::new(conn), tcp)
            }
        })
    }

    /// A TCP connection to the proxy, turned into a tunnel to the endpoint by `CONNECT`.
    fn tunnel(&self, p: &Proxy, deadline: Instant) -> Result<TcpStream, Error> {
        let via = |what: String| {
            self.fail(
                Phase::Connect,
                ErrorKind::Proxy(format!("proxy {}:{}: {what}", p.host, p.port)),
            )
        };
        let tcp = connect(&p.host, p.port, deadline).map_err(|e| {
            if is_timeout(&e) {
                self.fail(Phase::Connect, ErrorKind::TimedOut)
            } else {
                via(e.to_string())
            }
        })?;
        let target = self.ep.authority();
        let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(a) = &p.auth {
            head.push_str("Proxy-Authorization: Basic ");
            head.push_str(a.expose());
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut s = Bounded {
            stream: Stream::Plain(tcp),
            deadline,
        };
        let io = |e: io::Error| {
            if is_timeout(&e) {
                self.fail(Phase::Connect, ErrorKind::TimedOut)
            } else {
                via(e.to_string())
            }
        };
        s.write_all(head.as_bytes()).map_err(io)?;
        // The answer's head, byte by byte: nothing after it may be consumed (it is the target's).
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") && !answer.ends_with(b"\n\n") {
            if answer.len() > 8192 || s.read(&mut byte).map_err(io)? == 0 {
                return Err(via("closed the connection before answering CONNECT".into()));
            }
            answer.push(byte[0]);
        }
        let status = String::from_utf8_lossy(&answer);
        let line = status.lines().next().unwrap_or("").trim();
        let code = line.split_whitespace().nth(1).unwrap_or("");
        if !line.starts_with("HTTP/1.") || !code.starts_with('2') {
            return Err(via(format!("CONNECT answered {line:?}")));
        }
        match s.stream {
            Stream::Plain(t) => Ok(t),
            Stream::Tls(..) => unreachable!("the tunnel starts plain"),
        }
    }

    fn exchange_on(
        &self,
        stream: Stream,
        reused: bool,
        req: &Request<'_>,
        deadline: Instant,
        max_body: usize,
    ) -> Result<Response, Failure> {
        let mut s = Bounded { stream, deadline };
        let head = request_head(&self.ep, req, self.max_idle == 0);
        let written = s
            .write_all(head.as_bytes())
            .and_then(|_| s.write_all(req.body))
            .and_then(|_| s.flush());
        if let Err(e) = written {
            if reused && is_closed(&e) {
                return Err(Failure::Stale);
            }
            return Err(Failure::Failed(self.io_fail(Phase::Write, e)));
        }
        match read_response(&mut s, req.method == "HEAD", max_body) {
            Ok((resp, reusable)) => {
                if reusable && self.max_idle > 0 {
                    let mut idle = self.lock();
                    if idle.len() < self.max_idle {
                        idle.push((s.stream, Instant::now()));
                    }
                }
                Ok(resp)
            }
            Err(ReadError::Closed) if reused => Err(Failure::Stale),
            Err(ReadError::Closed) => Err(Failure::Failed(self.fail(
                Phase::Read,
                ErrorKind::Protocol("connection closed before the response".to_string()),
            ))),
            Err(ReadError::Io(e)) => Err(Failure::Failed(self.io_fail(Phase::Read, e))),
            Err(ReadError::Protocol(m)) => Err(Failure::Failed(
                self.fail(Phase::Read, ErrorKind::Protocol(m)),
            )),
            Err(ReadError::TooLarge(n)) => Err(Failure::Failed(
                self.fail(Phase::Read, ErrorKind::BodyTooLarge(n)),
            )),
        }
    }
}

/// One exchange on a connection of its own (`Connection: close`), for one-off requests.
pub fn exchange(
    ep: &Endpoint,
    req: &Request<'_>,
    timeout: Duration,
    max_body: usize,
) -> Result<Response, Error> {
    Pool::new(ep.clone(), 0).exchange(req, timeout, max_body)
}

/// The peer closed the connection (as a server does with an idle keep-alive connection).
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn connect(host: &str, port: u16, deadline: Instant) -> io::Result<TcpStream> {
    let addrs: Vec<_> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolved to no address",
    );
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline reached"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn request_head(ep: &Endpoint, req: &Request<'_>, close: bool) -> String {
    // A URL without a path asks for `/` (an empty request target is malformed).
    let slash = if ep.base_path.is_empty() && !req.path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut head = format!(
        "{} {slash}{}{} HTTP/1.1\r\nHost: {}\r\n",
        req.method,
        ep.base_path,
        req.path,
        ep.host_header()
    );
    for (k, v) in req.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if !req.body.is_empty() || matches!(req.method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

enum ReadError {
    /// The connection ended (EOF or reset) before any byte of a response.
    Closed,
    Io(io::Error),
    Protocol(String),
    TooLarge(usize),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// A small buffered reader that also knows how to end at a peer's unclean TLS close.
struct Reader<'a, R: Read> {
    inner: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<R: Read> Reader<'_, R> {
    /// Reads more bytes into the buffer; returns false at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        // Drop what was consumed, so the buffer holds at most one line or one read (a long
        // chunked body must not accumulate in it).
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        let n = match self.inner.read(&mut chunk) {
            Ok(n) => n,
            // A peer that closes without TLS close_notify: treat as the end of the stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// One line ending in CRLF (or LF), without its terminator.
    fn line(&mut self, limit: usize) -> Result<String, ReadError> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                // The same limit however the bytes arrived (in one read or many).
                if i > limit {
                    return Err(ReadError::Protocol("line too long".to_string()));
                }
                let raw = &self.buf[self.pos..self.pos + i];
                let line =
                    String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.available().len() > limit {
                return Err(ReadError::Protocol("line too long".to_string()));
            }
            if !self.fill()? {
                return Err(ReadError::Protocol(
                    "connection closed before the end of the response".to_string(),
                ));
            }
        }
    }

    /// Appends exactly `n` bytes to `out`.
    fn exact(&mut self, mut n: usize, out: &mut Vec<u8>) -> Result<(), ReadError> {
        while n > 0 {
            if self.available().is_empty() && !self.fill()? {
                return Err(ReadError::Protocol(
                    "connection closed inside the body".to_string(),
                ));
            }
            let take = n.min(self.available().len());
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }
}

/// [`read_response`] for the fuzzers (`fuzz/`): any `Read`, errors as text. Generic and unused
/// by the binary, so it adds nothing to it.
#[doc(hidden)]
pub fn read_response_from<R: Read>(
    inner: &mut R,
    head_only: bool,
    max_body: usize,
) -> Result<(Response, bool), String> {
    read_response(inner, head_only, max_body).map_err(|e| match e {
        ReadError::Closed => "closed".to_string(),
        ReadError::Io(e) => format!("io: {e}"),
        ReadError::Protocol(m) => format!("protocol: {m}"),
        ReadError::TooLarge(n) => format!("too large: {n}"),
    })
}

/// Reads one response; the flag says whether the connection can carry another exchange.
fn read_response<R: Read>(
    inner: &mut R,
    head_only: bool,
    max_body: usize,
) -> Result<(Response, bool), ReadError> {
    let mut r = Reader {
        inner,
        buf: Vec::with_capacity(8192),
        pos: 0,
        eof: false,
    };
    match r.fill() {
        Ok(true) => {}
        Ok(false) => return Err(ReadError::Closed),
        Err(e) if is_closed(&e) => return Err(ReadError::Closed),
        Err(e) => return Err(ReadError::Io(e)),
    }
    // Every head, interim ones (1xx) included, counts against MAX_HEAD: a server cannot keep us
    // reading heads.
    let mut head_len = 0usize;
    let (status, headers, http11) = loop {
        let status_line = r.line(MAX_HEAD)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..1000).contains(c));
        let Some(code) = code.filter(|_| version.starts_with("HTTP/1.")) else {
            return Err(ReadError::Protocol(format!(
                "bad status line {:?}",
                crate::json::snippet(status_line.as_bytes())
            )));
        };
        let mut headers = Vec::new();
        head_len += status_line.len() + 2;
        loop {
            let line = r.line(MAX_HEAD)?;
            head_len += line.len() + 2;
            if head_len > MAX_HEAD {
                return Err(ReadError::Protocol("response head too large".to_string()));
            }
            if line.is_empty() {
                break;
            }
            // A bare CR inside a field is invalid (RFC 9112, section 2.2).
            if line.contains('\r') {
                return Err(ReadError::Protocol("bare CR in a header line".to_string()));
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| ReadError::Protocol("header line without ':'".to_string()))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        // Skip interim 1xx responses (100 Continue); 101 is never asked for.
        if !(100..200).contains(&code) {
            break (code, headers, version == "HTTP/1.1");
        }
    };
    let resp = |body| Response {
        status,
        headers: headers.clone(),
        body,
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let keep_alive =
        http11 && !header("connection").is_some_and(|c| c.to_ascii_lowercase().contains("close"));
    if head_only || status == 204 || status == 304 {
        return Ok((resp(Vec::new()), keep_alive && r.available().is_empty()));
    }
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        loop {
            let size_line = r.line(1024)?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| ReadError::Protocol(format!("bad chunk size {size_hex:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line, within the head's limit.
                let mut trailers = 0usize;
                loop {
                    let line = r.line(MAX_HEAD)?;
                    if line.is_empty() {
                        break;
                    }
                    trailers += line.len() + 2;
                    if trailers > MAX_HEAD {
                        return Err(ReadError::Protocol("trailers too large".to_string()));
                    }
                }
                break;
            }
            if body.len().saturating_add(size) > max_body {
                return Err(ReadError::TooLarge(max_body));
            }
            r.exact(size, &mut body)?;
            if !r.line(16)?.is_empty() {
                return Err(ReadError::Protocol(
                    "chunk not followed by CRLF".to_string(),
                ));
            }
        }
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Protocol(format!("bad Content-Length {len:?}")))?;
        if len > max_body {
            return Err(ReadError::TooLarge(max_body));
        }
        body.reserve_exact(len);
        r.exact(len, &mut body)?;
    } else {
        // Until the server closes the connection.
        loop {
            body.extend_from_slice(r.available());
            r.pos = r.buf.len();
            if body.len() > max_body {
                return Err(ReadError::TooLarge(max_body));
            }
            if !r.fill()? {
                break;
            }
        }
        // The end of the body was the end of the connection.
        return Ok((resp(body), false));
    }
    Ok((resp(body), keep_alive && r.available().is_empty()))
}

/// An HTTP proxy (`http://[user:password@]host[:port]`, port 1080 by default as in curl),
/// used through `CONNECT`. The credentials become `Proxy-Authorization: Basic`; they are a
/// secret: `Debug` shows only `http://<redacted>@host:port`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// base64 of `user:password`.
    auth: Option<crate::config::Secret>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.auth.is_some() {
            "<redacted>@"
        } else {
            ""
        };
        write!(f, "http://{auth}{}:{}", self.host, self.port)
    }
}

impl Proxy {
    /// Parses a proxy URL. The error never repeats the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<Proxy, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            None => url,
            Some(("http", r)) => r,
            Some(_) => return Err("an http:// proxy URL (a CONNECT proxy)".into()),
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (auth, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, h)) => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let (u, p) = percent_decode(u)
                    .zip(percent_decode(p))
                    .ok_or("proxy credentials percent-encoded as in a URL (user:password@)")?;
                let token = base64(format!("{u}:{p}").as_bytes());
                (Some(crate::config::Secret::new(token)), h)
            }
            None => (None, authority),
        };
        let bad = "an http:// proxy URL naming a host, with an optional port";
        let url = Url::parse(&format!("http://{hostport}")).map_err(|_| bad)?;
        // A proxy URL without a port means 1080, as curl; Url::parse would say 80.
        let explicit = hostport
            .rsplit_once(']')
            .map_or(hostport, |(_, r)| r)
            .contains(':');
        let (host, port) = (url.host, if explicit { url.port } else { 1080 });
        Ok(Proxy { host, port, auth })
    }
}

/// Which proxy, if any, Slack and webhook requests take: `WEBHOOK_PROXY` for all of them,
/// else `HTTPS_PROXY` for https URLs (as curl, an http URL goes direct then); none for a host
/// that `NO_PROXY` names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub webhook: Option<Proxy>,
    pub https: Option<Proxy>,
    pub no_proxy: String,
}

impl ProxySettings {
    pub fn for_url(&self, https: bool, host: &str) -> Option<Proxy> {
        if no_proxy_matches(&self.no_proxy, host) {
            return None;
        }
        let p = self.https.as_ref().filter(|_| https);
        self.webhook.as_ref().or(p).cloned()
    }
}

/// curl's `NO_PROXY` rules: a comma-separated list of host names (each also matches its
/// subdomains; a leading dot is ignored), IP addresses, CIDR ranges (`10.0.0.0/8`, `fd00::/8`),
/// or `*` for every host. Case-insensitive; ports are not part of the match.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    use std::net::IpAddr;
    let bare = |h: &str| {
        h.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    let host = bare(host);
    let host_ip: Option<IpAddr> = host.parse().ok();
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32u32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    list.split(',').any(|entry| {
        let entry = entry.trim();
        if entry == "*" {
            return true;
        }
        let (net, len) = match entry.split_once('/') {
            Some((n, l)) => (bare(n), l.trim().parse::<u32>().ok()),
            None => (bare(entry), None),
        };
        if let (Ok(net), Some(h)) = (net.parse::<IpAddr>(), host_ip) {
            let ((n, width), (h, hw)) = (bits(net), bits(h));
            let len = len.unwrap_or(width).min(width);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            return width == hw && n & mask == h & mask;
        }
        let name = net.strip_prefix('.').unwrap_or(&net);
        !name.is_empty()
            && len.is_none()
            && (host == name
                || (host.ends_with(name) && host[..host.len() - name.len()].ends_with('.')))
    })
}

/// `%XX` escapes decoded (user info of a URL); `None` when not valid UTF-8 or malformed.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Standard base64 with padding (RFC 4648), for `Basic` credentials.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// TLS client settings trusting exactly the certificates in a PEM bundle (the cluster CA).
pub fn tls_config_from_pem(path: &std::path::Path) -> Result<Arc<ClientConfig>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut added, mut bad) = (0, 0);
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        match roots.add(cert) {
            Ok(()) => added += 1,
            Err(_) => bad += 1,
        }
    }
    if added == 0 {
        return Err(format!(
            "{}: expected at least one PEM certificate, found {} usable ({} rejected)",
            path.display(),
            added,
            bad
        ));
    }
    client_config(roots)
}

/// TLS client settings trusting the Mozilla roots compiled into the binary (for webhooks).
pub fn tls_config_public() -> Result<Arc<ClientConfig>, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    client_config(roots)
}

fn client_config(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, String> {
    // TLS 1.3 only, AES-GCM (mandatory in TLS 1.3) and three groups: what every peer we talk
    // to speaks, for 45 KB less binary than the full default provider (README, Dependencies).
    use rustls::crypto::ring::{cipher_suite, kx_group};
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..rustls::crypto::ring::default_provider()
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_keep(raw: &[u8], max: usize) -> Result<(Response, bool), String> {
        let mut cursor = io::Cursor::new(raw.to_vec());
        read_response(&mut cursor, false, max).map_err(|e| match e {
            ReadError::Closed => "closed".to_string(),
            ReadError::Io(e) => format!("io: {e}"),
            ReadError::Protocol(m) => format!("protocol: {m}"),
            ReadError::TooLarge(n) => format!("too large: {n}"),
        })
    }

    fn parse(raw: &[u8], max: usize) -> Result<Response, String> {
        parse_keep(raw, max).map(|(r, _)| r)
    }

    #[test]
    fn says_when_a_connection_can_be_reused() {
        let cases: &[(&[u8], bool)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", true),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                true,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", true),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 2\r\n\r\n{}",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", false),
            (b"HTTP/1.1 200 OK\r\n\r\nuntil close", false),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK",
                false,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse_keep(raw, 100).unwrap().1,
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            parse_keep(b"", 100).unwrap_err(),
            "closed",
            "EOF before any byte"
        );
    }

    #[test]
    fn content_length_body() {
        let r = parse(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}extra", 100).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(parse(raw, 100).unwrap().body, b"Wikipedia");
    }

    #[test]
    fn body_until_close_and_interim_responses() {
        let r = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\n\nhello",
            100,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }

    #[test]
    fn refuses_bad_and_oversized_responses() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
                "protocol: connection closed inside the body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                "too large: 100",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfff\r\n",
                "too large: 100",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "protocol: bad chunk size \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
                "protocol: chunk not followed by CRLF",
            ),
            (
                b"SSH-2.0-OpenSSH\r\n\r\n",
                "protocol: bad status line \"SSH-2.0-OpenSSH\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n",
                "protocol: header line without ':'",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "protocol: bad Content-Length \"x\"",
            ),
            (
                b"HTTP/1.1 200",
                "protocol: connection closed before the end of the response",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse(raw, 100).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let long = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            &vec![b'a'; MAX_HEAD + 10],
        ]
        .concat();
        assert_eq!(parse(&long, 100).unwrap_err(), "protocol: line too long");
    }

    /// Hands out `data` one byte per read, as a trickling TCP peer can.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// `head` once, then `tail` forever; counts what was read.
    struct Endless {
        head: Vec<u8>,
        tail: &'static [u8],
        read: usize,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut n = 0;
            while n < buf.len() {
                let i = self.read + n;
                buf[n] = match self.head.get(i) {
                    Some(b) => *b,
                    None => self.tail[(i - self.head.len()) % self.tail.len()],
                };
                n += 1;
            }
            self.read += n;
            Ok(n)
        }
    }

    #[test]
    fn the_answer_does_not_depend_on_how_the_bytes_arrive() {
        // Seen while writing the fuzz target's check of this (fuzz/fuzz_targets/http_response.rs):
        // a chunk-size line longer than its 1 KiB limit passed when it came in one read and
        // failed when it trickled.
        let long_ext = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;".as_slice(),
            &[b'e'; 1500],
            b"\r\n{}\r\n0\r\n\r\n",
        ]
        .concat();
        let whole = parse(&long_ext, 100);
        let trickled = read_response(&mut Trickle(&long_ext), false, 100).map(|(r, _)| r.body);
        assert_eq!(whole.unwrap_err(), "protocol: line too long");
        assert!(trickled.is_err());
        let ok = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;e=1\r\n{}\r\n0\r\n\r\n";
        let trickled = read_response(&mut Trickle(ok), false, 100)
            .ok()
            .map(|(r, _)| r.body);
        assert_eq!(trickled.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn a_bare_cr_in_a_header_is_refused() {
        // Found by the fuzzer (fuzz/fuzz_targets/http_response.rs): a CR inside a header line
        // was kept in the header's value.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: a\rb\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(
            parse(raw, 100).unwrap_err(),
            "protocol: bare CR in a header line"
        );
    }

    #[test]
    fn endless_trailers_or_interim_heads_are_refused_after_max_head() {
        for (head, tail) in [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec(),
                b"X-Trailer: 1\r\n".as_slice(),
            ),
            (
                Vec::new(),
                b"HTTP/1.1 100 Continue\r\nX: 1\r\n\r\n".as_slice(),
            ),
        ] {
            let mut peer = Endless {
                head,
                tail,
                read: 0,
            };
            assert!(read_response(&mut peer, false, 100).is_err());
            assert!(peer.read <= 2 * MAX_HEAD, "read {} bytes", peer.read);
        }
    }

    #[test]
    fn the_read_buffer_stays_small_over_a_long_chunked_body() {
        // 1-byte chunks with 1000-byte extensions: read boundaries fall inside size lines,
        // where the buffer used to keep every byte read so far.
        let chunk = [b"1;".as_slice(), &[b'e'; 1000], b"\r\nA\r\n"].concat();
        let mut peer = Endless {
            head: Vec::new(),
            tail: chunk.leak(),
            read: 0,
        };
        let mut r = Reader {
            inner: &mut peer,
            buf: Vec::new(),
            pos: 0,
            eof: false,
        };
        let mut body = Vec::new();
        for _ in 0..3000 {
            r.line(1024).ok().unwrap();
            r.exact(1, &mut body).ok().unwrap();
            r.line(16).ok().unwrap();
            assert!(
                r.buf.len() <= 1024 + 8192 + 8,
                "buffer of {} bytes",
                r.buf.len()
            );
        }
        assert_eq!(body.len(), 3000);
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080/services/T/B/secret/", None).unwrap();
        assert_eq!(
            (e.authority(), e.base_path.as_str(), e.host_header()),
            (
                "127.0.0.1:8080".to_string(),
                "/services/T/B/secret",
                "127.0.0.1:8080".to_string()
            )
        );
        assert_eq!(
            format!("{e:?}"),
            "127.0.0.1:8080",
            "debug form never shows the secret path"
        );
        let e = Endpoint::parse("http://[fd00::1]", None).unwrap();
        assert_eq!(
            (e.authority(), e.host_header()),
            ("[fd00::1]:80".to_string(), "[fd00::1]".to_string())
        );
        assert!(Endpoint::parse("https://h", None).is_err());
        assert!(Endpoint::parse("ftp://h", None).is_err());
        assert!(Endpoint::parse("http://h:0", None).is_err());
        assert!(Endpoint::parse("http://user:pw@h", None).is_err());
        let tls = tls_config_public().unwrap();
        let e = Endpoint::parse("https://10.96.0.1", Some(tls)).unwrap();
        assert!(e.is_tls());
        assert_eq!(e.authority(), "10.96.0.1:443");
    }

    #[test]
    fn urls_table() {
        let ok = |u: &str| Url::parse(u).unwrap();
        assert_eq!(
            ok("https://10.96.0.1"),
            Url {
                https: true,
                host: "10.96.0.1".into(),
                port: 443,
                path: String::new()
            }
        );
        assert_eq!(ok("http://[::1]:8001/api/").path, "/api");
        assert_eq!(ok("http://[::1]:8001/api/").host, "::1");
        assert_eq!(ok("http://h:65535/x?y=1").port, 65535);
        assert_eq!(ok("http://h/x?y=1").path, "/x?y=1");
        let cases: &[(&str, &str)] = &[
            ("ftp://h", "it does not start with http:// or https://"),
            ("h:80", "it does not start with http:// or https://"),
            ("http://", "it names no host"),
            ("http://:80", "it names no host"),
            ("http://h:0", "its port is not a number from 1 to 65535"),
            ("http://h:65536", "its port is not a number from 1 to 65535"),
            ("http://h:+80", "its port is not a number from 1 to 65535"),
            ("http://h:", "its port is not a number from 1 to 65535"),
            ("http://h:80:80", "its port is not a number from 1 to 65535"),
            (
                "http://user:pw@h",
                "it has user info (user@host), which is not allowed",
            ),
            ("http://h?x=1", "it has a '?' or '#' before the path"),
            ("http://h#x", "it has a '?' or '#' before the path"),
            ("http://h/p#x", "it has a fragment ('#')"),
            (
                "http://h /p",
                "it contains whitespace or control characters",
            ),
            (
                "http://h/p\n",
                "it contains whitespace or control characters",
            ),
            ("http://fd00::1", "its port is not a number from 1 to 65535"),
            ("http://[fd00::1", "its IPv6 address has no closing ']'"),
            (
                "http://[nope]:1",
                "the host in [...] is not an IPv6 address",
            ),
            ("http://[::1]x", "something follows the IPv6 address"),
            (
                "http://h%41",
                "the host has characters a host name cannot have",
            ),
            ("https://a..b", "the host is not a valid TLS server name"),
        ];
        for (url, why) in cases {
            assert_eq!(Url::parse(url), Err(*why), "{url}");
        }
        for (url, lo) in [
            ("http://127.0.0.1:8001", true),
            ("http://127.1.2.3", true),
            ("http://[::1]:8001", true),
            ("http://LocalHost:8001", true),
            ("http://10.0.0.1:8001", false),
            ("http://localhost.example.com", false),
            ("http://[::ffff:10.0.0.1]", false),
        ] {
            assert_eq!(Url::parse(url).unwrap().is_loopback(), lo, "{url}");
        }
    }

    #[test]
    fn a_url_without_a_path_asks_for_slash() {
        let get = |path| Request {
            method: "GET",
            path,
            headers: &[],
            body: b"",
        };
        let bare = Endpoint::parse("http://169.254.169.254", None).unwrap();
        assert!(request_head(&bare, &get(""), false).starts_with("GET / HTTP/1.1\r\n"));
        assert!(request_head(&bare, &get("/latest"), false).starts_with("GET /latest HTTP/1.1\r\n"));
        let slash = Endpoint::parse("http://h:1/", None).unwrap();
        assert!(request_head(&slash, &get(""), false).starts_with("GET / HTTP/1.1\r\n"));
        let hook = Endpoint::parse("http://h:1/services/T/B/x", None).unwrap();
        assert!(
            request_head(&hook, &get(""), false).starts_with("GET /services/T/B/x HTTP/1.1\r\n")
        );
    }

    #[test]
    fn request_head_has_length_and_close() {
        let e = Endpoint::parse("http://h:1/base", None).unwrap();
        let req = Request {
            method: "PATCH",
            path: "/x?y=1",
            headers: &[("Accept", "application/json")],
            body: b"{}",
        };
        assert_eq!(
            request_head(&e, &req, true),
            "PATCH /base/x?y=1 HTTP/1.1\r\nHost: h:1\r\nAccept: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        assert!(request_head(&e, &req, false).ends_with("Content-Length: 2\r\n\r\n"));
    }

    /// A server that answers each request on a connection with `answers[i]`, then closes the
    /// connection after `per_conn` answers. Returns its address and a count of connections.
    fn server(per_conn: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = conns.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                for _ in 0..per_conn {
                    let mut line = String::new();
                    // Read one request head.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let body = format!("conn {n}");
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        (addr, conns)
    }

    #[test]
    fn a_pool_reuses_connections_and_replaces_closed_ones() {
        let get = Request {
            method: "GET",
            path: "/",
            headers: &[],
            body: b"",
        };
        // Keep-alive: three exchanges, one connection.
        let (addr, conns) = server(100);
        let pool = Pool::new(Endpoint::parse(&format!("http://{addr}"), None).unwrap(), 1);
        for _ in 0..3 {
            let r = pool.exchange(&get, Duration::from_secs(5), 100).unwrap();
            assert_eq!(r.body, b"conn 1");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A server that closes after each answer: the stale connection is replaced, no error.
        let (addr, conns) = server(1);
        let pool = Pool::new(Endpoint::parse(&format!("http://{addr}"), None).unwrap(), 1);
        for i in 1..=3 {
            let r = pool.exchange(&get, Duration::from_secs(5), 100).unwrap();
            assert_eq!(r.body, format!("conn {i}").as_bytes());
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
        // max_idle 0: nothing is kept.
        let (addr, conns) = server(100);
        let ep = Endpoint::parse(&format!("http://{addr}"), None).unwrap();
        for _ in 0..2 {
            exchange(&ep, &get, Duration::from_secs(5), 100).unwrap();
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Runs `exchange` on a thread; fails the test if it has not returned within `limit`
    /// (instead of hanging the suite when the bound is missing).
    fn bounded_exchange(ep: Endpoint, timeout: Duration, limit: Duration) -> (Error, Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let req = Request {
                method: "GET",
                path: "/",
                headers: &[],
                body: b"",
            };
            let t = Instant::now();
            let r = exchange(&ep, &req, timeout, 100);
            let _ = tx.send((r.map(|r| r.status), t.elapsed()));
        });
        match rx.recv_timeout(limit) {
            Ok((Err(e), took)) => (e, took),
            Ok((Ok(status), _)) => panic!("a hostile peer answered HTTP {status}"),
            Err(_) => panic!("the exchange was still running after {limit:?}: not bounded"),
        }
    }

    #[test]
    fn a_tls_peer_that_never_answers_times_out_in_the_handshake() {
        let hole = stnh_sim::hostile::BlackHole::start().unwrap();
        let ep = Endpoint::parse(
            &format!("https://{}", hole.addr()),
            Some(tls_config_public().unwrap()),
        )
        .unwrap();
        let (err, took) = bounded_exchange(ep, Duration::from_millis(300), Duration::from_secs(10));
        assert!(err.is_timeout(), "{err}");
        assert_eq!(err.phase, Phase::Handshake, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(hole.connections(), 1);
    }

    #[test]
    fn a_trickling_peer_cannot_stretch_an_exchange_past_its_deadline() {
        use stnh_sim::hostile::Trickle;
        // Every read gets a byte well within any per-read timeout; only the exchange's
        // deadline can end it.
        let every = Duration::from_millis(50);
        // TLS: a handshake record header, then its body one byte at a time.
        let tls = Trickle::start(&[0x16, 0x03, 0x03, 0x40, 0x00], 0, every).unwrap();
        let ep = Endpoint::parse(
            &format!("https://{}", tls.addr()),
            Some(tls_config_public().unwrap()),
        )
        .unwrap();
        let (err, took) = bounded_exchange(ep, Duration::from_millis(600), Duration::from_secs(10));
        assert!(err.is_timeout(), "{err}");
        assert_eq!(err.phase, Phase::Handshake, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Plain HTTP: a response head that never ends.
        let http = Trickle::start(b"HTTP/1.1 200 OK\r\nX-Slow: ", b'a', every).unwrap();
        let ep = Endpoint::parse(&format!("http://{}", http.addr()), None).unwrap();
        let (err, took) = bounded_exchange(ep, Duration::from_millis(600), Duration::from_secs(10));
        assert!(err.is_timeout(), "{err}");
        assert_eq!(err.phase, Phase::Read, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_reset_during_the_handshake_is_an_error_at_once() {
        use stnh_sim::hostile::{Proxy, ProxyMode};
        let hole = stnh_sim::hostile::BlackHole::start().unwrap();
        let proxy = Proxy::start(hole.addr()).unwrap();
        proxy.set_mode(ProxyMode::Reset);
        let ep = Endpoint::parse(
            &format!("https://{}", proxy.addr()),
            Some(tls_config_public().unwrap()),
        )
        .unwrap();
        let (err, took) = bounded_exchange(ep, Duration::from_secs(5), Duration::from_secs(10));
        assert!(!err.is_timeout(), "{err}");
        assert_eq!(err.phase, Phase::Handshake, "{err}");
        assert!(err.to_string().contains("reset"), "{err}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert_eq!(proxy.resets(), 1);
    }

    #[test]
    fn connect_refused_and_timeout_are_reported_with_phase() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let req = Request {
            method: "GET",
            path: "/",
            headers: &[],
            body: b"",
        };
        let err = exchange(&e, &req, Duration::from_secs(2), 100).unwrap_err();
        assert_eq!(err.phase, Phase::Connect);

        // A server that accepts and never answers: the read phase times out at the deadline.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e =
            Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap()), None).unwrap();
        let t = Instant::now();
        let err = exchange(&e, &req, Duration::from_millis(300), 100).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(err.phase, Phase::Read);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "bounded by the deadline"
        );
        drop(listener);
    }

    #[test]
    fn no_proxy_matches_like_curl() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "hooks.slack.com", false),
            ("*", "hooks.slack.com", true),
            ("slack.com", "hooks.slack.com", true),
            ("slack.com", "slack.com", true),
            (".slack.com", "slack.com", true),
            (".slack.com", "hooks.slack.com", true),
            ("slack.com", "notslack.com", false),
            ("hooks.slack.com", "slack.com", false),
            ("a.example, SLACK.com ", "Hooks.Slack.Com.", true),
            ("10.0.0.0/8", "10.96.0.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.0/31", "127.0.0.1", true),
            ("fd00::/8", "[fd12::1]", true),
            ("[::1]", "::1", true),
            ("::1", "127.0.0.1", false),
            ("0.0.0.0/0", "192.168.1.1", true),
            ("10.0.0.0/8", "ten.example", false),
            ("example.com/8", "example.com", false),
        ];
        for (list, host, want) in cases {
            assert_eq!(no_proxy_matches(list, host), *want, "{list:?} {host:?}");
        }
    }

    #[test]
    fn proxy_urls_and_their_choice() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.corp:3128/").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.auth.as_ref().unwrap().expose()),
            ("proxy.corp", 3128, base64(b"us@er:p:ss").as_str())
        );
        assert_eq!(format!("{p:?}"), "http://<redacted>@proxy.corp:3128");
        let p = Proxy::parse("proxy.corp").unwrap();
        assert_eq!((p.port, p.auth.is_none()), (1080, true));
        assert_eq!(format!("{p:?}"), "http://proxy.corp:1080");
        for bad in [
            "https://proxy:443",
            "socks5://p:1",
            "http://",
            "http://u:p@",
            "http://h:0",
            "http://u:%zz@h",
        ] {
            let e = Proxy::parse(bad).unwrap_err();
            assert!(!e.contains("u:") && !e.contains("zz"), "{bad}: {e}");
        }
        let s = ProxySettings {
            webhook: None,
            https: Some(Proxy::parse("http://s:1").unwrap()),
            no_proxy: "internal.svc,10.0.0.0/8".into(),
        };
        assert_eq!(s.for_url(true, "hooks.slack.com").unwrap().port, 1);
        assert!(
            s.for_url(false, "hooks.slack.com").is_none(),
            "http goes direct"
        );
        assert!(s.for_url(true, "a.internal.svc").is_none());
        assert!(s.for_url(true, "10.1.2.3").is_none());
        let w = ProxySettings {
            webhook: Some(Proxy::parse("http://w:3").unwrap()),
            ..s
        };
        assert_eq!(w.for_url(false, "x").unwrap().port, 3);
        assert!(w.for_url(false, "x.internal.svc").is_none());
        assert!(ProxySettings::default().for_url(true, "x").is_none());
    }

    #[test]
    fn base64_as_rfc_4648() {
        for (raw, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(raw.as_bytes()), want);
        }
    }

    /// A one-shot CONNECT proxy: answers `answer` to the CONNECT, then (on 200) serves one HTTP
    /// response on the tunnel. Returns its URL and what it received.
    fn fake_proxy(answer: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://u:pw@{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = io::BufReader::new(stream.try_clone().unwrap());
            let mut out = stream;
            let mut got = String::new();
            for _ in 0..2 {
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    got.push_str(&line);
                }
                if got.contains("GET ") {
                    break;
                }
                let _ = out.write_all(answer.as_bytes());
                if !answer.contains(" 200 ") {
                    break;
                }
            }
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = tx.send(got);
        });
        (url, rx)
    }

    #[test]
    fn requests_go_through_a_connect_tunnel() {
        let get = Request {
            method: "GET",
            path: "/x",
            headers: &[],
            body: b"",
        };
        let (proxy, seen) = fake_proxy("HTTP/1.1 200 Connection established\r\n\r\n");
        let ep = Endpoint::parse("http://target.example:8080/hook", None)
            .unwrap()
            .via(Some(Proxy::parse(&proxy).unwrap()));
        let r = exchange(&ep, &get, Duration::from_secs(5), 100).unwrap();
        assert_eq!(r.body, b"ok");
        let got = seen.recv().unwrap();
        assert!(
            got.starts_with("CONNECT target.example:8080 HTTP/1.1\r\nHost: target.example:8080\r\nProxy-Authorization: Basic dTpwdw==\r\n"),
            "{got}"
        );
        assert!(
            got.contains("GET /hook/x HTTP/1.1\r\nHost: target.example:8080\r\n"),
            "{got}"
        );
        let (proxy, _) = fake_proxy("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
        let ep = Endpoint::parse("http://target.example:8080", None)
            .unwrap()
            .via(Some(Proxy::parse(&proxy).unwrap()));
        let e = exchange(&ep, &get, Duration::from_secs(5), 100).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("connect target.example:8080: proxy 127.0.0.1:"),
            "{text}"
        );
        assert!(
            text.ends_with("CONNECT answered \"HTTP/1.1 407 Proxy Authentication Required\""),
            "{text}"
        );
        assert!(!text.contains("pw") && !text.contains("dTpwdw"), "{text}");
    }
}
