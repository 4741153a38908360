//! apps/v1 Deployments and ReplicaSets, with the two controllers that matter when a node is
//! drained: the ReplicaSet controller (keep `spec.replicas` active pods) and the deployment
//! controller (rolling update with `maxSurge`/`maxUnavailable`, or Recreate), plus the
//! availability accounting issue 11's benchmark reports.
//!
//! How it behaves (a faithful subset of `pkg/controller/replicaset` and
//! `pkg/controller/deployment` of v1.32):
//!
//! - Every ReplicaSet pod has a controller ownerReference to its ReplicaSet; a Deployment's
//!   ReplicaSets (`<deployment>-<pod-template-hash>`) have one to the Deployment. A pod built
//!   with [`PodSpec::replicaset`] gets a ReplicaSet object of its own (no Deployment) whose
//!   `spec.replicas` is the number of such pods added.
//! - The controllers run, instantly, after every change (an API write or a simulated event such
//!   as a pod turning Ready or going away), until nothing changes. Active pods are those neither
//!   terminating nor Succeeded/Failed. A ReplicaSet with fewer active pods than `spec.replicas`
//!   creates Pending pods on the replacement node (or the scenario node if the replacement node
//!   is cordoned and the scenario node is not) that become Running+Ready after the scenario's
//!   `replacement_ready_after`; one with more deletes the surplus (Pending first, then unready,
//!   then the newest) with their own grace, so they terminate as the termination model says.
//!   An evicted or deleted pod is therefore replaced at once, as before.
//! - A change of `spec.template` (e.g. the `kubectl.kubernetes.io/restartedAt` annotation
//!   `kubectl rollout restart` patches in) makes the deployment controller create a new
//!   ReplicaSet and roll: `NewRSNewReplicas` (scale up while the sum of `spec.replicas` stays ≤
//!   desired + maxSurge) and `reconcileOldReplicaSets` (clean up unavailable old pods, then scale
//!   down while available pods stay ≥ desired − maxUnavailable), with the fenceposts resolved as
//!   upstream does (surge rounds up, unavailable down, both 0 → unavailable 1). Recreate scales
//!   the old ReplicaSets to 0, waits until no old pod is left, then scales the new one up.
//!   A template equal to an older ReplicaSet's (ignoring `pod-template-hash`) reuses it.
//!   Paused Deployments are left alone. Available = Ready (`minReadySeconds` 0).
//! - Not modelled: `progressDeadlineSeconds`, proportional scaling across several ReplicaSets
//!   during a rollout, revision history cleanup, `minReadySeconds`.
//!
//! Availability: after every controller pass the store notes, per Deployment, how many of its
//! pods (any node, any of its ReplicaSets) are Ready and not terminating, and its desired
//! `spec.replicas`. [`Store::availability_deficit`] integrates `max(0, desired − ready)` over a
//! window: replica-seconds below the desired Ready count.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::status::{self, ApiError, FieldError};
use crate::store::{
    controller_of, healthy, is_ready, is_terminating, pod_status, ListQuery, PodSpec, Store,
};
use crate::util::{self, rfc3339};
use crate::{lock, Scenario, Sim};

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `spec.priority` of the built-in priority classes.
pub fn class_priority(class: &str) -> Option<i64> {
    match class {
        "system-cluster-critical" => Some(2_000_000_000),
        "system-node-critical" => Some(2_000_001_000),
        _ => None,
    }
}

/// A Deployment's `spec.strategy`.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// `RollingUpdate` with int-or-percent `maxSurge`/`maxUnavailable` (`json!(1)`, `json!("25%")`).
    RollingUpdate {
        /// `maxSurge`.
        max_surge: Value,
        /// `maxUnavailable`.
        max_unavailable: Value,
    },
    /// `Recreate`.
    Recreate,
}

impl Strategy {
    /// RollingUpdate with these values (`1`, `"25%"`).
    pub fn rolling_update(max_surge: impl Into<Value>, max_unavailable: impl Into<Value>) -> Self {
        Strategy::RollingUpdate {
            max_surge: max_surge.into(),
            max_unavailable: max_unavailable.into(),
        }
    }

    /// Recreate.
    pub fn recreate() -> Self {
        Strategy::Recreate
    }

    fn to_json(&self) -> Value {
        match self {
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => json!({"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": max_surge}}),
            Strategy::Recreate => json!({"type": "Recreate"}),
        }
    }
}

impl Default for Strategy {
    /// The API default: RollingUpdate, maxSurge 25 %, maxUnavailable 25 %.
    fn default() -> Self {
        Strategy::rolling_update("25%", "25%")
    }
}

/// A Deployment to create at start (see [`Scenario::deployment`]).
#[derive(Debug, Clone)]
pub struct DeploymentDef {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) replicas: i64,
    pub(crate) strategy: Strategy,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) template: PodSpec,
}

/// What happened to a pod or a ReplicaSet, in the workload log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A controller created the pod (Pending).
    PodCreated,
    /// The pod became Running and Ready.
    PodReady,
    /// The pod got its deletionTimestamp. `by`: `api` (DELETE or eviction) or
    /// `replicaset-controller` (scale-down); `grace`: the grace period applied.
    PodTerminating {
        /// Who asked.
        by: &'static str,
        /// Through the eviction subresource.
        eviction: bool,
        /// Grace period in seconds.
        grace: i64,
    },
    /// The pod object is gone.
    PodGone,
    /// A ReplicaSet was created.
    ReplicaSetCreated,
    /// A ReplicaSet's `spec.replicas` changed.
    Scaled {
        /// Before.
        from: i64,
        /// After.
        to: i64,
    },
}

/// One entry of the workload log ([`Sim::workload_log`]).
#[derive(Debug, Clone)]
pub struct WorkloadEvent {
    /// When (on the simulation's clock; exact, not when someone looked).
    pub at: Instant,
    /// Namespace.
    pub namespace: String,
    /// The pod's (or, for ReplicaSet changes, the ReplicaSet's) name.
    pub name: String,
    /// The owning ReplicaSet, if any.
    pub replicaset: Option<String>,
    /// The owning Deployment, if any.
    pub deployment: Option<String>,
    /// The pod's node.
    pub node: Option<String>,
    /// What happened.
    pub change: Change,
}

/// One point of a Deployment's Ready history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyPoint {
    /// From this instant on ...
    pub at: Instant,
    /// ... this many of its pods are Running, Ready and not terminating ...
    pub ready: i64,
    /// ... out of `spec.replicas`.
    pub desired: i64,
}

