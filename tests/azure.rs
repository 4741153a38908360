//! Azure: the real binary against the fake IMDS Scheduled Events. Preempt approved after the
//! drain (once, across a restart), another VM's event ignored, Freeze as a message, Reboot
//! undone when the event is gone, the slow first call, and errors within 5 requests/s.

mod support;

use std::time::Duration;

use stnh_sim::azure::OTHER_VM;
use stnh_sim::{AzureEvent, Cloud, MetaRequest, PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(60);
const EVENTS: &str = "/metadata/scheduledevents?api-version=2020-07-01";
const COMPUTE: &str = "/metadata/instance/compute?api-version=2021-02-01";

/// An AKS spot node with quick pods, one under a budget that allows one eviction at a time.
fn aks_node() -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .cloud(Cloud::Azure)
        .handler_pod()
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(quick),
        )
        .pdb("shop", "web-pdb", &[("app", "web")], None, Some(1))
        .pod(PodSpec::new("default", "debug").shutdown(quick).grace(5))
        .pod(PodSpec::new("kube-system", "azure-cns-x1").daemonset("azure-cns"))
}

fn events_gets(sim: &Sim) -> Vec<MetaRequest> {
    sim.azure_requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == EVENTS)
        .collect()
}

/// Every request to the fake IMDS: `Metadata: true`, the paths we mean, never two
/// scheduled-events calls at once, within Azure's 5 requests per second.
fn assert_azure_requests(sim: &Sim) {
    let all = sim.azure_requests();
    assert!(!all.is_empty());
    for r in &all {
        assert_eq!(r.header("metadata"), Some("true"), "{r:?}");
        assert!(r.header("x-forwarded-for").is_none());
        assert!(
            (r.method == "GET" && (r.path == EVENTS || r.path == COMPUTE))
                || (r.method == "POST" && r.path == EVENTS),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert!(
        all.iter().filter(|r| r.path == COMPUTE).count() <= 2,
        "the compute document is read once (and by the probe)"
    );
    let gets = events_gets(sim);
    for w in gets.windows(2) {
        assert!(w[1].at >= w[0].answered, "scheduled-events calls overlap");
    }
    assert!(
        sim.azure_max_rate() <= 5,
        "{} requests in one second",
        sim.azure_max_rate()
    );
}

fn start(sim: &Sim) -> Handler {
    let h = Handler::start_idle(sim, &[]);
    eventually("polling events", LONG, || events_gets(sim).len() >= 2);
    h
}

/// The handler has polled `n` more times since `since` scheduled-events calls.
fn polls_after(sim: &Sim, since: usize, n: usize) {
    eventually("more polls", LONG, || events_gets(sim).len() >= since + n);
}

#[test]
fn preempt_is_approved_after_the_drain_and_once_across_a_restart() {
    let sim = Sim::start(aks_node()).unwrap();
    let mut h = start(&sim);
    let line = h.wait_for("cloud chosen", LONG);
    assert!(
        line.contains("cloud=azure") && line.contains("azure:///"),
        "{line}"
    );
    let id = sim.azure_add_event(AzureEvent::new("Preempt", Duration::from_secs(60)));
    let seen = h.wait_for("spot interruption notice received", LONG);
    assert!(
        seen.contains(&format!("notice=azure/{id}")) && seen.contains("deadline_given=true"),
        "{seen}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("approved", LONG, || !sim.azure_approvals().is_empty());
    eventually("the approval is recorded on the node", LONG, || {
        annotation(&sim.node(NODE).unwrap(), "notices").is_some_and(|n| n.contains("acked"))
    });

    let approvals = sim.azure_approvals();
    assert_api_head(&sim);
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].ids, vec![id.clone()]);
    assert_eq!(approvals[0].known, vec![id.clone()]);
    let post = sim
        .azure_requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&post.body),
        format!("{{\"StartRequests\":[{{\"EventId\":\"{id}\"}}]}}")
    );
    assert_eq!(post.header("content-type"), Some("application/json"));
    // Not before the drain was over: after the last eviction and after the summary.
    let reqs = sim.api_requests();
    let last_eviction = reqs
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .map(|r| r.at)
        .max()
        .unwrap();
    let summary = reqs
        .iter()
        .filter(|r| {
            r.method == "PATCH" && r.body.contains("spot-termination-notice-handler/summary")
        })
        .map(|r| r.at)
        .min()
        .unwrap();
    assert!(post.at > last_eviction, "approved before the last eviction");
    assert!(post.at > summary, "approved before the drain's summary");
    // The deadline is NotBefore.
    let node = sim.node(NODE).unwrap();
    assert_held(&node, "spot-interruption", "drained");
    let ev = sim.azure_events();
    assert_eq!(ev[0].status, "Started", "the approval started it");

    // A restart: the record says it was approved; no second POST.
    h.kill();
    let before = events_gets(&sim).len();
    let h2 = Handler::start(&sim, &[]);
    h2.wait_for("node already drained for this notice", LONG);
    polls_after(&sim, before, 4);
    record_requests("azure_preempt_approved", &sim);
    assert_eq!(sim.azure_approvals().len(), 1, "approved once");
    assert_held(&sim.node(NODE).unwrap(), "spot-interruption", "drained");
    assert_azure_requests(&sim);
}

