//! Black-box tests of the fake AWS IMDS's signals beyond the spot notice: rebalance, scheduled
//! maintenance (format, history, empty list), ASG lifecycle, identity, the `Date` header and
//! its skew, the script, and per-path request counts.

use std::time::{Duration, Instant, SystemTime};

use stnh_sim::imds::{event_date, parse_event_date};
use stnh_sim::metadata::parse_http_date;
use stnh_sim::testclient::{plain_request, Response};
use stnh_sim::util::{parse_rfc3339, rfc3339};
use stnh_sim::{EmptyEvents, MaintenanceEvent, Scenario, Script, Sim, Step};

const SCHEDULED: &str = "/latest/meta-data/events/maintenance/scheduled";
const HISTORY: &str = "/latest/meta-data/events/maintenance/history";
const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
const LIFECYCLE: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";
const ACTION: &str = "/latest/meta-data/spot/instance-action";

fn get(sim: &Sim, path: &str) -> Response {
    plain_request(&sim.imds_url(), "GET", path, &[], b"").unwrap()
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn near(a: SystemTime, b: SystemTime, tol: Duration) -> bool {
    let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
    d <= tol
}

#[test]
fn scheduled_events_exact_format_with_unpadded_day() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    // No events: `[]` by default, 404 when configured so.
    let r = get(&sim, SCHEDULED);
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    sim.set_scheduled_events_when_empty(EmptyEvents::NotFound);
    let r = get(&sim, SCHEDULED);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<title>404 - Not Found</title>"));
    assert_eq!(get(&sim, HISTORY).status, 404);

    let id = sim.add_scheduled_event(
        MaintenanceEvent::new("system-reboot", 900)
            .id("instance-event-0d59937288b749b32")
            .description("scheduled reboot"),
    );
    assert_eq!(id, "instance-event-0d59937288b749b32");
    let ev = &sim.scheduled_events()[0];
    let body = get(&sim, SCHEDULED).text();
    let expect = format!(
        "[\n  {{\n    \"NotBefore\" : \"{}\",\n    \"Code\" : \"system-reboot\",\n    \"Description\" : \"scheduled reboot\",\n    \"EventId\" : \"instance-event-0d59937288b749b32\",\n    \"NotAfter\" : \"{}\",\n    \"State\" : \"active\"\n  }}\n]",
        event_date(ev.not_before),
        event_date(ev.not_after.unwrap())
    );
    assert_eq!(body, expect);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let nb = parse_event_date(v[0]["NotBefore"].as_str().unwrap()).unwrap();
    assert!(near(
        nb,
        SystemTime::now() + Duration::from_secs(900),
        Duration::from_secs(5)
    ));

    // A day below 10 is written without a leading zero, as real IMDS and AEMM do.
    let t = parse_rfc3339("2021-01-01T02:00:00Z").unwrap();
    assert_eq!(event_date(t), "1 Jan 2021 02:00:00 GMT");
    let secs_to = |t: SystemTime| {
        t.duration_since(SystemTime::now())
            .map(|d| d.as_secs() as i64)
            .unwrap_or_else(|e| -(e.duration().as_secs() as i64))
    };
    let mut target = SystemTime::now() + Duration::from_secs(40 * 86_400);
    while !rfc3339(target)[8..10].starts_with('0') {
        target += Duration::from_secs(86_400);
    }
    sim.add_scheduled_event(
        MaintenanceEvent::new("instance-stop", secs_to(target))
            .id("instance-event-00000000000000001")
            .not_after(None)
            .not_before_deadline(Some(secs_to(target) + 86_400)),
    );
    let v: serde_json::Value = serde_json::from_str(&get(&sim, SCHEDULED).text()).unwrap();
    let e = &v[1];
    let nb = e["NotBefore"].as_str().unwrap();
    assert!(
        !nb.starts_with('0') && nb.as_bytes()[1] == b' ',
        "single-digit day, unpadded: {nb}"
    );
    assert!(
        e.get("NotAfter").is_none(),
        "instance-stop without NotAfter"
    );
    assert!(parse_event_date(e["NotBeforeDeadline"].as_str().unwrap()).is_some());
    assert_eq!(
        e["Description"],
        "The instance is scheduled for instance-stop"
    );
}

