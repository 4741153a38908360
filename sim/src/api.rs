//! The fake kube-apiserver's request pipeline: latency → scripted faults → authentication →
//! routing → RBAC deny list → handler, then one log entry per request.
//!
//! Served paths (everything else is a 404 `Status`, a known path with the wrong method is 405):
//!
//! | path | methods |
//! |---|---|
//! | `/version`, `/healthz`, `/livez`, `/readyz` | GET (also anonymous) |
//! | `/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}` | GET |
//! | `/api/v1/nodes[/{n}]` | GET; PATCH, PUT on a node |
//! | `/api/v1/pods`, `/api/v1/namespaces/{ns}/pods[/{p}]` | GET; DELETE on a pod |
//! | `/api/v1/namespaces/{ns}/pods/{p}/eviction` | POST |
//! | `/api/v1/namespaces[/{ns}]` | GET |
//! | `/api/v1/[namespaces/{ns}/]events[/{e}]` | GET, POST, PATCH, PUT |
//! | `/apis/apps/v1/[namespaces/{ns}/]daemonsets[/{d}]` | GET |
//! | `/apis/apps/v1/[namespaces/{ns}/]deployments[/{d}]` | GET; PATCH on a Deployment |
//! | `/apis/apps/v1/[namespaces/{ns}/]replicasets[/{r}]` | GET |
//! | `/api/v1/nodes/{n}/status` | GET, PATCH, PUT |
//! | `/apis/events.k8s.io/v1/[namespaces/{ns}/]events[/{e}]` | GET, POST, PATCH, PUT |
//! | `/apis/policy/{v}/[namespaces/{ns}/]poddisruptionbudgets[/{p}]` | GET |

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::discovery::{self, IncludeObject};
use crate::events::EventApi;
use crate::http::{ConnCtx, Request, Response};
use crate::status::{self, ApiError};
use crate::store::{DeleteOpts, ListQuery};
use crate::{lock, Shared, SimEvent};

/// One request to the fake API server, as logged.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// 1-based sequence number.
    pub seq: usize,
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub time: SystemTime,
    /// HTTP method.
    pub method: String,
    /// Path and query exactly as sent.
    pub path: String,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Request body as text (de-chunked).
    pub body: String,
    /// The bearer token sent, if any.
    pub token: Option<String>,
    /// Response status (0: connection dropped or left hanging).
    pub status: u16,
    /// Which TLS connection (1-based) carried it.
    pub connection: usize,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
}

/// What a scripted fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer this status and body (JSON if the body starts with `{`, else text/plain; a 429
    /// also gets `Retry-After: 1`, like the apiserver's max-in-flight filter).
    Status(u16, String),
    /// Close the connection without answering.
    Drop,
    /// Never answer (the socket is held for at most 30 s).
    Hang,
    /// A throttled request answered with a Status object: 429 with `Retry-After: N`, the
    /// `X-Kubernetes-PF-*` headers and a `TooManyRequests` Status with `retryAfterSeconds` (the
    /// form of a 429 that passed through the API machinery). kube-apiserver's API Priority
    /// and Fairness filter itself sheds load in plain text: [`FaultAction::shed`].
    Throttle(u64),
    /// Serve the request (a write is applied), but answer only after this long: slower than the
    /// client's timeout.
    Slow(Duration),
    /// Serve the request (a write is applied), then send the answer only up to the cut and close
    /// the connection abruptly (see [`crate::http::Cut`]).
    Truncate(crate::http::Cut),
}

/// A scripted fault: the next `remaining` requests matching `method` (`*` = any), whose
/// path+query starts with `prefix` and whose body contains `body` (empty: any body).
#[derive(Debug, Clone)]
pub struct Fault {
    /// HTTP method or `*`.
    pub method: String,
    /// Path prefix.
    pub prefix: String,
    /// A substring of the body.
    pub body: String,
    /// How many more requests it applies to.
    pub remaining: usize,
    /// What to do.
    pub action: FaultAction,
}

