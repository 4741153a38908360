//! The deadline, end to end: a notice whose time has passed is acted on at once within the
//! emergency window; evictions get the pods' own grace when it fits and a late delete never a
//! shrinking remnant; the report goes out before the deadline and names the pods left behind;
//! pods already terminating with a long grace are shortened at `force_at`; a drain that could not
//! list pods is a failure, retried after a restart; and no log line claims a cordon that failed.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stnh_sim::testclient::Client;
use stnh_sim::{PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(40);

/// `t` truncated to whole seconds (a notice's `time` has whole seconds).
fn whole(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap().as_secs())
}

/// Evictions and deletes of `pod`: (method, status, grace, preconditions.uid, time).
fn writes(sim: &Sim, pod: &str) -> Vec<(String, u16, i64, Option<String>, SystemTime)> {
    sim.api_requests()
        .into_iter()
        .filter(|r| {
            (r.method == "DELETE" || r.path.ends_with("/eviction"))
                && pod_of(&r.path).as_deref() == Some(pod)
        })
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            let opts = if r.method == "DELETE" {
                body.clone()
            } else {
                body["deleteOptions"].clone()
            };
            (
                r.method.clone(),
                r.status,
                opts["gracePeriodSeconds"].as_i64().unwrap_or(-1),
                opts["preconditions"]["uid"].as_str().map(String::from),
                r.time,
            )
        })
        .collect()
}