/// One row of [`Sim::availability_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityRow {
    /// Namespace.
    pub namespace: String,
    /// Deployment.
    pub name: String,
    /// `spec.replicas` now.
    pub desired: i64,
    /// The lowest Ready count in the window.
    pub min_ready: i64,
    /// Replica-seconds below the desired Ready count in the window.
    pub deficit: f64,
    /// How long after the window's start the Deployment was back at its desired Ready count
    /// for good (zero if it never dropped); `None` while it is still short.
    pub recovered_after: Option<Duration>,
}

/// Workload bookkeeping kept in the store.
#[derive(Debug, Default)]
pub struct WorkloadState {
    /// Simulation-side pod templates (shutdown time, ...) by `ns/Kind/name`.
    pub(crate) templates: HashMap<String, PodSpec>,
    /// Ready history per Deployment `ns/name`.
    pub(crate) history: BTreeMap<String, Vec<ReadyPoint>>,
    /// The workload log.
    pub(crate) log: Vec<WorkloadEvent>,
    /// Pod keys by the `ns/name` of the ReplicaSet that controls them.
    pub(crate) rs_pods: HashMap<String, BTreeSet<String>>,
    /// Pod keys by `spec.nodeName` (a pod's node never changes): a node's pod list reads these,
    /// not every pod of the cluster.
    pub(crate) node_pods: HashMap<String, BTreeSet<String>>,
    /// ReplicaSet keys by their Deployment's `ns/name`.
    pub(crate) deploy_rs: HashMap<String, BTreeSet<String>>,
    /// ReplicaSets and Deployments changed since the controllers last ran.
    pub(crate) dirty_rs: BTreeSet<String>,
    pub(crate) dirty_deploy: BTreeSet<String>,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn ms<'a>(o: &'a Value, f: &str) -> &'a str {
    o["metadata"][f].as_str().unwrap_or("")
}

fn labels_of(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `rand.SafeEncodeString(fmt.Sprint(fnv32a(template)))`, the way the deployment controller
/// names its ReplicaSets.
fn template_hash(template: &Value, collisions: u32) -> String {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in t.to_string().bytes().chain(collisions.to_le_bytes()) {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[(b as usize) % ALPHANUMS.len()] as char)
        .collect()
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    t
}

/// Resolves an int-or-percent against `total`, rounding up or down.
fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    if let Some(n) = v.as_i64() {
        return n;
    }
    let Some(p) = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse::<i64>().ok())
    else {
        return 0;
    };
    if round_up {
        (p * total + 99) / 100
    } else {
        p * total / 100
    }
}

/// The pod template a PodSpec describes (what a Deployment's `spec.template` holds).
fn template_json(spec: &PodSpec, labels: &Map<String, Value>) -> Value {
    let mut pspec = json!({
        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": {},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent"}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": spec.grace,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler"
    });
    if let Some(c) = &spec.priority_class {
        pspec["priorityClassName"] = json!(c);
    }
    if spec.empty_dir {
        pspec["volumes"] = json!([{"name": "cache", "emptyDir": {}}]);
    }
    if spec.host_network {
        pspec["hostNetwork"] = json!(true);
    }
    let mut meta = json!({"creationTimestamp": null, "labels": labels});
    if !spec.annotations.is_empty() {
        let a: Map<String, Value> = spec
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        meta["annotations"] = Value::Object(a);
    }
    json!({"metadata": meta, "spec": pspec})
}

#[derive(Debug, Default, Clone)]
struct RsStats {
    /// Active pods (not terminating, not terminal): keys.
    active: Vec<String>,
    /// Ready, Running, not terminating.
    ready: i64,
    /// Not Succeeded/Failed (terminating ones included).
    alive: i64,
}

/// The `ns/name` of the ReplicaSet controlling a pod.
fn pod_rs_key(pod: &Value) -> Option<String> {
    controller_of(pod)
        .filter(|(k, _)| k == "ReplicaSet")
        .map(|(_, n)| key(ms(pod, "namespace"), &n))
}

impl Store {
    // ---- indexes ----------------------------------------------------------------------

    /// Notes a new pod object under its ReplicaSet.
    pub(crate) fn index_pod(&mut self, k: &str, pod: &Value) {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        self.workloads
            .node_pods
            .entry(node.to_string())
            .or_default()
            .insert(k.to_string());
        if let Some(rk) = pod_rs_key(pod) {
            self.workloads
                .rs_pods
                .entry(rk.clone())
                .or_default()
                .insert(k.to_string());
            self.workloads.dirty_rs.insert(rk);
        }
    }

    /// Forgets a removed pod object.
    pub(crate) fn unindex_pod(&mut self, k: &str, pod: &Value) {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
        if let Some(set) = self.workloads.node_pods.get_mut(node) {
            set.remove(k);
        }
        if let Some(rk) = pod_rs_key(pod) {
            if let Some(set) = self.workloads.rs_pods.get_mut(&rk) {
                set.remove(k);
            }
            self.workloads.dirty_rs.insert(rk);
        }
    }

    /// Marks the pod's ReplicaSet for the next controller pass.
    pub(crate) fn touch_pod(&mut self, pod: &Value) {
        if let Some(rk) = pod_rs_key(pod) {
            self.workloads.dirty_rs.insert(rk);
        }
    }

    // ---- building -------------------------------------------------------------------

