//! Black-box tests of the fake Azure IMDS: header and api-version rules, the scheduled-events
//! document and its incarnation, events for other VMs, approvals, the slow first call, faults,
//! rate accounting, and the compute identity.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use stnh_sim::azure::{OTHER_VM, VM_NAME};
use stnh_sim::metadata::parse_http_date;
use stnh_sim::testclient::{plain_request, Response};
use stnh_sim::{AzureEvent, Cloud, Scenario, Script, Sim, Step};

const SE: &str = "/metadata/scheduledevents?api-version=2020-07-01";
const MD: (&str, &str) = ("Metadata", "true");

fn az_sim() -> Sim {
    Sim::start(Scenario::new("aks-spotpool-12345678-vmss000003").cloud(Cloud::Azure)).unwrap()
}

fn req(sim: &Sim, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    plain_request(&sim.azure_metadata_url(), method, path, headers, body).unwrap()
}

fn get(sim: &Sim, path: &str) -> Response {
    req(sim, "GET", path, &[MD], b"")
}

fn post(sim: &Sim, body: &str) -> Response {
    req(
        sim,
        "POST",
        SE,
        &[MD, ("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn doc(sim: &Sim) -> Value {
    let r = get(sim, SE);
    assert_eq!(r.status, 200);
    r.json()
}

#[test]
fn header_and_api_version_are_required() {
    let sim = az_sim();
    let r = req(&sim, "GET", SE, &[], b"");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": "Bad request. Required metadata header not specified"})
    );
    assert_eq!(
        req(&sim, "GET", SE, &[("Metadata", "false")], b"").status,
        400
    );
    let r = get(&sim, "/metadata/scheduledevents");
    assert_eq!(r.status, 400);
    let v = r.json();
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("api-version was not specified"));
    assert_eq!(
        v["newest-versions"],
        json!(["2020-07-01", "2019-08-01", "2019-04-01"])
    );
    let r = get(&sim, "/metadata/scheduledevents?api-version=2030-01-01");
    assert_eq!(r.status, 400);
    assert!(r.json()["newest-versions"].is_array());
    let r = get(&sim, "/metadata/instance/compute");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["newest-versions"][0], "2023-07-01");
    assert_eq!(
        get(&sim, "/metadata/nope?api-version=2020-07-01").status,
        404
    );
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
}

#[test]
fn document_format_and_incarnation() {
    let sim = az_sim();
    let r = get(&sim, SE);
    assert_eq!(r.text(), "{\"DocumentIncarnation\":0,\"Events\":[]}");
    let id = sim.azure_add_event(
        AzureEvent::new("Preempt", Duration::from_secs(30))
            .id("5DD55B64-45AD-49D3-BBC9-F57D4EA97BD7"),
    );
    let text = get(&sim, SE).text();
    let v: Value = serde_json::from_str(&text).unwrap();
    let nb = v["Events"][0]["NotBefore"].as_str().unwrap().to_string();
    assert_eq!(
        text,
        format!("{{\"DocumentIncarnation\":1,\"Events\":[{{\"EventId\":\"{id}\",\"EventStatus\":\"Scheduled\",\"EventType\":\"Preempt\",\"ResourceType\":\"VirtualMachine\",\"Resources\":[\"{VM_NAME}\"],\"NotBefore\":\"{nb}\",\"Description\":\"\",\"EventSource\":\"Platform\",\"DurationInSeconds\":-1}}]}}")
    );
    // RFC 1123, about 30 s ahead.
    let t = parse_http_date(&nb).expect("RFC 1123 NotBefore");
    let ahead = t.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        ahead > Duration::from_secs(20) && ahead <= Duration::from_secs(31),
        "{ahead:?}"
    );
    // Unchanged document, unchanged incarnation.
    assert_eq!(doc(&sim)["DocumentIncarnation"], 1);
    assert!(sim.azure_start_event(&id));
    let v = doc(&sim);
    assert_eq!(v["DocumentIncarnation"], 2);
    assert_eq!(v["Events"][0]["EventStatus"], "Started");
    assert_eq!(
        v["Events"][0]["NotBefore"], "",
        "NotBefore is empty once Started"
    );
    assert!(!sim.azure_start_event(&id), "already started");
    assert!(sim.azure_remove_event(&id));
    assert_eq!(doc(&sim), json!({"DocumentIncarnation": 3, "Events": []}));
    assert_eq!(sim.azure_incarnation(), 3);
    // Older api-versions lack the fields added later.
    sim.azure_add_event(AzureEvent::new("Freeze", Duration::from_secs(900)));
    let old = get(&sim, "/metadata/scheduledevents?api-version=2019-01-01").json();
    let e = &old["Events"][0];
    assert!(e.get("Description").is_none() && e.get("DurationInSeconds").is_none());
    let new = doc(&sim);
    assert_eq!(new["Events"][0]["DurationInSeconds"], 5);
    assert_eq!(
        new["Events"][0]["Description"],
        "Virtual machine is being paused because of a memory-preserving Live Migration operation."
    );
}

