//! What `/metrics` shows and what `/healthz` judges: static atomics, bumped with one call from
//! where things happen. Counting never allocates, takes no lock and cannot block; no label
//! carries a pod name, a notice id or anything else unbounded (label values are the fixed words
//! below, or the `&'static str` names of providers, kinds and watchers, in a fixed number of
//! slots). Rendering happens only when someone scrapes (`server`), so nothing here costs
//! anything between scrapes.
//!
//! Series (prefix `stnh_`): `notices_total{provider,kind}`, `actions_total{action,result}`,
//! `evictions_total{result}`, `drain_duration_seconds` (histogram), `draining`,
//! `metadata_requests_total{source,result}`, `metadata_last_success_timestamp_seconds{source}`,
//! `kube_requests_total{verb,resource,code}`, `loop_last_turn_timestamp_seconds`,
//! `http_responses_total{code}` (this endpoint's own), `build_info{version,kube_version,provider}`,
//! and the usual `process_*` figures, read from `/proc` at scrape time.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Acquire, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---- clocks -------------------------------------------------------------------------------

static EPOCH: OnceLock<(Instant, SystemTime)> = OnceLock::new();

fn epoch() -> (Instant, SystemTime) {
    *EPOCH.get_or_init(|| (Instant::now(), SystemTime::now()))
}

/// Milliseconds since the process started counting (`init`), plus one: 0 means "never".
fn mono_ms() -> u64 {
    epoch().0.elapsed().as_millis() as u64 + 1
}

/// Starts the clocks (at start-up, so that ages count from then).
pub fn init() {
    epoch();
}

/// Unix seconds of a `mono_ms` reading.
fn unix_of(ms: u64) -> f64 {
    let (_, t0) = epoch();
    let t0 = t0
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    t0 + (ms.saturating_sub(1)) as f64 / 1000.0
}

// ---- the loop and the metadata sources -----------------------------------------------------

/// When the notice loop last turned (`mono_ms`); 0 while start-up runs.
static LOOP_TURN: AtomicU64 = AtomicU64::new(0);
/// When the loop first turned.
static LOOP_START: AtomicU64 = AtomicU64::new(0);
/// When any metadata source last answered a poll.
static METADATA_OK: AtomicU64 = AtomicU64::new(0);

/// The notice loop turned (once per event or second).
pub fn loop_turn() {
    let now = mono_ms();
    let _ = LOOP_START.compare_exchange(0, now, Relaxed, Relaxed);
    LOOP_TURN.store(now, Relaxed);
}

/// Results of a metadata request.
const META_RESULTS: [&str; 4] = ["ok", "absent", "error", "timeout"];
const MAX_SOURCES: usize = 16;

/// A slot's key, set once: a pointer to a leaked value. Zero-initialised, so the slot arrays
/// cost no space in the binary; the one allocation happens the first time a key shows up.
struct Key<T: 'static>(AtomicPtr<T>);

impl<T: PartialEq + Copy> Key<T> {
    const fn new() -> Self {
        Key(AtomicPtr::new(std::ptr::null_mut()))
    }

    fn get(&self) -> Option<&'static T> {
        let p = self.0.load(Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in `set` and is never freed.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The key, set to `v` unless another thread set one first.
    fn set(&self, v: T) -> &'static T {
        let b = Box::into_raw(Box::new(v));
        match self.0.compare_exchange(
            std::ptr::null_mut(),
            b,
            std::sync::atomic::Ordering::AcqRel,
            Acquire,
        ) {
            // SAFETY: `b` is ours and now published for good.
            Ok(_) => unsafe { &*b },
            Err(cur) => {
                // SAFETY: `b` was not published: free it; `cur` is another thread's, never freed.
                drop(unsafe { Box::from_raw(b) });
                unsafe { &*cur }
            }
        }
    }

    /// Whether this slot is `v`'s, claiming it when free.
    fn holds(&self, v: T) -> bool {
        match self.get() {
            Some(k) => *k == v,
            None => *self.set(v) == v,
        }
    }
}

