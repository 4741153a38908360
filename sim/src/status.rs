//! `kind: Status` error objects, worded like the kube-apiserver's (k8s.io/apimachinery
//! `pkg/api/errors` and the eviction REST handler).

use serde_json::{json, Map, Value};

/// An API error: HTTP status, the Status body, and an optional `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The `kind: Status` body.
    pub body: Value,
    /// `Retry-After` header value (set when `details.retryAfterSeconds > 0`).
    pub retry_after: Option<u32>,
}

/// `pods`, `nodes`, `daemonsets.apps`, ... as used in messages (`resource.group`).
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Builds a Failure status.
pub fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> ApiError {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Failure"));
    m.insert("message".into(), json!(message));
    if !reason.is_empty() {
        m.insert("reason".into(), json!(reason));
    }
    let mut retry_after = None;
    if let Some(d) = details {
        if let Some(r) = d.get("retryAfterSeconds").and_then(Value::as_u64) {
            if r > 0 {
                retry_after = Some(r as u32);
            }
        }
        m.insert("details".into(), d);
    }
    m.insert("code".into(), json!(code));
    ApiError {
        code,
        body: Value::Object(m),
        retry_after,
    }
}

fn details(name: &str, group: &str, resource: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(resource));
    Value::Object(d)
}

/// 404 `pods "x" not found`.
pub fn not_found(resource: &str, group: &str, name: &str) -> ApiError {
    failure(
        404,
        "NotFound",
        &format!("{} {name:?} not found", qualified(resource, group)),
        Some(details(name, group, resource)),
    )
}

/// 404 for a path the server does not serve.
pub fn path_not_found() -> ApiError {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

/// 405 for a known path with the wrong method.
pub fn method_not_allowed() -> ApiError {
    failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

/// 400 BadRequest.
pub fn bad_request(message: &str) -> ApiError {
    failure(400, "BadRequest", message, None)
}

/// 401 Unauthorized.
pub fn unauthorized() -> ApiError {
    failure(401, "Unauthorized", "Unauthorized", None)
}

/// 403 for RBAC: `pods "x" is forbidden: User "u" cannot create resource "pods/eviction" in API
/// group "" in the namespace "shop"`.
pub fn forbidden(
    user: &str,
    verb: &str,
    resource: &str,
    subresource: &str,
    group: &str,
    namespace: Option<&str>,
    name: &str,
) -> ApiError {
    let full = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_string(),
    };
    let why =
        format!("User {user:?} cannot {verb} resource {full:?} in API group {group:?} {scope}");
    let q = qualified(resource, group);
    let message = if name.is_empty() {
        format!("{q} is forbidden: {why}")
    } else {
        format!("{q} {name:?} is forbidden: {why}")
    };
    failure(
        403,
        "Forbidden",
        &message,
        Some(details(name, group, resource)),
    )
}

/// 403 for a non-resource URL (`forbidden: User "system:anonymous" cannot get path "/api"`).
pub fn forbidden_path(user: &str, verb: &str, path: &str) -> ApiError {
    failure(
        403,
        "Forbidden",
        &format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        Some(json!({})),
    )
}

/// 409 for a stale resourceVersion.
pub fn conflict_modified(resource: &str, group: &str, name: &str) -> ApiError {
    failure(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            qualified(resource, group)
        ),
        Some(details(name, group, resource)),
    )
}

/// 409 for a failed UID precondition.
pub fn conflict_uid(kind: &str, name: &str, resource: &str, want: &str, have: &str) -> ApiError {
    failure(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {kind} {name:?}: Precondition failed: UID in precondition: {want}, UID in object meta: {have}"
        ),
        Some(details(name, "", resource)),
    )
}

/// 409 AlreadyExists.
pub fn already_exists(resource: &str, group: &str, name: &str) -> ApiError {
    failure(
        409,
        "AlreadyExists",
        &format!("{} {name:?} already exists", qualified(resource, group)),
        Some(details(name, group, resource)),
    )
}

/// 410 Expired for a continue token older than the last compaction.
pub fn expired_continue() -> ApiError {
    failure(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        None,
    )
}

/// 415 for a PATCH with an unsupported Content-Type.
pub fn unsupported_patch_type(got: &str) -> ApiError {
    failure(
        415,
        "UnsupportedMediaType",
        &format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {got:?}; the simulator does not implement apply-patch+yaml)"
        ),
        None,
    )
}

/// 415 for a body that is not JSON on a POST/PUT.
pub fn unsupported_body_type(got: &str) -> ApiError {
    failure(
        415,
        "UnsupportedMediaType",
        &format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {got:?})"),
        None,
    )
}

/// 422 from a JSON-patch operation that did not apply.
pub fn patch_failed(message: &str) -> ApiError {
    failure(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        Some(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": message}]})),
    )
}

/// 422 Invalid with one field cause (`Node "n1" is invalid: spec.taints[1]: ...`). `resource` is
/// unused (kept for callers); `details.kind` is the Kind, as `errors.NewInvalid` writes it.
pub fn invalid(
    kind: &str,
    _resource: &str,
    name: &str,
    field: &str,
    cause: &str,
    detail: &str,
) -> ApiError {
    invalid_fields(
        "",
        kind,
        name,
        &[FieldError {
            reason: cause.to_string(),
            field: field.to_string(),
            body: detail.to_string(),
        }],
    )
}

/// One validation error (apimachinery `field.Error`): `field: body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, ... (the cause's `reason`).
    pub reason: String,
    /// The field path, e.g. `series.count`.
    pub field: String,
    /// `Required value`, `Invalid value: "x": detail`, ... (the cause's `message`).
    pub body: String,
}

