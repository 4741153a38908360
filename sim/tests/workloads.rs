//! Deployments, ReplicaSets, rolling restarts, priorities and availability accounting.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use stnh_sim::workloads::{Change, WorkloadEvent};
use stnh_sim::{PodSpec, Scenario, Sim, Strategy};

const READY: Duration = Duration::from_millis(300);

fn deploy(replicas: i64, strategy: Strategy) -> Scenario {
    Scenario::new(NODE)
        .replacement_ready_after(Some(READY))
        .deployment(
            "shop",
            "web",
            replicas,
            strategy,
            &[("app", "web")],
            PodSpec::new("", "")
                .shutdown(Duration::from_millis(200))
                .grace(30),
        )
}

/// What `kubectl rollout restart` sends (checked against real kubectl, see sim/README.md).
fn rollout_restart(sim: &Sim) -> stnh_sim::testclient::Response {
    smp(
        sim,
        "/apis/apps/v1/namespaces/shop/deployments/web",
        &json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T10:00:00Z"}}}}}),
    )
}

fn name(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap().to_string()
}

fn pod_events<'a>(log: &'a [WorkloadEvent], rs: &str) -> Vec<&'a WorkloadEvent> {
    log.iter()
        .filter(|e| e.replicaset.as_deref() == Some(rs) && e.name != rs)
        .collect()
}

#[test]
fn deployment_objects_owner_references_and_priorities() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .deployment(
                "kube-system",
                "coredns",
                2,
                Strategy::rolling_update(0, 1),
                &[("k8s-app", "kube-dns")],
                PodSpec::new("", "").priority_class("system-cluster-critical"),
            )
            .deployment(
                "shop",
                "web",
                3,
                Strategy::recreate(),
                &[("app", "web")],
                PodSpec::new("", "")
                    .priority_class("shop-high")
                    .priority(1000),
            )
            .pod(PodSpec::new("kube-system", "csi").priority_class("system-node-critical"))
            .pod(PodSpec::new("shop", "solo"))
            .pod(PodSpec::new("shop", "legacy-1").replicaset("legacy-5f6d7c"))
            .pod(PodSpec::new("shop", "legacy-2").replicaset("legacy-5f6d7c")),
    )
    .unwrap();
    let d = get(
        &sim,
        "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
    )
    .json();
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["priorityClassName"],
        "system-cluster-critical"
    );
    let rss = sim.replicasets_of("kube-system", "coredns");
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let rs_name = name(rs);
    assert!(rs_name.starts_with("coredns-"));
    let owner = &rs["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["name"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("Deployment"), Some("coredns"), Some(true))
    );
    assert_eq!(owner["uid"], d["metadata"]["uid"]);
    assert_eq!(rs["status"]["readyReplicas"], 2);
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs_name, format!("coredns-{hash}"));
    let r = get(
        &sim,
        &format!("/apis/apps/v1/namespaces/kube-system/replicasets/{rs_name}"),
    );
    assert_eq!(r.status, 200);
    let pods = sim.deployment_pods("kube-system", "coredns");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let o = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (o["kind"].as_str(), o["controller"].as_bool()),
            (Some("ReplicaSet"), Some(true))
        );
        assert_eq!(o["uid"], rs["metadata"]["uid"]);
        assert_eq!(p["spec"]["nodeName"], NODE);
        assert_eq!(p["spec"]["priority"], 2_000_000_000);
        assert_eq!(p["spec"]["priorityClassName"], "system-cluster-critical");
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
    }
    let web = sim.deployment_pods("shop", "web");
    assert_eq!(web.len(), 3);
    assert_eq!(web[0]["spec"]["priority"], 1000);
    assert_eq!(web[0]["spec"]["priorityClassName"], "shop-high");
    assert_eq!(
        sim.pod("kube-system", "csi").unwrap()["spec"]["priority"],
        2_000_001_000
    );
    assert_eq!(sim.pod("shop", "solo").unwrap()["spec"]["priority"], 0);
    assert!(sim.pod("shop", "solo").unwrap()["spec"]
        .get("priorityClassName")
        .is_none());
    // Pods built with .replicaset() get a ReplicaSet object of their own (no Deployment).
    let legacy = sim.replicaset("shop", "legacy-5f6d7c").unwrap();
    assert_eq!(legacy["spec"]["replicas"], 2);
    assert!(legacy["metadata"].get("ownerReferences").is_none());
    assert_eq!(
        legacy["metadata"]["uid"],
        sim.pod("shop", "legacy-1").unwrap()["metadata"]["ownerReferences"][0]["uid"]
    );
    // Lists, label selectors and kubectl's table.
    let l = get(&sim, "/apis/apps/v1/deployments?labelSelector=app%3Dweb").json();
    assert_eq!(l["kind"], "DeploymentList");
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let l = get(&sim, "/apis/apps/v1/namespaces/shop/replicasets").json();
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    let disc = get(&sim, "/apis/apps/v1").json().to_string();
    assert!(disc.contains("\"deployments\"") && disc.contains("\"replicasets\""));
    assert_eq!(
        get(&sim, "/apis/apps/v1/namespaces/shop/deployments/nope").json()["message"],
        "deployments.apps \"nope\" not found"
    );
}

