//! Black-box tests of the hostile peers: they do what they promise, and they are bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use stnh_sim::hostile::{BlackHole, Proxy, ProxyMode, Trickle};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    s
}

/// Reads what arrives within the socket's read timeout; `None` on a timeout with nothing.
fn read_some(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

fn timed_out(r: &std::io::Result<Vec<u8>>) -> bool {
    matches!(r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// An echo server standing in for a real endpoint.
fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_black_hole_accepts_and_never_answers() {
    let hole = BlackHole::start().unwrap();
    let mut s = connect(hole.addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(timed_out(&read_some(&mut s)), "no answer");
    assert_eq!(hole.connections(), 1);
    // Dropping it closes the held connection: the client sees the end, not a hang.
    let t = Instant::now();
    drop(hole);
    assert!(t.elapsed() < Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = read_some(&mut s);
    assert!(matches!(&r, Ok(b) if b.is_empty()) || r.is_err(), "{r:?}");
}

#[test]
fn a_trickle_sends_its_prefix_then_filler_one_byte_at_a_time() {
    let t = Trickle::start(b"HTTP/1.1 ", b'a', Duration::from_millis(100)).unwrap();
    let mut s = connect(t.addr());
    let mut got = Vec::new();
    let started = Instant::now();
    while got.len() < 12 {
        got.extend(read_some(&mut s).unwrap());
    }
    assert_eq!(&got[..12], b"HTTP/1.1 aaa");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "one byte per interval: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_proxy_forwards_holds_stalls_and_resets_on_command() {
    let proxy = Proxy::start(echo()).unwrap();
    // Forward.
    let mut a = connect(proxy.addr());
    a.write_all(b"ping").unwrap();
    assert_eq!(read_some(&mut a).unwrap(), b"ping");
    // Hold: a new connection gets nothing; the open one stalls for good.
    proxy.set_mode(ProxyMode::Hold);
    let mut b = connect(proxy.addr());
    b.write_all(b"ping").unwrap();
    assert!(timed_out(&read_some(&mut b)));
    a.write_all(b"more").unwrap();
    assert!(timed_out(&read_some(&mut a)), "the open connection stalls");
    // Back to forward: new connections work, the stalled ones stay stalled.
    proxy.set_mode(ProxyMode::Forward);
    let mut c = connect(proxy.addr());
    c.write_all(b"pong").unwrap();
    assert_eq!(read_some(&mut c).unwrap(), b"pong");
    a.write_all(b"again").unwrap();
    assert!(timed_out(&read_some(&mut a)), "stalled for good");
    assert!(timed_out(&read_some(&mut b)), "held for good");
    // Reset: the client's first bytes are answered with RST.
    proxy.set_mode(ProxyMode::Reset);
    let mut d = connect(proxy.addr());
    d.write_all(b"ping").unwrap();
    d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = read_some(&mut d);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    assert_eq!(
        (proxy.connections(), proxy.held(), proxy.resets()),
        (4, 1, 1)
    );
    let t = Instant::now();
    drop(proxy);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
