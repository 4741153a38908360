//! Alibaba Cloud: the real binary against the fake ECS metadata service. A spot release time
//! drains the node by that time, in hardened (token) mode and with the token PUT refused; an
//! empty answer means no release.

mod support;

use std::time::{Duration, SystemTime};

use stnh_sim::{AlibabaMode, Cloud, MetaRequest, PodSpec, Scenario, Sim, WhenNone};
use support::*;

const LONG: Duration = Duration::from_secs(60);
const TERMINATION: &str = "/latest/meta-data/instance/spot/termination-time";

fn ack_node() -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .cloud(Cloud::Alibaba)
        .handler_pod()
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("data", "db-0")
                .statefulset("db")
                .shutdown(quick),
        )
        .pod(PodSpec::new("kube-system", "terway-eniip-x1").daemonset("terway-eniip"))
}

fn polls(sim: &Sim) -> Vec<MetaRequest> {
    sim.alibaba_requests()
        .into_iter()
        .filter(|r| r.path == TERMINATION)
        .collect()
}

/// Sets the release `secs` from now and waits for the drain; returns the release time.
fn release_and_drain(sim: &Sim, h: &Handler, secs: u64) -> SystemTime {
    let t = SystemTime::now() + Duration::from_secs(secs);
    sim.alibaba_set_termination(Some(t));
    let seen = h.wait_for("spot interruption notice received", LONG);
    assert!(
        seen.contains("notice=alibaba-spot/20") && seen.contains("deadline_given=true"),
        "{seen}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    let node = sim.node(NODE).unwrap();
    assert_held(&node, "spot-interruption", "drained");
    let d = deadline_annotation(&node).unwrap();
    let off = d
        .duration_since(t)
        .unwrap_or_else(|e| e.duration())
        .as_secs_f64();
    assert!(
        off <= 1.5,
        "the deadline is the release time (off by {off:.1} s)"
    );
    assert_eq!(
        sim.pods_on(NODE)
            .iter()
            .filter(|p| p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n == "web-1" || n == "db-0"))
            .count(),
        0
    );
    t
}

#[test]
fn a_release_time_in_hardened_mode_drains_with_the_token() {
    let sim = Sim::start(ack_node().alibaba_mode(AlibabaMode::Required)).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    let line = h.wait_for("cloud chosen", LONG);
    assert!(
        line.contains("cloud=alibaba") && line.contains("alicloud://"),
        "{line}"
    );
    let id = h.wait_for("identified instance", LONG);
    assert!(
        id.contains("instance=i-bp13znx0m0me8cquu4k2")
            && id.contains("instance_type=ecs.g6e.large")
            && id.contains("zone=cn-hangzhou-i"),
        "{id}"
    );
    eventually("polling", LONG, || polls(&sim).len() >= 3);
    release_and_drain(&sim, &h, 60);
    record_requests("alibaba_hardened", &sim);
    assert_api_head(&sim);
    let all = sim.alibaba_requests();
    assert_eq!(
        (all[0].method.as_str(), all[0].path.as_str()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(
        all[0].header("x-aliyun-ecs-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert!(all[0].header("x-forwarded-for").is_none());
    assert_eq!(
        all.iter().filter(|r| r.method == "PUT").count(),
        1,
        "one token for all requests"
    );
    for r in all.iter().filter(|r| r.method == "GET") {
        assert!(r.header("x-aliyun-ecs-metadata-token").is_some(), "{r:?}");
        assert!(r.status == 200 || r.status == 404, "{r:?}");
    }
    assert!(
        polls(&sim).iter().any(|r| r.status == 404) && polls(&sim).iter().any(|r| r.status == 200)
    );
}

#[test]
fn a_refused_token_put_falls_back_to_requests_without_a_token() {
    let sim = Sim::start(ack_node().alibaba_mode(AlibabaMode::TokenStatus(403))).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    eventually("polling", LONG, || polls(&sim).len() >= 3);
    release_and_drain(&sim, &h, 120);
    record_requests("alibaba_token_refused", &sim);
    assert_eq!(
        h.count("metadata token endpoint refused; using normal mode (no token)"),
        1,
        "{}",
        h.dump()
    );
    let all = sim.alibaba_requests();
    assert_eq!(all[0].method, "PUT");
    assert_eq!(all[0].status, 403);
    let gets: Vec<_> = all.iter().filter(|r| r.method == "GET").collect();
    assert!(gets
        .iter()
        .all(|r| r.header("x-aliyun-ecs-metadata-token").is_none()));
    assert!(
        all.iter().filter(|r| r.method == "PUT").count() <= 2,
        "the refused PUT is not asked again on every poll"
    );
}

#[test]
fn an_empty_answer_means_no_release() {
    let sim = Sim::start(ack_node().alibaba_when_none(WhenNone::EmptyBody)).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    eventually("polling", LONG, || polls(&sim).len() >= 5);
    assert!(polls(&sim).iter().all(|r| r.status == 200));
    assert_eq!(h.count("notice received"), 0, "{}", h.dump());
    assert!(cordon_patches(&sim).is_empty());
    assert_eq!(h.count("metadata poll failed"), 0, "{}", h.dump());
    release_and_drain(&sim, &h, 300);
    record_requests("alibaba_empty_body", &sim);
}
