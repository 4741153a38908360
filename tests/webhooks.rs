//! Webhooks end to end: the real binary against the simulator's sinks (each checking the shape
//! its service documents) and its CONNECT proxy. The README's templates are read from the
//! README itself, so the ones people copy are the ones tested.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use stnh_sim::webhook::{SinkTls, WebhookKind, WebhookMode, WebhookRequest, PAGERDUTY_ROUTING_KEY};
use stnh_sim::{PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);

/// The template under `<!-- template:NAME -->` in the README.
fn readme_template(name: &str) -> String {
    let readme = include_str!("../README.md");
    let marker = format!("<!-- template:{name} -->\n```json\n");
    let start = readme.find(&marker).expect("README has the template") + marker.len();
    let len = readme[start..].find("\n```").unwrap();
    readme[start..start + len].to_string()
}

fn uptime(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uptime");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(test);
    std::fs::write(&f, "100000.00 100.00\n").unwrap();
    f
}

/// Two evictable pods (and the handler's own).
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

/// FNV-1a of node, notice and phase: the id the README promises, computed independently.
fn expected_id(node: &str, notice: &str, phase: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{node}\0{notice}\0{phase}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("stnh-{phase}-{h:016x}")
}

fn ledger_ids(sim: &Sim) -> Vec<String> {
    annotation(&sim.node(NODE).unwrap(), "notices")
        .map(|j| serde_json::from_str::<Vec<Value>>(&j).unwrap())
        .unwrap_or_default()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// A rebalance recommendation drained (no deadline) and given back after its TTL: all three
/// phases, to one sink with `template`. Returns the sink's requests and the notice id.
fn three_phases(test: &str, kind: WebhookKind, template: &str) -> (Vec<WebhookRequest>, String) {
    let sim = Sim::start(
        small_node()
            .webhook_sink(kind)
            .rebalance_after(Duration::from_millis(300)),
    )
    .unwrap();
    let sink = sim.webhook(kind).unwrap();
    let up = uptime(test);
    let url = sink.url();
    let h = Handler::start(
        &sim,
        &[
            ("REBALANCE", "drain"),
            ("REBALANCE_TTL", "4s"),
            ("UPTIME_FILE", up.to_str().unwrap()),
            ("WEBHOOK_URL", &url),
            ("WEBHOOK_TEMPLATE", template),
        ],
    );
    h.wait_for("msg=\"node back in service\"", LONG);
    eventually("three webhook messages", LONG, || {
        sink.requests().len() >= 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 3, "one per phase, no more: {reqs:#?}");
    for (r, phase) in reqs.iter().zip(["notice", "drained", "back"]) {
        assert!(r.passed(), "{kind:?} {phase}: {:?}\n{}", r.check, r.body);
        assert!(
            (200..300).contains(&r.status),
            "{kind:?} {phase}: {}",
            r.status
        );
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.header("idempotency-key")
                .is_some_and(|k| k.starts_with(&format!("stnh-{phase}-"))),
            "{:?}",
            r.headers
        );
    }
    let ids = ledger_ids(&sim);
    assert_eq!(ids.len(), 1, "{ids:?}");
    for (r, phase) in reqs.iter().zip(["notice", "drained", "back"]) {
        assert_eq!(
            r.header("idempotency-key").unwrap(),
            expected_id(NODE, &ids[0], phase)
        );
    }
    let path = &url[url[8..].find('/').unwrap() + 8..];
    if kind != WebhookKind::PagerDuty {
        assert!(
            !h.dump().contains(path),
            "the URL's secret part is never logged"
        );
    }
    record_requests(test, &sim);
    (reqs, ids[0].clone())
}

#[test]
fn the_readme_teams_template_is_an_adaptive_card_message() {
    let (reqs, _) = three_phases(
        "webhook_teams",
        WebhookKind::Teams,
        &readme_template("teams"),
    );
    let card = &reqs[1].json().unwrap()["attachments"][0]["content"];
    assert_eq!(
        card["body"][0]["text"],
        "rebalance recommendation: node-a (drained)"
    );
    assert!(card["body"][1]["text"]
        .as_str()
        .unwrap()
        .contains("node-a drained: 2 evicted, 0 forced at the deadline, 0 failed"));
    assert_eq!(
        card["body"][2]["facts"][3]["value"],
        "2 evicted, 0 forced, 0 failed"
    );
}

#[test]
fn the_readme_google_chat_template_is_a_chat_message() {
    let (reqs, _) = three_phases(
        "webhook_googlechat",
        WebhookKind::GoogleChat,
        &readme_template("googlechat"),
    );
    let m = reqs[0].json().unwrap();
    assert!(m["text"].as_str().unwrap().starts_with(
        "Rebalance Recommendation (sim-cluster): node-a, Instance: i-0abc123def4567890"
    ));
    assert_eq!(
        m["cardsV2"][0]["card"]["header"]["title"],
        "rebalance recommendation: node-a"
    );
}

#[test]
fn the_readme_discord_template_is_an_embed() {
    let (reqs, _) = three_phases(
        "webhook_discord",
        WebhookKind::Discord,
        &readme_template("discord"),
    );
    let m = reqs[2].json().unwrap();
    assert!(m["content"].as_str().unwrap().contains("back in service"));
    let d = m["embeds"][0]["description"].as_str().unwrap();
    assert!(
        d.starts_with("Phase: back\nCluster: sim-cluster\nDeadline: \nInstance: i-0abc123def4567890 (m5.large, us-east-1a)"),
        "{d}"
    );
}

#[test]
fn the_readme_pagerduty_template_triggers_then_resolves_one_incident() {
    let template =
        readme_template("pagerduty").replace("YOUR_INTEGRATION_KEY", PAGERDUTY_ROUTING_KEY);
    let (reqs, id) = three_phases("webhook_pagerduty", WebhookKind::PagerDuty, &template);
    let events: Vec<Value> = reqs.iter().map(|r| r.json().unwrap()).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);
    for e in &events {
        assert_eq!(e["dedup_key"], format!("{NODE}/{id}"), "one incident");
    }
    assert_eq!(events[0]["payload"]["severity"], "warning");
    assert_eq!(events[1]["payload"]["custom_details"]["evicted"], 2);
    assert_eq!(events[2]["payload"]["severity"], "info");
}

