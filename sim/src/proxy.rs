//! An HTTP CONNECT proxy on 127.0.0.1, for `HTTPS_PROXY` / `WEBHOOK_PROXY` tests.
//!
//! It records every request and tunnels `CONNECT host:port` to **127.0.0.1 targets only**
//! (`127.0.0.1:PORT` or `localhost:PORT`); any other target gets `403 Forbidden`, so a test can
//! never reach the outside through it. Optionally it demands `Proxy-Authorization: Basic ...`
//! (`407` with `Proxy-Authenticate: Basic realm="stnh-sim"` otherwise). Anything but CONNECT
//! gets `405` (the handler must tunnel, never send absolute-form requests). A target that
//! refuses the connection gives `502`. Bytes are copied both ways until either side closes,
//! the tunnel is idle for [`TUNNEL_IDLE_LIMIT`], or the proxy stops; every wait is bounded and
//! dropping the proxy joins every thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::lock;

/// A tunnel with no traffic either way for this long is closed.
pub const TUNNEL_IDLE_LIMIT: Duration = Duration::from_secs(60);
/// The request head must arrive within this.
pub const HEAD_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
const MAX_HEAD: usize = 16 * 1024;

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    /// `CONNECT`, or whatever else was sent.
    pub method: String,
    /// The request target (`127.0.0.1:8443` for CONNECT).
    pub target: String,
    /// `Proxy-Authorization` was present and matched (true when no auth is required).
    pub authorized: bool,
    /// A `Proxy-Authorization` header was sent at all.
    pub sent_auth: bool,
    /// The status answered (200 when the tunnel was opened).
    pub status: u16,
    /// Bytes client → target (set when the tunnel ends).
    pub bytes_up: u64,
    /// Bytes target → client (set when the tunnel ends).
    pub bytes_down: u64,
    /// True once the tunnel has closed.
    pub closed: bool,
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub time: SystemTime,
}

struct State {
    auth: Option<String>,
    log: Vec<ProxyRequest>,
}

/// A running proxy. Dropping it stops it.
pub struct ConnectProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    state: Arc<Mutex<State>>,
    accept: Option<JoinHandle<()>>,
    user: Option<(String, String)>,
}

