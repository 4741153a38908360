//! A tiny Kubernetes API client: the handful of calls a node drainer makes, over `http.rs`.
//!
//! In-cluster: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the server verified
//! against the service account's `ca.crt` (IP SANs work: the service host is usually an IP), a
//! bearer token re-read from the projected `token` file at least once a minute and after a 401
//! (then the request is retried once). A plain `http://` base (kubectl proxy) works too, with or
//! without a token; the configuration step allows it only to a loopback address, since the
//! token goes with every request. Every call is bounded by a per-request timeout and by the caller's deadline.

pub mod model;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Secret;
use crate::http::{self, Endpoint};
use crate::json;
use crate::{debug, warn};
use model::{ApiResourceList, Deployment, Node, Pod, PodList, Status};

/// Per-request timeout (also capped by the caller's deadline).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Re-read the projected token this often (client-go does every minute).
const TOKEN_MAX_AGE: Duration = Duration::from_secs(60);
/// Pod lists come in pages of this many items (kubectl's chunk size).
pub const PAGE_LIMIT: usize = 500;
/// Largest response body we accept: a page of 500 pods is typically 1–3 MB.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The Eviction API version to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionVersion {
    V1,
    V1Beta1,
}

impl EvictionVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            EvictionVersion::V1 => "policy/v1",
            EvictionVersion::V1Beta1 => "policy/v1beta1",
        }
    }

    /// The fallback when discovery is unavailable: policy/v1 exists from Kubernetes 1.22.
    pub fn for_kube_version(v: &str) -> EvictionVersion {
        let mut parts = v.trim_start_matches('v').split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
        let minor: u32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(u32::MAX);
        if major == 1 && minor < 22 {
            EvictionVersion::V1Beta1
        } else {
            EvictionVersion::V1
        }
    }
}

/// What went wrong with one API call.
#[derive(Debug)]
pub enum ErrorKind {
    /// No HTTP answer (connect, TLS, timeout…), or the deadline had passed already.
    Transport(String),
    /// A non-2xx answer, with what its `Status` body said (when it was one).
    Status {
        code: u16,
        reason: String,
        message: String,
        /// `details.causes[0].reason`, e.g. `DisruptionBudget` or `NamespaceTerminating`.
        cause: String,
        cause_message: String,
        retry_after: Option<u64>,
        /// False for plain-text answers such as the API server's overload 429.
        is_status_object: bool,
    },
    /// A 2xx whose body we could not read.
    Decode(String),
}

/// An API call that failed: the operation, then why.
#[derive(Debug)]
pub struct Error {
    pub op: String,
    /// Boxed so `Result<_, Error>` stays small on the happy path.
    pub kind: Box<ErrorKind>,
}

