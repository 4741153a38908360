//! The parts of Kubernetes objects we read, as nanoserde structs. Unknown fields are skipped
//! by the parser and never stored, so a 1,000-pod list costs little memory: annotations, for
//! instance, are read through structs that name only the keys we look at.

use std::collections::HashMap;

use nanoserde::{DeJson, DeJsonErr, DeJsonState, DeJsonTok};

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct OwnerReference {
    #[nserde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    pub controller: Option<bool>,
}

// The wire shape of a pod: parsed one list item at a time and folded at once into [`Pod`].
#[derive(DeJson, Default)]
struct PodAnnotations {
    #[nserde(rename = "kubernetes.io/config.mirror")]
    mirror: Option<String>,
}

#[derive(DeJson, Default)]
struct PodMeta {
    name: String,
    namespace: Option<String>,
    uid: Option<String>,
    labels: Option<HashMap<String, String>>,
    annotations: Option<PodAnnotations>,
    #[nserde(rename = "ownerReferences")]
    owner_references: Option<Vec<OwnerReference>>,
    #[nserde(rename = "deletionTimestamp")]
    deletion_timestamp: Option<String>,
}

/// A value only present or absent for us (a volume's `emptyDir: {...}`): its content is skipped.
struct Present;

impl DeJson for Present {
    fn de_json(s: &mut DeJsonState, i: &mut std::str::Chars) -> Result<Self, DeJsonErr> {
        // `json::check` proved the document whole, so a value starts here.
        s.whole_field(i)?;
        Ok(Present)
    }
}

#[derive(DeJson, Default)]
struct Volume {
    #[nserde(rename = "emptyDir")]
    empty_dir: Option<Present>,
}

#[derive(DeJson, Default)]
struct PodSpec {
    #[nserde(rename = "nodeName")]
    node_name: Option<String>,
    #[nserde(rename = "terminationGracePeriodSeconds")]
    termination_grace_period_seconds: Option<i64>,
    volumes: Option<Vec<Volume>>,
    priority: Option<i64>,
    #[nserde(rename = "priorityClassName")]
    priority_class_name: Option<String>,
}

#[derive(DeJson, Default)]
struct PodCondition {
    #[nserde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
}

#[derive(DeJson, Default)]
struct PodStatus {
    phase: Option<String>,
    conditions: Option<Vec<PodCondition>>,
}

#[derive(DeJson, Default)]
struct PodDoc {
    metadata: PodMeta,
    spec: Option<PodSpec>,
    status: Option<PodStatus>,
}

/// A pod's labels, in a list sized to fit (a pod has a handful; a map would cost more).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A pod as the drain keeps it: only what it reads, every string sized to fit. A page of a
/// pod list is parsed item by item into these, so a 1,000-pod node costs 1,000 of them (about
/// 1.4 KiB each with their strings and the list's slack, by heaptrack) and never a page of wire
/// structs (3.5 KiB each): `bench` scenario 7.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pod {
    pub name: String,
    namespace: Option<String>,
    uid: Option<String>,
    pub labels: Labels,
    /// The owner with `controller: true`, if any.
    controller: Option<OwnerReference>,
    /// `metadata.deletionTimestamp`: set once the pod is terminating.
    pub deletion_timestamp: Option<String>,
    pub node_name: Option<String>,
    grace: Option<i64>,
    priority: Option<i64>,
    priority_class: Option<String>,
    phase: Option<String>,
    mirror: bool,
    empty_dir: bool,
    ready: bool,
}

fn fit(mut s: String) -> String {
    s.shrink_to_fit();
    s
}

fn fit_opt(s: Option<String>) -> Option<String> {
    s.map(fit)
}

impl From<PodDoc> for Pod {
    fn from(d: PodDoc) -> Pod {
        let m = d.metadata;
        let spec = d.spec.unwrap_or_default();
        let status = d.status.unwrap_or_default();
        let mut labels: Vec<(String, String)> = m
            .labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (fit(k), fit(v)))
            .collect();
        labels.shrink_to_fit();
        Pod {
            name: fit(m.name),
            namespace: fit_opt(m.namespace),
            uid: fit_opt(m.uid),
            labels: Labels(labels),
            controller: m
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true))
                .map(|o| OwnerReference {
                    api_version: fit_opt(o.api_version),
                    kind: fit(o.kind),
                    name: fit(o.name),
                    controller: o.controller,
                }),
            deletion_timestamp: fit_opt(m.deletion_timestamp),
            node_name: fit_opt(spec.node_name),
            grace: spec.termination_grace_period_seconds,
            priority: spec.priority,
            priority_class: fit_opt(spec.priority_class_name),
            phase: fit_opt(status.phase),
            mirror: m.annotations.is_some_and(|a| a.mirror.is_some()),
            empty_dir: spec
                .volumes
                .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some())),
            ready: status.conditions.is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.kind.as_deref() == Some("Ready") && c.status.as_deref() == Some("True")
                })
            }),
        }
    }
}

