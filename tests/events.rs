//! Kubernetes Events and the `TerminationNotice` Node condition, end to end: the real binary
//! against the simulator's API server, which validates Events like a v1.32 kube-apiserver
//! (both groups, series) and merges `nodes/status` conditions by type.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use stnh_sim::events::{EventApi, EventRecord};
use stnh_sim::{FaultAction, PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);
const CONTROLLER: &str = "spot-termination-notice-handler";

fn node_events(sim: &Sim) -> Vec<EventRecord> {
    sim.events_regarding("Node", "", NODE)
}

fn reasons(events: &[EventRecord]) -> Vec<&str> {
    events.iter().map(|e| e.reason.as_str()).collect()
}

fn ledger_id(sim: &Sim) -> String {
    let l: Vec<Value> =
        serde_json::from_str(&annotation(&sim.node(NODE).unwrap(), "notices").unwrap()).unwrap();
    l[0]["id"].as_str().unwrap().to_string()
}

fn condition(sim: &Sim) -> Option<Value> {
    sim.node_condition(NODE, "TerminationNotice")
}

fn status_patches(sim: &Sim) -> Vec<Value> {
    sim.api_requests()
        .iter()
        .filter(|r| r.path == format!("/api/v1/nodes/{NODE}/status"))
        .map(|r| {
            assert_eq!(r.method, "PATCH");
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/strategic-merge-patch+json")
            );
            assert_eq!(r.status, 200, "{}", r.body);
            serde_json::from_str(&r.body).unwrap()
        })
        .collect()
}

/// Every Event is ours and well-formed in its group.
fn check_common(e: &EventRecord, via: EventApi) {
    assert_eq!(e.created_via, via, "{e:?}");
    assert_eq!(e.reporting_controller, CONTROLLER);
    assert_eq!(e.reporting_instance, NODE);
    assert!(e.type_ == "Normal" || e.type_ == "Warning");
    assert!(
        e.name.starts_with(&format!("{}.", e.regarding_name)),
        "{}",
        e.name
    );
    if via == EventApi::EventsV1 {
        let t = e.event_time.as_deref().unwrap();
        assert!(t.len() == 27 && t.ends_with('Z'), "MicroTime: {t}");
    }
}