fn uid(sim: &Sim, ns: &str, name: &str) -> String {
    sim.pod(ns, name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A checkout pod under a budget that never allows an eviction.
fn with_blocked_checkout(s: Scenario, grace: i64) -> Scenario {
    s.pod(
        PodSpec::new("shop", "checkout-1")
            .replicaset("checkout")
            .labels(&[("app", "checkout")])
            .grace(grace)
            .shutdown(Duration::from_millis(500)),
    )
    .pdb(
        "shop",
        "checkout-pdb",
        &[("app", "checkout")],
        None,
        Some(0),
    )
}

/// DELETEs `ns/name` now with `grace` (as someone did just before the notice).
fn delete_now(sim: &Sim, ns: &str, name: &str, grace: i64) {
    let mut c = Client::api(sim).unwrap();
    let r = c
        .call(
            "DELETE",
            &format!("/api/v1/namespaces/{ns}/pods/{name}"),
            &sim.token(),
            Some("application/json"),
            &format!(
                r#"{{"apiVersion":"v1","kind":"DeleteOptions","gracePeriodSeconds":{grace}}}"#
            ),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_notice_whose_deadline_has_passed_is_acted_on_at_once() {
    let sim = Sim::start(with_blocked_checkout(mixed_node(), 30)).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let deadline = whole(SystemTime::now()) - Duration::from_secs(30);
    sim.set_notice("terminate", deadline);

    let line = h.wait_for("the notice's deadline has already passed", LONG);
    assert!(
        line.contains("level=warn") && line.contains("window_s=10"),
        "{line}"
    );
    h.wait_for("msg=\"cordoned node\"", LONG);
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("deadline_passed", &sim);

    // Every pod at once, with what the 10 s window allows (9 s until the report).
    for pod in MIXED_EVICTABLE {
        let w = writes(&sim, pod);
        assert_eq!(w.len(), 1, "{pod}: {w:?}");
        let (_, status, grace, _, _) = &w[0];
        assert_eq!(*status, 201, "{pod}");
        // Whole seconds, rounded down: 8 once the cordon has taken its milliseconds; on a
        // loaded machine the cordon and the pod list can take a second or two more, which
        // come off the window (never more than the 9 s it has).
        let want = if pod == "default/debug" { 5..=5 } else { 6..=9 };
        assert!(want.contains(grace), "{pod}: grace {grace}");
    }
    // A budget is not waited for: one refused eviction, then a DELETE right away.
    let w = writes(&sim, "shop/checkout-1");
    assert_eq!(
        w.iter().map(|w| (w.0.as_str(), w.1)).collect::<Vec<_>>(),
        [("POST", 429), ("DELETE", 200)],
        "{w:?}"
    );
    assert!((1..=9).contains(&w[1].2), "{w:?}");
    // Acted within the window: the outcome is recorded within ~10 s of the cordon.
    let patches: Vec<_> = action_requests(&sim)
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    // The cordon, the taint, then the outcome.
    assert_eq!(patches.len(), 3);
    assert!(patches[2].at - patches[0].at < Duration::from_secs(11));
    let node = sim.node(NODE).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(annotation(&node, "phase").as_deref(), Some("drained"));
    assert!(
        annotation(&node, "summary")
            .unwrap()
            .contains("deadline_passed_s=3"),
        "{node}"
    );
    assert_eq!(sim.pods_on(NODE).len(), 3);
    // Both messages say the deadline had passed.
    eventually("two Slack messages", LONG, || {
        sim.slack_messages().len() == 2
    });
    let slack = sim.slack_messages();
    let notice = slack[0].text().unwrap();
    assert!(
        notice.contains("before the notice was seen). Acting at once: cordoning and draining the node within a 10 s emergency window"),
        "{notice}"
    );
    let summary = slack[1].text().unwrap();
    assert!(
        summary.contains("drained: 6 evicted, 1 forced")
            && summary.contains("The deadline had already passed"),
        "{summary}"
    );
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn no_log_line_claims_a_cordon_that_failed() {
    let sim = Sim::start(mixed_node().deny("patch", "nodes", "")).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    h.wait_for("could not cordon the node; draining anyway", LONG);
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(done.contains("cordoned=false"), "{done}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(h.count("msg=\"cordoned node\""), 0, "{}", h.dump());
    // Retried on every step, logged once (a repeated error is not a new line a second).
    assert_eq!(h.count("cordon failed; will retry"), 1, "{}", h.dump());
    assert_ne!(sim.node(NODE).unwrap()["spec"]["unschedulable"], true);
    eventually("the summary says so", LONG, || {
        sim.slack_messages().iter().any(|m| {
            m.text()
                .is_some_and(|t| t.contains("The node could not be cordoned"))
        })
    });
}

#[test]
fn a_drain_that_cannot_list_pods_is_a_failure_and_is_retried_after_a_restart() {
    let sim = Sim::start(mixed_node()).unwrap();
    let mut first = Handler::start_idle(&sim, &[]);
    sim.fail_next(
        "GET",
        "/api/v1/pods",
        100_000,
        500,
        r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}"#,
    );
    sim.set_notice(
        "terminate",
        whole(SystemTime::now()) + Duration::from_secs(12),
    );
    let line = first.wait_for("could not list pods; node not drained", LONG);
    assert!(line.contains("level=error"), "{line}");
    assert_eq!(first.count("msg=\"drain finished"), 0, "{}", first.dump());
    assert!(sim
        .api_requests()
        .iter()
        .all(|r| !r.path.ends_with("/eviction")));
    let node = sim.node(NODE).unwrap();
    assert_eq!(annotation(&node, "phase").as_deref(), Some("failed"));
    assert!(annotation(&node, "summary")
        .unwrap()
        .starts_with("could not list pods; node not drained"));
    eventually("a danger-coloured summary in Slack", LONG, || {
        sim.slack_messages().iter().any(|m| {
            m.text()
                .is_some_and(|t| t.contains("could not list pods; node not drained"))
                && m.body.contains("\"color\":\"danger\"")
        })
    });
    first.kill();

    // Restarted with the notice still there: the drain is tried again, not "already drained".
    sim.clear_faults();
    let second = Handler::start(&sim, &[]);
    let line = second.wait_for("resuming the drain", LONG);
    assert!(line.contains("phase=failed"), "{line}");
    second.wait_for("msg=\"drain finished\"", LONG);
    assert_eq!(second.count("already drained"), 0);
    assert_eq!(sim.pods_on(NODE).len(), 3, "{}", second.dump());
    let node = sim.node(NODE).unwrap();
    assert_eq!(annotation(&node, "phase").as_deref(), Some("drained"));
}

#[test]
fn evictions_get_the_pods_own_grace_when_it_fits_and_a_late_delete_no_less() {
    let quick = Duration::from_millis(300);
    let sim = Sim::start(with_blocked_checkout(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web")
                    .shutdown(quick),
            )
            .pod(
                PodSpec::new("shop", "api-1")
                    .replicaset("api")
                    .grace(35)
                    .shutdown(quick),
            ),
        60,
    ))
    .unwrap();
    // 45 s: a 4.5 s report margin; budgets are waited for 10 s (a 35 s reserve).
    let h = Handler::start_idle(&sim, &[("DRAIN_RESERVE", "35s")]);
    let deadline = whole(SystemTime::now()) + Duration::from_secs(45);
    sim.set_notice("terminate", deadline);
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("grace_rule", &sim);

    for (pod, own) in [("shop/web-1", 30), ("shop/api-1", 35)] {
        let w = writes(&sim, pod);
        assert_eq!(
            (w.len(), w[0].1, w[0].2),
            (1, 201, own),
            "{pod}: its own grace fits: {w:?}"
        );
    }
    // The blocked pod, deleted ~10 s later, still stops by the report time, and gets all the
    // time up to it (not what a shrinking window would leave).
    let w = writes(&sim, "shop/checkout-1");
    let (method, status, grace, _, at) = w.last().unwrap().clone();
    assert_eq!((method.as_str(), status), ("DELETE", 200), "{w:?}");
    let stops = at + Duration::from_secs(grace as u64);
    assert!(
        stops <= deadline - Duration::from_secs(4),
        "stops at {:?} before the deadline: after the report time",
        deadline.duration_since(stops)
    );
    assert!(
        stops >= deadline - Duration::from_secs(6),
        "grace {grace}: less than the time left before the report"
    );
    assert!(grace >= 25, "grace {grace}");
}

#[test]
fn the_report_goes_out_before_the_deadline_and_names_the_pods_left() {
    // An app that ignores SIGTERM, deleted with a 600 s grace just before the notice; with
    // FORCE_DELETE=false nothing shortens it.
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web")
                    .shutdown(Duration::from_millis(300)),
            )
            .pod(
                PodSpec::new("shop", "stuck-0")
                    .grace(600)
                    .shutdown(Duration::from_secs(3600)),
            ),
    )
    .unwrap();
    let h = Handler::start_idle(&sim, &[("FORCE_DELETE", "false")]);
    delete_now(&sim, "shop", "stuck-0", 600);
    let deadline = whole(SystemTime::now()) + Duration::from_secs(12);
    sim.set_notice("terminate", deadline);
    let line = h.wait_for("msg=\"drain finished with pods left\"", LONG);
    assert!(
        line.contains("still_present=1") && line.contains("still_on_node=shop/stuck-0"),
        "{line}"
    );
    let record = sim
        .api_requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert!(
        record.time < deadline,
        "the outcome was recorded {:?} after the deadline",
        record.time.duration_since(deadline).unwrap_or_default()
    );
    let node = sim.node(NODE).unwrap();
    assert_eq!(annotation(&node, "phase").as_deref(), Some("incomplete"));
    assert!(
        annotation(&node, "summary")
            .unwrap()
            .contains("still_present=1 seconds=")
            && annotation(&node, "summary")
                .unwrap()
                .contains("still_on_node=shop/stuck-0"),
        "{node}"
    );
    eventually("the summary in Slack", LONG, || {
        sim.slack_messages().len() == 2
    });
    let summary = &sim.slack_messages()[1];
    let text = summary.text().unwrap();
    assert!(
        text.contains("not fully drained")
            && text.contains("1 pod still on the node: shop/stuck-0"),
        "{text}"
    );
    assert!(
        summary.time < deadline,
        "the summary left before the deadline"
    );
    assert!(summary.body.contains("\"color\":\"danger\""));
}