#[test]
fn the_default_body_carries_every_field_and_the_configured_headers() {
    let sim = Sim::start(
        small_node()
            .webhook_sink(WebhookKind::Generic)
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(90),
            ),
    )
    .unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let url = sink.url();
    let h = Handler::start(
        &sim,
        &[
            ("WEBHOOK_URL", &format!("{url}, {url}")),
            (
                "WEBHOOK_HEADERS",
                "Authorization: Bearer hdr-canary-77\n\nX-Team:  ops  \nContent-Type: application/json; charset=utf-8",
            ),
        ],
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("two messages to each URL", LONG, || {
        sink.requests().len() == 4
    });
    let reqs = sink.requests();
    let ids = ledger_ids(&sim);
    for r in &reqs {
        assert_eq!(r.header("authorization"), Some("Bearer hdr-canary-77"));
        assert_eq!(r.header("x-team"), Some("ops"));
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .count(),
            1
        );
    }
    let bodies: Vec<Value> = reqs.iter().map(|r| r.json().expect("JSON")).collect();
    let notice: Vec<&Value> = bodies.iter().filter(|b| b["phase"] == "notice").collect();
    let drained: Vec<&Value> = bodies.iter().filter(|b| b["phase"] == "drained").collect();
    assert_eq!(
        (notice.len(), drained.len()),
        (2, 2),
        "each URL gets each message"
    );
    assert_eq!(notice[0], notice[1], "the same body to every URL");
    let n = notice[0];
    for (k, v) in [
        ("node", "node-a"),
        ("cluster", "sim-cluster"),
        ("provider", "aws"),
        ("kind", "spot-interruption"),
        ("reason", "SpotInterruption"),
        ("action", "terminate"),
        ("reaction", "drain"),
        ("instance_id", "i-0abc123def4567890"),
        ("instance_type", "m5.large"),
        ("zone", "us-east-1a"),
        ("severity", "critical"),
    ] {
        assert_eq!(n[k], v, "{k}: {n}");
    }
    assert_eq!(n["notice_id"], ids[0].as_str());
    assert_eq!(n["message_id"], expected_id(NODE, &ids[0], "notice"));
    assert!(n["text"]
        .as_str()
        .unwrap()
        .starts_with("Spot Termination (sim-cluster): node-a"));
    let left: i64 = n["seconds_left"].as_str().unwrap().parse().unwrap();
    assert!((80..=90).contains(&left), "{left}");
    assert_eq!(n["evicted"], 0);
    let d = drained[0];
    assert_eq!(
        (
            d["evicted"].as_i64(),
            d["pods"].as_i64(),
            d["failed"].as_i64()
        ),
        (Some(2), Some(2), Some(0))
    );
    assert_eq!(d["message_id"], expected_id(NODE, &ids[0], "drained"));
    assert!(d["seconds"].as_f64().unwrap() > 0.0);
    // Slack is told as before, and no header value or URL reaches the log. The sinks record a
    // message when it arrives; the handler logs its delivery after the answer: wait for both.
    eventually(
        "both Slack messages and every delivery logged",
        LONG,
        || sim.slack_messages().len() >= 2 && h.count("msg=\"sent webhook message\"") >= 4,
    );
    assert_eq!(sim.slack_messages().len(), 2);
    let log = h.dump();
    assert!(
        !log.contains("hdr-canary-77") && !log.contains("XXXXWEBHOOKSECRETXXXX"),
        "{log}"
    );
    assert_eq!(
        h.count("msg=\"sent webhook message\" destination=\"webhook 1\""),
        2
    );
    assert_eq!(
        h.count("msg=\"sent webhook message\" destination=\"webhook 2\""),
        2
    );
}

