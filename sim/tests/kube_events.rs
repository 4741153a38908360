//! Events (both groups), Node status and label selectors, over real TLS connections.

mod common;

use common::*;
use serde_json::{json, Value};
use stnh_sim::events::EventApi;
use stnh_sim::{PodSpec, Scenario, Sim};

const V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn node_event(name: &str) -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2024-05-01T10:00:05.123456Z",
        "reportingController": "spot-termination-notice-handler",
        "reportingInstance": NODE, "action": "Cordon", "reason": "SpotInterruption",
        "regarding": {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": NODE},
        "note": "spot interruption, deadline 2024-05-01T10:02:00Z", "type": "Warning"})
}

fn causes(r: &stnh_sim::testclient::Response) -> Vec<(String, String)> {
    r.json()["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn events_v1_create_read_through_both_groups() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let name = format!("{NODE}.17c2f1a9b3d4e5f6");
    let r = post(&sim, V1, &node_event(&name));
    assert_eq!(r.status, 201, "{}", r.text());
    let o = r.json();
    assert_eq!(o["apiVersion"], "events.k8s.io/v1");
    assert_eq!(o["regarding"]["kind"], "Node");
    assert_eq!(
        o["note"],
        "spot interruption, deadline 2024-05-01T10:02:00Z"
    );
    assert_eq!(o["eventTime"], "2024-05-01T10:00:05.123456Z");
    assert!(o["metadata"]["uid"].is_string() && o["metadata"]["resourceVersion"].is_string());
    assert!(o.get("deprecatedCount").is_none());

    // The same object through core v1, converted.
    let c = get(&sim, &format!("/api/v1/namespaces/default/events/{name}")).json();
    assert_eq!(c["apiVersion"], "v1");
    assert_eq!(c["involvedObject"]["name"], NODE);
    assert_eq!(c["message"], o["note"]);
    assert_eq!(c["reportingComponent"], "spot-termination-notice-handler");
    assert_eq!(c["firstTimestamp"], Value::Null);
    let l = get(&sim, "/apis/events.k8s.io/v1/events").json();
    assert_eq!(l["kind"], "EventList");
    assert_eq!(l["apiVersion"], "events.k8s.io/v1");
    assert_eq!(l["items"][0]["regarding"]["name"], NODE);
    assert!(l["items"][0].get("kind").is_none());
    let l = get(
        &sim,
        &format!("{V1}?fieldSelector=regarding.kind%3DNode,reason%3DSpotInterruption"),
    )
    .json();
    assert_eq!(l["items"].as_array().unwrap().len(), 1);

    let recs = sim.events_regarding("Node", "", NODE);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].created_via, EventApi::EventsV1);
    assert_eq!(
        (recs[0].count, recs[0].series.clone(), recs[0].updates),
        (1, None, 0)
    );
    assert_eq!(
        recs[0].reporting_controller,
        "spot-termination-notice-handler"
    );
    assert_eq!(sim.event_records().len(), 1);
    assert_eq!(post(&sim, V1, &node_event(&name)).status, 409);

    // dryRun stores nothing; generateName makes a name.
    let mut e = node_event("x");
    e["metadata"] = json!({"generateName": format!("{NODE}.")});
    let r = post(&sim, &format!("{V1}?dryRun=All"), &e);
    assert_eq!(r.status, 201);
    assert_eq!(sim.event_records().len(), 1);
    let r = post(&sim, V1, &e);
    assert!(r.json()["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{NODE}.")));
}

