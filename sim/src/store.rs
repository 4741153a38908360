//! The fake cluster's object store and the little bits of controller behaviour the handler can
//! observe.
//!
//! Objects are `serde_json::Value`s shaped like the real API objects. Every change bumps a global
//! `resourceVersion`. Time moves lazily: every access first calls [`Store::tick`], which applies
//! whatever became due since the last access one event at a time, in time order, running the
//! workload controllers after each at that event's own instant (so nothing depends on how often
//! anyone looks):
//!
//! 1. **Pod termination.** Eviction or DELETE sets `deletionTimestamp` (= request time + grace)
//!    and `deletionGracePeriodSeconds`; the object disappears at request time +
//!    min(app shutdown time, grace). A shorter grace on an already-terminating pod shortens it
//!    (deletionTimestamp − old grace + new grace, as the apiserver computes it; the object goes
//!    within the new grace from the request); a longer one does not extend it. Grace 0,
//!    terminal pods and unscheduled pods go at once. Evictions and DELETEs check
//!    `preconditions.uid` (and `resourceVersion`): a mismatch is a 409 Conflict.
//! 2. **Controllers.** ReplicaSets keep `spec.replicas` active pods and Deployments roll their
//!    ReplicaSets ([`crate::workloads`]): a ReplicaSet pod marked for deletion is replaced at once
//!    (new name suffix, new uid, the template's labels) on the replacement node. A StatefulSet
//!    pod gets a same-name replacement (new uid) once the old object is gone. New pods start
//!    Pending and become Running+Ready after `replacement_ready_after` (never, if `None`).
//!    DaemonSet, Job, mirror and unmanaged pods are not replaced.
//! 3. **Node lifecycle controller.** Shortly after `spec.unschedulable` flips, the
//!    `node.kubernetes.io/unschedulable:NoSchedule` taint is added or removed (with its own
//!    resourceVersion bump), like TaintNodesByCondition does.
//!
//! PDB arithmetic follows the disruption controller: `minAvailable` as an integer compares the
//! healthy count (Running, Ready, no deletionTimestamp) against the number itself; percentages and
//! `maxUnavailable` scale against the owning controllers' replica counts (a Deployment's
//! `spec.replicas` for its pods, counted once however many ReplicaSets it has).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::patch::{self, PatchError};
use crate::selector::{self, FieldTerm, LabelReq};
use crate::status::{self, ApiError};
use crate::util::{self, rfc3339};

/// Who controls a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No controller ownerRef.
    None,
    /// apps/v1 ReplicaSet (a Deployment's pods).
    ReplicaSet(String),
    /// apps/v1 StatefulSet.
    StatefulSet(String),
    /// apps/v1 DaemonSet.
    DaemonSet(String),
    /// batch/v1 Job.
    Job(String),
    /// A static pod's mirror: `kubernetes.io/config.mirror` annotation + ownerRef kind Node.
    Mirror,
}

impl Owner {
    fn kind_name(&self) -> Option<(&'static str, &'static str, &str)> {
        match self {
            Owner::ReplicaSet(n) => Some(("apps/v1", "ReplicaSet", n)),
            Owner::StatefulSet(n) => Some(("apps/v1", "StatefulSet", n)),
            Owner::DaemonSet(n) => Some(("apps/v1", "DaemonSet", n)),
            Owner::Job(n) => Some(("batch/v1", "Job", n)),
            Owner::None | Owner::Mirror => None,
        }
    }
}

/// A pod to put into the fake cluster. Defaults: Running, Ready, grace 30 s, app shutdown 1 s,
/// unmanaged, on the scenario's node.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) node: Option<String>,
    pub(crate) owner: Owner,
    pub(crate) empty_dir: bool,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) annotations: Vec<(String, String)>,
    pub(crate) grace: i64,
    pub(crate) shutdown: Duration,
    pub(crate) phase: String,
    pub(crate) ready: bool,
    pub(crate) host_network: bool,
    pub(crate) priority_class: Option<String>,
    pub(crate) priority: Option<i64>,
}

impl PodSpec {
    /// A Running, Ready, unmanaged pod with grace 30 s and a 1 s app shutdown.
    pub fn new(ns: &str, name: &str) -> PodSpec {
        PodSpec {
            namespace: ns.to_string(),
            name: name.to_string(),
            node: None,
            owner: Owner::None,
            empty_dir: false,
            labels: Vec::new(),
            annotations: Vec::new(),
            grace: 30,
            shutdown: Duration::from_secs(1),
            phase: "Running".to_string(),
            ready: true,
            host_network: false,
            priority_class: None,
            priority: None,
        }
    }
    /// Controller ownerRef apps/v1 ReplicaSet `rs`.
    pub fn replicaset(mut self, rs: &str) -> Self {
        self.owner = Owner::ReplicaSet(rs.to_string());
        self
    }
    /// Controller ownerRef apps/v1 StatefulSet `sts`.
    pub fn statefulset(mut self, sts: &str) -> Self {
        self.owner = Owner::StatefulSet(sts.to_string());
        self
    }
    /// Controller ownerRef apps/v1 DaemonSet `ds` (the DaemonSet object is created too).
    pub fn daemonset(mut self, ds: &str) -> Self {
        self.owner = Owner::DaemonSet(ds.to_string());
        self
    }
    /// Controller ownerRef batch/v1 Job `job` (restartPolicy Never).
    pub fn job(mut self, job: &str) -> Self {
        self.owner = Owner::Job(job.to_string());
        self
    }
    /// A mirror pod: `kubernetes.io/config.mirror` annotation and ownerRef kind Node.
    pub fn mirror(mut self) -> Self {
        self.owner = Owner::Mirror;
        self
    }
    /// Adds an `emptyDir` volume.
    pub fn empty_dir(mut self) -> Self {
        self.empty_dir = true;
        self
    }
    /// Sets the labels (default: `app=<owner name or pod name>`).
    pub fn labels(mut self, l: &[(&str, &str)]) -> Self {
        self.labels = l
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
    /// Adds an annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.push((k.to_string(), v.to_string()));
        self
    }
    /// `spec.terminationGracePeriodSeconds`.
    pub fn grace(mut self, secs: i64) -> Self {
        self.grace = secs;
        self
    }
    /// How long the app takes to exit after SIGTERM.
    pub fn shutdown(mut self, d: Duration) -> Self {
        self.shutdown = d;
        self
    }
    /// `status.phase`: Pending, Running, Succeeded or Failed.
    pub fn phase(mut self, p: &str) -> Self {
        self.phase = p.to_string();
        self
    }
    /// The node (default: the scenario's node).
    pub fn node(mut self, n: &str) -> Self {
        self.node = Some(n.to_string());
        self
    }
    /// Ready condition (default true for Running pods).
    pub fn ready(mut self, r: bool) -> Self {
        self.ready = r;
        self
    }
    /// `spec.hostNetwork: true`.
    pub fn host_network(mut self) -> Self {
        self.host_network = true;
        self
    }
    /// `spec.priorityClassName`. `spec.priority` follows the class as the Priority admission
    /// plugin resolves it: `system-cluster-critical` 2000000000, `system-node-critical`
    /// 2000001000; any other class gets the value of [`PodSpec::priority`] (default 0).
    pub fn priority_class(mut self, name: &str) -> Self {
        self.priority_class = Some(name.to_string());
        self
    }
    /// `spec.priority` (for a custom class, or without a class).
    pub fn priority(mut self, n: i64) -> Self {
        self.priority = Some(n);
        self
    }
    /// The `spec.priority` this pod gets.
    pub fn priority_value(&self) -> i64 {
        match (self.priority_class.as_deref(), self.priority) {
            (_, Some(n)) => n,
            (Some(c), None) => crate::workloads::class_priority(c).unwrap_or(0),
            (None, None) => 0,
        }
    }
}

