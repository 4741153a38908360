//! Secrets never leave: canary values in every secret setting (Slack and webhook URLs, header
//! values, proxy credentials, a template, the service-account token), a drain with Events,
//! the condition, retries and a failing webhook, then the whole log (debug lines included),
//! every Event, the Node (annotations, labels, conditions) and every body the handler sent to
//! the API server are searched for them. The canaries did reach their receivers (the test
//! could fail).

mod support;

use std::time::Duration;

use stnh_sim::webhook::{WebhookKind, WebhookMode, GENERIC_SECRET, TEAMS_SIG};
use stnh_sim::Sim;
use support::*;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn no_secret_reaches_logs_events_annotations_or_api_bodies() {
    let sim = Sim::start(
        mixed_node()
            .webhook_sink(WebhookKind::Generic)
            .webhook_sink(WebhookKind::Teams)
            .connect_proxy(Some(("stnh", "proxy-canary-pw")))
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let generic = sim.webhook(WebhookKind::Generic).unwrap();
    let teams = sim.webhook(WebhookKind::Teams).unwrap();
    generic.set_mode(WebhookMode::RateLimited(1));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!(
        "http://{}/hooks/dead-url-canary",
        dead.local_addr().unwrap()
    );
    drop(dead);
    let template = r#"{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"{{message}} template-canary"}]}}]}"#;
    let urls = format!("{},{},{dead_url}", generic.url(), teams.url());
    let proxy = sim.proxy().unwrap().url_with_credentials();
    let h = Handler::start(
        &sim,
        &[
            ("WEBHOOK_URL", &urls),
            (
                "WEBHOOK_HEADERS",
                "Authorization: Bearer header-canary-1\nX-Api-Key: header-canary-2",
            ),
            ("WEBHOOK_TEMPLATE", template),
            ("WEBHOOK_PROXY", &proxy),
            ("VERBOSE", "true"),
        ],
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("both messages at both sinks", LONG, || {
        generic.accepted().len() == 2 && teams.accepted().len() == 2
    });
    h.wait_for("destination=\"webhook 3\"", LONG);
    eventually("the Drained Event", LONG, || {
        sim.events_regarding("Node", "", NODE)
            .iter()
            .any(|e| e.reason == "Drained")
    });
    settled(&sim);

    // Positive control: the secrets were in use.
    let r = &teams.accepted()[0];
    assert_eq!(r.header("authorization"), Some("Bearer header-canary-1"));
    assert!(r.body.contains("template-canary"));
    assert!(sim.proxy().unwrap().requests().iter().all(|r| r.authorized));
    assert!(
        h.count("webhook message not delivered; retrying") >= 2,
        "{}",
        h.dump()
    );

    let canaries = [
        "XXXXSECRETXXXX".to_string(),
        GENERIC_SECRET.to_string(),
        TEAMS_SIG.to_string(),
        "dead-url-canary".to_string(),
        "header-canary".to_string(),
        "proxy-canary-pw".to_string(),
        "c3RuaDpwcm94eS1jYW5hcnktcHc".to_string(), // base64 of stnh:proxy-canary-pw
        "template-canary".to_string(),
        sim.token(),
    ];
    let log = h.dump();
    let events = serde_json::to_string(&sim.events()).unwrap();
    let node = sim.node(NODE).unwrap().to_string();
    let bodies: String = sim.api_requests().iter().map(|r| r.body.clone()).collect();
    assert!(
        log.contains(" level=debug ") && events.len() > 1000 && node.contains("TerminationNotice")
    );
    for c in &canaries {
        for (what, text) in [
            ("log", &log),
            ("Events", &events),
            ("Node", &node),
            ("API bodies", &bodies),
        ] {
            assert!(!text.contains(c.as_str()), "{c:?} found in the {what}");
        }
    }
    record_requests("secrets", &sim);
}

/// The panic message of `f`, which must panic.
fn panic_of(f: impl FnOnce()) -> String {
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .expect_err("the audit must panic");
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn the_automatic_audit_catches_a_canary_in_the_log_and_in_the_cluster() {
    // Positive control of the audit every test runs (tests/support, stnh_sim::canary): a
    // canary where it may not be is found, named, and fails the test.
    let sim = Sim::start(mixed_node()).unwrap();
    // The cluster name is logged at start-up: here it is a canary.
    let h = Handler::start(&sim, &[("CLUSTER", "cluster-stnhCanaryToken")]);
    h.wait_for("polling", LONG);
    let msg = panic_of(move || drop(h));
    assert!(
        msg.contains("secrets audit of the handler")
            && msg.contains("\"stnhCanaryToken\" found in the handler's log"),
        "{msg}"
    );
    // A canary written to the Node (as a leak would): the simulator's audit finds it there.
    let mut c = stnh_sim::testclient::Client::api(&sim).unwrap();
    let r = c
        .call(
            "PATCH",
            &format!("/api/v1/nodes/{NODE}"),
            &sim.token(),
            Some("application/merge-patch+json"),
            r#"{"metadata":{"annotations":{"example.com/leak":"XXXXSECRETXXXX"}}}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let msg = panic_of(move || drop(sim));
    assert!(
        msg.contains("secrets audit of the simulator's records")
            && msg.contains("\"XXXXSECRETXXXX\" found in Node node-a"),
        "{msg}"
    );
}