/// Mutable API-server controls and the request log.
#[derive(Debug, Default)]
pub struct ApiControl {
    /// The currently valid bearer token.
    pub token: String,
    /// Delay before every response.
    pub latency: Duration,
    /// Pending faults.
    pub faults: Vec<Fault>,
    /// Denied (verb, resource[/subresource]) pairs; `*` matches any verb.
    pub deny: Vec<(String, String)>,
    /// Request log.
    pub log: Vec<ApiRequest>,
    /// The requests no FlowSchema of [`ApiControl::levels`] selects (`workload-high`, where
    /// kube-system's service accounts land).
    pub seats: Seats,
    /// Priority levels of their own for the requests a FlowSchema selects (the lowest
    /// `matchingPrecedence` that matches wins, as in the API server).
    pub levels: Vec<Level>,
}

/// One priority level's seats and queue (APF-like), and what happened there.
#[derive(Debug, Default, Clone)]
pub struct Seats {
    /// At most this many requests in flight (0: no limit); one more gets 429 with
    /// `Retry-After` at once (kube-apiserver's plain-text answer).
    pub max_inflight: usize,
    /// `Retry-After` seconds of those 429s.
    pub retry_after_s: u64,
    /// Requests being served now (admitted ones).
    pub inflight: usize,
    /// Most requests served at once.
    pub peak_inflight: usize,
    /// Most requests that wanted a seat at once (admitted + the one rejected).
    pub peak_demand: usize,
    /// Requests rejected by the limit.
    pub throttled: usize,
    /// At most this many requests wait for a seat (0: none wait, a request without a seat is
    /// rejected at once).
    pub queue_limit: usize,
    /// The longest a request waits for a seat before its 429.
    pub max_wait: Duration,
    /// Requests waiting for a seat now.
    pub queued: usize,
    /// Most requests waiting at once.
    pub peak_queued: usize,
    /// Requests that got a seat after waiting.
    pub admitted_after_wait: usize,
    /// Requests that got a seat (at once or after waiting).
    pub admitted: usize,
}

/// A priority level of its own and the FlowSchema that sends requests to it.
#[derive(Debug)]
pub struct Level {
    /// Which requests it serves.
    pub schema: crate::flow::FlowSchema,
    /// Its seats and queue.
    pub seats: Seats,
    /// Signalled when one of its seats frees.
    pub(crate) free: std::sync::Arc<std::sync::Condvar>,
}

impl ApiControl {
    /// The level a request of `user` goes to: the index into [`ApiControl::levels`] of the
    /// matching FlowSchema with the lowest precedence (then name), `None` for the default one.
    fn classify(&self, user: &str, req: &Request) -> Option<usize> {
        if self.levels.is_empty() {
            return None;
        }
        let watch = matches!(req.query_param("watch"), Some("true") | Some("1"));
        let info = crate::flow::request_info(&req.method, &req.path, watch)?;
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.schema.matches(user, &info))
            .min_by(|(_, a), (_, b)| {
                (a.schema.precedence, &a.schema.name).cmp(&(b.schema.precedence, &b.schema.name))
            })
            .map(|(i, _)| i)
    }

    fn seats_mut(&mut self, level: Option<usize>) -> &mut Seats {
        match level {
            Some(i) => &mut self.levels[i].seats,
            None => &mut self.seats,
        }
    }
}

enum User {
    Anonymous,
    ServiceAccount,
}

