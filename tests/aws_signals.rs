//! Every AWS signal through the one pipeline, with the real binary against the simulator:
//! rebalance recommendations, scheduled events, the ASG lifecycle, spot stop/return, several
//! signals at once, undo (and what it leaves alone), restarts, a lying clock, sources turned off.
//! Each test asserts the requests and the final Node (unschedulable, taints, label, annotations).

mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use stnh_sim::{MaintenanceEvent, PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);
const PREFIX: &str = "spot-termination-notice-handler/";
const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
const SCHEDULED: &str = "/latest/meta-data/events/maintenance/scheduled";
const LIFECYCLE: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";

/// An uptime file saying the machine booted `secs` ago.
fn uptime(test: &str, secs: f64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uptime");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(test);
    std::fs::write(&f, format!("{secs:.2} 100.00\n")).unwrap();
    f
}

/// Our taints on a node, by reason (the key without our prefix).
fn our_reasons(node: &Value) -> Vec<String> {
    our_taints(node)
        .iter()
        .filter_map(|k| k.strip_prefix(PREFIX))
        .map(String::from)
        .collect()
}

fn unschedulable(node: &Value) -> bool {
    node["spec"]["unschedulable"] == true
}

fn ledger(node: &Value) -> Vec<Value> {
    annotation(node, "notices")
        .map(|j| serde_json::from_str::<Vec<Value>>(&j).unwrap())
        .unwrap_or_default()
}

fn slack_texts(sim: &Sim) -> Vec<String> {
    sim.slack_messages()
        .iter()
        .map(|m| m.text().unwrap_or_default().to_string())
        .collect()
}

/// A node with two evictable pods (and the handler's own).
fn small_node() -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .handler_pod()
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .shutdown(quick),
        )
}

fn evictions(sim: &Sim) -> usize {
    sim.api_requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .count()
}

#[test]
fn a_rebalance_recommendation_cordons_without_evicting_then_its_ttl_gives_the_node_back() {
    let sim = Sim::start(small_node().rebalance_after(Duration::from_millis(300))).unwrap();
    let up = uptime("rebalance_ttl", 100_000.0);
    let h = Handler::start(
        &sim,
        &[
            ("REBALANCE_TTL", "3s"),
            ("UPTIME_FILE", up.to_str().unwrap()),
        ],
    );
    h.wait_for("rebalance recommendation notice received", LONG);
    eventually("cordoned with the rebalance taint", LONG, || {
        let n = sim.node(NODE).unwrap();
        unschedulable(&n) && our_reasons(&n) == ["rebalance-recommendation"]
    });
    let n = sim.node(NODE).unwrap();
    assert!(
        n["metadata"]["labels"][LB_LABEL].is_null(),
        "a cordon is not a drain: no load-balancer label"
    );
    assert_eq!(annotation(&n, "phase").as_deref(), Some("cordoned"));
    h.wait_for("msg=\"node back in service\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(!unschedulable(&n) && our_reasons(&n).is_empty(), "{n}");
    for key in ["phase", "notice", "before", "deadline", "acted-at"] {
        assert_eq!(annotation(&n, key), None, "{key} cleared");
    }
    let l = ledger(&n);
    assert_eq!(
        (l.len(), l[0]["status"].as_str()),
        (1, Some("undone")),
        "the undone recommendation stays on record while it is visible: {l:?}"
    );
    // Still visible on IMDS, never applied again.
    let node_patches = |sim: &Sim| {
        action_requests(sim)
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    };
    let patches_after_undo = node_patches(&sim);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !unschedulable(&sim.node(NODE).unwrap()),
        "the same noticeTime is not applied again"
    );
    assert_eq!(node_patches(&sim), patches_after_undo);
    assert_eq!(evictions(&sim), 0, "a rebalance cordon evicts nothing");
    eventually("two messages", LONG, || sim.slack_messages().len() == 2);
    let texts = slack_texts(&sim);
    assert!(
        texts[0].starts_with("Rebalance Recommendation (sim-cluster): node-a")
            && texts[0].contains("Cordoning the node; its pods stay."),
        "{texts:?}"
    );
    assert!(
        texts[1].contains("back in service") && texts[1].contains("time to live passed"),
        "{texts:?}"
    );
    record_requests("rebalance_ttl", &sim);
}

