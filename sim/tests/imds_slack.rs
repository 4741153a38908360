//! Black-box tests of the fake IMDS and the Slack sink.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use stnh_sim::testclient::{plain_request, Response};
use stnh_sim::util::{parse_rfc3339, rfc3339};
use stnh_sim::{ImdsMode, Scenario, Sim, SlackMode};

const ACTION: &str = "/latest/meta-data/spot/instance-action";

fn imds(sim: &Sim, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    plain_request(&sim.imds_url(), method, path, headers, b"").unwrap()
}

fn token(sim: &Sim, ttl: &str) -> String {
    let r = imds(
        sim,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-aws-ec2-metadata-token-ttl-seconds"), Some(ttl));
    r.text()
}

#[test]
fn token_endpoint_validation() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    for bad in ["0", "21601", "-5", "abc", ""] {
        let r = imds(
            &sim,
            "PUT",
            "/latest/api/token",
            &[("X-aws-ec2-metadata-token-ttl-seconds", bad)],
        );
        assert_eq!(r.status, 400, "ttl {bad:?}");
    }
    assert_eq!(imds(&sim, "PUT", "/latest/api/token", &[]).status, 400);
    let r = imds(
        &sim,
        "PUT",
        "/latest/api/token",
        &[
            ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
            ("X-Forwarded-For", "10.0.0.1"),
        ],
    );
    assert_eq!(r.status, 403);
    let t1 = token(&sim, "21600");
    let t2 = token(&sim, "1");
    assert_ne!(t1, t2);
    assert_eq!(imds(&sim, "GET", "/latest/api/token", &[]).status, 405);
}

#[test]
fn optional_and_required_modes() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    let r = imds(&sim, "GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "i-0abc123def4567890"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = imds(
        &sim,
        "GET",
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", "bogus")],
    );
    assert_eq!(r.status, 401);

    sim.set_imds_mode(ImdsMode::Required);
    let r = imds(&sim, "GET", "/latest/meta-data/instance-id", &[]);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("<title>401 - Unauthorized</title>"));
    let issued = Instant::now();
    let t = token(&sim, "1");
    let ok = imds(
        &sim,
        "GET",
        "/latest/meta-data/placement/availability-zone",
        &[("X-aws-ec2-metadata-token", &t)],
    );
    // Within its 1 s TTL the token works (judged only when this machine was quick enough to
    // use it within the second).
    let quick = issued.elapsed() < Duration::from_millis(900);
    if quick {
        assert_eq!((ok.status, ok.text().as_str()), (200, "us-east-1a"));
    }
    sleep(Duration::from_millis(1100));
    let expired = imds(
        &sim,
        "GET",
        "/latest/meta-data/placement/region",
        &[("X-aws-ec2-metadata-token", &t)],
    );
    assert_eq!(expired.status, 401, "a token dies after its TTL");

    let log = sim.imds_requests();
    let last = log.last().unwrap();
    assert!(last.token_sent && !last.token_valid);
    assert_eq!(last.status, 401);
    let ok_entry = &log[log.len() - 2];
    assert!(ok_entry.token_sent && (ok_entry.token_valid || !quick));
}