/// Handles one API request (called on the connection's thread).
pub fn handle(sh: &Shared, req: &Request, ctx: &ConnCtx) -> Response {
    let at = Instant::now();
    let time = SystemTime::now();
    // A seat of the request's priority level (maybe after waiting in its queue), or the
    // `Retry-After` of a rejection.
    let (latency, rejected, level, free) = {
        let mut c = lock(&sh.api);
        let user = match bearer(req) {
            Some(t) if t == c.token => sh.user.as_str(),
            _ => "system:anonymous",
        };
        let level = c.classify(user, req);
        let free_cv = match level {
            Some(i) => c.levels[i].free.clone(),
            None => sh.seat_free.clone(),
        };
        let free = |s: &Seats| s.max_inflight == 0 || s.inflight < s.max_inflight;
        // Those already waiting go first.
        let s = c.seats_mut(level);
        let mut admitted = free(s) && s.queued == 0;
        if !admitted && s.queued < s.queue_limit {
            if free(s) {
                free_cv.notify_one();
            }
            s.queued += 1;
            s.peak_queued = s.peak_queued.max(s.queued);
            s.peak_demand = s.peak_demand.max(s.inflight + s.queued);
            let until = Instant::now() + s.max_wait;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() || ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                c = free_cv
                    .wait_timeout(c, left.min(Duration::from_millis(100)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                let s = c.seats_mut(level);
                if free(s) {
                    admitted = true;
                    s.admitted_after_wait += 1;
                    break;
                }
            }
            c.seats_mut(level).queued -= 1;
        }
        let latency = c.latency;
        let s = c.seats_mut(level);
        if admitted {
            s.inflight += 1;
            s.admitted += 1;
            s.peak_inflight = s.peak_inflight.max(s.inflight);
            s.peak_demand = s.peak_demand.max(s.inflight + s.queued);
            (latency, None, level, free_cv)
        } else {
            s.throttled += 1;
            s.peak_demand = s.peak_demand.max(s.inflight + s.queued + 1);
            (latency, Some(s.retry_after_s.max(1)), level, free_cv)
        }
    };
    if let Some(retry_after) = rejected {
        return log_request(sh, req, ctx, at, time, too_many_requests(retry_after));
    }
    if !latency.is_zero() {
        ctx.sleep(latency);
    }
    let resp = serve_admitted(sh, req, ctx);
    lock(&sh.api).seats_mut(level).inflight -= 1;
    free.notify_one();
    log_request(sh, req, ctx, at, time, resp)
}

/// The body of kube-apiserver's load-shedding 429 (see [`too_many_requests`]).
pub const SHED_BODY: &str = "Too many requests, please try again later.\n";

impl FaultAction {
    /// API Priority and Fairness shedding the request: the plain-text 429 of
    /// [`too_many_requests`] with `Retry-After: 1` (unlike [`FaultAction::Throttle`], whose
    /// Status body is what a client reads as a budget's refusal).
    pub fn shed() -> FaultAction {
        FaultAction::Status(429, SHED_BODY.to_string())
    }
}

/// What kube-apiserver answers when API Priority and Fairness (or the max-in-flight filter) has
/// no seat: `tooManyRequests` in k8s.io/apiserver's filters, i.e. Go's `http.Error` with
/// `Retry-After` — a text/plain body, not a Status object.
fn too_many_requests(retry_after: u64) -> Response {
    Response::with_body(429, "text/plain; charset=utf-8", SHED_BODY)
        .header("X-Content-Type-Options", "nosniff")
        .header("Retry-After", &retry_after.to_string())
}

fn serve_admitted(sh: &Shared, req: &Request, ctx: &ConnCtx) -> Response {
    let token = bearer(req);
    match take_fault(sh, req) {
        Some(FaultAction::Drop) => Response::drop_connection(),
        Some(FaultAction::Hang) => Response::hang(crate::imds::HANG_LIMIT),
        Some(FaultAction::Status(code, body)) => {
            let ct = if body.trim_start().starts_with('{') {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            let mut r = Response::with_body(code, ct, body);
            if code == 429 {
                r = r.header("Retry-After", "1");
            }
            r
        }
        Some(FaultAction::Throttle(secs)) => {
            let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "Too many requests, please try again later.",
                "reason": "TooManyRequests", "details": {"retryAfterSeconds": secs}, "code": 429});
            Response::json(429, &body)
                .header("Retry-After", &secs.to_string())
                .header(
                    "X-Kubernetes-PF-FlowSchema-UID",
                    "7f5b2c9e-0a1d-4c3b-9e8f-stnhsimflow0",
                )
                .header(
                    "X-Kubernetes-PF-PriorityLevel-UID",
                    "1c2d3e4f-5a6b-4c7d-8e9f-stnhsimprio0",
                )
        }
        Some(FaultAction::Slow(d)) => {
            let r = respond(sh, req, token.as_deref()).unwrap_or_else(|e| error_response(&e));
            ctx.sleep(d);
            r
        }
        Some(FaultAction::Truncate(cut)) => respond(sh, req, token.as_deref())
            .unwrap_or_else(|e| error_response(&e))
            .truncated(cut),
        None => match respond(sh, req, token.as_deref()) {
            Ok(r) => r,
            Err(e) => error_response(&e),
        },
    }
}

