//! Least harm, end to end with the real binary: critical pods last (EVICTION_ORDER, the
//! latest-start rule at 30 s and 120 s deadlines), POD_SELECTOR, and SURGE_BLOCKED's rolling
//! restart of a budget-blocked Deployment. Timing is never asserted beyond what the rule
//! guarantees: the tests wait for states and compare the simulator's exact instants.

mod support;

use std::time::{Duration, Instant};

use stnh_sim::workloads::{Change, Strategy};
use stnh_sim::{PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(60);

/// Eviction POSTs: (pod, arrival, body's gracePeriodSeconds).
fn evictions(sim: &Sim) -> Vec<(String, Instant, i64)> {
    sim.api_requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .map(|r| {
            let b: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            (
                pod_of(&r.path).unwrap(),
                r.at,
                b["deleteOptions"]["gracePeriodSeconds"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// When the simulator removed the pod `ns/name` from the node (its object went away).
fn gone_at(sim: &Sim, pod: &str) -> Option<Instant> {
    sim.workload_log()
        .into_iter()
        .find(|e| {
            format!("{}/{}", e.namespace, e.name) == pod
                && e.node.as_deref() == Some(NODE)
                && e.change == Change::PodGone
        })
        .map(|e| e.at)
}

/// The first eviction POST of `pod`.
fn first_eviction(sim: &Sim, pod: &str) -> Option<(Instant, i64)> {
    evictions(sim)
        .into_iter()
        .find(|(p, _, _)| p == pod)
        .map(|(_, at, g)| (at, g))
}

fn apps_requests(sim: &Sim) -> Vec<String> {
    sim.api_requests()
        .iter()
        .filter(|r| r.path.starts_with("/apis/apps/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

const ORDINARY: [&str; 3] = ["shop/web-1", "shop/web-2", "default/debug"];
const CRITICAL: [&str; 3] = [
    "kube-system/coredns-1",
    "kube-system/cni-helper",
    "ingress/controller-1",
];

/// Three ordinary pods and three critical ones: by class (cluster and node critical) and by
/// priority at the threshold.
fn tiered(ordinary_shutdown: Duration) -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .shutdown(ordinary_shutdown),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .shutdown(ordinary_shutdown),
        )
        .pod(
            PodSpec::new("default", "debug")
                .priority(1_999_999_999)
                .shutdown(ordinary_shutdown),
        )
        .pod(
            PodSpec::new("kube-system", "coredns-1")
                .replicaset("coredns-5d7")
                .priority_class("system-cluster-critical")
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("kube-system", "cni-helper")
                .priority_class("system-node-critical")
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("ingress", "controller-1")
                .priority_class("ingress-critical")
                .priority(2_000_000_000)
                .shutdown(quick),
        )
}

#[test]
fn critical_pods_are_evicted_once_the_others_are_gone() {
    let sim = Sim::start(tiered(Duration::from_millis(500)).notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(120),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("kindness_tiers", &sim);
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(
        line.contains("evicted=6") && line.contains("forced=0"),
        "{line}"
    );
    let opened = h.wait_for("starting the critical tier", LONG);
    assert!(
        opened.contains("reason=\"the other pods are gone\""),
        "{opened}"
    );
    let last_ordinary_gone = ORDINARY
        .iter()
        .map(|p| gone_at(&sim, p).unwrap_or_else(|| panic!("{p} gone")))
        .max()
        .unwrap();
    for c in CRITICAL {
        let (at, grace) = first_eviction(&sim, c).unwrap_or_else(|| panic!("{c} evicted"));
        assert!(
            at > last_ordinary_gone,
            "{c} was evicted before every ordinary pod had left the node"
        );
        assert_eq!(grace, 30, "{c}: its own grace");
    }
    // The ordinary pods went first, all at once.
    for o in ORDINARY {
        assert!(first_eviction(&sim, o).is_some(), "{o} evicted");
    }
    assert_eq!(evictions(&sim).len(), 6, "one eviction per pod");
}

#[test]
fn parallel_order_evicts_critical_pods_with_the_others() {
    // Ordinary pods take 20 s to stop: in tiers the critical ones would wait for them.
    let sim = Sim::start(tiered(Duration::from_secs(20)).notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(120),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[("EVICTION_ORDER", "parallel")]);
    eventually("every pod evicted", LONG, || evictions(&sim).len() == 6);
    record_requests("kindness_parallel", &sim);
    let first_gone = ORDINARY.iter().filter_map(|p| gone_at(&sim, p)).min();
    for c in CRITICAL {
        let (at, _) = first_eviction(&sim, c).unwrap();
        assert!(
            first_gone.is_none_or(|g| at < g),
            "{c}: parallel evicts critical pods while the others still run"
        );
    }
    assert_eq!(h.count("critical pods wait"), 0, "{}", h.dump());
    assert!(h.wait_for("evicting pods", LONG).contains("critical=0"));
}

/// An ordinary pod that takes long to stop holds the critical tier back until the latest
/// moment that still gives the critical pod its own grace before the report time:
/// `report_at − grace − 1 s`, with `report_at = deadline − margin`.
fn latest_start_case(deadline: Duration, margin: Duration, critical_grace: i64, test: &str) {
    let slow = PodSpec::new("shop", "slow-1")
        .grace(deadline.as_secs() as i64)
        .shutdown(deadline - Duration::from_secs(2));
    let critical = PodSpec::new("kube-system", "coredns-1")
        .replicaset("coredns-5d7")
        .priority_class("system-cluster-critical")
        .grace(critical_grace)
        .shutdown(Duration::from_millis(300));
    let sim = Sim::start(Scenario::new(NODE).pod(slow).pod(critical).notice_after(
        Duration::from_millis(500),
        "terminate",
        deadline,
    ))
    .unwrap();
    let h = Handler::start(&sim, &[]);
    eventually("the critical pod evicted", LONG, || {
        first_eviction(&sim, "kube-system/coredns-1").is_some()
    });
    record_requests(test, &sim);
    let (at, grace) = first_eviction(&sim, "kube-system/coredns-1").unwrap();
    let (slow_at, _) = first_eviction(&sim, "shop/slow-1").unwrap();
    let (_, deadline_at) = sim.aws_notice().unwrap();
    // The rule's latest start; the margin is a tenth of the window, so a later detection
    // only moves it later: this bound holds whenever the notice was seen.
    let latest = deadline_at - margin - Duration::from_secs(critical_grace as u64 + 1);
    assert!(
        at + Duration::from_millis(300) >= latest,
        "{test}: the critical pod was evicted {:?} before its latest start",
        latest.saturating_duration_since(at)
    );
    assert!(at > slow_at, "{test}: ordinary first");
    assert_eq!(grace, critical_grace, "{test}: its whole own grace");
    assert!(
        gone_at(&sim, "shop/slow-1").is_none_or(|g| g > at),
        "{test}: the slow pod was still stopping when the critical tier started"
    );
    let opened = h.wait_for("starting the critical tier", LONG);
    assert!(
        opened.contains("reason=\"latest start that still gives them their own grace\""),
        "{opened}"
    );
}

#[test]
fn the_critical_tier_starts_at_its_latest_moment_on_a_120s_deadline() {
    // Report at 115 s; a 100 s grace must start by 14 s.
    latest_start_case(
        Duration::from_secs(120),
        Duration::from_secs(5),
        100,
        "kindness_latest_120",
    );
}

#[test]
fn the_critical_tier_starts_at_its_latest_moment_on_a_30s_deadline() {
    // Report at ~27 s (the margin is a tenth of the window seen, at most 3 s); a 10 s grace
    // must start by ~16 s.
    latest_start_case(
        Duration::from_secs(30),
        Duration::from_secs(3),
        10,
        "kindness_latest_30",
    );
}

#[test]
fn pod_selector_drains_only_matching_pods_and_lists_the_others() {
    let quick = Duration::from_millis(300);
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web-7d4b9c")
                    .labels(&[("app", "web"), ("tier", "front")])
                    .shutdown(quick),
            )
            .pod(
                PodSpec::new("shop", "web-canary")
                    .labels(&[("app", "web"), ("canary", "yes")])
                    .shutdown(quick),
            )
            .pod(
                PodSpec::new("shop", "api-1")
                    .labels(&[("app", "api"), ("tier", "back")])
                    .shutdown(quick),
            )
            .pod(
                PodSpec::new("data", "db-0")
                    .statefulset("db")
                    .labels(&[("app", "db"), ("tier", "db")])
                    .shutdown(quick),
            )
            .pod(PodSpec::new("logging", "fluentd-x1").daemonset("fluentd"))
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(120),
            ),
    )
    .unwrap();
    let h = Handler::start(
        &sim,
        &[("POD_SELECTOR", "app in (web,api),tier!=db,!canary")],
    );
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    eventually("the drained summary reached Slack", LONG, || {
        sim.slack_messages().len() == 2
    });
    record_requests("kindness_selector", &sim);
    let mut evicted: Vec<String> = evictions(&sim).into_iter().map(|(p, _, _)| p).collect();
    evicted.sort();
    assert_eq!(evicted, ["shop/api-1", "shop/web-1"]);
    // The others are untouched: still on the node, not terminating, never written to.
    for p in ["shop/web-canary", "data/db-0"] {
        let (ns, name) = p.split_once('/').unwrap();
        let pod = sim
            .pod(ns, name)
            .unwrap_or_else(|| panic!("{p} still there"));
        assert!(
            pod["metadata"].get("deletionTimestamp").is_none(),
            "{pod:#}"
        );
        assert!(
            !sim.api_requests()
                .iter()
                .any(|r| r.method != "GET" && pod_of(&r.path).as_deref() == Some(p)),
            "{p} was written to"
        );
    }
    assert!(
        line.contains("left_alone=2") && line.contains("not_selected=data/db-0,shop/web-canary"),
        "{line}"
    );
    assert!(
        line.contains("evicted=2") && line.contains("still_present=0"),
        "{line}"
    );
    for p in ["shop/web-canary", "data/db-0"] {
        assert!(
            h.logs()
                .iter()
                .any(|l| l.contains("leaving pod alone") && l.contains(&format!("pod={p}"))),
            "{}",
            h.dump()
        );
    }
    let summary = annotation(&sim.node(NODE).unwrap(), "summary").unwrap();
    assert!(summary.contains("left_alone=2"), "{summary}");
    assert_eq!(
        annotation(&sim.node(NODE).unwrap(), "phase").as_deref(),
        Some("drained")
    );
    let slack = &sim.slack_messages()[1].body;
    assert!(
        slack.contains("Left alone (not matched by POD_SELECTOR): data/db-0, shop/web-canary (2)"),
        "{slack}"
    );
}

/// One replica under `minAvailable: 1`: every eviction is refused until the forced delete.
fn blocked_solo(deadline: Duration) -> Scenario {
    Scenario::new(NODE)
        .deployment(
            "shop",
            "solo",
            1,
            Strategy::default(),
            &[("app", "solo")],
            PodSpec::new("shop", "x").shutdown(Duration::from_millis(300)),
        )
        .pdb("shop", "solo-pdb", &[("app", "solo")], Some(1), None)
        .notice_after(Duration::from_millis(500), "terminate", deadline)
}

fn solo_pod_on_node(sim: &Sim) -> String {
    sim.deployment_pods("shop", "solo")
        .iter()
        .find(|p| p["spec"]["nodeName"] == NODE)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .expect("the Deployment's pod on the node")
}

#[test]
fn surge_blocked_restarts_a_one_replica_deployment_whose_replacement_is_ready_first() {
    let sim = Sim::start(blocked_solo(Duration::from_secs(120))).unwrap();
    let old = solo_pod_on_node(&sim);
    let h = Handler::start(&sim, &[("SURGE_BLOCKED", "true")]);
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("surge-blocked--kindness_surge", &sim);
    let (notice_at, _) = sim.aws_notice().unwrap();
    assert!(
        line.contains("forced=0") && line.contains("surged=shop/solo"),
        "{line}"
    );
    // One GET and one restart patch, as `kubectl rollout restart` sends it.
    assert_eq!(
        apps_requests(&sim),
        [
            "GET /apis/apps/v1/namespaces/shop/deployments/solo",
            "PATCH /apis/apps/v1/namespaces/shop/deployments/solo",
        ]
    );
    let patch = sim
        .api_requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.path.contains("/deployments/"))
        .unwrap();
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let body: serde_json::Value = serde_json::from_str(&patch.body).unwrap();
    let stamp = body["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap();
    assert!(stnh_sim::util::parse_rfc3339(stamp).is_some(), "{stamp}");
    // The first eviction was refused by the budget; the restart came after it.
    let statuses = eviction_statuses(&sim, &format!("shop/{old}"));
    assert_eq!(statuses.first(), Some(&429), "{statuses:?}");
    // The replacement (another node) was Ready before the old pod began to stop, and the old
    // one was retired by the controller, not deleted by us.
    let log = sim.workload_log();
    let ready_elsewhere = log
        .iter()
        .find(|e| {
            e.deployment.as_deref() == Some("solo")
                && e.node.as_deref() != Some(NODE)
                && e.change == Change::PodReady
        })
        .expect("a replacement became Ready on another node");
    let old_stops = log
        .iter()
        .find(|e| e.name == old && matches!(e.change, Change::PodTerminating { .. }))
        .expect("the old pod was retired");
    assert!(
        ready_elsewhere.at <= old_stops.at,
        "the old pod stopped before its replacement was Ready"
    );
    assert!(
        matches!(
            old_stops.change,
            Change::PodTerminating {
                by: "replicaset-controller",
                ..
            }
        ),
        "{:?}",
        old_stops.change
    );
    assert!(
        !sim.api_requests().iter().any(|r| r.method == "DELETE"),
        "no forced delete"
    );
    let deficit = sim.availability_deficit("shop", "solo", notice_at, Instant::now());
    assert_eq!(deficit, 0.0, "never below one Ready replica");
    assert!(sim.rollout_complete("shop", "solo"));
}

#[test]
fn surge_is_off_by_default_and_the_forced_delete_stays() {
    let sim = Sim::start(blocked_solo(Duration::from_secs(30))).unwrap();
    let h = Handler::start(&sim, &[]);
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("kindness_surge_off", &sim);
    let (notice_at, _) = sim.aws_notice().unwrap();
    assert!(line.contains("forced=1"), "{line}");
    assert!(apps_requests(&sim).is_empty(), "{:?}", apps_requests(&sim));
    eventually("the replacement is Ready", LONG, || {
        sim.rollout_complete("shop", "solo")
    });
    // Without the surge, the only pod died before its replacement was Ready.
    let deficit = sim.availability_deficit("shop", "solo", notice_at, Instant::now());
    assert!(deficit > 0.0, "{deficit}");
}

#[test]
fn surge_never_touches_statefulsets_bare_replicasets_or_deployments_that_cannot_surge() {
    let quick = Duration::from_millis(300);
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(
                PodSpec::new("data", "db-0")
                    .statefulset("db")
                    .labels(&[("app", "db")])
                    .shutdown(quick),
            )
            .pdb("data", "db-pdb", &[("app", "db")], Some(1), None)
            .pod(
                PodSpec::new("shop", "bare-1")
                    .replicaset("bare")
                    .labels(&[("app", "bare")])
                    .shutdown(quick),
            )
            .pdb("shop", "bare-pdb", &[("app", "bare")], Some(1), None)
            .deployment(
                "shop",
                "recreated",
                1,
                Strategy::recreate(),
                &[("app", "recreated")],
                PodSpec::new("shop", "x").shutdown(quick),
            )
            .pdb("shop", "rec-pdb", &[("app", "recreated")], Some(1), None)
            .deployment(
                "shop",
                "nosurge",
                1,
                Strategy::rolling_update(0, 1),
                &[("app", "nosurge")],
                PodSpec::new("shop", "x").shutdown(quick),
            )
            .pdb("shop", "nosurge-pdb", &[("app", "nosurge")], Some(1), None)
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(30),
            ),
    )
    .unwrap();
    let h = Handler::start(&sim, &[("SURGE_BLOCKED", "true")]);
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("surge-blocked--kindness_surge_never", &sim);
    assert!(
        line.contains("forced=4") && !line.contains("surged="),
        "{line}"
    );
    // The two Deployments are read (and judged), never patched; nothing else is read.
    let mut apps = apps_requests(&sim);
    apps.sort();
    assert_eq!(
        apps,
        [
            "GET /apis/apps/v1/namespaces/shop/deployments/nosurge",
            "GET /apis/apps/v1/namespaces/shop/deployments/recreated",
        ]
    );
    for (d, why) in [
        (
            "shop/recreated",
            "the Deployment's strategy is not RollingUpdate",
        ),
        ("shop/nosurge", "the Deployment cannot surge (maxSurge 0)"),
    ] {
        assert!(
            h.logs()
                .iter()
                .any(|l| l.contains("not restarting the Deployment")
                    && l.contains(&format!("deployment={d}"))
                    && l.contains(why)),
            "{d}: {}",
            h.dump()
        );
    }
}

/// `web` ×3 (API default strategy: maxSurge 25 % → 1, maxUnavailable 25 % → 0) under
/// `minAvailable: 2`, on the node; replacements Ready `ready_after` after they are created.
fn budgeted_web(deadline: Duration, ready_after: Option<Duration>) -> Scenario {
    Scenario::new(NODE)
        .deployment(
            "shop",
            "web",
            3,
            Strategy::default(),
            &[("app", "web")],
            PodSpec::new("shop", "x").shutdown(Duration::from_millis(300)),
        )
        .pdb("shop", "web-pdb", &[("app", "web")], Some(2), None)
        .replacement_ready_after(ready_after)
        .notice_after(Duration::from_millis(500), "terminate", deadline)
}

fn web_pods_on_node(sim: &Sim) -> Vec<String> {
    let mut v: Vec<String> = sim
        .deployment_pods("shop", "web")
        .iter()
        .filter(|p| p["spec"]["nodeName"] == NODE)
        .map(|p| format!("shop/{}", p["metadata"]["name"].as_str().unwrap()))
        .collect();
    v.sort();
    v
}

fn deployment_patches(sim: &Sim) -> usize {
    apps_requests(sim)
        .iter()
        .filter(|r| r.starts_with("PATCH "))
        .count()
}

#[test]
fn budgeted_surge_moves_a_three_replica_deployment_under_min_available_2_with_zero_deficit() {
    let sim = Sim::start(budgeted_web(
        Duration::from_secs(120),
        Some(Duration::from_secs(2)),
    ))
    .unwrap();
    let old = web_pods_on_node(&sim);
    assert_eq!(old.len(), 3);
    let h = Handler::start(&sim, &[("SURGE_BLOCKED", "budgeted")]);
    let line = h.wait_for("msg=\"drain finished\"", Duration::from_secs(100));
    let (notice_at, deadline_at) = sim.aws_notice().unwrap();
    assert!(Instant::now() < deadline_at, "drained before the deadline");
    record_requests("surge-budgeted--kindness_budgeted", &sim);
    assert!(
        line.contains("surged=shop/web") && line.contains("moved=3") && line.contains("forced=0"),
        "{line}"
    );
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("Deployment restarted for this drain")
                && l.contains("deployment=shop/web")),
        "{}",
        h.dump()
    );
    // Its pods were never evicted nor deleted by us: the rollout retired each one.
    for p in &old {
        assert!(first_eviction(&sim, p).is_none(), "{p} was evicted");
        assert!(gone_at(&sim, p).is_some(), "{p} still on the node");
    }
    assert!(!sim.api_requests().iter().any(|r| r.method == "DELETE"));
    assert_eq!(deployment_patches(&sim), 1);
    // Each old pod began to stop only once a replacement more was Ready elsewhere.
    let log = sim.workload_log();
    for p in &old {
        let name = p.trim_start_matches("shop/");
        let stops = log
            .iter()
            .find(|e| e.name == name && matches!(e.change, Change::PodTerminating { .. }))
            .expect("retired");
        assert!(
            matches!(
                stops.change,
                Change::PodTerminating {
                    by: "replicaset-controller",
                    ..
                }
            ),
            "{:?}",
            stops.change
        );
    }
    let ready_new = |at: Instant| {
        log.iter()
            .filter(|e| {
                e.deployment.as_deref() == Some("web")
                    && e.node.as_deref() != Some(NODE)
                    && e.change == Change::PodReady
                    && e.at <= at
            })
            .count()
    };
    let mut stops: Vec<Instant> = log
        .iter()
        .filter(|e| {
            e.deployment.as_deref() == Some("web")
                && e.node.as_deref() == Some(NODE)
                && matches!(e.change, Change::PodTerminating { .. })
        })
        .map(|e| e.at)
        .collect();
    stops.sort();
    for (i, at) in stops.iter().enumerate() {
        assert!(
            ready_new(*at) > i,
            "old pod {i} stopped before its replacement was Ready"
        );
    }
    let deficit = sim.availability_deficit("shop", "web", notice_at, Instant::now());
    assert_eq!(deficit, 0.0, "never below three Ready replicas");
}

#[test]
fn budgeted_hold_falls_back_to_evictions_at_half_time_when_the_rollout_never_becomes_ready() {
    // 60 s: force_at = detection + 10 s (W/6), so the hold ends 5 s after detection.
    let sim = Sim::start(budgeted_web(Duration::from_secs(60), None)).unwrap();
    let old = web_pods_on_node(&sim);
    let h = Handler::start(&sim, &[("SURGE_BLOCKED", "budgeted")]);
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    let (notice_at, deadline_at) = sim.aws_notice().unwrap();
    assert!(Instant::now() < deadline_at, "drained before the deadline");
    record_requests("surge-budgeted--kindness_budgeted_fallback", &sim);
    assert!(
        line.contains("surged=shop/web") && line.contains("still_present=0"),
        "{line}"
    );
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("hold over: evicting the held pods")
                && l.contains("pods=3")
                && l.contains("halfway to the forced deletes")),
        "{}",
        h.dump()
    );
    // No eviction while held; each pod was evicted (or deleted at force_at) after the hold.
    let first = old
        .iter()
        .filter_map(|p| first_eviction(&sim, p).map(|(at, _)| at))
        .min()
        .expect("the held pods were evicted after the hold");
    let waited = first.duration_since(notice_at);
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "first eviction {waited:?} after the notice"
    );
    for p in &old {
        assert!(gone_at(&sim, p).is_some(), "{p} still on the node");
    }
    // Restarted once; the refused evictions after the hold did not restart it again.
    assert_eq!(deployment_patches(&sim), 1);
}

