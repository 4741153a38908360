//! Discovery documents (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}[/{v}]`) and the
//! server-side `Table` rendering kubectl asks for (`Accept: ...;as=Table;g=meta.k8s.io;v=v1`).
//!
//! Only legacy discovery is served: a client asking for aggregated discovery
//! (`as=APIGroupDiscoveryList`) gets the legacy document with `Content-Type: application/json`,
//! which client-go takes as "not supported" and falls back from.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::store::is_terminating;
use crate::util::{human_age, parse_rfc3339};

/// Which API versions the fake server has.
#[derive(Debug, Clone)]
pub struct Versions {
    /// `v1` (1.22+, default) or `v1beta1` (an old 1.21 cluster).
    pub eviction: String,
    /// Whether `events.k8s.io/v1` is served (default; off: a cluster older than 1.19).
    pub events_v1: bool,
}

impl Versions {
    /// True for the "old cluster" configuration.
    pub fn old(&self) -> bool {
        self.eviction == "v1beta1"
    }

    /// The policy group versions served.
    pub fn policy_versions(&self) -> Vec<&'static str> {
        if self.old() {
            vec!["v1beta1"]
        } else {
            vec!["v1"]
        }
    }
}

/// `GET /version`.
pub fn version(v: &Versions) -> Value {
    let (minor, git, go, date) = if v.old() {
        ("21", "v1.21.14", "go1.16.15", "2022-06-15T14:15:38Z")
    } else {
        ("32", "v1.32.0", "go1.23.3", "2024-12-11T17:59:15Z")
    };
    json!({"major": "1", "minor": minor, "gitVersion": git,
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53", "gitTreeState": "clean",
        "buildDate": date, "goVersion": go, "compiler": "gc", "platform": "linux/amd64"})
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn res(name: &str, singular: &str, namespaced: bool, kind: &str, verbs: &[&str]) -> Value {
    json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
        "verbs": verbs})
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `GET /api/v1`.
pub fn core_v1(v: &Versions) -> Value {
    let mut pods = res("pods", "pod", true, "Pod", RW);
    pods["shortNames"] = json!(["po"]);
    pods["categories"] = json!(["all"]);
    let mut nodes = res("nodes", "node", false, "Node", RW);
    nodes["shortNames"] = json!(["no"]);
    let mut ns = res(
        "namespaces",
        "namespace",
        false,
        "Namespace",
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
    );
    ns["shortNames"] = json!(["ns"]);
    let mut ev = res("events", "event", true, "Event", RW);
    ev["shortNames"] = json!(["ev"]);
    let mut eviction = res("pods/eviction", "", true, "Eviction", &["create"]);
    eviction["group"] = json!("policy");
    eviction["version"] = json!(v.eviction);
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        ev,
        ns,
        res("namespaces/status", "", false, "Namespace", &["get", "patch", "update"]),
        nodes,
        res("nodes/status", "", false, "Node", &["get", "patch", "update"]),
        pods,
        eviction,
        res("pods/status", "", true, "Pod", &["get", "patch", "update"]),
    ]})
}

fn group(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0].clone()})
}

