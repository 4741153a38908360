//! Google Cloud: the real binary against the fake GCE metadata server. Preemption (30 s, with a
//! budget that never allows an eviction), host maintenance and its undo, live migration as a
//! message, a restart mid-preemption, and 503s.

mod support;

use std::time::{Duration, SystemTime};

use stnh_sim::{Cloud, MetaRequest, PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(60);
const PREEMPTED: &str = "instance/preempted";
const MAINTENANCE: &str = "instance/maintenance-event";

/// A GKE spot node: two quick web pods, a checkout pod under a budget (`max_unavailable` 0:
/// never allows an eviction), a DaemonSet pod and the handler's own pod.
fn gke_node(checkout_shutdown: Duration, max_unavailable: i64) -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .cloud(Cloud::Gcp)
        .handler_pod()
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("shop", "checkout-1")
                .replicaset("checkout-5f6")
                .labels(&[("app", "checkout")])
                .grace(30)
                .shutdown(checkout_shutdown),
        )
        .pdb(
            "shop",
            "checkout-pdb",
            &[("app", "checkout")],
            None,
            Some(max_unavailable),
        )
        .pod(PodSpec::new("kube-system", "netd-x1").daemonset("netd"))
}

/// The hanging GETs on `key`, in order.
fn gets(sim: &Sim, key: &str) -> Vec<MetaRequest> {
    sim.gcp_requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&format!("/computeMetadata/v1/{key}?")))
        .collect()
}

fn query<'a>(r: &'a MetaRequest, name: &str) -> Option<&'a str> {
    r.path
        .split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
}

/// Every request to the GCE fake carried the header and asked what it should.
fn assert_gce_requests(sim: &Sim) {
    let all = sim.gcp_requests();
    assert!(!all.is_empty());
    for r in &all {
        assert_eq!(r.header("metadata-flavor"), Some("Google"), "{r:?}");
        assert!(r.header("x-forwarded-for").is_none());
        assert_eq!(r.method, "GET");
    }
    for key in [PREEMPTED, MAINTENANCE] {
        let g = gets(sim, key);
        assert!(!g.is_empty(), "{key} is watched");
        assert_eq!(
            query(&g[0], "last_etag"),
            Some("0"),
            "first: answers at once"
        );
        for r in &g {
            assert_eq!(query(r, "wait_for_change"), Some("true"), "{}", r.path);
            assert_eq!(query(r, "timeout_sec"), Some("60"), "{}", r.path);
        }
        for r in g.iter().skip(1).filter(|r| r.status == 200) {
            let etag = query(r, "last_etag").unwrap();
            assert!(
                etag.len() == 16 && etag.bytes().all(|b| b.is_ascii_hexdigit()),
                "the ETag of the previous answer: {}",
                r.path
            );
        }
    }
    // One request per key in flight at any time: the next one leaves after the previous answer.
    for key in [PREEMPTED, MAINTENANCE] {
        let g = gets(sim, key);
        for w in g.windows(2) {
            assert!(w[1].at >= w[0].answered, "{key}: overlapping requests");
        }
    }
}

/// Starts the handler and waits until both keys are parked in hanging GETs.
fn start_parked(sim: &Sim, extra: &[(&str, &str)]) -> Handler {
    let h = Handler::start_idle(sim, extra);
    eventually("both keys parked", LONG, || sim.gcp_waiters() == 2);
    h
}

