//! Black-box tests of the fake GCE metadata server: the Metadata-Flavor rule, values, ETags,
//! directories, the hanging GET protocol (last_etag, timeout_sec, no last_etag, the hold
//! bound), faults, scripted changes and the change record.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use stnh_sim::testclient::{plain_request, Response};
use stnh_sim::{Cloud, Scenario, Script, Sim, Step};

const PREEMPTED: &str = "/computeMetadata/v1/instance/preempted";
const MAINT: &str = "/computeMetadata/v1/instance/maintenance-event";
const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");

fn gcp_sim() -> Sim {
    Sim::start(Scenario::new("gke-pool-1-abcd1234-x7kq").cloud(Cloud::Gcp)).unwrap()
}

fn get(sim: &Sim, path: &str) -> Response {
    plain_request(&sim.gcp_metadata_url(), "GET", path, &[FLAVOR], b"").unwrap()
}

/// Starts a GET on another thread; the receiver yields (response, how long it took).
fn get_async(sim: &Sim, path: &str) -> mpsc::Receiver<(Response, Duration)> {
    let (url, path) = (sim.gcp_metadata_url(), path.to_string());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let t = Instant::now();
        // A request left hanging ends with an error when the simulator stops: send nothing.
        if let Ok(r) = plain_request(&url, "GET", &path, &[FLAVOR], b"") {
            let _ = tx.send((r, t.elapsed()));
        }
    });
    rx
}

fn parked(sim: &Sim, n: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    while sim.gcp_waiters() != n {
        assert!(Instant::now() < end, "{n} hanging GET(s) never parked");
        thread::sleep(Duration::from_millis(10));
    }
}

fn etag(r: &Response) -> String {
    r.header("etag")
        .expect("ETag on every response")
        .to_string()
}

#[test]
fn flavor_header_required_and_values_as_text() {
    let sim = gcp_sim();
    let r = plain_request(&sim.gcp_metadata_url(), "GET", PREEMPTED, &[], b"").unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Missing Metadata-Flavor:Google header"));
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    let r = plain_request(
        &sim.gcp_metadata_url(),
        "GET",
        PREEMPTED,
        &[("Metadata-Flavor", "google-ish")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403);

    for (key, want) in [
        ("instance/preempted", "FALSE"),
        ("instance/maintenance-event", "NONE"),
        ("instance/scheduling/preemptible", "TRUE"),
        ("instance/scheduling/provisioning-model", "SPOT"),
        ("instance/scheduling/on-host-maintenance", "TERMINATE"),
        ("instance/id", "4520031799277581759"),
        ("instance/name", "gke-pool-1-abcd1234-x7kq"),
        (
            "instance/hostname",
            "gke-pool-1-abcd1234-x7kq.us-central1-a.c.my-proj.internal",
        ),
        ("instance/zone", "projects/123456789012/zones/us-central1-a"),
        (
            "instance/machine-type",
            "projects/123456789012/machineTypes/e2-standard-4",
        ),
        ("project/project-id", "my-proj"),
    ] {
        let r = get(&sim, &format!("/computeMetadata/v1/{key}"));
        assert_eq!((r.status, r.text().as_str()), (200, want), "{key}");
        assert_eq!(r.header("metadata-flavor"), Some("Google"));
        assert_eq!(r.header("content-type"), Some("application/text"));
        let e = etag(&r);
        assert!(
            e.len() == 16 && e.bytes().all(|b| b.is_ascii_hexdigit()),
            "{e}"
        );
        assert!(r.header("date").is_some());
    }
    assert_eq!(get(&sim, "/computeMetadata/v1/instance/nope").status, 404);
    assert_eq!(get(&sim, "/latest/meta-data/instance-id").status, 404);
    let r = plain_request(&sim.gcp_metadata_url(), "PUT", PREEMPTED, &[FLAVOR], b"").unwrap();
    assert_eq!(r.status, 405);
    // alt=json quotes a string value.
    assert_eq!(
        get(&sim, &format!("{PREEMPTED}?alt=json")).text(),
        "\"FALSE\""
    );
}

#[test]
fn directories_list_redirect_and_recurse() {
    let sim = gcp_sim();
    let r = get(&sim, "/computeMetadata/v1/instance/scheduling/");
    assert_eq!(
        r.text(),
        "automatic-restart\non-host-maintenance\npreemptible\nprovisioning-model\n"
    );
    let r = get(&sim, "/computeMetadata/v1/instance/scheduling");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("/computeMetadata/v1/instance/scheduling/")
    );
    let r = get(&sim, "/computeMetadata/v1/instance/?recursive=true");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["preempted"], "FALSE");
    assert_eq!(v["scheduling"]["provisioningModel"], "SPOT");
    assert!(get(&sim, "/computeMetadata/v1/instance/")
        .text()
        .contains("scheduling/\n"));
}