impl DeJson for Pod {
    fn de_json(s: &mut DeJsonState, i: &mut std::str::Chars) -> Result<Self, DeJsonErr> {
        PodDoc::de_json(s, i).map(Pod::from)
    }
}

impl Pod {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
    /// `namespace/name`, as logs and reports name a pod.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace(), self.name)
    }
    pub fn uid(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }
    pub fn phase(&self) -> &str {
        self.phase.as_deref().unwrap_or("")
    }
    /// The owner with `controller: true`, if any.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.controller.as_ref()
    }
    pub fn is_mirror(&self) -> bool {
        self.mirror
    }
    pub fn has_empty_dir(&self) -> bool {
        self.empty_dir
    }
    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp.is_some()
    }
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }
    /// `spec.priority` (0 when unset, as for a pod without a priority class).
    pub fn priority(&self) -> i64 {
        self.priority.unwrap_or(0)
    }
    pub fn priority_class(&self) -> &str {
        self.priority_class.as_deref().unwrap_or("")
    }
    /// The `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.ready
    }
    /// The pod's own grace period (Kubernetes' default is 30 s).
    pub fn grace_seconds(&self) -> i64 {
        self.grace.unwrap_or(30)
    }
}

/// An `int-or-string` field (`maxSurge: 1` or `maxSurge: "25%"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

