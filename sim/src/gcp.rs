//! Fake GCE metadata server (plain HTTP), after Google's documentation of
//! `computeMetadata/v1` and its hanging GETs.
//!
//! - Everything under `/computeMetadata/` needs `Metadata-Flavor: Google` (403 HTML page
//!   "Missing Metadata-Flavor:Google header" without it); every answer carries
//!   `Metadata-Flavor: Google`, an `ETag` (a hash of the body, so a value set back to what it
//!   was gets its old ETag again) and a `Date` on the metadata clock.
//! - Values are plain text (`Content-Type: application/text`); `alt=json` gives JSON; a
//!   directory with a trailing slash lists its children (sub-directories end in `/`), without
//!   one it answers 301 to the slashed URL; `recursive=true` gives the subtree as JSON with
//!   camelCase keys. Unknown keys are 404; only GET/HEAD (405 otherwise).
//! - Hanging GET: `wait_for_change=true` with `last_etag` answers at once when the current ETag
//!   differs, else holds until the value changes or `timeout_sec` passes, then answers the
//!   (unchanged) value with the same ETag; without `last_etag` it waits for the next change
//!   after the request arrived. A hold never lasts longer than the hold limit (30 s by
//!   default, [`crate::Sim::gcp_set_hold_limit`]): past it the unchanged value is answered,
//!   which the protocol allows ("at most `timeout_sec`"), so no test can hang on it.
//!   `timeout_sec` that is not a positive integer, or `wait_for_change`/`recursive` other
//!   than true/false, is 400.
//! - Faults: 503 for the next n requests, a hang (no answer, bounded) for the next n, and value
//!   changes at given instants (scripted). Each change is recorded with the instant it
//!   happened ([`GcpChange`]) so a benchmark can measure reaction time to the cordon.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::http::{ConnCtx, Request, Response};
use crate::metadata::{Clock, Cloud, MetaRequest, Pending};
use crate::{lock, Observer, SimEvent};

/// Default longest hold of a hanging GET (or a scripted hang).
pub const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// GCE project id of the fake instance.
pub const PROJECT_ID: &str = "my-proj";
/// Numeric project id.
pub const PROJECT_NUMBER: &str = "123456789012";
/// Zone of the fake instance.
pub const ZONE: &str = "us-central1-a";
/// Numeric instance id.
pub const INSTANCE_ID: &str = "4520031799277581759";

/// A scripted GCE metadata change.
#[derive(Debug, Clone)]
pub enum GcpStep {
    /// `key` (relative to `/computeMetadata/v1/`, e.g. `instance/preempted`) takes `value`.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
}

/// A value change, with the instant it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpChange {
    /// Key relative to `/computeMetadata/v1/`.
    pub key: String,
    /// Value before.
    pub old: String,
    /// Value after.
    pub value: String,
    /// When it changed (the scheduled instant for scripted changes).
    pub at: Instant,
    /// The same on the metadata clock.
    pub time: SystemTime,
}

/// Mutable state of the fake.
#[derive(Debug)]
pub struct GcpState {
    values: BTreeMap<String, String>,
    changes: Vec<GcpChange>,
    pending: Pending<GcpStep>,
    fail_next: usize,
    fail_status: u16,
    hang_next: usize,
    pub(crate) hold_limit: Duration,
    /// Never answer (an unrouted address on this host).
    pub silent: bool,
    log: Vec<MetaRequest>,
}

/// The fake GCE metadata server's shared state.
pub struct Gcp {
    st: Mutex<GcpState>,
    cv: Condvar,
    waiters: AtomicUsize,
    clock: Arc<Clock>,
    observer: Option<Observer>,
}

