//! PATCH bodies as the kube-apiserver applies them.
//!
//! - `application/merge-patch+json`: RFC 7386 ([`merge_patch`]). Lists are replaced whole;
//!   `null` deletes a key.
//! - `application/strategic-merge-patch+json`: [`strategic_merge_patch`]. Like a merge patch,
//!   except that lists with a patch merge key are merged element by element (`conditions` and
//!   `addresses` by `type`, `containers`/`volumes` by `name`, `ownerReferences` by `uid`). Lists
//!   without one, notably `spec.taints`, are **replaced whole**, exactly as on a real server.
//!   `$`-directives (`$setElementOrder/...`, `$retainKeys`, `$patch`) are accepted and ignored,
//!   except `$patch: delete` inside a merged list element, which deletes that element.
//! - `application/json-patch+json`: RFC 6902 ([`json_patch`]) with add/remove/replace/move/copy/
//!   test, `/-` and `~0`/`~1` escapes. Any failed operation is an error (the server answers 422).

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch, applied in place.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The patch merge key of a list field, by field name (built-in types only).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "containers" | "initContainers" | "volumes" | "env" | "volumeMounts"
        | "containerStatuses" | "imagePullSecrets" => Some("name"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Kubernetes strategic merge patch for built-in types (see the module docs for the subset).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v, t.get_mut(k)) {
            (Some(key), Value::Array(items), Some(Value::Array(existing))) => {
                for item in items {
                    let id = item.get(key).cloned();
                    let pos = id
                        .as_ref()
                        .and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            existing.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic_merge_patch(&mut existing[i], item),
                        (None, false) => {
                            let mut fresh = Value::Object(Map::new());
                            strategic_merge_patch(&mut fresh, item);
                            existing.push(fresh);
                        }
                    }
                }
            }
            (_, Value::Object(_), _) => {
                strategic_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
            _ => {
                t.insert(k.clone(), strip_directives(v));
            }
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Why a JSON patch failed. `BadRequest` means the patch document itself is malformed (400);
/// `Failed` means an operation did not apply (422). Messages follow evanphx/json-patch, the
/// library the apiserver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The patch is not a JSON array of operations, or an operation lacks a field.
    BadRequest(String),
    /// An operation could not be applied (missing path, failed `test`, bad index...).
    Failed(String),
}