#[test]
fn rolling_restart_surges_replacement_ready_before_old_pod_deleted() {
    let sim = Sim::start(deploy(2, Strategy::rolling_update(1, 0))).unwrap();
    let old_rs = name(&sim.replicasets_of("shop", "web")[0]);
    let old_pods: Vec<String> = sim
        .deployment_pods("shop", "web")
        .iter()
        .map(name)
        .collect();
    let t0 = Instant::now();
    let r = rollout_restart(&sim);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["metadata"]["generation"], 2);
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));

    let rss = sim.replicasets_of("shop", "web");
    assert_eq!(rss.len(), 2);
    let new_rs = name(&rss[1]);
    assert_ne!(new_rs, old_rs);
    assert_eq!(rss[0]["spec"]["replicas"], 0);
    assert_eq!(rss[1]["spec"]["replicas"], 2);
    assert_eq!(
        rss[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let pods = sim.deployment_pods("shop", "web");
    assert!(pods.iter().all(|p| p["spec"]["nodeName"] == "node-b"));
    assert!(pods.iter().all(|p| {
        p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == "2025-01-01T10:00:00Z"
    }));
    assert!(old_pods.iter().all(|n| sim.pod("shop", n).is_none()));

    // The order, from the log of exact simulated instants: the k-th old pod is retired (by the
    // ReplicaSet controller, with its grace) only after k new pods are Ready.
    let log = sim.workload_log();
    let new_ev = pod_events(&log, &new_rs);
    let old_ev = pod_events(&log, &old_rs);
    let ready_at: Vec<Instant> = new_ev
        .iter()
        .filter(|e| e.change == Change::PodReady)
        .map(|e| e.at)
        .collect();
    let retired: Vec<&&WorkloadEvent> = old_ev
        .iter()
        .filter(|e| matches!(e.change, Change::PodTerminating { .. }))
        .collect();
    assert_eq!((ready_at.len(), retired.len()), (2, 2));
    for (k, e) in retired.iter().enumerate() {
        assert!(
            ready_at[k] <= e.at,
            "old pod {} went before the {}th replacement was Ready",
            e.name,
            k + 1
        );
        assert_eq!(
            e.change,
            Change::PodTerminating {
                by: "replicaset-controller",
                eviction: false,
                grace: 30
            }
        );
    }
    // Surge bound: never more than desired + maxSurge pods that are not terminating.
    let mut live = 2i64;
    let mut peak = 2i64;
    for e in log
        .iter()
        .filter(|e| e.deployment.as_deref() == Some("web"))
    {
        match e.change {
            Change::PodCreated => live += 1,
            Change::PodTerminating { .. } => live -= 1,
            _ => {}
        }
        peak = peak.max(live);
    }
    assert_eq!(peak, 3);
    // And never below two Ready: no availability lost.
    assert_eq!(
        sim.availability_deficit("shop", "web", t0, Instant::now()),
        0.0
    );
    assert!(sim
        .ready_history("shop", "web")
        .iter()
        .all(|p| p.ready >= 2));
    let d = sim.deployment("shop", "web").unwrap();
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["observedGeneration"], 2);
    assert_eq!(
        d["status"]["conditions"][1]["reason"],
        "NewReplicaSetAvailable"
    );
}

#[test]
fn max_surge_zero_retires_first_and_costs_availability() {
    let sim = Sim::start(deploy(2, Strategy::rolling_update(0, 1))).unwrap();
    let old_rs = name(&sim.replicasets_of("shop", "web")[0]);
    let t0 = Instant::now();
    assert!(sim.restart_deployment("shop", "web"));
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));
    let log = sim.workload_log();
    let first_retire = log
        .iter()
        .find(|e| {
            e.replicaset.as_deref() == Some(old_rs.as_str())
                && matches!(e.change, Change::PodTerminating { .. })
        })
        .unwrap()
        .at;
    let first_new = log
        .iter()
        .find(|e| e.change == Change::PodCreated)
        .unwrap()
        .at;
    let first_ready = log
        .iter()
        .find(|e| e.change == Change::PodReady)
        .unwrap()
        .at;
    assert!(
        first_retire <= first_new,
        "maxSurge 0: an old pod goes first"
    );
    assert!(first_retire < first_ready);
    // Two steps, each one replica short for the start-up delay: 2 × 0.3 replica-seconds.
    let d = sim.availability_deficit("shop", "web", t0, Instant::now());
    assert!((d - 0.6).abs() < 1e-6, "deficit {d}");
    let rows = sim.availability_report(t0);
    let row = rows.iter().find(|r| r.name == "web").unwrap();
    assert_eq!((row.desired, row.min_ready), (2, 1));
    assert!((row.deficit - 0.6).abs() < 1e-6);
    let rec = row.recovered_after.unwrap();
    assert!(rec >= READY * 2 && rec < Duration::from_secs(5), "{rec:?}");
}