impl Gcp {
    /// A Spot VM named `instance_name` in `my-proj`/`us-central1-a`, not preempted, no
    /// maintenance.
    pub fn new(instance_name: &str, clock: Arc<Clock>, observer: Option<Observer>) -> Gcp {
        let mut values = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            values.insert(k.to_string(), v.to_string());
        };
        put(
            "instance/hostname",
            &format!("{instance_name}.{ZONE}.c.{PROJECT_ID}.internal"),
        );
        put("instance/id", INSTANCE_ID);
        put(
            "instance/machine-type",
            &format!("projects/{PROJECT_NUMBER}/machineTypes/e2-standard-4"),
        );
        put("instance/maintenance-event", "NONE");
        put("instance/name", instance_name);
        put("instance/preempted", "FALSE");
        put("instance/scheduling/automatic-restart", "FALSE");
        put("instance/scheduling/on-host-maintenance", "TERMINATE");
        put("instance/scheduling/preemptible", "TRUE");
        put("instance/scheduling/provisioning-model", "SPOT");
        put(
            "instance/zone",
            &format!("projects/{PROJECT_NUMBER}/zones/{ZONE}"),
        );
        put("project/numeric-project-id", PROJECT_NUMBER);
        put("project/project-id", PROJECT_ID);
        Gcp {
            st: Mutex::new(GcpState {
                values,
                changes: Vec::new(),
                pending: Pending::default(),
                fail_next: 0,
                fail_status: 503,
                hang_next: 0,
                hold_limit: HOLD_LIMIT,
                silent: false,
                log: Vec::new(),
            }),
            cv: Condvar::new(),
            waiters: AtomicUsize::new(0),
            clock,
            observer,
        }
    }

    /// The state, with due scripted changes applied.
    pub(crate) fn state(&self) -> MutexGuard<'_, GcpState> {
        let mut st = lock(&self.st);
        if self.tick(&mut st, Instant::now()) {
            self.cv.notify_all();
        }
        st
    }

    fn tick(&self, st: &mut GcpState, now: Instant) -> bool {
        let due = st.pending.due(now);
        let any = !due.is_empty();
        for (at, GcpStep::Set { key, value }) in due {
            self.set(st, at, &key, &value);
        }
        any
    }

    fn set(&self, st: &mut GcpState, at: Instant, key: &str, value: &str) {
        let key = key.trim_matches('/').to_string();
        let old = st.values.get(&key).cloned().unwrap_or_default();
        if old == value && st.values.contains_key(&key) {
            return;
        }
        st.values.insert(key.clone(), value.to_string());
        st.changes.push(GcpChange {
            key,
            old,
            value: value.to_string(),
            at,
            time: self.clock.service_time(at),
        });
    }

    /// Sets a value now (waiting hanging GETs see it at once).
    pub(crate) fn set_now(&self, key: &str, value: &str) {
        let mut st = self.state();
        self.set(&mut st, Instant::now(), key, value);
        drop(st);
        self.cv.notify_all();
    }

    /// Schedules changes.
    pub(crate) fn schedule(&self, steps: Vec<(Instant, GcpStep)>) {
        let mut st = lock(&self.st);
        for (at, s) in steps {
            st.pending.push(at, s);
        }
        drop(st);
        self.cv.notify_all();
    }

    fn finish(&self, mut entry: MetaRequest, resp: Response) -> Response {
        entry.status = resp.status;
        entry.answered = Instant::now();
        lock(&self.st).log.push(entry.clone());
        if let Some(o) = &self.observer {
            o(&SimEvent::Metadata(&entry));
        }
        resp
    }

    /// Handles one request (holding it for a hanging GET).
    pub fn handle(&self, req: &Request, ctx: &ConnCtx) -> Response {
        let mut entry = MetaRequest::new(Cloud::Gcp, req);
        let mut st = self.state();
        if st.silent || st.hang_next > 0 {
            if !st.silent {
                st.hang_next -= 1;
                entry.note = "hang".into();
            }
            let limit = st.hold_limit;
            drop(st);
            return self.finish(entry, Response::hang(limit));
        }
        if st.fail_next > 0 {
            st.fail_next -= 1;
            let status = st.fail_status;
            drop(st);
            let body = format!("{} {}\n", status, crate::http::reason(status));
            return self.finish(entry, self.decorate(text(status, body)));
        }
        drop(st);
        let resp = self.respond(req, ctx, &mut entry);
        let resp = match resp.action {
            crate::http::Action::Respond => self.decorate(resp),
            _ => resp,
        };
        self.finish(entry, resp)
    }

    fn decorate(&self, r: Response) -> Response {
        r.header("Metadata-Flavor", "Google")
            .header("Server", "Metadata Server for VM")
            .header("X-XSS-Protection", "0")
            .header("X-Frame-Options", "SAMEORIGIN")
            .header("Date", &self.clock.date_header())
    }

    fn respond(&self, req: &Request, ctx: &ConnCtx, entry: &mut MetaRequest) -> Response {
        let path = req.path.as_str();
        if path == "/" {
            return text(200, "0.1/\ncomputeMetadata/\n".to_string());
        }
        let Some(rest) = path.strip_prefix("/computeMetadata/") else {
            return not_found(path);
        };
        if req.header("metadata-flavor") != Some("Google") {
            entry.note = "no Metadata-Flavor".into();
            return forbidden(path);
        }
        if req.method != "GET" && req.method != "HEAD" {
            return Response::with_body(405, "text/html; charset=UTF-8", "Method Not Allowed\n");
        }
        if rest.is_empty() {
            return text(200, "v1/\n".to_string());
        }
        let Some(key) = rest
            .strip_prefix("v1/")
            .or(if rest == "v1" { Some("") } else { None })
        else {
            return not_found(path);
        };
        let q = match Query::parse(req) {
            Ok(q) => q,
            Err(msg) => return Response::with_body(400, "text/html; charset=UTF-8", msg),
        };
        let dir = key.is_empty() || key.ends_with('/');
        let key = key.trim_end_matches('/').to_string();
        let start = Instant::now();
        let mut st = self.state();
        let Some(first) = render(&st.values, &key, dir, &q) else {
            return not_found(path);
        };
        let (body, etag, ctype) = match first {
            Rendered::Redirect => {
                return Response::with_body(
                    301,
                    "text/html; charset=UTF-8",
                    format!("<a href=\"{path}/\">Moved Permanently</a>.\n"),
                )
                .header("Location", &format!("{path}/"));
            }
            Rendered::Body(b, e, c) => (b, e, c),
        };
        if !q.wait {
            return with_type(text(200, body), ctype).header("ETag", &etag);
        }
        // Hanging GET.
        let reference = q.last_etag.clone().unwrap_or_else(|| etag.clone());
        if reference != etag {
            return with_type(text(200, body), ctype).header("ETag", &etag);
        }
        let limit = q.timeout.map_or(st.hold_limit, |t| t.min(st.hold_limit));
        let deadline = start + limit;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = Leave(&self.waiters);
        loop {
            let now = Instant::now();
            if self.tick(&mut st, now) {
                self.cv.notify_all();
            }
            let (body, etag, ctype) = match render(&st.values, &key, dir, &q) {
                Some(Rendered::Body(b, e, c)) => (b, e, c),
                // The key vanished while we waited.
                _ => return not_found(path),
            };
            if etag != reference || now >= deadline {
                entry.note = format!("held {:.1}s", (now - start).as_secs_f64());
                return with_type(text(200, body), ctype).header("ETag", &etag);
            }
            if ctx.stop.load(Ordering::Relaxed) {
                return Response::drop_connection();
            }
            let mut wake = deadline.min(now + Duration::from_millis(100));
            if let Some(n) = st.pending.next_at() {
                wake = wake.min(n);
            }
            let (g, _) = self
                .cv
                .wait_timeout(st, wake.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner());
            st = g;
        }
    }
}

