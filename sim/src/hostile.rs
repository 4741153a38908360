//! Hostile peers: the network faults a client's timeouts exist for, on `127.0.0.1`.
//!
//! - [`BlackHole`]: accepts TCP connections and never answers (reads and discards what comes).
//!   Over TLS, the client's handshake never gets a ServerHello; over HTTP, no response comes.
//! - [`Trickle`]: accepts and sends a fixed prefix, then a filler byte, one byte per interval
//!   (e.g. 1 byte/s), forever: every read succeeds, but the response never ends.
//! - [`Proxy`]: a TCP proxy in front of a real endpoint (e.g. the fake API server), switched at
//!   runtime with [`Proxy::set_mode`]:
//!   - [`ProxyMode::Forward`]: new connections are forwarded, byte for byte, both ways.
//!   - [`ProxyMode::Hold`]: new connections are accepted and never forwarded or answered, and
//!     connections forwarded so far stop carrying the client's bytes **for good** (a stalled
//!     server: answers already under way still reach the client, nothing new reaches the
//!     server, even after the mode goes back to `Forward`).
//!   - [`ProxyMode::Reset`]: new connections are reset (TCP RST) as soon as the client has sent
//!     its first bytes; connections forwarded so far go on.
//!
//! What bounds them: each connection is held at most [`HOLD_LIMIT`], every blocking call polls
//! a stop flag every ~50 ms, and dropping a peer stops its accept loop and joins every thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest a hostile peer holds one connection.
pub const HOLD_LIMIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);
const WRITE_LIMIT: Duration = Duration::from_secs(10);

type OnConn = Arc<dyn Fn(TcpStream, &AtomicBool) + Send + Sync>;

/// A listener on `127.0.0.1:0` running `on_conn` on a thread per connection.
struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(name: &str, on_conn: OnConn) -> io::Result<Listener> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let accept = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                let mut workers: Vec<JoinHandle<()>> = Vec::new();
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    conns2.fetch_add(1, Ordering::SeqCst);
                    workers.retain(|h| !h.is_finished());
                    let (on_conn, stop) = (on_conn.clone(), stop2.clone());
                    if let Ok(h) = thread::Builder::new().spawn(move || on_conn(stream, &stop)) {
                        workers.push(h);
                    }
                }
                for h in workers {
                    let _ = h.join();
                }
            })?;
        Ok(Listener {
            addr,
            stop,
            conns,
            accept: Some(accept),
        })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            // Wake the blocking accept() with a throwaway connection.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = h.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads and discards until the peer closes, an error, `stop`, or [`HOLD_LIMIT`].
fn swallow(mut s: &TcpStream, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(POLL));
    let end = Instant::now() + HOLD_LIMIT;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_poll_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn is_poll_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Sleeps `d` in small steps; false when `stop` was set meanwhile.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Accepts connections and never answers.
pub struct BlackHole {
    inner: Listener,
}

impl BlackHole {
    /// Listens on `127.0.0.1:0`.
    pub fn start() -> io::Result<BlackHole> {
        let inner = Listener::start("blackhole", Arc::new(|s, stop| swallow(&s, stop)))?;
        Ok(BlackHole { inner })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// How many connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.conns.load(Ordering::SeqCst)
    }
}

/// Sends a prefix, then a filler byte forever, one byte per interval.
pub struct Trickle {
    inner: Listener,
}

impl Trickle {
    /// Every connection gets `prefix` then `filler` repeated, one byte every `interval`, until
    /// the client closes (or [`HOLD_LIMIT`]). What the client sends is read and discarded.
    ///
    /// For an HTTP client: `Trickle::start(b"HTTP/1.1 200 OK\r\nX-Slow: ", b'a', 1 s)` is a head
    /// that never ends. For a TLS client: a handshake record header such as
    /// `[0x16, 0x03, 0x03, 0x40, 0x00]` and any filler is a ServerHello that never ends.
    pub fn start(prefix: &[u8], filler: u8, interval: Duration) -> io::Result<Trickle> {
        let prefix = prefix.to_vec();
        let inner = Listener::start(
            "trickle",
            Arc::new(move |s, stop| {
                let reader = s.try_clone().ok();
                thread::scope(|scope| {
                    if let Some(r) = &reader {
                        scope.spawn(|| swallow(r, stop));
                    }
                    let mut out = &s;
                    let _ = out.set_write_timeout(Some(WRITE_LIMIT));
                    let end = Instant::now() + HOLD_LIMIT;
                    let bytes = prefix.iter().copied().chain(std::iter::repeat(filler));
                    for b in bytes {
                        if Instant::now() >= end || out.write_all(&[b]).is_err() {
                            break;
                        }
                        if !nap(interval, stop) {
                            break;
                        }
                    }
                    let _ = s.shutdown(Shutdown::Both);
                });
            }),
        )?;
        Ok(Trickle { inner })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// How many connections it accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.conns.load(Ordering::SeqCst)
    }
}

/// What a [`Proxy`] does with connections (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward new connections.
    Forward,
    /// Hold new connections and stall the ones forwarded so far.
    Hold,
    /// Reset new connections.
    Reset,
}