#[test]
fn a_drain_is_recorded_on_the_node_and_on_each_evicted_pod() {
    let sim = Sim::start(mixed_node().notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let uids: Vec<(String, String)> = MIXED_EVICTABLE
        .iter()
        .map(|p| {
            let (ns, name) = p.split_once('/').unwrap();
            let uid = sim.pod(ns, name).unwrap()["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_string();
            (p.to_string(), uid)
        })
        .collect();
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("the Drained Event", LONG, || {
        reasons(&node_events(&sim)).contains(&"Drained")
    });
    eventually("the condition says drained", LONG, || {
        condition(&sim).is_some_and(|c| c["message"].as_str().unwrap().ends_with("node drained"))
    });
    settled(&sim);
    record_requests("events_drain", &sim);
    let id = ledger_id(&sim);
    let deadline = annotation(&sim.node(NODE).unwrap(), "deadline").unwrap();

    // Start-up: one discovery request for the group, before the Eviction discovery.
    let all: Vec<String> = sim
        .api_requests()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    let disco = all
        .iter()
        .position(|l| l == "GET /apis/events.k8s.io/v1 200")
        .unwrap();
    assert_eq!(all[disco + 1], "GET /api/v1 200");
    assert_eq!(
        all.iter()
            .filter(|l| l.contains("events.k8s.io/v1 "))
            .count(),
        1
    );

    // On the Node: the phases, in order, each once.
    let ev = node_events(&sim);
    assert_eq!(
        reasons(&ev),
        ["SpotInterruption", "Cordoned", "DrainStarted", "Drained"]
    );
    for e in &ev {
        check_common(e, EventApi::EventsV1);
        assert_eq!(
            (e.namespace.as_str(), e.regarding_uid.as_str()),
            ("default", NODE)
        );
        assert_eq!((e.count, e.series.is_none(), e.updates), (1, true, 0));
    }
    let types: Vec<&str> = ev.iter().map(|e| e.type_.as_str()).collect();
    assert_eq!(types, ["Warning", "Normal", "Normal", "Normal"]);
    let actions: Vec<&str> = ev.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["Notice", "Cordon", "Drain", "Drain"]);
    let note = &ev[0].note;
    assert!(
        note.starts_with(&format!(
            "spot interruption notice {id}: terminate, deadline {deadline} ("
        )) && note.ends_with(" s left); cordoning and draining the node"),
        "{note}"
    );
    assert_eq!(
        ev[1].note,
        format!("cordoned for spot interruption notice {id}")
    );
    let about = format!("spot interruption, deadline {deadline} (notice {id})");
    assert_eq!(ev[2].note, format!("draining: {about}"));
    assert!(
        ev[3].note.starts_with("evicted=6 forced=0 failed=0 ")
            && ev[3].note.ends_with(&format!("; notice {id}")),
        "{}",
        ev[3].note
    );

    // On each evicted Pod: one Event, in the Pod's namespace, naming the notice.
    for (pod, uid) in &uids {
        let (ns, name) = pod.split_once('/').unwrap();
        let pe = sim.events_regarding("Pod", ns, name);
        assert_eq!(pe.len(), 1, "{pod}: {pe:?}");
        let e = &pe[0];
        check_common(e, EventApi::EventsV1);
        assert_eq!(
            (e.reason.as_str(), e.type_.as_str(), e.action.as_str()),
            ("Evicted", "Normal", "Evict")
        );
        assert_eq!((e.namespace.as_str(), &e.regarding_uid), (ns, uid));
        assert_eq!(e.note, format!("evicted: {about}"));
    }
    assert!(sim
        .events_regarding("Pod", "logging", "fluentd-x1")
        .is_empty());

    // Exactly these requests: one POST per Event, in the group's paths; no PATCH.
    let posts: Vec<String> = sim
        .api_requests()
        .iter()
        .filter(|r| r.path.contains("/events"))
        .filter(|r| r.method != "GET")
        .map(|r| {
            assert_eq!((r.method.as_str(), r.status), ("POST", 201), "{}", r.body);
            assert_eq!(r.content_type.as_deref(), Some("application/json"));
            r.path.clone()
        })
        .collect();
    let mut want: Vec<String> = vec!["/apis/events.k8s.io/v1/namespaces/default/events".into(); 4];
    want.extend(MIXED_EVICTABLE.iter().map(|p| {
        format!(
            "/apis/events.k8s.io/v1/namespaces/{}/events",
            p.split('/').next().unwrap()
        )
    }));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(posts), sorted(want));
    let body: Value = serde_json::from_str(
        &sim.api_requests()
            .iter()
            .find(|r| r.method == "POST" && r.path.ends_with("/default/events"))
            .unwrap()
            .body,
    )
    .unwrap();
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "apiVersion",
            "kind",
            "metadata",
            "eventTime",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "regarding",
            "note",
            "type"
        ])
    );
    assert_eq!(
        body["regarding"],
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": NODE})
    );

    // The condition: True, the notice's reason, what is being done; the kubelet's stay.
    let c = condition(&sim).unwrap();
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "SpotInterruption");
    assert_eq!(
        c["message"],
        format!("spot interruption notice {id} (terminate), deadline {deadline}: node drained")
    );
    assert!(c["lastTransitionTime"].is_string() && c["lastHeartbeatTime"].is_string());
    assert!(
        sim.node_condition(NODE, "Ready").is_some(),
        "merged by type"
    );
    let patches = status_patches(&sim);
    assert_eq!(patches.len(), 2, "draining, then drained: {patches:?}");
    let first = &patches[0]["status"]["conditions"][0];
    assert!(first["message"]
        .as_str()
        .unwrap()
        .ends_with("node draining"));
    assert!(first["lastTransitionTime"].is_string(), "the flip to True");
    assert!(
        patches[1]["status"]["conditions"][0]
            .get("lastTransitionTime")
            .is_none(),
        "no flip, the transition time stays"
    );
    // Logged after the server's answer, which the simulator has already applied.
    eventually("both condition writes logged", LONG, || {
        h.count("msg=\"node condition set\"") >= 2
    });
    assert_eq!(h.count("msg=\"node condition set\""), 2);
}