struct Source {
    name: Key<&'static str>,
    requests: [AtomicU64; 4],
    last_ok: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const SOURCE: Source = Source {
    name: Key::new(),
    requests: [const { AtomicU64::new(0) }; 4],
    last_ok: AtomicU64::new(0),
};
static SOURCES: [Source; MAX_SOURCES] = [SOURCE; MAX_SOURCES];

thread_local! {
    /// The slot of the watcher this thread runs (`MAX_SOURCES`: none: "other").
    static THREAD_SOURCE: Cell<usize> = const { Cell::new(MAX_SOURCES) };
}

/// The slot named `name`, claiming a free one the first time (a few per process).
fn source_slot(name: &'static str) -> Option<usize> {
    SOURCES.iter().position(|s| s.name.holds(name))
}

/// This thread polls the watcher `name`: its metadata requests count under that source.
pub fn set_source(name: &'static str) {
    if let Some(i) = source_slot(name) {
        THREAD_SOURCE.with(|c| c.set(i));
    }
}

fn thread_source() -> Option<&'static Source> {
    let i = THREAD_SOURCE.with(Cell::get);
    let i = if i < MAX_SOURCES {
        i
    } else {
        // Requests made outside the watchers: instance identity, approvals.
        source_slot("other")?
    };
    Some(&SOURCES[i])
}

/// One metadata request's outcome: the HTTP status, or none (`timed_out` or another failure).
pub fn metadata_request(status: Option<u16>, timed_out: bool) {
    let r = match status {
        Some(200..=299) => 0,
        Some(404) => 1,
        Some(_) => 2,
        None if timed_out => 3,
        None => 2,
    };
    if let Some(s) = thread_source() {
        s.requests[r].fetch_add(1, Relaxed);
    }
}

/// One poll of this thread's watcher ended; `ok`: the source answered.
pub fn polled(ok: bool) {
    if !ok {
        return;
    }
    let now = mono_ms();
    METADATA_OK.store(now, Relaxed);
    if let Some(s) = thread_source() {
        s.last_ok.store(now, Relaxed);
    }
}

// ---- notices, actions, evictions, drains ----------------------------------------------------

const MAX_NOTICE_KEYS: usize = 32;

struct NoticeKey {
    key: Key<(&'static str, &'static str)>,
    n: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const NOTICE_KEY: NoticeKey = NoticeKey {
    key: Key::new(),
    n: AtomicU64::new(0),
};
static NOTICES: [NoticeKey; MAX_NOTICE_KEYS] = [NOTICE_KEY; MAX_NOTICE_KEYS];

/// A notice was seen for the first time.
pub fn notice(provider: &'static str, kind: &'static str) {
    if let Some(s) = NOTICES.iter().find(|s| s.key.holds((provider, kind))) {
        s.n.fetch_add(1, Relaxed);
    }
}

/// What the handler did to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cordon,
    Taint,
    Label,
    GiveBack,
    Drain,
}

const ACTIONS: [&str; 5] = ["cordon", "taint", "label", "give_back", "drain"];
const ACTION_RESULTS: [&str; 3] = ["ok", "error", "cancelled"];
static ACTION_COUNTS: [AtomicU64; 15] = [const { AtomicU64::new(0) }; 15];

fn action_result(a: Action, result: usize) {
    ACTION_COUNTS[a as usize * 3 + result].fetch_add(1, Relaxed);
}

/// The node write that carries `a` succeeded (`ok`) or failed.
pub fn action(a: Action, ok: bool) {
    action_result(a, usize::from(!ok));
}

/// The first node patch of a change: it carries the cordon and/or the label.
pub fn node_patched(cordon: bool, label: bool, ok: bool) {
    if cordon {
        action(Action::Cordon, ok);
    }
    if label {
        action(Action::Label, ok);
    }
}

const EVICTION_RESULTS: [&str; 5] = [
    "accepted",
    "budget_refused",
    "forced",
    "failed",
    "already_gone",
];
static EVICTIONS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// The answer to one eviction POST.
pub fn eviction(r: &Result<(), crate::kube::Error>) {
    let i = match r {
        Ok(()) => 0,
        Err(e) if e.is_not_found() => 4,
        Err(e) if e.is_budget_blocked() || e.is_multiple_budgets() => 1,
        Err(_) => 3,
    };
    EVICTIONS[i].fetch_add(1, Relaxed);
}

/// The answer to one forced pod DELETE (at deadline minus reserve).
pub fn forced_delete(r: &Result<(), crate::kube::Error>) {
    let i = match r {
        Ok(()) => 2,
        Err(e) if e.is_not_found() || e.is_conflict() => 4,
        Err(_) => 3,
    };
    EVICTIONS[i].fetch_add(1, Relaxed);
}