#[test]
fn cancelled_and_completed_events_move_to_history() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    let a = sim.add_scheduled_event(MaintenanceEvent::new("system-reboot", 600));
    let b = sim.add_scheduled_event(MaintenanceEvent::new("instance-retirement", 1200));
    assert!(a.starts_with("instance-event-") && a.len() == "instance-event-".len() + 17);
    assert_eq!(get(&sim, HISTORY).text(), "[]");
    assert!(sim.cancel_scheduled_event(&a));
    assert!(!sim.cancel_scheduled_event(&a), "already gone");
    assert!(sim.complete_scheduled_event(&b));
    assert_eq!(get(&sim, SCHEDULED).text(), "[]");
    let h: serde_json::Value = serde_json::from_str(&get(&sim, HISTORY).text()).unwrap();
    assert_eq!(h[0]["EventId"], a.as_str());
    assert_eq!(h[0]["State"], "canceled");
    assert_eq!(
        h[0]["Description"],
        "[Canceled] The instance is scheduled for system-reboot"
    );
    assert_eq!(h[1]["State"], "completed");
    assert_eq!(
        h[1]["Description"],
        "[Completed] The instance is scheduled for instance-retirement"
    );
    assert_eq!(
        get(&sim, "/latest/meta-data/events/maintenance/").text(),
        "history\nscheduled"
    );
}

#[test]
fn asg_lifecycle_and_rebalance() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    assert_eq!(get(&sim, LIFECYCLE).status, 404, "never transitioned");
    assert_eq!(get(&sim, "/latest/meta-data/autoscaling/").status, 404);
    sim.set_lifecycle_state(Some("InService"));
    let r = get(&sim, LIFECYCLE);
    assert_eq!((r.status, r.text().as_str()), (200, "InService"));
    assert!(get(&sim, "/latest/meta-data/")
        .text()
        .contains("autoscaling/"));
    sim.set_lifecycle_state(Some("Terminated"));
    assert_eq!(get(&sim, LIFECYCLE).text(), "Terminated");

    assert_eq!(get(&sim, REBALANCE).status, 404);
    let t = parse_rfc3339("2020-10-27T08:22:00Z").unwrap();
    sim.set_rebalance(Some(t));
    assert_eq!(
        get(&sim, REBALANCE).text(),
        "{\"noticeTime\": \"2020-10-27T08:22:00Z\"}"
    );
    assert_eq!(
        get(&sim, "/latest/meta-data/events/recommendations").text(),
        "rebalance"
    );
    sim.set_rebalance(None);
    assert_eq!(get(&sim, REBALANCE).status, 404);
}

#[test]
fn identity_paths() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    for (path, want) in [
        ("/latest/meta-data/placement/region", "us-east-1"),
        (
            "/latest/meta-data/placement/availability-zone",
            "us-east-1a",
        ),
        ("/latest/meta-data/instance-life-cycle", "spot"),
        ("/latest/meta-data/instance-id", "i-0abc123def4567890"),
        ("/latest/meta-data/instance-type", "m5.large"),
        ("/latest/meta-data/instance-action", "none"),
    ] {
        let r = get(&sim, path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
    }
    let r = get(&sim, "/latest/dynamic/instance-identity/document");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let text = r.text();
    assert!(
        text.contains("\"instanceId\" : \"i-0abc123def4567890\""),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["region"], "us-east-1");
    assert_eq!(doc["availabilityZone"], "us-east-1a");
    assert!(doc["kernelId"].is_null());
    assert!(parse_rfc3339(doc["pendingTime"].as_str().unwrap()).is_some());
}