#[test]
fn events_for_other_vms_and_several_vms() {
    let sim = az_sim();
    sim.azure_add_event(AzureEvent::new("Reboot", Duration::from_secs(900)).resources(&[OTHER_VM]));
    sim.azure_add_event(
        AzureEvent::new("Redeploy", Duration::from_secs(600)).resources(&[OTHER_VM, VM_NAME]),
    );
    let v = doc(&sim);
    assert_eq!(v["Events"][0]["Resources"], json!([OTHER_VM]));
    assert_eq!(v["Events"][1]["Resources"], json!([OTHER_VM, VM_NAME]));
}

#[test]
fn scheduled_event_starts_at_its_not_before() {
    let sim = Sim::start(
        Scenario::new("n")
            .cloud(Cloud::Azure)
            .script(Script::new().at(
                Duration::ZERO,
                Step::azure_event(AzureEvent::new("Preempt", Duration::from_millis(300)).id("E1")),
            )),
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = doc(&sim);
        if v["Events"][0]["EventStatus"] == "Started" {
            assert_eq!(v["DocumentIncarnation"], 2, "added, then started");
            break;
        }
        assert_eq!(v["Events"][0]["EventStatus"], "Scheduled");
        assert!(Instant::now() < end);
        thread::sleep(Duration::from_millis(50));
    }
    assert!(sim.started().0.elapsed() >= Duration::from_millis(300));
}

#[test]
fn approvals_are_recorded_and_start_the_event() {
    let sim = az_sim();
    let a = sim.azure_add_event(AzureEvent::new("Reboot", Duration::from_secs(900)));
    let b = sim.azure_add_event(AzureEvent::new("Redeploy", Duration::from_secs(900)));
    for bad in [
        "",
        "not json",
        "{}",
        "{\"StartRequests\": {}}",
        "{\"StartRequests\": [{\"Id\": \"x\"}]}",
        "{\"StartRequests\": [{\"EventId\": 7}]}",
    ] {
        assert_eq!(post(&sim, bad).status, 400, "{bad:?}");
    }
    let r = req(
        &sim,
        "POST",
        SE,
        &[],
        format!("{{\"StartRequests\":[{{\"EventId\":\"{a}\"}}]}}").as_bytes(),
    );
    assert_eq!(r.status, 400, "the header is required on POST too");
    assert!(sim.azure_approvals().is_empty());
    let inc = sim.azure_incarnation();
    let r = post(
        &sim,
        &format!("{{\"StartRequests\":[{{\"EventId\":\"{a}\"}},{{\"EventId\":\"UNKNOWN-ID\"}}]}}"),
    );
    assert_eq!(r.status, 200);
    let ap = sim.azure_approvals();
    assert_eq!(ap.len(), 1);
    assert_eq!(ap[0].ids, vec![a.clone(), "UNKNOWN-ID".to_string()]);
    assert_eq!(ap[0].known, vec![a.clone()]);
    assert!(ap[0].connection >= 1);
    let v = doc(&sim);
    assert_eq!(v["DocumentIncarnation"], inc + 1);
    assert_eq!(v["Events"][0]["EventStatus"], "Started");
    assert_eq!(v["Events"][1]["EventStatus"], "Scheduled");
    // Approving again (another VM did, or we retried) is still 200.
    assert_eq!(
        post(
            &sim,
            &format!("{{\"StartRequests\":[{{\"EventId\":\"{a}\"}}]}}")
        )
        .status,
        200
    );
    // With approval not starting events, the document stays.
    sim.azure_set_approval_starts(false);
    let inc = sim.azure_incarnation();
    post(
        &sim,
        &format!("{{\"StartRequests\":[{{\"EventId\":\"{b}\"}}]}}"),
    );
    assert_eq!(sim.azure_incarnation(), inc);
    assert_eq!(sim.azure_approvals().len(), 3);
}

