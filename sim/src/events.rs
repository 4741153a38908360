//! Events, served like a v1.32 kube-apiserver serves them: one storage, two API groups.
//!
//! - `v1` (core): `/api/v1/[namespaces/{ns}/]events[/{name}]`.
//! - `events.k8s.io/v1`: `/apis/events.k8s.io/v1/[namespaces/{ns}/]events[/{name}]` (unless the
//!   scenario turns the group off, like a cluster older than 1.19).
//!
//! An Event written through one group is readable through the other, converted the way
//! `pkg/apis/events/v1` converts: `regarding` ↔ `involvedObject`, `note` ↔ `message`,
//! `reportingController` ↔ `reportingComponent`, `deprecatedSource` ↔ `source`,
//! `deprecatedFirstTimestamp`/`deprecatedLastTimestamp`/`deprecatedCount` ↔
//! `firstTimestamp`/`lastTimestamp`/`count`. The store keeps the core v1 shape.
//!
//! Validation is `pkg/apis/core/validation/events.go` (ValidateEventCreate/Update):
//!
//! - Both groups ("legacy"): without `eventTime`, the Event's namespace must equal
//!   `involvedObject.namespace`, or be `default` (or empty) when that is empty (a cluster-scoped
//!   object such as a Node). With `eventTime`: a cluster-scoped object's Event must live in
//!   `default` or `kube-system`; `reportingController` is required and a qualified name;
//!   `reportingInstance`, `action` and `reason` are required (each ≤ 128 bytes); the message
//!   (`note`) ≤ 1024 bytes. The namespace must be a DNS subdomain.
//! - events.k8s.io/v1 only ("strict"): `metadata.name` a DNS subdomain, `eventTime` required,
//!   `type` `Normal` or `Warning`, the deprecated fields unset, `series.count` ≥ 2 with a
//!   `series.lastObservedTime`; on update everything but `series` (and metadata) is immutable.
//!   Core v1 updates only get the legacy checks, so `count`/`lastTimestamp` can be bumped there.
//!
//! Field paths in errors use the internal names, as the real server's do (`involvedObject`,
//! `message`, `reportingController`, also for events.k8s.io/v1 requests). Decoding is strict
//! about types: `eventTime` and `series.lastObservedTime` are MicroTime (exactly six fractional
//! digits), the deprecated timestamps are Time. A body that does not decode is a 400 on create
//! and a 422 (`patch: Invalid value`) on PATCH. Unknown fields are dropped.

use std::time::{Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::kubetime::{format_micro_time, format_time, parse_micro_time, parse_time};
use crate::selector::{is_dns_subdomain, qualified_name_errors};
use crate::status::{self, ApiError, FieldError};
use crate::store::{ListQuery, Store};
use crate::util;

/// Which API group a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventApi {
    /// Core `v1` Events.
    Core,
    /// `events.k8s.io/v1`.
    EventsV1,
}

impl EventApi {
    /// `""` or `events.k8s.io`.
    pub fn group(self) -> &'static str {
        match self {
            EventApi::Core => "",
            EventApi::EventsV1 => "events.k8s.io",
        }
    }

    /// `v1` or `events.k8s.io/v1`.
    pub fn api_version(self) -> &'static str {
        match self {
            EventApi::Core => "v1",
            EventApi::EventsV1 => "events.k8s.io/v1",
        }
    }
}

/// Simulation-side facts about a stored Event.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// The group it was created through.
    pub created_via: EventApi,
    /// How many PATCH/PUT requests changed it.
    pub updates: usize,
    /// When it was created.
    pub created_at: Instant,
}

/// An Event as a test reads it (either group's Events, in one shape).
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The group it was created through.
    pub created_via: EventApi,
    /// `regarding` / `involvedObject` kind.
    pub regarding_kind: String,
    /// Its name.
    pub regarding_name: String,
    /// Its namespace (empty for cluster-scoped objects).
    pub regarding_namespace: String,
    /// Its uid.
    pub regarding_uid: String,
    /// `reason`.
    pub reason: String,
    /// `note` / `message`.
    pub note: String,
    /// `type`.
    pub type_: String,
    /// `action`.
    pub action: String,
    /// `reportingController` / `reportingComponent`.
    pub reporting_controller: String,
    /// `reportingInstance`.
    pub reporting_instance: String,
    /// `eventTime` (MicroTime, as stored).
    pub event_time: Option<String>,
    /// `series.count` if there is a series, else the deprecated `count`, else 1.
    pub count: i64,
    /// `series` as (`count`, `lastObservedTime`).
    pub series: Option<(i64, String)>,
    /// How many PATCH/PUT requests changed it.
    pub updates: usize,
    /// The object in the core v1 shape.
    pub object: Value,
}