#[test]
fn date_header_on_every_response_and_skew() {
    let sim = Sim::start(Scenario::new("n1").clock_skew(-300_000)).unwrap();
    for path in ["/latest/meta-data/instance-id", ACTION, "/nope"] {
        let r = get(&sim, path);
        let date = r.header("date").expect("Date header");
        let t = parse_http_date(date).unwrap_or_else(|| panic!("IMF-fixdate: {date}"));
        assert!(
            near(
                t,
                SystemTime::now() - Duration::from_secs(300),
                Duration::from_secs(5)
            ),
            "{path}: {date} is 5 min behind the machine"
        );
        assert_eq!(
            r.headers.iter().filter(|(k, _)| k == "Date").count(),
            1,
            "one Date header"
        );
    }
    let r = plain_request(
        &sim.imds_url(),
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        b"",
    )
    .unwrap();
    assert!(r.header("date").is_some());
    // Times generated from relative offsets are on the metadata clock.
    sim.run_script(Script::new().at(
        Duration::ZERO,
        Step::spot("terminate", Duration::from_secs(120)),
    ));
    let time = parse_rfc3339(get(&sim, ACTION).json()["time"].as_str().unwrap()).unwrap();
    assert!(near(
        time,
        SystemTime::now() - Duration::from_secs(180),
        Duration::from_secs(5)
    ));
    sim.set_clock_skew(60_000);
    assert_eq!(sim.clock_skew_ms(), 60_000);
    let t = parse_http_date(get(&sim, "/latest").header("date").unwrap()).unwrap();
    assert!(near(
        t,
        SystemTime::now() + Duration::from_secs(60),
        Duration::from_secs(5)
    ));
    assert!(near(
        sim.metadata_time(),
        SystemTime::now() + Duration::from_secs(60),
        Duration::from_secs(1)
    ));
}

#[test]
fn script_drives_every_aws_signal() {
    let cancelled = MaintenanceEvent::new("system-reboot", 3600);
    let cancelled_id = cancelled.event_id().to_string();
    let ms = Duration::from_millis;
    let script = Script::new()
        .at(ms(200), Step::rebalance())
        .at(ms(400), Step::spot("terminate", Duration::from_secs(120)))
        .at(ms(400), Step::scheduled(cancelled))
        .at(ms(600), Step::cancel_scheduled(&cancelled_id))
        .at(ms(600), Step::lifecycle(Some("Terminated")));
    let sim = Sim::start(Scenario::new("n1").script(script)).unwrap();
    let (t0, wall0) = sim.started();
    assert_eq!(get(&sim, ACTION).status, 404);
    eventually("the scripted steps", || {
        get(&sim, LIFECYCLE).text() == "Terminated"
    });
    assert!(t0.elapsed() >= ms(600));
    let n: serde_json::Value = get(&sim, REBALANCE).json();
    let notice_time = parse_rfc3339(n["noticeTime"].as_str().unwrap()).unwrap();
    assert!(near(notice_time, wall0 + ms(200), Duration::from_secs(1)));
    let a = get(&sim, ACTION).json();
    assert_eq!(a["action"], "terminate");
    let time = parse_rfc3339(a["time"].as_str().unwrap()).unwrap();
    assert!(
        near(
            time,
            wall0 + ms(400) + Duration::from_secs(120),
            Duration::from_secs(1)
        ),
        "deadline counts from the step's instant, not from when it was read"
    );
    assert_eq!(get(&sim, SCHEDULED).text(), "[]");
    assert_eq!(sim.scheduled_history()[0].id, cancelled_id);
}

