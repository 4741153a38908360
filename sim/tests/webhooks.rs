//! Webhook sinks (generic, Teams, Google Chat, Discord, PagerDuty) and the CONNECT proxy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stnh_sim::pki;
use stnh_sim::testclient::{Client, Response};
use stnh_sim::webhook::PAGERDUTY_ROUTING_KEY;
use stnh_sim::{
    ConnectProxy, Scenario, Sim, SimEvent, SinkTls, WebhookKind, WebhookMode, WebhookSink,
};

/// POSTs `body` with `content_type` to a sink URL (`path_suffix` appended, e.g. `&wait=true`).
fn post_to(url: &str, path_suffix: &str, content_type: &str, body: &str) -> Response {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap();
    Client::plain(host)
        .unwrap()
        .request(
            "POST",
            &format!("/{path}{path_suffix}"),
            &[("Content-Type", content_type)],
            body.as_bytes(),
        )
        .unwrap()
}

fn post_json(sink: &WebhookSink, body: &Value) -> Response {
    post_to(&sink.url(), "", "application/json", &body.to_string())
}

fn adaptive_card(text: &str) -> Value {
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": text, "wrap": true}]}}]})
}

#[test]
fn generic_sink_records_and_follows_its_mode() {
    let sink = WebhookSink::start(WebhookKind::Generic).unwrap();
    assert!(sink.url().starts_with("http://127.0.0.1:"));
    let r = post_to(&sink.url(), "", "application/json", r#"{"node":"n1"}"#);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let rec = &sink.requests()[0];
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.header("content-type"), Some("application/json"));
    assert_eq!(rec.json().unwrap()["node"], "n1");
    assert!(rec.passed() && rec.path.ends_with(stnh_sim::webhook::GENERIC_SECRET));
    // Status, rate limiting, hang.
    sink.set_mode(WebhookMode::Status(503, "down".into()));
    assert_eq!(post_to(&sink.url(), "", "text/plain", "x").status, 503);
    sink.set_mode(WebhookMode::RateLimited(2));
    for _ in 0..2 {
        let r = post_to(&sink.url(), "", "text/plain", "x");
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    }
    assert_eq!(post_to(&sink.url(), "", "text/plain", "x").status, 200);
    sink.set_mode(WebhookMode::Hang(Duration::from_millis(300)));
    let host = sink
        .url()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let t = Instant::now();
    let r = Client::plain(&host).unwrap().request(
        "POST",
        &format!("/hooks/stnh-sim/{}", stnh_sim::webhook::GENERIC_SECRET),
        &[],
        b"x",
    );
    assert!(r.is_err(), "a hung request gets no answer");
    assert!(t.elapsed() < Duration::from_secs(9), "the hang is bounded");
    assert_eq!(sink.requests().last().unwrap().status, 0);
    // A wrong path is a 404 and does not count as accepted.
    sink.set_mode(WebhookMode::Ok);
    let r = Client::plain(&host)
        .unwrap()
        .request("POST", "/hooks/other", &[], b"x")
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(sink.accepted().len(), 2);
}