impl EventRecord {
    fn from(obj: &Value, meta: Option<&EventMeta>) -> EventRecord {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let series = obj.get("series").filter(|v| v.is_object()).map(|v| {
            (
                v["count"].as_i64().unwrap_or(0),
                v["lastObservedTime"].as_str().unwrap_or("").to_string(),
            )
        });
        let count = match &series {
            Some((c, _)) => *c,
            None => obj["count"].as_i64().filter(|c| *c > 0).unwrap_or(1),
        };
        EventRecord {
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            created_via: meta.map_or(EventApi::Core, |m| m.created_via),
            regarding_kind: s("/involvedObject/kind"),
            regarding_name: s("/involvedObject/name"),
            regarding_namespace: s("/involvedObject/namespace"),
            regarding_uid: s("/involvedObject/uid"),
            reason: s("/reason"),
            note: s("/message"),
            type_: s("/type"),
            action: s("/action"),
            reporting_controller: s("/reportingComponent"),
            reporting_instance: s("/reportingInstance"),
            event_time: obj
                .get("eventTime")
                .and_then(Value::as_str)
                .map(str::to_string),
            count,
            series,
            updates: meta.map_or(0, |m| m.updates),
            object: obj.clone(),
        }
    }
}

// ---- decoding ---------------------------------------------------------------------------

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_err(v: &Value, path: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field Event.{path} of type {go_type}",
        json_type(v)
    )
}

fn opt_str(o: &Map<String, Value>, k: &str, path: &str) -> Result<Option<String>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_err(v, path, "string")),
    }
}

fn opt_int32(o: &Map<String, Value>, k: &str, path: &str) -> Result<Option<i64>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => Ok(Some(i)),
            _ => Err(format!(
                "json: cannot unmarshal number {v} into Go struct field Event.{path} of type int32"
            )),
        },
        Some(v) => Err(type_err(v, path, "int32")),
    }
}

fn opt_time(
    o: &Map<String, Value>,
    k: &str,
    path: &str,
    micro: bool,
) -> Result<Option<SystemTime>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let t = if micro {
                parse_micro_time(s)
            } else {
                parse_time(s)
            };
            t.map(Some)
        }
        Some(v) => Err(format!(
            "json: cannot unmarshal {} into Go value of type string (Event.{path})",
            json_type(v)
        )),
    }
}

const REF_FIELDS: [&str; 7] = [
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
];