fn with_type(r: Response, ctype: &str) -> Response {
    let mut r = r;
    r.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    r.header("Content-Type", ctype)
}

fn text(status: u16, body: String) -> Response {
    Response::with_body(status, "application/text", body)
}

fn not_found(path: &str) -> Response {
    Response::with_body(
        404,
        "text/html; charset=UTF-8",
        format!(
            "<!DOCTYPE html>\n<html lang=en>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That\u{2019}s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That\u{2019}s all we know.</ins>\n"
        ),
    )
}

fn forbidden(path: &str) -> Response {
    Response::with_body(
        403,
        "text/html; charset=UTF-8",
        format!(
            "<!DOCTYPE html>\n<html lang=en>\n  <title>Error 403 (Forbidden)!!1</title>\n  <p><b>403.</b> <ins>That\u{2019}s an error.</ins>\n  <p>Your client does not have permission to get URL <code>{path}</code> from this server. Missing Metadata-Flavor:Google header. <ins>That\u{2019}s all we know.</ins>\n"
        ),
    )
}

struct Query {
    wait: bool,
    last_etag: Option<String>,
    timeout: Option<Duration>,
    recursive: bool,
    json: bool,
}

impl Query {
    fn parse(req: &Request) -> Result<Query, String> {
        let flag = |name: &str| -> Result<bool, String> {
            match req.query_param(name) {
                None => Ok(false),
                Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
                Some(v) => Err(format!("Invalid value for {name}: {v}\n")),
            }
        };
        let timeout = match req.query_param("timeout_sec") {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Some(Duration::from_secs(n)),
                _ => return Err(format!("Invalid value for timeout_sec: {v}\n")),
            },
        };
        let json = match req.query_param("alt") {
            None | Some("text") => false,
            Some("json") => true,
            Some(v) => return Err(format!("Invalid value for alt: {v}\n")),
        };
        let recursive = flag("recursive")?;
        Ok(Query {
            wait: flag("wait_for_change")?,
            last_etag: req.query_param("last_etag").map(str::to_string),
            timeout,
            recursive,
            json: json || recursive,
        })
    }
}