#[test]
fn a_node_cordoned_by_hand_stays_cordoned_when_the_handler_gives_it_back() {
    let sim = Sim::start(small_node()).unwrap();
    let mut c = stnh_sim::testclient::Client::api(&sim).unwrap();
    let r = c
        .call(
            "PATCH",
            &format!("/api/v1/nodes/{NODE}"),
            &sim.token(),
            Some("application/merge-patch+json"),
            r#"{"spec":{"unschedulable":true}}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let h = Handler::start_idle(&sim, &[("REBALANCE_TTL", "2s")]);
    sim.set_rebalance(Some(SystemTime::now()));
    h.wait_for("released the node but left it cordoned", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(unschedulable(&n), "cordoned by hand: stays cordoned");
    assert!(our_reasons(&n).is_empty(), "our taint is gone");
    assert_eq!(annotation(&n, "before"), None);
    eventually("two messages", LONG, || sim.slack_messages().len() == 2);
    assert!(
        slack_texts(&sim)[1].contains("stays cordoned: it was cordoned before our notice"),
        "{:?}",
        slack_texts(&sim)
    );
    record_requests("hand_cordoned", &sim);
}

#[test]
fn a_rebalance_then_the_two_minute_notice_drains_with_both_taints() {
    let sim = Sim::start(
        small_node()
            .rebalance_after(Duration::from_millis(200))
            .notice_after(
                Duration::from_millis(2500),
                "terminate",
                Duration::from_secs(90),
            ),
    )
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("rebalance recommendation notice received", LONG);
    h.wait_for("spot interruption notice received", LONG);
    h.wait_for("msg=\"drain finished\"", LONG);
    let n = sim.node(NODE).unwrap();
    let mut taints = our_reasons(&n);
    taints.sort();
    assert_eq!(taints, ["rebalance-recommendation", "spot-interruption"]);
    assert_eq!(
        n["metadata"]["labels"][LB_LABEL],
        "spot-termination-notice-handler"
    );
    assert_eq!(annotation(&n, "phase").as_deref(), Some("drained"));
    assert!(annotation(&n, "notice")
        .unwrap()
        .starts_with("aws-spot/terminate/"));
    assert_eq!(evictions(&sim), 2);
    // The rebalance cordon came first and evicted nothing.
    let first_eviction = sim
        .api_requests()
        .iter()
        .position(|r| r.path.ends_with("/eviction"))
        .unwrap();
    assert!(
        h.position("rebalance recommendation notice received")
            < h.position("spot interruption notice received")
    );
    assert!(first_eviction > 3);
    record_requests("rebalance_then_spot", &sim);
}

#[test]
fn a_scheduled_reboot_is_announced_drained_at_its_lead_and_undone_after_the_reboot() {
    let event = MaintenanceEvent::new("system-reboot", 8).id("instance-event-0d59937288b749b32");
    let sim = Sim::start(small_node().scheduled_event_after(Duration::ZERO, event)).unwrap();
    let up = uptime("scheduled_reboot", 100_000.0);
    let env = [
        ("SCHEDULED_EVENT_LEAD", "5s"),
        ("UPTIME_FILE", up.to_str().unwrap()),
    ];
    let mut first = Handler::start(&sim, &env);
    first.wait_for(
        "scheduled maintenance notice received; acting on it later",
        LONG,
    );
    eventually("the announcement reached Slack", LONG, || {
        !sim.slack_messages().is_empty()
    });
    assert!(
        !unschedulable(&sim.node(NODE).unwrap()),
        "nothing happens before the lead"
    );
    let text = &slack_texts(&sim)[0];
    assert!(
        text.starts_with("Scheduled Maintenance (sim-cluster): node-a")
            && text.contains("Action: system-reboot")
            && text.contains("We will drain the node at"),
        "{text}"
    );
    first.wait_for("scheduled notice is due; acting on it", LONG);
    first.wait_for("msg=\"drain finished\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(unschedulable(&n) && our_reasons(&n) == ["scheduled-maintenance"]);
    assert!(
        annotation(&n, "deadline").is_some(),
        "the event's start is the deadline"
    );
    // The reboot: the handler dies with the machine, the event completes, the machine boots.
    eventually("announcement and summary delivered", LONG, || {
        sim.slack_messages().len() == 2
    });
    first.kill();
    assert!(sim.complete_scheduled_event("instance-event-0d59937288b749b32"));
    std::fs::write(&up, "5.00 1.00\n").unwrap();
    let second = Handler::start(&sim, &env);
    second.wait_for("msg=\"node back in service\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(!unschedulable(&n) && our_reasons(&n).is_empty(), "{n}");
    assert!(n["metadata"]["labels"][LB_LABEL].is_null());
    assert_eq!(annotation(&n, "notices"), None, "nothing left to remember");
    eventually("announcement, summary, back in service", LONG, || {
        sim.slack_messages().len() == 3
    });
    assert!(slack_texts(&sim)[2].contains("back in service"));
    record_requests("scheduled_reboot", &sim);
}

#[test]
fn a_cancelled_scheduled_event_gives_the_node_back() {
    let event = MaintenanceEvent::new("instance-stop", 10).id("instance-event-cancelme");
    let sim = Sim::start(small_node().scheduled_event_after(Duration::ZERO, event)).unwrap();
    let h = Handler::start(&sim, &[("SCHEDULED_EVENT_LEAD", "9s")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    assert!(unschedulable(&sim.node(NODE).unwrap()));
    assert!(sim.cancel_scheduled_event("instance-event-cancelme"));
    h.wait_for("reason=\"cancelled before it started\"", LONG);
    h.wait_for("msg=\"node back in service\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(!unschedulable(&n) && our_reasons(&n).is_empty());
    assert!(n["metadata"]["labels"][LB_LABEL].is_null());
    record_requests("scheduled_cancelled", &sim);
}

#[test]
fn an_asg_termination_drains_by_its_deadline_and_stays() {
    let sim = Sim::start(small_node().asg_terminated_after(Duration::from_millis(300))).unwrap();
    let h = Handler::start(&sim, &[("ASG_LIFECYCLE_DEADLINE", "60s")]);
    let line = h.wait_for("termination notice received", LONG);
    assert!(
        line.contains("notice=aws-asg/terminated") && line.contains("deadline_given=false"),
        "{line}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(unschedulable(&n) && our_reasons(&n) == ["termination"]);
    let deadline = stnh_sim::util::parse_rfc3339(&annotation(&n, "deadline").unwrap()).unwrap();
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        left > Duration::from_secs(40) && left <= Duration::from_secs(60),
        "deadline is first sight + 60 s: {left:?}"
    );
    assert_eq!(evictions(&sim), 2);
    record_requests("asg_terminated", &sim);
}

#[test]
fn a_spot_stop_is_undone_when_the_instance_comes_back() {
    let sim = Sim::start(small_node().notice_after(
        Duration::from_millis(300),
        "stop",
        Duration::from_secs(60),
    ))
    .unwrap();
    let up = uptime("spot_stop", 100_000.0);
    let env = [("UPTIME_FILE", up.to_str().unwrap())];
    let mut first = Handler::start(&sim, &env);
    first.wait_for("msg=\"drain finished\"", LONG);
    eventually("notice and summary delivered", LONG, || {
        sim.slack_messages().len() == 2
    });
    first.kill();
    // Stopped and started again: the machine booted after we acted, and the notice is gone.
    // (A notice still served but older than the boot is stale: the decision's table tests.)
    sim.clear_notice();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&up, "0.10 0.05\n").unwrap();
    let second = Handler::start(&sim, &env);
    second.wait_for("msg=\"node back in service\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(!unschedulable(&n) && our_reasons(&n).is_empty());
    eventually("notice, summary, back", LONG, || {
        sim.slack_messages().len() == 3
    });
    assert!(slack_texts(&sim)[2].contains("machine came back"));
    record_requests("spot_stop_return", &sim);
}

#[test]
fn a_lying_node_clock_is_corrected_by_the_metadata_date_header() {
    // The node's clock is 5 minutes behind the metadata service: a notice 60 s ahead in the
    // service's clock is 60 s ahead, not 6 minutes.
    let sim = Sim::start(small_node().clock_skew(300_000).notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("clock differs from the metadata service", LONG);
    let line = h.wait_for("spot interruption notice received", LONG);
    let left: f64 = line
        .split("seconds_left=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        (50.0..=61.0).contains(&left),
        "seconds_left measured on the metadata clock: {line}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_source_that_is_off_makes_no_request() {
    let sim = Sim::start(small_node()).unwrap();
    let h = Handler::start_idle(
        &sim,
        &[
            ("REBALANCE", "off"),
            ("SCHEDULED_EVENTS", "off"),
            ("ASG_LIFECYCLE", "off"),
        ],
    );
    let line = h.wait_for("msg=watching", LONG);
    assert!(line.contains("sources=aws-spot"), "{line}");
    eventually("ten spot polls", LONG, || {
        sim.imds_count("/latest/meta-data/spot/instance-action") >= 10
    });
    for p in [REBALANCE, SCHEDULED, LIFECYCLE] {
        assert_eq!(sim.imds_count(p), 0, "{p}");
    }
    // And with the defaults each is polled, at its own slower period.
    let sim = Sim::start(small_node()).unwrap();
    let _h = Handler::start_idle(&sim, &[]);
    eventually("each source polled", LONG, || {
        [REBALANCE, SCHEDULED, LIFECYCLE]
            .iter()
            .all(|p| sim.imds_count(p) >= 1)
    });
    eventually("ten spot polls", LONG, || {
        sim.imds_count("/latest/meta-data/spot/instance-action") >= 10
    });
    assert!(
        sim.imds_count(REBALANCE) < sim.imds_count("/latest/meta-data/spot/instance-action") / 3
    );
}

#[test]
fn a_restart_while_cordoned_or_pending_repeats_nothing() {
    let event = MaintenanceEvent::new("system-reboot", 3600).id("instance-event-later");
    let sim = Sim::start(
        small_node()
            .rebalance_after(Duration::ZERO)
            .scheduled_event_after(Duration::ZERO, event),
    )
    .unwrap();
    let mut first = Handler::start(&sim, &[]);
    first.wait_for(
        "scheduled maintenance notice received; acting on it later",
        LONG,
    );
    first.wait_for("rebalance recommendation notice received", LONG);
    eventually("both announcements", LONG, || {
        sim.slack_messages().len() == 2
    });
    eventually("cordoned", LONG, || unschedulable(&sim.node(NODE).unwrap()));
    first.kill();
    settled(&sim);
    let before = sim.api_requests().len();
    let second = Handler::start(&sim, &[]);
    second.wait_for("node carries our record of a notice", LONG);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sim.slack_messages().len(), 2, "no message twice");
    let after: Vec<String> = sim.api_requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        after,
        startup_reads(),
        "only the start-up reads (no Event, no condition write)"
    );
    let n = sim.node(NODE).unwrap();
    assert!(unschedulable(&n) && our_reasons(&n) == ["rebalance-recommendation"]);
    let l = ledger(&n);
    let statuses: Vec<&str> = l.iter().filter_map(|e| e["status"].as_str()).collect();
    assert!(
        statuses.contains(&"pending") && statuses.contains(&"active"),
        "{l:?}"
    );
    record_requests("restart_cordoned_pending", &sim);
}

/// A pod under a budget that never allows an eviction.
fn blocked(s: Scenario) -> Scenario {
    s.pod(
        PodSpec::new("shop", "checkout-1")
            .replicaset("checkout")
            .labels(&[("app", "checkout")])
            .shutdown(Duration::from_millis(300)),
    )
    .pdb(
        "shop",
        "checkout-pdb",
        &[("app", "checkout")],
        None,
        Some(0),
    )
}

fn deletes(sim: &Sim, pod: &str) -> usize {
    sim.api_requests()
        .iter()
        .filter(|r| r.method == "DELETE" && pod_of(&r.path).as_deref() == Some(pod))
        .count()
}

#[test]
fn a_rebalance_drain_never_forces_until_a_spot_notice_brings_a_deadline() {
    let sim =
        Sim::start(blocked(small_node()).rebalance_after(Duration::from_millis(200))).unwrap();
    let h = Handler::start(&sim, &[("REBALANCE", "drain")]);
    h.wait_for("rebalance recommendation notice received", LONG);
    eventually("web pods evicted, checkout refused twice", LONG, || {
        eviction_statuses(&sim, "shop/web-1") == [201]
            && eviction_statuses(&sim, "shop/checkout-1").len() >= 2
    });
    assert_eq!(
        deletes(&sim, "shop/checkout-1"),
        0,
        "no deadline: never forced"
    );
    // The two-minute notice arrives during the rebalance drain: the running drain takes its
    // deadline and may now force (a 40 s window: budgets get ~6.7 s of it).
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(40));
    h.wait_for("the drain's deadline changed", LONG);
    h.wait_for("deleted pod at deadline minus reserve", LONG);
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(done.contains("forced=1"), "{done}");
    assert_eq!(deletes(&sim, "shop/checkout-1"), 1);
    let n = sim.node(NODE).unwrap();
    let mut taints = our_reasons(&n);
    taints.sort();
    assert_eq!(taints, ["rebalance-recommendation", "spot-interruption"]);
    record_requests("rebalance_drain_then_spot", &sim);
}

#[test]
fn a_rebalance_drain_is_stopped_and_the_node_given_back_when_its_ttl_passes() {
    let sim =
        Sim::start(blocked(small_node()).rebalance_after(Duration::from_millis(200))).unwrap();
    let h = Handler::start(&sim, &[("REBALANCE", "drain"), ("REBALANCE_TTL", "4s")]);
    h.wait_for("blocked by disruption budget", LONG);
    h.wait_for("no notice needs the drain any more; stopping it", LONG);
    h.wait_for("drain stopped", LONG);
    h.wait_for("msg=\"node back in service\"", LONG);
    let n = sim.node(NODE).unwrap();
    assert!(!unschedulable(&n) && our_reasons(&n).is_empty());
    assert!(n["metadata"]["labels"][LB_LABEL].is_null());
    let retries = eviction_statuses(&sim, "shop/checkout-1").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        eviction_statuses(&sim, "shop/checkout-1").len(),
        retries,
        "no eviction after the drain stopped"
    );
    assert_eq!(deletes(&sim, "shop/checkout-1"), 0);
    // No "drained" summary for a stopped drain: the notice, then back in service.
    eventually("two messages", LONG, || sim.slack_messages().len() == 2);
    assert!(slack_texts(&sim)[1].contains("back in service"));
}

#[test]
fn the_eviction_delay_waits_for_load_balancers_but_never_eats_the_pods_grace() {
    // 60 s window, a 5 s report margin: pods of 30 s grace leave room for a 25 s pause; 8 s is
    // granted in full.
    let sim = Sim::start(small_node().notice_after(
        Duration::from_millis(300),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[("EVICTION_DELAY", "8s")]);
    let line = h.wait_for("waiting for load balancers to deregister", LONG);
    assert!(line.contains("delay_ms=8000"), "{line}");
    h.wait_for("msg=\"drain finished\"", LONG);
    let reqs = sim.api_requests();
    let labelled = reqs
        .iter()
        .find(|r| r.method == "PATCH" && r.body.contains(LB_LABEL))
        .unwrap()
        .at;
    let first_eviction = reqs
        .iter()
        .find(|r| r.path.ends_with("/eviction"))
        .unwrap()
        .at;
    let pause = first_eviction - labelled;
    assert!(
        pause >= Duration::from_secs(8) && pause < Duration::from_secs(10),
        "{pause:?}"
    );
    // In a short window the delay is cut so the pods keep their grace: 14 s left, 30 s pods:
    // no room at all.
    let sim = Sim::start(small_node().notice_after(
        Duration::from_millis(300),
        "terminate",
        Duration::from_secs(14),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[("EVICTION_DELAY", "8s")]);
    let line = h.wait_for("waiting for load balancers to deregister", LONG);
    assert!(line.contains("delay_ms=0"), "{line}");
}