impl Error {
    pub fn code(&self) -> Option<u16> {
        match &*self.kind {
            ErrorKind::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
    /// A PodDisruptionBudget forbids the eviction now (429 with a Status body).
    pub fn is_budget_blocked(&self) -> bool {
        matches!(
            &*self.kind,
            ErrorKind::Status {
                code: 429,
                is_status_object: true,
                ..
            }
        )
    }
    /// More than one PodDisruptionBudget selects the pod: eviction cannot work, ever.
    pub fn is_multiple_budgets(&self) -> bool {
        matches!(&*self.kind, ErrorKind::Status { code: 500, message, .. } if message.contains("more than one PodDisruptionBudget"))
    }
    /// The budget allows no disruption now (`disruptionsAllowed` 0: "needs N healthy pods and
    /// has N currently"), as opposed to one the server is still processing.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(&*self.kind, ErrorKind::Status { code: 429, is_status_object: true, cause, cause_message, .. }
            if cause == "DisruptionBudget" && !cause_message.contains("still being processed"))
    }
    pub fn is_namespace_terminating(&self) -> bool {
        matches!(&*self.kind, ErrorKind::Status { code: 403, cause, .. } if cause == "NamespaceTerminating")
    }
    /// The server's `Retry-After` (or `details.retryAfterSeconds`).
    pub fn retry_after(&self) -> Option<Duration> {
        match &*self.kind {
            ErrorKind::Status { retry_after, .. } => retry_after.map(Duration::from_secs),
            _ => None,
        }
    }
    /// A short description of the cause, for logs: the budget's message when there is one.
    pub fn cause_message(&self) -> String {
        match &*self.kind {
            ErrorKind::Status {
                cause_message,
                message,
                ..
            } if !cause_message.is_empty() || !message.is_empty() => {
                if cause_message.is_empty() {
                    message.clone()
                } else {
                    cause_message.clone()
                }
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.op)?;
        match &*self.kind {
            ErrorKind::Transport(m) => f.write_str(m),
            ErrorKind::Decode(m) => write!(f, "unreadable response: {m}"),
            ErrorKind::Status {
                code,
                reason,
                message,
                cause_message,
                ..
            } => {
                write!(f, "HTTP {code}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if !cause_message.is_empty() {
                    write!(f, " ({cause_message})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

/// The projected service-account token, re-read when older than a minute or after a 401.
struct Token {
    path: PathBuf,
    cached: Mutex<Option<(Secret, Instant)>>,
}

impl Token {
    fn read_file(path: &Path) -> Result<Secret, String> {
        let raw = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let t = raw.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{}: expected a bearer token, found {} unusable bytes",
                path.display(),
                raw.len()
            ));
        }
        Ok(Secret::new(t))
    }

    fn get(&self, force: bool) -> Option<Secret> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cached
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < TOKEN_MAX_AGE);
        if force || !fresh {
            match Token::read_file(&self.path) {
                Ok(t) => *cached = Some((t, Instant::now())),
                // Keep the old token: a rotation in progress must not stop the drain.
                Err(e) => warn!("could not re-read the service-account token", error = e),
            }
        }
        cached.as_ref().map(|(t, _)| t.clone())
    }
}

/// One API request, as `call` and `send` see it.
struct Call<'a> {
    /// Names the operation for errors and logs ("evict pod shop/web-1").
    op: &'a dyn Fn() -> String,
    method: &'a str,
    path: &'a str,
    /// `(content type, body)`.
    body: Option<(&'a str, &'a [u8])>,
    deadline: Option<Instant>,
}

pub struct Client {
    /// Up to one idle connection per eviction worker is kept for reuse.
    pool: http::Pool,
    token: Option<Token>,
    /// `DRY_RUN`: every write is refused here, before it leaves (callers log what they would
    /// have done and do not call; this is the guard for anything that forgets).
    dry_run: std::sync::atomic::AtomicBool,
}

impl Client {
    /// Builds the client; fails (a configuration error) when the CA or token cannot be loaded.
    pub fn new(base_url: &str, sa_dir: &Path) -> Result<Client, String> {
        let https = base_url.starts_with("https://");
        let tls = if https {
            let ca = sa_dir.join("ca.crt");
            Some(http::tls_config_from_pem(&ca)?)
        } else {
            None
        };
        let pool = http::Pool::new(Endpoint::parse(base_url, tls)?, crate::drain::MAX_WORKERS);
        let token_path = sa_dir.join("token");
        let token = match Token::read_file(&token_path) {
            Ok(t) => Some(Token {
                path: token_path,
                cached: Mutex::new(Some((t, Instant::now()))),
            }),
            // kubectl proxy adds its own credentials; in-cluster https needs ours.
            Err(_) if !https => None,
            Err(e) => return Err(e),
        };
        Ok(Client {
            pool,
            token,
            dry_run: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Closes the connections kept for reuse (once a drain is over, nothing more is sent).
    pub fn close_idle(&self) {
        self.pool.close_idle();
    }

    /// `DRY_RUN`: refuse every write from now on.
    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One call. `Ok` for 2xx only; a 401 triggers one token re-read and retry.
    fn call(&self, c: &Call<'_>) -> Result<http::Response, Error> {
        if c.method != "GET" && self.is_dry_run() {
            return Err(Error {
                op: (c.op)(),
                kind: Box::new(ErrorKind::Transport("dry run: not sent".to_string())),
            });
        }
        let mut resp = self.send(c, false)?;
        if resp.status == 401 && self.token.is_some() {
            warn!(
                "API answered 401 Unauthorized; re-reading the service-account token",
                op = (c.op)()
            );
            resp = self.send(c, true)?;
        }
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        Err(status_error((c.op)(), &resp))
    }

    /// A GET whose JSON answer is decoded into `T`.
    fn get<T: nanoserde::DeJson>(
        &self,
        op: &dyn Fn() -> String,
        path: &str,
        deadline: Option<Instant>,
    ) -> Result<T, Error> {
        let c = Call {
            op,
            method: "GET",
            path,
            body: None,
            deadline,
        };
        let resp = self.call(&c)?;
        json::parse(&resp.body).map_err(|m| Error {
            op: op(),
            kind: Box::new(ErrorKind::Decode(m)),
        })
    }

    /// A call with a JSON body whose answer is not read.
    fn write(
        &self,
        op: &dyn Fn() -> String,
        method: &str,
        path: &str,
        (content_type, body): (&str, &str),
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let c = Call {
            op,
            method,
            path,
            body: Some((content_type, body.as_bytes())),
            deadline,
        };
        self.call(&c).map(drop)
    }

    fn send(&self, c: &Call<'_>, reread: bool) -> Result<http::Response, Error> {
        let transport = |m: String| Error {
            op: (c.op)(),
            kind: Box::new(ErrorKind::Transport(m)),
        };
        let mut timeout = REQUEST_TIMEOUT;
        if let Some(d) = c.deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            if timeout.is_zero() {
                return Err(transport("deadline reached before the request".to_string()));
            }
        }
        let bearer = self
            .token
            .as_ref()
            .and_then(|t| t.get(reread))
            .map(|t| format!("Bearer {}", t.expose()));
        let mut headers: Vec<(&str, &str)> =
            vec![("Accept", "application/json"), ("User-Agent", USER_AGENT)];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        let (content_type, body) = c.body.unwrap_or(("", b""));
        if c.body.is_some() {
            headers.push(("Content-Type", content_type));
        }
        let started = Instant::now();
        let req = http::Request {
            method: c.method,
            path: c.path,
            headers: &headers,
            body,
        };
        let result = self.pool.exchange(&req, timeout, MAX_BODY);
        crate::metrics::kube_request(c.method, c.path, result.as_ref().ok().map(|r| r.status));
        let ms = started.elapsed().as_millis();
        match &result {
            Ok(r) => debug!(
                "api",
                method = c.method,
                path = c.path,
                status = r.status,
                ms = ms
            ),
            Err(e) => debug!("api", method = c.method, path = c.path, error = e, ms = ms),
        }
        result.map_err(|e| transport(e.to_string()))
    }

    pub fn get_pod(&self, ns: &str, name: &str, deadline: Option<Instant>) -> Result<Pod, Error> {
        self.get(
            &|| format!("get pod {ns}/{name}"),
            &format!("/api/v1/namespaces/{ns}/pods/{name}"),
            deadline,
        )
    }

    pub fn get_node(&self, name: &str, deadline: Option<Instant>) -> Result<Node, Error> {
        self.get(
            &|| format!("get node {name}"),
            &format!("/api/v1/nodes/{name}"),
            deadline,
        )
    }

    pub fn get_deployment(
        &self,
        ns: &str,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<Deployment, Error> {
        self.get(
            &|| format!("get deployment {ns}/{name}"),
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
            deadline,
        )
    }

    /// The PodDisruptionBudgets of a namespace, each read for its selector only (see
    /// [`Deployment`]).
    pub fn list_budgets(
        &self,
        ns: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<Deployment>, Error> {
        let list: Deployment = self.get(
            &|| format!("list poddisruptionbudgets in {ns}"),
            &format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
            deadline,
        )?;
        Ok(list.items.unwrap_or_default())
    }

    /// What `kubectl rollout restart` does: a strategic merge patch setting the pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation to `stamp` (RFC 3339).
    pub fn restart_deployment(
        &self,
        ns: &str,
        name: &str,
        stamp: &str,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let body = format!(
            "{{\"spec\":{{\"template\":{{\"metadata\":{{\"annotations\":{{\"kubectl.kubernetes.io/restartedAt\":{}}}}}}}}}}}",
            json::escape(stamp)
        );
        let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        self.write(
            &|| format!("restart deployment {ns}/{name}"),
            "PATCH",
            &path,
            ("application/strategic-merge-patch+json", &body),
            deadline,
        )
    }

    /// JSON merge patch (RFC 7386) of a Node; returns the updated Node.
    pub fn patch_node(
        &self,
        name: &str,
        patch: &str,
        deadline: Option<Instant>,
    ) -> Result<Node, Error> {
        let path = format!("/api/v1/nodes/{name}");
        let op = || format!("patch node {name}");
        let c = Call {
            op: &op,
            method: "PATCH",
            path: &path,
            body: Some(("application/merge-patch+json", patch.as_bytes())),
            deadline,
        };
        let resp = self.call(&c)?;
        json::parse(&resp.body).map_err(|m| Error {
            op: op(),
            kind: Box::new(ErrorKind::Decode(m)),
        })
    }

    /// All pods bound to `node`, page by page; restarts once from the first page on 410 Expired.
    pub fn list_pods_on_node(
        &self,
        node: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<Pod>, Error> {
        let op = || format!("list pods on node {node}");
        let selector = percent_encode(&format!("spec.nodeName={node}"));
        let mut restarted = false;
        'restart: loop {
            let mut pods = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut path = format!("/api/v1/pods?fieldSelector={selector}&limit={PAGE_LIMIT}");
                if let Some(t) = &token {
                    path.push_str("&continue=");
                    path.push_str(&percent_encode(t));
                }
                let page: PodList = match self.get(&op, &path, deadline) {
                    Err(e) if e.is_gone() && !restarted && token.is_some() => {
                        restarted = true;
                        continue 'restart;
                    }
                    other => other?,
                };
                pods.extend(page.items.unwrap_or_default());
                token = page
                    .metadata
                    .and_then(|m| m.continue_token)
                    .filter(|t| !t.is_empty());
                if token.is_none() {
                    return Ok(pods);
                }
            }
        }
    }

    /// POST the Eviction subresource; `Ok` once the API accepted it (the pod is terminating).
    /// With a `uid`, only that pod is evicted: a same-named replacement answers 409 Conflict.
    pub fn evict(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        grace_seconds: i64,
        version: EvictionVersion,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let preconditions = if uid.is_empty() {
            String::new()
        } else {
            format!(",\"preconditions\":{{\"uid\":{}}}", json::escape(uid))
        };
        let body = format!(
            "{{\"apiVersion\":\"{}\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":{},\"namespace\":{}}},\"deleteOptions\":{{\"gracePeriodSeconds\":{grace_seconds}{preconditions}}}}}",
            version.api_version(),
            json::escape(name),
            json::escape(ns)
        );
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
        let r = self.write(
            &|| format!("evict pod {ns}/{name}"),
            "POST",
            &path,
            ("application/json", &body),
            deadline,
        );
        crate::metrics::eviction(&r);
        r
    }

    /// DELETE a pod (bypasses budgets), only if it is still the pod with `uid`.
    pub fn delete_pod(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        grace_seconds: i64,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let body = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"DeleteOptions\",\"gracePeriodSeconds\":{grace_seconds},\"preconditions\":{{\"uid\":{}}}}}",
            json::escape(uid)
        );
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let r = self.write(
            &|| format!("delete pod {ns}/{name}"),
            "DELETE",
            &path,
            ("application/json", &body),
            deadline,
        );
        crate::metrics::forced_delete(&r);
        r
    }

    /// A POST or PATCH with a JSON body (Events, `nodes/status`), its answer unread. `Ok` for
    /// 2xx; a PATCH is a merge patch, or a strategic merge patch when `strategic`.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &str,
        strategic: bool,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let content_type = match (method, strategic) {
            ("PATCH", true) => "application/strategic-merge-patch+json",
            ("PATCH", false) => "application/merge-patch+json",
            _ => "application/json",
        };
        self.write(
            &|| format!("{method} {path}"),
            method,
            path,
            (content_type, body),
            deadline,
        )
    }

    /// Whether the server has `events.k8s.io/v1` (`GET /apis/events.k8s.io/v1`: 404 says no).
    pub fn has_events_v1(&self, deadline: Option<Instant>) -> Result<bool, Error> {
        let op = || "discover events.k8s.io/v1".to_string();
        let c = Call {
            op: &op,
            method: "GET",
            path: "/apis/events.k8s.io/v1",
            body: None,
            deadline,
        };
        match self.call(&c) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Which Eviction version the server serves, from `GET /api/v1` (as kubectl decides).
    pub fn discover_eviction_version(
        &self,
        deadline: Option<Instant>,
    ) -> Result<EvictionVersion, Error> {
        let op = || "discover the Eviction API version".to_string();
        let list: ApiResourceList = self.get(&op, "/api/v1", deadline)?;
        let eviction = list
            .resources
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.name == "pods/eviction");
        match eviction.as_ref().and_then(|r| r.version.as_deref()) {
            Some("v1") => Ok(EvictionVersion::V1),
            Some("v1beta1") => Ok(EvictionVersion::V1Beta1),
            other => Err(Error {
                op: op(),
                kind: Box::new(ErrorKind::Decode(format!(
                    "expected pods/eviction with version v1 or v1beta1, got {other:?}"
                ))),
            }),
        }
    }
}

const USER_AGENT: &str = concat!(
    "spot-termination-notice-handler/",
    env!("CARGO_PKG_VERSION")
);

/// Builds the error for a non-2xx answer from its `Status` body when it has one (`pub` for
/// the fuzzers).
#[doc(hidden)]
pub fn status_error(op: String, resp: &http::Response) -> Error {
    let parsed: Option<Status> = json::parse(&resp.body)
        .ok()
        .filter(|s: &Status| s.kind.as_deref() == Some("Status"));
    let retry_header = resp
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let kind = match parsed {
        Some(s) => {
            let details = s.details.unwrap_or_default();
            let first = details
                .causes
                .unwrap_or_default()
                .into_iter()
                .next()
                .unwrap_or_default();
            ErrorKind::Status {
                code: resp.status,
                reason: s.reason.unwrap_or_default(),
                message: s.message.unwrap_or_default(),
                cause: first.reason.unwrap_or_default(),
                cause_message: first.message.unwrap_or_default(),
                retry_after: retry_header.or(details
                    .retry_after_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0)),
                is_status_object: true,
            }
        }
        None => ErrorKind::Status {
            code: resp.status,
            reason: String::new(),
            message: json::snippet(&resp.body),
            cause: String::new(),
            cause_message: String::new(),
            retry_after: retry_header,
            is_status_object: false,
        },
    };
    Error {
        op,
        kind: Box::new(kind),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for query values).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response {
        http::Response::canned(status, headers, body)
    }