fn obj_ref(o: &Map<String, Value>, k: &str, path: &str) -> Result<Option<Value>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(r)) => {
            let mut out = Map::new();
            for f in REF_FIELDS {
                if let Some(s) = opt_str(r, f, &format!("{path}.{f}"))? {
                    if !s.is_empty() {
                        out.insert(f.into(), json!(s));
                    }
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Some(v) => Err(type_err(v, path, "v1.ObjectReference")),
    }
}

/// Decodes a request body (or a patched object) of either group into the stored core shape.
fn decode(api: EventApi, body: &Value) -> Result<Value, String> {
    let Some(o) = body.as_object() else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type v1.Event",
            json_type(body)
        ));
    };
    let (reg, note, ctrl, source, first, last, count) = match api {
        EventApi::Core => (
            "involvedObject",
            "message",
            "reportingComponent",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
        ),
        EventApi::EventsV1 => (
            "regarding",
            "note",
            "reportingController",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        ),
    };
    let mut out = Map::new();
    match o.get("metadata") {
        None | Some(Value::Null) => {
            out.insert("metadata".into(), json!({}));
        }
        Some(m @ Value::Object(_)) => {
            out.insert("metadata".into(), m.clone());
        }
        Some(v) => return Err(type_err(v, "metadata", "v1.ObjectMeta")),
    }
    out.insert(
        "involvedObject".into(),
        obj_ref(o, reg, reg)?.unwrap_or_else(|| json!({})),
    );
    if let Some(r) = obj_ref(o, "related", "related")? {
        out.insert("related".into(), r);
    }
    for (from, to) in [
        ("reason", "reason"),
        (note, "message"),
        ("type", "type"),
        ("action", "action"),
        (ctrl, "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
    ] {
        if let Some(s) = opt_str(o, from, from)? {
            out.insert(to.into(), json!(s));
        }
    }
    match o.get(source) {
        None | Some(Value::Null) => {}
        Some(Value::Object(s)) => {
            let mut src = Map::new();
            for f in ["component", "host"] {
                if let Some(v) = opt_str(s, f, &format!("{source}.{f}"))? {
                    if !v.is_empty() {
                        src.insert(f.into(), json!(v));
                    }
                }
            }
            out.insert("source".into(), Value::Object(src));
        }
        Some(v) => return Err(type_err(v, source, "v1.EventSource")),
    }
    if let Some(t) = opt_time(o, first, first, false)? {
        out.insert("firstTimestamp".into(), json!(format_time(t)));
    }
    if let Some(t) = opt_time(o, last, last, false)? {
        out.insert("lastTimestamp".into(), json!(format_time(t)));
    }
    if let Some(c) = opt_int32(o, count, count)? {
        if c != 0 {
            out.insert("count".into(), json!(c));
        }
    }
    if let Some(t) = opt_time(o, "eventTime", "eventTime", true)? {
        out.insert("eventTime".into(), json!(format_micro_time(t)));
    }
    match o.get("series") {
        None | Some(Value::Null) => {}
        Some(Value::Object(s)) => {
            let mut ser = Map::new();
            ser.insert(
                "count".into(),
                json!(opt_int32(s, "count", "series.count")?.unwrap_or(0)),
            );
            if let Some(t) = opt_time(s, "lastObservedTime", "series.lastObservedTime", true)? {
                ser.insert("lastObservedTime".into(), json!(format_micro_time(t)));
            }
            out.insert("series".into(), Value::Object(ser));
        }
        Some(v) => return Err(type_err(v, "series", "v1.EventSeries")),
    }
    Ok(Value::Object(out))
}

/// Renders a stored Event in a group's shape (kind and apiVersion included).
pub fn render(api: EventApi, core: &Value) -> Value {
    let g = |k: &str| core.get(k).cloned();
    let mut o = Map::new();
    o.insert("kind".into(), json!("Event"));
    o.insert("apiVersion".into(), json!(api.api_version()));
    o.insert(
        "metadata".into(),
        g("metadata").unwrap_or_else(|| json!({})),
    );
    let put_str = |o: &mut Map<String, Value>, from: &str, to: &str, always: bool| match core
        .get(from)
        .and_then(Value::as_str)
    {
        Some(s) if !s.is_empty() || always => {
            o.insert(to.into(), json!(s));
        }
        None if always => {
            o.insert(to.into(), json!(""));
        }
        _ => {}
    };
    match api {
        EventApi::Core => {
            o.insert(
                "involvedObject".into(),
                g("involvedObject").unwrap_or_else(|| json!({})),
            );
            put_str(&mut o, "reason", "reason", false);
            put_str(&mut o, "message", "message", false);
            o.insert("source".into(), g("source").unwrap_or_else(|| json!({})));
            o.insert(
                "firstTimestamp".into(),
                g("firstTimestamp").unwrap_or(Value::Null),
            );
            o.insert(
                "lastTimestamp".into(),
                g("lastTimestamp").unwrap_or(Value::Null),
            );
            if let Some(c) = g("count") {
                o.insert("count".into(), c);
            }
            put_str(&mut o, "type", "type", false);
            o.insert("eventTime".into(), g("eventTime").unwrap_or(Value::Null));
            if let Some(s) = g("series") {
                o.insert("series".into(), s);
            }
            put_str(&mut o, "action", "action", false);
            if let Some(r) = g("related") {
                o.insert("related".into(), r);
            }
            put_str(&mut o, "reportingComponent", "reportingComponent", true);
            put_str(&mut o, "reportingInstance", "reportingInstance", true);
        }
        EventApi::EventsV1 => {
            o.insert("eventTime".into(), g("eventTime").unwrap_or(Value::Null));
            if let Some(s) = g("series") {
                o.insert("series".into(), s);
            }
            put_str(&mut o, "reportingComponent", "reportingController", false);
            put_str(&mut o, "reportingInstance", "reportingInstance", false);
            put_str(&mut o, "action", "action", false);
            put_str(&mut o, "reason", "reason", false);
            o.insert(
                "regarding".into(),
                g("involvedObject").unwrap_or_else(|| json!({})),
            );
            if let Some(r) = g("related") {
                o.insert("related".into(), r);
            }
            put_str(&mut o, "message", "note", false);
            put_str(&mut o, "type", "type", false);
            if let Some(s) = g("source").filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) {
                o.insert("deprecatedSource".into(), s);
            } else {
                o.insert("deprecatedSource".into(), json!({}));
            }
            o.insert(
                "deprecatedFirstTimestamp".into(),
                g("firstTimestamp").unwrap_or(Value::Null),
            );
            o.insert(
                "deprecatedLastTimestamp".into(),
                g("lastTimestamp").unwrap_or(Value::Null),
            );
            if let Some(c) = g("count") {
                o.insert("deprecatedCount".into(), c);
            }
        }
    }
    Value::Object(o)
}