#[test]
fn events_for_another_vm_are_ignored_and_an_incarnation_is_read_once() {
    let sim = Sim::start(aks_node()).unwrap();
    let h = start(&sim);
    sim.azure_add_event(AzureEvent::new("Preempt", Duration::from_secs(30)).resources(&[OTHER_VM]));
    // Ours, but of a type we do not know: warned about once, however often it is polled.
    sim.azure_add_event(AzureEvent::new("Hibernate", Duration::from_secs(600)));
    let n = events_gets(&sim).len();
    polls_after(&sim, n, 5);
    record_requests("azure_other_vm", &sim);
    assert_eq!(
        h.count("ignoring a scheduled event that cannot be read"),
        1,
        "{}",
        h.dump()
    );
    assert_eq!(h.count("notice received"), 0, "{}", h.dump());
    assert!(cordon_patches(&sim).is_empty());
    assert!(sim.api_requests().iter().all(|r| r.method == "GET"));
    assert!(sim.azure_approvals().is_empty());
    let node = sim.node(NODE).unwrap();
    assert_ne!(node["spec"]["unschedulable"], true);
    assert!(our_taints(&node).is_empty());
    assert_azure_requests(&sim);
}

#[test]
fn freeze_is_a_message_only() {
    let sim = Sim::start(aks_node()).unwrap();
    let h = start(&sim);
    let id = sim.azure_add_event(AzureEvent::new("Freeze", Duration::from_secs(900)));
    let seen = h.wait_for("notice received; message only", LONG);
    assert!(seen.contains(&format!("notice=azure/{id}")), "{seen}");
    eventually("the message", LONG, || {
        sim.slack_messages()
            .iter()
            .any(|m| m.body.contains("Freeze"))
    });
    sim.azure_remove_event(&id);
    let n = events_gets(&sim).len();
    polls_after(&sim, n, 3);
    record_requests("azure_freeze_notify", &sim);
    assert!(cordon_patches(&sim).is_empty(), "never cordoned");
    assert!(sim.azure_approvals().is_empty(), "a message is not a drain");
    let node = sim.node(NODE).unwrap();
    assert_ne!(node["spec"]["unschedulable"], true);
    assert!(our_taints(&node).is_empty());
    assert_eq!(sim.pods_on(NODE).len(), 5);
    assert_eq!(sim.slack_messages().len(), 1);
    assert_azure_requests(&sim);
}