#[test]
fn webhook_events_picks_the_phases_and_a_restart_repeats_none() {
    let sim = Sim::start(
        small_node()
            .webhook_sink(WebhookKind::Generic)
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(90),
            ),
    )
    .unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let url = sink.url();
    let env = [("WEBHOOK_URL", url.as_str()), ("WEBHOOK_EVENTS", "drained")];
    let mut h = Handler::start(&sim, &env);
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("the drained message", LONG, || !sink.requests().is_empty());
    h.kill();
    let h = Handler::start(&sim, &env);
    h.wait_for("node already drained for this notice", LONG);
    std::thread::sleep(Duration::from_secs(2));
    let phases: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| r.json().unwrap()["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases,
        ["drained"],
        "only the phase asked for, once across the restart"
    );
    assert_eq!(
        sim.slack_messages().len(),
        2,
        "Slack is not filtered, and not repeated"
    );
}

#[test]
fn failed_deliveries_are_retried_with_the_same_id_and_stop_at_the_deadline() {
    let deadline = Duration::from_secs(8);
    let sim = Sim::start(
        small_node()
            .webhook_sink_with(
                WebhookKind::Generic,
                SinkTls::Plain,
                WebhookMode::Status(503, "busy".into()),
            )
            .notice_after(Duration::from_millis(300), "terminate", deadline),
    )
    .unwrap();
    let notice_at = SystemTime::now() + Duration::from_millis(300);
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let h = Handler::start(&sim, &[("WEBHOOK_URL", &sink.url())]);
    h.wait_for(
        "webhook message not delivered by the deadline; giving up",
        LONG,
    );
    std::thread::sleep(Duration::from_secs(3));
    let reqs = sink.requests();
    let notice: Vec<&WebhookRequest> = reqs
        .iter()
        .filter(|r| {
            r.header("idempotency-key")
                .unwrap()
                .starts_with("stnh-notice-")
        })
        .collect();
    assert!(notice.len() >= 3, "retried: {}", notice.len());
    assert!(
        notice.iter().all(|r| r.body == notice[0].body
            && r.header("idempotency-key") == notice[0].header("idempotency-key")),
        "every retry is the same message"
    );
    // Backoff: the gaps grow.
    let gaps: Vec<Duration> = notice.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "{gaps:?}");
    let end = notice_at + deadline + Duration::from_millis(1500);
    assert!(
        reqs.iter().all(|r| r.time <= end),
        "nothing is sent after the deadline (plus one request timeout)"
    );
    assert!(h.count("msg=\"webhook message not delivered; retrying\"") >= 2);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_rate_limit_is_waited_out_and_a_refusal_is_not_retried() {
    let sim = Sim::start(
        small_node()
            .webhook_sink_with(
                WebhookKind::Discord,
                SinkTls::Plain,
                WebhookMode::RateLimited(2),
            )
            .webhook_sink_with(
                WebhookKind::Generic,
                SinkTls::Plain,
                WebhookMode::Status(400, "bad payload".into()),
            )
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let discord = sim.webhook(WebhookKind::Discord).unwrap();
    let generic = sim.webhook(WebhookKind::Generic).unwrap();
    let h = Handler::start(
        &sim,
        &[
            (
                "WEBHOOK_URL",
                &format!("{},{}", discord.url(), generic.url()),
            ),
            ("WEBHOOK_TEMPLATE", &readme_template("discord")),
            ("WEBHOOK_EVENTS", "notice"),
        ],
    );
    eventually("delivered after two 429s", LONG, || {
        discord.accepted().len() == 1
    });
    let d = discord.requests();
    assert_eq!(
        d.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 204]
    );
    assert!(
        d[1].at - d[0].at >= Duration::from_millis(900),
        "Retry-After: 1 honoured"
    );
    h.wait_for("webhook refused the message; not retrying", LONG);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(generic.requests().len(), 1, "a 400 is not retried");
    assert!(
        h.dump().contains("answer=\"HTTP 400 bad payload\""),
        "{}",
        h.dump()
    );
}

