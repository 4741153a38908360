//! API Priority and Fairness, the part the benchmarks need: a FlowSchema's rules (its subjects
//! and `resourceRules`) matched against a request, so that the requests it selects are served
//! by a priority level of their own, with seats and a queue apart from everyone else's.
//!
//! What is modelled: subjects of kind `ServiceAccount` (name `*` for any in the namespace),
//! `User` and `Group` (`system:serviceaccounts`, `system:serviceaccounts:NS`,
//! `system:authenticated`, `*`); resource rules with `verbs`, `apiGroups`, `resources` (with a
//! subresource as `nodes/status`, `*` for any), `clusterScope` and `namespaces`. Not modelled:
//! `nonResourceRules`, the flow distinguisher (every handler is one service account: one flow),
//! and borrowing between levels.

use serde_json::Value;

/// A request as APF's classifier sees it (k8s.io/apiserver's RequestInfo, the resource part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'static str,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource, with the subresource after a `/` (`nodes/status`).
    pub resource: String,
    /// The namespace of a namespaced request.
    pub namespace: Option<String>,
}

/// The resource request a method and path (and whether it is a watch) make, or `None` for a
/// non-resource path (`/version`, `/api`, discovery).
pub fn request_info(method: &str, path: &str, watch: bool) -> Option<RequestInfo> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (namespace, resource, name, sub) = match rest {
        ["namespaces", ns, res, tail @ ..] if tail.len() <= 2 => {
            (Some(*ns), *res, tail.first(), tail.get(1))
        }
        [res, tail @ ..] if !res.is_empty() && tail.len() <= 2 => {
            (None, *res, tail.first(), tail.get(1))
        }
        _ => return None,
    };
    let verb = match (method, name.is_some()) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some(RequestInfo {
        verb,
        group: group.to_string(),
        resource: match sub {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_string(),
        },
        namespace: namespace.map(str::to_string),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ResourceRule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    cluster_scope: bool,
    namespaces: Vec<String>,
}

/// One FlowSchema's matching part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSchema {
    /// `metadata.name`.
    pub name: String,
    /// `spec.priorityLevelConfiguration.name`.
    pub priority_level: String,
    /// `spec.matchingPrecedence` (1000 when absent, as the API server defaults it).
    pub precedence: i64,
    rules: Vec<(Vec<Subject>, Vec<ResourceRule>)>,
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what}: expected strings, got {s}"))
            })
            .collect(),
        other => Err(format!("{what}: expected a list of strings, got {other}")),
    }
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{what}: expected a string, got {v}"))
}

impl FlowSchema {
    /// Reads a FlowSchema object (any of the flowcontrol.apiserver.k8s.io versions: the fields
    /// used here are the same in v1beta2, v1beta3 and v1).
    pub fn from_json(o: &Value) -> Result<FlowSchema, String> {
        if o["kind"] != "FlowSchema" {
            return Err(format!("kind: expected FlowSchema, got {}", o["kind"]));
        }
        let spec = &o["spec"];
        let mut rules = Vec::new();
        for (i, r) in spec["rules"].as_array().into_iter().flatten().enumerate() {
            let mut subjects = Vec::new();
            for s in r["subjects"].as_array().into_iter().flatten() {
                subjects.push(match s["kind"].as_str() {
                    Some("ServiceAccount") => Subject::ServiceAccount {
                        namespace: text(
                            &s["serviceAccount"]["namespace"],
                            "serviceAccount.namespace",
                        )?,
                        name: text(&s["serviceAccount"]["name"], "serviceAccount.name")?,
                    },
                    Some("User") => Subject::User(text(&s["user"]["name"], "user.name")?),
                    Some("Group") => Subject::Group(text(&s["group"]["name"], "group.name")?),
                    _ => return Err(format!("rules[{i}].subjects: unknown kind {}", s["kind"])),
                });
            }
            let mut resource_rules = Vec::new();
            for rr in r["resourceRules"].as_array().into_iter().flatten() {
                resource_rules.push(ResourceRule {
                    verbs: strings(&rr["verbs"], "resourceRules.verbs")?,
                    api_groups: strings(&rr["apiGroups"], "resourceRules.apiGroups")?,
                    resources: strings(&rr["resources"], "resourceRules.resources")?,
                    cluster_scope: rr["clusterScope"].as_bool().unwrap_or(false),
                    namespaces: strings(&rr["namespaces"], "resourceRules.namespaces")?,
                });
            }
            rules.push((subjects, resource_rules));
        }
        Ok(FlowSchema {
            name: text(&o["metadata"]["name"], "metadata.name")?,
            priority_level: text(
                &spec["priorityLevelConfiguration"]["name"],
                "spec.priorityLevelConfiguration.name",
            )?,
            precedence: spec["matchingPrecedence"].as_i64().unwrap_or(1000),
            rules,
        })
    }

