//! A tiny blocking HTTP/1.1 server: one thread per connection (taken from a process-wide pool of
//! idle ones), plain TCP or rustls.
//!
//! What it does: keep-alive (and `Connection: close`), `Content-Length` and chunked request
//! bodies, `Expect: 100-continue`, and responses framed like Go's net/http (which is what the
//! kube-apiserver is): bodies up to 2 KiB get a `Content-Length`, larger ones go out as
//! `Transfer-Encoding: chunked` in several chunks. `HEAD` gets the headers only.
//!
//! What bounds it: every socket read polls with a short timeout so that a stop request is seen
//! within ~100 ms, an idle keep-alive connection is closed after [`IDLE_LIMIT`], a started request
//! must arrive in full within [`REQUEST_LIMIT`], writes time out after [`WRITE_LIMIT`], and a
//! "hang" response holds the socket for at most its own bound. Dropping the [`Server`] stops the
//! accept loop and waits for every connection to end.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// Close a keep-alive connection that stays idle this long.
pub const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// A request whose first byte arrived must be complete within this.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(20);
/// A response write that makes no progress for this long fails.
pub const WRITE_LIMIT: Duration = Duration::from_secs(10);
/// Go's net/http switches to chunked encoding for handler output above this size.
pub const CHUNK_THRESHOLD: usize = 2048;
const POLL: Duration = Duration::from_millis(100);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
// Enough for the mass-reclaim benchmark (hundreds of handlers, tens of kubectl drains with a
// connection per concurrent eviction); each connection is one thread.
const MAX_CONNS: usize = 4096;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The request target as sent: path plus `?query`.
    pub target: String,
    /// The path part of the target (not percent-decoded).
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header names as sent.
    pub headers: Vec<(String, String)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
}

impl Request {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the body without parameters, lower-cased (`application/json`).
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    fn wants_close(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            !conn.contains("keep-alive")
        } else {
            conn.split(',').any(|t| t.trim() == "close")
        }
    }
}

/// What the server does after the handler returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write the response.
    Respond,
    /// Never answer: hold the socket open for at most this long (or until the server stops),
    /// then close it.
    Hang(Duration),
    /// Close the connection at once without answering.
    Drop,
    /// Write the response only up to this point, then close the connection abruptly (no TLS
    /// close_notify): a peer that dies, or a connection reset, in the middle of a body.
    Truncate(Cut),
}

/// Where [`Action::Truncate`] cuts the encoded response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Half-way through the body bytes (headers complete).
    MidBody,
    /// Just before the terminating zero-size chunk of a chunked body (every chunk complete, the
    /// body never ends); a body too small to be chunked is cut half-way instead.
    BeforeLastChunk,
}

/// The first bytes of an encoded response that [`Action::Truncate`] sends.
pub fn truncate(encoded: &[u8], cut: Cut) -> &[u8] {
    let head = encoded
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(encoded.len(), |i| i + 4);
    let chunked = encoded[..head]
        .windows(26)
        .any(|w| w.eq_ignore_ascii_case(b"transfer-encoding: chunked"));
    let end = match cut {
        Cut::BeforeLastChunk if chunked && encoded.ends_with(b"0\r\n\r\n") => encoded.len() - 5,
        _ => head + (encoded.len() - head) / 2,
    };
    &encoded[..end.min(encoded.len().saturating_sub(1))]
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (`Content-Length`/`Transfer-Encoding` are added by the server, and `Date`
    /// unless the handler set one).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Respond, hang or drop.
    pub action: Action,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            action: Action::Respond,
            close: false,
        }
    }

    /// A body with a content type.
    pub fn with_body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status)
            .header("Content-Type", content_type)
            .body(body)
    }

    /// A JSON body (`application/json`), serialized compactly like the apiserver does.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec(v).unwrap_or_default();
        body.push(b'\n');
        Response::with_body(status, "application/json", body)
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }

    /// This response, cut where `cut` says (see [`Action::Truncate`]).
    pub fn truncated(mut self, cut: Cut) -> Response {
        self.action = Action::Truncate(cut);
        self
    }

    /// A response that never comes (see [`Action::Hang`]).
    pub fn hang(limit: Duration) -> Response {
        Response {
            action: Action::Hang(limit),
            ..Response::new(0)
        }
    }

    /// Drop the connection without answering.
    pub fn drop_connection() -> Response {
        Response {
            action: Action::Drop,
            ..Response::new(0)
        }
    }
}

/// Per-connection context handed to the handler.
pub struct ConnCtx<'a> {
    /// 1-based connection number on this server.
    pub id: usize,
    /// Set when the server is stopping; long sleeps must check it.
    pub stop: &'a AtomicBool,
}