#[test]
fn slack_and_webhooks_use_the_proxy_and_nothing_else_does() {
    let sim = Sim::start(
        small_node()
            .webhook_sink(WebhookKind::Generic)
            .connect_proxy(Some(("stnh", "pr0xy-canary")))
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let proxy = sim.proxy().unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let with_creds = proxy.url_with_credentials();
    let h = Handler::start(
        &sim,
        &[
            ("WEBHOOK_URL", &sink.url()),
            // Both set: the API server (https) and IMDS (http) must still be reached directly.
            ("WEBHOOK_PROXY", &with_creds),
            ("HTTPS_PROXY", &with_creds),
        ],
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("both messages at both destinations", LONG, || {
        sink.requests().len() == 2 && sim.slack_messages().len() == 2
    });
    let targets: std::collections::BTreeSet<String> = proxy.connect_targets().into_iter().collect();
    let slack_port = sim
        .slack_url()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let want: std::collections::BTreeSet<String> = [
        format!("127.0.0.1:{}", sink.addr().port()),
        format!("127.0.0.1:{slack_port}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(targets, want, "only Slack and the webhook are tunnelled");
    assert!(proxy
        .requests()
        .iter()
        .all(|r| r.method == "CONNECT" && r.authorized && r.status == 200));
    assert_eq!(proxy.connect_targets().len(), 4, "one tunnel per message");
    assert!(!sim.api_requests().is_empty() && !sim.imds_requests().is_empty());
    let log = h.dump();
    assert!(
        !log.contains("pr0xy-canary") && !log.contains("c3RuaDpwcjB4eS1jYW5hcnk"),
        "{log}"
    );
    assert!(
        log.contains(" proxy=\"webhook=http://<redacted>@127.0.0.1:"),
        "{log}"
    );
    record_requests("webhook_proxy", &sim);
}

#[test]
fn webhook_proxy_wins_over_https_proxy_and_no_proxy_goes_direct() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let sim = Sim::start(
        small_node()
            .webhook_sink_with(WebhookKind::Generic, SinkTls::Untrusted, WebhookMode::Ok)
            .connect_proxy(None)
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let proxy = sim.proxy().unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let h = Handler::start(
        &sim,
        &[
            ("WEBHOOK_URL", &sink.url()),
            ("WEBHOOK_EVENTS", "notice"),
            ("HTTPS_PROXY", &dead_url),
            ("WEBHOOK_PROXY", &proxy.url()),
        ],
    );
    let sink_target = format!("127.0.0.1:{}", sink.addr().port());
    eventually(
        "the https webhook tunnelled through WEBHOOK_PROXY",
        LONG,
        || proxy.connect_targets().contains(&sink_target),
    );
    eventually("Slack too (http: WEBHOOK_PROXY covers it)", LONG, || {
        !sim.slack_messages().is_empty()
    });
    assert!(
        !h.dump().contains("proxy 127.0.0.1:"),
        "the dead HTTPS_PROXY was never tried: {}",
        h.dump()
    );
    drop(h);

    let sim = Sim::start(
        small_node()
            .webhook_sink(WebhookKind::Generic)
            .connect_proxy(None)
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let proxy = sim.proxy().unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    let _h = Handler::start(
        &sim,
        &[
            ("WEBHOOK_URL", &sink.url()),
            ("WEBHOOK_EVENTS", "notice"),
            ("WEBHOOK_PROXY", &proxy.url()),
            ("NO_PROXY", "localhost, 127.0.0.0/8"),
        ],
    );
    eventually("delivered directly", LONG, || sink.requests().len() == 1);
    eventually("Slack too", LONG, || !sim.slack_messages().is_empty());
    assert!(
        proxy.requests().is_empty(),
        "NO_PROXY: nothing went through the proxy"
    );
}

#[test]
fn an_https_webhook_runs_tls_inside_the_tunnel() {
    let sim = Sim::start(
        small_node()
            .webhook_sink_with(WebhookKind::Generic, SinkTls::Untrusted, WebhookMode::Ok)
            .connect_proxy(None)
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(6),
            ),
    )
    .unwrap();
    let proxy = sim.proxy().unwrap();
    let sink = sim.webhook(WebhookKind::Generic).unwrap();
    assert!(sink.url().starts_with("https://"));
    let h = Handler::start(
        &sim,
        &[
            ("WEBHOOK_URL", &sink.url()),
            ("WEBHOOK_EVENTS", "notice"),
            ("HTTPS_PROXY", &proxy.url()),
        ],
    );
    let line = h.wait_for("msg=\"webhook message not delivered; retrying\"", LONG);
    assert!(
        line.contains(&format!("TLS handshake 127.0.0.1:{}", sink.addr().port()))
            && line.contains("UnknownIssuer"),
        "the handshake with the sink itself ran through the tunnel: {line}"
    );
    assert!(proxy
        .connect_targets()
        .contains(&format!("127.0.0.1:{}", sink.addr().port())));
    assert!(sink.requests().is_empty() && sink.connections() >= 1);
    // Slack is plain http here: HTTPS_PROXY does not apply to it.
    let slack_port = sim
        .slack_url()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(!proxy
        .connect_targets()
        .contains(&format!("127.0.0.1:{slack_port}")));
}

fn run(env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .env_clear()
        // A configuration that passes would still exit 2 (no CA): a test never hangs.
        .envs([
            ("NODE_NAME", "node-a"),
            ("KUBE_API_URL", "https://127.0.0.1:9"),
            ("SERVICE_ACCOUNT_DIR", "/nonexistent"),
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_webhook_settings_exit_2_naming_the_setting_and_never_the_secret() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(&file, "{\"t\":\"{{nodename}}\",\"k\":\"file-canary\"}").unwrap();
    let file = file.to_str().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("WEBHOOK_TEMPLATE", "{\"key\":\"tmpl-canary\",\"t\":\"{{ nodename }}\"}")],
            "invalid WEBHOOK_TEMPLATE: expected only the placeholders {{phase}}, {{message}}, {{message_id}}, {{node}},",
        ),
        (&[("WEBHOOK_TEMPLATE_FILE", file)], "got the unknown placeholder {{nodename}}"),
        (&[("WEBHOOK_TEMPLATE", "{\"t\":\"{{node\"}")], "invalid WEBHOOK_TEMPLATE: expected only the placeholders"),
        (&[("WEBHOOK_TEMPLATE_FILE", "/nonexistent/t.json")], "invalid WEBHOOK_TEMPLATE_FILE: expected a readable template file"),
        (
            &[("WEBHOOK_TEMPLATE", "x"), ("WEBHOOK_TEMPLATE_FILE", file)],
            "invalid WEBHOOK_TEMPLATE_FILE: expected WEBHOOK_TEMPLATE or WEBHOOK_TEMPLATE_FILE, not both",
        ),
        (
            &[("WEBHOOK_URL", "https://ok.example/a,hooks.example/url-canary")],
            "invalid WEBHOOK_URL: expected comma-separated URLs, each starting with http:// or https:// and naming a host, got a value whose URL number 2 (24 characters) is not such a URL",
        ),
        (
            &[("WEBHOOK_HEADERS", "Authorization: Bearer hdr-canary\nno colon here")],
            "invalid WEBHOOK_HEADERS: expected `Name: value` lines (a header name, a colon, a value), got line 2 has no colon",
        ),
        (&[("WEBHOOK_HEADERS", "Host: evil")], "got line 1 sets Host, which the handler sets itself"),
        (
            &[("WEBHOOK_EVENTS", "notice,drain")],
            r#"invalid WEBHOOK_EVENTS: expected a comma-separated list of notice, drained, back, got \"notice,drain\""#,
        ),
        (
            &[("HTTPS_PROXY", "https://u:proxy-canary@p:3128")],
            "invalid HTTPS_PROXY: expected an http:// proxy URL (a CONNECT proxy), got a value of 29 characters that is not one",
        ),
        (&[("WEBHOOK_PROXY", "socks5://p:1")], "invalid WEBHOOK_PROXY: expected an http:// proxy URL"),
        (&[("LOG_FORMAT", "xml")], r#"invalid LOG_FORMAT: expected one of logfmt, json, got \"xml\""#),
        (&[("LOG_LEVEL", "loud")], r#"invalid LOG_LEVEL: expected one of debug, info, warn, error, got \"loud\""#),
        (&[("EVENTS", "maybe")], "invalid EVENTS: expected true or false"),
        (&[("NODE_CONDITION", "2")], "invalid NODE_CONDITION: expected true or false"),
    ];
    for (env, want) in cases {
        let (code, err) = run(env);
        assert_eq!(code, 2, "{want}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(lines[0].contains(want), "{want:?} not in {err}");
        assert!(!err.contains("canary"), "{err}");
    }
    // The whole list of placeholders is named.
    let (_, err) = run(&[("WEBHOOK_TEMPLATE", "{{x}}")]);
    assert!(err.contains("{{evicted}}, {{forced}}, {{failed}}, {{still_present}}, {{pods}}, {{seconds}}, got the unknown placeholder {{x}}"), "{err}");
    // LOG_FORMAT=json: even the configuration error is a JSON line.
    let (code, err) = run(&[("LOG_FORMAT", "json"), ("LOG_LEVEL", "loud")]);
    assert_eq!(code, 2);
    let v: Value = serde_json::from_str(err.trim()).expect("a JSON line");
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().starts_with("invalid LOG_LEVEL"));
}