#[test]
fn tls_sinks_trusted_by_the_test_ca_or_by_nobody() {
    let bad =
        WebhookSink::start_with(WebhookKind::Generic, SinkTls::Untrusted, WebhookMode::Ok).unwrap();
    assert!(bad.url().starts_with("https://127.0.0.1:"));
    let addr = bad.addr().to_string();
    let path = format!("/hooks/stnh-sim/{}", stnh_sim::webhook::GENERIC_SECRET);
    let r = Client::tls(&addr, "127.0.0.1", pki::CA_CRT)
        .unwrap()
        .request("POST", &path, &[], b"{}");
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(bad.requests().is_empty());
    assert!(bad.connections() >= 1, "the handshake attempt is counted");
    // The certificate is otherwise valid: a client trusting the unrelated CA gets through.
    let r = Client::tls(&addr, "127.0.0.1", pki::OTHER_CA_CRT)
        .unwrap()
        .request("POST", &path, &[], b"{}")
        .unwrap();
    assert_eq!(r.status, 200);

    let good =
        WebhookSink::start_with(WebhookKind::Discord, SinkTls::TestCa, WebhookMode::Ok).unwrap();
    let path = good
        .url()
        .split_once("127.0.0.1:")
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .1
        .to_string();
    let r = Client::tls(&good.addr().to_string(), "127.0.0.1", pki::CA_CRT)
        .unwrap()
        .request(
            "POST",
            &format!("/{path}"),
            &[("Content-Type", "application/json")],
            br#"{"content":"hi"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 204);
}

#[test]
fn teams_workflow_sink() {
    let sink = WebhookSink::start(WebhookKind::Teams).unwrap();
    assert!(sink.url().contains(
        "/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig="
    ));
    let r = post_json(&sink, &adaptive_card("Spot interruption: node n1"));
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    assert!(sink.requests()[0].passed());
    // The legacy connector MessageCard is accepted by the trigger (202) but is not what the
    // workflow can post: the verdict says why.
    let legacy = json!({"@type": "MessageCard", "@context": "https://schema.org/extensions",
        "summary": "x", "text": "x"});
    assert_eq!(post_json(&sink, &legacy).status, 202);
    let rec = sink.requests()[1].clone();
    let problems = rec.check.unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("type must be \"message\"")),
        "{problems:?}"
    );
    assert!(problems
        .iter()
        .any(|p| p.contains("attachments must be an array")));
    let mut wrong = adaptive_card("x");
    wrong["attachments"][0]["contentType"] =
        json!("application/vnd.microsoft.teams.card.o365connector");
    wrong["attachments"][0]["content"]["body"] = json!([{"text": "no type"}]);
    post_json(&sink, &wrong);
    let problems = sink.requests()[2].check.clone().unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    let mut big = adaptive_card(&"x".repeat(29 * 1024));
    big["type"] = json!("message");
    post_json(&sink, &big);
    assert!(!sink.requests()[3].passed());
    assert_eq!(sink.accepted().len(), 1);
    // Not JSON: refused at once.
    let r = post_to(&sink.url(), "", "text/plain", "hello");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "InvalidRequestContent");
    // Without the signature: 401.
    let unsigned = sink.url().replace(stnh_sim::webhook::TEAMS_SIG, "wrong");
    assert_eq!(post_to(&unsigned, "", "application/json", "{}").status, 401);
    sink.set_mode(WebhookMode::RateLimited(1));
    assert_eq!(post_json(&sink, &adaptive_card("x")).status, 429);
}

