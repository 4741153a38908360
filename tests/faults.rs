//! The fault matrix: the real binary against the simulator and hostile peers on 127.0.0.1, one
//! test per fault that no other test file covers (README "Faults we test" maps every row, these
//! and the ones elsewhere, to its test). Each row asserts the documented outcome — the node
//! ends drained before the deadline — and that the handler is still alive and polling its
//! metadata service afterwards.
//!
//! Hostile peers of our own: [`Relay`], a TCP relay on a fixed port that can refuse
//! connections (nothing listening), answer a TLS client with plain-text garbage, trickle a
//! response one byte per second, or forward; the simulator's API server adds scripted
//! `FaultAction`s (APF throttling, answers slower than the client's timeout, bodies cut in the
//! middle, chunked bodies without their last chunk).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use stnh_sim::http::Cut;
use stnh_sim::webhook::{SinkTls, WebhookKind, WebhookMode, WebhookSink};
use stnh_sim::{FaultAction, ImdsMode, PodSpec, Sim, SlackMode};
use support::*;

const LONG: Duration = Duration::from_secs(60);
const ACTION: &str = "/latest/meta-data/spot/instance-action";

// ---------------------------------------------------------------------------------------------
// A switchable relay.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing listens on the port: connections are refused.
    Closed,
    /// Connections are relayed to the target, both ways.
    Forward,
    /// Each connection gets a plain-text HTTP answer at once and is closed (a TLS client's
    /// handshake fails on it).
    Garbage,
    /// Each connection gets a 200 head announcing 1,000 bytes, then one byte per second.
    Trickle,
}

struct RelayShared {
    mode: Mutex<Mode>,
    stop: AtomicBool,
    /// Both ends of every relayed connection, to cut them when the mode changes.
    open: Mutex<Vec<TcpStream>>,
    accepted: AtomicUsize,
    target: SocketAddr,
}

