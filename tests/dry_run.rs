//! DRY_RUN: every read happens, no write does; the log says what would have been done and when.

mod support;

use std::time::{Duration, SystemTime};

use stnh_sim::{PodSpec, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_dry_run_reads_everything_writes_nothing_and_says_what_it_would_do() {
    let sim = Sim::start(
        mixed_node()
            .pod(
                PodSpec::new("shop", "checkout-1")
                    .replicaset("checkout")
                    .labels(&[("app", "checkout")]),
            )
            .pdb(
                "shop",
                "checkout-pdb",
                &[("app", "checkout")],
                None,
                Some(0),
            ),
    )
    .unwrap();
    let h = Handler::start_idle(&sim, &[("DRY_RUN", "true")]);
    let pods_before = sim.pods_on(NODE).len();
    h.wait_for(
        "dry run: the handler reads everything and writes nothing",
        LONG,
    );
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    h.wait_for("dry run: would update the node", LONG);
    h.wait_for("dry run: drain planned; nothing was evicted", LONG);
    // One line per pod: the eviction with its grace, and the forced delete with its instant.
    for pod in MIXED_EVICTABLE.iter().chain(["shop/checkout-1"].iter()) {
        let line = h.wait_for(
            &format!("msg=\"dry run: would evict pod\" pod={pod} "),
            LONG,
        );
        assert!(
            line.contains("grace_s=") && line.contains("at=20"),
            "{line}"
        );
        let line = h.wait_for(
            &format!("msg=\"dry run: if its budget refuses, would delete it directly\" pod={pod} "),
            LONG,
        );
        assert!(
            line.contains("grace_s=") && line.contains("at=20"),
            "{line}"
        );
    }
    eventually("both messages", LONG, || sim.slack_messages().len() == 2);
    record_requests("dry_run", &sim);
    let writes: Vec<String> = sim
        .api_requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "no write reached the API server: {writes:?}"
    );
    let node = sim.node(NODE).unwrap();
    assert_ne!(node["spec"]["unschedulable"], true);
    assert!(annotation(&node, "notices").is_none());
    assert_eq!(
        sim.pods_on(NODE).len(),
        pods_before,
        "every pod still there"
    );
    for m in sim.slack_messages() {
        let t = m.text().unwrap();
        assert!(t.starts_with("[dry run: nothing was done] "), "{t}");
    }
    assert!(sim.slack_messages()[1]
        .text()
        .unwrap()
        .contains("would drain: 7 pods to evict"));
}

#[test]
fn a_dry_run_undo_is_only_said() {
    let sim = Sim::start(mixed_node().rebalance_after(Duration::from_millis(200))).unwrap();
    let h = Handler::start(&sim, &[("DRY_RUN", "true"), ("REBALANCE_TTL", "2s")]);
    h.wait_for("dry run: would update the node", LONG);
    let line = h.wait_for("dry run: would give the node back", LONG);
    assert!(line.contains("uncordon=true"), "{line}");
    eventually("notice and back-in-service messages", LONG, || {
        sim.slack_messages().len() == 2
    });
    assert!(sim.slack_messages()[1]
        .text()
        .unwrap()
        .starts_with("[dry run: nothing was done] Rebalance Recommendation"));
    assert!(sim.api_requests().iter().all(|r| r.method == "GET"));
    assert_ne!(sim.node(NODE).unwrap()["spec"]["unschedulable"], true);
}