/// Splits a JSON pointer into unescaped tokens (`~1` → `/`, `~0` → `~`).
pub fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!(
            "JSON pointer must be empty or start with a \"/\": {p:?}"
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// Escapes one JSON pointer token.
pub fn escape_token(t: &str) -> String {
    t.replace('~', "~0").replace('/', "~1")
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(array_index(t, a.len())?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => {
                let len = a.len();
                a.get_mut(array_index(t, len)?)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// A strict array index: digits only, no leading zeros, `< len`.
fn array_index(t: &str, len: usize) -> Option<usize> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || (t.len() > 1 && t.starts_with('0'))
    {
        return None;
    }
    t.parse().ok().filter(|&i| i < len)
}

fn add(doc: &mut Value, path: &[String], value: Value, raw: &str) -> Result<(), PatchError> {
    let missing = || {
        PatchError::Failed(format!(
            "add operation does not apply: doc is missing path: {raw:?}: missing value"
        ))
    };
    let Some((last, parent_path)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent_path).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            // Insertion allows index == len.
            let ok = !last.is_empty()
                && last.bytes().all(|b| b.is_ascii_digit())
                && !(last.len() > 1 && last.starts_with('0'));
            match last.parse::<usize>() {
                Ok(i) if ok && i <= a.len() => {
                    a.insert(i, value);
                    Ok(())
                }
                _ => Err(PatchError::Failed(format!(
                    "add operation does not apply: index out of bounds: {raw:?}"
                ))),
            }
        }
        _ => Err(missing()),
    }
}

fn remove(doc: &mut Value, path: &[String], raw: &str, op: &str) -> Result<Value, PatchError> {
    let missing = || {
        PatchError::Failed(format!(
            "{op} operation does not apply: doc is missing path: {raw:?}: missing value"
        ))
    };
    let Some((last, parent_path)) = path.split_last() else {
        return Err(missing());
    };
    match get_mut(doc, parent_path).ok_or_else(missing)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i = array_index(last, a.len()).ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// Applies an RFC 6902 patch document (the raw request body) to `doc` atomically: on error `doc`
/// is left unchanged.
pub fn json_patch(doc: &mut Value, patch_body: &[u8]) -> Result<(), PatchError> {
    let ops: Value = serde_json::from_slice(patch_body)
        .map_err(|e| PatchError::BadRequest(format!("invalid JSON Patch: {e}")))?;
    let Value::Array(ops) = ops else {
        return Err(PatchError::BadRequest(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        ));
    };
    let mut work = doc.clone();
    for op in &ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let field = |name: &str| -> Result<(String, Vec<String>), PatchError> {
            let raw = op.get(name).and_then(Value::as_str).ok_or_else(|| {
                PatchError::Failed(format!("{kind} operation does not apply: missing {name}"))
            })?;
            let toks = parse_pointer(raw).map_err(PatchError::Failed)?;
            Ok((raw.to_string(), toks))
        };
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                PatchError::Failed(format!("{kind} operation does not apply: missing value"))
            })
        };
        match kind {
            "add" => {
                let (raw, path) = field("path")?;
                add(&mut work, &path, value()?, &raw)?;
            }
            "remove" => {
                let (raw, path) = field("path")?;
                remove(&mut work, &path, &raw, "remove")?;
            }
            "replace" => {
                let (raw, path) = field("path")?;
                let v = value()?;
                match get_mut(&mut work, &path) {
                    Some(slot) => *slot = v,
                    None => {
                        return Err(PatchError::Failed(format!(
                            "replace operation does not apply: doc is missing key: {raw}: missing value"
                        )))
                    }
                }
            }
            "move" => {
                let (from_raw, from) = field("from")?;
                let (raw, path) = field("path")?;
                if path.len() > from.len() && path[..from.len()] == from[..] {
                    return Err(PatchError::Failed(format!(
                        "move operation does not apply: cannot move {from_raw:?} into its own child {raw:?}"
                    )));
                }
                let v = remove(&mut work, &from, &from_raw, "move")?;
                add(&mut work, &path, v, &raw)?;
            }
            "copy" => {
                let (from_raw, from) = field("from")?;
                let (raw, path) = field("path")?;
                let v = get(&work, &from).cloned().ok_or_else(|| {
                    PatchError::Failed(format!(
                        "copy operation does not apply: doc is missing from path: {from_raw:?}: missing value"
                    ))
                })?;
                add(&mut work, &path, v, &raw)?;
            }
            "test" => {
                let (raw, path) = field("path")?;
                let expected = op.get("value").cloned().unwrap_or(Value::Null);
                let actual = get(&work, &path);
                let ok = match actual {
                    Some(a) => json_equal(a, &expected),
                    None => expected.is_null(),
                };
                if !ok {
                    return Err(PatchError::Failed(format!(
                        "testing value {raw} failed: test failed"
                    )));
                }
            }
            other => {
                return Err(PatchError::Failed(format!("Unexpected kind: {other}")));
            }
        }
    }
    *doc = work;
    Ok(())
}