/// A TCP relay on a fixed 127.0.0.1 port in front of `target`, switched with [`Relay::set`].
struct Relay {
    port: u16,
    shared: Arc<RelayShared>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(target: SocketAddr, mode: Mode) -> Relay {
        // A free port, kept by number only: in `Closed` mode nothing listens on it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let shared = Arc::new(RelayShared {
            mode: Mutex::new(mode),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            target,
        });
        let sh = shared.clone();
        let accept = std::thread::spawn(move || accept_loop(port, &sh));
        let r = Relay {
            port,
            shared,
            accept: Some(accept),
        };
        r.wait_listening(mode);
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn mode(&self) -> Mode {
        *self.shared.mode.lock().unwrap()
    }

    /// Switches the mode; connections relayed so far are cut unless the new mode forwards.
    fn set(&self, m: Mode) {
        *self.shared.mode.lock().unwrap() = m;
        if m != Mode::Forward {
            for s in self.shared.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.wait_listening(m);
    }

    /// Waits until the port listens (or, `Closed`, refuses).
    fn wait_listening(&self, m: Mode) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        eventually("the relay's port follows its mode", LONG, || {
            let r = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
            let refused = r
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if let Ok(s) = r {
                // Our own probe: not counted, never relayed.
                let _ = s.shutdown(Shutdown::Both);
            }
            refused == (m == Mode::Closed)
        });
    }

    fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(port: u16, sh: &Arc<RelayShared>) {
    let mut listener: Option<TcpListener> = None;
    while !sh.stop.load(Ordering::SeqCst) {
        let mode = *sh.mode.lock().unwrap();
        if mode == Mode::Closed {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener.insert(l)
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                serve(s, mode, sh);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve(mut s: TcpStream, mode: Mode, sh: &Arc<RelayShared>) {
    // The relay's own probes (see `wait_listening`) send nothing and close at once: a peek that
    // sees EOF within a moment is one of them.
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut b = [0u8; 1];
    if matches!(s.peek(&mut b), Ok(0)) {
        return;
    }
    let _ = s.set_read_timeout(None);
    sh.accepted.fetch_add(1, Ordering::SeqCst);
    match mode {
        Mode::Closed => {}
        Mode::Garbage => {
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = s.shutdown(Shutdown::Both);
        }
        Mode::Trickle => {
            let sh = sh.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n",
                );
                for _ in 0..60 {
                    if sh.stop.load(Ordering::SeqCst) || s.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
        Mode::Forward => {
            let Ok(up) = TcpStream::connect(sh.target) else {
                return;
            };
            {
                let mut open = sh.open.lock().unwrap();
                open.push(s.try_clone().unwrap());
                open.push(up.try_clone().unwrap());
            }
            for (mut from, mut to) in [(s.try_clone().unwrap(), up.try_clone().unwrap()), (up, s)] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What every row asserts.

/// When the handler recorded `phase=drained` on the node (the API request's time).
fn drained_at(sim: &Sim) -> Option<SystemTime> {
    sim.api_requests()
        .into_iter()
        .find(|r| {
            r.method == "PATCH"
                && r.path == format!("/api/v1/nodes/{NODE}")
                && (200..300).contains(&r.status)
                && r.body.contains("\"drained\"")
        })
        .map(|r| r.time)
}

/// The mixed node ended drained before `deadline`: the drain's summary line says every
/// evictable pod went (evicted, or already gone) and none failed, the node is cordoned with `phase=drained`, recorded
/// before the deadline, and only the pods a drain leaves are left.
fn assert_drained_in_time(sim: &Sim, h: &Handler, deadline: SystemTime) {
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    // A pod our own eviction took whose answer was lost counts as already gone on the retry.
    let n = |k: &str| -> u32 {
        done.split(&format!(" {k}="))
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        n("evicted") + n("already_gone") == 6 && done.contains(" failed=0 "),
        "{done}\n{}",
        h.dump()
    );
    eventually("phase=drained is recorded", LONG, || {
        drained_at(sim).is_some()
    });
    let at = drained_at(sim).unwrap();
    assert!(at < deadline, "drained at {at:?}, after the deadline");
    // Our taint follows the cordon a second later (node::TAINT_DELAY): a drain that went on
    // without a throttled cordon can be done before it.
    eventually("our taint is on the node", LONG, || {
        our_taints(&sim.node(NODE).unwrap()).len() == 1
    });
    let node = sim.node(NODE).unwrap();
    assert_held(&node, "spot-interruption", "drained");
    let left: Vec<String> = sim
        .pods_on(NODE)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        left.len(),
        3,
        "handler pod, DaemonSet pod, mirror pod: {left:?}"
    );
}

fn deadline_in(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

// ---------------------------------------------------------------------------------------------
// API server.

#[test]
fn api_server_refused_then_back_the_drain_completes() {
    let sim = Sim::start(mixed_node()).unwrap();
    let api = SocketAddr::from(([127, 0, 0, 1], sim.api_port()));
    let relay = Relay::start(api, Mode::Closed);
    let port = relay.port.to_string();
    let h = Handler::start(&sim, &[("KUBERNETES_SERVICE_PORT", &port)]);
    let line = h.wait_for("could not read the node", LONG);
    assert!(line.contains("refused"), "{line}");
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("msg=\"cordon failed; will retry\"", LONG);
    assert!(line.contains("refused"), "{line}");
    assert!(
        sim.api_requests().is_empty(),
        "nothing reached the API server"
    );
    relay.set(Mode::Forward);
    assert_drained_in_time(&sim, &h, deadline);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_tls_handshake_failure_mid_drain_is_retried_and_the_drain_completes() {
    let sim = Sim::start(mixed_node()).unwrap();
    let api = SocketAddr::from(([127, 0, 0, 1], sim.api_port()));
    let relay = Relay::start(api, Mode::Forward);
    let port = relay.port.to_string();
    let h = Handler::start_idle(&sim, &[("KUBERNETES_SERVICE_PORT", &port)]);
    // Every connection now meets a plain-text answer instead of a ServerHello (the pooled
    // ones are cut).
    relay.set(Mode::Garbage);
    let before = relay.accepted();
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("msg=\"cordon failed; will retry\"", LONG);
    assert!(line.contains("TLS"), "{line}");
    eventually("a few handshakes failed", LONG, || {
        relay.accepted() >= before + 2
    });
    let served = sim.api_requests().len();
    relay.set(Mode::Forward);
    assert_drained_in_time(&sim, &h, deadline);
    assert!(sim.api_requests().len() > served);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_burst_of_5xx_on_every_api_call_is_retried_within_the_deadline() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    // The next 24 requests of any kind fail: 500, 502, 503 and 504, in turn (the Events and
    // condition writes share them).
    for (i, code) in [500, 502, 503, 504].iter().cycle().take(24).enumerate() {
        let body = if i % 2 == 0 {
            format!(r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","code":{code}}}"#)
        } else {
            "upstream connect error or disconnect/reset before headers".to_string()
        };
        sim.fail_next("*", "/", 1, *code, &body);
    }
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    assert_drained_in_time(&sim, &h, deadline);
    let failed = sim
        .api_requests()
        .iter()
        .filter(|r| r.status >= 500)
        .count();
    assert_eq!(failed, 24, "every scripted failure was met");
    assert!(
        h.dump().contains("cordon failed; will retry"),
        "{}",
        h.dump()
    );
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn apf_throttling_429_with_retry_after_is_waited_out() {
    let sim = Sim::start(mixed_node()).unwrap();
    // Without the reports, whose writes would take some of the throttled answers.
    let h = Handler::start_idle(&sim, &[("EVENTS", "false"), ("NODE_CONDITION", "false")]);
    // The cordon, the pod list and one eviction are throttled with Retry-After: 3.
    sim.fault(
        "PATCH",
        &format!("/api/v1/nodes/{NODE}"),
        1,
        FaultAction::Throttle(3),
    );
    sim.fault("GET", "/api/v1/pods?", 2, FaultAction::Throttle(3));
    let evict = "/api/v1/namespaces/shop/pods/web-1/eviction";
    sim.fault("POST", evict, 2, FaultAction::Throttle(3));
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    assert_drained_in_time(&sim, &h, deadline);
    let reqs = sim.api_requests();
    // After each 429, the same request waits the Retry-After before asking again.
    for (method, prefix) in [
        ("PATCH", format!("/api/v1/nodes/{NODE}")),
        ("GET", "/api/v1/pods?".to_string()),
        ("POST", evict.to_string()),
    ] {
        let same: Vec<_> = reqs
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(&prefix))
            // The node: the cordon itself (the ledger annotation is another write).
            .filter(|r| r.method != "PATCH" || r.body.contains("\"unschedulable\":true"))
            .collect();
        for w in same.windows(2) {
            if w[0].status == 429 {
                let gap = w[1].at - w[0].at;
                assert!(
                    gap >= Duration::from_millis(2900),
                    "{method} {prefix}: asked again {gap:?} after a 429 with Retry-After: 3"
                );
            }
        }
        assert!(same.iter().any(|r| r.status == 429), "{method} {prefix}");
        assert!((200..300).contains(&same.last().unwrap().status));
    }
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_throttled_read_before_the_taints_is_tried_again_never_skipped_for_a_stale_patch() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let node = format!("/api/v1/nodes/{NODE}");
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    // The read of the node a second after the cordon, before the taints, is throttled once
    // (Retry-After: 1). Patching the taints with the cordon's resourceVersion instead could
    // only conflict (the node controller wrote its taint since), and the Events and the
    // condition would go out before the taints.
    h.wait_for("msg=\"cordoned node\"", LONG);
    sim.fault("GET", &node, 1, FaultAction::Throttle(1));
    assert_drained_in_time(&sim, &h, deadline);
    let taints = assert_taints_follow_the_cordon(&sim);
    let reqs = sim.api_requests();
    let steps: Vec<(String, u16)> = reqs
        .iter()
        .filter(|r| r.path == node && r.at <= taints.at)
        .skip_while(|r| !(r.method == "PATCH" && r.body.contains("\"unschedulable\":true")))
        .skip(1)
        .filter(|r| r.method == "GET" || r.body.contains("\"taints\""))
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("GET".into(), 429),
            ("GET".into(), 200),
            ("PATCH".into(), 200)
        ],
        "reads and taint patches between the cordon and the taints"
    );
    assert!(
        !reqs.iter().any(|r| r.status == 409),
        "no conflict anywhere"
    );
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn events_and_the_condition_wait_until_a_throttled_cordon_holds_and_shed_events_back_off() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let node = format!("/api/v1/nodes/{NODE}");
    // The cordon is throttled once (Retry-After: 2), the pod list too (Retry-After: 3); then
    // the first Event is shed twice (the plain-text 429 of API Priority and Fairness,
    // Retry-After: 1).
    sim.fault("PATCH", &node, 1, FaultAction::Throttle(2));
    sim.fault("GET", "/api/v1/pods?", 1, FaultAction::Throttle(3));
    sim.fault(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/",
        2,
        FaultAction::shed(),
    );
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    assert_drained_in_time(&sim, &h, deadline);
    let event_posts = || {
        sim.api_requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/events") && r.status < 300)
            .count()
    };
    eventually("an Event is created after its shed attempts", LONG, || {
        event_posts() > 0
    });
    let reqs = sim.api_requests();
    let cordons: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.method == "PATCH" && r.path.starts_with(&node) && !r.path.ends_with("/status")
        })
        .filter(|r| r.body.contains("\"unschedulable\":true"))
        .collect();
    assert_eq!(
        cordons.first().map(|r| r.status),
        Some(429),
        "the first cordon is the one throttled"
    );
    let cordoned = cordons
        .iter()
        .find(|r| r.status == 200)
        .expect("cordoned")
        .at;
    // No other node write went out between them either (our records wait for the cordon's
    // Retry-After, and its retry carries them).
    let between: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.starts_with(&node))
        .filter(|r| r.at > cordons[0].at && r.at < cordoned)
        .map(|r| r.body.as_str())
        .collect();
    assert!(between.is_empty(), "written while throttled: {between:?}");
    // The drain waited for the cordon's retry: no pod was listed or evicted before it held.
    let drained_early: Vec<_> = reqs
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/pods?") || r.path.ends_with("/eviction"))
        .filter(|r| r.at < cordoned)
        .map(|r| r.path.as_str())
        .collect();
    assert!(
        drained_early.is_empty(),
        "before the cordon: {drained_early:?}"
    );
    // Nothing of the Events or the condition went out between the throttled cordon and the
    // cordon that held.
    let reports: Vec<_> = reqs
        .iter()
        .filter(|r| r.at >= cordons[0].at)
        .filter(|r| r.path.contains("/events") || r.path.ends_with("/status"))
        .collect();
    assert!(!reports.is_empty(), "Events and the condition are written");
    for r in &reports {
        assert!(
            r.at >= cordoned,
            "{} {} went out before the cordon held",
            r.method,
            r.path
        );
    }
    // The first Event: shed, 1 s, shed again, 2 s (doubled), then created.
    let events: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/events"))
        .collect();
    assert!(events.len() >= 3, "{} Event requests", events.len());
    assert_eq!((events[0].status, events[1].status), (429, 429));
    assert!(
        (200..300).contains(&events[2].status),
        "{}",
        events[2].status
    );
    let (gap1, gap2) = (events[1].at - events[0].at, events[2].at - events[1].at);
    assert!(gap1 >= Duration::from_millis(950), "{gap1:?}");
    assert!(
        gap2 >= Duration::from_millis(1950),
        "{gap2:?} after a second shed answer in a row"
    );
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_cordon_throttled_again_and_again_holds_the_drain_back_no_longer_than_five_seconds() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let node = format!("/api/v1/nodes/{NODE}");
    // API Priority and Fairness sheds the cordon 8 times (Retry-After: 1 each).
    sim.fault_body(
        "PATCH",
        &node,
        "\"unschedulable\":true",
        8,
        FaultAction::shed(),
    );
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    eventually("the ninth cordon holds", LONG, || {
        sim.node(NODE).unwrap()["spec"]["unschedulable"] == true
    });
    assert_drained_in_time(&sim, &h, deadline);
    let reqs = sim.api_requests();
    let cordons: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == node)
        .filter(|r| r.body.contains("\"unschedulable\":true"))
        .collect();
    assert_eq!(cordons.len(), 9, "8 shed, then the one that held");
    assert!(cordons[..8].iter().all(|r| r.status == 429));
    assert_eq!(cordons[8].status, 200);
    // Each retry waited the Retry-After, never less.
    for w in cordons.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(990),
            "cordon retried after {gap:?}"
        );
    }
    // The drain waited for the first retries, then went on without the cordon: its first
    // pod list came after the first shed answer, and at most 5 s (the limit) and a step later.
    let first_list = reqs
        .iter()
        .find(|r| r.path.starts_with("/api/v1/pods?"))
        .expect("pods listed")
        .at;
    let held = first_list - cordons[0].at;
    assert!(held >= Duration::from_millis(990), "{held:?}");
    assert!(held < Duration::from_millis(6500), "{held:?}");
    assert!(
        first_list < cordons[8].at,
        "the drain did not wait for the cordon forever"
    );
    h.wait_for("could not cordon the node; draining anyway", LONG);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_throttled_taint_patch_is_retried_without_sending_the_same_annotations_again() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let node = format!("/api/v1/nodes/{NODE}");
    // The cordon holds; the taint patch after it is throttled twice.
    sim.fault_body("PATCH", &node, "\"taints\"", 2, FaultAction::Throttle(1));
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    eventually("our taint is on the node", LONG, || {
        our_taints(&sim.node(NODE).unwrap()).len() == 1
    });
    assert_drained_in_time(&sim, &h, deadline);
    let patches: Vec<_> = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == node)
        .collect();
    assert!(
        patches[0].body.contains("\"unschedulable\":true") && patches[0].status == 200,
        "the cordon came first and held: {}",
        patches[0].body
    );
    let taints: Vec<u16> = patches
        .iter()
        .filter(|r| r.body.contains("\"taints\""))
        .map(|r| r.status)
        .collect();
    assert_eq!(&taints[..2], &[429, 429], "taint patches");
    assert_eq!(taints.last(), Some(&200), "taint patches {taints:?}");
    // The log does not claim the cordon failed: it held.
    assert_eq!(h.count("cordon failed"), 0, "{}", h.dump());
    assert!(h.count("node cordoned, but writing its taints or our records failed") >= 1);
    // Each write of our annotations says something new: none repeats the last one that held.
    let annotations = |r: &stnh_sim::ApiRequest| {
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["metadata"]["annotations"].clone()
    };
    let mut written = serde_json::Value::Null;
    for r in patches
        .iter()
        .filter(|r| r.body.contains("\"annotations\""))
    {
        let a = annotations(r);
        assert_ne!(a, written, "the same annotations sent again");
        if r.status == 200 {
            written = a;
        }
    }
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn answers_slower_than_the_timeout_are_given_up_and_retried() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    // Applied at once, answered after the handler's 10 s request timeout: the cordon, the pod
    // list and one eviction.
    let slow = FaultAction::Slow(Duration::from_secs(13));
    sim.fault("PATCH", &format!("/api/v1/nodes/{NODE}"), 1, slow.clone());
    sim.fault("GET", "/api/v1/pods?", 1, slow.clone());
    sim.fault(
        "POST",
        "/api/v1/namespaces/data/pods/db-0/eviction",
        1,
        slow,
    );
    let deadline = deadline_in(120);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("msg=\"cordon failed; will retry\"", LONG);
    assert!(line.contains("timed out"), "{line}");
    let line = h.wait_for("listing pods failed; retrying", LONG);
    assert!(line.contains("timed out"), "{line}");
    let line = h.wait_for("eviction not accepted; retrying", LONG);
    assert!(
        line.contains("timed out") && line.contains("db-0"),
        "{line}"
    );
    assert_drained_in_time(&sim, &h, deadline);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_connection_cut_in_the_middle_of_a_body_is_retried() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    // The first pod list and one eviction answer: headers, half the body, then the connection
    // dies (no TLS close_notify).
    sim.fault(
        "GET",
        "/api/v1/pods?",
        1,
        FaultAction::Truncate(Cut::MidBody),
    );
    let evict = "/api/v1/namespaces/shop/pods/cache-0/eviction";
    sim.fault("POST", evict, 1, FaultAction::Truncate(Cut::MidBody));
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("listing pods failed; retrying", LONG);
    assert!(line.contains("connection closed inside the body"), "{line}");
    assert_drained_in_time(&sim, &h, deadline);
    let lists = sim
        .api_requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/v1/pods?"))
        .count();
    assert!(lists >= 2, "the list was asked again");
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_chunked_body_without_its_last_chunk_is_an_error_not_a_short_list() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    // The pod list (several KiB: chunked) arrives whole but for the terminating zero chunk.
    sim.fault(
        "GET",
        "/api/v1/pods?",
        1,
        FaultAction::Truncate(Cut::BeforeLastChunk),
    );
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("listing pods failed; retrying", LONG);
    assert!(
        line.contains("connection closed before the end of the response"),
        "{line}"
    );
    assert_drained_in_time(&sim, &h, deadline);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_410_on_a_continue_token_restarts_the_list_from_the_first_page() {
    // 520 completed Job pods: more than one 500-pod page.
    let mut s = mixed_node();
    for i in 0..520 {
        s = s.pod(
            PodSpec::new("batch", &format!("done-{i:03}"))
                .job("nightly")
                .phase("Succeeded"),
        );
    }
    let sim = Sim::start(s).unwrap();
    let h = Handler::start_idle(&sim, &[("EVENTS", "false"), ("NODE_CONDITION", "false")]);
    let first = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}&limit=500");
    let expired = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.","reason":"Expired","code":410}"#;
    sim.fail_next("GET", &format!("{first}&continue="), 1, 410, expired);
    let deadline = deadline_in(120);
    sim.set_notice("terminate", deadline);
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(
        done.contains(" evicted=526 ") && done.contains(" failed=0 "),
        "{done}"
    );
    let lists: Vec<(String, u16)> = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/v1/pods?"))
        .map(|r| {
            let page = if r.path.contains("&continue=") {
                "next"
            } else {
                "first"
            };
            (page.to_string(), r.status)
        })
        .take(4)
        .collect();
    let want: Vec<(String, u16)> = [("first", 200), ("next", 410), ("first", 200), ("next", 200)]
        .iter()
        .map(|(p, s)| (p.to_string(), *s))
        .collect();
    assert_eq!(lists, want);
    let at = drained_at(&sim).expect("phase=drained");
    assert!(at < deadline);
    assert_eq!(sim.pods_on(NODE).len(), 3);
    // Each pod once: no page was read twice into the list.
    let evictions = sim
        .api_requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .count();
    assert_eq!(evictions, 526);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn the_token_rotated_mid_drain_is_reread_and_the_drain_completes() {
    // A pod that takes 3 s to stop keeps the drain going after the evictions.
    let sim = Sim::start(
        mixed_node().pod(
            PodSpec::new("shop", "slow-0")
                .replicaset("slow-5d9")
                .shutdown(Duration::from_secs(3))
                .grace(30),
        ),
    )
    .unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    eventually("the slow pod's eviction is accepted", LONG, || {
        eviction_statuses(&sim, "shop/slow-0") == [201]
    });
    let old = sim.token();
    let seen = sim.api_requests().len();
    sim.rotate_token();
    let new = sim.token();
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(
        done.contains(" evicted=7 ") && done.contains(" failed=0 "),
        "{done}\n{}",
        h.dump()
    );
    let after: Vec<_> = sim.api_requests().into_iter().skip(seen).collect();
    let refused = after.iter().filter(|r| r.status == 401).count();
    assert!(refused >= 1, "the old token was refused mid-drain");
    assert!(after
        .iter()
        .filter(|r| r.status == 401)
        .all(|r| r.token.as_deref() == Some(old.as_str())));
    assert!(after
        .iter()
        .any(|r| r.token.as_deref() == Some(new.as_str()) && (200..300).contains(&r.status)));
    assert!(h.count("re-reading the service-account token") >= 1);
    eventually("phase=drained is recorded", LONG, || {
        drained_at(&sim).is_some()
    });
    assert!(drained_at(&sim).unwrap() < deadline);
    assert_eq!(
        annotation(&sim.node(NODE).unwrap(), "phase").as_deref(),
        Some("drained")
    );
    assert_alive_and_polling(&sim, &h);
}

// ---------------------------------------------------------------------------------------------
// Metadata service.

#[test]
fn metadata_503_storms_before_and_during_the_drain() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::Required)).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    // A storm on the notice path and on the token endpoint: the notice behind it is seen
    // once the storm is over.
    sim.imds_fail_path(ACTION, Some(503));
    sim.set_imds_mode(ImdsMode::TokenStatus(503));
    sim.revoke_imds_tokens();
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    eventually("a storm of 503s", LONG, || {
        sim.imds_requests()
            .iter()
            .filter(|r| r.status == 503)
            .count()
            >= 10
    });
    h.wait_for("metadata poll failed", LONG);
    assert_eq!(h.count("msg=\"cordoned node\""), 0);
    sim.imds_fail_path(ACTION, None);
    sim.set_imds_mode(ImdsMode::Required);
    h.wait_for("msg=\"cordoned node\"", LONG);
    // And again while the drain runs.
    sim.imds_fail_path(ACTION, Some(503));
    assert_drained_in_time(&sim, &h, deadline);
    sim.imds_fail_path(ACTION, None);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_token_endpoint_that_hangs_mid_drain_holds_up_nothing() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::Required)).unwrap();
    let h = Handler::start_idle(&sim, &[("IMDS_TIMEOUT", "1s")]);
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    h.wait_for("msg=\"cordoned node\"", LONG);
    // Mid-drain the token expires and the token endpoint stops answering.
    sim.set_imds_mode(ImdsMode::TokenHang);
    sim.revoke_imds_tokens();
    let puts = |sim: &Sim| {
        sim.imds_requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count()
    };
    let before = puts(&sim);
    eventually("a token PUT was left hanging", LONG, || puts(&sim) > before);
    assert_drained_in_time(&sim, &h, deadline);
    sim.set_imds_mode(ImdsMode::Required);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_token_that_expires_mid_drain_is_renewed() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::Required)).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    h.wait_for("msg=\"cordoned node\"", LONG);
    let seen = sim.imds_requests().len();
    sim.revoke_imds_tokens();
    assert_drained_in_time(&sim, &h, deadline);
    eventually("a 401, a new token, good polls", LONG, || {
        let r: Vec<_> = sim.imds_requests().into_iter().skip(seen).collect();
        r.iter().position(|x| x.status == 401).is_some_and(|i| {
            r[i..].iter().any(|x| x.method == "PUT" && x.status == 200)
                && r[i..]
                    .iter()
                    .filter(|x| x.path == ACTION && x.status == 200 && x.token_valid)
                    .count()
                    >= 2
        })
    });
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_metadata_answer_that_trickles_one_byte_a_second_times_out() {
    let sim = Sim::start(mixed_node()).unwrap();
    let imds = SocketAddr::from((
        [127, 0, 0, 1],
        sim.imds_url()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap(),
    ));
    let relay = Relay::start(imds, Mode::Forward);
    let h = Handler::start_idle(&sim, &[("IMDS_URL", &relay.url()), ("IMDS_TIMEOUT", "2s")]);
    let deadline = deadline_in(90);
    sim.set_notice("terminate", deadline);
    h.wait_for("msg=\"cordoned node\"", LONG);
    // Mid-drain every metadata answer trickles: each poll must end at its timeout.
    relay.set(Mode::Trickle);
    let at = relay.accepted();
    let line = h.wait_for("metadata poll failed", LONG);
    assert!(
        line.contains("timed out") || line.contains("timeout"),
        "{line}"
    );
    eventually("the polls go on, each ending at its timeout", LONG, || {
        relay.accepted() >= at + 3
    });
    assert_drained_in_time(&sim, &h, deadline);
    relay.set(Mode::Forward);
    assert_eq!(relay.mode(), Mode::Forward);
    h.wait_for("metadata polling recovered", LONG);
    assert_alive_and_polling(&sim, &h);
}