/// A PDB's computed status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdbStatus {
    /// `expectedPods`.
    pub expected: i64,
    /// `currentHealthy`.
    pub healthy: i64,
    /// `desiredHealthy`.
    pub desired: i64,
    /// `disruptionsAllowed` (never negative).
    pub allowed: i64,
}

/// Options of a DELETE or of an eviction's `deleteOptions`.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun: ["All"]` / `?dryRun=All`.
    pub dry_run: bool,
}

/// Static configuration of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The scenario node (where pods go by default).
    pub main_node: String,
    /// Where controllers put replacement pods.
    pub replacement_node: String,
    /// Replacement pods become Ready this long after creation (`None`: never).
    pub replacement_ready_after: Option<Duration>,
    /// Node lifecycle controller reaction time (`None`: no controller taint).
    pub node_controller_delay: Option<Duration>,
}

/// [`Store::timers`] classes, in the order they are applied at equal instants.
pub(crate) const GONE: u8 = 0;
pub(crate) const READY: u8 = 1;
pub(crate) const NODE_JOB: u8 = 2;

/// A pod plus its simulation-only state.
#[derive(Debug, Clone)]
pub struct PodEntry {
    /// The API object.
    pub obj: Value,
    /// App shutdown time after SIGTERM.
    pub shutdown: Duration,
    /// When the object disappears (set once terminating).
    pub gone_at: Option<Instant>,
    /// When a Pending replacement becomes Running+Ready.
    pub ready_at: Option<Instant>,
    /// The pod IP a Pending replacement gets once it runs.
    pub pending_ip: String,
}

/// A PDB plus the "still being processed" knob.
#[derive(Debug, Clone)]
pub struct PdbEntry {
    /// The API object (status is computed on read).
    pub obj: Value,
    /// When true: `observedGeneration < generation`, so evictions get 429 + Retry-After: 10.
    pub processing: bool,
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Namespace scope (`None`: all namespaces).
    pub namespace: Option<String>,
    /// `fieldSelector`.
    pub field: String,
    /// `labelSelector`.
    pub label: String,
    /// `limit` (0: unlimited).
    pub limit: usize,
    /// `continue`.
    pub cont: Option<String>,
}

/// The object store. See the module docs.
pub struct Store {
    /// Configuration.
    pub cfg: StoreConfig,
    rv: u64,
    compacted_rv: u64,
    t0: (Instant, SystemTime),
    /// Nodes by name.
    pub nodes: BTreeMap<String, Value>,
    /// Pods by `namespace/name` (etcd key order).
    pub pods: BTreeMap<String, PodEntry>,
    /// PDBs by `namespace/name`.
    pub pdbs: BTreeMap<String, PdbEntry>,
    /// DaemonSets by `namespace/name`.
    pub daemonsets: BTreeMap<String, Value>,
    /// Events by `namespace/name`, in the core v1 shape (see [`crate::events`]).
    pub events: BTreeMap<String, Value>,
    /// Which group each Event came through, and how often it was updated.
    pub event_meta: BTreeMap<String, crate::events::EventMeta>,
    replicas: HashMap<String, i64>,
    /// apps/v1 Deployments by `namespace/name`.
    pub deployments: BTreeMap<String, Value>,
    /// apps/v1 ReplicaSets by `namespace/name`.
    pub replicasets: BTreeMap<String, Value>,
    pub(crate) workloads: crate::workloads::WorkloadState,
    owner_uids: HashMap<String, String>,
    /// What falls due, in time order: `(when, class, key)`, class [`GONE`] or [`READY`] for the
    /// pod `key`, [`NODE_JOB`] for the node `key` (the node controller's taint). A pod's entry
    /// is stale once its `gone_at`/`ready_at` says another time; [`Store::tick`] skips those.
    /// Kept so that a tick looks at what is due, not at every pod of the cluster.
    timers: BTreeSet<(Instant, u8, String)>,
    ip_counter: u32,
}

/// A uid derived from a name (FNV-1a), so namespaces keep theirs across reads.
fn stable_uid(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 52) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or("")
}

/// True when the pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod.get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// True when the pod has a deletionTimestamp.
pub fn is_terminating(pod: &Value) -> bool {
    pod.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// The controller ownerRef's kind and name.
pub fn controller_of(pod: &Value) -> Option<(String, String)> {
    pod.get("metadata")?
        .get("ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").to_string(),
                r["name"].as_str().unwrap_or("").to_string(),
            )
        })
}

pub(crate) fn healthy(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && is_ready(pod) && !is_terminating(pod)
}

/// Resolves an int-or-percent against `total` (percentages round up, like the controller).
pub(crate) fn scaled(v: &Value, total: i64) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let pct: i64 = v.as_str()?.strip_suffix('%')?.parse().ok()?;
    Some((pct * total + 99) / 100)
}

pub(crate) fn pod_status(
    phase: &str,
    ready: bool,
    host_ip: &str,
    pod_ip: &str,
    start: &str,
) -> Value {
    let t = |b: bool| if b { "True" } else { "False" };
    let running = phase == "Running";
    let done = phase == "Succeeded" || phase == "Failed";
    let initialized = phase != "Pending";
    let ready = ready && running;
    let mut ready_cond = json!({"type": "Ready", "status": t(ready), "lastProbeTime": null,
        "lastTransitionTime": start});
    let mut cready = json!({"type": "ContainersReady", "status": t(ready), "lastProbeTime": null,
        "lastTransitionTime": start});
    if done {
        ready_cond["reason"] = json!("PodCompleted");
        cready["reason"] = json!("PodCompleted");
    } else if !ready {
        ready_cond["reason"] = json!("ContainersNotReady");
        ready_cond["message"] = json!("containers with unready status: [main]");
        cready["reason"] = json!("ContainersNotReady");
        cready["message"] = json!("containers with unready status: [main]");
    }
    let state = match phase {
        "Running" => json!({"running": {"startedAt": start}}),
        "Succeeded" => json!({"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": start, "finishedAt": start}}),
        "Failed" => json!({"terminated": {"exitCode": 1, "reason": "Error",
            "startedAt": start, "finishedAt": start}}),
        _ => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    let mut st = json!({
        "phase": phase,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": t(initialized && !done), "lastProbeTime": null, "lastTransitionTime": start},
            {"type": "Initialized", "status": t(initialized), "lastProbeTime": null, "lastTransitionTime": start},
            ready_cond,
            cready,
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": start}
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start,
        "containerStatuses": [{
            "name": "main", "image": "registry.k8s.io/pause:3.10",
            "imageID": "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
            "ready": ready, "restartCount": 0, "started": running, "state": state
        }],
        "qosClass": "BestEffort"
    });
    if !pod_ip.is_empty() && phase != "Pending" {
        st["podIP"] = json!(pod_ip);
        st["podIPs"] = json!([{"ip": pod_ip}]);
    }
    st
}