/// Upper bounds of the drain-duration buckets, in seconds: fine around the 30 s (GCP, Azure
/// Preempt) and 120 s (AWS) windows, coarse up to the hour a drain without deadline may take.
const DRAIN_BUCKETS: [u32; 20] = [
    1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 105, 120, 150, 180, 300, 600, 3600,
];
static DRAIN_HIST: [AtomicU64; 21] = [const { AtomicU64::new(0) }; 21];
static DRAIN_SUM_MS: AtomicU64 = AtomicU64::new(0);
static DRAINING: AtomicU64 = AtomicU64::new(0);

/// A drain started.
pub fn drain_started() {
    DRAINING.store(1, Relaxed);
}

/// A drain ended after `seconds`: complete, with pods left, or stopped (not timed).
pub fn drain_finished(seconds: f64, complete: bool, cancelled: bool) {
    DRAINING.store(0, Relaxed);
    if cancelled {
        action_result(Action::Drain, 2);
        return;
    }
    action(Action::Drain, complete);
    let i = DRAIN_BUCKETS
        .iter()
        .position(|b| seconds <= f64::from(*b))
        .unwrap_or(DRAIN_BUCKETS.len());
    DRAIN_HIST[i].fetch_add(1, Relaxed);
    DRAIN_SUM_MS.fetch_add((seconds.max(0.0) * 1000.0).round() as u64, Relaxed);
}

// ---- Kubernetes API requests -----------------------------------------------------------------

const VERBS: [&str; 7] = [
    "get", "list", "create", "patch", "update", "delete", "other",
];
const RESOURCES: [&str; 7] = [
    "discovery",
    "nodes",
    "nodes/status",
    "pods",
    "pods/eviction",
    "events",
    "other",
];
const CODES: [&str; 6] = ["2xx", "4xx", "429", "5xx", "transport", "other"];
static KUBE: [AtomicU64; 7 * 7 * 6] = [const { AtomicU64::new(0) }; 7 * 7 * 6];

/// `(verb, resource)` of an API request, as indexes into `VERBS` and `RESOURCES`. Pure.
pub fn kube_op(method: &str, path: &str) -> (usize, usize) {
    let path = path.split('?').next().unwrap_or("");
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    let skip = match segs.next() {
        Some("api") => 1,
        Some("apis") => 2,
        _ => return (6, 6),
    };
    let mut rest = [""; 5];
    let mut n = 0;
    for s in segs.skip(skip) {
        if n == rest.len() {
            return (6, 6);
        }
        rest[n] = s;
        n += 1;
    }
    let mut r = &rest[..n];
    if r.len() >= 3 && r[0] == "namespaces" {
        r = &r[2..];
    }
    let (resource, named) = match r {
        [] => (0, true),
        ["nodes", ..] if r.len() <= 2 => (1, r.len() == 2),
        ["nodes", _, "status"] => (2, true),
        ["pods", ..] if r.len() <= 2 => (3, r.len() == 2),
        ["pods", _, "eviction"] => (4, true),
        ["events", ..] if r.len() <= 2 => (5, r.len() == 2),
        _ => (6, r.len() >= 2),
    };
    let verb = match method {
        "GET" if named => 0,
        "GET" => 1,
        "POST" => 2,
        "PATCH" => 3,
        "PUT" => 4,
        "DELETE" => 5,
        _ => 6,
    };
    (verb, resource)
}

/// One API request and its answer (`None`: no HTTP answer).
pub fn kube_request(method: &str, path: &str, status: Option<u16>) {
    let (v, r) = kube_op(method, path);
    let c = match status {
        Some(200..=299) => 0,
        Some(429) => 2,
        Some(400..=499) => 1,
        Some(500..=599) => 3,
        None => 4,
        Some(_) => 5,
    };
    KUBE[(v * 7 + r) * 6 + c].fetch_add(1, Relaxed);
}

// ---- this endpoint, build info --------------------------------------------------------------

const HTTP_CODES: [u16; 7] = [200, 400, 404, 405, 408, 431, 503];
static HTTP: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];