impl ProxyMode {
    fn from_u8(v: u8) -> ProxyMode {
        match v {
            1 => ProxyMode::Hold,
            2 => ProxyMode::Reset,
            _ => ProxyMode::Forward,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            ProxyMode::Forward => 0,
            ProxyMode::Hold => 1,
            ProxyMode::Reset => 2,
        }
    }
}

/// The switch of a [`Proxy`], cloneable (e.g. into a simulator observer).
#[derive(Clone)]
pub struct ProxySwitch {
    mode: Arc<AtomicU8>,
    /// Bumped on every switch to `Hold`: a forwarded connection started in an older epoch is
    /// stalled.
    holds: Arc<AtomicUsize>,
}

impl ProxySwitch {
    /// Switches the mode; takes effect for the next connection (and, for `Hold`, stalls the
    /// forwarded ones at once).
    pub fn set(&self, m: ProxyMode) {
        if m == ProxyMode::Hold {
            self.holds.fetch_add(1, Ordering::SeqCst);
        }
        self.mode.store(m.to_u8(), Ordering::SeqCst);
    }

    /// The current mode.
    pub fn get(&self) -> ProxyMode {
        ProxyMode::from_u8(self.mode.load(Ordering::SeqCst))
    }
}

/// A TCP proxy in front of `target` whose behaviour can be switched at runtime.
pub struct Proxy {
    inner: Listener,
    switch: ProxySwitch,
    held: Arc<AtomicUsize>,
    reset: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `target` (mode `Forward`).
    pub fn start(target: SocketAddr) -> io::Result<Proxy> {
        let switch = ProxySwitch {
            mode: Arc::new(AtomicU8::new(ProxyMode::Forward.to_u8())),
            holds: Arc::new(AtomicUsize::new(0)),
        };
        let held = Arc::new(AtomicUsize::new(0));
        let reset = Arc::new(AtomicUsize::new(0));
        let (sw, h, r) = (switch.clone(), held.clone(), reset.clone());
        let inner = Listener::start(
            "proxy",
            Arc::new(move |client, stop| match sw.get() {
                ProxyMode::Hold => {
                    h.fetch_add(1, Ordering::SeqCst);
                    swallow(&client, stop);
                }
                ProxyMode::Reset => {
                    r.fetch_add(1, Ordering::SeqCst);
                    reset_after_first_bytes(client, stop);
                }
                ProxyMode::Forward => forward(client, target, &sw, stop),
            }),
        )?;
        Ok(Proxy {
            inner,
            switch,
            held,
            reset,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The switch, to flip the mode from elsewhere.
    pub fn switch(&self) -> ProxySwitch {
        self.switch.clone()
    }

    /// Switches the mode (see [`ProxySwitch::set`]).
    pub fn set_mode(&self, m: ProxyMode) {
        self.switch.set(m);
    }

    /// How many connections it accepted so far (in any mode).
    pub fn connections(&self) -> usize {
        self.inner.conns.load(Ordering::SeqCst)
    }

    /// How many new connections it held so far.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// How many new connections it reset so far.
    pub fn resets(&self) -> usize {
        self.reset.load(Ordering::SeqCst)
    }
}

/// Waits for the client's first bytes, then closes without reading them: with unread data in
/// the receive queue, the kernel answers the close with RST instead of FIN.
fn reset_after_first_bytes(client: TcpStream, stop: &AtomicBool) {
    let _ = client.set_read_timeout(Some(POLL));
    let end = Instant::now() + HOLD_LIMIT;
    let mut one = [0u8; 1];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        match client.peek(&mut one) {
            Ok(_) => break,
            Err(e) if is_poll_timeout(&e) => {}
            Err(_) => break,
        }
    }
    drop(client);
}

fn forward(client: TcpStream, target: SocketAddr, sw: &ProxySwitch, stop: &AtomicBool) {
    let epoch = sw.holds.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    for s in [&client, &server] {
        let _ = s.set_read_timeout(Some(POLL));
        let _ = s.set_write_timeout(Some(WRITE_LIMIT));
    }
    thread::scope(|scope| {
        // Server → client: until either side closes.
        scope.spawn(|| {
            copy(&server, &client, stop, || true);
            let _ = client.shutdown(Shutdown::Write);
        });
        // Client → server: only while no Hold came since this connection started.
        let live = || sw.holds.load(Ordering::SeqCst) == epoch;
        if copy(&client, &server, stop, live) {
            let _ = server.shutdown(Shutdown::Write);
        } else {
            // Stalled for good: what the client sends now never reaches the server.
            swallow(&client, stop);
            let _ = server.shutdown(Shutdown::Both);
        }
    });
}

/// Copies `from` → `to` until EOF or an error (true), or until `go()` turns false or `stop`
/// (false). Bytes read when `go()` has turned false are not written.
fn copy(
    mut from: &TcpStream,
    mut to: &TcpStream,
    stop: &AtomicBool,
    go: impl Fn() -> bool,
) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) || !go() {
            return false;
        }
        match from.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                if !go() {
                    return false;
                }
                if to.write_all(&buf[..n]).is_err() {
                    return true;
                }
            }
            Err(e) if is_poll_timeout(&e) => {}
            Err(_) => return true,
        }
    }
}