/// Logs a served request (after it was applied) and tells the observer.
fn log_request(
    sh: &Shared,
    req: &Request,
    ctx: &ConnCtx,
    at: Instant,
    time: SystemTime,
    resp: Response,
) -> Response {
    let token = bearer(req);
    let mut entry = ApiRequest {
        seq: 0,
        at,
        time,
        method: req.method.clone(),
        path: req.target.clone(),
        content_type: req.header("content-type").map(str::to_string),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        token,
        status: resp.status,
        connection: ctx.id,
        user_agent: req.header("user-agent").map(str::to_string),
    };
    {
        let mut c = lock(&sh.api);
        entry.seq = c.log.len() + 1;
        c.log.push(entry.clone());
    }
    sh.notify(SimEvent::Api(&entry));
    resp
}

fn bearer(req: &Request) -> Option<String> {
    let v = req.header("authorization")?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

fn take_fault(sh: &Shared, req: &Request) -> Option<FaultAction> {
    let mut c = lock(&sh.api);
    let i = c.faults.iter().position(|f| {
        f.remaining > 0
            && (f.method == "*"
                || f.method.is_empty()
                || f.method.eq_ignore_ascii_case(&req.method))
            && req.target.starts_with(&f.prefix)
            && (f.body.is_empty()
                || std::str::from_utf8(&req.body).is_ok_and(|b| b.contains(&f.body)))
    })?;
    let f = &mut c.faults[i];
    f.remaining -= 1;
    let action = f.action.clone();
    if f.remaining == 0 {
        c.faults.remove(i);
    }
    Some(action)
}

/// Wraps a JSON body with the headers the apiserver sends.
fn json_response(code: u16, v: &Value) -> Response {
    Response::json(code, v)
        .header("Audit-Id", &crate::util::uuid())
        .header("Cache-Control", "no-cache, private")
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.body);
    if let Some(s) = e.retry_after {
        r = r.header("Retry-After", &s.to_string());
    }
    r
}

fn respond(sh: &Shared, req: &Request, token: Option<&str>) -> Result<Response, ApiError> {
    let user = match (req.header("authorization"), token) {
        (None, _) => User::Anonymous,
        (Some(_), Some(t)) if t == lock(&sh.api).token => User::ServiceAccount,
        _ => return Err(status::unauthorized()),
    };
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let get_only = |v: Value| -> Result<Response, ApiError> {
        if req.method == "GET" || req.method == "HEAD" {
            Ok(json_response(200, &v))
        } else {
            Err(status::method_not_allowed())
        }
    };
    match segs.as_slice() {
        ["version"] => return get_only(discovery::version(&sh.versions)),
        ["healthz"] | ["livez"] | ["readyz"] => {
            return Ok(Response::with_body(200, "text/plain; charset=utf-8", "ok")
                .header("X-Content-Type-Options", "nosniff"))
        }
        _ => {}
    }
    let anonymous = matches!(user, User::Anonymous);
    let verb_word = if req.method == "GET" { "get" } else { "post" };
    match segs.as_slice() {
        ["api"] | ["api", "v1"] | ["apis"] | ["apis", _] | ["apis", _, _] | ["openapi", ..]
            if anonymous =>
        {
            Err(status::forbidden_path(
                "system:anonymous",
                verb_word,
                &req.path,
            ))
        }
        ["api"] => {
            let host = req.header("host").unwrap_or("127.0.0.1:443");
            get_only(discovery::api_versions(host))
        }
        ["api", "v1"] => get_only(discovery::core_v1(&sh.versions)),
        ["apis"] => get_only(discovery::api_groups(&sh.versions)),
        ["apis", g] => match discovery::api_group(&sh.versions, g) {
            Some(v) => get_only(v),
            None => Err(status::path_not_found()),
        },
        ["apis", g, v] => match discovery::group_version(&sh.versions, g, v) {
            Some(doc) => get_only(doc),
            None => Err(status::path_not_found()),
        },
        ["api", "v1", rest @ ..] => resource(sh, req, &user, "", "v1", rest),
        ["apis", g, v, rest @ ..] => {
            if discovery::group_version(&sh.versions, g, v).is_none() {
                return Err(status::path_not_found());
            }
            resource(sh, req, &user, g, v, rest)
        }
        _ => Err(status::path_not_found()),
    }
}

struct Target<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