    #[test]
    fn classifies_eviction_answers() {
        let pdb = status_error(
            "evict pod shop/web-1".into(),
            &resp(
                429,
                &[],
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Cannot evict pod as it would violate the pod's disruption budget.","reason":"TooManyRequests","details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},"code":429}"#,
            ),
        );
        assert!(pdb.is_budget_blocked() && !pdb.is_multiple_budgets());
        assert_eq!(pdb.retry_after(), None);
        assert_eq!(
            pdb.cause_message(),
            "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
        );
        assert_eq!(
            pdb.to_string(),
            "evict pod shop/web-1: HTTP 429 TooManyRequests: Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget web-pdb needs 2 healthy pods and has 2 currently)"
        );

        let overload = status_error(
            "x".into(),
            &resp(
                429,
                &[("Retry-After", "1")],
                "Too many requests, please try again later.\n",
            ),
        );
        assert!(!overload.is_budget_blocked());
        assert_eq!(overload.retry_after(), Some(Duration::from_secs(1)));

        let processing = status_error(
            "x".into(),
            &resp(
                429,
                &[("Retry-After", "10")],
                r#"{"kind":"Status","status":"Failure","reason":"TooManyRequests","details":{"retryAfterSeconds":10},"code":429}"#,
            ),
        );
        assert!(processing.is_budget_blocked());
        assert_eq!(processing.retry_after(), Some(Duration::from_secs(10)));

        let multi = status_error(
            "x".into(),
            &resp(
                500,
                &[],
                r#"{"kind":"Status","status":"Failure","message":"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.","code":500}"#,
            ),
        );
        assert!(multi.is_multiple_budgets());

        let gone = status_error(
            "x".into(),
            &resp(
                404,
                &[],
                r#"{"kind":"Status","status":"Failure","message":"pods \"a\" not found","reason":"NotFound","code":404}"#,
            ),
        );
        assert!(gone.is_not_found());

        let ns = status_error(
            "x".into(),
            &resp(
                403,
                &[],
                r#"{"kind":"Status","status":"Failure","reason":"Forbidden","details":{"causes":[{"reason":"NamespaceTerminating","message":"namespace shop is being terminated"}]},"code":403}"#,
            ),
        );
        assert!(ns.is_namespace_terminating());

        let garbage = status_error("x".into(), &resp(502, &[], "<html>bad gateway</html>"));
        assert_eq!(garbage.to_string(), "x: HTTP 502: <html>bad gateway</html>");
    }