#[test]
fn budgeted_surge_does_not_hold_a_deployment_whose_rollout_may_go_below_desired() {
    let quick = Duration::from_millis(300);
    let sim = Sim::start(
        Scenario::new(NODE)
            .deployment(
                "shop",
                "api",
                2,
                Strategy::rolling_update(1, 1),
                &[("app", "api")],
                PodSpec::new("shop", "x").shutdown(quick),
            )
            .pdb("shop", "api-pdb", &[("app", "api")], None, Some(2))
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let pods: Vec<String> = sim
        .deployment_pods("shop", "api")
        .iter()
        .map(|p| format!("shop/{}", p["metadata"]["name"].as_str().unwrap()))
        .collect();
    let h = Handler::start(&sim, &[("SURGE_BLOCKED", "budgeted")]);
    let line = h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("surge-budgeted--kindness_budgeted_not_held", &sim);
    let (notice_at, _) = sim.aws_notice().unwrap();
    assert!(
        !line.contains("surged=") && !line.contains("moved="),
        "{line}"
    );
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("not holding a Deployment's pods")
                && l.contains("deployment=shop/api")
                && l.contains("maxUnavailable is above 0")),
        "{}",
        h.dump()
    );
    assert_eq!(deployment_patches(&sim), 0);
    // Evicted at once, as without the setting.
    for p in &pods {
        let (at, _) = first_eviction(&sim, p).expect("evicted");
        assert!(at.duration_since(notice_at) < Duration::from_secs(4), "{p}");
    }
}

