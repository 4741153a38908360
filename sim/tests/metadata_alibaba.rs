//! Black-box tests of the fake Alibaba ECS metadata service: termination-time, the hardened
//! (token) modes, identity.

use std::time::{Duration, SystemTime};

use stnh_sim::testclient::{plain_request, Response};
use stnh_sim::util::{parse_rfc3339, rfc3339};
use stnh_sim::{AlibabaMode, Cloud, Scenario, Sim, WhenNone};

const TERM: &str = "/latest/meta-data/instance/spot/termination-time";
const TTL: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN: &str = "X-aliyun-ecs-metadata-token";

fn ali_sim(s: Scenario) -> Sim {
    Sim::start(s.cloud(Cloud::Alibaba)).unwrap()
}

fn get(sim: &Sim, path: &str, headers: &[(&str, &str)]) -> Response {
    plain_request(&sim.alibaba_metadata_url(), "GET", path, headers, b"").unwrap()
}

fn token(sim: &Sim, ttl: &str) -> Response {
    plain_request(
        &sim.alibaba_metadata_url(),
        "PUT",
        "/latest/api/token",
        &[(TTL, ttl)],
        b"",
    )
    .unwrap()
}

#[test]
fn termination_time_absent_empty_and_set() {
    let sim = ali_sim(Scenario::new("cn-hangzhou.10.0.1.23"));
    let r = get(&sim, TERM, &[]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<title>404 - Not Found</title>"));
    sim.alibaba_set_when_none(WhenNone::EmptyBody);
    let r = get(&sim, TERM, &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    let t = parse_rfc3339("2015-01-05T18:02:00Z").unwrap();
    sim.alibaba_set_termination(Some(t));
    let r = get(&sim, TERM, &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "2015-01-05T18:02:00Z"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.header("date").is_some());
    sim.alibaba_set_termination(None);
    assert_eq!(get(&sim, TERM, &[]).body.len(), 0);
}

#[test]
fn scripted_termination_is_relative_to_its_appearance() {
    let sim = ali_sim(
        Scenario::new("n")
            .alibaba_termination_after(Duration::ZERO, Duration::from_secs(300))
            .clock_skew(10_000),
    );
    let text = get(&sim, TERM, &[]).text();
    assert_eq!(text.len(), 20, "{text}");
    let t = parse_rfc3339(&text).unwrap();
    let want = sim.started().1 + Duration::from_secs(310);
    let d = t.duration_since(want).unwrap_or_else(|e| e.duration());
    assert!(d <= Duration::from_secs(1), "{text} vs {}", rfc3339(want));
    assert!(sim.alibaba_termination().unwrap() > SystemTime::now());
}

#[test]
fn hardened_mode_tokens() {
    let sim = ali_sim(Scenario::new("n"));
    for bad in ["0", "21601", "abc", "-1"] {
        let r = token(&sim, bad);
        assert_eq!(r.status, 400, "ttl {bad}");
        assert!(r.text().contains("400 - Missing or Invalid Parameters"));
    }
    let r = plain_request(
        &sim.alibaba_metadata_url(),
        "PUT",
        "/latest/api/token",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = plain_request(
        &sim.alibaba_metadata_url(),
        "PUT",
        "/latest/api/token",
        &[(TTL, "60"), ("X-Forwarded-For", "10.0.0.9")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let t = token(&sim, "21600");
    assert_eq!(t.status, 200);
    let tok = t.text();
    assert!(!tok.is_empty());
    // Optional (normal + hardened): both work; a bad token is 401.
    assert_eq!(get(&sim, "/latest/meta-data/instance-id", &[]).status, 200);
    assert_eq!(
        get(&sim, "/latest/meta-data/instance-id", &[(TOKEN, &tok)]).status,
        200
    );
    let r = get(&sim, "/latest/meta-data/instance-id", &[(TOKEN, "aaa")]);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("401 - Unauthorized"));
    // Hardened only: no token is 403 (Alibaba's documented answer), a valid one works.
    sim.alibaba_set_mode(AlibabaMode::Required);
    let r = get(&sim, TERM, &[]);
    assert_eq!(r.status, 403);
    assert!(r.text().contains("403 - Forbidden"));
    assert_eq!(get(&sim, TERM, &[(TOKEN, &tok)]).status, 404);
    sim.alibaba_revoke_tokens();
    assert_eq!(get(&sim, TERM, &[(TOKEN, &tok)]).status, 401);
    // A token PUT refused (older image/host): tokenless GETs still work.
    sim.alibaba_set_mode(AlibabaMode::TokenStatus(404));
    assert_eq!(token(&sim, "60").status, 404);
    assert_eq!(get(&sim, TERM, &[]).status, 404);
    assert_eq!(
        get(&sim, "/latest/meta-data/region-id", &[]).text(),
        "cn-hangzhou"
    );
    sim.alibaba_set_mode(AlibabaMode::Disabled);
    assert_eq!(get(&sim, "/latest/meta-data/region-id", &[]).status, 403);
    let log = sim.alibaba_requests();
    assert!(log
        .iter()
        .any(|r| r.note == "normal mode refused" && r.status == 403));
    assert_eq!(sim.alibaba_count("/latest/api/token"), 8);
}

#[test]
fn tokens_expire() {
    let sim = ali_sim(Scenario::new("n").alibaba_mode(AlibabaMode::Required));
    let tok = token(&sim, "1").text();
    assert_eq!(
        get(&sim, "/latest/meta-data/zone-id", &[(TOKEN, &tok)]).status,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        get(&sim, "/latest/meta-data/zone-id", &[(TOKEN, &tok)]).status,
        401
    );
}

#[test]
fn identity() {
    let sim = ali_sim(Scenario::new("n"));
    for (path, want) in [
        ("/latest/meta-data/instance-id", "i-bp13znx0m0me8cquu4k2"),
        ("/latest/meta-data/instance/instance-type", "ecs.g6e.large"),
        ("/latest/meta-data/zone-id", "cn-hangzhou-i"),
        ("/latest/meta-data/region-id", "cn-hangzhou"),
    ] {
        let r = get(&sim, path, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
    }
    let doc = get(&sim, "/latest/dynamic/instance-identity/document", &[]).json();
    assert_eq!(doc["instance-id"], "i-bp13znx0m0me8cquu4k2");
    assert_eq!(doc["region-id"], "cn-hangzhou");
    assert_eq!(get(&sim, "/latest/meta-data/nope", &[]).status, 404);
    assert_eq!(
        plain_request(&sim.alibaba_metadata_url(), "POST", TERM, &[], b"")
            .unwrap()
            .status,
        405
    );
}

#[test]
fn when_none_from_the_scenario() {
    let sim = ali_sim(Scenario::new("n").alibaba_when_none(WhenNone::EmptyBody));
    let r = get(&sim, TERM, &[]);
    assert_eq!((r.status, r.text().as_str()), (200, ""));
}
