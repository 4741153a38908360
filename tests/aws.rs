//! The metadata side against the fake IMDS: IMDSv2 tokens (401 refresh, v1 fallback, the
//! hop-limit hint), the seed's NOTICE_URL mode, and garbage from the metadata service.

mod support;

use std::time::Duration;

use stnh_sim::{ImdsMode, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);
const ACTION: &str = "/latest/meta-data/spot/instance-action";

#[test]
fn imdsv2_token_is_refreshed_after_a_401() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::Required)).unwrap();
    let h = Handler::start(&sim, &[]);
    eventually("a few polls with the first token", LONG, || {
        sim.imds_requests()
            .iter()
            .filter(|r| r.path == ACTION)
            .count()
            >= 3
    });
    sim.revoke_imds_tokens();
    eventually("polling goes on with a new token", LONG, || {
        let r = sim.imds_requests();
        let first_401 = r.iter().position(|x| x.status == 401);
        first_401.is_some_and(|i| {
            r[i..]
                .iter()
                .filter(|x| x.path == ACTION && x.status == 404 && x.token_valid)
                .count()
                >= 2
        })
    });
    let r = sim.imds_requests();
    let i = r.iter().position(|x| x.status == 401).unwrap();
    assert_eq!(r[i].path, ACTION);
    assert!(
        r[i].token_sent && !r[i].token_valid,
        "the revoked token was sent"
    );
    assert_eq!(
        (
            r[i + 1].method.as_str(),
            r[i + 1].path.as_str(),
            r[i + 1].status
        ),
        ("PUT", "/latest/api/token", 200),
        "then a new token"
    );
    assert_eq!(
        (
            r[i + 2].path.as_str(),
            r[i + 2].status,
            r[i + 2].token_valid
        ),
        (ACTION, 404, true),
        "and the same poll again"
    );
    assert_eq!(r.iter().filter(|x| x.status == 401).count(), 1);
    assert_eq!(
        r.iter().filter(|x| x.method == "PUT").count(),
        2,
        "one token at start, one after the 401"
    );
    // Then a notice is still acted on.
    sim.set_notice(
        "terminate",
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    h.wait_for("msg=\"drain finished\"", LONG);
}

#[test]
fn a_refused_token_endpoint_falls_back_to_imdsv1() {
    for status in [403, 404, 405] {
        let sim = Sim::start(
            mixed_node()
                .imds_mode(ImdsMode::TokenStatus(status))
                .notice_after(Duration::from_millis(600), "stop", Duration::from_secs(60)),
        )
        .unwrap();
        let h = Handler::start(&sim, &[]);
        h.wait_for("msg=\"drain finished\"", LONG);
        assert_eq!(
            h.count("IMDSv2 token endpoint refused; using IMDSv1"),
            1,
            "{}",
            h.dump()
        );
        let gets: Vec<_> = sim
            .imds_requests()
            .into_iter()
            .filter(|r| r.method == "GET")
            .collect();
        assert!(
            !gets.is_empty() && gets.iter().all(|r| !r.token_sent),
            "IMDSv1: no token header"
        );
        assert!(h.dump().contains("action=stop"));
    }
}

#[test]
fn a_token_request_that_times_out_explains_the_hop_limit_once() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::TokenHang).notice_after(
        Duration::from_secs(2),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[("IMDS_TIMEOUT", "1s")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    assert_eq!(h.count("hop limit is probably 1"), 1);
    let line = h.wait_for("hop limit is probably 1", LONG);
    assert!(
        line.contains("hostNetwork: true") && line.contains("HttpPutResponseHopLimit"),
        "{line}"
    );
    let puts = sim
        .imds_requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(
        puts, 1,
        "a hanging token endpoint is not asked again on every poll"
    );
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn seed_notice_url_mode_polls_that_url_and_treats_200_as_the_notice() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::Optional)).unwrap();
    let url = format!("{}/latest/meta-data/spot/termination-time", sim.imds_url());
    let h = Handler::start(&sim, &[("NOTICE_URL", &url), ("VERBOSE", "1")]);
    // A few polls without a notice (404), then the notice.
    eventually("two polls before the notice", LONG, || {
        h.count("msg=polled") >= 2
    });
    sim.set_notice(
        "terminate",
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    assert!(
        h.dump()
            .contains(&format!("polling {url} every 0.2 second(s)")),
        "the seed's banner"
    );
    let polled: Vec<_> = sim
        .imds_requests()
        .into_iter()
        .filter(|r| r.path.contains("/spot/"))
        .collect();
    assert!(
        polled
            .iter()
            .all(|r| r.path == "/latest/meta-data/spot/termination-time"),
        "only NOTICE_URL is polled"
    );
    // VERBOSE=1 logs each poll's status, like the seed script did.
    assert!(
        h.count("msg=polled") >= 2
            && h.dump().contains("status=404")
            && h.dump().contains("status=200")
    );
    // The body (the termination time) became the deadline.
    let notice_line = h.wait_for("spot interruption notice received", LONG);
    assert!(
        notice_line.contains("notice=notice-url/terminate/")
            && notice_line.contains("deadline_given=true"),
        "{notice_line}"
    );
    assert!(sim.pods_on(NODE).len() == 3);
}

#[test]
fn garbage_from_the_metadata_service_is_logged_and_polling_continues() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("polling", LONG);
    // A notice body cut off mid-way (nanoserde would hang on it), then a 500, then a real notice.
    sim.set_notice_body(Some(br#"{"action": "terminate", "time": "2026-"#.to_vec()));
    sim.set_notice(
        "terminate",
        std::time::SystemTime::now() + Duration::from_secs(60),
    );
    h.wait_for("malformed JSON", LONG);
    sim.set_notice_body(Some(vec![b'x'; 200_000]));
    h.wait_for("body larger than", LONG);
    sim.imds_fail_path(ACTION, Some(500));
    sim.set_notice_body(None);
    h.wait_for("expected 200 or 404, got HTTP 500", LONG);
    sim.imds_fail_path(ACTION, None);
    h.wait_for("msg=\"drain finished\"", LONG);
    // Each kind of fault is logged once, not once per poll.
    assert_eq!(h.count("metadata poll failed"), 3, "{}", h.dump());
    // No good answer came between the faults; the notice itself is the first.
    assert_eq!(h.count("metadata polling recovered"), 1, "{}", h.dump());
    assert!(
        h.position("metadata polling recovered") > h.position("got HTTP 500"),
        "{}",
        h.dump()
    );
    assert!(sim.pods_on(NODE).len() == 3);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_notice_url_without_a_path_asks_for_slash() {
    let sim = Sim::start(mixed_node()).unwrap();
    // The fake IMDS answers `/` with 200 (its version list): in seed mode, a notice.
    let h = Handler::start(&sim, &[("NOTICE_URL", &sim.imds_url())]);
    h.wait_for("spot interruption notice received", LONG);
    let polls: Vec<_> = sim
        .imds_requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/latest/"))
        .collect();
    assert!(!polls.is_empty(), "{:?}", sim.imds_requests());
    assert!(
        polls
            .iter()
            .all(|r| r.method == "GET" && r.path == "/" && r.status == 200),
        "{polls:?}"
    );
    assert_eq!(h.count("metadata poll failed"), 0, "{}", h.dump());
}