#[test]
fn recreate_waits_for_every_old_pod_to_be_gone() {
    let sim = Sim::start(deploy(2, Strategy::recreate())).unwrap();
    let old_rs = name(&sim.replicasets_of("shop", "web")[0]);
    let t0 = Instant::now();
    assert_eq!(rollout_restart(&sim).status, 200);
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));
    let log = sim.workload_log();
    let last_gone = log
        .iter()
        .filter(|e| e.replicaset.as_deref() == Some(old_rs.as_str()) && e.change == Change::PodGone)
        .map(|e| e.at)
        .max()
        .unwrap();
    let first_new = log
        .iter()
        .find(|e| e.change == Change::PodCreated)
        .unwrap()
        .at;
    assert!(last_gone <= first_new);
    // Both replicas down for shutdown (0.2 s) + start-up (0.3 s).
    let d = sim.availability_deficit("shop", "web", t0, Instant::now());
    assert!((d - 1.0).abs() < 1e-6, "deficit {d}");
}

#[test]
fn availability_deficit_on_a_scripted_timeline() {
    // Two replicas, both evicted: each is missing from its eviction until its replacement is
    // Ready 0.3 s later, whatever the gap between the two evictions: 2 × 0.3 replica-seconds.
    let sim = Sim::start(deploy(2, Strategy::default())).unwrap();
    let t0 = Instant::now();
    let pods: Vec<String> = sim
        .deployment_pods("shop", "web")
        .iter()
        .map(name)
        .collect();
    for p in &pods {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": p, "namespace": "shop"}});
        let r = post(
            &sim,
            &format!("/api/v1/namespaces/shop/pods/{p}/eviction"),
            &body,
        );
        assert_eq!(r.status, 201);
    }
    // Evicted pods are replaced at once on node-b (Pending), by the same ReplicaSet.
    let now = sim.deployment_pods("shop", "web");
    assert_eq!(
        now.iter()
            .filter(|p| p["spec"]["nodeName"] == "node-b")
            .count(),
        2
    );
    assert_eq!(sim.replicasets_of("shop", "web").len(), 1);
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));
    let d = sim.availability_deficit("shop", "web", t0, Instant::now());
    assert!((d - 0.6).abs() < 1e-6, "deficit {d}");
    let h = sim.ready_history("shop", "web");
    assert_eq!(h.iter().map(|p| p.ready).min(), Some(0));
    assert_eq!(h.last().unwrap().ready, 2);
    // A window that ends before the evictions has no deficit; half-open windows add up.
    assert_eq!(
        sim.availability_deficit("shop", "web", t0 - Duration::from_secs(5), t0),
        0.0
    );
    let mid = h.iter().find(|p| p.ready == 0).unwrap().at;
    let a = sim.availability_deficit("shop", "web", t0, mid);
    let b = sim.availability_deficit("shop", "web", mid, Instant::now());
    assert!((a + b - d).abs() < 1e-9);
    let row = &sim.availability_report(t0)[0];
    assert_eq!(row.min_ready, 0);
    assert!(row.recovered_after.is_some());
}