#[test]
fn etag_follows_the_value() {
    let sim = gcp_sim();
    let e1 = etag(&get(&sim, PREEMPTED));
    assert_eq!(etag(&get(&sim, PREEMPTED)), e1, "stable while unchanged");
    sim.gcp_set("instance/preempted", "TRUE");
    let r = get(&sim, PREEMPTED);
    assert_eq!(r.text(), "TRUE");
    assert_ne!(etag(&r), e1);
    sim.gcp_set("instance/preempted", "FALSE");
    assert_eq!(
        etag(&get(&sim, PREEMPTED)),
        e1,
        "content hash: back to the old ETag"
    );
    assert_ne!(etag(&get(&sim, MAINT)), e1);
}

#[test]
fn hanging_get_with_stale_last_etag_answers_at_once() {
    let sim = gcp_sim();
    let t = Instant::now();
    let r = get(
        &sim,
        &format!("{PREEMPTED}?wait_for_change=true&last_etag=0&timeout_sec=300"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "FALSE"));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "no wait: ETag differs"
    );
    let e = etag(&r);
    let r = get(
        &sim,
        &format!("{PREEMPTED}?wait_for_change=true&last_etag=NONE"),
    );
    assert_eq!(etag(&r), e);
}

#[test]
fn hanging_get_holds_until_the_value_changes() {
    let sim = gcp_sim();
    let e = etag(&get(&sim, PREEMPTED));
    let rx = get_async(
        &sim,
        &format!("{PREEMPTED}?wait_for_change=true&last_etag={e}&timeout_sec=60"),
    );
    parked(&sim, 1);
    // Still held: nothing changed.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(sim.gcp_waiters(), 1);
    let changed_at = Instant::now();
    sim.gcp_set("instance/preempted", "TRUE");
    let (r, _) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("answered after the change");
    assert_eq!((r.status, r.text().as_str()), (200, "TRUE"));
    assert_ne!(etag(&r), e);
    parked(&sim, 0);
    let log = sim.gcp_requests();
    let held = log.last().unwrap();
    assert_eq!(held.status, 200);
    assert!(held.answered >= changed_at);
    assert!(held.note.starts_with("held "), "{}", held.note);
    let ch = sim.gcp_changes();
    assert_eq!(ch.len(), 1);
    assert_eq!(
        (ch[0].key.as_str(), ch[0].old.as_str(), ch[0].value.as_str()),
        ("instance/preempted", "FALSE", "TRUE")
    );
    assert!(ch[0].at >= changed_at && ch[0].at <= held.answered);
}