#[test]
fn budgeted_surge_restarts_a_deployment_once_across_a_handler_restart_mid_hold() {
    let sim = Sim::start(budgeted_web(
        Duration::from_secs(120),
        Some(Duration::from_secs(3)),
    ))
    .unwrap();
    let old = web_pods_on_node(&sim);
    let generation =
        |sim: &Sim| sim.deployment("shop", "web").unwrap()["metadata"]["generation"].clone();
    let before = generation(&sim);
    let mut first = Handler::start(&sim, &[("SURGE_BLOCKED", "budgeted")]);
    first.wait_for("Deployment restarted for this drain", LONG);
    let restarted = generation(&sim);
    assert_ne!(restarted, before, "the first handler restarted it");
    // Seconds later (a restart's stamp has whole seconds), mid-hold: one old pod moved, two left.
    first.wait_for("pod moved by its rollout", LONG);
    first.kill(); // SIGKILL
    assert!(!web_pods_on_node(&sim).is_empty(), "still holding");
    let second = Handler::start(&sim, &[("SURGE_BLOCKED", "budgeted")]);
    let line = second.wait_for("msg=\"drain finished\"", Duration::from_secs(100));
    let (notice_at, deadline_at) = sim.aws_notice().unwrap();
    assert!(Instant::now() < deadline_at, "drained before the deadline");
    record_requests("surge-budgeted--kindness_budgeted_restart", &sim);
    assert!(
        second
            .logs()
            .iter()
            .any(|l| l.contains("resuming the drain")),
        "{}",
        second.dump()
    );
    // The second handler's patch carries the first one's stamp (the drain's start): it changes
    // nothing, so there is one rollout, not two.
    let patches: Vec<String> = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/deployments/"))
        .map(|r| r.body)
        .collect();
    assert!(
        !patches.is_empty() && patches.iter().all(|b| *b == patches[0]),
        "{patches:?}"
    );
    assert_eq!(generation(&sim), restarted, "restarted twice");
    assert_eq!(sim.replicasets_of("shop", "web").len(), 2, "one rollout");
    assert!(
        line.contains("surged=shop/web") && line.contains("forced=0"),
        "{line}"
    );
    for p in &old {
        assert!(first_eviction(&sim, p).is_none(), "{p} was evicted");
        assert!(gone_at(&sim, p).is_some(), "{p} still on the node");
    }
    let deficit = sim.availability_deficit("shop", "web", notice_at, Instant::now());
    assert_eq!(deficit, 0.0);
}