/// (group, resource) → namespaced?
fn known(group: &str, resource: &str) -> Option<bool> {
    match (group, resource) {
        ("", "pods") | ("", "events") | ("events.k8s.io", "events") => Some(true),
        ("", "nodes") | ("", "namespaces") => Some(false),
        ("apps", "daemonsets" | "deployments" | "replicasets")
        | ("policy", "poddisruptionbudgets") => Some(true),
        _ => None,
    }
}

fn resource(
    sh: &Shared,
    req: &Request,
    user: &User,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let t = match rest {
        ["namespaces", ns, res, tail @ ..] if tail.len() <= 2 => Target {
            group,
            version,
            namespace: Some(ns),
            resource: res,
            name: tail.first().copied(),
            sub: tail.get(1).copied(),
        },
        [res, tail @ ..] if tail.len() <= 2 => Target {
            group,
            version,
            namespace: None,
            resource: res,
            name: tail.first().copied(),
            sub: tail.get(1).copied(),
        },
        _ => return Err(status::path_not_found()),
    };
    let Some(namespaced) = known(t.group, t.resource) else {
        return Err(status::path_not_found());
    };
    if (!namespaced && t.namespace.is_some())
        || (namespaced && t.namespace.is_none() && t.name.is_some())
    {
        return Err(status::path_not_found());
    }
    let watch = matches!(req.query_param("watch"), Some("true") | Some("1"));
    let verb = match (req.method.as_str(), t.name.is_some()) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(status::method_not_allowed()),
    };
    let full = match t.sub {
        Some(s) => format!("{}/{s}", t.resource),
        None => t.resource.to_string(),
    };
    let user_name = match user {
        User::Anonymous => "system:anonymous".to_string(),
        User::ServiceAccount => sh.user.clone(),
    };
    // A deny rule names `resource[/sub]` (any group) or `resource.group[/sub]` (that group).
    let qualified_full = match t.sub {
        Some(s) if !t.group.is_empty() => format!("{}.{}/{s}", t.resource, t.group),
        None if !t.group.is_empty() => format!("{}.{}", t.resource, t.group),
        _ => full.clone(),
    };
    let denied = matches!(user, User::Anonymous)
        || lock(&sh.api)
            .deny
            .iter()
            .any(|(v, r)| (v == "*" || v == verb) && (*r == full || *r == qualified_full));
    if denied {
        return Err(status::forbidden(
            &user_name,
            verb,
            t.resource,
            t.sub.unwrap_or(""),
            t.group,
            t.namespace,
            t.name.unwrap_or(""),
        ));
    }
    if watch {
        return Err(status::bad_request(
            "watch is not supported by the stnh-sim fake API server",
        ));
    }
    let now = Instant::now();
    let mut store = sh.store();
    let dry_run = req.query_param("dryRun") == Some("All");
    let ns = t.namespace.unwrap_or("");
    let event_api = if t.group == "events.k8s.io" {
        EventApi::EventsV1
    } else {
        EventApi::Core
    };
    let out: Result<(u16, Value), ApiError> = match (t.resource, verb, t.sub) {
        ("pods", "list", None) => store.list_pods(&list_query(req, t.namespace)?).map(ok),
        ("pods", "get", None | Some("status")) => store.get_pod(ns, t.name.unwrap()).map(ok),
        ("pods", "delete", None) => {
            let opts = delete_opts(req)?;
            store.delete_pod(ns, t.name.unwrap(), &opts, now).map(ok)
        }
        ("pods", "create", Some("eviction")) => {
            let opts = eviction_opts(sh, req, ns, t.name.unwrap())?;
            store
                .evict(ns, t.name.unwrap(), &opts, now)
                .map(|_| (201, status::success(201)))
        }
        ("nodes", "list", None) => store.list_nodes(&list_query(req, None)?).map(ok),
        ("nodes", "get", None | Some("status")) => store.get_node(t.name.unwrap()).map(ok),
        ("nodes", "patch", None) => {
            let mt = patch_type(req)?;
            store
                .patch_node(t.name.unwrap(), &mt, &req.body, dry_run, now)
                .map(ok)
        }
        ("nodes", "patch", Some("status")) => {
            let mt = patch_type(req)?;
            store
                .patch_node_status(t.name.unwrap(), &mt, &req.body, dry_run)
                .map(ok)
        }
        ("nodes", "update", Some("status")) => {
            json_body_type(req)?;
            store
                .put_node_status(t.name.unwrap(), &req.body, dry_run)
                .map(ok)
        }
        ("nodes", "update", None) => {
            json_body_type(req)?;
            store
                .put_node(t.name.unwrap(), &req.body, dry_run, now)
                .map(ok)
        }
        ("namespaces", "list", None) => {
            let items: Vec<Value> = store
                .namespaces()
                .iter()
                .map(|n| {
                    let mut o = store.namespace_obj(n);
                    o.as_object_mut().unwrap().remove("kind");
                    o.as_object_mut().unwrap().remove("apiVersion");
                    o
                })
                .collect();
            Ok(ok(json!({"kind": "NamespaceList", "apiVersion": "v1",
                "metadata": {"resourceVersion": store.resource_version()}, "items": items})))
        }
        ("namespaces", "get", None) => {
            let n = t.name.unwrap();
            if store.namespaces().iter().any(|x| x == n) {
                Ok(ok(store.namespace_obj(n)))
            } else {
                Err(status::not_found("namespaces", "", n))
            }
        }
        ("events", "list", None) => store
            .list_events_via(event_api, &list_query(req, t.namespace)?)
            .map(ok),
        ("events", "get", None) => store.get_event_via(event_api, ns, t.name.unwrap()).map(ok),
        ("events", "create", None) if t.name.is_none() && t.namespace.is_some() => {
            json_body_type(req)?;
            store
                .create_event_via(event_api, ns, &req.body, dry_run, now)
                .map(|v| (201, v))
        }
        ("events", "patch", None) if t.namespace.is_some() => {
            let mt = patch_type(req)?;
            store
                .patch_event_via(event_api, ns, t.name.unwrap(), &mt, &req.body, dry_run)
                .map(ok)
        }
        ("events", "update", None) if t.namespace.is_some() => {
            json_body_type(req)?;
            store
                .put_event_via(event_api, ns, t.name.unwrap(), &req.body, dry_run)
                .map(ok)
        }
        ("daemonsets", "list", None) => store
            .list_daemonsets(&list_query(req, t.namespace)?)
            .map(ok),
        ("daemonsets", "get", None) => store
            .daemonsets
            .get(&format!("{ns}/{}", t.name.unwrap()))
            .cloned()
            .map(ok)
            .ok_or_else(|| status::not_found("daemonsets", "apps", t.name.unwrap())),
        ("deployments", "list", None) => store
            .list_deployments(&list_query(req, t.namespace)?)
            .map(ok),
        ("deployments", "get", None | Some("status")) => {
            store.get_deployment(ns, t.name.unwrap()).map(ok)
        }
        ("deployments", "patch", None) => {
            let mt = patch_type(req)?;
            store
                .patch_deployment(ns, t.name.unwrap(), &mt, &req.body, dry_run, now)
                .map(ok)
        }
        ("replicasets", "list", None) => store
            .list_replicasets(&list_query(req, t.namespace)?)
            .map(ok),
        ("replicasets", "get", None | Some("status")) => {
            store.get_replicaset(ns, t.name.unwrap()).map(ok)
        }
        ("poddisruptionbudgets", "list", None) => store
            .list_pdbs(
                &list_query(req, t.namespace)?,
                &format!("policy/{}", t.version),
            )
            .map(ok),
        ("poddisruptionbudgets", "get", None) => {
            let k = format!("{ns}/{}", t.name.unwrap());
            match store.pdbs.get(&k) {
                Some(e) => {
                    let mut o = store.pdb_with_status(e);
                    o["apiVersion"] = json!(format!("policy/{}", t.version));
                    Ok(ok(o))
                }
                None => Err(status::not_found(
                    "poddisruptionbudgets",
                    "policy",
                    t.name.unwrap(),
                )),
            }
        }
        (_, _, Some(_)) if t.sub != Some("status") && t.sub != Some("eviction") => {
            Err(status::path_not_found())
        }
        _ => Err(status::method_not_allowed()),
    };
    drop(store);
    let (code, body) = out?;
    let accept = req.header("accept").unwrap_or("");
    if code == 200 && accept.contains("as=Table") && req.method == "GET" {
        let include = match req.query_param("includeObject") {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        };
        let kind = match t.resource {
            "pods" => "Pod",
            "nodes" => "Node",
            "events" => "Event",
            "namespaces" => "Namespace",
            "daemonsets" => "DaemonSet",
            "deployments" => "Deployment",
            "replicasets" => "ReplicaSet",
            _ => "PodDisruptionBudget",
        };
        return Ok(json_response(
            200,
            &discovery::table(t.resource, &body, include, kind),
        ));
    }
    Ok(json_response(code, &body))
}