/// A budget that never gives way: the pods are force-deleted at deadline − reserve (or, with
/// FORCE_DELETE=false, left).
fn blocked() -> Scenario {
    Scenario::new(NODE)
        .replacement_ready_after(None)
        .pod(
            PodSpec::new("shop", "checkout-1")
                .replicaset("checkout")
                .labels(&[("app", "checkout")])
                .shutdown(Duration::from_millis(300)),
        )
        .pdb(
            "shop",
            "checkout-pdb",
            &[("app", "checkout")],
            None,
            Some(0),
        )
        .notice_after(
            Duration::from_millis(300),
            "terminate",
            Duration::from_secs(7),
        )
}

#[test]
fn a_forced_delete_is_a_warning_on_the_pod_and_a_failed_drain_is_drain_incomplete() {
    let sim = Sim::start(blocked()).unwrap();
    let h = Handler::start(&sim, &[("DRAIN_RESERVE", "4s")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("the Deleted Event", LONG, || {
        !sim.events_regarding("Pod", "shop", "checkout-1").is_empty()
    });
    let e = &sim.events_regarding("Pod", "shop", "checkout-1")[0];
    check_common(e, EventApi::EventsV1);
    assert_eq!(
        (e.reason.as_str(), e.type_.as_str(), e.action.as_str()),
        ("Deleted", "Warning", "Delete")
    );
    assert!(
        e.note.starts_with("deleted at the deadline minus the reserve, its disruption budget still refusing: spot interruption, deadline "),
        "{}",
        e.note
    );
    eventually("Drained", LONG, || {
        reasons(&node_events(&sim)).contains(&"Drained")
    });
    record_requests("events_forced", &sim);

    let sim = Sim::start(blocked()).unwrap();
    let h = Handler::start(&sim, &[("DRAIN_RESERVE", "4s"), ("FORCE_DELETE", "false")]);
    h.wait_for("msg=\"drain finished with pods left\"", LONG);
    eventually("DrainIncomplete", LONG, || {
        reasons(&node_events(&sim)).contains(&"DrainIncomplete")
    });
    let ev = node_events(&sim);
    let last = ev.last().unwrap();
    assert_eq!(
        (last.reason.as_str(), last.type_.as_str()),
        ("DrainIncomplete", "Warning")
    );
    assert!(
        last.note.starts_with("evicted=0 forced=0 failed=1 "),
        "{}",
        last.note
    );
    assert!(
        sim.events_regarding("Pod", "shop", "checkout-1").is_empty(),
        "nothing happened to it"
    );
    eventually("the condition says incomplete", LONG, || {
        condition(&sim).is_some_and(|c| c["message"].as_str().unwrap().ends_with("node incomplete"))
    });
}

#[test]
fn without_events_k8s_io_the_events_are_core_v1() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .events_k8s_io(false)
            .pod(PodSpec::new("shop", "web-1").shutdown(Duration::from_millis(200)))
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("four Node Events", LONG, || node_events(&sim).len() == 4);
    settled(&sim);
    record_requests("events_core", &sim);
    let reqs = sim.api_requests();
    assert!(reqs
        .iter()
        .any(|r| r.path == "/apis/events.k8s.io/v1" && r.status == 404));
    let event_paths: BTreeSet<&str> = reqs
        .iter()
        .filter(|r| r.path.contains("/events") && r.method == "POST")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        event_paths,
        BTreeSet::from([
            "/api/v1/namespaces/default/events",
            "/api/v1/namespaces/shop/events"
        ])
    );
    assert!(reqs
        .iter()
        .all(|r| r.status != 404 || r.path == "/apis/events.k8s.io/v1"));
    for e in node_events(&sim)
        .iter()
        .chain(sim.events_regarding("Pod", "shop", "web-1").iter())
    {
        check_common(e, EventApi::Core);
        let o = &e.object;
        assert_eq!(o["source"]["component"], CONTROLLER);
        assert_eq!(o["source"]["host"], NODE);
        assert_eq!(o["count"], 1);
        assert!(o["firstTimestamp"].is_string() && o["lastTimestamp"].is_string());
        assert_eq!(o["reportingComponent"], CONTROLLER);
    }
    assert_eq!(
        sim.events_regarding("Pod", "shop", "web-1")[0].reason,
        "Evicted"
    );
}