#[test]
fn hanging_get_timeout_returns_the_unchanged_value_with_the_same_etag() {
    let sim = gcp_sim();
    let e = etag(&get(&sim, MAINT));
    let t = Instant::now();
    let r = get(
        &sim,
        &format!("{MAINT}?wait_for_change=true&last_etag={e}&timeout_sec=1"),
    );
    let took = t.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "NONE"));
    assert_eq!(etag(&r), e);
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn hanging_get_without_last_etag_waits_for_the_next_change() {
    let sim = gcp_sim();
    sim.gcp_set("instance/maintenance-event", "MIGRATE_ON_HOST_MAINTENANCE");
    // The value changed before this request: without last_etag it still waits.
    let rx = get_async(
        &sim,
        &format!("{MAINT}?wait_for_change=true&timeout_sec=30"),
    );
    parked(&sim, 1);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    sim.gcp_set(
        "instance/maintenance-event",
        "TERMINATE_ON_HOST_MAINTENANCE",
    );
    let (r, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(r.text(), "TERMINATE_ON_HOST_MAINTENANCE");
}

#[test]
fn hold_is_bounded_even_with_a_long_timeout() {
    let sim = Sim::start(
        Scenario::new("vm")
            .cloud(Cloud::Gcp)
            .gcp_hold_limit(Duration::from_millis(500)),
    )
    .unwrap();
    let e = etag(&get(&sim, PREEMPTED));
    let t = Instant::now();
    let r = get(
        &sim,
        &format!("{PREEMPTED}?wait_for_change=true&last_etag={e}&timeout_sec=3000"),
    );
    assert_eq!((r.text().as_str(), etag(&r)), ("FALSE", e.clone()));
    assert!(t.elapsed() >= Duration::from_millis(450));
    assert!(t.elapsed() < Duration::from_secs(10));
    // And without timeout_sec.
    sim.gcp_set_hold_limit(Duration::from_millis(300));
    let t = Instant::now();
    let r = get(
        &sim,
        &format!("{PREEMPTED}?wait_for_change=true&last_etag={e}"),
    );
    assert_eq!(etag(&r), e);
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn scripted_change_wakes_the_waiter_at_its_instant() {
    let sim = gcp_sim();
    let e = etag(&get(&sim, PREEMPTED));
    let rx = get_async(
        &sim,
        &format!("{PREEMPTED}?wait_for_change=true&last_etag={e}&timeout_sec=30"),
    );
    parked(&sim, 1);
    let base = Instant::now();
    sim.run_script(Script::new().at(Duration::from_millis(600), Step::gcp_preempted()));
    let (r, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let got = Instant::now();
    assert_eq!(r.text(), "TRUE");
    let ch = sim.gcp_changes();
    assert_eq!(ch.len(), 1);
    assert!(
        ch[0].at >= base + Duration::from_millis(600),
        "recorded at its scheduled instant"
    );
    assert!(got >= ch[0].at);
}

#[test]
fn value_change_at_an_instant() {
    let sim = gcp_sim();
    let e = etag(&get(&sim, MAINT));
    let rx = get_async(
        &sim,
        &format!("{MAINT}?wait_for_change=true&last_etag={e}&timeout_sec=30"),
    );
    parked(&sim, 1);
    let at = Instant::now() + Duration::from_millis(300);
    sim.gcp_set_at(
        at,
        "instance/maintenance-event",
        "TERMINATE_ON_HOST_MAINTENANCE",
    );
    let (r, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(r.text(), "TERMINATE_ON_HOST_MAINTENANCE");
    assert!(Instant::now() >= at);
    assert_eq!(sim.gcp_changes()[0].at, at);
}

#[test]
fn scenario_preempt_after() {
    let sim = Sim::start(
        Scenario::new("vm")
            .cloud(Cloud::Gcp)
            .gcp_preempt_after(Duration::from_millis(300))
            .gcp_maintenance_after(Duration::from_millis(300), "TERMINATE_ON_HOST_MAINTENANCE"),
    )
    .unwrap();
    let first = get(&sim, PREEMPTED);
    let r = if first.text() == "TRUE" {
        first
    } else {
        get(
            &sim,
            &format!(
                "{PREEMPTED}?wait_for_change=true&last_etag={}",
                etag(&first)
            ),
        )
    };
    assert_eq!(r.text(), "TRUE");
    assert_eq!(get(&sim, MAINT).text(), "TERMINATE_ON_HOST_MAINTENANCE");
    assert!(sim.started().0.elapsed() >= Duration::from_millis(300));
    assert_eq!(sim.gcp_value("instance/preempted").as_deref(), Some("TRUE"));
}

#[test]
fn bad_query_parameters_are_400() {
    let sim = gcp_sim();
    for q in [
        "wait_for_change=true&timeout_sec=abc",
        "wait_for_change=true&timeout_sec=0",
        "wait_for_change=maybe",
        "alt=xml",
    ] {
        assert_eq!(get(&sim, &format!("{PREEMPTED}?{q}")).status, 400, "{q}");
    }
}

#[test]
fn faults_503_and_hang() {
    let sim = gcp_sim();
    sim.gcp_fail_next(2, 503);
    let r = get(&sim, PREEMPTED);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    assert_eq!(get(&sim, PREEMPTED).status, 503);
    assert_eq!(get(&sim, PREEMPTED).status, 200);
    sim.gcp_hang_next(1);
    let rx = get_async(&sim, PREEMPTED);
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "never answered"
    );
    assert_eq!(get(&sim, PREEMPTED).status, 200, "only the next one hangs");
    let log = sim.gcp_requests();
    assert!(log.iter().any(|r| r.status == 0 && r.note == "hang"));
    assert_eq!(sim.gcp_count(PREEMPTED), 5);
}