/// JSON equality where `1` equals `1.0`.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jp(doc: &Value, patch: Value) -> Result<Value, PatchError> {
        let mut d = doc.clone();
        json_patch(&mut d, patch.to_string().as_bytes()).map(|_| d)
    }

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
        let mut t = json!({"a": "foo"});
        merge_patch(&mut t, &json!({"a": {"b": "c"}}));
        assert_eq!(t, json!({"a": {"b": "c"}}));
        let mut t = json!({"e": null, "a": 1});
        merge_patch(&mut t, &json!({"e": null, "b": {"c": null}}));
        assert_eq!(t, json!({"a": 1, "b": {}}));
    }

    #[test]
    fn cordon_and_uncordon() {
        let mut n = json!({"spec": {"providerID": "x"}});
        merge_patch(&mut n, &json!({"spec": {"unschedulable": true}}));
        assert_eq!(n["spec"]["unschedulable"], json!(true));
        merge_patch(&mut n, &json!({"spec": {"unschedulable": null}}));
        assert_eq!(n, json!({"spec": {"providerID": "x"}}));
    }

    #[test]
    fn strategic_replaces_taints_but_merges_conditions() {
        let mut n = json!({
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}
        });
        strategic_merge_patch(
            &mut n,
            &json!({
                "$setElementOrder/conditions": [{"type": "Ready"}],
                "spec": {"taints": [{"key": "mine", "effect": "NoSchedule"}]},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]}
            }),
        );
        assert_eq!(
            n["spec"]["taints"],
            json!([{"key": "mine", "effect": "NoSchedule"}])
        );
        assert_eq!(
            n["status"]["conditions"][0],
            json!({"type": "Ready", "status": "False"})
        );
        assert_eq!(
            n["status"]["conditions"][1]["type"],
            json!("MemoryPressure")
        );
        strategic_merge_patch(
            &mut n,
            &json!({"status": {"conditions": [{"type": "MemoryPressure", "$patch": "delete"}]}}),
        );
        assert_eq!(n["status"]["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn json_patch_add_remove_replace() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"taints": [{"key": "x"}]}});
        let d = jp(
            &doc,
            json!([
                {"op": "add", "path": "/metadata/labels/example.com~1spot-action", "value": "drain"},
                {"op": "add", "path": "/spec/taints/-", "value": {"key": "y"}},
                {"op": "add", "path": "/spec/taints/0", "value": {"key": "w"}},
                {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
                {"op": "add", "path": "/metadata/annotations", "value": {"t~x": "1"}},
                {"op": "remove", "path": "/metadata/annotations/t~0x"}
            ]),
        )
        .unwrap();
        assert_eq!(
            d["metadata"]["labels"]["example.com/spot-action"],
            json!("drain")
        );
        assert_eq!(d["metadata"]["labels"]["a"], json!("2"));
        assert_eq!(d["metadata"]["annotations"], json!({}));
        assert_eq!(
            d["spec"]["taints"],
            json!([{"key": "w"}, {"key": "x"}, {"key": "y"}])
        );
    }

    #[test]
    fn json_patch_failures_are_atomic() {
        let doc = json!({"metadata": {"resourceVersion": "5"}, "spec": {}});
        // `/-` on a missing list fails (the reference's "no taints yet" case).
        let e = jp(
            &doc,
            json!([{"op": "add", "path": "/spec/taints/-", "value": {}}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Failed(m) if m.contains("missing path")));
        // A failed test leaves the document untouched, even after earlier ops.
        let mut d = doc.clone();
        let e = json_patch(
            &mut d,
            json!([
                {"op": "add", "path": "/spec/unschedulable", "value": true},
                {"op": "test", "path": "/metadata/resourceVersion", "value": "4"}
            ])
            .to_string()
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            PatchError::Failed(
                "testing value /metadata/resourceVersion failed: test failed".into()
            )
        );
        assert_eq!(d, doc);
        assert!(jp(
            &doc,
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "5"}])
        )
        .is_ok());
        assert!(jp(&doc, json!([{"op": "remove", "path": "/spec/nope"}])).is_err());
        assert!(jp(
            &doc,
            json!([{"op": "replace", "path": "/spec/nope", "value": 1}])
        )
        .is_err());
        assert!(jp(&doc, json!([{"op": "frobnicate", "path": "/spec"}])).is_err());
        assert!(matches!(
            json_patch(&mut doc.clone(), b"{\"op\":\"add\"}"),
            Err(PatchError::BadRequest(_))
        ));
    }

    #[test]
    fn json_patch_move_copy_and_indices() {
        let doc = json!({"a": [1, 2, 3], "b": {"c": 1}});
        let d = jp(
            &doc,
            json!([{"op": "move", "from": "/b/c", "path": "/a/1"}]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": [1, 1, 2, 3], "b": {}}));
        let d = jp(&doc, json!([{"op": "copy", "from": "/a", "path": "/b/d"}])).unwrap();
        assert_eq!(d["b"]["d"], json!([1, 2, 3]));
        assert!(jp(&doc, json!([{"op": "add", "path": "/a/4", "value": 9}])).is_err());
        assert!(jp(&doc, json!([{"op": "remove", "path": "/a/01"}])).is_err());
        assert!(jp(&doc, json!([{"op": "move", "from": "/b", "path": "/b/x"}])).is_err());
        let d = jp(&doc, json!([{"op": "test", "path": "/a/0", "value": 1.0}])).unwrap();
        assert_eq!(d, doc);
        assert_eq!(parse_pointer("/a~1b/c~0d").unwrap(), vec!["a/b", "c~d"]);
        assert_eq!(escape_token("example.com/x~y"), "example.com~1x~0y");
    }
}