#[test]
fn scenario_helpers_for_aws_signals() {
    let sim = Sim::start(
        Scenario::new("n1")
            .rebalance_after(Duration::ZERO)
            .asg_terminated_after(Duration::from_secs(3600))
            .scheduled_event_after(Duration::ZERO, MaintenanceEvent::new("instance-reboot", 60))
            .scheduled_events_when_empty(EmptyEvents::NotFound),
    )
    .unwrap();
    assert_eq!(get(&sim, REBALANCE).status, 200);
    assert_eq!(get(&sim, LIFECYCLE).text(), "InService");
    let v: serde_json::Value = serde_json::from_str(&get(&sim, SCHEDULED).text()).unwrap();
    assert_eq!(v[0]["Code"], "instance-reboot");
    assert_eq!(
        get(&sim, HISTORY).status,
        404,
        "empty history follows the knob"
    );
}

#[test]
fn per_path_request_counts() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    assert_eq!(sim.imds_count("/latest/"), 0);
    get(&sim, SCHEDULED);
    get(&sim, SCHEDULED);
    get(&sim, REBALANCE);
    get(&sim, &format!("{ACTION}?x=1"));
    assert_eq!(sim.imds_count("/latest/meta-data/events/"), 3);
    assert_eq!(sim.imds_count(SCHEDULED), 2);
    assert_eq!(sim.imds_count(ACTION), 1);
    assert_eq!(sim.imds_count("/latest/meta-data/autoscaling"), 0);
    assert_eq!(sim.imds_count(""), 4);
}

#[test]
fn notice_after_uses_the_metadata_clock_and_clear_still_cancels_it() {
    let sim = Sim::start(Scenario::new("n1").clock_skew(120_000).notice_after(
        Duration::ZERO,
        "stop",
        Duration::from_secs(60),
    ))
    .unwrap();
    let a = get(&sim, ACTION).json();
    let time = parse_rfc3339(a["time"].as_str().unwrap()).unwrap();
    assert!(near(
        time,
        sim.started().1 + Duration::from_secs(180),
        Duration::from_secs(1)
    ));
    let sim = Sim::start(Scenario::new("n1").notice_after(
        Duration::from_millis(300),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    sim.clear_notice();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(&sim, ACTION).status, 404, "cleared before it appeared");
}

#[test]
fn instance_id_tags_and_profile_credentials_are_configurable() {
    const TAG: &str = "/latest/meta-data/tags/instance/aws:autoscaling:groupName";
    const CREDS: &str = "/latest/meta-data/iam/security-credentials/";
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    // Instance tags not exposed in metadata: 404, as on a real instance without
    // InstanceMetadataTags=enabled.
    assert_eq!(get(&sim, TAG).status, 404);
    assert_eq!(get(&sim, CREDS).status, 404);
    drop(sim);

    let sim = Sim::start(
        Scenario::new("n1")
            .instance_id("i-0123456789abcdef0")
            .imds_item(TAG, "workers-spot")
            .imds_item("/latest/meta-data/tags/instance/Name", "worker")
            .imds_item(&format!("{CREDS}node-role"), "{\"Code\":\"Success\"}"),
    )
    .unwrap();
    assert_eq!(
        get(&sim, "/latest/meta-data/instance-id").text(),
        "i-0123456789abcdef0"
    );
    assert_eq!(
        sim.node("n1").unwrap()["spec"]["providerID"],
        "aws:///us-east-1a/i-0123456789abcdef0"
    );
    assert_eq!(get(&sim, TAG).text(), "workers-spot");
    assert_eq!(
        get(&sim, "/latest/meta-data/tags/instance").text(),
        "Name\naws:autoscaling:groupName"
    );
    assert_eq!(get(&sim, "/latest/meta-data/tags/").text(), "instance/");
    assert_eq!(get(&sim, CREDS).text(), "node-role");
    assert_eq!(
        get(&sim, &format!("{CREDS}node-role")).text(),
        "{\"Code\":\"Success\"}"
    );
    sim.set_imds_item(TAG, None);
    assert_eq!(get(&sim, TAG).status, 404);
    sim.set_imds_item(TAG, Some("other"));
    assert_eq!(get(&sim, TAG).text(), "other");
}