#[test]
fn slow_first_call() {
    let delay = Duration::from_secs(2);
    let sim = Sim::start(
        Scenario::new("n")
            .cloud(Cloud::Azure)
            .azure_first_call_delay(delay),
    )
    .unwrap();
    // Identity is not delayed.
    let t = Instant::now();
    assert_eq!(
        get(&sim, "/metadata/instance/compute?api-version=2021-02-01").status,
        200
    );
    assert!(t.elapsed() < delay);
    let url = sim.azure_metadata_url();
    let (tx, rx) = mpsc::channel();
    for _ in 0..2 {
        let (url, tx) = (url.clone(), tx.clone());
        thread::spawn(move || {
            let t = Instant::now();
            if let Ok(r) = plain_request(&url, "GET", SE, &[MD], b"") {
                let _ = tx.send((r.status, t.elapsed()));
            }
        });
    }
    for _ in 0..2 {
        let (status, took) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(status, 200);
        assert!(took >= delay - Duration::from_millis(100), "{took:?}");
    }
    // Activated: later calls are immediate.
    let t = Instant::now();
    assert_eq!(get(&sim, SE).status, 200);
    assert!(t.elapsed() < delay, "{:?}", t.elapsed());
    let slow = sim
        .azure_requests()
        .into_iter()
        .filter(|r| r.note == "slow first call")
        .count();
    assert_eq!(slow, 2);
}

#[test]
fn faults_gone_throttled_failing() {
    let sim = az_sim();
    sim.azure_gone_for(Duration::from_millis(400));
    assert_eq!(get(&sim, SE).status, 410);
    let end = Instant::now() + Duration::from_secs(20);
    while get(&sim, SE).status == 410 {
        assert!(Instant::now() < end);
        thread::sleep(Duration::from_millis(50));
    }
    sim.azure_fail_next(1, 429);
    assert_eq!(get(&sim, SE).status, 429);
    sim.azure_fail_next(2, 500);
    assert_eq!(get(&sim, SE).status, 500);
    assert_eq!(get(&sim, SE).status, 500);
    assert_eq!(get(&sim, SE).status, 200);
    // Faults come after the header check.
    sim.azure_fail_next(1, 500);
    assert_eq!(req(&sim, "GET", SE, &[], b"").status, 400);
    assert_eq!(get(&sim, SE).status, 500);
}

#[test]
fn rate_accounting() {
    let sim = az_sim();
    // Spaced 300 ms apart: never more than 4 in a second (a slow machine only spreads them).
    for _ in 0..4 {
        get(&sim, SE);
        thread::sleep(Duration::from_millis(300));
    }
    assert!(sim.azure_max_rate() <= 4, "{}", sim.azure_max_rate());
    assert!(!sim.azure_rate_exceeded());
    for _ in 0..8 {
        get(&sim, SE);
    }
    assert!(sim.azure_max_rate() >= 6, "{}", sim.azure_max_rate());
    assert!(sim.azure_rate_exceeded());
    // Enforced when asked: 429 beyond the limit.
    let sim = Sim::start(Scenario::new("n").cloud(Cloud::Azure).azure_rate_limit(5)).unwrap();
    let statuses: Vec<u16> = (0..8).map(|_| get(&sim, SE).status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(&statuses[..5], &[200; 5]);
}

#[test]
fn compute_identity_and_text_leaves() {
    let sim = az_sim();
    let r = get(&sim, "/metadata/instance/compute?api-version=2021-02-01");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let c = r.json();
    assert_eq!(c["name"], VM_NAME);
    assert_eq!(
        c["osProfile"]["computerName"],
        "aks-spotpool-12345678-vmss000003"
    );
    assert_eq!(c["vmSize"], "Standard_D4s_v3");
    assert_eq!(c["zone"], "1");
    assert_eq!(c["location"], "eastus");
    assert_eq!(c["priority"], "Spot");
    assert_eq!(c["evictionPolicy"], "Delete");
    assert_eq!(c["vmScaleSetName"], "aks-spotpool-12345678-vmss");
    assert!(c["resourceId"]
        .as_str()
        .unwrap()
        .ends_with("/virtualMachineScaleSets/aks-spotpool-12345678-vmss/virtualMachines/3"));
    let r = get(
        &sim,
        "/metadata/instance/compute/name?api-version=2021-02-01&format=text",
    );
    assert_eq!((r.status, r.text().as_str()), (200, VM_NAME));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let r = get(
        &sim,
        "/metadata/instance/compute/osProfile/computerName?api-version=2021-02-01&format=text",
    );
    assert_eq!(r.text(), "aks-spotpool-12345678-vmss000003");
    assert_eq!(
        get(
            &sim,
            "/metadata/instance/compute/name?api-version=2021-02-01"
        )
        .status,
        400,
        "a leaf needs format=text"
    );
    assert_eq!(
        get(
            &sim,
            "/metadata/instance/compute/nope?api-version=2021-02-01&format=text"
        )
        .status,
        404
    );
    let full = get(&sim, "/metadata/instance?api-version=2021-02-01").json();
    assert_eq!(full["compute"]["name"], VM_NAME);
    assert!(get(&sim, SE).header("date").is_some());
}