/// A rebalance recommendation that comes, goes, and comes back with the same time: each
/// phase happens twice, as the same Event.
fn flapping(sim: &Sim, h: &Handler) {
    let t = SystemTime::now();
    for round in 1..=2 {
        sim.set_rebalance(Some(t));
        eventually("cordoned", LONG, || {
            sim.node(NODE).unwrap()["spec"]["unschedulable"] == true
        });
        eventually("condition True", LONG, || {
            condition(sim).is_some_and(|c| c["status"] == "True")
        });
        sim.set_rebalance(None);
        eventually("given back", LONG, || {
            h.count("msg=\"node back in service\"") == round
        });
        eventually("condition False", LONG, || {
            condition(sim).is_some_and(|c| c["status"] == "False")
        });
    }
    eventually("the BackInService series", LONG, || {
        node_events(sim)
            .iter()
            .any(|e| e.reason == "BackInService" && e.count == 2)
    });
    settled(sim);
}

#[test]
fn repeats_become_a_series_not_new_events() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let h = Handler::start_idle(&sim, &[("REBALANCE_TTL", "0")]);
    flapping(&sim, &h);
    record_requests("events_series_v1", &sim);
    let ev = node_events(&sim);
    assert_eq!(
        reasons(&ev),
        ["RebalanceRecommendation", "Cordoned", "BackInService"]
    );
    for e in &ev {
        check_common(e, EventApi::EventsV1);
        let (count, last) = e.series.clone().expect("a series");
        assert_eq!((count, e.count, e.updates), (2, 2, 1), "{e:?}");
        assert_eq!(last.len(), 27, "MicroTime {last}");
    }
    assert!(
        ev[0].note.ends_with("no deadline; cordoning the node"),
        "{}",
        ev[0].note
    );
    let patches: Vec<Value> = sim
        .api_requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/events/"))
        .map(|r| {
            assert!(r
                .path
                .starts_with("/apis/events.k8s.io/v1/namespaces/default/events/"));
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/merge-patch+json")
            );
            assert_eq!(r.status, 200, "{}", r.body);
            serde_json::from_str(&r.body).unwrap()
        })
        .collect();
    assert_eq!(patches.len(), 3);
    for p in &patches {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["series"]);
        assert_eq!(p["series"]["count"], 2);
    }
    // The condition flipped four times, each a transition.
    let flips: Vec<(String, bool)> = status_patches(&sim)
        .iter()
        .map(|p| {
            let c = &p["status"]["conditions"][0];
            (
                c["status"].as_str().unwrap().to_string(),
                c["lastTransitionTime"].is_string(),
            )
        })
        .collect();
    let t = |s: &str| (s.to_string(), true);
    assert_eq!(flips, [t("True"), t("False"), t("True"), t("False")]);
    let c = condition(&sim).unwrap();
    assert_eq!(
        (c["reason"].as_str(), c["message"].as_str()),
        (
            Some("BackInService"),
            Some("no termination notice holds the node")
        )
    );
}