impl Store {
    /// An empty store whose clock starts at `t0`.
    pub fn new(cfg: StoreConfig, t0: (Instant, SystemTime)) -> Store {
        Store {
            cfg,
            rv: 1000,
            compacted_rv: 0,
            t0,
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            daemonsets: BTreeMap::new(),
            events: BTreeMap::new(),
            event_meta: BTreeMap::new(),
            replicas: HashMap::new(),
            deployments: BTreeMap::new(),
            replicasets: BTreeMap::new(),
            workloads: Default::default(),
            owner_uids: HashMap::new(),
            timers: BTreeSet::new(),
            ip_counter: 10,
        }
    }

    pub(crate) fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> String {
        self.rv.to_string()
    }

    /// Makes every continue token issued so far expire (410 Expired), like an etcd compaction.
    pub fn compact(&mut self) {
        self.compacted_rv = self.rv + 1;
    }

    /// Wall-clock time of an instant on the store's clock.
    pub fn sys(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.t0.0) {
            Some(d) => self.t0.1 + d,
            None => self.t0.1 - self.t0.0.duration_since(t),
        }
    }

    pub(crate) fn owner_uid(&mut self, ns: &str, kind: &str, name: &str) -> String {
        self.owner_uids
            .entry(format!("{ns}/{kind}/{name}"))
            .or_insert_with(util::uuid)
            .clone()
    }

    pub(crate) fn node_ip(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .and_then(|n| n.pointer("/status/addresses/0/address"))
            .and_then(Value::as_str)
            .unwrap_or("10.0.9.9")
            .to_string()
    }

    pub(crate) fn next_pod_ip(&mut self, node: &str) -> String {
        self.ip_counter += 1;
        let net = if node == self.cfg.main_node { 1 } else { 2 };
        format!("10.244.{net}.{}", self.ip_counter % 250 + 2)
    }

    /// Adds a Ready node. `instance` is the EC2 instance id for `spec.providerID`.
    pub fn add_node(
        &mut self,
        name: &str,
        instance: &str,
        ip: &str,
        spot: bool,
        extra_labels: &[(String, String)],
        taints: &[Value],
    ) {
        let created = rfc3339(self.t0.1 - Duration::from_secs(3 * 86_400));
        let mut labels = json!({
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/instance-type": "m5.large",
            "beta.kubernetes.io/os": "linux",
            "eks.amazonaws.com/capacityType": if spot { "SPOT" } else { "ON_DEMAND" },
            "eks.amazonaws.com/nodegroup": if spot { "spot-workers" } else { "core" },
            "failure-domain.beta.kubernetes.io/region": "us-east-1",
            "failure-domain.beta.kubernetes.io/zone": "us-east-1a",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "m5.large",
            "topology.kubernetes.io/region": "us-east-1",
            "topology.kubernetes.io/zone": "us-east-1a"
        });
        for (k, v) in extra_labels {
            labels[k] = json!(v);
        }
        let mut node = json!({
            "kind": "Node", "apiVersion": "v1",
            "metadata": {
                "name": name, "uid": util::uuid(), "resourceVersion": self.next_rv(),
                "creationTimestamp": created, "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
            },
            "spec": {"providerID": format!("aws:///us-east-1a/{instance}"), "podCIDR": "10.244.1.0/24",
                "podCIDRs": ["10.244.1.0/24"]},
            "status": {
                "capacity": {"cpu": "2", "memory": "7936952Ki", "pods": "29"},
                "allocatable": {"cpu": "1930m", "memory": "7246776Ki", "pods": "29"},
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "lastHeartbeatTime": created, "lastTransitionTime": created},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                     "lastHeartbeatTime": created, "lastTransitionTime": created},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
                     "lastHeartbeatTime": created, "lastTransitionTime": created},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status",
                     "lastHeartbeatTime": created, "lastTransitionTime": created}
                ],
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "InternalDNS", "address": format!("ip-{}.ec2.internal", ip.replace('.', "-"))},
                    {"type": "Hostname", "address": name}
                ],
                "nodeInfo": {"kubeletVersion": "v1.32.0-eks-aeac579", "kubeProxyVersion": "v1.32.0-eks-aeac579",
                    "containerRuntimeVersion": "containerd://1.7.25", "operatingSystem": "linux",
                    "architecture": "amd64", "osImage": "Amazon Linux 2023.6.20250123",
                    "kernelVersion": "6.1.124-134.200.amzn2023.x86_64",
                    "machineID": "ec2", "systemUUID": "ec2", "bootID": util::uuid()}
            }
        });
        if !taints.is_empty() {
            node["spec"]["taints"] = json!(taints);
        }
        self.nodes.insert(name.to_string(), node);
    }

    /// Adds a DaemonSet object (GET only).
    pub fn add_daemonset(&mut self, ns: &str, name: &str) {
        let k = key(ns, name);
        if self.daemonsets.contains_key(&k) {
            return;
        }
        let uid = self.owner_uid(ns, "DaemonSet", name);
        let rv = self.next_rv();
        let created = rfc3339(self.t0.1 - Duration::from_secs(86_400));
        let n = self.nodes.len();
        self.daemonsets.insert(
            k,
            json!({
                "kind": "DaemonSet", "apiVersion": "apps/v1",
                "metadata": {"name": name, "namespace": ns, "uid": uid, "resourceVersion": rv,
                    "generation": 1, "creationTimestamp": created, "labels": {"app": name}},
                "spec": {"selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}},
                    "updateStrategy": {"type": "RollingUpdate"}},
                "status": {"currentNumberScheduled": n, "desiredNumberScheduled": n, "numberAvailable": n,
                    "numberMisscheduled": 0, "numberReady": n, "observedGeneration": 1,
                    "updatedNumberScheduled": n}
            }),
        );
    }

    /// Removes a DaemonSet object (so drain's "DaemonSet not found" branch can be tested).
    pub fn remove_daemonset(&mut self, ns: &str, name: &str) -> bool {
        self.daemonsets.remove(&key(ns, name)).is_some()
    }

    /// Adds a PDB (policy/v1, `matchLabels` selector).
    pub fn add_pdb(
        &mut self,
        ns: &str,
        name: &str,
        match_labels: &[(String, String)],
        min_available: Option<Value>,
        max_unavailable: Option<Value>,
    ) {
        let ml: Map<String, Value> = match_labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut spec = json!({"selector": {"matchLabels": ml}});
        if let Some(v) = min_available {
            spec["minAvailable"] = v;
        }
        if let Some(v) = max_unavailable {
            spec["maxUnavailable"] = v;
        }
        let obj = json!({
            "kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
            "metadata": {"name": name, "namespace": ns, "uid": util::uuid(),
                "resourceVersion": self.next_rv(), "generation": 1,
                "creationTimestamp": rfc3339(self.t0.1 - Duration::from_secs(86_400))},
            "spec": spec
        });
        self.pdbs.insert(
            key(ns, name),
            PdbEntry {
                obj,
                processing: false,
            },
        );
    }

    /// Adds a pod. Returns its `namespace/name` key. Counts it towards its controller's replicas.
    pub fn add_pod(&mut self, spec: &PodSpec, now: Instant) -> String {
        let node = spec
            .node
            .clone()
            .unwrap_or_else(|| self.cfg.main_node.clone());
        if let Some((_, kind, name)) = spec.owner.kind_name() {
            *self
                .replicas
                .entry(format!("{}/{kind}/{name}", spec.namespace))
                .or_insert(0) += 1;
        }
        if let Owner::DaemonSet(ds) = &spec.owner {
            self.add_daemonset(&spec.namespace, ds);
        }
        if let Owner::ReplicaSet(rs) = &spec.owner {
            let active = !matches!(spec.phase.as_str(), "Succeeded" | "Failed");
            self.count_bare_rs_pod(spec, rs, active);
        }
        self.insert_pod(spec, &node, now)
    }

    /// Inserts a pod object built from `spec` on `node` (created an hour before `now`), without
    /// any controller bookkeeping.
    pub(crate) fn insert_pod(&mut self, spec: &PodSpec, node: &str, now: Instant) -> String {
        let node = node.to_string();
        let created = self.sys(now) - Duration::from_secs(3600);
        let (obj, _) = self.make_pod(spec, &node, created);
        let k = key(&spec.namespace, &spec.name);
        self.index_pod(&k, &obj);
        self.pods.insert(
            k.clone(),
            PodEntry {
                obj,
                shutdown: spec.shutdown,
                gone_at: None,
                ready_at: None,
                pending_ip: String::new(),
            },
        );
        k
    }

    /// Builds a pod object; returns it and its pod IP.
    pub(crate) fn make_pod(
        &mut self,
        spec: &PodSpec,
        node: &str,
        created: SystemTime,
    ) -> (Value, String) {
        let ns = spec.namespace.as_str();
        let created_s = rfc3339(created);
        let mut labels = Map::new();
        if spec.labels.is_empty() {
            let app = match &spec.owner {
                Owner::ReplicaSet(n) => n.rsplit_once('-').map(|(a, _)| a).unwrap_or(n),
                Owner::StatefulSet(n) | Owner::DaemonSet(n) | Owner::Job(n) => n,
                Owner::None | Owner::Mirror => &spec.name,
            };
            labels.insert("app".into(), json!(app));
        }
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), json!(v));
        }
        let mut annotations = Map::new();
        for (k, v) in &spec.annotations {
            annotations.insert(k.clone(), json!(v));
        }
        let mut owner_refs = Vec::new();
        match &spec.owner {
            Owner::Mirror => {
                let hash = format!("{:016x}{:016x}", util::rand_u64(), util::rand_u64());
                annotations.insert("kubernetes.io/config.hash".into(), json!(hash));
                annotations.insert("kubernetes.io/config.mirror".into(), json!(hash));
                annotations.insert("kubernetes.io/config.source".into(), json!("file"));
                let node_uid = self
                    .nodes
                    .get(node)
                    .map(|n| meta_str(n, "uid").to_string())
                    .unwrap_or_default();
                owner_refs.push(json!({"apiVersion": "v1", "kind": "Node", "name": node,
                    "uid": node_uid, "controller": true}));
            }
            other => {
                if let Some((api, kind, name)) = other.kind_name() {
                    let uid = self.owner_uid(ns, kind, name);
                    owner_refs.push(json!({"apiVersion": api, "kind": kind, "name": name,
                        "uid": uid, "controller": true, "blockOwnerDeletion": true}));
                }
            }
        }
        let mut volumes = vec![
            json!({"name": format!("kube-api-access-{}", util::name_suffix()),
            "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}
            ]}}),
        ];
        if spec.empty_dir {
            volumes.push(json!({"name": "cache", "emptyDir": {}}));
        }
        let restart = match spec.owner {
            Owner::Job(_) => "Never",
            _ => "Always",
        };
        let mut pspec = json!({
            "nodeName": node,
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": spec.grace,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "volumes": volumes,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]
        });
        if matches!(spec.owner, Owner::DaemonSet(_)) {
            pspec["tolerations"] = json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
            ]);
        }
        if matches!(spec.owner, Owner::Mirror) {
            pspec["tolerations"] = json!([{"operator": "Exists", "effect": "NoExecute"}]);
            pspec["priorityClassName"] = json!("system-node-critical");
            pspec["priority"] = json!(2_000_001_000);
        }
        if let Some(c) = &spec.priority_class {
            pspec["priorityClassName"] = json!(c);
        }
        if spec.priority_class.is_some() || spec.priority.is_some() {
            pspec["priority"] = json!(spec.priority_value());
        }
        let host_ip = self.node_ip(node);
        let pod_ip = if spec.host_network {
            pspec["hostNetwork"] = json!(true);
            host_ip.clone()
        } else {
            self.next_pod_ip(node)
        };
        let mut meta = json!({
            "name": spec.name, "namespace": ns, "uid": util::uuid(),
            "resourceVersion": self.next_rv(), "creationTimestamp": created_s, "labels": labels
        });
        if !annotations.is_empty() {
            meta["annotations"] = Value::Object(annotations);
        }
        if !owner_refs.is_empty() {
            meta["ownerReferences"] = json!(owner_refs);
        }
        if let Owner::ReplicaSet(rs) = &spec.owner {
            if let Some((_, hash)) = rs.rsplit_once('-') {
                meta["labels"]["pod-template-hash"] = json!(hash);
            }
            meta["generateName"] = json!(format!("{rs}-"));
        }
        let status = pod_status(&spec.phase, spec.ready, &host_ip, &pod_ip, &created_s);
        (
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": pspec, "status": status}),
            pod_ip,
        )
    }

    /// Applies everything that became due up to `now` (see the module docs), one event at a
    /// time in time order (at equal instants: terminations, then readiness, then the node
    /// controller), running the workload controllers after each at that event's instant. So the
    /// state and the availability history do not depend on how often anyone looks.
    pub fn tick(&mut self, now: Instant) {
        while let Some((at, class, k)) = self.timers.first().filter(|(t, ..)| *t <= now).cloned() {
            self.timers.pop_first();
            let live = match class {
                GONE => self.pods.get(&k).is_some_and(|e| e.gone_at == Some(at)),
                READY => self.pods.get(&k).is_some_and(|e| e.ready_at == Some(at)),
                _ => true,
            };
            if !live {
                continue;
            }
            match class {
                GONE => {
                    self.remove_pod(&k, at);
                }
                READY => self.become_ready(&k, at),
                _ => self.sync_unschedulable_taint(&k, at),
            }
            // A controller that created or retired pods may have scheduled new events at or
            // before `now`: they join the queue and are taken in their turn.
            self.reconcile(at);
        }
    }

    /// `class` of pod or node `k` falls due at `at` (see [`Store::timers`]).
    pub(crate) fn schedule(&mut self, at: Instant, class: u8, k: &str) {
        self.timers.insert((at, class, k.to_string()));
    }

    /// A Pending pod starts running and turns Ready.
    fn become_ready(&mut self, k: &str, at: Instant) {
        let rv = self.next_rv();
        let start = rfc3339(self.sys(at));
        let Some(e) = self.pods.get_mut(k) else {
            return;
        };
        e.ready_at = None;
        if is_terminating(&e.obj) {
            return;
        }
        let host_ip = e.obj["status"]["hostIP"].as_str().unwrap_or("").to_string();
        e.obj["status"] = pod_status("Running", true, &host_ip, &e.pending_ip, &start);
        e.obj["metadata"]["resourceVersion"] = json!(rv);
        let obj = e.obj.clone();
        self.touch_pod(&obj);
        self.log_pod(at, &obj, crate::workloads::Change::PodReady);
    }

    fn sync_unschedulable_taint(&mut self, node: &str, at: Instant) {
        const KEY: &str = "node.kubernetes.io/unschedulable";
        let time_added = rfc3339(self.sys(at));
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        let want = n["spec"]["unschedulable"] == true;
        let taints: Vec<Value> = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        let has = taints.iter().any(|t| t["key"] == KEY);
        if want == has {
            return;
        }
        let new: Vec<Value> = if want {
            let mut t = taints;
            t.push(json!({"key": KEY, "effect": "NoSchedule", "timeAdded": time_added}));
            t
        } else {
            taints.into_iter().filter(|t| t["key"] != KEY).collect()
        };
        let rv = self.next_rv();
        let n = self.nodes.get_mut(node).expect("node");
        if new.is_empty() {
            n["spec"].as_object_mut().unwrap().remove("taints");
        } else {
            n["spec"]["taints"] = json!(new);
        }
        n["metadata"]["resourceVersion"] = json!(rv);
    }

    /// The cloud took the VM behind `node`: every pod bound to it is gone at once (as when the
    /// Node object is deleted and the pod garbage collector removes its pods; real clusters take
    /// longer), and the controllers replace what they own. Returns how many pods went.
    pub fn reclaim_node(&mut self, node: &str, now: Instant) -> usize {
        self.tick(now);
        let on: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| e.obj["spec"]["nodeName"] == node)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &on {
            self.remove_pod(k, now);
        }
        self.reconcile(now);
        on.len()
    }

    fn remove_pod(&mut self, k: &str, at: Instant) -> Option<Value> {
        let e = self.pods.remove(k)?;
        self.unindex_pod(k, &e.obj);
        self.rv += 1;
        self.log_pod(at, &e.obj, crate::workloads::Change::PodGone);
        if controller_of(&e.obj).is_some_and(|(kind, _)| kind == "StatefulSet") {
            let mut fresh = e.obj.clone();
            let ip = self.make_replacement(&mut fresh, meta_str(&e.obj, "name").to_string(), at);
            self.insert_replacement(fresh, e.shutdown, ip, at);
        }
        Some(e.obj)
    }

    /// Turns a copy of `obj` into a fresh Pending pod named `name` on the replacement node.
    /// Returns the pod IP it will get once running.
    fn make_replacement(&mut self, obj: &mut Value, name: String, at: Instant) -> String {
        let node = if obj["spec"]["nodeName"] == self.cfg.replacement_node.as_str() {
            self.cfg.main_node.clone()
        } else {
            self.cfg.replacement_node.clone()
        };
        let created = rfc3339(self.sys(at));
        let host_ip = self.node_ip(&node);
        let pod_ip = self.next_pod_ip(&node);
        let m = obj["metadata"].as_object_mut().expect("metadata");
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(util::uuid()));
        m.insert("creationTimestamp".into(), json!(created));
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        obj["spec"]["nodeName"] = json!(node);
        obj["status"] = pod_status("Pending", false, &host_ip, "", &created);
        pod_ip
    }

    fn insert_replacement(&mut self, mut obj: Value, shutdown: Duration, ip: String, at: Instant) {
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        let k = key(meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        self.insert_pending(k, obj, shutdown, ip, at);
    }

    /// Stores a Pending pod created at `at` under `k`; it turns Ready
    /// `replacement_ready_after` later.
    pub(crate) fn insert_pending(
        &mut self,
        k: String,
        obj: Value,
        shutdown: Duration,
        ip: String,
        at: Instant,
    ) {
        let ready_at = self.cfg.replacement_ready_after.map(|d| at + d);
        if let Some(t) = ready_at {
            self.schedule(t, READY, &k);
        }
        self.index_pod(&k, &obj);
        self.pods.insert(
            k,
            PodEntry {
                obj,
                shutdown,
                gone_at: None,
                ready_at,
                pending_ip: ip,
            },
        );
    }

    /// GET one pod.
    pub fn get_pod(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.pods
            .get(&key(ns, name))
            .map(|e| e.obj.clone())
            .ok_or_else(|| status::not_found("pods", "", name))
    }

    /// DELETE a pod (bypasses PDBs). Returns the pod as the server would (200).
    pub fn delete_pod(
        &mut self,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        now: Instant,
    ) -> Result<Value, ApiError> {
        let k = key(ns, name);
        let pod = self.get_pod(ns, name)?;
        check_preconditions(&pod, opts, name)?;
        if opts.dry_run {
            return Ok(pod);
        }
        Ok(self.delete_inner(&k, opts.grace, now, false))
    }

    fn delete_inner(&mut self, k: &str, grace: Option<i64>, now: Instant, eviction: bool) -> Value {
        let out = self.mark_deleted(k, grace, now, eviction, "api");
        self.reconcile(now);
        out
    }

    /// Starts a pod's graceful termination (see the module docs) without running the
    /// controllers. `by` says who asked (for the workload log).
    pub(crate) fn mark_deleted(
        &mut self,
        k: &str,
        grace: Option<i64>,
        now: Instant,
        eviction: bool,
        by: &'static str,
    ) -> Value {
        let now_sys = self.sys(now);
        let e = self.pods.get(k).expect("pod").clone();
        let obj = &e.obj;
        let phase = obj["status"]["phase"].as_str().unwrap_or("");
        let mut grace = grace.unwrap_or_else(|| {
            obj["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        });
        if grace < 0 {
            grace = 1;
        }
        if phase == "Succeeded"
            || phase == "Failed"
            || obj["spec"]["nodeName"].as_str().unwrap_or("").is_empty()
        {
            grace = 0;
        }
        let deadline = rfc3339(now_sys + Duration::from_secs(grace as u64));
        if let Some(current) = obj["metadata"]["deletionGracePeriodSeconds"].as_i64() {
            // Already terminating: only a shorter grace changes anything. Like the apiserver
            // (rest.BeforeDelete), the new deletionTimestamp is the old one minus the old grace
            // plus the new one; the kubelet kills the containers within the new grace from now.
            if grace < current {
                let shortened = obj["metadata"]["deletionTimestamp"]
                    .as_str()
                    .and_then(util::parse_rfc3339)
                    .and_then(|t| t.checked_sub(Duration::from_secs(current.max(0) as u64)))
                    .map(|t| rfc3339(t + Duration::from_secs(grace as u64)))
                    .unwrap_or(deadline);
                let rv = self.next_rv();
                let ent = self.pods.get_mut(k).expect("pod");
                ent.obj["metadata"]["deletionTimestamp"] = json!(shortened);
                ent.obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                ent.obj["metadata"]["resourceVersion"] = json!(rv);
                let cut = now + Duration::from_secs(grace as u64);
                let gone = ent.gone_at.map_or(cut, |g| g.min(cut));
                ent.gone_at = Some(gone);
                let out = ent.obj.clone();
                self.schedule(gone, GONE, k);
                if grace == 0 {
                    self.remove_pod(k, now);
                }
                return out;
            }
            return e.obj;
        }
        let rv = self.next_rv();
        let ent = self.pods.get_mut(k).expect("pod");
        if eviction {
            if let Some(c) = ent.obj["status"]["conditions"].as_array_mut() {
                c.push(
                    json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                    "lastTransitionTime": rfc3339(now_sys), "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting"}),
                );
            }
        }
        ent.obj["metadata"]["deletionTimestamp"] = json!(deadline);
        ent.obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        ent.obj["metadata"]["resourceVersion"] = json!(rv);
        let gone = now + e.shutdown.min(Duration::from_secs(grace as u64));
        ent.gone_at = Some(gone);
        let out = ent.obj.clone();
        self.schedule(gone, GONE, k);
        self.touch_pod(&out);
        self.log_pod(
            now,
            &out,
            crate::workloads::Change::PodTerminating {
                by,
                eviction,
                grace,
            },
        );
        if grace == 0 {
            self.remove_pod(k, now);
        }
        out
    }

    /// The PDBs in the pod's namespace whose selector matches it.
    pub fn pdbs_for(&self, pod: &Value) -> Vec<String> {
        let ns = meta_str(pod, "namespace");
        self.pdbs
            .iter()
            .filter(|(_, p)| meta_str(&p.obj, "namespace") == ns)
            .filter(|(_, p)| selector::selector_matches(&p.obj["spec"]["selector"], pod))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Computes a PDB's status from the live pods.
    pub fn pdb_status(&self, pdb: &Value) -> PdbStatus {
        let ns = meta_str(pdb, "namespace");
        let sel = &pdb["spec"]["selector"];
        let selected: Vec<&Value> = self
            .pods
            .values()
            .map(|e| &e.obj)
            .filter(|p| meta_str(p, "namespace") == ns && selector::selector_matches(sel, p))
            .collect();
        let healthy = selected.iter().filter(|p| healthy(p)).count() as i64;
        let controller_expected = || -> i64 {
            let mut seen = BTreeSet::new();
            let mut n = 0;
            for p in &selected {
                match controller_of(p) {
                    Some((kind, name)) if kind == "ReplicaSet" => {
                        let (k, scale) = self.replicaset_scale(ns, &name);
                        if seen.insert(("scale".to_string(), k)) {
                            n += scale;
                        }
                    }
                    Some((kind, name)) if kind != "Node" => {
                        if seen.insert((kind.clone(), name.clone())) {
                            n += self
                                .replicas
                                .get(&format!("{ns}/{kind}/{name}"))
                                .copied()
                                .unwrap_or(1);
                        }
                    }
                    _ => n += 1,
                }
            }
            n
        };
        let spec = &pdb["spec"];
        let (expected, desired) = if let Some(min) = spec.get("minAvailable") {
            if let Some(n) = min.as_i64() {
                (selected.len() as i64, n)
            } else {
                let e = controller_expected();
                (e, scaled(min, e).unwrap_or(e))
            }
        } else if let Some(max) = spec.get("maxUnavailable") {
            let e = controller_expected();
            (e, e - scaled(max, e).unwrap_or(0))
        } else {
            (selected.len() as i64, 1)
        };
        let allowed = if expected <= 0 {
            0
        } else {
            (healthy - desired).max(0)
        };
        PdbStatus {
            expected,
            healthy,
            desired,
            allowed,
        }
    }

    /// A PDB object with its status filled in.
    pub fn pdb_with_status(&self, e: &PdbEntry) -> Value {
        let st = self.pdb_status(&e.obj);
        let mut o = e.obj.clone();
        let now = rfc3339(self.sys(Instant::now()));
        let (cs, reason) = if st.allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        o["status"] = json!({
            "observedGeneration": if e.processing { 0 } else { 1 },
            "disruptionsAllowed": st.allowed, "currentHealthy": st.healthy,
            "desiredHealthy": st.desired, "expectedPods": st.expected,
            "conditions": [{"type": "DisruptionAllowed", "status": cs, "reason": reason,
                "observedGeneration": 1, "lastTransitionTime": now, "message": ""}]
        });
        o
    }

    /// The eviction subresource: PDB check, then a graceful delete. Ok means 201.
    pub fn evict(
        &mut self,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        now: Instant,
    ) -> Result<(), ApiError> {
        let k = key(ns, name);
        let pod = self.get_pod(ns, name)?;
        check_preconditions(&pod, opts, name)?;
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        let can_ignore_pdb =
            matches!(phase, "Pending" | "Succeeded" | "Failed") || is_terminating(&pod);
        if !can_ignore_pdb {
            let pdbs = self.pdbs_for(&pod);
            if pdbs.len() > 1 {
                return Err(status::multiple_pdbs());
            }
            if let Some(pk) = pdbs.first() {
                let entry = &self.pdbs[pk];
                let st = self.pdb_status(&entry.obj);
                let always = entry.obj["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
                let unready_ok =
                    !is_ready(&pod) && (always || (st.healthy >= st.desired && st.desired > 0));
                if !unready_ok {
                    let pdb_name = meta_str(&entry.obj, "name");
                    if entry.processing {
                        return Err(status::pdb_processing(pdb_name));
                    }
                    if st.allowed <= 0 {
                        return Err(status::pdb_blocks(pdb_name, st.desired, st.healthy));
                    }
                }
            }
        }
        if !opts.dry_run {
            self.delete_inner(&k, opts.grace, now, true);
        }
        Ok(())
    }

    /// Lists pods (see [`ListQuery`]), paging like the etcd3 store does.
    pub fn list_pods(&self, q: &ListQuery) -> Result<Value, ApiError> {
        // A node's pods (what drainers list): from the node index, in key order like the
        // rest; `list` still applies every term. (A scan of every pod made the simulator the
        // bottleneck of a 500-node mass reclaim.)
        let node = selector::parse_fields(&q.field).ok().and_then(|terms| {
            terms
                .into_iter()
                .find(|t| t.key == "spec.nodeName" && t.equal)
                .map(|t| t.value)
        });
        if let Some(node) = node {
            let keys = self.workloads.node_pods.get(&node);
            let items = keys
                .into_iter()
                .flatten()
                .filter_map(|k| self.pods.get_key_value(k))
                .map(|(k, e)| (k, &e.obj));
            return self.list("PodList", "v1", items, q, selector::pod_field);
        }
        let items = self.pods.iter().map(|(k, e)| (k, &e.obj));
        self.list("PodList", "v1", items, q, selector::pod_field)
    }

    /// Lists nodes.
    pub fn list_nodes(&self, q: &ListQuery) -> Result<Value, ApiError> {
        self.list("NodeList", "v1", self.nodes.iter(), q, selector::node_field)
    }

    /// Lists events.
    pub fn list_events(&self, q: &ListQuery) -> Result<Value, ApiError> {
        self.list(
            "EventList",
            "v1",
            self.events.iter(),
            q,
            selector::event_field,
        )
    }

    /// Lists DaemonSets.
    pub fn list_daemonsets(&self, q: &ListQuery) -> Result<Value, ApiError> {
        self.list(
            "DaemonSetList",
            "apps/v1",
            self.daemonsets.iter(),
            q,
            selector::meta_field,
        )
    }

    /// Lists PDBs (with computed status).
    pub fn list_pdbs(&self, q: &ListQuery, api_version: &str) -> Result<Value, ApiError> {
        let objs: BTreeMap<String, Value> = self
            .pdbs
            .iter()
            .map(|(k, e)| {
                let mut o = self.pdb_with_status(e);
                o["apiVersion"] = json!(api_version);
                (k.clone(), o)
            })
            .collect();
        self.list(
            "PodDisruptionBudgetList",
            api_version,
            objs.iter(),
            q,
            selector::meta_field,
        )
    }

    /// The namespaces that exist (the usual four plus every namespace holding an object).
    pub fn namespaces(&self) -> Vec<String> {
        let mut set: BTreeSet<String> =
            ["default", "kube-node-lease", "kube-public", "kube-system"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        for k in self
            .pods
            .keys()
            .chain(self.pdbs.keys())
            .chain(self.daemonsets.keys())
            .chain(self.events.keys())
        {
            if let Some((ns, _)) = k.split_once('/') {
                set.insert(ns.to_string());
            }
        }
        set.into_iter().collect()
    }

    /// A Namespace object.
    pub fn namespace_obj(&self, name: &str) -> Value {
        json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": stable_uid(name),
                "resourceVersion": "7", "creationTimestamp": rfc3339(self.t0.1 - Duration::from_secs(7 * 86_400)),
                "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    }

    pub(crate) fn list<'a>(
        &self,
        kind: &str,
        api_version: &str,
        items: impl Iterator<Item = (&'a String, &'a Value)>,
        q: &ListQuery,
        field_of: fn(&Value, &str) -> Option<String>,
    ) -> Result<Value, ApiError> {
        // The apiserver answers the selector parser's own message (kubectl wraps it in
        // `Unable to find "/v1, Resource=pods" that match label selector ...`).
        let bad_selector = |e: String| status::bad_request(&e);
        let fields: Vec<FieldTerm> = selector::parse_fields(&q.field).map_err(bad_selector)?;
        let labels: Vec<LabelReq> =
            selector::parse_labels(&q.label).map_err(|e| status::bad_request(&e))?;
        // Validate field names once even when nothing is listed.
        selector::match_fields(&fields, |f| field_of(&json!({}), f)).map_err(bad_selector)?;
        let prefix = q
            .namespace
            .as_ref()
            .map(|ns| format!("{ns}/"))
            .unwrap_or_default();
        let start = match &q.cont {
            Some(tok) if !tok.is_empty() => Some(self.decode_continue(tok)?),
            _ => None,
        };
        let scoped: Vec<(&String, &Value)> = items
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| start.as_ref().is_none_or(|s| k.as_str() >= s.as_str()))
            .collect();
        let mut out = Vec::new();
        let mut last_key: Option<&String> = None;
        for (k, obj) in &scoped {
            if q.limit > 0 && out.len() >= q.limit {
                break;
            }
            let matches = selector::match_fields(&fields, |f| field_of(obj, f))
                .map_err(bad_selector)?
                && selector::match_labels(&labels, obj);
            if matches {
                let mut o = (*obj).clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                out.push(o);
                last_key = Some(k);
            }
        }
        let mut meta = json!({"resourceVersion": self.resource_version()});
        if q.limit > 0 && out.len() >= q.limit {
            let last = last_key.expect("a full page has a last key");
            let remaining = scoped.iter().filter(|(k, _)| *k > last).count();
            if remaining > 0 {
                let tok =
                    json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": format!("{last}\u{0}")});
                meta["continue"] = json!(util::base64(tok.to_string().as_bytes(), false));
                // The etcd3 store only counts when there is no selector to apply.
                if fields.is_empty() && labels.is_empty() {
                    meta["remainingItemCount"] = json!(remaining);
                }
            }
        }
        Ok(json!({"kind": kind, "apiVersion": api_version, "metadata": meta, "items": out}))
    }

    fn decode_continue(&self, tok: &str) -> Result<String, ApiError> {
        let invalid = |why: &str| status::bad_request(&format!("continue key is not valid: {why}"));
        let raw = util::base64_decode(tok).ok_or_else(|| invalid("illegal base64 data"))?;
        let v: Value = serde_json::from_slice(&raw).map_err(|e| invalid(&e.to_string()))?;
        if v["v"] != "meta.k8s.io/v1" {
            return Err(invalid(
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ));
        }
        let rv = v["rv"].as_u64().ok_or_else(|| invalid("missing rv"))?;
        if rv < self.compacted_rv {
            return Err(status::expired_continue());
        }
        v["start"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| invalid("missing start"))
    }

    /// GET one node.
    pub fn get_node(&self, name: &str) -> Result<Value, ApiError> {
        self.nodes
            .get(name)
            .cloned()
            .ok_or_else(|| status::not_found("nodes", "", name))
    }

    /// PATCH a node. `media_type` selects the patch flavour (already validated by the router).
    pub fn patch_node(
        &mut self,
        name: &str,
        media_type: &str,
        body: &[u8],
        dry_run: bool,
        now: Instant,
    ) -> Result<Value, ApiError> {
        let current = self.get_node(name)?;
        let mut patched = current.clone();
        apply_patch(&mut patched, media_type, body)?;
        self.update_node(name, current, patched, dry_run, now)
    }

    /// PATCH `nodes/{name}/status`: only `status` (and metadata) changes, `spec` is kept, as
    /// the node status strategy does. Condition times must decode as `metav1.Time` and are
    /// stored as the server writes them (UTC, whole seconds); nothing else touches them.
    pub fn patch_node_status(
        &mut self,
        name: &str,
        media_type: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get_node(name)?;
        let mut patched = current.clone();
        apply_patch(&mut patched, media_type, body)?;
        self.update_node_status(name, current, patched, dry_run, true)
    }

    /// PUT `nodes/{name}/status`.
    pub fn put_node_status(
        &mut self,
        name: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get_node(name)?;
        let new: Value = serde_json::from_slice(body)
            .map_err(|e| status::bad_request(&format!("error decoding body: {e}")))?;
        let new_name = new.pointer("/metadata/name").and_then(Value::as_str);
        if new_name != Some(name) {
            return Err(status::bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                new_name.unwrap_or("")
            )));
        }
        self.update_node_status(name, current, new, dry_run, false)
    }

    fn update_node_status(
        &mut self,
        name: &str,
        current: Value,
        patched: Value,
        dry_run: bool,
        from_patch: bool,
    ) -> Result<Value, ApiError> {
        let cur_rv = meta_str(&current, "resourceVersion").to_string();
        if let Some(Value::String(rv)) = patched.pointer("/metadata/resourceVersion") {
            if !rv.is_empty() && *rv != cur_rv {
                return Err(status::conflict_modified("nodes", "", name));
            }
        }
        let mut st = patched.get("status").cloned().unwrap_or_else(|| json!({}));
        if let Err(e) = normalize_node_status(&mut st) {
            return Err(if from_patch {
                status::patch_decode_invalid(&patched.to_string(), &e)
            } else {
                status::decode_error("Node", "v1", &e)
            });
        }
        let mut new = current.clone();
        new["status"] = st;
        for f in ["labels", "annotations"] {
            match patched["metadata"].get(f) {
                Some(v) if !v.is_null() => new["metadata"][f] = v.clone(),
                _ => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        if new == current || dry_run {
            return Ok(new);
        }
        new["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.nodes.insert(name.to_string(), new.clone());
        Ok(new)
    }

    /// PUT a node (full replacement; `metadata.resourceVersion` is required to match if set).
    pub fn put_node(
        &mut self,
        name: &str,
        body: &[u8],
        dry_run: bool,
        now: Instant,
    ) -> Result<Value, ApiError> {
        let current = self.get_node(name)?;
        let new: Value = serde_json::from_slice(body)
            .map_err(|e| status::bad_request(&format!("error decoding body: {e}")))?;
        if new["kind"] != "Node" && !new["kind"].is_null() {
            return Err(status::bad_request("the object kind must be Node"));
        }
        self.update_node(name, current, new, dry_run, now)
    }

    fn update_node(
        &mut self,
        name: &str,
        current: Value,
        mut new: Value,
        dry_run: bool,
        now: Instant,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(status::bad_request(
                "the object must be a JSON object (kind Node)",
            ));
        }
        let cur_rv = meta_str(&current, "resourceVersion").to_string();
        match new.pointer("/metadata/resourceVersion") {
            Some(Value::String(rv)) if !rv.is_empty() && *rv != cur_rv => {
                return Err(status::conflict_modified("nodes", "", name));
            }
            Some(v) if !v.is_null() && !v.is_string() => {
                return Err(status::bad_request(
                    "metadata.resourceVersion: must be a string",
                ));
            }
            _ => {}
        }
        let new_name = new.pointer("/metadata/name").and_then(Value::as_str);
        if new_name.is_some_and(|n| n != name) {
            return Err(status::bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                new_name.unwrap_or("")
            )));
        }
        // Identity fields cannot change; status changes are ignored on the main resource.
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        for f in ["name", "uid", "creationTimestamp", "resourceVersion"] {
            new["metadata"][f] = current["metadata"][f].clone();
        }
        new["kind"] = json!("Node");
        new["apiVersion"] = json!("v1");
        new["status"] = current["status"].clone();
        if !new["spec"].is_object() {
            new["spec"] = json!({});
        }
        validate_taints(name, &new)?;
        if new == current || dry_run {
            return Ok(if dry_run { new } else { current });
        }
        let flipped = new["spec"]["unschedulable"] != current["spec"]["unschedulable"];
        new["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.nodes.insert(name.to_string(), new.clone());
        if flipped {
            if let Some(d) = self.cfg.node_controller_delay {
                self.schedule(now + d, NODE_JOB, name);
            }
        }
        Ok(new)
    }

    /// Sets a pod's Ready condition (for "unhealthy pod" PDB tests).
    pub fn set_pod_ready(&mut self, ns: &str, name: &str, ready: bool) -> bool {
        let rv = self.next_rv();
        let Some(e) = self.pods.get_mut(&key(ns, name)) else {
            return false;
        };
        let start = e.obj["status"]["startTime"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let host = e.obj["status"]["hostIP"].as_str().unwrap_or("").to_string();
        let ip = e.obj["status"]["podIP"].as_str().unwrap_or("").to_string();
        let phase = e.obj["status"]["phase"]
            .as_str()
            .unwrap_or("Running")
            .to_string();
        e.obj["status"] = pod_status(&phase, ready, &host, &ip, &start);
        e.obj["metadata"]["resourceVersion"] = json!(rv);
        let obj = e.obj.clone();
        self.touch_pod(&obj);
        self.reconcile(Instant::now());
        true
    }
}

/// Applies a PATCH body of `media_type` (validated by the router) to `doc`.
pub(crate) fn apply_patch(doc: &mut Value, media_type: &str, body: &[u8]) -> Result<(), ApiError> {
    match media_type {
        "application/json-patch+json" => {
            patch::json_patch(doc, body).map_err(|e| match e {
                PatchError::BadRequest(m) => status::bad_request(&m),
                PatchError::Failed(m) => status::patch_failed(&m),
            })?;
        }
        _ => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| status::bad_request(&format!("error decoding patch: {e}")))?;
            if !p.is_object() {
                return Err(status::bad_request(
                    "json: cannot unmarshal into Go value of type map[string]interface {}",
                ));
            }
            if media_type == "application/strategic-merge-patch+json" {
                patch::strategic_merge_patch(doc, &p);
            } else {
                patch::merge_patch(doc, &p);
            }
        }
    }
    Ok(())
}

/// Checks the types of a NodeStatus' conditions (a list of objects with string `type`,
/// `status`, `reason`, `message` and `metav1.Time` timestamps) and rewrites the timestamps the
/// way the server encodes them. Errors read like the JSON decoder's.
fn normalize_node_status(st: &mut Value) -> Result<(), String> {
    if !st.is_object() {
        return Err(
            "json: cannot unmarshal into Go struct field Node.status of type v1.NodeStatus".into(),
        );
    }
    let Some(conds) = st.get_mut("conditions") else {
        return Ok(());
    };
    if conds.is_null() {
        return Ok(());
    }
    let Some(list) = conds.as_array_mut() else {
        return Err("json: cannot unmarshal object into Go struct field NodeStatus.status.conditions of type []v1.NodeCondition".into());
    };
    for c in list.iter_mut() {
        let Some(o) = c.as_object_mut() else {
            return Err("json: cannot unmarshal into Go struct field NodeStatus.status.conditions of type v1.NodeCondition".into());
        };
        for f in ["type", "status", "reason", "message"] {
            match o.get(f) {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(_) => {
                    return Err(format!(
                        "json: cannot unmarshal into Go struct field NodeCondition.status.conditions.{f} of type string"
                    ))
                }
            }
        }
        for f in ["lastHeartbeatTime", "lastTransitionTime"] {
            match o.get(f).cloned() {
                None | Some(Value::Null) => {}
                Some(Value::String(t)) if t.is_empty() => {
                    o.insert(f.into(), Value::Null);
                }
                Some(Value::String(t)) => {
                    let parsed = crate::kubetime::parse_time(&t)?;
                    o.insert(f.into(), json!(crate::kubetime::format_time(parsed)));
                }
                Some(_) => {
                    return Err(format!(
                        "json: cannot unmarshal into Go struct field NodeCondition.status.conditions.{f} of type string"
                    ))
                }
            }
        }
    }
    Ok(())
}

fn check_preconditions(pod: &Value, opts: &DeleteOpts, name: &str) -> Result<(), ApiError> {
    if let Some(want) = &opts.uid {
        let have = meta_str(pod, "uid");
        if want != have {
            return Err(status::conflict_uid("Pod", name, "pods", want, have));
        }
    }
    if let Some(want) = &opts.resource_version {
        let have = meta_str(pod, "resourceVersion");
        if want != have {
            return Err(status::failure(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on Pod {name:?}: Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                ),
                Some(json!({"name": name, "kind": "pods"})),
            ));
        }
    }
    Ok(())
}