impl DeJson for IntOrString {
    fn de_json(s: &mut DeJsonState, i: &mut std::str::Chars) -> Result<Self, DeJsonErr> {
        let v = match s.tok {
            DeJsonTok::U64(n) => IntOrString::Int(i64::try_from(n).unwrap_or(i64::MAX)),
            DeJsonTok::I64(n) => IntOrString::Int(n),
            DeJsonTok::Str => IntOrString::Str(s.as_string()?),
            _ => return Err(s.err_token("an integer or a string")),
        };
        s.next_tok(i)?;
        Ok(v)
    }
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    pub values: Option<Vec<String>>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    #[nserde(rename = "matchLabels")]
    pub match_labels: Option<HashMap<String, String>>,
    #[nserde(rename = "matchExpressions")]
    pub match_expressions: Option<Vec<SelectorRequirement>>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct RollingUpdate {
    #[nserde(rename = "maxSurge")]
    pub max_surge: Option<IntOrString>,
    #[nserde(rename = "maxUnavailable")]
    pub max_unavailable: Option<IntOrString>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct DeploymentStrategy {
    #[nserde(rename = "type")]
    pub kind: Option<String>,
    #[nserde(rename = "rollingUpdate")]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct DeploymentSpec {
    pub replicas: Option<i64>,
    pub selector: Option<LabelSelector>,
    pub strategy: Option<DeploymentStrategy>,
    pub paused: Option<bool>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct DeploymentStatus {
    #[nserde(rename = "readyReplicas")]
    pub ready_replicas: Option<i64>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    /// Empty in a list's metadata.
    #[nserde(default)]
    pub name: String,
}

/// The parts of an apps/v1 Deployment `SURGE_BLOCKED` looks at. A PodDisruptionBudgetList is
/// read through it too (one decoder for both, which keeps the binary small): the list's
/// `items` are PDBs, whose `spec.selector` (the only field of a PDB we need) has the shape of a
/// Deployment's; their other fields are skipped.
#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct Deployment {
    pub metadata: ObjectMeta,
    pub spec: Option<DeploymentSpec>,
    pub status: Option<DeploymentStatus>,
    /// Only in a PodDisruptionBudgetList: the PDBs.
    pub items: Option<Vec<Deployment>>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct ListMeta {
    #[nserde(rename = "continue")]
    pub continue_token: Option<String>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct PodList {
    pub metadata: Option<ListMeta>,
    pub items: Option<Vec<Pod>>,
}

/// Our own annotations on the Node (see `record`).
#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct NodeAnnotations {
    #[nserde(rename = "spot-termination-notice-handler/notice")]
    pub notice: Option<String>,
    #[nserde(rename = "spot-termination-notice-handler/phase")]
    pub phase: Option<String>,
    #[nserde(rename = "spot-termination-notice-handler/deadline")]
    pub deadline: Option<String>,
    #[nserde(rename = "spot-termination-notice-handler/notices")]
    pub notices: Option<String>,
    #[nserde(rename = "spot-termination-notice-handler/before")]
    pub before: Option<String>,
}

/// The one node label we set.
#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct NodeLabels {
    #[nserde(rename = "node.kubernetes.io/exclude-from-external-load-balancers")]
    pub exclude_lb: Option<String>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct NodeMeta {
    pub name: String,
    #[nserde(rename = "resourceVersion")]
    pub resource_version: Option<String>,
    pub labels: Option<NodeLabels>,
    pub annotations: Option<NodeAnnotations>,
}

/// A node taint, every field kept so a taint list can be written back unchanged.
#[derive(DeJson, Debug, Clone, Default, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
    #[nserde(rename = "timeAdded")]
    pub time_added: Option<String>,
}

impl Taint {
    /// The taint as JSON, for a patch.
    pub fn to_json(&self) -> String {
        let mut out = format!("{{\"key\":{}", crate::json::escape(&self.key));
        if let Some(v) = &self.value {
            out.push_str(&format!(",\"value\":{}", crate::json::escape(v)));
        }
        out.push_str(&format!(
            ",\"effect\":{}",
            crate::json::escape(&self.effect)
        ));
        if let Some(t) = &self.time_added {
            out.push_str(&format!(",\"timeAdded\":{}", crate::json::escape(t)));
        }
        out.push('}');
        out
    }
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct NodeSpec {
    pub unschedulable: Option<bool>,
    pub taints: Option<Vec<Taint>>,
    #[nserde(rename = "providerID")]
    pub provider_id: Option<String>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub metadata: NodeMeta,
    pub spec: Option<NodeSpec>,
}

impl Node {
    pub fn unschedulable(&self) -> bool {
        self.spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    }
    pub fn taints(&self) -> &[Taint] {
        self.spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or(&[])
    }
    pub fn provider_id(&self) -> &str {
        self.spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .unwrap_or("")
    }
    pub fn exclude_lb_label(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()
            .and_then(|l| l.exclude_lb.as_deref())
    }
    pub fn annotations(&self) -> NodeAnnotations {
        self.metadata.annotations.clone().unwrap_or_default()
    }
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct StatusCause {
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct StatusDetails {
    pub causes: Option<Vec<StatusCause>>,
    #[nserde(rename = "retryAfterSeconds")]
    pub retry_after_seconds: Option<i64>,
}

/// The `kind: Status` body of API errors.
#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub kind: Option<String>,
    pub status: Option<String>,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub code: Option<i64>,
    pub details: Option<StatusDetails>,
}

#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct ApiResource {
    pub name: String,
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
}

/// `GET /api/v1` discovery.
#[derive(DeJson, Debug, Clone, Default, PartialEq)]
pub struct ApiResourceList {
    pub resources: Option<Vec<ApiResource>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn parses_a_realistic_pod_list() {
        let body = br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"12","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==","remainingItemCount":37},
          "items":[
            {"metadata":{"name":"web-7d4b9c-xk2lp","namespace":"shop","uid":"9e2c","resourceVersion":"99120",
              "labels":{"app":"web"},
              "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"big\":\"\\u0041\"}","x/y":"z"},
              "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d4b9c","uid":"1a2b","controller":true,"blockOwnerDeletion":true}],
              "managedFields":[{"manager":"kube-controller-manager","operation":"Update","fieldsV1":{"f:metadata":{"f:labels":{".":{}}}}}]},
             "spec":{"nodeName":"node-a","terminationGracePeriodSeconds":45,
               "volumes":[{"name":"cache","emptyDir":{}},{"name":"tok","projected":{"sources":[]}}],
               "containers":[{"name":"web","image":"nginx:1.27","env":[{"name":"A","value":"1"}]}],
               "tolerations":[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]},
             "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastProbeTime":null}]}},
            {"metadata":{"name":"kube-proxy-node-a","namespace":"kube-system","uid":"m1",
              "annotations":{"kubernetes.io/config.mirror":"abc"},"deletionTimestamp":"2024-05-01T10:00:00Z",
              "ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"node-a","uid":"n","controller":true}]},
             "spec":{"volumes":[{"name":"d","emptyDir":{"medium":"Memory","sizeLimit":"1Gi"}}]},"status":{"phase":"Succeeded"}},
            {"metadata":{"name":"bare","uid":"b"}}
          ]}"#;
        let list: PodList = parse(body).unwrap();
        assert_eq!(
            list.metadata.unwrap().continue_token.as_deref(),
            Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==")
        );
        let items = list.items.unwrap();
        assert_eq!(items.len(), 3);
        let web = &items[0];
        assert_eq!(
            (web.name.as_str(), web.namespace(), web.uid()),
            ("web-7d4b9c-xk2lp", "shop", "9e2c")
        );
        assert_eq!(web.controller().unwrap().kind, "ReplicaSet");
        assert!(web.has_empty_dir() && !web.is_mirror() && !web.is_terminating());
        assert_eq!((web.grace_seconds(), web.phase()), (45, "Running"));
        let mirror = &items[1];
        assert!(mirror.is_mirror() && mirror.is_terminating() && mirror.has_empty_dir());
        assert_eq!((mirror.grace_seconds(), mirror.phase()), (30, "Succeeded"));
        let bare = &items[2];
        assert_eq!(
            (bare.namespace(), bare.controller(), bare.has_empty_dir()),
            ("default", None, false)
        );
    }

    #[test]
    fn a_pod_keeps_what_the_drain_reads() {
        let p: Pod = parse(br#"{"metadata":{"name":"w","labels":{"app":"web","tier":"front"},
            "ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n"},
              {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-1","controller":true}]},
            "spec":{"priority":7,"priorityClassName":"high","nodeName":"node-a",
              "volumes":[{"name":"x","configMap":{"name":"c"}},{"name":"s","emptyDir":{"sizeLimit":"1Gi","x":[{"y":[]}]}}]},
            "status":{"conditions":[{"type":"Ready","status":"False"},{"type":"PodScheduled","status":"True"}]}}"#).unwrap();
        assert_eq!((p.label("tier"), p.label("none")), (Some("front"), None));
        assert_eq!(p.controller().unwrap().name, "web-1");
        assert_eq!(
            (p.priority(), p.priority_class(), p.node_name.as_deref()),
            (7, "high", Some("node-a"))
        );
        assert!(p.has_empty_dir() && !p.is_ready() && !p.is_terminating());
        // An emptyDir of null is no emptyDir; only a Ready condition that is True is ready.
        let q: Pod = parse(
            br#"{"metadata":{"name":"q"},"spec":{"volumes":[{"name":"a","emptyDir":null}]},
            "status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        )
        .unwrap();
        assert!(!q.has_empty_dir() && q.is_ready() && q.controller().is_none());
    }

    #[test]
    fn parses_status_and_node_and_discovery() {
        let s: Status = parse(br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Cannot evict pod as it would violate the pod's disruption budget.","reason":"TooManyRequests",
            "details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},"code":429}"#).unwrap();
        assert_eq!(s.reason.as_deref(), Some("TooManyRequests"));
        assert_eq!(
            s.details.unwrap().causes.unwrap()[0].reason.as_deref(),
            Some("DisruptionBudget")
        );

        let n: Node = parse(br#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a","uid":"5b1f",
            "annotations":{"node.alpha.kubernetes.io/ttl":"0","spot-termination-notice-handler/notice":"aws-spot/terminate/2024-05-01T10:02:00Z",
            "spot-termination-notice-handler/phase":"draining"}},"spec":{"unschedulable":true,"taints":[{"key":"k","effect":"NoSchedule"}]}}"#).unwrap();
        let a = n.metadata.annotations.unwrap();
        assert_eq!(
            (a.notice.as_deref(), a.phase.as_deref(), a.deadline),
            (
                Some("aws-spot/terminate/2024-05-01T10:02:00Z"),
                Some("draining"),
                None
            )
        );
        assert_eq!(n.spec.unwrap().unschedulable, Some(true));

        let d: ApiResourceList = parse(br#"{"kind":"APIResourceList","groupVersion":"v1","resources":[
            {"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get"],"shortNames":["po"]},
            {"name":"pods/eviction","singularName":"","namespaced":true,"group":"policy","version":"v1","kind":"Eviction","verbs":["create"]}]}"#).unwrap();
        assert_eq!(d.resources.unwrap()[1].version.as_deref(), Some("v1"));
    }
}