#[test]
fn google_chat_sink() {
    let sink = WebhookSink::start(WebhookKind::GoogleChat).unwrap();
    let r = post_to(
        &sink.url(),
        "",
        "application/json; charset=UTF-8",
        r#"{"text":"Spot interruption: *n1*"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert!(m["name"]
        .as_str()
        .unwrap()
        .starts_with("spaces/AAAAstnhsim/messages/"));
    assert_eq!(m["text"], "Spot interruption: *n1*");
    assert_eq!(m["space"]["name"], "spaces/AAAAstnhsim");
    assert_eq!(m["sender"]["type"], "BOT");
    assert!(m["thread"]["name"]
        .as_str()
        .unwrap()
        .starts_with("spaces/AAAAstnhsim/threads/"));
    let card = json!({"cardsV2": [{"cardId": "spot", "card": {"header": {"title": "Spot interruption"},
        "sections": [{"widgets": [{"textParagraph": {"text": "node n1"}}]}]}}]});
    let r = post_json(&sink, &card);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["cardsV2"][0]["cardId"], "spot");
    // A Slack-shaped body: unknown fields, answered with Google's error and field violations.
    let r = post_json(
        &sink,
        &json!({"text": "x", "username": "bot", "attachments": []}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {"code": 400,
            "message": "Invalid JSON payload received. Unknown name \"attachments\" at 'message': Cannot find field.\nInvalid JSON payload received. Unknown name \"username\" at 'message': Cannot find field.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
                {"field": "message", "description": "Invalid JSON payload received. Unknown name \"attachments\" at 'message': Cannot find field."},
                {"field": "message", "description": "Invalid JSON payload received. Unknown name \"username\" at 'message': Cannot find field."}]}]}})
    );
    let r = post_json(&sink, &json!({}));
    assert_eq!(
        (r.status, r.json()["error"]["message"].as_str()),
        (400, Some("Message cannot be empty."))
    );
    assert_eq!(
        post_json(&sink, &json!({"cardsV2": [{"cardId": "x"}]})).status,
        400
    );
    assert_eq!(
        post_json(&sink, &json!({"text": "x".repeat(32_001)})).status,
        400
    );
    let r = post_to(&sink.url(), "", "application/json", "not json");
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let wrong = sink.url().replace(stnh_sim::webhook::CHAT_TOKEN, "stolen");
    assert_eq!(
        post_to(&wrong, "", "application/json", r#"{"text":"x"}"#).status,
        401
    );
    assert_eq!(sink.accepted().len(), 2);
    sink.set_mode(WebhookMode::RateLimited(1));
    let r = post_json(&sink, &json!({"text": "x"}));
    assert_eq!(
        (r.status, r.json()["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
}

#[test]
fn discord_sink() {
    let sink = WebhookSink::start(WebhookKind::Discord).unwrap();
    let r = post_json(&sink, &json!({"content": "Spot interruption: n1"}));
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let embed = json!({"title": "Spot interruption", "description": "node n1 drains", "color": 15105570,
        "fields": [{"name": "Deadline", "value": "2024-05-01T10:02:00Z", "inline": true}],
        "footer": {"text": "spot-termination-notice-handler"}});
    let r = post_to(
        &sink.url(),
        "?wait=true",
        "application/json",
        &json!({"embeds": [embed]}).to_string(),
    );
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["webhook_id"], stnh_sim::webhook::DISCORD_ID);
    assert_eq!(m["embeds"][0]["type"], "rich");
    assert!(m["id"].is_string() && m["timestamp"].is_string());
    // Limits, with Discord's error bodies.
    let r = post_json(&sink, &json!({"content": "x".repeat(2001)}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"code": 50035, "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
            "message": "Must be 2000 or fewer in length."}]}}, "message": "Invalid Form Body"})
    );
    assert_eq!(
        post_json(&sink, &json!({"content": "é".repeat(2000)})).status,
        204,
        "characters, not bytes"
    );
    let r = post_json(&sink, &json!({"embeds": vec![json!({"title": "t"}); 11]}));
    assert_eq!(
        r.json()["errors"]["embeds"]["_errors"][0]["message"],
        "Must be 10 or fewer in length."
    );
    let r = post_json(
        &sink,
        &json!({"embeds": [{"title": "t"}, {"title": "x".repeat(257), "description": "d".repeat(4097)}]}),
    );
    let e = &r.json()["errors"]["embeds"]["1"];
    assert_eq!(e["title"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
    assert_eq!(
        e["description"]["_errors"][0]["message"],
        "Must be 4096 or fewer in length."
    );
    assert!(r.json()["errors"]["embeds"].get("0").is_none());
    let r = post_json(
        &sink,
        &json!({"embeds": [{"fields": [{"name": "only a name"}]}]}),
    );
    assert_eq!(
        r.json()["errors"]["embeds"]["0"]["fields"]["0"]["value"]["_errors"][0]["code"],
        "BASE_TYPE_REQUIRED"
    );
    let half = json!({"description": "d".repeat(3001)});
    let r = post_json(&sink, &json!({"embeds": [half.clone(), half]}));
    assert_eq!(
        r.json()["errors"]["embeds"]["_errors"][0]["code"],
        "MAX_EMBED_SIZE_EXCEEDED"
    );
    let r = post_json(&sink, &json!({"username": "only a name"}));
    assert_eq!(
        r.json(),
        json!({"message": "Cannot send an empty message", "code": 50006})
    );
    assert_eq!(
        post_to(&sink.url(), "", "text/plain", "hello").json()["code"],
        50006
    );
    // Rate limit, tokens and ids.
    sink.set_mode(WebhookMode::RateLimited(1));
    let r = post_json(&sink, &json!({"content": "x"}));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["retry_after"], 1.0);
    assert_eq!(r.json()["global"], false);
    assert_eq!(post_json(&sink, &json!({"content": "x"})).status, 204);
    let bad = sink.url().replace(stnh_sim::webhook::DISCORD_TOKEN, "nope");
    assert_eq!(
        post_to(&bad, "", "application/json", r#"{"content":"x"}"#).json()["code"],
        50027
    );
    let bad = sink.url().replace(stnh_sim::webhook::DISCORD_ID, "42");
    assert_eq!(
        post_to(&bad, "", "application/json", r#"{"content":"x"}"#).status,
        404
    );
    assert_eq!(sink.accepted().len(), 4);
}

#[test]
fn pagerduty_sink() {
    let sink = WebhookSink::start(WebhookKind::PagerDuty).unwrap();
    assert!(sink.url().ends_with("/v2/enqueue"));
    let trigger = json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "trigger",
        "dedup_key": "spot/n1/2024-05-01T10:02:00Z",
        "payload": {"summary": "Spot interruption on n1", "source": "n1", "severity": "warning",
            "timestamp": "2024-05-01T10:00:05.123+0000", "component": "node", "group": "sim-cluster",
            "class": "spot-interruption", "custom_details": {"deadline": "2024-05-01T10:02:00Z"}},
        "links": [{"href": "https://example.invalid/runbook", "text": "runbook"}]});
    let r = post_json(&sink, &trigger);
    assert_eq!(r.status, 202);
    assert_eq!(
        r.json(),
        json!({"status": "success", "message": "Event processed", "dedup_key": "spot/n1/2024-05-01T10:02:00Z"})
    );
    let mut no_key = trigger.clone();
    no_key.as_object_mut().unwrap().remove("dedup_key");
    let k = post_json(&sink, &no_key).json()["dedup_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(k.len(), 32, "a generated key is returned");
    let resolve =
        json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "resolve", "dedup_key": k});
    assert_eq!(post_json(&sink, &resolve).status, 202);
    assert_eq!(sink.accepted().len(), 3);

    let invalid = |body: &Value| -> Vec<String> {
        let r = post_json(&sink, body);
        assert_eq!(r.status, 400, "{body}");
        let j = r.json();
        assert_eq!(
            (j["status"].as_str(), j["message"].as_str()),
            (Some("invalid event"), Some("Event object is invalid"))
        );
        j["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    };
    let mut t = trigger.clone();
    t["routing_key"] = json!(&PAGERDUTY_ROUTING_KEY[..31]);
    t["payload"]["severity"] = json!("fatal");
    t["payload"]["summary"] = json!("s".repeat(1025));
    t["payload"].as_object_mut().unwrap().remove("source");
    assert_eq!(
        invalid(&t),
        [
            "Length of 'routing_key' is incorrect (should be 32 characters)",
            "'payload.summary' is too long (maximum is 1024 characters)",
            "'payload.source' is missing or blank",
            "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
        ]
    );
    assert_eq!(
        invalid(&json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "acknowledge"})),
        ["'dedup_key' is missing or blank (required to acknowledge)"]
    );
    assert_eq!(
        invalid(&json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "page"}))[0],
        "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
    );
    let mut t = trigger.clone();
    t["payload"]["timestamp"] = json!("yesterday");
    assert_eq!(
        invalid(&t),
        ["'payload.timestamp' is invalid (must be an ISO 8601 timestamp)"]
    );
    let mut t = trigger.clone();
    t.as_object_mut().unwrap().remove("payload");
    assert_eq!(invalid(&t), ["'payload' is missing or blank"]);
    assert_eq!(invalid(&json!({})).len(), 2);
    sink.set_mode(WebhookMode::RateLimited(1));
    let r = post_json(&sink, &trigger);
    assert_eq!(
        (r.status, r.text().as_str()),
        (429, "Request Limit Exceeded")
    );
    assert_eq!(sink.accepted().len(), 3);
}