/// The metrics server answered `code`.
pub fn http_response(code: u16) {
    if let Some(i) = HTTP_CODES.iter().position(|c| *c == code) {
        HTTP[i].fetch_add(1, Relaxed);
    }
}

static PROVIDER: Key<&'static str> = Key::new();

/// The cloud this process watches, for `build_info`.
pub fn set_provider(p: &'static str) {
    PROVIDER.holds(p);
}

// ---- health ---------------------------------------------------------------------------------

/// How long the loop may stand still, and the metadata services stay silent (zero: never
/// judged), before `/healthz` fails.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub loop_stall: Duration,
    pub metadata_silence: Duration,
    /// Silence longer than this is mentioned in a healthy answer (a few poll intervals).
    pub metadata_note: Duration,
}

/// What `/healthz` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Start-up API calls are still running (they retry on their own, bounded).
    Starting,
    /// The loop turns; `metadata` is how long since a source last answered.
    Healthy {
        turned: f64,
        metadata: f64,
        note: bool,
    },
    LoopStuck {
        secs: f64,
        limit: f64,
    },
    MetadataSilent {
        secs: f64,
        limit: f64,
    },
}

impl Verdict {
    pub fn ok(&self) -> bool {
        matches!(self, Verdict::Starting | Verdict::Healthy { .. })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Verdict::Starting => f.write_str("ok: starting (finding the node and reading its records)"),
            Verdict::Healthy { turned, metadata, note } => {
                write!(f, "ok: notice loop turned {turned:.1}s ago")?;
                if note {
                    write!(f, "; no metadata answer for {metadata:.1}s")
                } else {
                    write!(f, ", metadata answered {metadata:.1}s ago")
                }
            }
            Verdict::LoopStuck { secs, limit } => write!(
                f,
                "unhealthy: the notice loop has not turned for {secs:.1}s (HEALTH_LOOP_TIMEOUT {limit:.0}s)"
            ),
            Verdict::MetadataSilent { secs, limit } => write!(
                f,
                "unhealthy: no metadata source has answered for {secs:.1}s (HEALTH_METADATA_TIMEOUT {limit:.0}s)"
            ),
        }
    }
}

/// The verdict from the clock readings (`mono_ms` values; 0 = never). Pure.
pub fn judge(now: u64, turn: u64, start: u64, metadata_ok: u64, l: &Limits) -> Verdict {
    if turn == 0 {
        return Verdict::Starting;
    }
    let secs = |ms: u64| ms as f64 / 1000.0;
    let stalled = now.saturating_sub(turn);
    if stalled > l.loop_stall.as_millis() as u64 {
        return Verdict::LoopStuck {
            secs: secs(stalled),
            limit: l.loop_stall.as_secs_f64(),
        };
    }
    // A fresh loop gets the whole grace period before its first answer.
    let silent = now.saturating_sub(metadata_ok.max(start));
    if !l.metadata_silence.is_zero() && silent > l.metadata_silence.as_millis() as u64 {
        return Verdict::MetadataSilent {
            secs: secs(silent),
            limit: l.metadata_silence.as_secs_f64(),
        };
    }
    Verdict::Healthy {
        turned: secs(stalled),
        metadata: secs(silent),
        note: silent > l.metadata_note.as_millis() as u64,
    }
}

/// The verdict now.
pub fn health(l: &Limits) -> Verdict {
    judge(
        mono_ms(),
        LOOP_TURN.load(Relaxed),
        LOOP_START.load(Relaxed),
        METADATA_OK.load(Relaxed),
        l,
    )
}

// ---- exposition -----------------------------------------------------------------------------

/// `# HELP` and `# TYPE` of one family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// Label values here are fixed words or static names; escape anyway (text format 0.0.4).
fn escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `name{k="v",...} value\n`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    sample_dyn(out, name, labels, &value);
}