#[test]
fn events_v1_validation_errors_are_real_422s() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    // One missing field: the single-error message form.
    let mut e = node_event("a");
    e.as_object_mut().unwrap().remove("eventTime");
    let r = post(&sim, V1, &e);
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Event.events.k8s.io \"a\" is invalid: eventTime: Required value",
            "reason": "Invalid",
            "details": {"name": "a", "group": "events.k8s.io", "kind": "Event",
                "causes": [{"reason": "FieldValueRequired", "message": "Required value",
                    "field": "eventTime"}]},
            "code": 422})
    );
    // Several: bracketed list, causes in validation order.
    let mut e = node_event("b");
    for k in ["reportingInstance", "action", "reason"] {
        e.as_object_mut().unwrap().remove(k);
    }
    e["type"] = json!("Info");
    e["reportingController"] = json!("Spot Handler");
    e["note"] = json!("x".repeat(1025));
    e["deprecatedCount"] = json!(3);
    let r = post(&sim, V1, &e);
    assert_eq!(r.status, 422);
    let fields: Vec<String> = causes(&r).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "message",
            "type",
            "count"
        ]
    );
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("Event.events.k8s.io \"b\" is invalid: [reportingController: Invalid value: \"Spot Handler\": name part must consist of"),
        "{msg}"
    );
    assert!(msg.contains("message: Invalid value: \"\": can have at most 1024 characters"));
    assert!(msg.contains("type: Invalid value: \"\": has invalid value: Info"));
    assert!(msg.ends_with("count: Invalid value: \"\": needs to be unset]"));
    // A 1024-byte note is fine.
    let mut e = node_event("c");
    e["note"] = json!("x".repeat(1024));
    assert_eq!(post(&sim, V1, &e).status, 201);

    // eventTime is a MicroTime: exactly six fractional digits, else the body does not decode.
    let mut e = node_event("d");
    e["eventTime"] = json!("2024-05-01T10:00:05Z");
    let r = post(&sim, V1, &e);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
    assert_eq!(
        r.json()["message"],
        "Event in version \"v1\" cannot be handled as a Event: parsing time \"2024-05-01T10:00:05Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"Z\" as \".000000\""
    );
    e["eventTime"] = json!("2024-05-01T12:00:05.000001+02:00");
    let r = post(&sim, V1, &e);
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["eventTime"], "2024-05-01T10:00:05.000001Z");

    // A Node's Event belongs in `default` (or kube-system), not in a workload namespace.
    let mut e = node_event("e");
    e["metadata"]["namespace"] = json!("shop");
    let r = post(&sim, "/apis/events.k8s.io/v1/namespaces/shop/events", &e);
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Event.events.k8s.io \"e\" is invalid: involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
    );
    let r = post(
        &sim,
        "/apis/events.k8s.io/v1/namespaces/kube-system/events",
        &{
            let mut e = node_event("e");
            e["metadata"]["namespace"] = json!("kube-system");
            e
        },
    );
    assert_eq!(r.status, 201);
    // A namespaced object's Event in its namespace; the URL and body namespaces must agree.
    let mut e = node_event("f");
    e["metadata"]["namespace"] = json!("shop");
    e["regarding"] =
        json!({"kind": "Pod", "namespace": "shop", "name": "web-1", "apiVersion": "v1"});
    assert_eq!(
        post(&sim, "/apis/events.k8s.io/v1/namespaces/shop/events", &e).status,
        201
    );
    assert_eq!(post(&sim, V1, &e).status, 400);
    // Strict names, and apiVersion must match the group.
    let mut e = node_event("Not_A_DNS_Name");
    assert_eq!(causes(&post(&sim, V1, &e))[0].0, "metadata.name");
    e["metadata"]["name"] = json!("g");
    e["apiVersion"] = json!("v1");
    let r = post(&sim, V1, &e);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("does not match the expected API version (events.k8s.io/v1)"));
    e["apiVersion"] = json!("events.k8s.io/v1");
    e["note"] = json!(42);
    let r = post(&sim, V1, &e);
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("json: cannot unmarshal number into Go struct field Event.note of type string"));
}