#[test]
fn scenario_starts_sinks_and_reports_them() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let sim = Sim::start(
        Scenario::new("n1")
            .webhook_sink(WebhookKind::Teams)
            .webhook_sink(WebhookKind::PagerDuty)
            .webhook_sink_with(WebhookKind::Generic, SinkTls::Untrusted, WebhookMode::Ok)
            .connect_proxy(None)
            .observer(Arc::new(move |e| {
                if let SimEvent::Webhook(k, r) = e {
                    s2.lock()
                        .unwrap()
                        .push(format!("{} {}", k.name(), r.status));
                }
            })),
    )
    .unwrap();
    assert_eq!(sim.webhook_sinks().len(), 3);
    let teams = sim.webhook(WebhookKind::Teams).unwrap();
    assert_eq!(post_json(teams, &adaptive_card("x")).status, 202);
    assert!(sim
        .webhook(WebhookKind::Generic)
        .unwrap()
        .url()
        .starts_with("https://"));
    assert!(sim.webhook(WebhookKind::Discord).is_none());
    assert!(sim.proxy().unwrap().url().starts_with("http://127.0.0.1:"));
    assert_eq!(*seen.lock().unwrap(), ["teams 202"]);
}

// ---- CONNECT proxy ----------------------------------------------------------------------