// ---- validation -------------------------------------------------------------------------

fn sv<'a>(e: &'a Value, k: &str) -> &'a str {
    e.get(k).and_then(Value::as_str).unwrap_or("")
}

fn has(e: &Value, k: &str) -> bool {
    e.get(k).is_some_and(|v| !v.is_null())
}

/// `legacyValidateEvent`: applies to both groups.
fn legacy_validate(e: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ns = e["metadata"]["namespace"].as_str().unwrap_or("");
    let inv_ns = e["involvedObject"]["namespace"].as_str().unwrap_or("");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            &json!(inv_ns),
            "does not match event.namespace",
        )
    };
    if !has(e, "eventTime") {
        let ok = if inv_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == inv_ns
        };
        if !ok {
            errs.push(mismatch());
        }
    } else {
        if inv_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        let ctrl = sv(e, "reportingComponent");
        if ctrl.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        for m in qualified_name_errors(ctrl) {
            errs.push(FieldError::invalid("reportingController", &json!(ctrl), &m));
        }
        for (k, field) in [
            ("reportingInstance", "reportingInstance"),
            ("action", "action"),
            ("reason", "reason"),
        ] {
            let v = sv(e, k);
            if v.is_empty() {
                errs.push(FieldError::required(field, ""));
            }
            if v.len() > 128 {
                errs.push(FieldError::invalid(
                    field,
                    &json!(""),
                    "can have at most 128 characters",
                ));
            }
        }
        if sv(e, "message").len() > 1024 {
            errs.push(FieldError::invalid(
                "message",
                &json!(""),
                "can have at most 1024 characters",
            ));
        }
    }
    if !is_dns_subdomain(ns) {
        errs.push(FieldError::invalid(
            "namespace",
            &json!(ns),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    errs
}

fn series_errors(e: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(s) = e.get("series").filter(|s| s.is_object()) {
        if s["count"].as_i64().unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                &json!(""),
                "should be at least 2",
            ));
        }
        if !has(s, "lastObservedTime") {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// `ValidateEventCreate`.
fn validate_create(api: EventApi, e: &Value) -> Vec<FieldError> {
    let mut errs = legacy_validate(e);
    if api == EventApi::Core {
        return errs;
    }
    let name = e["metadata"]["name"].as_str().unwrap_or("");
    if !is_dns_subdomain(name) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    errs.extend(series_errors(e));
    if !has(e, "eventTime") {
        errs.push(FieldError::required("eventTime", ""));
    }
    let ty = sv(e, "type");
    if ty != "Normal" && ty != "Warning" {
        errs.push(FieldError::invalid(
            "type",
            &json!(""),
            &format!("has invalid value: {ty}"),
        ));
    }
    for (k, field) in [
        ("firstTimestamp", "firstTimestamp"),
        ("lastTimestamp", "lastTimestamp"),
        ("count", "count"),
    ] {
        if has(e, k) {
            errs.push(FieldError::invalid(field, &json!(""), "needs to be unset"));
        }
    }
    if e.get("source")
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty())
    {
        errs.push(FieldError::invalid(
            "source",
            &json!(""),
            "needs to be unset",
        ));
    }
    errs
}

fn go_ref(v: &Value) -> String {
    let f = |k: &str| format!("{:?}", v[k].as_str().unwrap_or(""));
    format!(
        "core.ObjectReference{{Kind:{}, Namespace:{}, Name:{}, UID:{}, APIVersion:{}, ResourceVersion:{}, FieldPath:{}}}",
        f("kind"),
        f("namespace"),
        f("name"),
        f("uid"),
        f("apiVersion"),
        f("resourceVersion"),
        f("fieldPath")
    )
}

/// `ValidateEventUpdate`.
fn validate_update(api: EventApi, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = legacy_validate(new);
    if api == EventApi::Core {
        return errs;
    }
    if new.get("series") != old.get("series") {
        errs.extend(series_errors(new));
    }
    let immutable = |errs: &mut Vec<FieldError>, k: &str, field: &str| {
        let (a, b) = (
            new.get(k).unwrap_or(&Value::Null),
            old.get(k).unwrap_or(&Value::Null),
        );
        let empty = |v: &Value| v.is_null() || v == "" || v.as_object().is_some_and(Map::is_empty);
        if a != b && !(empty(a) && empty(b)) {
            let shown = if a.is_object() || (a.is_null() && b.is_object()) {
                go_ref(a)
            } else {
                status::go_value(a)
            };
            errs.push(FieldError::invalid_raw(field, &shown, "field is immutable"));
        }
    };
    // The same order as upstream, including its duplicated `reason` check.
    for (k, field) in [
        ("involvedObject", "involvedObject"),
        ("reason", "reason"),
        ("message", "message"),
        ("source", "source"),
        ("firstTimestamp", "firstTimestamp"),
        ("lastTimestamp", "lastTimestamp"),
        ("count", "count"),
        ("reason", "reason"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingComponent", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ] {
        immutable(&mut errs, k, field);
    }
    errs
}

// ---- the store side -----------------------------------------------------------------------

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn not_found(api: EventApi, name: &str) -> ApiError {
    status::not_found("events", api.group(), name)
}

fn check_api_version(api: EventApi, body: &Value) -> Result<(), ApiError> {
    let av = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !av.is_empty() && av != api.api_version() {
        return Err(status::bad_request(&format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            api.api_version()
        )));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != "Event" {
        return Err(status::bad_request(&format!(
            "the kind in the data ({kind}) does not match the expected kind (Event)"
        )));
    }
    Ok(())
}

/// Rejects names the generic registry refuses for every resource (`path.ValidatePathSegmentName`).
fn path_segment_errors(name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name == "." || name == ".." {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            &format!("may not be '{name}'"),
        ));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(name),
                &format!("may not contain '{bad}'"),
            ));
        }
    }
    errs
}