#[test]
fn events_v1_series_patch_and_immutable_fields() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let name = format!("{NODE}.aaa");
    assert_eq!(post(&sim, V1, &node_event(&name)).status, 201);
    let path = format!("{V1}/{name}");
    // What client-go's event broadcaster sends for a repeat: a strategic merge patch of series.
    let r = smp(
        &sim,
        &path,
        &json!({"series": {"count": 2, "lastObservedTime": "2024-05-01T10:00:15.000000Z"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["series"]["count"], 2);
    let rv1 = r.json()["metadata"]["resourceVersion"].clone();
    let r = merge(
        &sim,
        &path,
        &json!({"series": {"count": 3, "lastObservedTime": "2024-05-01T10:00:25.500000Z"}}),
    );
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["metadata"]["resourceVersion"], rv1);
    let rec = &sim.events_regarding("Node", "", NODE)[0];
    assert_eq!(rec.count, 3);
    assert_eq!(
        rec.series,
        Some((3, "2024-05-01T10:00:25.500000Z".to_string()))
    );
    assert_eq!(rec.updates, 2);
    // The same patch again is a no-op: no new resourceVersion, not counted.
    let before = get(&sim, &path).json()["metadata"]["resourceVersion"].clone();
    let r = merge(
        &sim,
        &path,
        &json!({"series": {"count": 3, "lastObservedTime": "2024-05-01T10:00:25.500000Z"}}),
    );
    assert_eq!(r.json()["metadata"]["resourceVersion"], before);
    assert_eq!(sim.events_regarding("Node", "", NODE)[0].updates, 2);

    // Series rules.
    let r = smp(
        &sim,
        &path,
        &json!({"series": {"count": 1, "lastObservedTime": "2024-05-01T10:00:26.000000Z"}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        format!("Event.events.k8s.io \"{name}\" is invalid: series.count: Invalid value: \"\": should be at least 2")
    );
    let r = smp(
        &sim,
        &path,
        &json!({"series": {"count": 4, "lastObservedTime": null}}),
    );
    assert_eq!(
        causes(&r),
        [(
            "series.lastObservedTime".to_string(),
            "FieldValueRequired".to_string()
        )]
    );
    // A patched MicroTime that does not decode: 422 on the `patch` field.
    let r = smp(
        &sim,
        &path,
        &json!({"series": {"count": 4, "lastObservedTime": "2024-05-01T10:00:26Z"}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(causes(&r)[0].0, "patch");
    // Everything else is immutable through events.k8s.io/v1 ...
    let r = merge(&sim, &path, &json!({"note": "changed"}));
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        format!("Event.events.k8s.io \"{name}\" is invalid: message: Invalid value: \"changed\": field is immutable")
    );
    assert_eq!(merge(&sim, &path, &json!({"type": "Normal"})).status, 422);
    // ... but not through core v1, which only runs the legacy checks.
    let r = merge(
        &sim,
        &format!("/api/v1/namespaces/default/events/{name}"),
        &json!({"count": 7, "message": "changed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(&sim, &path).json()["deprecatedCount"], 7);
    // Stale resourceVersion → 409; unknown event → 404 naming the group.
    let r = merge(&sim, &path, &json!({"metadata": {"resourceVersion": "1"}}));
    assert_eq!(r.status, 409);
    let r = merge(&sim, &format!("{V1}/nope"), &json!({}));
    assert_eq!(
        r.json()["message"],
        "events.events.k8s.io \"nope\" not found"
    );
}

#[test]
fn core_v1_event_validation() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let core = "/api/v1/namespaces/default/events";
    // Old style (no eventTime): namespace rules only.
    let old = json!({"metadata": {"name": "o1"},
        "involvedObject": {"kind": "Node", "name": NODE}, "reason": "SpotInterruption",
        "message": "m", "type": "Warning", "count": 1,
        "firstTimestamp": "2024-05-01T10:00:05.9Z", "lastTimestamp": "2024-05-01T10:00:05Z",
        "source": {"component": "spot-termination-notice-handler", "host": NODE}});
    let r = post(&sim, core, &old);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["firstTimestamp"],
        "2024-05-01T10:00:05Z",
        "metav1.Time drops fractions"
    );
    assert_eq!(r.json()["eventTime"], Value::Null);
    assert_eq!(r.json()["reportingComponent"], "");
    let mut o = old.clone();
    o["metadata"]["name"] = json!("o2");
    let r = post(&sim, "/api/v1/namespaces/shop/events", &o);
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Event \"o2\" is invalid: involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
    );
    assert_eq!(r.json()["details"]["kind"], "Event");
    assert!(r.json()["details"].get("group").is_none());
    // New style (eventTime set) through core v1: the reporting fields are required, the
    // controller a qualified name (three errors for an empty one, as upstream reports).
    let mut n = old.clone();
    n["metadata"]["name"] = json!("n1");
    n["eventTime"] = json!("2024-05-01T10:00:05.000000Z");
    let r = post(&sim, core, &n);
    assert_eq!(r.status, 422);
    let f: Vec<String> = causes(&r).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        f,
        [
            "reportingController",
            "reportingController",
            "reportingController",
            "reportingInstance",
            "action"
        ]
    );
    n["reportingComponent"] = json!("example.com/spot-handler");
    n["reportingInstance"] = json!(NODE);
    n["action"] = json!("Drain");
    let r = post(&sim, core, &n);
    assert_eq!(r.status, 201, "{}", r.text());
    // Core v1 has no strict checks: deprecated fields and any type are accepted.
    assert_eq!(r.json()["count"], 1);
    let rec = sim
        .event_records()
        .into_iter()
        .find(|e| e.name == "n1")
        .unwrap();
    assert_eq!(rec.created_via, EventApi::Core);
    assert_eq!(rec.reporting_controller, "example.com/spot-handler");
    // The same event read through events.k8s.io shows the deprecated fields.
    let v = get(&sim, &format!("{V1}/n1")).json();
    assert_eq!(v["deprecatedCount"], 1);
    assert_eq!(
        v["deprecatedSource"]["component"],
        "spot-termination-notice-handler"
    );
    assert_eq!(v["deprecatedFirstTimestamp"], "2024-05-01T10:00:05Z");
}

#[test]
fn events_v1_can_be_absent_and_denied() {
    let old = Sim::start(Scenario::new(NODE).events_k8s_io(false)).unwrap();
    let groups = get(&old, "/apis").json();
    assert!(!groups.to_string().contains("events.k8s.io"));
    assert_eq!(get(&old, "/apis/events.k8s.io").status, 404);
    assert_eq!(get(&old, "/apis/events.k8s.io/v1").status, 404);
    assert_eq!(post(&old, V1, &node_event("a")).status, 404);
    let mut core = node_event("a");
    core["apiVersion"] = json!("v1");
    assert_eq!(
        post(
            &old,
            "/api/v1/namespaces/default/events",
            &json!({"metadata": {"name": "a"},
            "involvedObject": {"kind": "Node", "name": NODE}, "reason": "r", "message": "m"})
        )
        .status,
        201
    );

    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let gv = get(&sim, "/apis/events.k8s.io/v1").json();
    assert_eq!(gv["resources"][0]["name"], "events");
    assert!(get(&sim, "/apis")
        .json()
        .to_string()
        .contains("\"events.k8s.io/v1\""));
    // A group-qualified deny only hits that group.
    sim.deny("create", "events.events.k8s.io", "");
    let r = post(&sim, V1, &node_event("a"));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "events.events.k8s.io is forbidden: User \"system:serviceaccount:kube-system:spot-termination-notice-handler\" cannot create resource \"events\" in API group \"events.k8s.io\" in the namespace \"default\""
    );
    let r = post(
        &sim,
        "/api/v1/namespaces/default/events",
        &json!({"metadata": {"name": "a"}, "involvedObject": {"kind": "Node", "name": NODE},
            "reason": "r", "message": "m"}),
    );
    assert_eq!(r.status, 201);
    sim.deny("patch", "events", "");
    let r = merge(
        &sim,
        "/api/v1/namespaces/default/events/a",
        &json!({"count": 2}),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn label_selector_full_syntax_over_http() {
    let pod = |name: &str, labels: &[(&str, &str)]| PodSpec::new("shop", name).labels(labels);
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(pod("p1", &[("a", "b"), ("e", "f"), ("j", "1")]))
            .pod(pod("p2", &[("a", "b"), ("c", "d"), ("e", "f"), ("j", "1")]))
            .pod(pod("p3", &[("a", "b"), ("e", "x"), ("j", "1")]))
            .pod(pod("p4", &[("a", "b"), ("e", "g"), ("h", "i"), ("j", "1")]))
            .pod(pod("p5", &[("a", "b"), ("e", "g"), ("j", "1"), ("k", "1")]))
            .pod(pod("p6", &[("a", "b"), ("e", "g")])),
    )
    .unwrap();
    let names = |sel: &str| -> Vec<String> {
        let q = stnh_sim::util::percent_encode(sel);
        let r = get(
            &sim,
            &format!("/api/v1/namespaces/shop/pods?labelSelector={q}"),
        );
        assert_eq!(r.status, 200, "{sel}: {}", r.text());
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("a=b,c!=d,e in (f,g),h notin (i),j,!k"), ["p1"]);
    assert_eq!(names("a==b,e notin (f,x)"), ["p4", "p5", "p6"]);
    assert_eq!(names("!j"), ["p6"]);
    // kubectl sends spaces as `+` in the query string.
    let r = get(
        &sim,
        "/api/v1/namespaces/shop/pods?labelSelector=e+in+%28x%29%2Cj",
    );
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    let r = get(&sim, "/api/v1/namespaces/shop/pods?labelSelector=e+in+x");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
    assert_eq!(
        r.json()["message"],
        "unable to parse requirement: found 'x' expected: '('"
    );
    let r = get(&sim, "/api/v1/pods?fieldSelector=metadata.labels%3Dx");
    assert_eq!(
        r.json()["message"],
        "field label not supported: metadata.labels"
    );
}

#[test]
fn node_status_conditions_merge_by_type() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let status = format!("/api/v1/nodes/{NODE}/status");
    let r = get(&sim, &status);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kind"], "Node");
    let cond = json!({"type": "TerminationNotice", "status": "True", "reason": "SpotInterruption",
        "message": "spot interruption notice; instance terminates at 2024-05-01T10:02:00Z",
        "lastHeartbeatTime": "2024-05-01T10:00:05Z", "lastTransitionTime": "2024-05-01T10:00:05Z"});
    let r = smp(&sim, &status, &json!({"status": {"conditions": [cond]}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let conds = r.json()["status"]["conditions"].as_array().unwrap().clone();
    assert_eq!(conds.len(), 5, "merged into the kubelet's four by type");
    assert_eq!(sim.node_condition(NODE, "TerminationNotice").unwrap(), cond);
    assert_eq!(sim.node_condition(NODE, "Ready").unwrap()["status"], "True");
    // An update of the same type merges in place; times are what the client sent.
    let r = smp(
        &sim,
        &status,
        &json!({"status": {"conditions": [{"type": "TerminationNotice", "status": "False",
            "reason": "NoticeWithdrawn", "lastTransitionTime": "2024-05-01T10:05:00Z"}]}}),
    );
    assert_eq!(
        r.json()["status"]["conditions"].as_array().unwrap().len(),
        5
    );
    let c = sim.node_condition(NODE, "TerminationNotice").unwrap();
    assert_eq!(
        (
            c["status"].as_str(),
            c["reason"].as_str(),
            c["lastTransitionTime"].as_str(),
            c["lastHeartbeatTime"].as_str()
        ),
        (
            Some("False"),
            Some("NoticeWithdrawn"),
            Some("2024-05-01T10:05:00Z"),
            Some("2024-05-01T10:00:05Z")
        )
    );
    // The server writes metav1.Time in UTC whole seconds.
    smp(
        &sim,
        &status,
        &json!({"status": {"conditions": [{"type": "TerminationNotice", "lastHeartbeatTime": "2024-05-01T12:06:00.75+02:00"}]}}),
    );
    assert_eq!(
        sim.node_condition(NODE, "TerminationNotice").unwrap()["lastHeartbeatTime"],
        "2024-05-01T10:06:00Z"
    );
    // A time that does not decode is refused and nothing changes.
    let rv = sim.node(NODE).unwrap()["metadata"]["resourceVersion"].clone();
    let r = smp(
        &sim,
        &status,
        &json!({"status": {"conditions": [{"type": "TerminationNotice", "lastTransitionTime": "now"}]}}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(sim.node(NODE).unwrap()["metadata"]["resourceVersion"], rv);
    // JSON patch works on the subresource too.
    let r = call(
        &sim,
        "PATCH",
        &status,
        Some("application/json-patch+json"),
        r#"[{"op":"add","path":"/status/conditions/-","value":{"type":"Other","status":"Unknown"}}]"#,
    );
    assert_eq!(r.status, 200);
    assert!(sim.node_condition(NODE, "Other").is_some());
    // A merge patch replaces the whole list (no merge key): the trap is real.
    let r = merge(
        &sim,
        &status,
        &json!({"status": {"conditions": [{"type": "TerminationNotice", "status": "True"}]}}),
    );
    assert_eq!(r.status, 200);
    assert!(sim.node_condition(NODE, "Ready").is_none());
}

#[test]
fn node_status_and_main_resource_stay_apart() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let status = format!("/api/v1/nodes/{NODE}/status");
    // spec through /status is ignored ...
    let r = smp(
        &sim,
        &status,
        &json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "TerminationNotice", "status": "True"}]}}),
    );
    assert_eq!(r.status, 200);
    assert!(sim.node(NODE).unwrap()["spec"]
        .get("unschedulable")
        .is_none());
    assert!(sim.node_condition(NODE, "TerminationNotice").is_some());
    // ... and status through the main resource is ignored.
    let r = smp(
        &sim,
        &format!("/api/v1/nodes/{NODE}"),
        &json!({"status": {"conditions": [{"type": "Sneaky", "status": "True"}]}}),
    );
    assert_eq!(r.status, 200);
    assert!(sim.node_condition(NODE, "Sneaky").is_none());
    // PUT on /status.
    let mut n = get(&sim, &status).json();
    n["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    let r = call(
        &sim,
        "PUT",
        &status,
        Some("application/json"),
        &n.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        sim.node(NODE).unwrap()["status"]["conditions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // RBAC on the subresource, separate from the node itself.
    sim.deny("patch", "nodes", "status");
    let r = smp(&sim, &status, &json!({"status": {}}));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        format!("nodes \"{NODE}\" is forbidden: User \"system:serviceaccount:kube-system:spot-termination-notice-handler\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope")
    );
    let r = smp(
        &sim,
        &format!("/api/v1/nodes/{NODE}"),
        &json!({"spec": {"unschedulable": true}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&sim, &status).status,
        200,
        "get nodes/status is not denied"
    );
    sim.deny("get", "nodes", "status");
    assert_eq!(get(&sim, &status).status, 403);
    assert_eq!(
        smp(&sim, "/api/v1/nodes/nope/status", &json!({})).status,
        403
    );
    sim.allow_all();
    assert_eq!(
        smp(&sim, "/api/v1/nodes/nope/status", &json!({})).status,
        404
    );
}