    /// Whether a request of `user` (a service account's `system:serviceaccount:NS:NAME`, or
    /// `system:anonymous`) matches one of the rules.
    pub fn matches(&self, user: &str, r: &RequestInfo) -> bool {
        let sa = user
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'));
        let authenticated = user != "system:anonymous";
        let subject_ok = |s: &Subject| match s {
            Subject::ServiceAccount { namespace, name } => {
                sa.is_some_and(|(ns, n)| ns == namespace && (name == "*" || n == name))
            }
            Subject::User(name) => name == "*" || name == user,
            Subject::Group(g) => match g.as_str() {
                "*" => true,
                "system:authenticated" => authenticated,
                "system:unauthenticated" => !authenticated,
                "system:serviceaccounts" => sa.is_some(),
                g => g
                    .strip_prefix("system:serviceaccounts:")
                    .is_some_and(|ns| sa.is_some_and(|(n, _)| n == ns)),
            },
        };
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        let resource_ok = |rr: &ResourceRule| {
            any(&rr.verbs, r.verb)
                && any(&rr.api_groups, &r.group)
                && any(&rr.resources, &r.resource)
                && match &r.namespace {
                    None => rr.cluster_scope,
                    Some(ns) => any(&rr.namespaces, ns),
                }
        };
        self.rules.iter().any(|(subjects, resource_rules)| {
            subjects.iter().any(subject_ok) && resource_rules.iter().any(resource_ok)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SA: &str = "system:serviceaccount:kube-system:spot-termination-notice-handler";

    fn node_writes() -> FlowSchema {
        FlowSchema::from_json(&json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
            "metadata": {"name": "node-writes"},
            "spec": {"priorityLevelConfiguration": {"name": "node-high"}, "matchingPrecedence": 800,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{
                    "subjects": [{"kind": "ServiceAccount", "serviceAccount":
                        {"name": "spot-termination-notice-handler", "namespace": "kube-system"}}],
                    "resourceRules": [{"verbs": ["get", "patch", "update"], "apiGroups": [""],
                        "resources": ["nodes", "nodes/status"], "clusterScope": true}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn request_info_reads_verb_group_resource_and_namespace() {
        type Want = Option<(
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
        )>;
        let cases: &[(&str, &str, bool, Want)] = &[
            (
                "PATCH",
                "/api/v1/nodes/n1",
                false,
                Some(("patch", "", "nodes", None)),
            ),
            (
                "PATCH",
                "/api/v1/nodes/n1/status",
                false,
                Some(("patch", "", "nodes/status", None)),
            ),
            (
                "GET",
                "/api/v1/nodes",
                false,
                Some(("list", "", "nodes", None)),
            ),
            (
                "GET",
                "/api/v1/nodes",
                true,
                Some(("watch", "", "nodes", None)),
            ),
            (
                "GET",
                "/api/v1/nodes/n1",
                false,
                Some(("get", "", "nodes", None)),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/p/eviction",
                false,
                Some(("create", "", "pods/eviction", Some("a"))),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/a/events",
                false,
                Some(("create", "events.k8s.io", "events", Some("a"))),
            ),
            (
                "PUT",
                "/api/v1/nodes/n1/status",
                false,
                Some(("update", "", "nodes/status", None)),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/pods",
                false,
                Some(("deletecollection", "", "pods", Some("a"))),
            ),
            ("GET", "/version", false, None),
            ("GET", "/apis/policy/v1", false, None),
            ("OPTIONS", "/api/v1/nodes", false, None),
        ];
        for (method, path, watch, want) in cases {
            let got = request_info(method, path, *watch);
            let want = want.map(|(verb, group, resource, ns)| RequestInfo {
                verb,
                group: group.to_string(),
                resource: resource.to_string(),
                namespace: ns.map(str::to_string),
            });
            assert_eq!(got, want, "{method} {path} watch={watch}");
        }
    }

    #[test]
    fn a_schema_selects_its_subjects_node_writes_and_nothing_else() {
        let fs = node_writes();
        assert_eq!(
            (fs.priority_level.as_str(), fs.precedence),
            ("node-high", 800)
        );
        let hit = |user: &str, method: &str, path: &str| {
            fs.matches(user, &request_info(method, path, false).unwrap())
        };
        assert!(hit(SA, "PATCH", "/api/v1/nodes/n1"));
        assert!(hit(SA, "PATCH", "/api/v1/nodes/n1/status"));
        assert!(hit(SA, "GET", "/api/v1/nodes/n1"));
        assert!(hit(SA, "PUT", "/api/v1/nodes/n1"));
        assert!(!hit(SA, "GET", "/api/v1/nodes"), "a list is not a get");
        assert!(!hit(SA, "POST", "/api/v1/namespaces/a/pods/p/eviction"));
        assert!(!hit(SA, "POST", "/api/v1/namespaces/a/events"));
        assert!(!hit(SA, "GET", "/api/v1/pods"));
        let other = "system:serviceaccount:kube-system:someone-else";
        assert!(!hit(other, "PATCH", "/api/v1/nodes/n1"));
        assert!(!hit("system:anonymous", "PATCH", "/api/v1/nodes/n1"));
    }

    #[test]
    fn groups_wildcards_and_namespaces_match_as_the_api_server_does() {
        let fs = FlowSchema::from_json(&json!({"kind": "FlowSchema", "metadata": {"name": "x"},
            "spec": {"priorityLevelConfiguration": {"name": "p"}, "rules": [{
                "subjects": [{"kind": "Group", "group": {"name": "system:serviceaccounts:kube-system"}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                    "namespaces": ["a"]}]}]}}))
        .unwrap();
        assert_eq!(fs.precedence, 1000, "the API server's default");
        let info = |m, p| request_info(m, p, false).unwrap();
        assert!(fs.matches(SA, &info("POST", "/api/v1/namespaces/a/pods/p/eviction")));
        assert!(!fs.matches(SA, &info("POST", "/api/v1/namespaces/b/pods/p/eviction")));
        assert!(
            !fs.matches(SA, &info("PATCH", "/api/v1/nodes/n1")),
            "not clusterScope"
        );
        let elsewhere = "system:serviceaccount:default:x";
        assert!(!fs.matches(
            elsewhere,
            &info("POST", "/api/v1/namespaces/a/pods/p/eviction")
        ));
    }

    #[test]
    fn malformed_schemas_are_refused_with_the_field_named() {
        let bad = [
            (json!({"kind": "PriorityLevelConfiguration"}), "kind"),
            (
                json!({"kind": "FlowSchema", "metadata": {"name": "x"}, "spec": {}}),
                "spec.priorityLevelConfiguration.name",
            ),
            (
                json!({"kind": "FlowSchema", "metadata": {"name": "x"}, "spec": {
                "priorityLevelConfiguration": {"name": "p"},
                "rules": [{"subjects": [{"kind": "Robot"}]}]}}),
                "subjects",
            ),
            (
                json!({"kind": "FlowSchema", "metadata": {"name": "x"}, "spec": {
                "priorityLevelConfiguration": {"name": "p"},
                "rules": [{"subjects": [], "resourceRules": [{"verbs": "get"}]}]}}),
                "resourceRules.verbs",
            ),
        ];
        for (doc, field) in bad {
            let e = FlowSchema::from_json(&doc).unwrap_err();
            assert!(e.contains(field), "{e} should name {field}");
        }
    }
}