impl ConnectProxy {
    /// Binds 127.0.0.1:0. With `auth = Some((user, password))` every request must carry
    /// `Proxy-Authorization: Basic base64(user:password)`.
    pub fn start(auth: Option<(&str, &str)>) -> io::Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Mutex::new(State {
            auth: auth.map(|(u, p)| crate::util::base64(format!("{u}:{p}").as_bytes(), false)),
            log: Vec::new(),
        }));
        let (s2, c2, st2) = (stop.clone(), conns.clone(), state.clone());
        let accept = thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, s2, c2, st2))?;
        Ok(ConnectProxy {
            addr,
            stop,
            conns,
            state,
            accept: Some(accept),
            user: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (for `HTTPS_PROXY`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// `http://user:password@127.0.0.1:PORT` when the proxy requires credentials, else
    /// [`ConnectProxy::url`].
    pub fn url_with_credentials(&self) -> String {
        match &self.user {
            Some((u, p)) => format!(
                "http://{}:{}@127.0.0.1:{}",
                crate::util::percent_encode(u),
                crate::util::percent_encode(p),
                self.addr.port()
            ),
            None => self.url(),
        }
    }

    /// Every request so far (tunnels still open have `closed == false`).
    pub fn requests(&self) -> Vec<ProxyRequest> {
        lock(&self.state).log.clone()
    }

    /// The CONNECT targets (`host:port`) in arrival order.
    pub fn connect_targets(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "CONNECT")
            .map(|r| r.target)
            .collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every tunnel and joins all threads.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = h.join();
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    state: Arc<Mutex<State>>,
) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        workers.retain(|h| !h.is_finished());
        if workers.len() >= 256 {
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        conns.fetch_add(1, Ordering::SeqCst);
        let (stop, state) = (stop.clone(), state.clone());
        if let Ok(h) = thread::Builder::new()
            .name("proxy-conn".into())
            .spawn(move || serve(stream, &stop, &state))
        {
            workers.push(h);
        }
    }
    for h in workers {
        let _ = h.join();
    }
}

/// Reads the request head; returns it and any bytes after it.
fn read_head(s: &mut TcpStream, stop: &AtomicBool) -> Option<(String, Vec<u8>)> {
    let end = Instant::now() + HEAD_LIMIT;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf[p + 4..].to_vec();
            return Some((String::from_utf8_lossy(&buf[..p]).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD || Instant::now() >= end || stop.load(Ordering::Relaxed) {
            return None;
        }
        match s.read(&mut tmp) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

fn reply(s: &mut TcpStream, status: u16, reason: &str, extra: &str) {
    let body = format!("{status} {reason}\n");
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(msg.as_bytes());
    let _ = s.flush();
}

fn is_local_target(target: &str) -> Option<SocketAddr> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match host {
        "127.0.0.1" | "localhost" | "[127.0.0.1]" => Some(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => None,
    }
}

fn serve(mut client: TcpStream, stop: &AtomicBool, state: &Mutex<State>) {
    let _ = client.set_read_timeout(Some(POLL));
    let _ = client.set_write_timeout(Some(Duration::from_secs(10)));
    let Some((head, early)) = read_head(&mut client, stop) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let auth_header = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_string());
    let want = lock(state).auth.clone();
    let authorized = match &want {
        None => true,
        Some(w) => auth_header.as_deref().is_some_and(|h| {
            h.split_once(' ').is_some_and(|(scheme, cred)| {
                scheme.eq_ignore_ascii_case("basic") && cred.trim() == w
            })
        }),
    };
    let idx = {
        let mut st = lock(state);
        st.log.push(ProxyRequest {
            method: method.clone(),
            target: target.clone(),
            authorized,
            sent_auth: auth_header.is_some(),
            status: 0,
            bytes_up: 0,
            bytes_down: 0,
            closed: true,
            at: Instant::now(),
            time: SystemTime::now(),
        });
        st.log.len() - 1
    };
    let set_status = |code: u16, open: bool| {
        let mut st = lock(state);
        st.log[idx].status = code;
        st.log[idx].closed = !open;
    };
    if method != "CONNECT" {
        set_status(405, false);
        reply(&mut client, 405, "Method Not Allowed", "Allow: CONNECT\r\n");
        return;
    }
    if !authorized {
        set_status(407, false);
        reply(
            &mut client,
            407,
            "Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"stnh-sim\"\r\n",
        );
        return;
    }
    let Some(addr) = is_local_target(&target) else {
        set_status(403, false);
        reply(&mut client, 403, "Forbidden", "");
        return;
    };
    let upstream = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok());
    let Some(mut upstream) = upstream else {
        set_status(502, false);
        reply(&mut client, 502, "Bad Gateway", "");
        return;
    };
    set_status(200, true);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .and_then(|_| client.flush())
        .is_err()
    {
        set_status(200, false);
        return;
    }
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    if !early.is_empty() && upstream.write_all(&early).is_ok() {
        up.fetch_add(early.len() as u64, Ordering::Relaxed);
    }
    let _ = upstream.set_read_timeout(Some(POLL));
    let _ = upstream.set_write_timeout(Some(Duration::from_secs(10)));
    let last = Arc::new(Mutex::new(Instant::now()));
    let done = Arc::new(AtomicBool::new(false));
    let pump = |mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>| {
        let (last, done) = (last.clone(), done.clone());
        move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        count.fetch_add(n as u64, Ordering::Relaxed);
                        *lock(&last) = Instant::now();
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if lock(&last).elapsed() >= TUNNEL_IDLE_LIMIT {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::Relaxed);
            let _ = to.shutdown(Shutdown::Write);
        }
    };
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        set_status(200, false);
        return;
    };
    let a = thread::spawn(pump(client, upstream, up.clone()));
    let b = thread::spawn(pump(u2, c2, down.clone()));
    // Watch for a proxy stop while the tunnel runs.
    while !a.is_finished() || !b.is_finished() {
        if stop.load(Ordering::Relaxed) {
            done.store(true, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = a.join();
    let _ = b.join();
    let mut st = lock(state);
    st.log[idx].bytes_up = up.load(Ordering::Relaxed);
    st.log[idx].bytes_down = down.load(Ordering::Relaxed);
    st.log[idx].closed = true;
}

// ---- Scenario / Sim wiring ----------------------------------------------------------------

impl crate::Scenario {
    /// Starts a CONNECT proxy with the simulator, optionally requiring
    /// `Proxy-Authorization: Basic` for `(user, password)`. See [`crate::Sim::proxy`].
    pub fn connect_proxy(mut self, auth: Option<(&str, &str)>) -> Self {
        self.proxy_auth = Some(auth.map(|(u, p)| (u.to_string(), p.to_string())));
        self
    }
}

impl crate::Sim {
    /// The scenario's CONNECT proxy, if it has one.
    pub fn proxy(&self) -> Option<&ConnectProxy> {
        self.proxy.as_ref()
    }
}