// ---------------------------------------------------------------------------------------------
// Webhooks and Slack.

/// A notice drained with Slack at `slack_url` and the webhook at `webhook_url`, both failing
/// with `fault`: the drain completes on time, both failures are logged, polling goes on.
fn notify_fault_row(sim: &Sim, h: &Handler, deadline: SystemTime, fault: &[&str]) {
    assert_drained_in_time(sim, h, deadline);
    for what in [
        "Slack message not delivered",
        "webhook message not delivered",
    ] {
        let line = h.wait_for(what, LONG);
        assert!(
            fault.iter().any(|f| line.contains(f)),
            "{what}: expected one of {fault:?}: {line}"
        );
    }
    assert_alive_and_polling(sim, h);
}

#[test]
fn a_hanging_webhook_and_slack_hold_up_nothing() {
    let sim = Sim::start(mixed_node().slack_mode(SlackMode::Hang).webhook_sink_with(
        WebhookKind::Generic,
        SinkTls::Plain,
        WebhookMode::Hang(Duration::from_secs(30)),
    ))
    .unwrap();
    let url = sim.webhook(WebhookKind::Generic).unwrap().url();
    let h = Handler::start_idle(&sim, &[("WEBHOOK_URL", &url)]);
    let deadline = deadline_in(60);
    sim.set_notice("terminate", deadline);
    notify_fault_row(&sim, &h, deadline, &["timed out"]);
}