/// One copy of the line writer, not one per value type.
#[inline(never)]
fn sample_dyn(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: &dyn std::fmt::Display,
) {
    out.push_str(name);
    for (i, (k, v)) in labels.iter().enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        out.push_str(k);
        out.push_str("=\"");
        escaped(out, v);
        out.push('"');
    }
    if !labels.is_empty() {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// The Prometheus text exposition format, version 0.0.4.
pub fn render(out: &mut String) {
    let provider = PROVIDER.get().copied().unwrap_or("unknown");
    family(
        out,
        "stnh_build_info",
        "gauge",
        "Build and cloud of this handler (always 1).",
    );
    sample(
        out,
        "stnh_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("kube_version", crate::KUBE_VERSION),
            ("provider", provider),
        ],
        1,
    );

    family(
        out,
        "stnh_notices_total",
        "counter",
        "Notices seen for the first time, by provider and kind.",
    );
    for s in &NOTICES {
        if let Some((p, k)) = s.key.get() {
            sample(
                out,
                "stnh_notices_total",
                &[("provider", p), ("kind", k)],
                s.n.load(Relaxed),
            );
        }
    }

    family(
        out,
        "stnh_actions_total",
        "counter",
        "Changes to the node (the write that carries each) and drains, by result.",
    );
    for (a, name) in ACTIONS.iter().enumerate() {
        let results = if a == Action::Drain as usize { 3 } else { 2 };
        for (r, result) in ACTION_RESULTS.iter().enumerate().take(results) {
            sample(
                out,
                "stnh_actions_total",
                &[("action", name), ("result", result)],
                ACTION_COUNTS[a * 3 + r].load(Relaxed),
            );
        }
    }

    family(
        out,
        "stnh_evictions_total",
        "counter",
        "Answers to eviction POSTs and forced pod DELETEs, by result.",
    );
    for (i, r) in EVICTION_RESULTS.iter().enumerate() {
        sample(
            out,
            "stnh_evictions_total",
            &[("result", r)],
            EVICTIONS[i].load(Relaxed),
        );
    }

    family(out, "stnh_drain_duration_seconds", "histogram", "How long drains took, from the first pod list to the last pod gone (stopped drains are not counted).");
    let mut cumulative = 0;
    for (i, b) in DRAIN_BUCKETS.iter().enumerate() {
        cumulative += DRAIN_HIST[i].load(Relaxed);
        sample(
            out,
            "stnh_drain_duration_seconds_bucket",
            &[("le", &b.to_string())],
            cumulative,
        );
    }
    cumulative += DRAIN_HIST[DRAIN_BUCKETS.len()].load(Relaxed);
    sample(
        out,
        "stnh_drain_duration_seconds_bucket",
        &[("le", "+Inf")],
        cumulative,
    );
    sample(
        out,
        "stnh_drain_duration_seconds_sum",
        &[],
        DRAIN_SUM_MS.load(Relaxed) as f64 / 1000.0,
    );
    sample(out, "stnh_drain_duration_seconds_count", &[], cumulative);

    family(out, "stnh_draining", "gauge", "1 while a drain runs.");
    sample(out, "stnh_draining", &[], DRAINING.load(Relaxed));

    family(
        out,
        "stnh_metadata_requests_total",
        "counter",
        "Metadata service requests by source (watcher; other: identity and approvals) and result.",
    );
    for s in &SOURCES {
        if let Some(name) = s.name.get() {
            for (r, result) in META_RESULTS.iter().enumerate() {
                sample(
                    out,
                    "stnh_metadata_requests_total",
                    &[("source", name), ("result", result)],
                    s.requests[r].load(Relaxed),
                );
            }
        }
    }
    family(
        out,
        "stnh_metadata_last_success_timestamp_seconds",
        "gauge",
        "When each source last answered a poll (Unix time).",
    );
    for s in &SOURCES {
        let at = s.last_ok.load(Relaxed);
        if let (Some(name), true) = (s.name.get(), at > 0) {
            sample(
                out,
                "stnh_metadata_last_success_timestamp_seconds",
                &[("source", name)],
                unix_of(at),
            );
        }
    }

    family(
        out,
        "stnh_kube_requests_total",
        "counter",
        "Kubernetes API requests by verb, resource and answer (transport: no HTTP answer).",
    );
    for (i, n) in KUBE.iter().enumerate() {
        let n = n.load(Relaxed);
        if n > 0 {
            let (v, r, c) = (i / 42, i / 6 % 7, i % 6);
            sample(
                out,
                "stnh_kube_requests_total",
                &[
                    ("verb", VERBS[v]),
                    ("resource", RESOURCES[r]),
                    ("code", CODES[c]),
                ],
                n,
            );
        }
    }

    family(
        out,
        "stnh_loop_last_turn_timestamp_seconds",
        "gauge",
        "When the notice loop last turned (Unix time; it turns at least once a second).",
    );
    let turn = LOOP_TURN.load(Relaxed);
    if turn > 0 {
        sample(
            out,
            "stnh_loop_last_turn_timestamp_seconds",
            &[],
            unix_of(turn),
        );
    }

    family(
        out,
        "stnh_http_responses_total",
        "counter",
        "Answers of this metrics and health endpoint, by status code.",
    );
    for (i, c) in HTTP_CODES.iter().enumerate() {
        sample(
            out,
            "stnh_http_responses_total",
            &[("code", &c.to_string())],
            HTTP[i].load(Relaxed),
        );
    }

    process(out);
}