#[test]
fn blocked_single_replica_moves_by_surge() {
    // Issue 11 §3: one replica under minAvailable 1 refuses every eviction; a rolling restart
    // (default strategy: maxSurge 25% → 1, maxUnavailable 25% → 0) starts the replacement on
    // node-b and retires the old pod once the replacement is Ready.
    let sim = Sim::start(deploy(1, Strategy::default()).pdb(
        "shop",
        "web-pdb",
        &[("app", "web")],
        Some(1),
        None,
    ))
    .unwrap();
    let old = name(&sim.deployment_pods("shop", "web")[0]);
    let evict = |p: &str| {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": p, "namespace": "shop"}});
        post(
            &sim,
            &format!("/api/v1/namespaces/shop/pods/{p}/eviction"),
            &body,
        )
        .status
    };
    assert_eq!(evict(&old), 429);
    let t0 = Instant::now();
    assert_eq!(rollout_restart(&sim).status, 200);
    // The surge pod is Pending on node-b; the budget still refuses.
    let pods = sim.deployment_pods("shop", "web");
    assert_eq!(pods.len(), 2);
    assert!(pods
        .iter()
        .any(|p| p["spec"]["nodeName"] == "node-b" && p["status"]["phase"] == "Pending"));
    assert_eq!(evict(&old), 429);
    assert_eq!(
        sim.pdb("shop", "web-pdb").unwrap()["status"]["expectedPods"],
        2
    );
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));
    let log = sim.workload_log();
    let ready = log
        .iter()
        .find(|e| e.change == Change::PodReady)
        .unwrap()
        .at;
    let retired = log
        .iter()
        .find(|e| e.name == old && matches!(e.change, Change::PodTerminating { .. }))
        .unwrap()
        .at;
    assert!(ready <= retired);
    assert_eq!(
        sim.availability_deficit("shop", "web", t0, Instant::now()),
        0.0
    );
}

#[test]
fn deployment_patch_validation_and_scaling() {
    let sim = Sim::start(deploy(2, Strategy::default())).unwrap();
    let path = "/apis/apps/v1/namespaces/shop/deployments/web";
    let r = merge(
        &sim,
        path,
        &json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
    );
    let r = merge(
        &sim,
        path,
        &json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "spec.strategy.rollingUpdate"
    );
    let r = merge(
        &sim,
        path,
        &json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        merge(&sim, path, &json!({"spec": {"replicas": -1}})).status,
        422
    );
    assert_eq!(
        merge(&sim, path, &json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x%"}}}})).status,
        422
    );
    assert_eq!(
        merge(
            &sim,
            path,
            &json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}})
        )
        .status,
        422
    );
    // RollingUpdate again: defaults fill in 25 %.
    let r = merge(
        &sim,
        path,
        &json!({"spec": {"strategy": {"type": "RollingUpdate"}}}),
    );
    assert_eq!(
        r.json()["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": "25%", "maxUnavailable": "25%"})
    );
    // Status is ignored on the main resource; a no-op keeps the resourceVersion.
    let before = sim.deployment("shop", "web").unwrap();
    let r = merge(&sim, path, &json!({"status": {"readyReplicas": 99}}));
    assert_eq!(
        r.json()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    // Scaling up and down goes through the ReplicaSet.
    let r = merge(&sim, path, &json!({"spec": {"replicas": 4}}));
    assert_eq!(r.status, 200);
    assert_eq!(sim.deployment_pods("shop", "web").len(), 4);
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));
    assert_eq!(sim.replicasets_of("shop", "web").len(), 1);
    merge(&sim, path, &json!({"spec": {"replicas": 1}}));
    assert!(wait_until(Duration::from_secs(10), || sim
        .rollout_complete("shop", "web")));
    // A paused Deployment does not roll.
    merge(&sim, path, &json!({"spec": {"paused": true}}));
    rollout_restart(&sim);
    assert_eq!(sim.replicasets_of("shop", "web").len(), 1);
    merge(&sim, path, &json!({"spec": {"paused": null}}));
    assert_eq!(sim.replicasets_of("shop", "web").len(), 2);
    // RBAC.
    sim.deny("patch", "deployments", "");
    assert_eq!(rollout_restart(&sim).status, 403);
}

#[test]
fn budget_counts_a_rolling_deployment_once() {
    let sim = Sim::start(
        deploy(3, Strategy::rolling_update(1, 0))
            .replacement_ready_after(None)
            .pdb("shop", "web-pdb", &[("app", "web")], None, Some(1)),
    )
    .unwrap();
    assert!(sim.restart_deployment("shop", "web"));
    // Two ReplicaSets now, four pods (one Pending forever), but the budget's scale is the
    // Deployment's three replicas.
    assert_eq!(sim.replicasets_of("shop", "web").len(), 2);
    assert_eq!(sim.deployment_pods("shop", "web").len(), 4);
    let st = sim.pdb("shop", "web-pdb").unwrap()["status"].clone();
    assert_eq!(
        (st["expectedPods"].as_i64(), st["desiredHealthy"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(st["disruptionsAllowed"], 1);
    // A replacement that never becomes Ready stalls the rollout, as on a real cluster.
    assert!(!sim.rollout_complete("shop", "web"));
    let d = sim.deployment("shop", "web").unwrap();
    assert_eq!(d["status"]["updatedReplicas"], 1);
    assert_eq!(d["status"]["readyReplicas"], 3);
}