enum Rendered {
    Redirect,
    Body(String, String, &'static str),
}

/// 16 hex digits of FNV-1a over the body.
fn etag(body: &str) -> String {
    let h = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

fn camel(s: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn json_leaf(key: &str, v: &str) -> Value {
    // Numeric ids are numbers in GCE's JSON; everything else a string.
    if key.ends_with("/id") || key == "id" || key.ends_with("numeric-project-id") {
        if let Ok(n) = v.parse::<u64>() {
            return json!(n);
        }
    }
    json!(v)
}

/// What `key` (a leaf, or a directory when `dir` or when it has children) renders to.
fn render(values: &BTreeMap<String, String>, key: &str, dir: bool, q: &Query) -> Option<Rendered> {
    if !dir {
        if let Some(v) = values.get(key) {
            let (body, ctype) = if q.json {
                (json_leaf(key, v).to_string(), "application/json")
            } else {
                (v.clone(), "application/text")
            };
            let e = etag(&body);
            return Some(Rendered::Body(body, e, ctype));
        }
    }
    let prefix = if key.is_empty() {
        String::new()
    } else {
        format!("{key}/")
    };
    let children: Vec<(&String, &String)> = values
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    if children.is_empty() {
        return None;
    }
    if !dir && !q.recursive {
        return Some(Rendered::Redirect);
    }
    let (body, ctype) = if q.recursive {
        let mut root = Map::new();
        for (k, v) in &children {
            let rel = &k[prefix.len()..];
            let parts: Vec<&str> = rel.split('/').collect();
            let mut node = &mut root;
            for p in &parts[..parts.len() - 1] {
                node = node
                    .entry(camel(p))
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()?;
            }
            node.insert(camel(parts[parts.len() - 1]), json_leaf(k, v));
        }
        (Value::Object(root).to_string(), "application/json")
    } else {
        let mut names: Vec<String> = children
            .iter()
            .map(|(k, _)| {
                let rel = &k[prefix.len()..];
                match rel.split_once('/') {
                    Some((d, _)) => format!("{d}/"),
                    None => rel.to_string(),
                }
            })
            .collect();
        names.dedup();
        (names.join("\n") + "\n", "application/text")
    };
    let e = etag(&body);
    Some(Rendered::Body(body, e, ctype))
}

/// GCE metadata knobs.
impl crate::Sim {
    /// `http://127.0.0.1:PORT` of the fake GCE metadata server (what `GCP_METADATA_URL` points
    /// at when the scenario is on GCP; see [`crate::Sim::handler_metadata_url`]).
    pub fn gcp_metadata_url(&self) -> String {
        self.meta.gcp_url()
    }

    /// Sets a key (relative to `/computeMetadata/v1/`) now; hanging GETs on it answer at once.
    pub fn gcp_set(&self, key: &str, value: &str) {
        self.meta.gcp.set_now(key, value);
    }

    /// The current value of a key.
    pub fn gcp_value(&self, key: &str) -> Option<String> {
        self.meta
            .gcp
            .state()
            .values
            .get(key.trim_matches('/'))
            .cloned()
    }

    /// How many hanging GETs are being held right now (a test or benchmark can wait for the
    /// handler's watchers to be parked before it changes a value).
    pub fn gcp_waiters(&self) -> usize {
        self.meta.gcp.waiters.load(Ordering::SeqCst)
    }

    /// `key` takes `value` at instant `at` (a parked hanging GET answers then); the change is
    /// recorded at `at`.
    pub fn gcp_set_at(&self, at: Instant, key: &str, value: &str) {
        self.meta.gcp.schedule(vec![(
            at,
            GcpStep::Set {
                key: key.to_string(),
                value: value.to_string(),
            },
        )]);
    }

    /// Every value change so far, with its instant.
    pub fn gcp_changes(&self) -> Vec<GcpChange> {
        self.meta.gcp.state().changes.clone()
    }

    /// The next `n` requests get `status` (Google's documented transient error is 503).
    pub fn gcp_fail_next(&self, n: usize, status: u16) {
        let mut st = self.meta.gcp.state();
        st.fail_next = n;
        st.fail_status = status;
    }

    /// The next `n` requests are read and never answered (held at most the hold limit).
    pub fn gcp_hang_next(&self, n: usize) {
        self.meta.gcp.state().hang_next = n;
    }

    /// The longest a hanging GET (or a hang) is held (default 30 s).
    pub fn gcp_set_hold_limit(&self, d: Duration) {
        self.meta.gcp.state().hold_limit = d;
    }

    /// Every request to the GCE fake so far (logged when answered).
    pub fn gcp_requests(&self) -> Vec<crate::metadata::MetaRequest> {
        lock(&self.meta.gcp.st).log.clone()
    }

    /// How many GCE requests had a path (with query) starting with `path_prefix`.
    pub fn gcp_count(&self, path_prefix: &str) -> usize {
        let st = lock(&self.meta.gcp.st);
        crate::metadata::count_prefix(st.log.iter().map(|r| r.path.as_str()), path_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(recursive: bool) -> Query {
        Query {
            wait: false,
            last_etag: None,
            timeout: None,
            recursive,
            json: recursive,
        }
    }

    #[test]
    fn listing_and_recursive_json() {
        let g = Gcp::new(
            "vm-1",
            Arc::new(Clock::new((Instant::now(), SystemTime::now()), 0)),
            None,
        );
        let st = g.state();
        let Some(Rendered::Body(b, _, _)) =
            render(&st.values, "instance/scheduling", true, &q(false))
        else {
            panic!()
        };
        assert_eq!(
            b,
            "automatic-restart\non-host-maintenance\npreemptible\nprovisioning-model\n"
        );
        let Some(Rendered::Body(b, _, _)) = render(&st.values, "instance", true, &q(true)) else {
            panic!()
        };
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["scheduling"]["onHostMaintenance"], "TERMINATE");
        assert_eq!(v["maintenanceEvent"], "NONE");
        assert_eq!(v["id"], json!(4520031799277581759u64));
        assert!(matches!(
            render(&st.values, "instance", false, &q(false)),
            Some(Rendered::Redirect)
        ));
        assert!(render(&st.values, "instance/nope", false, &q(false)).is_none());
    }

    #[test]
    fn camel_case() {
        assert_eq!(camel("on-host-maintenance"), "onHostMaintenance");
        assert_eq!(camel("id"), "id");
    }
}