#[test]
fn a_pod_already_terminating_with_a_long_grace_is_shortened_at_force_at() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web")
                    .shutdown(Duration::from_millis(300)),
            )
            .pod(
                PodSpec::new("shop", "stuck-0")
                    .grace(600)
                    .shutdown(Duration::from_secs(3600)),
            ),
    )
    .unwrap();
    let stuck = uid(&sim, "shop", "stuck-0");
    let h = Handler::start_idle(&sim, &[("DRAIN_RESERVE", "6s")]);
    delete_now(&sim, "shop", "stuck-0", 600);
    let set = SystemTime::now();
    let deadline = whole(set) + Duration::from_secs(14);
    sim.set_notice("terminate", deadline);
    h.wait_for("shortened the grace of a terminating pod", LONG);
    h.wait_for("msg=\"drain finished", LONG);
    record_requests("shorten_terminating", &sim);

    assert!(h.count("pod already terminating; waiting for it") == 1);
    let w = writes(&sim, "shop/stuck-0");
    let handler_deletes: Vec<_> = w.iter().skip(1).collect(); // the first is the test's own
    assert_eq!(handler_deletes.len(), 1, "{w:?}");
    let (method, status, grace, pre, at) = handler_deletes[0].clone();
    assert_eq!((method.as_str(), status), ("DELETE", 200));
    assert_eq!(pre.as_deref(), Some(stuck.as_str()), "only the pod we saw");
    // A window of ~13 s is short: budgets get a sixth of it (drain.rs, budget_time).
    let window = deadline.duration_since(set).unwrap();
    assert!(
        at + Duration::from_millis(300) >= set + window / 6,
        "not before force_at ({:?} after the notice)",
        window / 6
    );
    let killed_by = at + Duration::from_secs(grace as u64);
    assert!(
        grace >= 1 && killed_by <= deadline - Duration::from_secs(1),
        "grace {grace}: stops before the report time"
    );
    eventually("the pod is gone", LONG, || {
        sim.pod("shop", "stuck-0").is_none()
    });
    eventually("the summary", LONG, || sim.slack_messages().len() == 2);
    let text = sim.slack_messages()[1].text().unwrap();
    assert!(text.contains("1 forced at the deadline"), "{text}");
}