impl Store {
    /// POST an Event through `api` into namespace `ns`. Returns the created object in that
    /// group's shape.
    pub fn create_event_via(
        &mut self,
        api: EventApi,
        ns: &str,
        body: &[u8],
        dry_run: bool,
        now: Instant,
    ) -> Result<Value, ApiError> {
        let raw: Value = serde_json::from_slice(body).map_err(|e| {
            status::bad_request(&format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        check_api_version(api, &raw)?;
        let mut ev = decode(api, &raw).map_err(|e| status::decode_error("Event", "v1", &e))?;
        match ev["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {}
        }
        let name = match ev["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match ev["metadata"]["generateName"].as_str() {
                Some(g) if !g.is_empty() => format!("{g}{}", util::name_suffix()),
                _ => {
                    return Err(status::invalid_fields(
                        api.group(),
                        "Event",
                        "",
                        &[FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ))
                }
            },
        };
        ev["metadata"]["name"] = json!(name);
        ev["metadata"]["namespace"] = json!(ns);
        let mut errs = validate_create(api, &ev);
        errs.extend(path_segment_errors(&name));
        if !errs.is_empty() {
            return Err(status::invalid_fields(api.group(), "Event", &name, &errs));
        }
        let k = key(ns, &name);
        if self.events.contains_key(&k) {
            return Err(status::already_exists("events", api.group(), &name));
        }
        let m = ev["metadata"].as_object_mut().expect("metadata");
        m.remove("resourceVersion");
        m.remove("deletionTimestamp");
        m.insert("uid".into(), json!(util::uuid()));
        m.insert(
            "creationTimestamp".into(),
            json!(format_time(self.sys(now))),
        );
        if dry_run {
            return Ok(render(api, &ev));
        }
        ev["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.events.insert(k.clone(), ev.clone());
        self.event_meta.insert(
            k,
            EventMeta {
                created_via: api,
                updates: 0,
                created_at: now,
            },
        );
        Ok(render(api, &ev))
    }

    /// GET one Event in a group's shape.
    pub fn get_event_via(&self, api: EventApi, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.events
            .get(&key(ns, name))
            .map(|e| render(api, e))
            .ok_or_else(|| not_found(api, name))
    }

    /// PATCH an Event through `api` (merge, strategic merge or JSON patch, applied to that
    /// group's shape, then validated as an update).
    pub fn patch_event_via(
        &mut self,
        api: EventApi,
        ns: &str,
        name: &str,
        media_type: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let k = key(ns, name);
        let current = self
            .events
            .get(&k)
            .cloned()
            .ok_or_else(|| not_found(api, name))?;
        let mut doc = render(api, &current);
        crate::store::apply_patch(&mut doc, media_type, body)?;
        self.update_event(api, &k, current, doc, dry_run)
    }

    /// PUT an Event (full replacement) through `api`.
    pub fn put_event_via(
        &mut self,
        api: EventApi,
        ns: &str,
        name: &str,
        body: &[u8],
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let k = key(ns, name);
        let current = self
            .events
            .get(&k)
            .cloned()
            .ok_or_else(|| not_found(api, name))?;
        let doc: Value = serde_json::from_slice(body).map_err(|e| {
            status::bad_request(&format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        check_api_version(api, &doc)?;
        if doc.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
            return Err(status::bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                doc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )));
        }
        self.update_event(api, &k, current, doc, dry_run)
    }

    fn update_event(
        &mut self,
        api: EventApi,
        k: &str,
        current: Value,
        doc: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = current["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut new =
            decode(api, &doc).map_err(|e| status::patch_decode_invalid(&doc.to_string(), &e))?;
        let cur_rv = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match new.pointer("/metadata/resourceVersion") {
            Some(Value::String(rv)) if !rv.is_empty() && *rv != cur_rv => {
                return Err(status::conflict_modified("events", api.group(), &name));
            }
            _ => {}
        }
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
        ] {
            new["metadata"][f] = current["metadata"][f].clone();
        }
        let errs = validate_update(api, &new, &current);
        if !errs.is_empty() {
            return Err(status::invalid_fields(api.group(), "Event", &name, &errs));
        }
        if new == current || dry_run {
            return Ok(render(api, &new));
        }
        new["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.events.insert(k.to_string(), new.clone());
        if let Some(m) = self.event_meta.get_mut(k) {
            m.updates += 1;
        }
        Ok(render(api, &new))
    }

    /// Lists Events in a group's shape. events.k8s.io field selectors may use that group's
    /// names (`regarding.name`, `reportingController`, ...).
    pub fn list_events_via(&self, api: EventApi, q: &ListQuery) -> Result<Value, ApiError> {
        let mut q = q.clone();
        if api == EventApi::EventsV1 {
            q.field = q
                .field
                .replace("regarding.", "involvedObject.")
                .replace("reportingController", "reportingComponent")
                .replace("deprecatedSource", "source");
        }
        let mut list = self.list_events(&q)?;
        if let Some(items) = list["items"].as_array_mut() {
            for it in items.iter_mut() {
                let mut o = render(api, it);
                if let Some(m) = o.as_object_mut() {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                *it = o;
            }
        }
        list["apiVersion"] = json!(api.api_version());
        Ok(list)
    }

    /// Every Event as a record, in namespace/name order.
    pub fn event_records(&self) -> Vec<EventRecord> {
        self.events
            .iter()
            .map(|(k, e)| EventRecord::from(e, self.event_meta.get(k)))
            .collect()
    }
}

impl crate::Scenario {
    /// Whether the API server has `events.k8s.io/v1` (default true). `false` is a cluster
    /// older than 1.19: discovery does not list the group and its paths are 404, so a client
    /// must fall back to core v1 Events.
    pub fn events_k8s_io(mut self, served: bool) -> Self {
        self.events_v1 = served;
        self
    }
}

impl crate::Sim {
    /// Every Event (created through either group) with its count and series.
    pub fn event_records(&self) -> Vec<EventRecord> {
        self.shared.store().event_records()
    }

    /// The Events whose `regarding`/`involvedObject` is this object (`kind` e.g. `Node`,
    /// `Pod`; `namespace` empty for cluster-scoped objects), oldest first.
    pub fn events_regarding(&self, kind: &str, namespace: &str, name: &str) -> Vec<EventRecord> {
        let st = self.shared.store();
        let mut out: Vec<(Instant, EventRecord)> = st
            .events
            .iter()
            .filter(|(_, e)| {
                e["involvedObject"]["kind"] == kind
                    && e["involvedObject"]["name"] == name
                    && e["involvedObject"]["namespace"].as_str().unwrap_or("") == namespace
            })
            .map(|(k, e)| {
                let m = st.event_meta.get(k);
                (
                    m.map_or_else(Instant::now, |m| m.created_at),
                    EventRecord::from(e, m),
                )
            })
            .collect();
        out.sort_by_key(|(t, _)| *t);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_event() -> Value {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "n1.17c2f1a9b3d4e5f6", "namespace": "default"},
            "eventTime": "2024-05-01T10:00:05.123456Z",
            "reportingController": "spot-termination-notice-handler",
            "reportingInstance": "n1", "action": "Cordon", "reason": "SpotInterruption",
            "regarding": {"kind": "Node", "name": "n1", "uid": "n1", "apiVersion": "v1"},
            "note": "spot notice", "type": "Warning"})
    }

    #[test]
    fn round_trip_between_groups() {
        let core = decode(EventApi::EventsV1, &v1_event()).unwrap();
        assert_eq!(core["involvedObject"]["kind"], "Node");
        assert_eq!(core["message"], "spot notice");
        assert_eq!(
            core["reportingComponent"],
            "spot-termination-notice-handler"
        );
        let back = render(EventApi::EventsV1, &core);
        for k in [
            "eventTime",
            "reportingController",
            "note",
            "type",
            "action",
            "reason",
        ] {
            assert_eq!(back[k], v1_event()[k], "{k}");
        }
        let c = render(EventApi::Core, &core);
        assert_eq!(c["firstTimestamp"], Value::Null);
        assert_eq!(c["source"], json!({}));
        assert_eq!(c["reportingInstance"], "n1");
        assert!(validate_create(EventApi::EventsV1, &core).is_empty());
    }

    #[test]
    fn strict_validation_lists_every_error() {
        let mut e = v1_event();
        e["type"] = json!("Info");
        e["reportingController"] = json!("not a name!");
        e.as_object_mut().unwrap().remove("action");
        e["metadata"]["namespace"] = json!("shop");
        let core = decode(EventApi::EventsV1, &e).unwrap();
        let lines: Vec<String> = validate_create(EventApi::EventsV1, &core)
            .iter()
            .map(FieldError::line)
            .collect();
        assert_eq!(
            lines[0],
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
        );
        assert!(lines[1].starts_with("reportingController: Invalid value: \"not a name!\": name part must consist of alphanumeric characters"));
        assert_eq!(lines[2], "action: Required value");
        assert_eq!(
            lines[3],
            "type: Invalid value: \"\": has invalid value: Info"
        );
        assert_eq!(lines.len(), 4);
        // Core v1 with the same object only gets the legacy checks.
        assert_eq!(validate_create(EventApi::Core, &core).len(), 3);
    }
}
