//! Field and label selectors as accepted in `?fieldSelector=` / `?labelSelector=`.

use serde_json::Value;

/// One `key=value` / `key!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path, e.g. `spec.nodeName`.
    pub key: String,
    /// True for `=`/`==`, false for `!=`.
    pub equal: bool,
    /// Expected value.
    pub value: String,
}

/// Parses `spec.nodeName=n1,status.phase!=Succeeded` (empty → no terms).
pub fn parse_fields(s: &str) -> Result<Vec<FieldTerm>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        out.push(FieldTerm {
            key: key.trim().to_string(),
            equal,
            value: value.trim().to_string(),
        });
    }
    Ok(out)
}

/// Checks field terms against `get(field)`; `get` returns None for unsupported fields, which
/// makes the whole selector invalid (the apiserver answers 400).
pub fn match_fields(
    terms: &[FieldTerm],
    get: impl Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    for t in terms {
        let Some(v) = get(&t.key) else {
            return Err(format!("field label not supported: {}", t.key));
        };
        if (v == t.value) != t.equal {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The pod fields the apiserver supports in field selectors.
pub fn pod_field(pod: &Value, field: &str) -> Option<String> {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let p = |ptr: &str| s(pod.pointer(ptr).unwrap_or(&Value::Null));
    Some(match field {
        "metadata.name" => p("/metadata/name"),
        "metadata.namespace" => p("/metadata/namespace"),
        "spec.nodeName" => p("/spec/nodeName"),
        "spec.restartPolicy" => p("/spec/restartPolicy"),
        "spec.schedulerName" => p("/spec/schedulerName"),
        "spec.serviceAccountName" => p("/spec/serviceAccountName"),
        "spec.hostNetwork" => {
            let v = pod.pointer("/spec/hostNetwork").and_then(Value::as_bool);
            v.unwrap_or(false).to_string()
        }
        "status.phase" => p("/status/phase"),
        "status.podIP" => p("/status/podIP"),
        "status.nominatedNodeName" => p("/status/nominatedNodeName"),
        _ => return None,
    })
}

/// The node fields the apiserver supports in field selectors.
pub fn node_field(node: &Value, field: &str) -> Option<String> {
    Some(match field {
        "metadata.name" => node["metadata"]["name"].as_str().unwrap_or("").to_string(),
        "spec.unschedulable" => node["spec"]["unschedulable"]
            .as_bool()
            .unwrap_or(false)
            .to_string(),
        _ => return None,
    })
}

/// The event fields the apiserver supports in field selectors.
pub fn event_field(ev: &Value, field: &str) -> Option<String> {
    let ptr = match field {
        "source" => "/source/component".to_string(),
        "metadata.name"
        | "metadata.namespace"
        | "reason"
        | "type"
        | "reportingComponent"
        | "involvedObject.kind"
        | "involvedObject.namespace"
        | "involvedObject.name"
        | "involvedObject.uid"
        | "involvedObject.apiVersion"
        | "involvedObject.resourceVersion"
        | "involvedObject.fieldPath" => format!("/{}", field.replace('.', "/")),
        _ => return None,
    };
    Some(
        ev.pointer(&ptr)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

/// Generic metadata fields (daemonsets, PDBs, ...).
pub fn meta_field(obj: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" | "metadata.namespace" => Some(
            obj.pointer(&format!("/{}", field.replace('.', "/")))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        _ => None,
    }
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `k=v`, `k==v`, `k in (a,b)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: expected a set, found {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Parses a label selector string.
pub fn parse_labels(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut out = Vec::new();
    for term in split_top(s)
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let req = if let Some((k, v)) = term.split_once("!=") {
            LabelReq::NotIn(k.trim().into(), vec![v.trim().into()])
        } else if let Some((k, v)) = term.split_once("==") {
            LabelReq::In(k.trim().into(), vec![v.trim().into()])
        } else if let Some((k, v)) = term.split_once('=') {
            LabelReq::In(k.trim().into(), vec![v.trim().into()])
        } else if let Some((k, v)) = term.split_once(" notin ") {
            LabelReq::NotIn(k.trim().into(), set_values(v)?)
        } else if let Some((k, v)) = term.split_once(" in ") {
            LabelReq::In(k.trim().into(), set_values(v)?)
        } else if let Some(k) = term.strip_prefix('!') {
            LabelReq::NotExists(k.trim().into())
        } else if term.contains(' ') || term.contains('(') {
            return Err(format!("unable to parse requirement: {term:?}"));
        } else {
            LabelReq::Exists(term.into())
        };
        out.push(req);
    }
    Ok(out)
}

/// Whether an object's `metadata.labels` satisfy every requirement.
pub fn match_labels(reqs: &[LabelReq], obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
        LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
    })
}

/// Whether a `metav1.LabelSelector` (matchLabels + matchExpressions) selects `obj`. An empty
/// selector selects everything (policy/v1 PDB semantics).
pub fn selector_matches(selector: &Value, obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        if !ml.iter().all(|(k, v)| get(k) == v.as_str()) {
            return false;
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e["operator"].as_str().unwrap_or("") {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"},
                         "status": {"phase": "Running"}});
        let t = parse_fields("spec.nodeName=n1,status.phase!=Succeeded").unwrap();
        assert!(match_fields(&t, |f| pod_field(&pod, f)).unwrap());
        let t = parse_fields("spec.nodeName==n2").unwrap();
        assert!(!match_fields(&t, |f| pod_field(&pod, f)).unwrap());
        let t = parse_fields("metadata.labels=x").unwrap();
        assert!(match_fields(&t, |f| pod_field(&pod, f)).is_err());
        assert!(parse_fields("garbage").is_err());
    }

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let m = |s: &str| match_labels(&parse_labels(s).unwrap(), &o);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(m("app in (web, api),!canary"));
        assert!(!m("app notin (web)"));
        assert!(!m("app!=web"));
        assert!(m(""));
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &o
        ));
        assert!(selector_matches(&json!({}), &o));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}),
            &o
        ));
    }
}