#[test]
fn a_retried_eviction_never_evicts_a_same_named_replacement() {
    // db-0's budget refuses; meanwhile db-0 is deleted and its StatefulSet brings back a pod
    // of the same name (elsewhere, new UID). The retry must not evict that one.
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("data", "db-0")
                    .statefulset("db")
                    .labels(&[("app", "db")])
                    .shutdown(Duration::from_millis(100)),
            )
            .pdb("data", "db-pdb", &[("app", "db")], Some(1), None)
            .replacement_ready_after(None),
    )
    .unwrap();
    let old = uid(&sim, "data", "db-0");
    let h = Handler::start_idle(&sim, &[]);
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(90));
    h.wait_for("blocked by disruption budget", LONG);
    delete_now(&sim, "data", "db-0", 0);
    eventually("the same-named replacement", LONG, || {
        sim.pod("data", "db-0")
            .is_some_and(|p| p["metadata"]["uid"] != old.as_str())
    });
    h.wait_for(
        "pod already gone (replaced by a new pod of the same name)",
        LONG,
    );
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(done.contains("already_gone=1"), "{done}");
    let w = writes(&sim, "data/db-0");
    let evictions: Vec<_> = w.iter().filter(|w| w.0 == "POST").collect();
    assert!(
        evictions
            .iter()
            .all(|e| e.3.as_deref() == Some(old.as_str())),
        "every eviction names the pod we saw: {w:?}"
    );
    assert_eq!(evictions.last().unwrap().1, 409);
    let replacement = sim.pod("data", "db-0").unwrap();
    assert!(
        !replacement["metadata"]["deletionTimestamp"].is_string(),
        "the replacement was not evicted: {replacement}"
    );
}