#[test]
fn budgeted_surge_in_dry_run_describes_the_restart_and_the_hold_and_writes_nothing() {
    let sim = Sim::start(budgeted_web(
        Duration::from_secs(120),
        Some(Duration::from_secs(2)),
    ))
    .unwrap();
    let old = web_pods_on_node(&sim);
    let h = Handler::start(&sim, &[("SURGE_BLOCKED", "budgeted"), ("DRY_RUN", "true")]);
    let line = h.wait_for("dry run: drain planned", LONG);
    record_requests("surge-budgeted--kindness_budgeted_dry_run", &sim);
    assert!(!line.contains("surged="), "{line}");
    assert!(
        h.logs().iter().any(|l| l
            .contains("dry run: would restart the Deployment and hold its pods")
            && l.contains("deployment=shop/web")
            && l.contains("pods=3")
            && l.contains("until=")),
        "{}",
        h.dump()
    );
    for p in &old {
        assert!(
            h.logs()
                .iter()
                .any(|l| l.contains("dry run: would hold pod for its rollout")
                    && l.contains(&format!("pod={p} "))),
            "{p}: {}",
            h.dump()
        );
    }
    assert_eq!(deployment_patches(&sim), 0);
    assert!(evictions(&sim).is_empty());
    assert_eq!(web_pods_on_node(&sim), old);
}