fn ok(v: Value) -> (u16, Value) {
    (200, v)
}

fn list_query(req: &Request, namespace: Option<&str>) -> Result<ListQuery, ApiError> {
    let limit = match req.query_param("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| status::bad_request(&format!("invalid value {l:?} for limit")))?,
        _ => 0,
    };
    Ok(ListQuery {
        namespace: namespace.map(str::to_string),
        field: req.query_param("fieldSelector").unwrap_or("").to_string(),
        label: req.query_param("labelSelector").unwrap_or("").to_string(),
        limit: limit.max(0) as usize,
        cont: req.query_param("continue").map(str::to_string),
    })
}

fn patch_type(req: &Request) -> Result<String, ApiError> {
    let mt = req.media_type().unwrap_or_default();
    match mt.as_str() {
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => Ok(mt),
        other => Err(status::unsupported_patch_type(other)),
    }
}

fn json_body_type(req: &Request) -> Result<(), ApiError> {
    match req.media_type().as_deref() {
        None | Some("application/json") | Some("") => Ok(()),
        Some(other) => Err(status::unsupported_body_type(other)),
    }
}

fn parse_delete_options(v: &Value, opts: &mut DeleteOpts) -> Result<(), ApiError> {
    if let Some(g) = v.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
        opts.grace = Some(g.as_i64().ok_or_else(|| {
            status::bad_request(&format!(
                "json: cannot unmarshal {g} into Go struct field DeleteOptions.gracePeriodSeconds of type int64"
            ))
        })?);
    }
    if let Some(uid) = v.pointer("/preconditions/uid").and_then(Value::as_str) {
        opts.uid = Some(uid.to_string());
    }
    if let Some(rv) = v
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
    {
        opts.resource_version = Some(rv.to_string());
    }
    if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
        opts.dry_run |= d.iter().any(|x| x == "All");
    }
    Ok(())
}