/// Renders a bad value the way `field.Error.ErrorBody` does: strings quoted, numbers and
/// booleans bare, anything else as given.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "\"\"".to_string(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => other.to_string(),
    }
}

impl FieldError {
    /// `field: Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> FieldError {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired".into(),
            field: field.into(),
            body,
        }
    }

    /// `field: Invalid value: <value>: detail`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> FieldError {
        FieldError::invalid_raw(field, &go_value(value), detail)
    }

    /// Like [`FieldError::invalid`] with the value already rendered.
    pub fn invalid_raw(field: &str, value: &str, detail: &str) -> FieldError {
        let mut body = format!("Invalid value: {value}");
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        FieldError {
            reason: "FieldValueInvalid".into(),
            field: field.into(),
            body,
        }
    }

    /// `field: Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> FieldError {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            reason: "FieldValueNotSupported".into(),
            field: field.into(),
            body: format!(
                "Unsupported value: {}: supported values: {}",
                go_value(value),
                list.join(", ")
            ),
        }
    }

    /// `field: Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> FieldError {
        FieldError {
            reason: "FieldValueForbidden".into(),
            field: field.into(),
            body: format!("Forbidden: {detail}"),
        }
    }

    /// `field: Duplicate value: <value>`.
    pub fn duplicate(field: &str, value: &str) -> FieldError {
        FieldError {
            reason: "FieldValueDuplicate".into(),
            field: field.into(),
            body: format!("Duplicate value: {value}"),
        }
    }

    /// The `field: body` line.
    pub fn line(&self) -> String {
        format!("{}: {}", self.field, self.body)
    }
}

/// 422 Invalid as `errors.NewInvalid` builds it: message `Kind[.group] "name" is invalid: e` for
/// one error and `...: [e1, e2]` for several (duplicate lines folded, as `ToAggregate` does);
/// one cause per error; `details` with `name`, `group` and the Kind.
pub fn invalid_fields(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> ApiError {
    let mut lines: Vec<String> = Vec::new();
    for e in errs {
        let l = e.line();
        if !lines.contains(&l) {
            lines.push(l);
        }
    }
    let qk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let message = match lines.len() {
        0 => format!("{qk} {name:?} is invalid"),
        1 => format!("{qk} {name:?} is invalid: {}", lines[0]),
        _ => format!("{qk} {name:?} is invalid: [{}]", lines.join(", ")),
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
        .collect();
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    if !kind.is_empty() {
        d.insert("kind".into(), json!(kind));
    }
    d.insert("causes".into(), json!(causes));
    failure(422, "Invalid", &message, Some(Value::Object(d)))
}

/// 400 for a create/update body that does not decode into the type (`Event in version "v1"
/// cannot be handled as a Event: json: cannot unmarshal ...`).
pub fn decode_error(kind: &str, version: &str, err: &str) -> ApiError {
    bad_request(&format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: {err}"
    ))
}

/// 422 for a patched object that does not decode (the apiserver's patcher reports it as an
/// invalid `patch` field with an empty kind and name).
pub fn patch_decode_invalid(patched: &str, err: &str) -> ApiError {
    invalid_fields(
        "",
        "",
        "",
        &[FieldError::invalid_raw(
            "patch",
            &format!("{patched:?}"),
            err,
        )],
    )
}

/// The eviction 429 when a PDB has no disruptions left (no Retry-After).
pub fn pdb_blocks(pdb: &str, desired: i64, healthy: i64) -> ApiError {
    failure(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        Some(
            json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
            "The disruption budget {pdb} needs {desired} healthy pods and has {healthy} currently")}]}),
        ),
    )
}

/// The eviction 429 while a PDB is still being processed (`Retry-After: 10`).
pub fn pdb_processing(pdb: &str) -> ApiError {
    failure(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        Some(
            json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
            "The disruption budget {pdb} is still being processed by the server.")}],
            "retryAfterSeconds": 10}),
        ),
    )
}

/// The eviction 500 when more than one PDB selects the pod (a Status with no reason).
pub fn multiple_pdbs() -> ApiError {
    failure(
        500,
        "",
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        None,
    )
}

/// The success Status returned by eviction (201).
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_message_matches_rbac() {
        let e = forbidden(
            "system:serviceaccount:kube-system:spot-termination-notice-handler",
            "create",
            "pods",
            "eviction",
            "",
            Some("shop"),
            "x",
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.body["message"],
            "pods \"x\" is forbidden: User \"system:serviceaccount:kube-system:spot-termination-notice-handler\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"shop\""
        );
        assert_eq!(e.body["details"], json!({"name": "x", "kind": "pods"}));
        let e = forbidden("u", "list", "pods", "", "", None, "");
        assert_eq!(
            e.body["message"],
            "pods is forbidden: User \"u\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn pdb_bodies() {
        let e = pdb_blocks("web-pdb", 2, 2);
        assert_eq!(e.retry_after, None);
        assert_eq!(
            e.body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
             "message":"Cannot evict pod as it would violate the pod's disruption budget.",
             "reason":"TooManyRequests",
             "details":{"causes":[{"reason":"DisruptionBudget",
               "message":"The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
             "code":429})
        );
        assert_eq!(pdb_processing("p").retry_after, Some(10));
        let m = multiple_pdbs();
        assert_eq!(m.code, 500);
        assert!(m.body.get("reason").is_none());
    }
}