#[test]
fn preemption_at_30s_with_a_pdb_drains_in_time_and_forces_the_blocked_pod() {
    let sim = Sim::start(gke_node(Duration::from_secs(1), 0)).unwrap();
    let h = start_parked(&sim, &[]);
    let line = h.wait_for("cloud chosen", LONG);
    assert!(
        line.contains("cloud=gcp") && line.contains("gce://"),
        "{line}"
    );
    sim.gcp_set(PREEMPTED, "TRUE");
    let change = sim.gcp_changes().last().cloned().unwrap();
    let seen = h.wait_for("spot interruption notice received", LONG);
    assert!(
        seen.contains("notice=gcp-preempted") && seen.contains("deadline_given=false"),
        "{seen}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("summary in Slack", LONG, || {
        sim.slack_messages()
            .iter()
            .any(|m| m.body.contains("1 forced at the deadline"))
    });
    record_requests("gcp_preemption_30s_pdb", &sim);
    assert_api_head(&sim);
    assert_gce_requests(&sim);

    // The deadline: first seen + 30 s (GCE gives no time).
    let node = sim.node(NODE).unwrap();
    let deadline = deadline_annotation(&node).unwrap();
    let window = deadline
        .duration_since(change.time)
        .unwrap_or_default()
        .as_secs_f64();
    assert!(
        (28.5..=33.0).contains(&window),
        "deadline {window:.1} s after the change"
    );

    // Cordon first, then evictions; the budget refuses checkout-1 until it is deleted with
    // most of the time that is left; nothing after the deadline.
    let reqs = sim.api_requests();
    let cordon = cordon_patches(&sim);
    assert_eq!(cordon.len(), 1);
    assert!(cordon[0].at >= change.at);
    let evictions = |pod: &str| eviction_statuses(&sim, pod);
    assert_eq!(evictions("shop/web-1"), [201]);
    assert_eq!(evictions("shop/web-2"), [201]);
    let checkout = evictions("shop/checkout-1");
    assert!(
        !checkout.is_empty() && checkout.iter().all(|s| *s == 429),
        "{checkout:?}"
    );
    let deletes: Vec<_> = reqs.iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "only the blocked pod is deleted");
    assert_eq!(pod_of(&deletes[0].path).as_deref(), Some("shop/checkout-1"));
    let body: serde_json::Value = serde_json::from_str(&deletes[0].body).unwrap();
    let grace = body["gracePeriodSeconds"].as_i64().unwrap();
    let left = deadline
        .duration_since(deletes[0].time)
        .unwrap_or_default()
        .as_secs_f64();
    assert!(
        grace >= 1 && (grace as f64) <= left,
        "grace {grace} fits in the {left:.1} s left"
    );
    assert!(
        reqs.iter().all(|r| r.time <= deadline),
        "nothing after the deadline"
    );
    assert!(sim.pods_on(NODE).iter().all(|p| {
        p["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("netd") || n.starts_with("spot-termination"))
    }));
    let node = sim.node(NODE).unwrap();
    assert_held(&node, "spot-interruption", "drained");
    assert_eq!(
        annotation(&node, "notice").as_deref(),
        Some("gcp-preempted")
    );
}

/// The short-window rule: with a 30 s window, budgets are waited for until W/6 = 5 s after
/// detection, then a pod a budget still blocks is deleted with the ~25 s that are left.
#[test]
fn preemption_at_30s_waits_for_budgets_only_a_sixth_of_the_window() {
    let sim = Sim::start(gke_node(Duration::from_secs(1), 0)).unwrap();
    let h = start_parked(&sim, &[]);
    sim.gcp_set(PREEMPTED, "TRUE");
    let change = sim.gcp_changes().last().cloned().unwrap();
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("gcp_preemption_short_window", &sim);
    let reqs = sim.api_requests();
    let delete = reqs
        .iter()
        .find(|r| r.method == "DELETE")
        .expect("the blocked pod is deleted");
    let after = delete.at.duration_since(change.at).as_secs_f64();
    assert!(
        (4.5..=7.5).contains(&after),
        "budgets waited for {after:.1} s of a 30 s window (want W/6 = 5 s)"
    );
    let body: serde_json::Value = serde_json::from_str(&delete.body).unwrap();
    let grace = body["gracePeriodSeconds"].as_i64().unwrap();
    assert!(grace >= 20, "the pod gets most of what is left: {grace} s");
}