#[test]
fn reboot_drains_is_approved_and_is_undone_once_the_event_is_gone() {
    let sim = Sim::start(aks_node()).unwrap();
    let h = start(&sim);
    let id = sim.azure_add_event(AzureEvent::new("Reboot", Duration::from_secs(900)));
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("approved", LONG, || sim.azure_approvals().len() == 1);
    let node = sim.node(NODE).unwrap();
    assert_held(&node, "scheduled-maintenance", "drained");
    // The reboot happens, the event is gone: the node is back in service.
    assert!(sim.azure_remove_event(&id));
    h.wait_for("node back in service", LONG);
    eventually("node-controller settled", LONG, || {
        sim.node(NODE).unwrap()["spec"]["unschedulable"] != true
    });
    record_requests("azure_reboot_undone", &sim);
    assert_released(&sim.node(NODE).unwrap());
    eventually("the back-in-service message", LONG, || {
        sim.slack_messages()
            .iter()
            .any(|m| m.body.contains("back in service"))
    });
    assert_eq!(sim.azure_approvals().len(), 1);
    assert_azure_requests(&sim);
}

#[test]
fn the_slow_first_call_delays_neither_start_up_nor_piles_up_requests() {
    let sim = Sim::start(aks_node().azure_first_call_delay(Duration::from_secs(10))).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    h.wait_for("msg=watching", LONG);
    // Start-up is done (identity read, watchers running) while the first call is still held.
    assert_eq!(sim.azure_count("/metadata/scheduledevents"), 0);
    assert!(sim.azure_count(COMPUTE) >= 1);
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("identified instance") && l.contains("instance=aks-spotpool")),
        "{}",
        h.dump()
    );
    // An event that appears during the activation is acted on once the service answers.
    sim.azure_add_event(AzureEvent::new("Preempt", Duration::from_secs(60)));
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("azure_slow_first_call", &sim);
    let gets = events_gets(&sim);
    assert!(
        gets[0].held() >= Duration::from_secs(9),
        "{:?}",
        gets[0].held()
    );
    assert!(gets[0].note.contains("slow first call"), "{}", gets[0].note);
    assert!(gets[1].at >= gets[0].answered, "nothing piled up behind it");
    assert_azure_requests(&sim);
}

#[test]
fn gone_rate_limited_and_server_errors_are_retried_within_5_requests_a_second() {
    let sim = Sim::start(aks_node().azure_rate_limit(5)).unwrap();
    let h = start(&sim);
    sim.azure_gone_for(Duration::from_secs(3));
    h.wait_for("HTTP 410 Gone", LONG);
    eventually("recovered from 410", LONG, || {
        h.count("metadata polling recovered") >= 1
    });
    sim.azure_fail_next(2, 500);
    h.wait_for("expected 200, got HTTP 500", LONG);
    eventually("recovered from 500", LONG, || {
        h.count("metadata polling recovered") >= 2
    });
    sim.azure_fail_next(2, 429);
    h.wait_for("HTTP 429 Too Many Requests", LONG);
    eventually("recovered again", LONG, || {
        h.count("metadata polling recovered") >= 3
    });
    // Still acting on events, approval included.
    sim.azure_add_event(AzureEvent::new("Terminate", Duration::from_secs(60)));
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("approved", LONG, || sim.azure_approvals().len() == 1);
    record_requests("azure_errors", &sim);
    let gets = events_gets(&sim);
    let gone: Vec<_> = gets.iter().filter(|r| r.status == 410).collect();
    assert!(gone.len() >= 2, "410 retried: {}", gone.len());
    for w in gone.windows(2) {
        assert!(w[1].at.duration_since(w[0].answered) >= Duration::from_millis(900));
    }
    assert!(!sim.azure_rate_exceeded());
    assert!(
        sim.azure_requests()
            .iter()
            .all(|r| r.note != "rate limited"),
        "never over the limit"
    );
    assert_held(&sim.node(NODE).unwrap(), "termination", "drained");
    assert_azure_requests(&sim);
}