#[test]
fn notice_script() {
    let sim = Sim::start(Scenario::new("n1").notice_after(
        Duration::from_millis(400),
        "terminate",
        Duration::from_secs(120),
    ))
    .unwrap();
    let (t0, started) = sim.started();
    let appears = t0 + Duration::from_millis(400);
    // Before the notice time: 404. (A request that only got there after it, on a loaded
    // machine, proves nothing either way and is not judged.)
    for path in [
        ACTION,
        "/latest/meta-data/spot/termination-time",
        "/latest/meta-data/events/recommendations/rebalance",
    ] {
        let asked = Instant::now();
        let status = imds(&sim, "GET", path, &[]).status;
        if asked < appears && Instant::now() < appears {
            assert_eq!(status, 404, "{path} before the notice");
        }
    }
    while Instant::now() < appears + Duration::from_millis(50) {
        sleep(Duration::from_millis(20));
    }
    let r = imds(&sim, "GET", ACTION, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let v = r.json();
    assert_eq!(v["action"], "terminate");
    let time = v["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 20, "{time}");
    let t = parse_rfc3339(time).unwrap();
    let expect = started + Duration::from_millis(400) + Duration::from_secs(120);
    let diff = t.duration_since(expect).unwrap_or_else(|e| e.duration());
    assert!(diff <= Duration::from_secs(1));
    let tt = imds(&sim, "GET", "/latest/meta-data/spot/termination-time", &[]);
    assert_eq!(tt.text(), time);

    // Runtime changes: stop has no termination-time; clear; raw bodies; forced statuses.
    let deadline = SystemTime::now() + Duration::from_secs(90);
    sim.set_notice("stop", deadline);
    assert_eq!(
        imds(&sim, "GET", ACTION, &[]).json()["time"],
        rfc3339(deadline)
    );
    assert_eq!(
        imds(&sim, "GET", "/latest/meta-data/spot/termination-time", &[]).status,
        404
    );
    sim.clear_notice();
    assert_eq!(imds(&sim, "GET", ACTION, &[]).status, 404);
    sim.set_notice_body(Some(b"{\"action\": \"termin".to_vec()));
    assert_eq!(
        imds(&sim, "GET", ACTION, &[]).text(),
        "{\"action\": \"termin"
    );
    sim.set_notice_body(None);
    sim.imds_fail_path(ACTION, Some(500));
    assert_eq!(imds(&sim, "GET", ACTION, &[]).status, 500);
    sim.imds_fail_path(ACTION, None);
    assert_eq!(imds(&sim, "GET", ACTION, &[]).status, 404);
    assert_eq!(imds(&sim, "GET", "/latest/meta-data/nope", &[]).status, 404);
}

#[test]
fn token_endpoint_says_no_or_hangs() {
    let sim = Sim::start(Scenario::new("n1").imds_mode(ImdsMode::TokenStatus(403))).unwrap();
    let r = imds(
        &sim,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        imds(&sim, "GET", "/latest/meta-data/instance-type", &[]).text(),
        "m5.large"
    );

    sim.set_imds_mode(ImdsMode::TokenHang);
    let mut s = TcpStream::connect(sim.imds_url().trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n").unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    assert!(s.read(&mut buf).is_err(), "no answer");
    assert!(t.elapsed() >= Duration::from_millis(450));
    assert_eq!(sim.imds_requests().last().unwrap().status, 0);
    // v1 still works while the token endpoint hangs.
    assert_eq!(
        imds(&sim, "GET", "/latest/meta-data/instance-id", &[]).status,
        200
    );
    sim.set_imds_mode(ImdsMode::Disabled);
    assert_eq!(
        imds(&sim, "GET", "/latest/meta-data/instance-id", &[]).status,
        403
    );
}

#[test]
fn slack_sink_modes() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    let url = sim.slack_url();
    assert!(url.ends_with("/services/T000/B000/XXXXSECRETXXXX"));
    let path = "/services/T000/B000/XXXXSECRETXXXX";
    let post = |body: &str| {
        plain_request(
            &url,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let r = post(r#"{"text":"draining n1"}"#);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(post("not json").text(), "invalid_payload");
    assert_eq!(post("{}").text(), "no_text");
    sim.set_slack_mode(SlackMode::RateLimited(2));
    let r = post(r#"{"text":"a"}"#);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    assert_eq!(post(r#"{"text":"a"}"#).status, 429);
    assert_eq!(post(r#"{"text":"a"}"#).status, 200);
    sim.set_slack_mode(SlackMode::Status(500, "rollup_error".into()));
    let r = post(r#"{"text":"b"}"#);
    assert_eq!((r.status, r.text().as_str()), (500, "rollup_error"));
    sim.set_slack_mode(SlackMode::Hang);
    let mut s =
        TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{{\"text\":\"c\"}}")
            .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 16];
    assert!(s.read(&mut buf).is_err());
    let msgs = sim.slack_messages();
    assert_eq!(msgs.len(), 8);
    assert_eq!(msgs[0].text().as_deref(), Some("draining n1"));
    assert_eq!(msgs[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(msgs.last().unwrap().status, 0);
    // Wrong path → 404 no_service.
    let r = plain_request(&url, "POST", "/services/x", &[], b"{\"text\":\"d\"}").unwrap();
    assert_eq!((r.status, r.text().as_str()), (404, "no_service"));
}

#[test]
fn handler_env_and_kubeconfig() {
    let sim = Sim::start(Scenario::new("n1").cluster("prod")).unwrap();
    let env = sim.handler_env();
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("IMDS_URL"), sim.imds_url());
    assert_eq!(get("KUBERNETES_SERVICE_HOST"), "127.0.0.1");
    assert_eq!(get("KUBERNETES_SERVICE_PORT"), sim.api_port().to_string());
    assert_eq!(
        get("SERVICE_ACCOUNT_DIR"),
        sim.sa_dir().display().to_string()
    );
    assert_eq!(get("SLACK_URL"), sim.slack_url());
    assert_eq!(get("NODE_NAME"), "n1");
    assert_eq!(get("NAMESPACE"), "kube-system");
    assert_eq!(get("CLUSTER"), "prod");
    let k = sim.sa_dir().join("kubeconfig");
    sim.write_kubeconfig(&k).unwrap();
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(text.contains(&sim.api_url()));
    let dir = sim.sa_dir();
    drop(sim);
    assert!(!dir.exists(), "the temp SA dir is removed on drop");
}

#[test]
fn a_node_imds_of_its_own_serves_its_identity_and_its_notice() {
    use stnh_sim::imds::NodeImds;
    let imds = NodeImds::start("i-0000000000000042", "10.1.0.42").unwrap();
    let get = |p: &str| plain_request(&imds.url(), "GET", p, &[], b"").unwrap();
    assert_eq!(
        get("/latest/meta-data/instance-id").text(),
        "i-0000000000000042"
    );
    assert_eq!(get("/latest/meta-data/spot/instance-action").status, 404);
    let deadline = std::time::SystemTime::now() + Duration::from_secs(120);
    imds.set_notice(
        Instant::now() + Duration::from_millis(200),
        "terminate",
        deadline,
    );
    assert_eq!(
        get("/latest/meta-data/spot/instance-action").status,
        404,
        "not yet"
    );
    std::thread::sleep(Duration::from_millis(250));
    let r = get("/latest/meta-data/spot/instance-action");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["action"], "terminate");
    assert_eq!(imds.count("/latest/meta-data/spot/instance-action"), 3);
    assert_eq!(imds.requests().len(), 4);
}