/// `process_*` from `/proc/self` (read now, at scrape time only).
fn process(out: &mut String) {
    // SAFETY: sysconf and getrlimit only read process-wide values into locals.
    let (page, tck, max_fds) = unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        (
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as f64,
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            rl.rlim_cur,
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses: state is field 3.
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    if let (Some(u), Some(s)) = (field(14), field(15)) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        sample(out, "process_cpu_seconds_total", &[], (u + s) / tck);
    }
    if let Some(rss) = field(24) {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        sample(out, "process_resident_memory_bytes", &[], rss * page);
    }
    if let Some(v) = field(23) {
        family(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        sample(out, "process_virtual_memory_bytes", &[], v);
    }
    if let Some(t) = field(20) {
        family(out, "process_threads", "gauge", "Threads of the process.");
        sample(out, "process_threads", &[], t);
    }
    if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
        // Less the descriptor read_dir itself holds.
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        sample(out, "process_open_fds", &[], d.count().saturating_sub(1));
    }
    family(
        out,
        "process_max_fds",
        "gauge",
        "Limit of open file descriptors.",
    );
    sample(out, "process_max_fds", &[], max_fds);
    let start = epoch().1.duration_since(UNIX_EPOCH).unwrap_or_default();
    family(
        out,
        "process_start_time_seconds",
        "gauge",
        "When the process started (Unix time).",
    );
    sample(out, "process_start_time_seconds", &[], start.as_secs());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_map_to_verbs_and_resources() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("GET", "/api/v1", "get", "discovery"),
            ("GET", "/apis/events.k8s.io/v1", "get", "discovery"),
            ("GET", "/api/v1/nodes/node-a", "get", "nodes"),
            ("PATCH", "/api/v1/nodes/node-a", "patch", "nodes"),
            (
                "PATCH",
                "/api/v1/nodes/node-a/status",
                "patch",
                "nodes/status",
            ),
            (
                "PUT",
                "/api/v1/nodes/node-a/status",
                "update",
                "nodes/status",
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system/pods/stnh-x",
                "get",
                "pods",
            ),
            (
                "GET",
                "/api/v1/pods?fieldSelector=spec.nodeName%3Dn&limit=500",
                "list",
                "pods",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/shop/pods/web-1",
                "delete",
                "pods",
            ),
            (
                "POST",
                "/api/v1/namespaces/shop/pods/web-1/eviction",
                "create",
                "pods/eviction",
            ),
            (
                "POST",
                "/api/v1/namespaces/default/events",
                "create",
                "events",
            ),
            (
                "PATCH",
                "/apis/events.k8s.io/v1/namespaces/default/events/e1",
                "patch",
                "events",
            ),
            (
                "GET",
                "/apis/apps/v1/namespaces/a/daemonsets/d",
                "get",
                "other",
            ),
            ("GET", "/api/v1/namespaces/shop", "get", "other"),
            ("GET", "/healthz", "other", "other"),
            ("OPTIONS", "/api/v1/nodes/n", "other", "nodes"),
            ("GET", "/api/v1/a/b/c/d/e/f/g", "other", "other"),
        ];
        for (m, p, verb, res) in cases {
            let (v, r) = kube_op(m, p);
            assert_eq!((VERBS[v], RESOURCES[r]), (*verb, *res), "{m} {p}");
        }
    }

    #[test]
    fn health_verdicts_and_their_lines() {
        let l = Limits {
            loop_stall: Duration::from_secs(60),
            metadata_silence: Duration::from_secs(900),
            metadata_note: Duration::from_secs(5),
        };
        let s = 1000; // ms
        let cases: &[(u64, u64, u64, u64, bool, &str)] = &[
            // now, turn, start, metadata_ok
            (5 * s, 0, 0, 0, true, "ok: starting (finding the node and reading its records)"),
            (100 * s, 99_500, 10 * s, 99 * s, true, "ok: notice loop turned 0.5s ago, metadata answered 1.0s ago"),
            (100 * s, 99_500, 10 * s, 20 * s, true, "ok: notice loop turned 0.5s ago; no metadata answer for 80.0s"),
            (100 * s, 39 * s, 10 * s, 99 * s, false, "unhealthy: the notice loop has not turned for 61.0s (HEALTH_LOOP_TIMEOUT 60s)"),
            (100 * s, 40 * s, 10 * s, 99 * s, true, "ok: notice loop turned 60.0s ago, metadata answered 1.0s ago"),
            // Never answered: counted from the loop's start, not from zero.
            (905 * s, 905 * s, 10 * s, 0, true, "ok: notice loop turned 0.0s ago; no metadata answer for 895.0s"),
            (911 * s, 911 * s, 10 * s, 0, false, "unhealthy: no metadata source has answered for 901.0s (HEALTH_METADATA_TIMEOUT 900s)"),
            (2000 * s, 2000 * s, 10 * s, 1000 * s, false, "unhealthy: no metadata source has answered for 1000.0s (HEALTH_METADATA_TIMEOUT 900s)"),
        ];
        for (now, turn, start, meta, ok, line) in cases {
            let v = judge(*now, *turn, *start, *meta, &l);
            assert_eq!(
                (v.ok(), v.to_string().as_str()),
                (*ok, *line),
                "{now} {turn} {meta}"
            );
        }
        // HEALTH_METADATA_TIMEOUT=0: silence never fails the check.
        let off = Limits {
            metadata_silence: Duration::ZERO,
            ..l
        };
        assert!(judge(99_000 * s, 99_000 * s, s, 0, &off).ok());
    }

    /// Checks a rendering line by line against the text format 0.0.4: every sample belongs to
    /// the family declared by the HELP and TYPE lines before it, names and labels are well
    /// formed, values are numbers, counters end in `_total`, histogram buckets are cumulative
    /// and end with `+Inf` equal to `_count`.
    fn check_exposition(text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut family: Option<(String, String)> = None;
        let mut help_for = String::new();
        let mut seen = std::collections::HashSet::new();
        let mut last_bucket: Option<f64> = None;
        let mut inf = None;
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (n, h) = rest.split_once(' ').unwrap_or((rest, ""));
                if h.is_empty() || !seen.insert(n.to_string()) {
                    problems.push(format!("HELP: {line}"));
                }
                help_for = n.to_string();
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (n, t) = rest.split_once(' ').unwrap_or((rest, ""));
                if n != help_for || !["counter", "gauge", "histogram"].contains(&t) {
                    problems.push(format!("TYPE: {line}"));
                }
                if t == "counter" && !n.ends_with("_total") {
                    problems.push(format!("counter without _total: {n}"));
                }
                family = Some((n.to_string(), t.to_string()));
                last_bucket = None;
                continue;
            }
            let Some((fname, ftype)) = &family else {
                problems.push(format!("sample before TYPE: {line}"));
                continue;
            };
            let (series, value) = line.rsplit_once(' ').unwrap();
            let v: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => match v.parse() {
                    Ok(x) => x,
                    Err(_) => {
                        problems.push(format!("value: {line}"));
                        continue;
                    }
                },
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').unwrap_or("BAD")),
                None => (series, ""),
            };
            let belongs = if ftype == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{fname}{s}"))
            } else {
                name == fname
            };
            if !name_ok(name) || !belongs {
                problems.push(format!("name: {line}"));
            }
            let mut le = None;
            if !labels.is_empty() {
                for pair in labels.split(',') {
                    let ok = pair.split_once("=\"").is_some_and(|(k, v)| {
                        name_ok(k) && v.ends_with('"') && !v[..v.len() - 1].contains('"')
                    });
                    if !ok {
                        problems.push(format!("label: {line}"));
                    }
                    if let Some(v) = pair.strip_prefix("le=\"") {
                        le = Some(v.trim_end_matches('"').to_string());
                    }
                }
            }
            if name.ends_with("_bucket") {
                if last_bucket.is_some_and(|b| v < b) {
                    problems.push(format!("bucket not cumulative: {line}"));
                }
                last_bucket = Some(v);
                if le.as_deref() == Some("+Inf") {
                    inf = Some(v);
                }
            }
            if name.ends_with("_count") && inf != Some(v) {
                problems.push(format!("_count differs from the +Inf bucket: {line}"));
            }
        }
        problems
    }

    #[test]
    fn exposition_is_text_format_0_0_4_with_the_counts() {
        init();
        set_provider("aws");
        notice("aws", "spot-interruption");
        notice("aws", "spot-interruption");
        notice("aws", "rebalance-recommendation");
        node_patched(true, true, true);
        action(Action::Taint, false);
        drain_started();
        drain_finished(31.5, true, false);
        drain_finished(200.0, false, false);
        drain_finished(3.0, false, true);
        kube_request("POST", "/api/v1/namespaces/a/pods/b/eviction", Some(429));
        kube_request("GET", "/api/v1/nodes/n", None);
        std::thread::spawn(|| {
            set_source("test-source");
            metadata_request(Some(404), false);
            metadata_request(None, true);
            polled(true);
        })
        .join()
        .unwrap();
        metadata_request(Some(200), false);
        http_response(431);
        let mut out = String::new();
        render(&mut out);
        assert_eq!(check_exposition(&out), Vec::<String>::new(), "{out}");
        for line in [
            "stnh_build_info{version=\"0.1.0\",kube_version=\"1.32.0\",provider=\"aws\"} 1",
            "stnh_notices_total{provider=\"aws\",kind=\"spot-interruption\"} 2",
            "stnh_notices_total{provider=\"aws\",kind=\"rebalance-recommendation\"} 1",
            "stnh_actions_total{action=\"cordon\",result=\"ok\"} 1",
            "stnh_actions_total{action=\"label\",result=\"ok\"} 1",
            "stnh_actions_total{action=\"taint\",result=\"error\"} 1",
            "stnh_actions_total{action=\"drain\",result=\"ok\"} 1",
            "stnh_actions_total{action=\"drain\",result=\"error\"} 1",
            "stnh_actions_total{action=\"drain\",result=\"cancelled\"} 1",
            "stnh_drain_duration_seconds_bucket{le=\"30\"} 0",
            "stnh_drain_duration_seconds_bucket{le=\"40\"} 1",
            "stnh_drain_duration_seconds_bucket{le=\"180\"} 1",
            "stnh_drain_duration_seconds_bucket{le=\"300\"} 2",
            "stnh_drain_duration_seconds_bucket{le=\"+Inf\"} 2",
            "stnh_drain_duration_seconds_sum 231.5",
            "stnh_drain_duration_seconds_count 2",
            "stnh_draining 0",
            "stnh_kube_requests_total{verb=\"create\",resource=\"pods/eviction\",code=\"429\"} 1",
            "stnh_kube_requests_total{verb=\"get\",resource=\"nodes\",code=\"transport\"} 1",
            "stnh_metadata_requests_total{source=\"test-source\",result=\"absent\"} 1",
            "stnh_metadata_requests_total{source=\"test-source\",result=\"timeout\"} 1",
            "stnh_metadata_requests_total{source=\"test-source\",result=\"ok\"} 0",
            "stnh_http_responses_total{code=\"431\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert!(
            out.contains("stnh_metadata_last_success_timestamp_seconds{source=\"test-source\"} 1")
        );
        // Requests outside a watcher count as "other" (other tests of this binary add theirs).
        let other = out
            .lines()
            .find_map(|l| {
                l.strip_prefix("stnh_metadata_requests_total{source=\"other\",result=\"ok\"} ")
            })
            .and_then(|v| v.parse::<u64>().ok());
        assert!(other.is_some_and(|n| n >= 1), "{out}");
        assert!(out.contains("\nprocess_resident_memory_bytes "), "{out}");
        assert!(out.contains("\nprocess_threads "), "{out}");
        // The checker itself catches what it should.
        let bad = "# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"b} 1\ny 2\n# HELP c h\n# TYPE c counter\n";
        assert_eq!(
            check_exposition(bad).len(),
            3,
            "{:?}",
            check_exposition(bad)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x\"y\\z\nw")], 1);
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\nw\"} 1\n");
    }
}