impl ConnCtx<'_> {
    /// Sleeps for `d`, returning early when the server stops.
    pub fn sleep(&self, d: Duration) {
        sleep_unless(self.stop, d);
    }
}

/// Sleeps for `d` in small steps, returning early once `stop` is set.
pub fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= end || stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// The request handler: called once per request, from the connection's thread.
pub type Handler = Arc<dyn Fn(&Request, &ConnCtx) -> Response + Send + Sync>;

/// The listen(2) backlog of every simulated server (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: i32 = 4096;

/// A listening server. Dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `handler`, over TLS when `tls` is given.
    pub fn start(
        name: &str,
        handler: Handler,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Server> {
        // std listens with a backlog of 128: a burst of new connections (hundreds of handlers
        // at one notice) overflows it and the kernel drops SYNs, which clients retry only after
        // a second. kube-apiserver (Go) listens with the kernel's somaxconn (4096 here); so do
        // we.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener: TcpListener = socket.into();
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let accept = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(listener, handler, tls, stop2, conns2))?;
        Ok(Server {
            addr,
            stop,
            conns,
            accept: Some(accept),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection and waits for them to end (bounded: each
    /// connection notices the stop flag within ~100 ms unless blocked in a write, which times out).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            // Wake the blocking accept() with a throwaway connection.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
) {
    let live = Arc::new(Live::default());
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        if live.count() >= MAX_CONNS {
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let id = conns.fetch_add(1, Ordering::SeqCst) + 1;
        let (handler, tls, stop) = (handler.clone(), tls.clone(), stop.clone());
        let guard = live.enter();
        pool::run(Box::new(move || {
            let _guard = guard;
            let _ = stream.set_nodelay(true);
            let _ = stream.set_read_timeout(Some(POLL));
            let _ = stream.set_write_timeout(Some(WRITE_LIMIT));
            let ctx = ConnCtx { id, stop: &stop };
            match tls {
                Some(cfg) => {
                    let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                        return;
                    };
                    let mut s = rustls::StreamOwned::new(conn, stream);
                    let close = serve(&mut s, &handler, &ctx);
                    if close {
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    let _ = s.sock.shutdown(Shutdown::Both);
                }
                None => {
                    let mut s = stream;
                    serve(&mut s, &handler, &ctx);
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }));
    }
    live.wait_idle();
}

/// The connections a server is serving now, so that stopping it can wait for them to end.
#[derive(Default)]
struct Live {
    count: std::sync::Mutex<usize>,
    ended: std::sync::Condvar,
}

/// Counts one connection as live until dropped (also when its job panics).
struct LiveGuard(Arc<Live>);

impl Live {
    fn count(&self) -> usize {
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(self: &Arc<Live>) -> LiveGuard {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        LiveGuard(self.clone())
    }

    /// Waits until no connection is live (each notices the stop flag within [`POLL`] unless
    /// blocked in a write, which fails after [`WRITE_LIMIT`], or in a hang, which checks the
    /// flag too).
    fn wait_idle(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.ended.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        *self.0.count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.ended.notify_all();
    }
}

/// The threads that serve connections, shared by every server of the process. A finished
/// connection's thread waits for the next one instead of exiting: the mass-reclaim benchmark
/// runs 500 metadata servers and one API server in one process, and creating and tearing down
/// a thread per connection (stack mappings, TLB shootdowns on every core) was most of their
/// CPU, which the handlers being measured then did not get.
mod pool {
    use std::collections::VecDeque;
    use std::sync::{Condvar, Mutex, OnceLock};
    use std::time::Duration;

    pub(super) type Job = Box<dyn FnOnce() + Send>;

    /// An idle thread exits after this long without work.
    const IDLE_EXIT: Duration = Duration::from_secs(30);

    #[derive(Default)]
    struct Pool {
        state: Mutex<State>,
        work: Condvar,
    }

    #[derive(Default)]
    struct State {
        jobs: VecDeque<Job>,
        /// Threads waiting for a job.
        idle: usize,
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(Pool::default)
    }

    /// Runs `job` on an idle pool thread, or on a new one when none is idle (every connection
    /// gets a thread at once, as before).
    pub(super) fn run(job: Job) {
        let p = pool();
        let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.idle > st.jobs.len() {
            st.jobs.push_back(job);
            drop(st);
            p.work.notify_one();
            return;
        }
        drop(st);
        let spawned = std::thread::Builder::new()
            .name("sim-conn".into())
            .spawn(move || worker(job));
        // Without a thread the job (and its connection) is dropped, as a failed spawn was.
        drop(spawned);
    }

    fn worker(first: Job) {
        let p = pool();
        let mut job = Some(first);
        loop {
            if let Some(j) = job.take() {
                // A panic in one connection must not take the thread's later connections down.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(j));
            }
            let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(j) = st.jobs.pop_front() {
                    job = Some(j);
                    break;
                }
                st.idle += 1;
                let (next, timeout) = p
                    .work
                    .wait_timeout(st, IDLE_EXIT)
                    .unwrap_or_else(|e| e.into_inner());
                st = next;
                st.idle -= 1;
                if timeout.timed_out() && st.jobs.is_empty() {
                    return;
                }
            }
        }
    }
}

/// Serves requests on one connection until it closes. Returns true when the close is orderly
/// (a TLS close_notify should be sent).
fn serve<S: Read + Write>(s: &mut S, handler: &Handler, ctx: &ConnCtx) -> bool {
    let mut conn = Conn {
        s,
        buf: Vec::new(),
        stop: ctx.stop,
    };
    loop {
        let req = match conn.read_request() {
            Ok(Some(r)) => r,
            Ok(None) => return true,
            Err(ReadError::Bad(status, msg)) => {
                let mut resp = Response::with_body(status, "text/plain; charset=utf-8", msg);
                resp.close = true;
                let _ = conn.write_response("GET", &resp);
                return true;
            }
            Err(ReadError::Io) => return false,
        };
        // A bug in a handler must not kill the connection silently: answer 500 instead.
        let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req, ctx)))
            .unwrap_or_else(|_| {
                Response::with_body(
                    500,
                    "text/plain; charset=utf-8",
                    "stnh-sim: handler panicked",
                )
            });
        match resp.action {
            Action::Drop => return false,
            Action::Hang(limit) => {
                sleep_unless(ctx.stop, limit);
                return false;
            }
            Action::Truncate(cut) => {
                let bytes = encode_response(&req.method, &resp);
                let _ = conn.s.write_all(truncate(&bytes, cut));
                let _ = conn.s.flush();
                return false;
            }
            Action::Respond => {}
        }
        let mut resp = resp;
        resp.close |= req.wants_close() || ctx.stop.load(Ordering::Relaxed);
        if conn.write_response(&req.method, &resp).is_err() {
            return false;
        }
        if resp.close {
            return true;
        }
    }
}

enum ReadError {
    /// Malformed request: answer with this status and close.
    Bad(u16, String),
    /// Socket error, timeout or stop: just close.
    Io,
}

struct Conn<'a, S> {
    s: &'a mut S,
    buf: Vec<u8>,
    stop: &'a AtomicBool,
}

impl<S: Read + Write> Conn<'_, S> {
    /// Reads more bytes into the buffer. Ok(false) on EOF.
    fn fill(&mut self, deadline: Instant) -> Result<bool, ReadError> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            if self.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                return Err(ReadError::Io);
            }
            match self.s.read(&mut tmp) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(_) => return Err(ReadError::Io),
            }
        }
    }

    /// Makes sure `n` bytes are buffered.
    fn need(&mut self, n: usize, deadline: Instant) -> Result<(), ReadError> {
        while self.buf.len() < n {
            if !self.fill(deadline)? {
                return Err(ReadError::Io);
            }
        }
        Ok(())
    }

    /// Reads a CRLF-terminated line (without the CRLF).
    fn line(&mut self, deadline: Instant) -> Result<String, ReadError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(431, "line too long".into()));
            }
            if !self.fill(deadline)? {
                return Err(ReadError::Io);
            }
        }
    }

    fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        // Wait for the first byte with the idle limit, then for the rest with the request limit.
        let idle_deadline = Instant::now() + IDLE_LIMIT;
        while self.buf.is_empty() {
            match self.fill(idle_deadline) {
                Ok(true) => {}
                Ok(false) | Err(_) => return Ok(None),
            }
        }
        let deadline = Instant::now() + REQUEST_LIMIT;
        // Tolerate stray CRLFs between requests (RFC 9112 §2.2).
        let mut request_line = self.line(deadline)?;
        while request_line.is_empty() {
            request_line = self.line(deadline)?;
        }
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ReadError::Bad(400, "malformed request line".into()));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(ReadError::Bad(505, "HTTP version not supported".into()));
        }
        let mut headers = Vec::new();
        let mut head_size = request_line.len();
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() {
                break;
            }
            head_size += line.len();
            if head_size > MAX_HEAD {
                return Err(ReadError::Bad(
                    431,
                    "request header fields too large".into(),
                ));
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(ReadError::Bad(400, "malformed header".into()));
            };
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), crate::util::parse_query(q)),
            None => (target.to_string(), Vec::new()),
        };
        let mut req = Request {
            method: method.to_string(),
            target: target.to_string(),
            path,
            query,
            version: version.to_string(),
            headers,
            body: Vec::new(),
        };
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = match req.header("content-length") {
            Some(v) => match v.parse::<usize>() {
                Ok(n) => Some(n),
                Err(_) => return Err(ReadError::Bad(400, "bad Content-Length".into())),
            },
            None => None,
        };
        if (chunked || length.unwrap_or(0) > 0)
            && req
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            self.s
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .and_then(|_| self.s.flush())
                .map_err(|_| ReadError::Io)?;
        }
        if chunked {
            req.body = self.read_chunked(deadline)?;
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(ReadError::Bad(413, "request entity too large".into()));
            }
            self.need(n, deadline)?;
            req.body = self.buf.drain(..n).collect();
        }
        Ok(Some(req))
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line = self.line(deadline)?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_str, 16) else {
                return Err(ReadError::Bad(400, "bad chunk size".into()));
            };
            if size == 0 {
                // Trailers until an empty line.
                while !self.line(deadline)?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(ReadError::Bad(413, "request entity too large".into()));
            }
            self.need(size + 2, deadline)?;
            body.extend(self.buf.drain(..size));
            let crlf: Vec<u8> = self.buf.drain(..2).collect();
            if crlf != b"\r\n" {
                return Err(ReadError::Bad(400, "bad chunk terminator".into()));
            }
        }
    }

    fn write_response(&mut self, method: &str, resp: &Response) -> io::Result<()> {
        let bytes = encode_response(method, resp);
        self.s.write_all(&bytes)?;
        self.s.flush()
    }
}