fn validate_taints(name: &str, node: &Value) -> Result<(), ApiError> {
    let Some(taints) = node["spec"].get("taints") else {
        return Ok(());
    };
    if taints.is_null() {
        return Ok(());
    }
    let Some(list) = taints.as_array() else {
        return Err(status::bad_request(
            "json: cannot unmarshal into Go struct field NodeSpec.spec.taints of type []v1.Taint",
        ));
    };
    let mut seen = BTreeSet::new();
    for (i, t) in list.iter().enumerate() {
        let field = format!("spec.taints[{i}]");
        let k = t["key"].as_str().unwrap_or("");
        let effect = t["effect"].as_str().unwrap_or("");
        if k.is_empty() {
            return Err(status::invalid(
                "Node",
                "nodes",
                name,
                &format!("{field}.key"),
                "FieldValueRequired",
                "Required value",
            ));
        }
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(status::invalid(
                "Node",
                "nodes",
                name,
                &format!("{field}.effect"),
                "FieldValueNotSupported",
                &format!("Unsupported value: {effect:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""),
            ));
        }
        if !seen.insert((k.to_string(), effect.to_string())) {
            return Err(status::invalid(
                "Node",
                "nodes",
                name,
                &field,
                "FieldValueDuplicate",
                &format!(
                    "Duplicate value: core.Taint{{Key:{k:?}, Value:{:?}, Effect:{effect:?}, TimeAdded:<nil>}}: taints must be unique by key and effect pair",
                    t["value"].as_str().unwrap_or("")
                ),
            ));
        }
    }
    Ok(())
}