#[test]
fn core_v1_repeats_bump_count_and_last_timestamp() {
    let sim = Sim::start(Scenario::new(NODE).events_k8s_io(false)).unwrap();
    let h = Handler::start_idle(&sim, &[("REBALANCE_TTL", "0")]);
    flapping(&sim, &h);
    record_requests("events_series_core", &sim);
    let ev = node_events(&sim);
    assert_eq!(ev.len(), 3);
    for e in &ev {
        check_common(e, EventApi::Core);
        assert_eq!((e.count, e.updates), (2, 1), "{e:?}");
        assert!(e.series.is_none());
    }
    let patches: Vec<Value> = sim
        .api_requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/events/"))
        .map(|r| {
            assert!(r.path.starts_with("/api/v1/namespaces/default/events/"));
            serde_json::from_str(&r.body).unwrap()
        })
        .collect();
    assert_eq!(patches.len(), 3);
    for p in &patches {
        assert_eq!(p["count"], 2);
        assert!(p["lastTimestamp"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn the_condition_survives_a_restart_and_goes_false_when_given_back() {
    let sim = Sim::start(Scenario::new(NODE).rebalance_after(Duration::from_millis(300))).unwrap();
    let env = [("REBALANCE_TTL", "5s")];
    let mut first = Handler::start(&sim, &env);
    eventually("condition True", LONG, || {
        condition(&sim).is_some_and(|c| c["status"] == "True")
    });
    let c = condition(&sim).unwrap();
    let id = ledger_id(&sim);
    assert_eq!(c["reason"], "RebalanceRecommendation");
    assert_eq!(
        c["message"],
        format!("rebalance recommendation notice {id} (rebalance-recommendation), deadline none: node cordoned")
    );
    let set_at = c["lastTransitionTime"].as_str().unwrap().to_string();
    settled(&sim);
    first.kill();
    let before = sim.api_requests().len();
    let second = Handler::start(&sim, &env);
    second.wait_for("node carries our record of a notice", LONG);
    settled(&sim);
    let after: Vec<String> = sim.api_requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        after,
        startup_reads(),
        "the restart leaves the condition alone"
    );
    assert_eq!(
        condition(&sim).unwrap()["lastTransitionTime"],
        set_at.as_str()
    );
    // The time to live passes under the second handler: False, a new transition.
    second.wait_for("msg=\"node back in service\"", LONG);
    eventually("condition False", LONG, || {
        condition(&sim).is_some_and(|c| c["status"] == "False")
    });
    let c = condition(&sim).unwrap();
    assert_eq!(c["reason"], "BackInService");
    assert!(c["lastTransitionTime"].as_str().unwrap() >= set_at.as_str());
    // The simulator applies a request before it logs it: wait for the log, then settle and count.
    eventually("the False patch is logged", LONG, || {
        status_patches(&sim).len() >= 2
    });
    settled(&sim);
    assert_eq!(status_patches(&sim).len(), 2, "True once, False once");
    assert!(sim.node_condition(NODE, "Ready").is_some());
    record_requests("condition_restart", &sim);
}

#[test]
fn events_and_condition_can_be_turned_off() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(PodSpec::new("shop", "web-1").shutdown(Duration::from_millis(200)))
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let h = Handler::start(&sim, &[("EVENTS", "false"), ("NODE_CONDITION", "false")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    settled(&sim);
    assert!(
        sim.api_requests().iter().all(|r| !is_report(r)),
        "no Event, no discovery, no status"
    );
    assert!(sim.events().is_empty() && condition(&sim).is_none());
}

#[test]
fn a_full_event_queue_counts_pod_events_into_the_node_event_and_never_delays_the_drain() {
    // More pods than the queue holds; each shuts down in 5 s, so the drain ends after the
    // queue has drained again.
    const PODS: usize = spot_termination_notice_handler::events::QUEUE + 12;
    let mut s = Scenario::new(NODE);
    for i in 0..PODS {
        s = s.pod(
            PodSpec::new("bulk", &format!("p-{i}"))
                .replicaset("bulk")
                .grace(10)
                .shutdown(Duration::from_secs(5)),
        );
    }
    let sim = Sim::start(s.notice_after(
        Duration::from_millis(300),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    // The first Event POST is answered after 3 s: the worker is stuck on it, the queue fills.
    sim.fault(
        "POST",
        "/apis/events.k8s.io/v1/",
        1,
        FaultAction::Slow(Duration::from_secs(3)),
    );
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    let evictions: Vec<_> = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), PODS);
    assert!(evictions.iter().all(|r| r.status == 201));
    let first_event = sim
        .api_requests()
        .into_iter()
        .find(|r| r.path.contains("/events") && r.method == "POST")
        .unwrap();
    let last_eviction = evictions.iter().map(|r| r.at).max().unwrap();
    assert!(
        last_eviction < first_event.at + Duration::from_secs(3),
        "every eviction went out while the first Event was still hanging"
    );
    // One warning for the overflow, none per Event.
    assert_eq!(
        h.count("msg=\"Event queue full; Events are counted into the node's next Event\""),
        1,
        "{}",
        h.dump()
    );
    // The node's Event after the overflow says how many Events were not recorded (pod Events
    // only, here: the node's came before the overflow or after the queue drained); with the
    // ones that were, every pod is accounted for.
    eventually("the Drained Event", LONG, || {
        reasons(&node_events(&sim)).contains(&"Drained")
    });
    let ev = node_events(&sim);
    let drained = ev.iter().find(|e| e.reason == "Drained").unwrap();
    let (_, tail) = drained.note.rsplit_once(" (").expect(&drained.note);
    let lost: usize = tail
        .strip_suffix(" Events not recorded: the Event queue was full)")
        .and_then(|n| n.parse().ok())
        .expect(&drained.note);
    let recorded = sim
        .events()
        .iter()
        .filter(|e| e["reason"] == "Evicted")
        .count();
    assert_eq!(recorded + lost, PODS, "{:?}", drained.note);
    assert!(lost > 0 && recorded >= spot_termination_notice_handler::events::QUEUE - 8);
    assert!(h.dump().contains(&format!("not_recorded={lost}")));
    // The condition has its own worker: it is written all the same.
    eventually("condition True", LONG, || {
        condition(&sim).is_some_and(|c| c["status"] == "True")
    });
}

#[test]
fn a_denied_event_or_condition_is_a_warning_and_changes_nothing_else() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .deny("create", "events.events.k8s.io", "")
            .deny("patch", "nodes", "status")
            .pod(PodSpec::new("shop", "web-1").shutdown(Duration::from_millis(200)))
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    let w = h.wait_for("could not record an Event", LONG);
    assert!(w.contains("403"), "{w}");
    let w = h.wait_for("could not set the node condition; will retry", LONG);
    assert!(w.contains("403") && w.contains("retry_in_s=1"), "{w}");
    // Retried with backoff, still refused; the drain went on regardless.
    h.wait_for("retry_in_s=2", LONG);
    assert_eq!(eviction_statuses(&sim, "shop/web-1"), [201]);
    assert!(sim.events().is_empty() && condition(&sim).is_none());
}

#[test]
fn a_drain_resumed_after_a_restart_is_not_started_twice() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(PodSpec::new("shop", "web-1").shutdown(Duration::from_secs(2)))
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let mut first = Handler::start(&sim, &[]);
    eventually(
        "the eviction accepted and DrainStarted recorded",
        LONG,
        || {
            eviction_statuses(&sim, "shop/web-1") == [201]
                && sim.events().iter().any(|e| e["reason"] == "DrainStarted")
        },
    );
    assert_eq!(
        annotation(&sim.node(NODE).unwrap(), "phase").as_deref(),
        Some("draining")
    );
    first.kill();
    let second = Handler::start(&sim, &[]);
    second.wait_for(
        "resuming the drain this handler started before a restart",
        LONG,
    );
    second.wait_for("msg=\"drain finished\"", LONG);
    settled(&sim);
    let reasons: Vec<String> = sim
        .events()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "DrainStarted").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| *r == "Drained").count(),
        1,
        "{reasons:?}"
    );
    assert!(
        sim.events().iter().all(|e| e["series"].is_null()),
        "no repeats"
    );
}