    #[test]
    fn errors_stay_small() {
        assert!(
            std::mem::size_of::<Error>() <= 32,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn eviction_version_fallback() {
        use EvictionVersion::*;
        for (v, want) in [
            ("1.21.14", V1Beta1),
            ("v1.20", V1Beta1),
            ("1.22.0", V1),
            ("1.32", V1),
            ("2.0", V1),
            ("garbage", V1),
        ] {
            assert_eq!(EvictionVersion::for_kube_version(v), want, "{v}");
        }
    }

    #[test]
    fn encodes_queries() {
        assert_eq!(
            percent_encode("spec.nodeName=ip-10-0-1-23.ec2.internal"),
            "spec.nodeName%3Dip-10-0-1-23.ec2.internal"
        );
        assert_eq!(percent_encode("eyJ2Ijo+/=="), "eyJ2Ijo%2B%2F%3D%3D");
    }

    #[test]
    fn missing_credentials_are_reported() {
        let dir = std::env::temp_dir().join(format!("stnh-kube-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = Client::new("https://127.0.0.1:6443", &dir).err().unwrap();
        assert!(e.contains("ca.crt"), "{e}");
        std::fs::write(dir.join("ca.crt"), "not a certificate").unwrap();
        let e = Client::new("https://127.0.0.1:6443", &dir).err().unwrap();
        assert!(e.contains("expected at least one PEM certificate"), "{e}");
        // kubectl proxy: no token needed.
        assert!(Client::new("http://127.0.0.1:8001", &dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