/// `GET /apis`.
pub fn api_groups(v: &Versions) -> Value {
    let mut groups = vec![group("apps", &["v1"])];
    if v.events_v1 {
        groups.push(group("events.k8s.io", &["v1"]));
    }
    groups.push(group("policy", &v.policy_versions()));
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub fn api_group(v: &Versions, name: &str) -> Option<Value> {
    let mut g = match name {
        "apps" => group("apps", &["v1"]),
        "events.k8s.io" if v.events_v1 => group("events.k8s.io", &["v1"]),
        "policy" => group("policy", &v.policy_versions()),
        _ => return None,
    };
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `GET /apis/{group}/{version}`.
pub fn group_version(v: &Versions, group: &str, version: &str) -> Option<Value> {
    let resources = match (group, version) {
        ("apps", "v1") => {
            let mut ds = res("daemonsets", "daemonset", true, "DaemonSet", RW);
            ds["shortNames"] = json!(["ds"]);
            ds["categories"] = json!(["all"]);
            let mut deploy = res("deployments", "deployment", true, "Deployment", RW);
            deploy["shortNames"] = json!(["deploy"]);
            deploy["categories"] = json!(["all"]);
            let mut rs = res("replicasets", "replicaset", true, "ReplicaSet", RW);
            rs["shortNames"] = json!(["rs"]);
            rs["categories"] = json!(["all"]);
            let status =
                |name: &str, kind: &str| res(name, "", true, kind, &["get", "patch", "update"]);
            vec![
                ds,
                status("daemonsets/status", "DaemonSet"),
                deploy,
                status("deployments/status", "Deployment"),
                rs,
                status("replicasets/status", "ReplicaSet"),
            ]
        }
        ("events.k8s.io", "v1") if v.events_v1 => {
            let mut ev = res("events", "event", true, "Event", RW);
            ev["shortNames"] = json!(["ev"]);
            vec![ev]
        }
        ("policy", ver) if v.policy_versions().contains(&ver) => {
            let mut pdb = res(
                "poddisruptionbudgets",
                "poddisruptionbudget",
                true,
                "PodDisruptionBudget",
                RW,
            );
            pdb["shortNames"] = json!(["pdb"]);
            vec![
                pdb,
                res(
                    "poddisruptionbudgets/status",
                    "",
                    true,
                    "PodDisruptionBudget",
                    &["get", "patch", "update"],
                ),
            ]
        }
        _ => return None,
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"), "resources": resources}))
}

/// Renders one table row's cells.
type CellFn = fn(&Value, SystemTime) -> Vec<Value>;

/// What to embed in each table row (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

fn col(name: &str, ty: &str, format: &str, priority: i64, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

fn age(obj: &Value, now: SystemTime) -> String {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .and_then(|t| now.duration_since(t).ok())
        .map(human_age)
        .unwrap_or_else(|| "<unknown>".into())
}

fn pod_status_text(p: &Value) -> String {
    if is_terminating(p) {
        return "Terminating".into();
    }
    let phase = p["status"]["phase"].as_str().unwrap_or("Unknown");
    match phase {
        "Succeeded" => "Completed".into(),
        "Failed" => "Error".into(),
        "Pending" => p
            .pointer("/status/containerStatuses/0/state/waiting/reason")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            .into(),
        other => other.into(),
    }
}

fn pod_cells(p: &Value, now: SystemTime) -> Vec<Value> {
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = p["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let s = |ptr: &str| {
        p.pointer(ptr)
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string()
    };
    vec![
        json!(p["metadata"]["name"]),
        json!(format!("{ready}/{total}")),
        json!(pod_status_text(p)),
        json!(restarts.to_string()),
        json!(age(p, now)),
        json!(s("/status/podIP")),
        json!(s("/spec/nodeName")),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn node_cells(n: &Value, now: SystemTime) -> Vec<Value> {
    let ready = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True")
        .unwrap_or(false);
    let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
    if n["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    let info = &n["status"]["nodeInfo"];
    let internal = n["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("<none>");
    vec![
        json!(n["metadata"]["name"]),
        json!(status),
        json!("<none>"),
        json!(age(n, now)),
        json!(info["kubeletVersion"]),
        json!(internal),
        json!("<none>"),
        json!(info["osImage"]),
        json!(info["kernelVersion"]),
        json!(info["containerRuntimeVersion"]),
    ]
}

/// Cells of an Event row, from either group's shape.
fn event_cells(e: &Value, now: SystemTime) -> Vec<Value> {
    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let reg = e
        .get("regarding")
        .or_else(|| e.get("involvedObject"))
        .cloned()
        .unwrap_or(Value::Null);
    let when = |t: &str| {
        parse_rfc3339(t)
            .and_then(|t| now.duration_since(t).ok())
            .map(human_age)
            .unwrap_or_else(|| "<unknown>".into())
    };
    let last = e["series"]["lastObservedTime"]
        .as_str()
        .or(e["lastTimestamp"].as_str())
        .or(e["deprecatedLastTimestamp"].as_str())
        .or(e["eventTime"].as_str())
        .unwrap_or("");
    let first = e["firstTimestamp"]
        .as_str()
        .or(e["deprecatedFirstTimestamp"].as_str())
        .or(e["eventTime"].as_str())
        .unwrap_or("");
    let count = e["series"]["count"]
        .as_i64()
        .or(e["count"].as_i64())
        .or(e["deprecatedCount"].as_i64())
        .unwrap_or(1);
    let msg = if e.get("note").is_some() {
        s("note")
    } else {
        s("message")
    };
    let source = e
        .get("reportingController")
        .or(e.get("reportingComponent"))
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| e["source"]["component"].as_str().unwrap_or("").to_string());
    vec![
        json!(when(last)),
        json!(s("type")),
        json!(s("reason")),
        json!(format!(
            "{}/{}",
            reg["kind"].as_str().unwrap_or("").to_lowercase(),
            reg["name"].as_str().unwrap_or("")
        )),
        json!(reg["fieldPath"].as_str().unwrap_or("")),
        json!(source),
        json!(msg),
        json!(when(first)),
        json!(count),
        json!(e["metadata"]["name"]),
    ]
}

fn selector_text(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts.join(",")
}

/// Renders one object or a list as a `meta.k8s.io/v1` Table for `resource`.
pub fn table(resource: &str, doc: &Value, include: IncludeObject, item_kind: &str) -> Value {
    let now = SystemTime::now();
    let (columns, cells): (Vec<Value>, CellFn) = match resource {
        "pods" => (
            vec![
                col("Name", "string", "name", 0, "Name must be unique within a namespace."),
                col("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
                col("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
                col("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
                col("IP", "string", "", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
                col("Node", "string", "", 1, "NodeName indicates in which node this pod is scheduled."),
                col("Nominated Node", "string", "", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
                col("Readiness Gates", "string", "", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
            ],
            pod_cells,
        ),
        "nodes" => (
            vec![
                col("Name", "string", "name", 0, "Name must be unique within a namespace."),
                col("Status", "string", "", 0, "The status of the node"),
                col("Roles", "string", "", 0, "The roles of the node"),
                col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
                col("Version", "string", "", 0, "Kubelet Version reported by the node."),
                col("Internal-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
                col("External-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
                col("OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
                col("Kernel-Version", "string", "", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
                col("Container-Runtime", "string", "", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
            ],
            node_cells,
        ),
        "events" => (
            vec![
                col("Last Seen", "string", "", 0, "The time at which the most recent occurrence of this event was recorded."),
                col("Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
                col("Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
                col("Object", "string", "", 0, "The object that this event is about."),
                col("Subobject", "string", "", 1, "The subobject that this event is about."),
                col("Source", "string", "", 1, "The component reporting this event. Should be a short machine understandable string."),
                col("Message", "string", "", 0, "A human-readable description of the status of this operation."),
                col("First Seen", "string", "", 1, "The time at which the event was first recorded."),
                col("Count", "string", "", 1, "The number of times this event has occurred."),
                col("Name", "string", "name", 1, "Name must be unique within a namespace."),
            ],
            event_cells,
        ),
        "deployments" => (
            vec![
                col("Name", "string", "name", 0, "Name must be unique within a namespace."),
                col("Ready", "string", "", 0, "Number of the pod with ready state"),
                col("Up-to-date", "string", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                col("Available", "string", "", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
                col("Containers", "string", "", 1, "Names of each container in the template."),
                col("Images", "string", "", 1, "Images referenced by each container in the template."),
                col("Selector", "string", "", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
            ],
            |d: &Value, now: SystemTime| {
                let n = |f: &str| d["status"][f].as_i64().unwrap_or(0);
                vec![
                    json!(d["metadata"]["name"]),
                    json!(format!("{}/{}", n("readyReplicas"), d["spec"]["replicas"].as_i64().unwrap_or(1))),
                    json!(n("updatedReplicas")),
                    json!(n("availableReplicas")),
                    json!(age(d, now)),
                    json!("main"),
                    json!("registry.k8s.io/pause:3.10"),
                    json!(selector_text(&d["spec"]["selector"])),
                ]
            },
        ),
        "replicasets" => (
            vec![
                col("Name", "string", "name", 0, "Name must be unique within a namespace."),
                col("Desired", "integer", "", 0, "Replicas is the number of desired pods."),
                col("Current", "integer", "", 0, "Replicas is the most recently observed number of replicas."),
                col("Ready", "integer", "", 0, "The number of ready replicas for this replica set."),
                col("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
                col("Containers", "string", "", 1, "Names of each container in the template."),
                col("Images", "string", "", 1, "Images referenced by each container in the template."),
                col("Selector", "string", "", 1, "Selector is a label query over pods that should match the replica count."),
            ],
            |r: &Value, now: SystemTime| {
                let n = |f: &str| r["status"][f].as_i64().unwrap_or(0);
                vec![
                    json!(r["metadata"]["name"]),
                    json!(r["spec"]["replicas"].as_i64().unwrap_or(0)),
                    json!(n("replicas")),
                    json!(n("readyReplicas")),
                    json!(age(r, now)),
                    json!("main"),
                    json!("registry.k8s.io/pause:3.10"),
                    json!(selector_text(&r["spec"]["selector"])),
                ]
            },
        ),
        _ => (
            vec![
                col("Name", "string", "name", 0, "Name must be unique within a namespace."),
                col("Created At", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            ],
            |o: &Value, _now: SystemTime| vec![o["metadata"]["name"].clone(), o["metadata"]["creationTimestamp"].clone()],
        ),
    };
    let (items, meta): (Vec<Value>, Value) = match doc.get("items").and_then(Value::as_array) {
        Some(items) => (items.clone(), doc["metadata"].clone()),
        None => (
            vec![doc.clone()],
            json!({"resourceVersion": doc["metadata"]["resourceVersion"]}),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(o, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
                }
                IncludeObject::Object => {
                    let mut full = o.clone();
                    full["kind"] = json!(item_kind);
                    full["apiVersion"] = json!(match resource {
                        "daemonsets" | "deployments" | "replicasets" => "apps/v1",
                        "events" => "v1",
                        "poddisruptionbudgets" => "policy/v1",
                        _ => "v1",
                    });
                    row["object"] = full;
                }
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": columns, "rows": rows})
}
