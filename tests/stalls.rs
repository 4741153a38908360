//! Peers that accept a connection and then never answer: every exchange (connect, TLS
//! handshake, write, read) is bounded by its timeout and by the deadline, the fault is logged,
//! and the drain goes on. The API server sits behind `stnh_sim::hostile::Proxy`, switched to
//! hold new connections (and stall the open ones) at start-up or mid-drain; Slack is a
//! `BlackHole` over https.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use stnh_sim::hostile::{BlackHole, Proxy, ProxyMode, ProxySwitch};
use stnh_sim::{Sim, SimEvent};
use support::*;

// Generous: under load a stalled exchange, its timeout and the retry add up (the deadline is 90 s).
const LONG: Duration = Duration::from_secs(80);
const ACTION: &str = "/latest/meta-data/spot/instance-action";

fn proxy_for(sim: &Sim) -> Proxy {
    Proxy::start(SocketAddr::from(([127, 0, 0, 1], sim.api_port()))).unwrap()
}

#[test]
fn an_api_server_stalled_at_start_up_times_out_and_polling_goes_on() {
    let sim = Sim::start(mixed_node()).unwrap();
    let proxy = proxy_for(&sim);
    proxy.set_mode(ProxyMode::Hold);
    let port = proxy.addr().port().to_string();
    let h = Handler::start(&sim, &[("KUBERNETES_SERVICE_PORT", &port)]);

    // Each start-up call gives up at its timeout, says why, and start-up goes on.
    let line = h.wait_for("could not read the node", LONG);
    assert!(
        line.contains("TLS handshake") && line.contains("timed out"),
        "{line}"
    );
    let line = h.wait_for("Eviction API discovery failed", LONG);
    assert!(line.contains("timed out"), "{line}");
    let polls_before = |sim: &Sim| {
        sim.imds_requests()
            .iter()
            .filter(|r| r.path == ACTION)
            .count()
    };
    let seen = polls_before(&sim);
    eventually("metadata polling goes on", LONG, || {
        polls_before(&sim) >= seen + 3
    });
    assert!(sim.api_requests().is_empty(), "nothing reached the API");
    assert!(proxy.held() >= 2, "{} connections held", proxy.held());

    // The API server recovers; a notice is acted on.
    proxy.set_mode(ProxyMode::Forward);
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    h.wait_for("msg=\"drain finished\"", LONG);
    assert_eq!(sim.node(NODE).unwrap()["spec"]["unschedulable"], true);
    assert_eq!(sim.pods_on(NODE).len(), 3, "{}", h.dump());
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn an_api_server_stalled_mid_drain_times_out_and_the_drain_goes_on() {
    // When the first pod LIST reaches the API server, the proxy starts holding: the evictions
    // that follow stall (on the LIST's connection and on new ones) until the test lets them
    // through again.
    let switch: Arc<OnceLock<ProxySwitch>> = Arc::new(OnceLock::new());
    let listed = Arc::new(AtomicBool::new(false));
    let (sw, seen) = (switch.clone(), listed.clone());
    let observer: stnh_sim::Observer = Arc::new(move |e: &SimEvent| {
        if let SimEvent::Api(r) = e {
            if r.method == "GET"
                && r.path.starts_with("/api/v1/pods?")
                && !seen.swap(true, Ordering::SeqCst)
            {
                if let Some(s) = sw.get() {
                    s.set(ProxyMode::Hold);
                }
            }
        }
    });
    let sim = Sim::start(mixed_node().observer(observer)).unwrap();
    let proxy = proxy_for(&sim);
    switch.set(proxy.switch()).ok().unwrap();
    let port = proxy.addr().port().to_string();
    let h = Handler::start_idle(&sim, &[("KUBERNETES_SERVICE_PORT", &port)]);

    // The API server stalls just before the notice: the cordon times out and is retried.
    proxy.set_mode(ProxyMode::Hold);
    let deadline = SystemTime::now() + Duration::from_secs(90);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("msg=\"cordon failed; will retry\"", LONG);
    assert!(
        line.contains("TLS handshake") && line.contains("timed out"),
        "{line}"
    );
    proxy.set_mode(ProxyMode::Forward);

    // Stalled again after the LIST (the observer): evictions time out and are retried. The
    // drain does not wait for the cordon, so its LIST may come before the cordon's retry, which
    // the stall then holds too: both get through once the API server is back.
    let line = h.wait_for("eviction not accepted; retrying", LONG);
    assert!(line.contains("timed out"), "{line}");
    assert!(listed.load(Ordering::SeqCst));
    proxy.set_mode(ProxyMode::Forward);
    h.wait_for("msg=\"cordoned node\"", LONG);

    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(
        done.contains("evicted=6") && done.contains("failed=0"),
        "{done}\n{}",
        h.dump()
    );
    assert!(
        SystemTime::now() < deadline,
        "the drain ended before the deadline"
    );
    for pod in MIXED_EVICTABLE {
        assert_eq!(
            eviction_statuses(&sim, pod),
            vec![201],
            "{pod}: a stalled request never reached the server; the retry did, once"
        );
    }
    let node = sim.node(NODE).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(annotation(&node, "phase").as_deref(), Some("drained"));
    eventually("the summary reached Slack", LONG, || {
        sim.slack_messages()
            .iter()
            .any(|m| m.text().is_some_and(|t| t.contains("6 evicted")))
    });
    assert!(proxy.held() >= 2, "{} connections held", proxy.held());
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn slack_over_https_to_a_black_hole_times_out_and_the_drain_goes_on() {
    let hole = BlackHole::start().unwrap();
    let sim = Sim::start(mixed_node().notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let url = format!("https://{}/services/T000/B000/XXXXSECRETXXXX", hole.addr());
    let h = Handler::start(&sim, &[("SLACK_URL", &url)]);
    h.wait_for("msg=\"drain finished\"", LONG);
    let line = h.wait_for("Slack message not delivered", LONG);
    assert!(
        line.contains("TLS handshake") && line.contains("timed out"),
        "{line}"
    );
    assert!(hole.connections() >= 1);
    assert!(sim.pods_on(NODE).len() == 3, "{}", h.dump());
    assert!(
        !h.dump().contains("XXXXSECRETXXXX"),
        "no webhook URL in logs"
    );
    assert_alive_and_polling(&sim, &h);
}