fn delete_opts(req: &Request) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts {
        dry_run: req.query_param("dryRun") == Some("All"),
        ..DeleteOpts::default()
    };
    if let Some(g) = req.query_param("gracePeriodSeconds") {
        opts.grace = Some(
            g.parse()
                .map_err(|_| status::bad_request(&format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if !req.body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(&req.body).map_err(|e| {
            status::bad_request(&format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        parse_delete_options(&v, &mut opts)?;
    }
    Ok(opts)
}

fn eviction_opts(sh: &Shared, req: &Request, ns: &str, name: &str) -> Result<DeleteOpts, ApiError> {
    json_body_type(req)?;
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        status::bad_request(&format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let api_version = body["apiVersion"].as_str().unwrap_or("");
    let kind = body["kind"].as_str().unwrap_or("");
    let expected = format!("policy/{}", sh.versions.eviction);
    match api_version {
        "" => {}
        "policy/v1" if sh.versions.old() => {
            return Err(status::bad_request(
                "no kind \"Eviction\" is registered for version \"policy/v1\" in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\"",
            ))
        }
        "policy/v1" | "policy/v1beta1" => {}
        other => {
            return Err(status::bad_request(&format!(
                "the API version in the data ({other}) does not match the expected API version ({expected})"
            )))
        }
    }
    if !kind.is_empty() && kind != "Eviction" {
        return Err(status::bad_request(&format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\""
        )));
    }
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(status::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    match body.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != ns => return Err(status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {}
    }
    let mut opts = DeleteOpts {
        dry_run: req.query_param("dryRun") == Some("All"),
        ..DeleteOpts::default()
    };
    if let Some(d) = body.get("deleteOptions").filter(|d| !d.is_null()) {
        parse_delete_options(d, &mut opts)?;
    }
    Ok(opts)
}