    /// Creates a Deployment, its ReplicaSet (revision 1) and `replicas` Running, Ready pods.
    pub(crate) fn add_deployment(&mut self, d: &DeploymentDef, now: Instant) {
        let ns = d.namespace.as_str();
        let labels: Map<String, Value> = d
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut tlabels = labels.clone();
        for (k, v) in &d.template.labels {
            tlabels.insert(k.clone(), json!(v));
        }
        let template = template_json(&d.template, &tlabels);
        let uid = self.owner_uid(ns, "Deployment", &d.name);
        let created = rfc3339(self.sys(now) - Duration::from_secs(7200));
        let rv = self.next_rv();
        let dep = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": d.name, "namespace": ns, "uid": uid, "resourceVersion": rv,
                "generation": 1, "creationTimestamp": created, "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": d.replicas, "selector": {"matchLabels": labels},
                "template": template, "strategy": d.strategy.to_json(),
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
            "status": {}
        });
        let dk = key(ns, &d.name);
        self.deployments.insert(dk.clone(), dep);
        self.workloads.dirty_deploy.insert(dk.clone());
        self.workloads
            .templates
            .insert(format!("{ns}/Deployment/{}", d.name), d.template.clone());
        let rs = self.create_replicaset(&dk, 1, d.replicas, now);
        // Built before the scenario started, like its Deployment.
        if let Some(r) = self.replicasets.get_mut(&key(ns, &rs)) {
            r["metadata"]["creationTimestamp"] = json!(created);
        }
        let node = d
            .template
            .node
            .clone()
            .unwrap_or_else(|| self.cfg.main_node.clone());
        for _ in 0..d.replicas {
            let mut p = self.pod_spec_for(&key(ns, &rs));
            p.name = self.fresh_pod_name(ns, &rs);
            self.insert_pod(&p, &node, now);
        }
    }

    /// A pod of a bare ReplicaSet (built with [`PodSpec::replicaset`]) was added: make sure the
    /// ReplicaSet object exists and count the pod into its `spec.replicas`.
    pub(crate) fn count_bare_rs_pod(&mut self, spec: &PodSpec, rs: &str, active: bool) {
        let ns = spec.namespace.as_str();
        let rk = key(ns, rs);
        if !self.replicasets.contains_key(&rk) {
            let mut labels = Map::new();
            if spec.labels.is_empty() {
                let app = rs.rsplit_once('-').map(|(a, _)| a).unwrap_or(rs);
                labels.insert("app".into(), json!(app));
            }
            for (k, v) in &spec.labels {
                labels.insert(k.clone(), json!(v));
            }
            if let Some((_, hash)) = rs.rsplit_once('-') {
                labels.insert("pod-template-hash".into(), json!(hash));
            }
            let uid = self.owner_uid(ns, "ReplicaSet", rs);
            let rv = self.next_rv();
            let created = rfc3339(self.sys(Instant::now()) - Duration::from_secs(7200));
            let mut tspec = spec.clone();
            tspec.annotations.clear();
            let template = template_json(&tspec, &labels);
            self.replicasets.insert(
                rk.clone(),
                json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
                    "metadata": {"name": rs, "namespace": ns, "uid": uid, "resourceVersion": rv,
                        "generation": 1, "creationTimestamp": created, "labels": labels},
                    "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template},
                    "status": {"replicas": 0}}),
            );
            self.workloads
                .templates
                .insert(format!("{ns}/ReplicaSet/{rs}"), spec.clone());
        }
        if active {
            let r = self.replicasets.get_mut(&rk).expect("rs");
            let n = r["spec"]["replicas"].as_i64().unwrap_or(0);
            r["spec"]["replicas"] = json!(n + 1);
        }
        self.workloads.dirty_rs.insert(rk);
    }

    /// Creates the Deployment's ReplicaSet for its current template.
    fn create_replicaset(&mut self, dk: &str, revision: i64, replicas: i64, at: Instant) -> String {
        let d = self.deployments[dk].clone();
        let ns = ms(&d, "namespace").to_string();
        let dname = ms(&d, "name").to_string();
        let mut template = d["spec"]["template"].clone();
        let mut collisions = 0;
        let (name, hash) = loop {
            let hash = template_hash(&template, collisions);
            let name = format!("{dname}-{hash}");
            if !self.replicasets.contains_key(&key(&ns, &name)) {
                break (name, hash);
            }
            collisions += 1;
        };
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut sel = d["spec"]["selector"].clone();
        sel["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut labels = d["spec"]["template"]["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        let uid = self.owner_uid(&ns, "ReplicaSet", &name);
        let rv = self.next_rv();
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let surge = match d.pointer("/spec/strategy/rollingUpdate/maxSurge") {
            Some(v) => int_or_percent(v, desired, true),
            None => 0,
        };
        let rs = json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": ns, "uid": uid, "resourceVersion": rv,
                "generation": 1, "creationTimestamp": rfc3339(self.sys(at)), "labels": labels,
                "annotations": {"deployment.kubernetes.io/desired-replicas": desired.to_string(),
                    "deployment.kubernetes.io/max-replicas": (desired + surge).to_string(),
                    "deployment.kubernetes.io/revision": revision.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": dname,
                    "uid": ms(&d, "uid"), "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": replicas, "selector": sel, "template": template},
            "status": {"replicas": 0}});
        let rk = key(&ns, &name);
        self.replicasets.insert(rk.clone(), rs);
        self.workloads
            .deploy_rs
            .entry(dk.to_string())
            .or_default()
            .insert(rk.clone());
        self.workloads.dirty_rs.insert(rk);
        self.workloads.dirty_deploy.insert(dk.to_string());
        self.workloads.log.push(WorkloadEvent {
            at,
            namespace: ns.clone(),
            name: name.clone(),
            replicaset: Some(name.clone()),
            deployment: Some(dname),
            node: None,
            change: Change::ReplicaSetCreated,
        });
        name
    }

    /// The PodSpec a ReplicaSet's new pods are built from: the simulation template (shutdown,
    /// priority, ...) with labels, annotations, grace and priority class from the object's
    /// `spec.template`, so template patches show on new pods.
    fn pod_spec_for(&self, rk: &str) -> PodSpec {
        let rs = &self.replicasets[rk];
        let ns = ms(rs, "namespace");
        let name = ms(rs, "name");
        let base = controller_of(rs)
            .filter(|(k, _)| k == "Deployment")
            .and_then(|(_, d)| {
                self.workloads
                    .templates
                    .get(&format!("{ns}/Deployment/{d}"))
            })
            .or_else(|| {
                self.workloads
                    .templates
                    .get(&format!("{ns}/ReplicaSet/{name}"))
            })
            .cloned()
            .unwrap_or_else(|| PodSpec::new(ns, name));
        let t = &rs["spec"]["template"];
        let mut p = base.replicaset(name);
        p.namespace = ns.to_string();
        p.labels = labels_of(&t["metadata"]["labels"]);
        p.annotations = labels_of(&t["metadata"]["annotations"]);
        if let Some(g) = t
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
        {
            p.grace = g;
        }
        p.priority_class = t
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .map(str::to_string);
        p.phase = "Running".into();
        p.ready = true;
        p.node = None;
        p
    }

    fn fresh_pod_name(&self, ns: &str, rs: &str) -> String {
        loop {
            let n = format!("{rs}-{}", util::name_suffix());
            if !self.pods.contains_key(&key(ns, &n)) {
                return n;
            }
        }
    }

    /// Where the scheduler puts a controller's new pod.
    fn schedule_node(&self) -> String {
        let cordoned = |n: &str| {
            self.nodes
                .get(n)
                .is_some_and(|o| o["spec"]["unschedulable"] == true)
        };
        let repl = &self.cfg.replacement_node;
        if cordoned(repl) && !cordoned(&self.cfg.main_node) {
            self.cfg.main_node.clone()
        } else {
            repl.clone()
        }
    }

    fn create_rs_pod(&mut self, rk: &str, at: Instant) {
        let mut spec = self.pod_spec_for(rk);
        let rs_name = ms(&self.replicasets[rk], "name").to_string();
        spec.name = self.fresh_pod_name(&spec.namespace, &rs_name);
        let node = self.schedule_node();
        let created = self.sys(at);
        let (mut obj, ip) = self.make_pod(&spec, &node, created);
        let host_ip = self.node_ip(&node);
        obj["status"] = pod_status("Pending", false, &host_ip, "", &rfc3339(created));
        let k = key(&spec.namespace, &spec.name);
        self.log_pod(at, &obj, Change::PodCreated);
        self.insert_pending(k, obj, spec.shutdown, ip, at);
    }

    /// Appends a pod change to the workload log.
    pub(crate) fn log_pod(&mut self, at: Instant, pod: &Value, change: Change) {
        let ns = ms(pod, "namespace").to_string();
        let rs = controller_of(pod)
            .filter(|(k, _)| k == "ReplicaSet")
            .map(|(_, n)| n);
        let deployment = rs
            .as_ref()
            .and_then(|r| self.replicasets.get(&key(&ns, r)))
            .and_then(controller_of)
            .filter(|(k, _)| k == "Deployment")
            .map(|(_, n)| n);
        self.workloads.log.push(WorkloadEvent {
            at,
            namespace: ns,
            name: ms(pod, "name").to_string(),
            replicaset: rs,
            deployment,
            node: pod["spec"]["nodeName"].as_str().map(str::to_string),
            change,
        });
    }

    // ---- controllers ----------------------------------------------------------------

    /// Pod counts of these ReplicaSets, from the pod index.
    fn rs_stats(&self, rks: &BTreeSet<String>) -> HashMap<String, RsStats> {
        let mut out: HashMap<String, RsStats> = HashMap::new();
        for rk in rks {
            let mut st = RsStats::default();
            for k in self.workloads.rs_pods.get(rk).into_iter().flatten() {
                let Some(e) = self.pods.get(k) else {
                    continue;
                };
                let terminal = matches!(
                    e.obj["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
                if !terminal {
                    st.alive += 1;
                    if !is_terminating(&e.obj) {
                        st.active.push(k.clone());
                    }
                }
                if healthy(&e.obj) {
                    st.ready += 1;
                }
            }
            out.insert(rk.clone(), st);
        }
        out
    }

    /// The ReplicaSets a Deployment controls, oldest first.
    fn owned_replicasets(&self, dk: &str) -> Vec<String> {
        let mut v: Vec<(String, String)> = self
            .workloads
            .deploy_rs
            .get(dk)
            .into_iter()
            .flatten()
            .filter_map(|k| {
                self.replicasets
                    .get(k)
                    .map(|rs| (ms(rs, "creationTimestamp").to_string() + k, k.clone()))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }

    fn rs_replicas(&self, rk: &str) -> i64 {
        self.replicasets[rk]["spec"]["replicas"]
            .as_i64()
            .unwrap_or(0)
    }

    fn set_rs_replicas(&mut self, rk: &str, n: i64, at: Instant) {
        let from = self.rs_replicas(rk);
        if from == n {
            return;
        }
        self.workloads.dirty_rs.insert(rk.to_string());
        let rv = self.next_rv();
        let rs = self.replicasets.get_mut(rk).expect("rs");
        rs["spec"]["replicas"] = json!(n);
        rs["metadata"]["resourceVersion"] = json!(rv);
        let g = rs["metadata"]["generation"].as_i64().unwrap_or(1);
        rs["metadata"]["generation"] = json!(g + 1);
        let (ns, name) = (ms(rs, "namespace").to_string(), ms(rs, "name").to_string());
        let deployment = controller_of(rs).map(|(_, d)| d);
        self.workloads.log.push(WorkloadEvent {
            at,
            namespace: ns,
            name: name.clone(),
            replicaset: Some(name),
            deployment,
            node: None,
            change: Change::Scaled { from, to: n },
        });
    }

    /// Runs the deployment and ReplicaSet controllers over whatever changed since they last
    /// ran, until nothing changes, then updates those objects' status fields and the
    /// availability history. Returns true when pods were created or retired (new simulated
    /// events may be due).
    pub(crate) fn reconcile(&mut self, at: Instant) -> bool {
        let mut any = false;
        let mut rss: BTreeSet<String> = BTreeSet::new();
        let mut deps: BTreeSet<String> = BTreeSet::new();
        for _ in 0..64 {
            let new_rs = std::mem::take(&mut self.workloads.dirty_rs);
            let new_dep = std::mem::take(&mut self.workloads.dirty_deploy);
            if new_rs.is_empty() && new_dep.is_empty() && !rss.is_empty() {
                break;
            }
            for rk in &new_rs {
                if let Some((_, d)) = self
                    .replicasets
                    .get(rk)
                    .and_then(controller_of)
                    .filter(|(k, _)| k == "Deployment")
                {
                    deps.insert(key(rk.split_once('/').map_or("", |(n, _)| n), &d));
                }
            }
            rss.extend(new_rs);
            deps.extend(new_dep);
            for dk in &deps {
                rss.extend(self.owned_replicasets(dk));
            }
            rss.retain(|rk| self.replicasets.contains_key(rk));
            deps.retain(|dk| self.deployments.contains_key(dk));
            if rss.is_empty() && deps.is_empty() {
                return any;
            }
            let stats = self.rs_stats(&rss);
            let mut changed = false;
            for dk in &deps.clone() {
                changed |= self.sync_deployment(dk, &stats, at);
            }
            if changed {
                for dk in &deps {
                    rss.extend(self.owned_replicasets(dk));
                }
            }
            let stats = if changed { self.rs_stats(&rss) } else { stats };
            for rk in &rss.clone() {
                changed |= self.sync_replicaset(rk, stats.get(rk), at);
            }
            if !changed {
                break;
            }
            any = true;
        }
        self.workloads.dirty_rs.clear();
        self.workloads.dirty_deploy.clear();
        let stats = self.rs_stats(&rss);
        self.update_statuses(&rss, &deps, &stats, at);
        self.record_availability(&deps, &stats, at);
        any
    }

    fn sync_replicaset(&mut self, rk: &str, st: Option<&RsStats>, at: Instant) -> bool {
        let want = self.rs_replicas(rk);
        let active: Vec<String> = st.map(|s| s.active.clone()).unwrap_or_default();
        let have = active.len() as i64;
        if have < want {
            for _ in have..want {
                self.create_rs_pod(rk, at);
            }
            return true;
        }
        if have > want {
            // getPodsToDelete: Pending before Running, unready before ready, newest first.
            let mut ranked: Vec<(u8, u8, std::cmp::Reverse<String>, String)> = active
                .iter()
                .map(|k| {
                    let o = &self.pods[k].obj;
                    let pending = u8::from(o["status"]["phase"] != "Pending");
                    let ready = u8::from(is_ready(o));
                    let created = std::cmp::Reverse(ms(o, "creationTimestamp").to_string());
                    (pending, ready, created, k.clone())
                })
                .collect();
            ranked.sort();
            for (_, _, _, k) in ranked.into_iter().take((have - want) as usize) {
                self.mark_deleted(&k, None, at, false, "replicaset-controller");
            }
            return true;
        }
        false
    }

    fn sync_deployment(&mut self, dk: &str, stats: &HashMap<String, RsStats>, at: Instant) -> bool {
        let d = self.deployments[dk].clone();
        if d["spec"]["paused"] == true {
            return false;
        }
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let owned = self.owned_replicasets(dk);
        let template = without_hash(&d["spec"]["template"]);
        let new_rs = owned
            .iter()
            .find(|rk| without_hash(&self.replicasets[*rk]["spec"]["template"]) == template)
            .cloned();
        let old: Vec<String> = owned
            .iter()
            .filter(|k| Some(*k) != new_rs.as_ref())
            .cloned()
            .collect();
        let available = |rk: &str| stats.get(rk).map_or(0, |s| s.ready);
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        if recreate {
            let mut scaled = false;
            for rk in &old {
                if self.rs_replicas(rk) > 0 {
                    self.set_rs_replicas(rk, 0, at);
                    scaled = true;
                }
            }
            if scaled {
                return true;
            }
            if old
                .iter()
                .any(|rk| stats.get(rk).is_some_and(|s| s.alive > 0))
            {
                return false;
            }
        }
        let Some(new_rs) = new_rs else {
            let revision = owned
                .iter()
                .filter_map(|rk| {
                    self.replicasets[rk]
                        .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
                        .and_then(Value::as_str)
                        .and_then(|r| r.parse::<i64>().ok())
                })
                .max()
                .unwrap_or(0)
                + 1;
            self.create_replicaset(dk, revision, 0, at);
            let rv = self.next_rv();
            let dep = self.deployments.get_mut(dk).expect("deployment");
            dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                json!(revision.to_string());
            dep["metadata"]["resourceVersion"] = json!(rv);
            return true;
        };
        let new_replicas = self.rs_replicas(&new_rs);
        if recreate {
            if new_replicas != desired {
                self.set_rs_replicas(&new_rs, desired, at);
                return true;
            }
            return false;
        }
        // RollingUpdate. Fenceposts as deploymentutil.ResolveFenceposts.
        let ru = &d["spec"]["strategy"]["rollingUpdate"];
        let max_surge = int_or_percent(&ru["maxSurge"], desired, true);
        let mut max_unavailable = int_or_percent(&ru["maxUnavailable"], desired, false);
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        if desired == 0 {
            max_unavailable = 0;
        }
        max_unavailable = max_unavailable.min(desired);
        let all: Vec<String> = owned.clone();
        let total: i64 = all.iter().map(|rk| self.rs_replicas(rk)).sum();
        // reconcileNewReplicaSet.
        if new_replicas > desired {
            self.set_rs_replicas(&new_rs, desired, at);
            return true;
        }
        if new_replicas < desired {
            let max_total = desired + max_surge;
            if total < max_total {
                let up = (max_total - total).min(desired - new_replicas);
                self.set_rs_replicas(&new_rs, new_replicas + up, at);
                return true;
            }
        }
        // reconcileOldReplicaSets.
        let old_count: i64 = old.iter().map(|rk| self.rs_replicas(rk)).sum();
        if old_count == 0 {
            return false;
        }
        let min_available = desired - max_unavailable;
        let new_unavailable = self.rs_replicas(&new_rs) - available(&new_rs);
        let max_scaled_down = total - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut scaled = 0;
        // cleanupUnhealthyReplicas.
        for rk in &old {
            if scaled >= max_scaled_down {
                break;
            }
            let r = self.rs_replicas(rk);
            let av = available(rk);
            if r == 0 || r == av {
                continue;
            }
            let down = (max_scaled_down - scaled).min(r - av);
            self.set_rs_replicas(rk, r - down, at);
            scaled += down;
        }
        // scaleDownOldReplicaSetsForRollingUpdate.
        let avail_all: i64 = all.iter().map(|rk| available(rk)).sum();
        if avail_all > min_available {
            let total_down = avail_all - min_available;
            let mut done = 0;
            for rk in &old {
                if done >= total_down {
                    break;
                }
                let r = self.rs_replicas(rk);
                if r == 0 {
                    continue;
                }
                let down = r.min(total_down - done);
                self.set_rs_replicas(rk, r - down, at);
                done += down;
            }
            scaled += done;
        }
        scaled > 0
    }

    fn update_statuses(
        &mut self,
        rks: &BTreeSet<String>,
        dks: &BTreeSet<String>,
        stats: &HashMap<String, RsStats>,
        at: Instant,
    ) {
        let now_s = rfc3339(self.sys(at));
        for rk in rks {
            let st = stats.get(rk).cloned().unwrap_or_default();
            let rs = &self.replicasets[rk];
            let n = st.active.len() as i64;
            let mut s = Map::new();
            s.insert("replicas".into(), json!(n));
            if n > 0 {
                s.insert("fullyLabeledReplicas".into(), json!(n));
            }
            if st.ready > 0 {
                s.insert("readyReplicas".into(), json!(st.ready));
                s.insert("availableReplicas".into(), json!(st.ready));
            }
            s.insert(
                "observedGeneration".into(),
                rs["metadata"]["generation"].clone(),
            );
            let s = Value::Object(s);
            if rs["status"] != s {
                let rv = self.next_rv();
                let rs = self.replicasets.get_mut(rk).expect("rs");
                rs["status"] = s;
                rs["metadata"]["resourceVersion"] = json!(rv);
            }
        }
        for dk in dks {
            let d = self.deployments[dk].clone();
            let owned = self.owned_replicasets(dk);
            let template = without_hash(&d["spec"]["template"]);
            let new_rs = owned
                .iter()
                .find(|rk| without_hash(&self.replicasets[*rk]["spec"]["template"]) == template);
            let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let sum = |f: &dyn Fn(&RsStats) -> i64| -> i64 {
                owned.iter().map(|rk| stats.get(rk).map_or(0, f)).sum()
            };
            let replicas = sum(&|s| s.active.len() as i64);
            let ready = sum(&|s| s.ready);
            let spec_total: i64 = owned.iter().map(|rk| self.rs_replicas(rk)).sum();
            let updated = new_rs
                .and_then(|rk| stats.get(rk))
                .map_or(0, |s| s.active.len() as i64);
            let unavailable = (spec_total - ready).max(0);
            let ru = &d["spec"]["strategy"]["rollingUpdate"];
            let max_unavailable = if d["spec"]["strategy"]["type"] == "Recreate" {
                0
            } else {
                int_or_percent(&ru["maxUnavailable"], desired, false).min(desired)
            };
            let available_ok = ready >= desired - max_unavailable;
            let complete = updated == desired && replicas == desired && ready == desired;
            let new_name = new_rs
                .map(|rk| ms(&self.replicasets[rk], "name").to_string())
                .unwrap_or_default();
            let old_conds = d["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let cond = |t: &str, st: &str, reason: &str, msg: String| -> Value {
                let prev = old_conds.iter().find(|c| c["type"] == t);
                let transition = match prev {
                    Some(p) if p["status"] == st => p["lastTransitionTime"].clone(),
                    _ => json!(now_s),
                };
                let update = match prev {
                    Some(p)
                        if p["status"] == st
                            && p["reason"] == reason
                            && p["message"] == msg.as_str() =>
                    {
                        p["lastUpdateTime"].clone()
                    }
                    _ => json!(now_s),
                };
                json!({"type": t, "status": st, "lastUpdateTime": update,
                    "lastTransitionTime": transition, "reason": reason, "message": msg})
            };
            let conds = vec![
                if available_ok {
                    cond(
                        "Available",
                        "True",
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.".into(),
                    )
                } else {
                    cond(
                        "Available",
                        "False",
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.".into(),
                    )
                },
                if complete {
                    cond(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("ReplicaSet {new_name:?} has successfully progressed."),
                    )
                } else {
                    cond(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        format!("ReplicaSet {new_name:?} is progressing."),
                    )
                },
            ];
            let mut s = Map::new();
            s.insert(
                "observedGeneration".into(),
                d["metadata"]["generation"].clone(),
            );
            for (k, v) in [
                ("replicas", replicas),
                ("updatedReplicas", updated),
                ("readyReplicas", ready),
                ("availableReplicas", ready),
                ("unavailableReplicas", unavailable),
            ] {
                if v != 0 {
                    s.insert(k.into(), json!(v));
                }
            }
            s.insert("conditions".into(), json!(conds));
            let s = Value::Object(s);
            if d["status"] != s {
                let rv = self.next_rv();
                let dep = self.deployments.get_mut(dk).expect("deployment");
                dep["status"] = s;
                dep["metadata"]["resourceVersion"] = json!(rv);
            }
        }
    }

    fn record_availability(
        &mut self,
        dks: &BTreeSet<String>,
        stats: &HashMap<String, RsStats>,
        at: Instant,
    ) {
        for dk in dks.iter().cloned() {
            let ready: i64 = self
                .owned_replicasets(&dk)
                .iter()
                .map(|rk| stats.get(rk).map_or(0, |s| s.ready))
                .sum();
            let desired = self.deployments[&dk]["spec"]["replicas"]
                .as_i64()
                .unwrap_or(1);
            let h = self.workloads.history.entry(dk).or_default();
            if h.last()
                .is_none_or(|p| p.ready != ready || p.desired != desired)
            {
                h.push(ReadyPoint { at, ready, desired });
            }
        }
    }

    /// The scale the disruption controller uses for a ReplicaSet pod's budget: the owning
    /// Deployment's `spec.replicas` (keyed by the Deployment, so a rollout's two ReplicaSets
    /// count once), else the ReplicaSet's own.
    pub(crate) fn replicaset_scale(&self, ns: &str, rs: &str) -> (String, i64) {
        match self.replicasets.get(&key(ns, rs)) {
            Some(r) => match controller_of(r).filter(|(k, _)| k == "Deployment") {
                Some((_, d)) => {
                    let n = self
                        .deployments
                        .get(&key(ns, &d))
                        .and_then(|o| o["spec"]["replicas"].as_i64())
                        .unwrap_or(1);
                    (format!("{ns}/Deployment/{d}"), n)
                }
                None => (
                    format!("{ns}/ReplicaSet/{rs}"),
                    r["spec"]["replicas"].as_i64().unwrap_or(1),
                ),
            },
            None => (format!("{ns}/ReplicaSet/{rs}"), 1),
        }
    }

    // ---- API ------------------------------------------------------------------------

    /// GET a Deployment.
    pub fn get_deployment(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.deployments
            .get(&key(ns, name))
            .cloned()
            .ok_or_else(|| status::not_found("deployments", "apps", name))
    }

    /// GET a ReplicaSet.
    pub fn get_replicaset(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.replicasets
            .get(&key(ns, name))
            .cloned()
            .ok_or_else(|| status::not_found("replicasets", "apps", name))
    }

    /// Lists Deployments.
    pub fn list_deployments(&self, q: &ListQuery) -> Result<Value, ApiError> {
        self.list(
            "DeploymentList",
            "apps/v1",
            self.deployments.iter(),
            q,
            crate::selector::meta_field,
        )
    }

    /// Lists ReplicaSets.
    pub fn list_replicasets(&self, q: &ListQuery) -> Result<Value, ApiError> {
        self.list(
            "ReplicaSetList",
            "apps/v1",
            self.replicasets.iter(),
            q,
            crate::selector::meta_field,
        )
    }

    /// PATCH a Deployment (all three flavours). Status changes are ignored, a spec change
    /// bumps `metadata.generation`, and the controllers react at once.
    pub fn patch_deployment(
        &mut self,
        ns: &str,
        name: &str,
        media_type: &str,
        body: &[u8],
        dry_run: bool,
        now: Instant,
    ) -> Result<Value, ApiError> {
        let k = key(ns, name);
        let current = self.get_deployment(ns, name)?;
        let mut new = current.clone();
        crate::store::apply_patch(&mut new, media_type, body)?;
        if let Some(Value::String(rv)) = new.pointer("/metadata/resourceVersion") {
            if !rv.is_empty() && rv != ms(&current, "resourceVersion") {
                return Err(status::conflict_modified("deployments", "apps", name));
            }
        }
        if !new["metadata"].is_object() || !new["spec"].is_object() {
            return Err(status::patch_decode_invalid(
                &new.to_string(),
                "json: cannot unmarshal into Go value of type apps.Deployment",
            ));
        }
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ] {
            new["metadata"][f] = current["metadata"][f].clone();
        }
        new["kind"] = json!("Deployment");
        new["apiVersion"] = json!("apps/v1");
        new["status"] = current["status"].clone();
        default_strategy(&mut new["spec"]);
        let errs = validate_deployment(&new, &current);
        if !errs.is_empty() {
            return Err(status::invalid_fields("apps", "Deployment", name, &errs));
        }
        if new["spec"] != current["spec"] {
            let g = current["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if new == current || dry_run {
            return Ok(new);
        }
        new["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.deployments.insert(k.clone(), new.clone());
        self.workloads.dirty_deploy.insert(k);
        self.reconcile(now);
        Ok(new)
    }

    /// What `kubectl rollout restart` does: sets the restartedAt template annotation.
    pub fn restart_deployment(&mut self, ns: &str, name: &str, now: Instant) -> bool {
        let stamp = rfc3339(self.sys(now));
        let body =
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
        self.patch_deployment(
            ns,
            name,
            "application/strategic-merge-patch+json",
            body.to_string().as_bytes(),
            false,
            now,
        )
        .is_ok()
    }

    // ---- availability ---------------------------------------------------------------

    /// The Ready history of a Deployment (one point per change).
    pub fn ready_history(&self, ns: &str, name: &str) -> Vec<ReadyPoint> {
        self.workloads
            .history
            .get(&key(ns, name))
            .cloned()
            .unwrap_or_default()
    }

    /// Replica-seconds below the desired Ready count in `[from, to]` (`to` must not be later
    /// than the last [`Store::tick`]).
    pub fn availability_deficit(&self, ns: &str, name: &str, from: Instant, to: Instant) -> f64 {
        deficit(&self.ready_history(ns, name), from, to)
    }
}

/// Integrates `max(0, desired − ready)` over `[from, to]` on a step history.
pub fn deficit(h: &[ReadyPoint], from: Instant, to: Instant) -> f64 {
    if to <= from {
        return 0.0;
    }
    let mut total = 0.0;
    for (i, p) in h.iter().enumerate() {
        let start = p.at.max(from);
        let end = h.get(i + 1).map_or(to, |n| n.at).min(to);
        if end > start {
            let short = (p.desired - p.ready).max(0) as f64;
            total += short * (end - start).as_secs_f64();
        }
    }
    total
}

fn default_strategy(spec: &mut Value) {
    if spec["strategy"].is_null() {
        spec["strategy"] = json!({"type": "RollingUpdate"});
    }
    if spec["strategy"]["type"].is_null() {
        spec["strategy"]["type"] = json!("RollingUpdate");
    }
    if spec["strategy"]["type"] == "RollingUpdate" {
        if !spec["strategy"]["rollingUpdate"].is_object() {
            spec["strategy"]["rollingUpdate"] = json!({});
        }
        for f in ["maxUnavailable", "maxSurge"] {
            if spec["strategy"]["rollingUpdate"][f].is_null() {
                spec["strategy"]["rollingUpdate"][f] = json!("25%");
            }
        }
    }
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
}

fn int_or_percent_errors(v: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match v {
        Value::Number(n) => {
            if n.as_i64().is_none_or(|i| i < 0) {
                errs.push(FieldError::invalid(
                    field,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        Value::String(s) => {
            let ok = s
                .strip_suffix('%')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                errs.push(FieldError::invalid(field, v, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
            }
        }
        _ => errs.push(FieldError::invalid(
            field,
            v,
            "must be an integer or percentage (e.g '5%')",
        )),
    }
    errs
}

fn is_zero(v: &Value) -> bool {
    v.as_i64() == Some(0)
        || v.as_str()
            .and_then(|s| s.strip_suffix('%'))
            .and_then(|d| d.parse::<i64>().ok())
            == Some(0)
}

/// The apps/v1 Deployment validation the handler can run into.
fn validate_deployment(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &new["spec"];
    match &spec["replicas"] {
        Value::Number(n) if n.as_i64().is_some_and(|i| i >= 0) => {}
        v => errs.push(FieldError::invalid(
            "spec.replicas",
            v,
            "must be greater than or equal to 0",
        )),
    }
    if spec["selector"] != old["spec"]["selector"] {
        errs.push(FieldError::invalid_raw(
            "spec.selector",
            &spec["selector"].to_string(),
            "field is immutable",
        ));
    }
    let sel = &spec["selector"];
    let tmpl = json!({"metadata": {"labels": spec["template"]["metadata"]["labels"].clone()}});
    if !crate::selector::selector_matches(sel, &tmpl) {
        errs.push(FieldError::invalid_raw(
            "spec.template.metadata.labels",
            &spec["template"]["metadata"]["labels"].to_string(),
            "`selector` does not match template `labels`",
        ));
    }
    let st = &spec["strategy"];
    match st["type"].as_str() {
        Some("Recreate") => {
            if !st["rollingUpdate"].is_null() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        Some("RollingUpdate") => {
            let ru = &st["rollingUpdate"];
            errs.extend(int_or_percent_errors(
                &ru["maxUnavailable"],
                "spec.strategy.rollingUpdate.maxUnavailable",
            ));
            errs.extend(int_or_percent_errors(
                &ru["maxSurge"],
                "spec.strategy.rollingUpdate.maxSurge",
            ));
            if is_zero(&ru["maxUnavailable"]) && is_zero(&ru["maxSurge"]) {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &ru["maxUnavailable"],
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            let pct = ru["maxUnavailable"]
                .as_str()
                .and_then(|s| s.strip_suffix('%'))
                .and_then(|d| d.parse::<i64>().ok());
            if pct.is_some_and(|p| p > 100) {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &ru["maxUnavailable"],
                    "must not be greater than 100%",
                ));
            }
        }
        _ => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            &st["type"],
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

// ---- builders and accessors -----------------------------------------------------------------

impl Scenario {
    /// Adds an apps/v1 Deployment `name` in `ns` with `replicas` pods on the scenario node (or
    /// on `template.node(..)`), its ReplicaSet `<name>-<hash>` and the ownerReferences between
    /// them. `labels` are the selector and template labels; `template` gives the pods' grace,
    /// app shutdown time, priority class, annotations, emptyDir, ... (its namespace and name
    /// are ignored).
    pub fn deployment(
        mut self,
        ns: &str,
        name: &str,
        replicas: i64,
        strategy: Strategy,
        labels: &[(&str, &str)],
        template: PodSpec,
    ) -> Self {
        self.deployments.push(DeploymentDef {
            namespace: ns.to_string(),
            name: name.to_string(),
            replicas,
            strategy,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            template,
        });
        self
    }
}

impl Sim {
    /// A Deployment object (with live status).
    pub fn deployment(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared.store().get_deployment(ns, name).ok()
    }

    /// A ReplicaSet object.
    pub fn replicaset(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared.store().get_replicaset(ns, name).ok()
    }

    /// The ReplicaSets a Deployment owns, oldest first.
    pub fn replicasets_of(&self, ns: &str, deployment: &str) -> Vec<Value> {
        let st = self.shared.store();
        let dk = key(ns, deployment);
        if !st.deployments.contains_key(&dk) {
            return Vec::new();
        }
        st.owned_replicasets(&dk)
            .iter()
            .map(|k| st.replicasets[k].clone())
            .collect()
    }

    /// The pods (any node) of a Deployment's ReplicaSets.
    pub fn deployment_pods(&self, ns: &str, deployment: &str) -> Vec<Value> {
        let rs: Vec<String> = self
            .replicasets_of(ns, deployment)
            .iter()
            .map(|r| ms(r, "name").to_string())
            .collect();
        self.pods()
            .into_iter()
            .filter(|p| {
                ms(p, "namespace") == ns
                    && controller_of(p).is_some_and(|(k, n)| k == "ReplicaSet" && rs.contains(&n))
            })
            .collect()
    }

    /// True when every replica is of the current template, Running and Ready, and no other
    /// pod of the Deployment is left (terminating ones included).
    pub fn rollout_complete(&self, ns: &str, deployment: &str) -> bool {
        let Some(d) = self.deployment(ns, deployment) else {
            return false;
        };
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let rss = self.replicasets_of(ns, deployment);
        let template = without_hash(&d["spec"]["template"]);
        let Some(new) = rss
            .iter()
            .find(|r| without_hash(&r["spec"]["template"]) == template)
        else {
            return false;
        };
        let new_name = ms(new, "name").to_string();
        let pods = self.deployment_pods(ns, deployment);
        pods.len() as i64 == desired
            && pods
                .iter()
                .all(|p| healthy(p) && controller_of(p).is_some_and(|(_, n)| n == new_name))
    }

    /// Every pod and ReplicaSet change so far, in time order.
    pub fn workload_log(&self) -> Vec<WorkloadEvent> {
        let mut v = self.shared.store().workloads.log.clone();
        v.sort_by_key(|e| e.at);
        v
    }

    /// What `kubectl rollout restart deployment/<name>` does, without HTTP. False if the
    /// Deployment does not exist.
    pub fn restart_deployment(&self, ns: &str, name: &str) -> bool {
        self.shared
            .store()
            .restart_deployment(ns, name, Instant::now())
    }

    /// A Deployment's Ready history (one point per change of Ready or desired count).
    pub fn ready_history(&self, ns: &str, deployment: &str) -> Vec<ReadyPoint> {
        self.shared.store().ready_history(ns, deployment)
    }

    /// Replica-seconds the Deployment spent below its desired Ready count between `from` and
    /// `to` (clamped to now). Pods on any node count; terminating pods do not.
    pub fn availability_deficit(
        &self,
        ns: &str,
        deployment: &str,
        from: Instant,
        to: Instant,
    ) -> f64 {
        let now = Instant::now();
        let mut st = lock(&self.shared.store);
        st.tick(now);
        st.availability_deficit(ns, deployment, from, to.min(now))
    }

    /// One row per Deployment for the window from `from` until now (see [`AvailabilityRow`]):
    /// the issue-11 benchmark's "replica-seconds below desired Ready count from the notice until
    /// every replacement is Ready" once the rollout has settled.
    pub fn availability_report(&self, from: Instant) -> Vec<AvailabilityRow> {
        let now = Instant::now();
        let mut st = lock(&self.shared.store);
        st.tick(now);
        let mut out = Vec::new();
        for (dk, d) in &st.deployments {
            let h = st.workloads.history.get(dk).cloned().unwrap_or_default();
            let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let value_at = |t: Instant| h.iter().rev().find(|p| p.at <= t).copied();
            let mut min_ready = value_at(from).map_or(desired, |p| p.ready);
            let mut last_short_end: Option<Instant> = None;
            let mut short_now = value_at(from).is_some_and(|p| p.ready < p.desired);
            for p in h.iter().filter(|p| p.at > from && p.at <= now) {
                min_ready = min_ready.min(p.ready);
                let short = p.ready < p.desired;
                if short_now && !short {
                    last_short_end = Some(p.at);
                }
                short_now = short;
            }
            let recovered_after = if short_now {
                None
            } else {
                Some(last_short_end.map_or(Duration::ZERO, |t| t - from))
            };
            out.push(AvailabilityRow {
                namespace: ms(d, "namespace").to_string(),
                name: ms(d, "name").to_string(),
                desired,
                min_ready,
                deficit: deficit(&h, from, now),
                recovered_after,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deficit_integrates_a_step_history() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let h = [
            ReadyPoint {
                at: s(0.0),
                ready: 3,
                desired: 3,
            },
            ReadyPoint {
                at: s(1.0),
                ready: 1,
                desired: 3,
            },
            ReadyPoint {
                at: s(2.0),
                ready: 2,
                desired: 3,
            },
            ReadyPoint {
                at: s(4.0),
                ready: 3,
                desired: 3,
            },
            ReadyPoint {
                at: s(5.0),
                ready: 4,
                desired: 3,
            },
        ];
        assert!((deficit(&h, s(0.0), s(10.0)) - 4.0).abs() < 1e-9);
        assert!((deficit(&h, s(1.5), s(3.0)) - 2.0).abs() < 1e-9);
        assert_eq!(deficit(&h, s(5.0), s(9.0)), 0.0);
        assert_eq!(deficit(&[], s(0.0), s(1.0)), 0.0);
    }

    #[test]
    fn fenceposts_and_hash() {
        assert_eq!(int_or_percent(&json!("25%"), 1, true), 1);
        assert_eq!(int_or_percent(&json!("25%"), 1, false), 0);
        assert_eq!(int_or_percent(&json!("50%"), 3, false), 1);
        assert_eq!(int_or_percent(&json!(2), 3, false), 2);
        let t = json!({"metadata": {"labels": {"app": "web"}}});
        let mut t2 = t.clone();
        t2["metadata"]["labels"]["pod-template-hash"] = json!("x");
        assert_eq!(template_hash(&t, 0), template_hash(&t2, 0));
        assert_ne!(template_hash(&t, 0), template_hash(&t, 1));
        assert!(template_hash(&t, 0)
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    }
}