#[test]
fn host_maintenance_drains_then_the_node_comes_back_when_the_event_is_over() {
    let sim = Sim::start(gke_node(Duration::from_millis(300), 1)).unwrap();
    let h = start_parked(&sim, &[]);
    sim.gcp_set(MAINTENANCE, "TERMINATE_ON_HOST_MAINTENANCE");
    let change = sim.gcp_changes().last().cloned().unwrap();
    let seen = h.wait_for("scheduled maintenance notice received", LONG);
    assert!(
        seen.contains("notice=gcp-maintenance/TERMINATE_ON_HOST_MAINTENANCE"),
        "{seen}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    let node = sim.node(NODE).unwrap();
    assert_held(&node, "scheduled-maintenance", "drained");
    let window = deadline_annotation(&node)
        .unwrap()
        .duration_since(change.time)
        .unwrap_or_default()
        .as_secs_f64();
    assert!((58.5..=63.0).contains(&window), "deadline +{window:.1} s");
    assert!(sim.api_requests().iter().all(|r| r.method != "DELETE"));

    // Over: the value is NONE again.
    sim.gcp_set(MAINTENANCE, "NONE");
    h.wait_for("node back in service", LONG);
    record_requests("gcp_maintenance_undo", &sim);
    assert_released(&sim.node(NODE).unwrap());
    eventually("the back-in-service message", LONG, || {
        sim.slack_messages()
            .iter()
            .any(|m| m.body.contains("back in service"))
    });
    assert_gce_requests(&sim);
}

#[test]
fn live_migration_is_a_message_only_by_default() {
    let sim = Sim::start(gke_node(Duration::from_millis(300), 1)).unwrap();
    let h = start_parked(&sim, &[]);
    sim.gcp_set(MAINTENANCE, "MIGRATE_ON_HOST_MAINTENANCE");
    let seen = h.wait_for("notice received; message only", LONG);
    assert!(seen.contains("MIGRATE_ON_HOST_MAINTENANCE"), "{seen}");
    eventually("the message", LONG, || {
        sim.slack_messages()
            .iter()
            .any(|m| m.body.contains("MIGRATE_ON_HOST_MAINTENANCE"))
    });
    sim.gcp_set(MAINTENANCE, "NONE");
    eventually("the handler saw NONE", LONG, || {
        gets(&sim, MAINTENANCE).len() >= 3 && sim.gcp_waiters() == 2
    });
    record_requests("gcp_migrate_notify", &sim);
    assert!(cordon_patches(&sim).is_empty(), "never cordoned");
    assert!(sim
        .api_requests()
        .iter()
        .all(|r| !r.path.ends_with("/eviction") && r.method != "DELETE"));
    let node = sim.node(NODE).unwrap();
    assert_ne!(node["spec"]["unschedulable"], true);
    assert!(our_taints(&node).is_empty());
    assert_eq!(sim.pods_on(NODE).len(), 5);
    assert_eq!(sim.slack_messages().len(), 1);
}

#[test]
fn a_restart_mid_preemption_acts_at_once_and_keeps_the_first_deadline() {
    // checkout-1 is blocked by its budget: the drain lasts until the forced delete.
    let sim = Sim::start(gke_node(Duration::from_secs(1), 0)).unwrap();
    let mut first = start_parked(&sim, &[]);
    sim.gcp_set(PREEMPTED, "TRUE");
    first.wait_for("msg=\"spot interruption notice received\"", LONG);
    eventually("the drain is under way", LONG, || {
        !eviction_statuses(&sim, "shop/checkout-1").is_empty()
    });
    let d1 = deadline_annotation(&sim.node(NODE).unwrap()).unwrap();
    first.kill();
    let restarted_at = sim.gcp_requests().len();
    std::thread::sleep(Duration::from_millis(1500)); // the ledger's deadline must not move

    let second = Handler::start(&sim, &[]);
    second.wait_for(
        "resuming the drain this handler started before a restart",
        LONG,
    );
    second.wait_for("msg=\"drain finished\"", LONG);
    record_requests("gcp_restart_mid_preemption", &sim);
    let node = sim.node(NODE).unwrap();
    assert_eq!(
        deadline_annotation(&node),
        Some(d1),
        "the first deadline stays"
    );
    assert_held(&node, "spot-interruption", "drained");
    // The restarted handler read both keys at once (a non-matching ETag answers immediately).
    let after: Vec<_> = sim.gcp_requests().into_iter().skip(restarted_at).collect();
    for key in [PREEMPTED, MAINTENANCE] {
        let r = after
            .iter()
            .find(|r| r.path.starts_with(&format!("/computeMetadata/v1/{key}?")))
            .unwrap();
        assert_eq!(query(r, "last_etag"), Some("0"));
        assert!(
            r.held() < Duration::from_secs(1),
            "{key} held {:?}",
            r.held()
        );
    }
    // Announced once, across both runs.
    assert_eq!(
        sim.slack_messages()
            .iter()
            .filter(|m| m.body.contains("Cordoning and draining"))
            .count(),
        1
    );
    assert!(d1 > SystemTime::now() - Duration::from_secs(60));
}

#[test]
fn a_503_is_retried_after_a_second() {
    // Holds end after a second, so the watchers ask again soon and meet the 503s.
    let sim =
        Sim::start(gke_node(Duration::from_millis(300), 1).gcp_hold_limit(Duration::from_secs(1)))
            .unwrap();
    let h = start_parked(&sim, &[]);
    sim.gcp_fail_next(4, 503);
    h.wait_for("metadata poll failed; still polling", LONG);
    eventually("both recovered", LONG, || {
        h.count("metadata polling recovered") >= 2
    });
    record_requests("gcp_503", &sim);
    let mut failures = 0;
    for key in [PREEMPTED, MAINTENANCE] {
        let g = gets(&sim, key);
        let first = g.iter().position(|r| r.status == 503).unwrap();
        let n = g[first..].iter().take_while(|r| r.status == 503).count();
        failures += n;
        assert_eq!(g[first + n].status, 200, "{key}: then an answer");
        for w in g[first..=first + n].windows(2) {
            let gap = w[1].at.duration_since(w[0].answered);
            assert!(
                gap >= Duration::from_millis(900),
                "{key}: retried after {gap:?}"
            );
        }
    }
    assert_eq!(failures, 4);
    sim.gcp_set(PREEMPTED, "TRUE");
    h.wait_for("msg=\"drain finished\"", LONG);
    assert_gce_requests(&sim);
    assert_alive_and_polling(&sim, &h);
}