#[test]
fn webhook_and_slack_500s_hold_up_nothing() {
    let sim = Sim::start(
        mixed_node()
            .slack_mode(SlackMode::Status(500, "rollup_error".into()))
            .webhook_sink_with(
                WebhookKind::Generic,
                SinkTls::Plain,
                WebhookMode::Status(500, "internal error".into()),
            ),
    )
    .unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let h = Handler::start_idle(&sim, &[("WEBHOOK_URL", &sink.url())]);
    let deadline = deadline_in(60);
    sim.set_notice("terminate", deadline);
    notify_fault_row(&sim, &h, deadline, &["500"]);
    assert!(sink.requests().len() >= 2, "retried");
}

#[test]
fn a_tls_failure_at_the_webhook_and_slack_holds_up_nothing() {
    let sim = Sim::start(mixed_node().webhook_sink_with(
        WebhookKind::Generic,
        SinkTls::Untrusted,
        WebhookMode::Ok,
    ))
    .unwrap();
    // Slack at an https sink whose certificate no root trusts.
    let slack =
        WebhookSink::start_with(WebhookKind::Generic, SinkTls::Untrusted, WebhookMode::Ok).unwrap();
    let slack_url = slack
        .url()
        .split("/hooks/")
        .next()
        .map(|base| format!("{base}{}", stnh_sim::slack::WEBHOOK_PATH))
        .unwrap();
    let url = sim.webhook(WebhookKind::Generic).unwrap().url();
    let h = Handler::start_idle(&sim, &[("WEBHOOK_URL", &url), ("SLACK_URL", &slack_url)]);
    let deadline = deadline_in(60);
    sim.set_notice("terminate", deadline);
    notify_fault_row(&sim, &h, deadline, &["TLS", "certificate"]);
    assert!(
        sim.webhook(WebhookKind::Generic)
            .unwrap()
            .requests()
            .is_empty()
            && slack.requests().is_empty(),
        "nothing was sent over a connection that failed verification"
    );
}

