//! End to end: the real binary against the simulator (fake IMDS, fake TLS API server, Slack
//! sink). Each test asserts the exact requests made and the final cluster state.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use stnh_sim::{ImdsMode, PodSpec, Scenario, Sim, SlackMode};
use support::*;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn notice_cordons_drains_and_reports_with_exactly_the_expected_requests() {
    let sim = Sim::start(mixed_node().imds_mode(ImdsMode::Required).notice_after(
        Duration::from_millis(800),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let handler_pod = sim.handler_pod_name().unwrap().to_string();
    let uids: std::collections::HashMap<(String, String), String> = sim
        .pods()
        .iter()
        .map(|p| {
            let m = &p["metadata"];
            (
                (
                    m["namespace"].as_str().unwrap().to_string(),
                    m["name"].as_str().unwrap().to_string(),
                ),
                m["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // No NODE_NAME: the handler finds its node through its own pod, as the seed did.
    // VERBOSE=1 logs when the notice message is queued.
    let h = Handler::start(&sim, &[("NODE_NAME", ""), ("VERBOSE", "1")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("the drained summary reached Slack", LONG, || {
        sim.slack_messages().len() == 2
    });
    std::thread::sleep(Duration::from_millis(1500)); // idle: nothing more may happen
    let all = sim.api_requests();
    record_requests("notice_cordons_drains_and_reports", &sim);

    // Every request authenticated with the service-account token; every answer a success.
    assert!(
        all.iter()
            .all(|r| r.token.as_deref() == Some(sim.token().as_str())),
        "token on every request"
    );
    assert!(
        all.iter().all(|r| (200..300).contains(&r.status)),
        "{all:#?}"
    );
    // Events and the Node condition come from a background worker (tests/events.rs). The
    // taints come a second after the cordon, with a read of the node first, among the
    // evictions or the waiting LISTs; the rest is exactly this sequence.
    let taint_patch = assert_taints_follow_the_cordon(&sim);
    let node_path = format!("/api/v1/nodes/{NODE}");
    let line = |r: &stnh_sim::ApiRequest| format!("{} {}", r.method, r.path);
    let mut reqs = action_requests(&sim);
    let cordon_at = reqs
        .iter()
        .position(|r| r.method == "PATCH" && r.path == node_path)
        .unwrap();
    let taints_step = |r: &stnh_sim::ApiRequest| {
        r.path == node_path && (r.method == "GET" || r.body.contains("\"taints\""))
    };
    let taints: Vec<String> = reqs[cordon_at + 1..]
        .iter()
        .filter(|r| taints_step(r))
        .map(line)
        .collect();
    assert_eq!(
        taints,
        [format!("GET {node_path}"), format!("PATCH {node_path}")]
    );
    let after_cordon = reqs.split_off(cordon_at + 1);
    reqs.extend(after_cordon.into_iter().filter(|r| !taints_step(r)));

    // Start-up, cordon, list; then one eviction per selected pod; then waiting LISTs; then
    // the record.
    let list = format!("GET /api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}&limit=500");
    let head: Vec<String> = reqs.iter().take(5).map(line).collect();
    assert_eq!(
        head,
        [
            format!("GET /api/v1/namespaces/kube-system/pods/{handler_pod}"),
            format!("GET /api/v1/nodes/{NODE}"),
            "GET /api/v1".to_string(),
            format!("PATCH /api/v1/nodes/{NODE}"),
            list.clone(),
        ]
    );
    let evictions: Vec<_> = reqs[5..5 + MIXED_EVICTABLE.len()].iter().collect();
    let evicted: BTreeSet<String> = evictions
        .iter()
        .map(|r| {
            assert_eq!(r.method, "POST");
            pod_of(&r.path).unwrap()
        })
        .collect();
    assert_eq!(
        evicted,
        MIXED_EVICTABLE
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    let tail = &reqs[5 + MIXED_EVICTABLE.len()..];
    let (last, waits) = tail.split_last().unwrap();
    assert!(
        !waits.is_empty() && waits.iter().all(|r| line(r) == list),
        "only LISTs while waiting: {:?}",
        tail.iter().map(line).collect::<Vec<_>>()
    );
    assert_eq!(line(last), format!("PATCH /api/v1/nodes/{NODE}"));

    // The cordon: one merge patch without precondition, with the load-balancer label and our
    // annotations; then the taint, with the resourceVersion of the node as read before it.
    let cordon = &reqs[3];
    assert_eq!(
        cordon.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let patch: serde_json::Value = serde_json::from_str(&cordon.body).unwrap();
    assert_eq!(patch["spec"]["unschedulable"], true);
    assert!(
        patch["metadata"].get("resourceVersion").is_none(),
        "{patch}"
    );
    assert!(patch["spec"].get("taints").is_none(), "{patch}");
    assert_eq!(
        patch["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"],
        "spot-termination-notice-handler"
    );
    assert_eq!(
        patch["metadata"]["annotations"]["spot-termination-notice-handler/phase"],
        "draining"
    );
    assert_eq!(
        patch["metadata"]["annotations"]["spot-termination-notice-handler/before"],
        r#"{"unschedulable":false,"lbLabel":null}"#
    );
    let taint: serde_json::Value = serde_json::from_str(&taint_patch.body).unwrap();
    assert!(taint["metadata"]["resourceVersion"].is_string(), "{taint}");
    // The node controller's taint for the cordon was there by then: kept, ours added.
    assert_eq!(
        taint_keys(&taint),
        [
            "node.kubernetes.io/unschedulable",
            "spot-termination-notice-handler/spot-interruption"
        ],
        "{taint}"
    );
    assert!(taint["spec"]["taints"][1]["value"]
        .as_str()
        .unwrap()
        .starts_with("aws-spot.terminate.20"));
    // Evictions: policy/v1, with the pod's UID as a precondition, and the pod's own grace
    // when it fits before the report time (55 s of the 60 s): web-2 (60 s) gets what is left.
    for r in &evictions {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["apiVersion"], "policy/v1");
        assert_eq!(body["kind"], "Eviction");
        let grace = body["deleteOptions"]["gracePeriodSeconds"]
            .as_i64()
            .unwrap();
        let pod = pod_of(&r.path).unwrap();
        let own = match pod.as_str() {
            "shop/web-2" => 60,
            "default/debug" => 5,
            _ => 30,
        };
        if own <= 50 {
            assert_eq!(grace, own, "{pod}: its own grace fits");
        } else {
            assert!((50..=55).contains(&grace), "{pod}: grace {grace}");
        }
        let (ns, name) = pod.split_once('/').unwrap();
        assert_eq!(
            body["deleteOptions"]["preconditions"]["uid"].as_str(),
            Some(uids[&(ns.to_string(), name.to_string())].as_str()),
            "{pod}: only the pod we saw"
        );
        assert_eq!(
            body["metadata"]["name"].as_str().unwrap(),
            pod.split('/').nth(1).unwrap()
        );
    }

    // Final state: cordoned, tainted, labelled, annotated as drained; only DaemonSet, mirror
    // and own pod remain.
    let node = sim.node(NODE).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    let taints = taint_keys(&node);
    assert!(
        taints
            .iter()
            .any(|k| k == "spot-termination-notice-handler/spot-interruption")
            && taints
                .iter()
                .any(|k| k == "node.kubernetes.io/unschedulable"),
        "{taints:?}"
    );
    assert_eq!(
        node["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"],
        "spot-termination-notice-handler"
    );
    assert_eq!(annotation(&node, "phase").as_deref(), Some("drained"));
    assert!(annotation(&node, "notice")
        .unwrap()
        .starts_with("aws-spot/terminate/"));
    assert!(annotation(&node, "summary")
        .unwrap()
        .starts_with("evicted=6 forced=0 failed=0"));
    let left: BTreeSet<String> = sim
        .pods_on(NODE)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        ["fluentd-x1", "kube-proxy-node-a", handler_pod.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    // Slack: the notice (seed wording) first, the summary second.
    let slack = sim.slack_messages();
    let first = slack[0].text().unwrap();
    assert!(first.starts_with("Spot Termination (sim-cluster): node-a, Instance: i-0abc123def4567890, Instance Type: m5.large, AZ: us-east-1a, Action: terminate, Deadline: "), "{first}");
    let second = slack[1].text().unwrap();
    assert!(
        second.contains("node-a drained: 6 evicted, 0 forced at the deadline, 0 failed"),
        "{second}"
    );
    // The Slack worker sends on its own thread, so when its POST arrives is not ordered
    // with the evictions; what is: the notice message is queued once the cordon's patch has
    // recorded it as sent (so a restart never sends it twice), before the drain starts.
    let queued = h.position("queued Slack message").unwrap();
    let cordoned = h.position("msg=\"cordoned node\"").unwrap();
    let draining = h.position("msg=\"draining node\"").unwrap();
    assert!(
        cordoned < queued && queued < draining && h.logs()[queued].contains("message=notice"),
        "the notice message is queued after the cordon, before the drain:\n{}",
        h.dump()
    );

    // IMDSv2: a token first, then every GET with a valid token.
    let imds = sim.imds_requests();
    assert_eq!(
        (
            imds[0].method.as_str(),
            imds[0].path.as_str(),
            imds[0].ttl_header.as_deref()
        ),
        ("PUT", "/latest/api/token", Some("21600"))
    );
    assert!(
        imds.iter()
            .skip(1)
            .all(|r| r.method == "GET" && r.token_valid),
        "{imds:#?}"
    );
    assert_eq!(
        imds.iter().filter(|r| r.method == "PUT").count(),
        1,
        "the token is reused"
    );
    // API connections are kept open and reused: one for the start-up calls (closed while
    // idle), then at most one per concurrent eviction, and one for the Events worker. The metadata service is reached through
    // minreq, which keeps no connection: one per request.
    // The Events and condition worker shares the pool, and needs a connection of its own when
    // every eviction holds one (under load: the CI flake of a bound without it).
    assert!(
        sim.tls_connections() <= 2 + MIXED_EVICTABLE.len(),
        "{} TLS connections for {} requests",
        sim.tls_connections(),
        reqs.len()
    );
    assert_eq!(
        sim.imds_connections(),
        imds.len(),
        "one connection per metadata request"
    );
    // The webhook URL (the secret) appears in no log line.
    assert!(!h.dump().contains("XXXXSECRETXXXX"));
}

#[test]
fn budget_refusal_is_retried_until_the_budget_allows() {
    // web-1/web-2 here, web-3 elsewhere; the budget allows one disruption. The second
    // eviction is refused until the first pod's replacement is Ready (1 s), then retried ~5 s later.
    let sim = Sim::start(
        Scenario::new(NODE)
            .replacement_ready_after(Some(Duration::from_secs(1)))
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web")
                    .labels(&[("app", "web")])
                    .shutdown(Duration::from_millis(200)),
            )
            .pod(
                PodSpec::new("shop", "web-2")
                    .replicaset("web")
                    .labels(&[("app", "web")])
                    .shutdown(Duration::from_millis(200)),
            )
            .pod(
                PodSpec::new("shop", "web-3")
                    .replicaset("web")
                    .labels(&[("app", "web")])
                    .node("node-b"),
            )
            .pdb("shop", "web-pdb", &[("app", "web")], Some(2), None)
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(90),
            ),
    )
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("budget_refusal_is_retried", &sim);
    let mut statuses = [
        eviction_statuses(&sim, "shop/web-1"),
        eviction_statuses(&sim, "shop/web-2"),
    ];
    statuses.sort();
    assert_eq!(statuses[0], vec![201], "one eviction is allowed at once");
    assert_eq!(
        statuses[1].first(),
        Some(&429),
        "the other is refused first"
    );
    assert_eq!(statuses[1].last(), Some(&201), "and accepted on a retry");
    assert!(statuses[1][..statuses[1].len() - 1]
        .iter()
        .all(|s| *s == 429));
    assert!(
        sim.api_requests().iter().all(|r| r.method != "DELETE"),
        "no forced deletion with time left"
    );
    assert!(h.count("blocked by disruption budget") >= 1);
    assert!(sim.pods_on(NODE).is_empty());
}

/// A budget that never allows the eviction, a 12 s deadline and a 4 s reserve (less than
/// 10 s would be an emergency, where budgets are not waited for at all).
fn blocked_scenario() -> Scenario {
    let checkout = |name: &str| {
        PodSpec::new("shop", name)
            .replicaset("checkout")
            .labels(&[("app", "checkout")])
            .grace(30)
            .shutdown(Duration::from_millis(500))
    };
    Scenario::new(NODE)
        .replacement_ready_after(None)
        .pod(checkout("checkout-1"))
        .pod(checkout("checkout-2"))
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web")
                .shutdown(Duration::from_millis(200)),
        )
        .pdb(
            "shop",
            "checkout-pdb",
            &[("app", "checkout")],
            None,
            Some(0),
        )
        .notice_after(
            Duration::from_millis(500),
            "terminate",
            Duration::from_secs(12),
        )
}

#[test]
fn blocked_pods_are_deleted_at_force_at_with_the_grace_left() {
    let sim = Sim::start(blocked_scenario()).unwrap();
    let uids: std::collections::HashMap<&str, String> = ["shop/checkout-1", "shop/checkout-2"]
        .into_iter()
        .map(|p| {
            (
                p,
                sim.pod("shop", &p[5..]).unwrap()["metadata"]["uid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let h = Handler::start(&sim, &[("DRAIN_RESERVE", "4s")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("blocked_pods_are_deleted", &sim);
    let deadline = sim.started().1 + Duration::from_millis(500) + Duration::from_secs(12);
    let reqs = sim.api_requests();
    for pod in ["shop/checkout-1", "shop/checkout-2"] {
        let evictions = eviction_statuses(&sim, pod);
        assert!(
            !evictions.is_empty() && evictions.iter().all(|s| *s == 429),
            "{pod}: {evictions:?}"
        );
        let deletes: Vec<_> = reqs
            .iter()
            .filter(|r| r.method == "DELETE" && pod_of(&r.path).as_deref() == Some(pod))
            .collect();
        assert_eq!(deletes.len(), 1, "{pod}: one DELETE");
        let d = deletes[0];
        assert_eq!(d.status, 200);
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        let grace = body["gracePeriodSeconds"].as_i64().unwrap();
        // A 12 s window is short: budgets get a sixth of it (2 s, drain.rs budget_time), then
        // the pod gets what is left until the report time (12 s − 1.2 s − 2 s).
        let appeared = sim.started().1 + Duration::from_millis(500);
        assert!(
            d.time >= appeared + Duration::from_millis(1800)
                && d.time <= appeared + Duration::from_secs(4),
            "{pod}: deleted {:?} after the notice appeared",
            d.time.duration_since(appeared).unwrap_or_default()
        );
        assert!(
            (7..=9).contains(&grace),
            "{pod}: forced grace {grace}: the time left before the report"
        );
        assert!(
            d.time + Duration::from_secs(grace as u64) < deadline,
            "{pod}: stops before the deadline"
        );
        assert_eq!(
            body["preconditions"]["uid"].as_str(),
            Some(uids[pod].as_str()),
            "{pod}: DELETE only the pod we saw"
        );
        assert!(d.time < deadline, "{pod}: deleted after the deadline");
    }
    assert_eq!(eviction_statuses(&sim, "shop/web-1"), vec![201]);
    eventually(
        "nothing left on the node at the deadline",
        Duration::from_secs(10),
        || sim.pods_on(NODE).is_empty(),
    );
    assert!(SystemTime::now() <= deadline + Duration::from_secs(2));
    assert!(
        h.dump().contains("evicted=1 forced=2 failed=0"),
        "{}",
        h.dump()
    );
    eventually("summary in Slack", LONG, || {
        sim.slack_messages().iter().any(|m| {
            m.text()
                .is_some_and(|t| t.contains("1 evicted, 2 forced at the deadline, 0 failed"))
        })
    });
}

#[test]
fn with_force_delete_off_blocked_pods_stay_and_are_reported_failed() {
    let sim = Sim::start(blocked_scenario()).unwrap();
    let h = Handler::start(&sim, &[("DRAIN_RESERVE", "4s"), ("FORCE_DELETE", "false")]);
    h.wait_for("msg=\"drain finished with pods left\"", LONG);
    record_requests("force_delete_off", &sim);
    assert!(sim.api_requests().iter().all(|r| r.method != "DELETE"));
    let left: BTreeSet<String> = sim
        .pods_on(NODE)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        ["checkout-1", "checkout-2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(h.dump().contains("failed=2"), "{}", h.dump());
    eventually("failure summary in Slack", LONG, || {
        sim.slack_messages().iter().any(|m| {
            m.text()
                .is_some_and(|t| t.contains("2 failed") && t.contains("shop/checkout-1"))
        })
    });
}

#[test]
fn a_401_makes_the_handler_reread_its_rotated_token() {
    let sim = Sim::start(mixed_node()).unwrap();
    // Without the reports, whose worker would race the drain to the first 401.
    let h = Handler::start_idle(&sim, &[("EVENTS", "false"), ("NODE_CONDITION", "false")]);
    let old = sim.token();
    sim.rotate_token();
    let new = sim.token();
    assert_ne!(old, new);
    // The notice only once the token has rotated: the cordon is the first request to use it.
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("token_reread", &sim);
    let reqs = sim.api_requests();
    let first_401 = reqs
        .iter()
        .position(|r| r.status == 401)
        .expect("the old token was refused");
    assert_eq!(reqs[first_401].token.as_deref(), Some(old.as_str()));
    let retry = &reqs[first_401 + 1];
    assert_eq!(
        (retry.method.as_str(), retry.path.as_str()),
        (
            reqs[first_401].method.as_str(),
            reqs[first_401].path.as_str()
        ),
        "the same request is retried"
    );
    assert_eq!(retry.token.as_deref(), Some(new.as_str()));
    assert!((200..300).contains(&retry.status));
    assert_eq!(
        reqs.iter().filter(|r| r.status == 401).count(),
        1,
        "one 401, then the new token everywhere"
    );
    assert!(reqs[first_401 + 1..]
        .iter()
        .all(|r| r.token.as_deref() == Some(new.as_str())));
    assert!(h.count("re-reading the service-account token") == 1);
    assert_eq!(sim.pods_on(NODE).len(), 3);
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_restart_mid_drain_resumes_without_duplicate_messages_or_evictions() {
    // The web pods stop only when their 10 s grace runs out, so they are still terminating
    // when the second handler looks; checkout-1's budget never allows its eviction.
    let web = |name: &str| {
        PodSpec::new("shop", name)
            .replicaset("web")
            .grace(10)
            .shutdown(Duration::from_secs(3600))
    };
    let sim = Sim::start(
        Scenario::new(NODE)
            .replacement_ready_after(None)
            .pod(web("web-1"))
            .pod(web("web-2"))
            .pod(
                PodSpec::new("shop", "checkout-1")
                    .replicaset("checkout")
                    .labels(&[("app", "checkout")]),
            )
            .pdb(
                "shop",
                "checkout-pdb",
                &[("app", "checkout")],
                Some(1),
                None,
            )
            .notice_after(
                Duration::from_millis(500),
                "terminate",
                Duration::from_secs(20),
            ),
    )
    .unwrap();
    // 20 s: budgets are waited for until 12 s, the report goes out at 18 s.
    let env = [("DRAIN_RESERVE", "8s")];
    let mut first = Handler::start(&sim, &env);
    // The state the crash must hit: both web evictions accepted, checkout refused.
    eventually(
        "web pods evicted and checkout refused, by the first handler",
        LONG,
        || {
            eviction_statuses(&sim, "shop/web-1") == [201]
                && eviction_statuses(&sim, "shop/web-2") == [201]
                && eviction_statuses(&sim, "shop/checkout-1").first() == Some(&429)
        },
    );
    first.kill(); // a crash (SIGKILL) mid-drain: web pods terminating, checkout blocked
    eventually("the notice message was delivered", LONG, || {
        sim.slack_messages().len() == 1
    });
    let web_terminating = || {
        ["web-1", "web-2"].iter().all(|n| {
            sim.pod("shop", n)
                .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string())
        })
    };
    assert!(web_terminating(), "the web pods are terminating");

    let second = Handler::start(&sim, &env);
    second.wait_for(
        "resuming the drain this handler started before a restart",
        LONG,
    );
    second.wait_for("msg=\"drain finished\"", LONG);
    eventually("the summary was delivered", LONG, || {
        sim.slack_messages().len() == 2
    });
    assert!(
        second.count("pod already terminating; waiting for it") == 2,
        "{}",
        second.dump()
    );
    for pod in ["shop/web-1", "shop/web-2"] {
        assert_eq!(
            eviction_statuses(&sim, pod),
            vec![201],
            "{pod} evicted exactly once"
        );
    }
    assert!(sim
        .api_requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.path.ends_with("/checkout-1")));
    assert!(sim.slack_messages()[1].text().unwrap().contains("drained"));
    assert!(sim.pods_on(NODE).is_empty());

    // A third start while the notice is still there: nothing to do, no message, no patch.
    settled(&sim);
    let before = sim.api_requests().len();
    let polls = sim.imds_count("/latest/meta-data/spot/instance-action");
    let third = Handler::start(&sim, &env);
    third.wait_for("node already drained for this notice", LONG);
    // It has seen the notice again and decided (nothing): a few polls later.
    eventually("three polls by the third handler", LONG, || {
        sim.imds_count("/latest/meta-data/spot/instance-action") >= polls + 3
    });
    record_requests("restart_resume", &sim);
    assert_eq!(sim.slack_messages().len(), 2);
    let after: Vec<String> = sim.api_requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        after,
        startup_reads(),
        "only the start-up reads (no Event, no condition write)"
    );
}

#[test]
fn a_hanging_slack_webhook_does_not_hold_up_the_drain() {
    let sim = Sim::start(mixed_node().slack_mode(SlackMode::Hang).notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[("VERBOSE", "1")]);
    h.wait_for("msg=\"drain finished\"", LONG);
    let cordon = action_requests(&sim)
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let slack = sim.slack_messages();
    assert!(
        !slack.is_empty() && slack[0].status == 0,
        "the webhook is still hanging: {slack:?}"
    );
    assert!(
        slack[0].at >= cordon.at,
        "the notice message went out once the cordon recorded it"
    );
    h.wait_for("Slack message not delivered; retrying", LONG);
    let finished = h.position("msg=\"drain finished\"").unwrap();
    let slack_timeout = h.position("Slack message not delivered").unwrap();
    assert!(
        finished < slack_timeout,
        "the drain finished before the first Slack attempt even timed out:\n{}",
        h.dump()
    );
    let slack = sim.slack_messages();
    assert!(
        !slack.is_empty() && slack.iter().all(|m| m.status == 0),
        "the webhook is hanging: {slack:?}"
    );
    assert!(
        h.position("queued Slack message").unwrap() > h.position("msg=\"cordoned node\"").unwrap(),
        "the notice message was queued once the cordon recorded it"
    );
    let line = h.wait_for("Slack message not delivered; retrying", LONG);
    assert!(line.contains("timed out"), "{line}");
    assert!(
        !h.dump().contains("XXXXSECRETXXXX"),
        "no webhook URL in logs"
    );
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn an_old_cluster_gets_policy_v1beta1_evictions() {
    let sim = Sim::start(mixed_node().eviction_version("v1beta1").notice_after(
        Duration::from_millis(500),
        "terminate",
        Duration::from_secs(60),
    ))
    .unwrap();
    let h = Handler::start(&sim, &[]);
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("v1beta1", &sim);
    let evictions: Vec<_> = sim
        .api_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .collect();
    assert_eq!(evictions.len(), MIXED_EVICTABLE.len());
    for r in evictions {
        assert_eq!(r.status, 201);
        assert!(
            r.body.contains("\"apiVersion\":\"policy/v1beta1\""),
            "{}",
            r.body
        );
    }
}

#[test]
fn api_faults_are_retried_within_the_deadline() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    sim.fail_next("PATCH", "/api/v1/nodes/", 1, 503, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"ServiceUnavailable\",\"code\":503}");
    sim.fail_next("GET", "/api/v1/pods", 1, 500, "boom");
    sim.fail_next(
        "POST",
        "/api/v1/namespaces/shop/pods/web-1/eviction",
        2,
        429,
        "Too many requests, please try again later.",
    );
    sim.drop_next("POST", "/api/v1/namespaces/default/pods/debug/eviction", 1);
    // The notice only once the faults are in place.
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    h.wait_for("msg=\"drain finished\"", LONG);
    record_requests("api_faults", &sim);
    assert!(
        h.dump().contains("evicted=6 forced=0 failed=0"),
        "{}",
        h.dump()
    );
    assert_eq!(eviction_statuses(&sim, "shop/web-1"), vec![429, 429, 201]);
    assert_eq!(eviction_statuses(&sim, "default/debug").last(), Some(&201));
    let node = sim.node(NODE).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_alive_and_polling(&sim, &h);
}