fn connect(proxy: &ConnectProxy, target: &str, auth: Option<&str>) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // Read exactly the response head, byte by byte, so no tunnel bytes are consumed.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn connect_proxy_tunnels_to_local_targets_only() {
    let proxy = ConnectProxy::start(None).unwrap();
    let sink = WebhookSink::start(WebhookKind::Generic).unwrap();
    let target = format!("127.0.0.1:{}", sink.addr().port());
    let (tunnel, head) = connect(&proxy, &target, None);
    assert!(
        head.starts_with("HTTP/1.1 200 Connection established\r\n"),
        "{head}"
    );
    let mut c = Client::over(tunnel, &target).unwrap();
    let path = format!("/hooks/stnh-sim/{}", stnh_sim::webhook::GENERIC_SECRET);
    let r = c
        .request(
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            br#"{"via":"proxy"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    // Keep-alive through the tunnel.
    assert_eq!(c.request("POST", &path, &[], b"again").unwrap().status, 200);
    drop(c);
    assert_eq!(sink.requests().len(), 2);
    assert_eq!(sink.requests()[0].json().unwrap()["via"], "proxy");
    assert_eq!(proxy.connect_targets(), vec![target.clone()]);
    let start = Instant::now();
    while !proxy.requests()[0].closed && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rec = &proxy.requests()[0];
    assert!(rec.closed && rec.status == 200 && rec.authorized && !rec.sent_auth);
    assert!(rec.bytes_up > 100 && rec.bytes_down > 100, "{rec:?}");

    // TLS inside the tunnel is passed through untouched (the client verifies the sink).
    let tls_sink =
        WebhookSink::start_with(WebhookKind::PagerDuty, SinkTls::TestCa, WebhookMode::Ok).unwrap();
    let t2 = format!("localhost:{}", tls_sink.addr().port());
    let (tunnel, head) = connect(&proxy, &t2, None);
    assert!(head.starts_with("HTTP/1.1 200"));
    let mut c = Client::tls_over(tunnel, &t2, "localhost", pki::CA_CRT).unwrap();
    let body = json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "trigger",
        "payload": {"summary": "s", "source": "n1", "severity": "info"}});
    let r = c
        .request(
            "POST",
            "/v2/enqueue",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 202);

    // Anything not on 127.0.0.1 is refused, and nothing is dialled.
    for bad in [
        "example.com:443",
        "10.0.0.1:443",
        "169.254.169.254:80",
        "hooks.slack.com:443",
    ] {
        let (_, head) = connect(&proxy, bad, None);
        assert!(head.starts_with("HTTP/1.1 403"), "{bad}: {head}");
    }
    // Not CONNECT: 405. A closed port: 502.
    let mut s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("POST http://{target}{path} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    assert!(buf.starts_with("HTTP/1.1 405"), "{buf}");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, head) = connect(&proxy, &format!("127.0.0.1:{closed}"), None);
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let statuses: Vec<u16> = proxy.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 403, 403, 403, 403, 405, 502]);
}

#[test]
fn connect_proxy_checks_credentials() {
    let proxy = ConnectProxy::start(Some(("stnh", "s3cret:pw"))).unwrap();
    assert_eq!(
        proxy.url_with_credentials(),
        format!("http://stnh:s3cret%3Apw@127.0.0.1:{}", proxy.addr().port())
    );
    let sink = WebhookSink::start(WebhookKind::Generic).unwrap();
    let target = format!("127.0.0.1:{}", sink.addr().port());
    let (_, head) = connect(&proxy, &target, None);
    assert!(head.starts_with("HTTP/1.1 407"), "{head}");
    assert!(head.contains("Proxy-Authenticate: Basic realm=\"stnh-sim\"\r\n"));
    let wrong = format!("Basic {}", stnh_sim::util::base64(b"stnh:nope", false));
    assert!(connect(&proxy, &target, Some(&wrong))
        .1
        .starts_with("HTTP/1.1 407"));
    let right = format!("Basic {}", stnh_sim::util::base64(b"stnh:s3cret:pw", false));
    let (tunnel, head) = connect(&proxy, &target, Some(&right));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut c = Client::over(tunnel, &target).unwrap();
    let path = format!("/hooks/stnh-sim/{}", stnh_sim::webhook::GENERIC_SECRET);
    assert_eq!(c.request("POST", &path, &[], b"x").unwrap().status, 200);
    let reqs = proxy.requests();
    assert_eq!(
        reqs.iter()
            .map(|r| (r.sent_auth, r.authorized, r.status))
            .collect::<Vec<_>>(),
        [(false, false, 407), (true, false, 407), (true, true, 200)]
    );
    // Stopping the proxy ends an open tunnel promptly.
    let (_tunnel, _) = connect(&proxy, &target, Some(&right));
    let t = Instant::now();
    drop(proxy);
    assert!(t.elapsed() < Duration::from_secs(3));
}