/// Runs `cmd` in a mount namespace whose `/etc/resolv.conf` names 127.0.0.1 only, so a name
/// lookup cannot leave the machine; `None` where mount namespaces are unavailable.
fn with_local_resolver(resolv: &std::path::Path) -> Option<Command> {
    let probe = Command::new("unshare")
        .args(["--mount", "--fork", "true"])
        .status();
    let mut mapped = false;
    if !probe.is_ok_and(|s| s.success()) {
        // Without root, a user namespace gives the mount namespace.
        let probe = Command::new("unshare")
            .args(["-r", "--mount", "--fork", "true"])
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        mapped = true;
    }
    let mut cmd = Command::new("unshare");
    if mapped {
        cmd.arg("-r");
    }
    cmd.args(["--mount", "--fork", "--kill-child", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/resolv.conf && exec "$2""#)
        .arg("sh")
        .arg(resolv)
        .arg(BIN);
    Some(cmd)
}

#[test]
fn an_unresolvable_webhook_and_slack_host_hold_up_nothing() {
    let dir = std::env::temp_dir().join(format!("stnh-resolv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    let Some(cmd) = with_local_resolver(&resolv) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this test needs `unshare --mount` (root, or user namespaces) to keep name lookups on 127.0.0.1"
        );
        eprintln!("\n!!! SKIPPED an_unresolvable_webhook_and_slack_host_hold_up_nothing: no mount namespace here (CI fails instead).\n");
        return;
    };
    let sim = Sim::start(mixed_node()).unwrap();
    let env = handler_env(
        &sim,
        &[
            (
                "WEBHOOK_URL",
                "https://hook.invalid/hooks/stnhCanaryWebhookUrl",
            ),
            (
                "SLACK_URL",
                "https://hooks.invalid/services/T000/B000/XXXXSECRETXXXX",
            ),
        ],
    );
    let h = Handler::start_cmd(cmd, env);
    h.wait_for("polling", LONG);
    eventually("start-up calls done", LONG, || {
        sim.api_requests().iter().any(|r| r.path == "/api/v1")
    });
    let deadline = deadline_in(60);
    sim.set_notice("terminate", deadline);
    notify_fault_row(
        &sim,
        &h,
        deadline,
        &[
            "resolve",
            "lookup",
            "DNS",
            "dns",
            "failed to look up",
            "Name or service",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Clock.

#[test]
fn a_notice_time_far_in_the_future_still_drains_now() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    // Year 9999: the largest time the format can say. A spot notice is acted on at once, and
    // a time further ahead than any cloud announces one is not believed: the deadline is
    // AWS's two minutes from when the notice was seen, so blocked pods are deleted in time.
    sim.set_notice_body(Some(
        br#"{"action":"terminate","time":"9999-12-31T23:59:59Z"}"#.to_vec(),
    ));
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    let deadline = deadline_in(60);
    assert_drained_in_time(&sim, &h, deadline);
    let node = sim.node(NODE).unwrap();
    let d = deadline_annotation(&node).expect("a deadline annotation");
    let ahead = d
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    assert!(ahead <= 120, "deadline {ahead} s ahead: {node:#}");
    assert_eq!(
        h.count("spot notice time is implausibly far ahead"),
        1,
        "{}",
        h.dump()
    );
    assert!(h
        .dump()
        .contains("notice=aws-spot/terminate/9999-12-31T23:59:59Z"));
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_node_clock_ahead_of_the_metadata_service_is_corrected() {
    // The node's clock is 10 minutes ahead: a notice 60 s ahead on the metadata clock would
    // look 9 minutes past.
    let sim = Sim::start(mixed_node().clock_skew(-600_000)).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    sim.set_notice("terminate", SystemTime::now() - Duration::from_secs(540));
    h.wait_for("clock differs from the metadata service", LONG);
    let line = h.wait_for("spot interruption notice received", LONG);
    let left: f64 = line
        .split("seconds_left=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((45.0..=61.0).contains(&left), "{line}");
    assert_eq!(h.count("deadline has already passed"), 0, "{}", h.dump());
    // Drained before the deadline as this machine's clock sees it: 60 s from now.
    assert_drained_in_time(&sim, &h, deadline_in(60));
    assert_alive_and_polling(&sim, &h);
}