/// Serializes a response the way Go's net/http frames it.
pub fn encode_response(method: &str, resp: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(resp.body.len() + 256);
    let status = resp.status;
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    for (k, v) in &resp.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    // A handler may send its own Date (a metadata fake whose clock is skewed).
    if !resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("date"))
    {
        out.extend_from_slice(format!("Date: {}\r\n", http_date(SystemTime::now())).as_bytes());
    }
    if resp.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let chunked = !no_body && resp.body.len() > CHUNK_THRESHOLD;
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    } else if !no_body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", resp.body.len()).as_bytes());
    } else {
        out.extend_from_slice(b"\r\n");
    }
    if method == "HEAD" || no_body {
        return out;
    }
    if chunked {
        // First chunk at the threshold, then 4 KiB chunks: several chunks for anything > 2 KiB.
        let mut rest = &resp.body[..];
        let mut size = CHUNK_THRESHOLD;
        while !rest.is_empty() {
            let n = size.min(rest.len());
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            size = 4096;
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// The standard reason phrase.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `Tue, 15 Nov 1994 08:12:31 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let s = crate::util::rfc3339(t); // 1994-11-15T08:12:31Z
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][((secs / 86_400) % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = s[5..7].parse().unwrap_or(1);
    format!(
        "{wd}, {} {} {} {} GMT",
        &s[8..10],
        months[m - 1],
        &s[0..4],
        &s[11..19]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_get_content_length() {
        let r = Response::with_body(200, "text/plain", "ok");
        let s = String::from_utf8(encode_response("GET", &r)).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("Content-Length: 2\r\n"));
        assert!(s.ends_with("\r\n\r\nok"));
    }

    #[test]
    fn large_bodies_are_chunked_in_several_chunks() {
        let body = vec![b'x'; 5000];
        let r = Response::with_body(200, "application/json", body.clone());
        let raw = encode_response("GET", &r);
        let s = String::from_utf8(raw).unwrap();
        assert!(s.contains("Transfer-Encoding: chunked\r\n"));
        assert!(!s.contains("Content-Length"));
        let (_, payload) = s.split_once("\r\n\r\n").unwrap();
        assert!(payload.starts_with("800\r\n"));
        assert!(payload.contains("\r\nb88\r\n")); // 5000 - 2048 = 2952 = 0xb88
        assert!(payload.ends_with("\r\n0\r\n\r\n"));
        let decoded = crate::testclient::decode_chunked(payload.as_bytes()).unwrap();
        assert_eq!(decoded, body);
    }

    #[test]
    fn head_has_no_body() {
        let r = Response::with_body(200, "text/plain", "hello");
        let s = String::from_utf8(encode_response("HEAD", &r)).unwrap();
        assert!(s.contains("Content-Length: 5"));
        assert!(s.ends_with("\r\n\r\n"));
    }

    #[test]
    fn http_date_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_887_151);
        assert_eq!(http_date(t), "Tue, 15 Nov 1994 08:12:31 GMT");
    }
}