#[test]
fn while_the_api_server_sheds_events_pod_events_are_folded_into_the_nodes_next_event() {
    let sim = Sim::start(mixed_node().notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    // The first Event is shed twice (API Priority and Fairness: a plain-text 429 with
    // Retry-After: 1): the Events queued behind it are sent within seconds of a shed.
    sim.fault(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/",
        2,
        FaultAction::shed(),
    );
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("the Drained Event", LONG, || {
        reasons(&node_events(&sim)).contains(&"Drained")
    });
    settled(&sim);
    // No Event on any evicted pod ...
    for p in MIXED_EVICTABLE {
        let (ns, name) = p.split_once('/').unwrap();
        let on_pod = sim.events_regarding("Pod", ns, name);
        assert!(on_pod.is_empty(), "{p}: {on_pod:?}");
    }
    // ... the node's Events say how many were folded into them, all of them in all, and the
    // phases are all there.
    let ev = node_events(&sim);
    assert_eq!(
        reasons(&ev),
        ["SpotInterruption", "Cordoned", "DrainStarted", "Drained"]
    );
    let folded: usize = ev
        .iter()
        .filter_map(|e| {
            let (_, tail) = e.note.rsplit_once(" (")?;
            let n =
                tail.strip_suffix(" pod Events not recorded while the API server shed load)")?;
            n.parse::<usize>().ok()
        })
        .sum();
    assert_eq!(
        folded,
        MIXED_EVICTABLE.len(),
        "{:?}",
        ev.iter().map(|e| &e.note).collect::<Vec<_>>()
    );
    assert_eq!(
        h.count("pod Events are folded into the node's next Event"),
        1,
        "logged once"
    );
}
