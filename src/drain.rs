//! Select, evict, wait, report: the drain, always inside the notice's deadline. (The cordon, the
//! taints and the load-balancer label are put on first by the one action path, `node`.)
//!
//! A drain runs on a thread of its own under a [`Control`]: the loop can tighten it while it runs
//! (a spot notice arriving during a rebalance drain brings a deadline and allows forced deletes;
//! every attempt reads the current [`Budget`]), or stop it (its notices were undone). A drain
//! without a deadline (a rebalance drain) evicts within budgets, never deletes directly, and
//! retries for at most [`OPEN_LIMIT`].
//!
//! `EVICTION_DELAY` pauses between the load-balancer label and the first eviction, cut so that
//! every pod still gets its own grace before the report time.
//!
//! **Deadline arithmetic** ([`Budget`]). `deadline` is when the cloud takes the VM.
//! - *Emergency.* With less than [`EMERGENCY_WINDOW`] (10 s) left when the notice is seen, or a
//!   deadline already past, the effective deadline is detection + 10 s: everything is done at
//!   once (no waiting for budgets: `force_at` is detection), with the short grace that window
//!   allows, and the log and Slack say so.
//! - *Report.* `report_at = deadline − report margin`, the margin being a tenth of the window
//!   (deadline − detection), at least 1 s and at most [`REPORT_MARGIN`] (5 s): 5 s of AWS's
//!   120 s, 3 s of a 30 s window, 1 s in an emergency. Evictions, deletions and the wait all end
//!   by `report_at`, so the Node annotation and the Slack summary go out while the VM is still
//!   up, and they name the pods still on the node.
//! - *Force.* Budgets are waited for until `force_at`, then pods still refused are deleted.
//!   With `W` the window (deadline − detection) and `R` = `DRAIN_RESERVE`, budgets get
//!   `b(W) = W − R` on windows of 120 s and more (AWS: 100 s of 120), `min(W/6, W − R)` on
//!   windows up to 60 s (GCP or Azure Preempt: 5 s of 30 s: no budget heals in 30 s, and the
//!   pods need the time to stop), and a straight line in between; never negative, and
//!   `force_at = detection + b(W)` is never later than `report_at` (detection itself in an
//!   emergency).
//!   Until then pods are evicted through the Eviction API, so PodDisruptionBudgets are
//!   respected: a pod a budget blocks is retried every ~5 s (with jitter). At `force_at`, a pod
//!   still refused is deleted directly (`FORCE_DELETE=false` turns that off), and a pod that
//!   was already terminating with a grace that would outlast `report_at` gets a DELETE with the
//!   shorter grace below: the VM dies anyway, and a graceful stop beats a hard kill.
//!
//! **Grace**, one rule for evictions and deletes, at time `now`, in whole seconds:
//! `grace = max(1, min(pod's own, GRACE_PERIOD, ⌊report_at − now⌋))`. A pod asked at `now` stops
//! by `now + grace`, which
//! - equals `now + own` whenever the pod's own grace fits (within `GRACE_PERIOD` and before
//!   `report_at`);
//! - never lies past `report_at`, except for the 1 s floor in the last second;
//! - never moves earlier as time passes: a pod asked late never gets less time to stop than
//!   one asked early was left with. (Exactly so for the rule before rounding; rounding down to
//!   whole seconds, the API's unit, can put it less than a second before an earlier answer's
//!   when `report_at` binds, never more.)
//!
//! Evictions and deletes carry the pod's UID as a precondition: a same-named replacement (a
//! StatefulSet's) is never evicted, and a 409 means the pod we saw is gone.
//!
//! Pod selection is `kubectl drain --force --ignore-daemonsets --delete-emptydir-data`:
//! DaemonSet pods and mirror pods stay, as does the handler's own pod; emptyDir and unmanaged
//! pods go. Pods already terminating are not evicted again, only waited for (and shortened at
//! `force_at`, as above). With `POD_SELECTOR` (kubectl's `--pod-selector` syntax, see
//! `selector`), only the pods it matches are drained; the others are left alone (not evicted,
//! not waited for, not counted as left behind) and listed in the summary (`left_alone=`).
//!
//! **Tiers** (`EVICTION_ORDER=tiers`, the default; `parallel` evicts everything at once).
//! Critical pods go last, as the kubelet's graceful node shutdown and Karpenter order them: a
//! pod is critical when its `priorityClassName` is `system-cluster-critical` or
//! `system-node-critical`, or its `spec.priority` is at least `CRITICAL_PRIORITY` (DNS, CNI
//! helpers, ingress controllers: what the other pods need while they stop). Ordinary pods are
//! evicted at once; the critical tier starts at [`critical_tier_start`]:
//! `min(gone, latest)`, where `gone` is when every ordinary pod (evicted, deleted or already
//! terminating) has left the node, as the wait phase's one LIST per second sees it, and
//! `latest = max(start, report_at − need − 1 s)`, `need` being the largest
//! `min(own grace, GRACE_PERIOD)` of the critical pods and `start` when the drain began. Asked
//! at `latest`, every critical pod still gets its whole own grace under the grace rule above
//! (`⌊report_at − now⌋ ≥ need`; the 1 s covers the rounding to whole seconds and the request's
//! way); a critical pod whose grace does not fit before `report_at` at all starts at once, with
//! what the rule allows. An ordinary pod a budget blocks therefore never holds the critical tier
//! past `latest`. AWS (120 s, report at 115 s): critical pods of grace 30 s start at the latest
//! 84 s after detection; GCP (30 s, report at 27 s): at the latest at 16 s for a 10 s grace, at
//! once for 30 s. Budgets and forced deletes apply to critical pods as to any other.
//!
//! **Surge** (`SURGE_BLOCKED=true`): a pod whose budget allows no eviction now may get its
//! Deployment restarted so that a replacement starts elsewhere first; see `surge`. With
//! `SURGE_BLOCKED=budgeted`, also: at the drain's start, each Deployment with pods here that a
//! PodDisruptionBudget selects and whose rollout never goes below its desired Ready count is
//! restarted at once, and its pods are *held* (not evicted) until the rollout retires them,
//! at the latest until [`crate::surge::hold_end`] (halfway to `force_at`); then the pods still
//! here take the ordinary path (evictions, the forced delete at `force_at`). A held pod the
//! rollout retired counts as `moved`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::kube::model::{Labels, Pod};
use crate::kube::{Client, EvictionVersion};
use crate::selector::Selector;
use crate::time::format_rfc3339;
use crate::{error, info, warn};

/// kubectl waits 5 s between evictions a budget refused; we add ±20 % jitter so many
/// handlers draining at once do not retry in lock-step.
pub const EVICTION_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Retry delay after a transport error or an unexpected answer.
const ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the wait phase lists the node's pods (kubectl polls every second, per pod).
const WAIT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Concurrent evictions. Each worker uses one API connection at a time (kept open between
/// its requests).
pub const MAX_WORKERS: usize = 32;
/// Evictions in flight at a drain's start ([`Pacer`]).
pub const FIRST_EVICTIONS: usize = 4;

/// The drain's pace. It starts with [`FIRST_EVICTIONS`] evictions in flight and each answer
/// lets one more run, up to the worker count: a slow start, as TCP's, that doubles per round
/// trip (a node alone has every worker busy after three). When the API server sheds load (a
/// 429 that is not a budget's refusal: API Priority and Fairness, max-in-flight) every worker
/// holds off until the server's `Retry-After` (± 20 %, doubled per round shed in a row, see
/// [`shed_backoff`]) has passed and the number in flight is halved. So hundreds of nodes
/// reclaimed at once (an AZ losing its spot pool) neither open with thousands of evictions nor
/// retry in a storm that starves the cordons of the nodes that saw their notice a moment later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    /// Evictions allowed in flight now.
    pub limit: usize,
    max: usize,
    /// No new request before this.
    pub hold_until: Option<Instant>,
    /// Rounds shed in a row: a round is the requests sent after one hold ended.
    sheds: u32,
}

impl Pacer {
    pub fn new(max: usize) -> Pacer {
        Pacer {
            limit: max.clamp(1, FIRST_EVICTIONS),
            max: max.max(1),
            hold_until: None,
            sheds: 0,
        }
    }

    /// When a worker may start its next request with `in_flight` running: `None` now, else
    /// the instant to wait for (`Some(now)` means: wait for a running request to end).
    pub fn wait(&self, now: Instant, in_flight: usize) -> Option<Instant> {
        match self.hold_until {
            Some(t) if t > now => Some(t),
            _ if in_flight >= self.limit => Some(now),
            _ => None,
        }
    }

    /// The server shed load and asked for `retry_after` (already jittered). A round shed
    /// again after its hold doubles the next hold ([`shed_backoff`]).
    pub fn overloaded(&mut self, now: Instant, retry_after: Duration) {
        self.limit = (self.limit / 2).max(1);
        if self.hold_until.is_none_or(|t| t <= now) {
            self.sheds += 1;
        }
        let until = now + shed_backoff(retry_after, self.sheds);
        self.hold_until = Some(self.hold_until.map_or(until, |t| t.max(until)));
    }

    /// Any other answer.
    pub fn answered(&mut self) {
        self.limit = (self.limit + 1).min(self.max);
        self.sheds = 0;
    }
}

/// How long to hold off after the `sheds`-th load-shedding answer in a row: the server's
/// `Retry-After`, doubled for each repeat, at most 8 times it. API Priority and Fairness always
/// says 1 s; hundreds of drains that all came back after exactly that would keep its queues
/// full, and the cordons still to come (retried at the plain `Retry-After`) would find no room.
pub fn shed_backoff(retry_after: Duration, sheds: u32) -> Duration {
    retry_after * (1u32 << sheds.saturating_sub(1).min(3))
}

/// The server's load shedding: 429 without a budget behind it, and when to come back (its
/// `Retry-After`, else 1 s; at most 30 s).
pub fn shed(e: &crate::kube::Error) -> Option<Duration> {
    (e.code() == Some(429) && !e.is_budget_blocked()).then(|| {
        e.retry_after()
            .unwrap_or(ERROR_RETRY_INTERVAL)
            .min(Duration::from_secs(30))
    })
}

/// What to do with one pod of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Evict,
    /// Already terminating: wait for it, do not evict it again.
    Wait,
    Skip(&'static str),
}

/// kubectl drain's filters with `--force --ignore-daemonsets --delete-emptydir-data`, plus our
/// own pod. Pure.
pub fn select(pod: &Pod, own_pod: Option<(&str, &str)>) -> Selection {
    if own_pod == Some((pod.namespace(), pod.name.as_str())) {
        return Selection::Skip("the handler's own pod");
    }
    let finished = matches!(pod.phase(), "Succeeded" | "Failed");
    if let Some(c) = pod.controller() {
        let apps = c
            .api_version
            .as_deref()
            .is_none_or(|v| v.starts_with("apps/") || v.starts_with("extensions/"));
        // kubectl: "any finished pod can be removed", even a DaemonSet's.
        if c.kind == "DaemonSet" && apps && !finished {
            return Selection::Skip("DaemonSet-managed");
        }
    }
    if pod.is_mirror() {
        return Selection::Skip("mirror pod of a static pod");
    }
    if pod.is_terminating() {
        return Selection::Wait;
    }
    Selection::Evict
}

/// With less than this left when a notice is seen (or a deadline already past), the notice
/// is an emergency: the effective deadline becomes detection + this window.
pub const EMERGENCY_WINDOW: Duration = Duration::from_secs(10);
/// The most time kept at the end of the window to record and send the outcome.
pub const REPORT_MARGIN: Duration = Duration::from_secs(5);
/// The least time kept for that.
const MIN_REPORT_MARGIN: Duration = Duration::from_secs(1);

/// A drain without a deadline retries for at most this long.
pub const OPEN_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// How long budgets are waited for in a window `w` with reserve `r` (see the module docs).
pub fn budget_time(w: Duration, r: Duration) -> Duration {
    let long = |w: Duration| w.saturating_sub(r);
    let short = |w: Duration| (w / 6).min(long(w));
    let (lo, hi) = (Duration::from_secs(60), Duration::from_secs(120));
    if w <= lo {
        short(w)
    } else if w >= hi {
        long(w)
    } else {
        // A straight line from b(60 s) to b(120 s).
        let (a, b) = (short(lo).as_secs_f64(), long(hi).as_secs_f64());
        let t = (w - lo).as_secs_f64() / (hi - lo).as_secs_f64();
        Duration::from_secs_f64((a + (b - a) * t).max(0.0)).min(long(w))
    }
}

/// `EVICTION_ORDER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionOrder {
    /// Ordinary pods first, critical ones last (see the module docs).
    Tiers,
    /// Every pod at once.
    Parallel,
}

/// `CRITICAL_PRIORITY`'s default: `system-cluster-critical`'s priority.
pub const DEFAULT_CRITICAL_PRIORITY: i64 = 2_000_000_000;

/// A pod of the critical tier: a built-in critical priority class, or `spec.priority` at least
/// `threshold`. Pure.
pub fn is_critical(pod: &Pod, threshold: i64) -> bool {
    matches!(
        pod.priority_class(),
        "system-cluster-critical" | "system-node-critical"
    ) || pod.priority() >= threshold
}

/// The grace the critical tier must still be able to give: the largest of its pods' own,
/// capped by `GRACE_PERIOD`, at least 1 s.
pub fn tier_need(graces: impl IntoIterator<Item = i64>, grace_cap: Option<u32>) -> i64 {
    graces
        .into_iter()
        .map(|g| grace_cap.map_or(g, |c| g.min(i64::from(c))))
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The latest start of the critical tier: `max(start, report_at − need − 1 s)`, so that every
/// critical pod asked then still gets `need` whole seconds before `report_at` (see the module
/// docs). Pure.
pub fn critical_tier_latest(start: Instant, report_at: Instant, need_s: i64) -> Instant {
    let need = Duration::from_secs(u64::try_from(need_s).unwrap_or(0)) + Duration::from_secs(1);
    report_at.checked_sub(need).map_or(start, |t| t.max(start))
}

/// When the critical tier starts: when the tier before it is `gone` (`None`: not yet), or at
/// [`critical_tier_latest`], whichever comes first. Pure.
pub fn critical_tier_start(
    start: Instant,
    report_at: Instant,
    need_s: i64,
    gone: Option<Instant>,
) -> Instant {
    let latest = critical_tier_latest(start, report_at, need_s);
    gone.map_or(latest, |g| g.min(latest))
}

/// The report margin of a window: a tenth of it, from 1 s to [`REPORT_MARGIN`].
pub fn report_margin(window: Duration) -> Duration {
    (window / 10).clamp(MIN_REPORT_MARGIN, REPORT_MARGIN)
}

/// The time budget of one drain (see the module docs). Pure arithmetic over `Instant`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// When the VM goes (the notice's deadline, or detection + [`EMERGENCY_WINDOW`]).
    pub deadline: Instant,
    /// `deadline − report margin`: all drain work ends here, then the outcome is reported.
    pub report_at: Instant,
    /// `min(deadline − reserve, report_at)`, not before detection (detection in an
    /// emergency): budgets stop being waited for.
    pub force_at: Instant,
    pub grace_cap: Option<u32>,
    /// Less than [`EMERGENCY_WINDOW`] was left at detection.
    pub emergency: bool,
    /// How long the notice's deadline had already passed at detection (`None`: it had not).
    pub passed_by: Option<Duration>,
}

impl Budget {
    /// The budget of a notice with wall-clock `deadline`, detected at `now` (`wall_now` on the
    /// wall clock; pass a corrected clock to measure against another time source).
    pub fn new(
        deadline: SystemTime,
        reserve: Duration,
        grace_cap: Option<u32>,
        now: Instant,
        wall_now: SystemTime,
    ) -> Budget {
        let passed_by = wall_now.duration_since(deadline).ok();
        let left = deadline.duration_since(wall_now).unwrap_or_default();
        let emergency = left < EMERGENCY_WINDOW;
        let window = if emergency { EMERGENCY_WINDOW } else { left };
        let deadline = now + window;
        let report_at = deadline - report_margin(window);
        // In an emergency there is no time to wait for budgets.
        let force_at = if emergency {
            now
        } else {
            (now + budget_time(window, reserve)).min(report_at)
        };
        Budget {
            deadline,
            report_at,
            force_at,
            grace_cap,
            emergency,
            passed_by,
        }
    }

    /// Grace for an eviction or a delete at `now`: the pod's own, capped by `GRACE_PERIOD` and
    /// by the whole seconds left until `report_at`; at least 1 s (0 would mean SIGKILL without
    /// SIGTERM).
    pub fn grace(&self, own: i64, now: Instant) -> i64 {
        let window = self.report_at.saturating_duration_since(now).as_secs();
        let mut g = own.min(i64::try_from(window).unwrap_or(i64::MAX));
        if let Some(c) = self.grace_cap {
            g = g.min(i64::from(c));
        }
        g.max(1)
    }

    /// The budget of a drain without a deadline (a rebalance drain): budgets are waited for
    /// throughout, for at most [`OPEN_LIMIT`].
    pub fn open(grace_cap: Option<u32>, now: Instant) -> Budget {
        let deadline = now + OPEN_LIMIT;
        Budget {
            deadline,
            report_at: deadline,
            force_at: deadline,
            grace_cap,
            emergency: false,
            passed_by: None,
        }
    }

    pub fn seconds_left(&self, now: Instant) -> u64 {
        self.deadline.saturating_duration_since(now).as_secs()
    }
}

/// What became of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The Eviction API accepted it.
    Evicted,
    /// Deleted directly at `force_at`.
    Forced,
    /// Gone (404) or replaced (new UID: 409 on the UID precondition) before we got to it.
    AlreadyGone,
    /// Held for its Deployment's rollout (`SURGE_BLOCKED=budgeted`), which retired it.
    Moved,
    Failed(String),
}

/// The next step for a pod after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Done(Fate),
    RetryAt(Instant),
}

/// A pod to evict.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub grace: i64,
    /// In the critical tier (always false with `EVICTION_ORDER=parallel`).
    pub critical: bool,
    /// With `SURGE_BLOCKED`: the Deployment the pod belongs to, its labels, and whether it
    /// was Ready when listed.
    pub deployment: Option<String>,
    pub labels: Labels,
    pub ready: bool,
}

impl Target {
    fn from_pod(p: &Pod) -> Target {
        Target {
            namespace: p.namespace().to_string(),
            name: p.name.clone(),
            uid: p.uid().to_string(),
            grace: p.grace_seconds(),
            critical: false,
            deployment: None,
            labels: Labels::default(),
            ready: false,
        }
    }
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The outcome of a drain, for logs, the Node annotation and Slack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub evicted: usize,
    /// Deleted directly at `force_at`: still refused by a budget, or already terminating with
    /// a grace that would have outlasted the report.
    pub forced: usize,
    pub already_gone: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Selected pods still on the node when the wait ended (at `report_at`), failed ones
    /// included.
    pub still_present: usize,
    /// Their `ns/name`.
    pub still_present_pods: Vec<String>,
    pub seconds: f64,
    pub failed_pods: Vec<String>,
    /// The cordon was accepted.
    pub cordoned: bool,
    /// The node's pods could be listed; when not, nothing was evicted.
    pub listed: bool,
    /// The notice was an emergency (see [`Budget::emergency`]).
    pub emergency: bool,
    /// How long its deadline had passed when it was seen.
    pub passed_by: Option<Duration>,
    /// The drain was stopped before its end (its notices were undone).
    pub cancelled: bool,
    /// `DRY_RUN`: nothing was done; `planned` pods would have been evicted.
    pub dry_run: bool,
    pub planned: usize,
    /// Pods `POD_SELECTOR` did not match (`ns/name`): left alone.
    pub left_alone: Vec<String>,
    /// Deployments restarted by `SURGE_BLOCKED` (`ns/name`).
    pub surged: Vec<String>,
    /// Held pods their Deployment's rollout retired (`SURGE_BLOCKED=budgeted`).
    pub moved: usize,
}

/// What a drain achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every selected pod is gone.
    Drained,
    /// Some selected pods failed or were still on the node at the end.
    PodsLeft,
    /// The pods could not be listed: the node is not drained.
    NotDrained,
}

/// How many names the summaries show before "…".
pub const SHOWN_NAMES: usize = 5;

/// Up to [`SHOWN_NAMES`] names, then "…": `shop/a, shop/b, …`.
pub fn some_names(names: &[String], sep: &str) -> String {
    let mut out = names
        .iter()
        .take(SHOWN_NAMES)
        .cloned()
        .collect::<Vec<_>>()
        .join(sep);
    if names.len() > SHOWN_NAMES {
        out.push_str(sep);
        out.push('…');
    }
    out
}

impl Report {
    pub fn outcome(&self) -> Outcome {
        if !self.listed {
            Outcome::NotDrained
        } else if self.failed > 0 || self.still_present > 0 {
            Outcome::PodsLeft
        } else {
            Outcome::Drained
        }
    }

    /// The `phase` annotation that records it: `drained`, `incomplete` or `failed`. Only
    /// `drained` stops a restarted handler from draining again.
    pub fn phase(&self) -> &'static str {
        match self.outcome() {
            Outcome::Drained => PHASE_DRAINED,
            Outcome::PodsLeft => "incomplete",
            Outcome::NotDrained => "failed",
        }
    }

    /// One line for the log and the `summary` annotation.
    pub fn summary(&self) -> String {
        let mut s = if self.dry_run {
            format!(
                "dry run: would evict {} pods, skipped={} seconds={:.1}",
                self.planned, self.skipped, self.seconds
            )
        } else if self.listed {
            format!(
                "evicted={} forced={} failed={} already_gone={} skipped={} still_present={} seconds={:.1}",
                self.evicted, self.forced, self.failed, self.already_gone, self.skipped, self.still_present, self.seconds
            )
        } else {
            format!(
                "could not list pods; node not drained seconds={:.1}",
                self.seconds
            )
        };
        if !self.still_present_pods.is_empty() {
            s.push_str(" still_on_node=");
            s.push_str(&some_names(&self.still_present_pods, ","));
        }
        if !self.left_alone.is_empty() {
            s.push_str(&format!(
                " left_alone={} not_selected={}",
                self.left_alone.len(),
                some_names(&self.left_alone, ",")
            ));
        }
        if !self.surged.is_empty() {
            s.push_str(" surged=");
            s.push_str(&some_names(&self.surged, ","));
        }
        if self.moved > 0 {
            s.push_str(&format!(" moved={}", self.moved));
        }
        if !self.cordoned {
            s.push_str(" cordoned=false");
        }
        if let Some(late) = self.passed_by {
            s.push_str(&format!(" deadline_passed_s={}", late.as_secs()));
        } else if self.emergency {
            s.push_str(" emergency=true");
        }
        s
    }
}

/// The `phase` annotation of a finished drain.
pub const PHASE_DRAINED: &str = "drained";

/// What one drain is asked to do, changed by the loop while it runs.
pub struct Control {
    state: Mutex<Order>,
    cancelled: AtomicBool,
    reserve: Duration,
    grace_cap: Option<u32>,
}

#[derive(Debug, Clone)]
struct Order {
    deadline: Option<SystemTime>,
    force: bool,
    primary: String,
    budget: Budget,
}

impl Control {
    /// A drain to `deadline` (`None`: no deadline), detected now. `force`: pods a budget still
    /// refuses at `force_at` may be deleted directly.
    pub fn new(
        deadline: Option<SystemTime>,
        force: bool,
        primary: &str,
        reserve: Duration,
        grace_cap: Option<u32>,
    ) -> Control {
        let budget = Self::budget_for(deadline, reserve, grace_cap);
        Control {
            state: Mutex::new(Order {
                deadline,
                force,
                primary: primary.to_string(),
                budget,
            }),
            cancelled: AtomicBool::new(false),
            reserve,
            grace_cap,
        }
    }

    fn budget_for(deadline: Option<SystemTime>, reserve: Duration, cap: Option<u32>) -> Budget {
        match deadline {
            Some(d) => Budget::new(d, reserve, cap, Instant::now(), SystemTime::now()),
            None => Budget::open(cap, Instant::now()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Order> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new order while the drain runs: a changed deadline gets a new budget, measured from now.
    pub fn update(&self, deadline: Option<SystemTime>, force: bool, primary: &str) {
        let mut o = self.lock();
        if o.deadline != deadline {
            o.budget = Self::budget_for(deadline, self.reserve, self.grace_cap);
            o.deadline = deadline;
            info!(
                "the drain's deadline changed",
                notice = primary,
                deadline = deadline.map_or("none".to_string(), format_rfc3339)
            );
        }
        o.force = force;
        o.primary = primary.to_string();
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The governing notice's id.
    pub fn primary(&self) -> String {
        self.lock().primary.clone()
    }

    pub fn budget(&self) -> Budget {
        self.lock().budget
    }

    pub fn deadline(&self) -> Option<SystemTime> {
        self.lock().deadline
    }

    fn force(&self) -> bool {
        self.lock().force
    }
}

/// A callback told each pod's fate.
pub type OnFate<'a> = Box<dyn Fn(&Target, &Fate) + Send + Sync + 'a>;

/// Settings of a drain.
pub struct Drainer<'a> {
    pub client: &'a Client,
    pub node: String,
    pub own_pod: Option<(String, String)>,
    pub version: EvictionVersion,
    /// Pause between the load-balancer label and the first eviction, cut to what the budget
    /// allows (`EVICTION_DELAY`).
    pub eviction_delay: Duration,
    /// `DRY_RUN`: list and select, then say what would be done, and when; evict nothing.
    pub dry_run: bool,
    /// Told each pod's fate as soon as it is known (for its Event); must not block.
    pub on_fate: Option<OnFate<'a>>,
    /// `EVICTION_ORDER` and `CRITICAL_PRIORITY`.
    pub order: EvictionOrder,
    pub critical_priority: i64,
    /// `POD_SELECTOR`: only matching pods are drained.
    pub pod_selector: Option<Selector>,
    /// `SURGE_BLOCKED` (`true` or `budgeted`).
    pub surge_blocked: bool,
    /// `SURGE_BLOCKED=budgeted`.
    pub surge_budgeted: bool,
    /// When the drain's notice was acted on (a restarted handler resumes the same drain): the
    /// hold's clock and the restart's stamp.
    pub since: Option<SystemTime>,
}

/// `SURGE_BLOCKED` bookkeeping of one drain.
#[derive(Default)]
struct SurgeState {
    /// Deployment `ns/name` → its Ready pods on this node not yet evicted or deleted.
    ready_here: HashMap<String, i64>,
    /// Deployments judged or restarted in this drain (once per Deployment).
    done: HashSet<String>,
    /// Failed attempts per Deployment (reading or patching it); at most 3.
    failures: HashMap<String, u32>,
    restarted: Vec<String>,
}

/// Tries to read or restart one Deployment before giving up for this drain.
const SURGE_TRIES: u32 = 3;

impl Drainer<'_> {
    /// Drains the node as `control` says (the cordon is already on).
    pub fn run(&self, control: &Control) -> Report {
        let started = Instant::now();
        let budget = &control.budget();
        info!(
            "draining node",
            node = self.node,
            notice = control.primary(),
            deadline = control
                .deadline()
                .map_or("none".to_string(), format_rfc3339),
            seconds_left = budget.seconds_left(started),
            force_in_s = budget.force_at.saturating_duration_since(started).as_secs(),
            report_in_s = budget
                .report_at
                .saturating_duration_since(started)
                .as_secs(),
            emergency = budget.emergency,
            eviction_api = self.version.api_version()
        );
        let mut report = Report {
            // The caller knows whether the cordon is on; it says so when it is not.
            cordoned: true,
            emergency: budget.emergency,
            passed_by: budget.passed_by,
            ..Report::default()
        };

        let Some(pods) = self.list_pods(control) else {
            error!(
                "could not list pods before the report time; nothing evicted",
                node = self.node
            );
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        };
        report.listed = true;
        let own = self
            .own_pod
            .as_ref()
            .map(|(ns, n)| (ns.as_str(), n.as_str()));
        let (mut targets, mut terminating) = (Vec::new(), Vec::new());
        for p in &pods {
            let selection = select(p, own);
            if matches!(selection, Selection::Evict | Selection::Wait) {
                if let Some(sel) = &self.pod_selector {
                    if !sel.matches(|k| p.label(k)) {
                        let key = p.key();
                        info!(
                            "leaving pod alone: POD_SELECTOR does not match it",
                            pod = key
                        );
                        report.left_alone.push(key);
                        continue;
                    }
                }
            }
            match selection {
                Selection::Evict => targets.push(self.target(p)),
                Selection::Wait => {
                    info!("pod already terminating; waiting for it", pod = p.key());
                    terminating.push(self.target(p));
                }
                Selection::Skip(why) => {
                    info!("skipping pod", pod = p.key(), reason = why);
                    report.skipped += 1;
                }
            }
        }
        report.left_alone.sort();
        info!(
            "evicting pods",
            node = self.node,
            pods = targets.len(),
            critical = targets.iter().filter(|t| t.critical).count(),
            terminating = terminating.len(),
            skipped = report.skipped,
            left_alone = report.left_alone.len()
        );

        let start = self.since.map_or(started, |s| {
            let ago = SystemTime::now().duration_since(s).unwrap_or_default();
            started.checked_sub(ago).unwrap_or(started)
        });
        let held = if self.surge_budgeted {
            self.hold_for_rollouts(&targets, control, start, &mut report)
        } else {
            vec![false; targets.len()]
        };
        if self.dry_run {
            self.plan(&targets, &held, &terminating, control, start, &mut report);
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
        self.delay_evictions(&targets, control);
        let surge = Mutex::new(SurgeState::default());
        if self.surge_blocked {
            let mut st = surge.lock().unwrap_or_else(|p| p.into_inner());
            // Restarted for a hold: never again in this drain.
            st.done.extend(report.surged.iter().cloned());
            for t in targets.iter().filter(|t| t.ready) {
                if let Some(d) = &t.deployment {
                    *st.ready_here
                        .entry(format!("{}/{d}", t.namespace))
                        .or_default() += 1;
                }
            }
        }
        // Ordinary pods already terminating hold the critical tier back too.
        let before: Vec<String> = terminating
            .iter()
            .filter(|t| !t.critical)
            .map(|t| t.uid.clone())
            .collect();
        let fates = self.evict_all(&targets, &held, start, &before, control, &surge);
        report.surged.extend(
            surge
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .restarted,
        );
        let mut watch = Watch {
            wait: terminating
                .iter()
                .map(|t| (t.uid.clone(), t.key()))
                .collect(),
            failed: HashMap::new(),
        };
        let mut to_shorten: Vec<&Target> = terminating.iter().collect();
        for (t, fate) in targets.iter().zip(&fates) {
            match fate {
                Fate::Evicted => report.evicted += 1,
                Fate::Forced => report.forced += 1,
                Fate::AlreadyGone => report.already_gone += 1,
                Fate::Moved => {
                    // Retired by its rollout, maybe still stopping: waited for like the rest.
                    report.moved += 1;
                    watch.wait.insert(t.uid.clone(), t.key());
                    to_shorten.push(t);
                }
                Fate::Failed(_) => {
                    report.failed += 1;
                    report.failed_pods.push(t.key());
                    watch.failed.insert(t.uid.clone(), t.key());
                }
            }
            if matches!(fate, Fate::Evicted | Fate::Forced) {
                watch.wait.insert(t.uid.clone(), t.key());
            }
        }
        let (left, shortened) = self.wait_gone(watch, to_shorten, control);
        report.forced += shortened;
        report.still_present = left.len();
        report.still_present_pods = left;
        report.seconds = started.elapsed().as_secs_f64();
        report.cancelled = control.is_cancelled();
        report
    }

    /// A pod to evict or wait for, with its tier and (for `SURGE_BLOCKED`) its Deployment.
    fn target(&self, p: &Pod) -> Target {
        let mut t = Target::from_pod(p);
        t.critical = self.order == EvictionOrder::Tiers && is_critical(p, self.critical_priority);
        if self.surge_blocked || self.surge_budgeted {
            t.deployment = crate::surge::deployment_of(p);
            if t.deployment.is_some() {
                t.labels = p.labels.clone();
                t.ready = p.is_ready() && !p.is_terminating();
            }
        }
        t
    }

    /// `DRY_RUN`: what the drain would do, and when, one line per pod.
    fn plan(
        &self,
        targets: &[Target],
        held: &[bool],
        terminating: &[Target],
        control: &Control,
        start: Instant,
        r: &mut Report,
    ) {
        let budget = control.budget();
        let now = Instant::now();
        let hold_end = crate::surge::hold_end(start, budget.force_at);
        let force = control.force() && budget.force_at < budget.report_at;
        let critical: Vec<i64> = targets
            .iter()
            .filter(|t| t.critical)
            .map(|t| t.grace)
            .collect();
        let latest = critical_tier_latest(
            now,
            budget.report_at,
            tier_need(critical.iter().copied(), budget.grace_cap),
        );
        for (t, held) in targets.iter().zip(held) {
            let (msg, at) = if *held {
                (
                    "dry run: would hold pod for its rollout, then evict it if still here",
                    hold_end,
                )
            } else if t.critical {
                (
                    "dry run: would evict critical pod once the others are gone, at the latest",
                    latest,
                )
            } else {
                ("dry run: would evict pod", now)
            };
            info!(
                msg,
                pod = t.key(),
                grace_s = budget.grace(t.grace, at),
                at = wall(at)
            );
            if force {
                info!(
                    "dry run: if its budget refuses, would delete it directly",
                    pod = t.key(),
                    at = wall(budget.force_at),
                    grace_s = budget.grace(t.grace, budget.force_at)
                );
            }
        }
        for t in terminating {
            info!(
                "dry run: would wait for the terminating pod, and shorten its grace if it outlasts the report time",
                pod = t.key(),
                at = wall(budget.force_at),
                grace_s = budget.grace(t.grace, budget.force_at)
            );
        }
        r.dry_run = true;
        r.planned = targets.len();
    }

    /// `SURGE_BLOCKED=budgeted`, at the drain's start (`start`: when its notice was acted on):
    /// restarts each Deployment of `targets` that a PodDisruptionBudget selects and
    /// [`crate::surge::verdict`] accepts, and returns which targets to hold. The restart's stamp
    /// is when the drain began, so a handler restarted mid-drain repeats the very same patch,
    /// which changes nothing (one rollout). Restarted Deployments go to `report.surged`. Nothing
    /// is held once the hold would already be over (an emergency).
    fn hold_for_rollouts(
        &self,
        targets: &[Target],
        control: &Control,
        start: Instant,
        report: &mut Report,
    ) -> Vec<bool> {
        let mut held = vec![false; targets.len()];
        let budget = control.budget();
        let end = crate::surge::hold_end(start, budget.force_at);
        if Instant::now() >= end {
            return held;
        }
        let until = Some(budget.report_at);
        // The drain's start, not now: a handler restarted mid-drain patches the same value,
        // which changes nothing (no second rollout).
        let stamp = format_rfc3339(self.since.unwrap_or_else(SystemTime::now));
        let hold_until = wall(end);
        let mut budgets: Vec<(&str, Vec<crate::kube::model::Deployment>)> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let mine = |u: &Target| u.namespace == t.namespace && u.deployment == t.deployment;
            let Some(name) = t
                .deployment
                .as_deref()
                .filter(|_| !targets.iter().take(i).any(mine))
            else {
                continue;
            };
            let ns = t.namespace.as_str();
            let key = format!("{ns}/{name}");
            let label = |k: &str| t.labels.get(k);
            let fail = |e: crate::kube::Error| {
                warn!(
                    "not holding a Deployment's pods; evicting them as usual",
                    deployment = key,
                    error = e
                );
            };
            if !budgets.iter().any(|(n, _)| *n == ns) {
                let list = self.client.list_budgets(ns, until).unwrap_or_else(|e| {
                    fail(e);
                    Vec::new()
                });
                budgets.push((ns, list));
            }
            let selected = |(n, l): &(&str, Vec<_>)| {
                *n == ns && l.iter().any(|p| crate::surge::budget_selects(p, &label))
            };
            if !budgets.iter().any(selected) {
                continue;
            }
            let d = match self.client.get_deployment(ns, name, until) {
                Ok(d) => d,
                Err(e) => {
                    fail(e);
                    continue;
                }
            };
            let max_surge = match crate::surge::verdict(&d, &label, None) {
                Ok(n) => n,
                Err(why) => {
                    info!(
                        "not holding a Deployment's pods; evicting them as usual",
                        deployment = key,
                        reason = why
                    );
                    continue;
                }
            };
            let msg = if self.dry_run {
                "dry run: would restart the Deployment and hold its pods"
            } else if let Err(e) = self.client.restart_deployment(ns, name, &stamp, until) {
                fail(e);
                continue;
            } else {
                "Deployment restarted for this drain; holding its pods"
            };
            for (h, u) in held.iter_mut().zip(targets) {
                *h |= mine(u);
            }
            info!(
                msg,
                deployment = key,
                pods = targets.iter().filter(|u| mine(u)).count(),
                max_surge = max_surge,
                until = hold_until
            );
            if !self.dry_run {
                report.surged.push(key);
            }
        }
        held
    }

    /// `EVICTION_DELAY`, cut so that every target still gets its own grace before the report
    /// time; stops early when the drain is stopped or tightened.
    fn delay_evictions(&self, targets: &[Target], control: &Control) {
        if self.eviction_delay.is_zero() || targets.is_empty() {
            return;
        }
        let budget = control.budget();
        let now = Instant::now();
        // The grace the pods ask for, not what the window would cut it to.
        let needed = targets
            .iter()
            .map(|t| {
                budget
                    .grace_cap
                    .map_or(t.grace, |c| t.grace.min(i64::from(c)))
            })
            .max()
            .unwrap_or(0);
        let room = budget
            .report_at
            .saturating_duration_since(now)
            .saturating_sub(Duration::from_secs(needed.max(0) as u64));
        let delay = self.eviction_delay.min(room);
        info!(
            "waiting for load balancers to deregister the node before evicting",
            delay_ms = delay.as_millis(),
            configured_ms = self.eviction_delay.as_millis()
        );
        let until = now + delay;
        while Instant::now() < until && !control.is_cancelled() && control.budget() == budget {
            sleep_until(Instant::now() + Duration::from_millis(100), until);
        }
    }

    /// Lists the node's pods, retrying every second until the report time.
    fn list_pods(&self, control: &Control) -> Option<Vec<Pod>> {
        let mut sheds = 0;
        loop {
            let budget = control.budget();
            if control.is_cancelled() {
                return None;
            }
            let wait = match self
                .client
                .list_pods_on_node(&self.node, Some(budget.report_at))
            {
                Ok(p) => return Some(p),
                Err(e) => {
                    // A throttled list (429) waits what the server asked, within bounds, and
                    // longer when throttled again ([`shed_backoff`], as the evictions do).
                    let wait = match (e.code(), shed(&e)) {
                        (_, Some(after)) => {
                            sheds += 1;
                            no_sooner(shed_backoff(after, sheds), &self.node, sheds)
                        }
                        (Some(429), None) => e
                            .retry_after()
                            .unwrap_or(ERROR_RETRY_INTERVAL)
                            .min(Duration::from_secs(30)),
                        _ => ERROR_RETRY_INTERVAL,
                    };
                    warn!("listing pods failed; retrying", node = self.node, error = e);
                    wait
                }
            };
            let mut next = Instant::now() + wait;
            if wait > ERROR_RETRY_INTERVAL && next >= budget.report_at {
                // Not past the report for the server's sake: the usual short retry then.
                next = Instant::now() + ERROR_RETRY_INTERVAL;
            }
            if next >= budget.report_at {
                return None;
            }
            sleep_until(next, budget.report_at);
        }
    }

    /// Evicts every target concurrently; returns each target's fate, in order. Critical
    /// targets wait for the tier gate (see the module docs): `before` are the UIDs of ordinary
    /// pods already terminating, which hold the gate too.
    fn evict_all(
        &self,
        targets: &[Target],
        held: &[bool],
        start: Instant,
        before: &[String],
        control: &Control,
        surge: &Mutex<SurgeState>,
    ) -> Vec<Fate> {
        struct Task {
            idx: usize,
            due: Instant,
            attempts: u32,
            gated: bool,
            held: bool,
        }
        struct Queue {
            pending: Vec<Task>,
            in_flight: usize,
            fates: Vec<Option<Fate>>,
            pacer: Pacer,
        }
        let now = Instant::now();
        let gated = targets.iter().any(|t| t.critical);
        let queue = Mutex::new(Queue {
            pending: (0..targets.len())
                .map(|idx| Task {
                    idx,
                    due: now,
                    attempts: 0,
                    gated: targets[idx].critical,
                    held: held[idx],
                })
                .collect(),
            in_flight: 0,
            fates: vec![None; targets.len()],
            pacer: Pacer::new(targets.len().clamp(1, MAX_WORKERS)),
        });
        let wake = Condvar::new();
        let workers = targets.len().clamp(1, MAX_WORKERS);
        let lock = || queue.lock().unwrap_or_else(|p| p.into_inner());
        std::thread::scope(|s| {
            if gated {
                let (queue, wake) = (&queue, &wake);
                crate::worker::spawn_scoped(s, move || {
                    let critical: Vec<&Target> = targets.iter().filter(|t| t.critical).collect();
                    let need =
                        tier_need(critical.iter().map(|t| t.grace), control.budget().grace_cap);
                    info!(
                        "critical pods wait until the others are gone",
                        critical = critical.len(),
                        need_s = need
                    );
                    let reason = self.tier_gate(targets, before, control, need, &|| {
                        let q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        targets
                            .iter()
                            .zip(&q.fates)
                            .filter(|(t, _)| !t.critical)
                            .map(|(t, f)| f.as_ref().map(|f| (t.uid.clone(), f.clone())))
                            .collect()
                    });
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    let now = Instant::now();
                    let mut n = 0;
                    for t in q.pending.iter_mut().filter(|t| t.gated) {
                        t.gated = false;
                        t.due = now;
                        n += 1;
                    }
                    if n > 0 {
                        info!("starting the critical tier", pods = n, reason = reason);
                    }
                    wake.notify_all();
                });
            }
            for _ in 0..workers {
                crate::worker::spawn_scoped(s, || {
                    let mut q = lock();
                    loop {
                        let Some(pos) = (0..q.pending.len())
                            .filter(|&i| !q.pending[i].gated && !q.pending[i].held)
                            .min_by_key(|&i| q.pending[i].due)
                        else {
                            if q.in_flight == 0 && q.pending.is_empty() {
                                wake.notify_all();
                                return;
                            }
                            q = wake
                                .wait_timeout(q, Duration::from_secs(1))
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                            continue;
                        };
                        let now = Instant::now();
                        let due = q.pending[pos].due;
                        if due > now {
                            q = wake
                                .wait_timeout(q, due - now)
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                            continue;
                        }
                        if let Some(until) = q.pacer.wait(now, q.in_flight) {
                            // Held by the server's Retry-After, or at the current limit (a
                            // finishing request wakes us).
                            let d = until.saturating_duration_since(now);
                            let d = if d.is_zero() {
                                Duration::from_secs(1)
                            } else {
                                d
                            };
                            q = wake.wait_timeout(q, d).unwrap_or_else(|p| p.into_inner()).0;
                            continue;
                        }
                        let mut task = q.pending.swap_remove(pos);
                        q.in_flight += 1;
                        drop(q);
                        let t = &targets[task.idx];
                        let mut shed = None;
                        let step = self.attempt(t, task.attempts, control, surge, &mut shed);
                        if let Step::Done(fate) = &step {
                            if let Some(tell) = &self.on_fate {
                                tell(t, fate);
                            }
                            if !matches!(fate, Fate::Failed(_)) {
                                note_gone(t, surge);
                            }
                        }
                        q = lock();
                        q.in_flight -= 1;
                        match shed {
                            Some(after) => {
                                let key = targets[task.idx].key();
                                q.pacer
                                    .overloaded(Instant::now(), jitter(after, &key, task.attempts));
                            }
                            None => q.pacer.answered(),
                        }
                        match step {
                            Step::Done(fate) => q.fates[task.idx] = Some(fate),
                            Step::RetryAt(at) => {
                                task.due = at;
                                task.attempts += 1;
                                q.pending.push(task);
                            }
                        }
                        wake.notify_all();
                    }
                });
            }
            // The hold, on this thread: one LIST per second; a held pod gone (or stopping) was
            // retired by its rollout; at the hold's end the others go to the workers.
            let mut holding = held.contains(&true);
            while holding {
                let budget = control.budget();
                let end = crate::surge::hold_end(start, budget.force_at);
                let present = self
                    .client
                    .list_pods_on_node(&self.node, Some(budget.report_at))
                    .map_err(|e| warn!("listing pods failed while waiting; retrying", error = e))
                    .ok();
                let mut q = lock();
                let Queue { pending, fates, .. } = &mut *q;
                if let Some(pods) = &present {
                    pending.retain(|task| {
                        let t = &targets[task.idx];
                        let here = pods.iter().any(|p| p.uid() == t.uid && !p.is_terminating());
                        if !task.held || here {
                            return true;
                        }
                        info!("pod moved by its rollout", pod = t.key());
                        fates[task.idx] = Some(Fate::Moved);
                        false
                    });
                }
                let now = Instant::now();
                let left = pending.iter().filter(|t| t.held).count();
                let stopped = control.is_cancelled();
                if left > 0 && (now >= end || stopped) {
                    for t in pending.iter_mut().filter(|t| t.held) {
                        t.held = false;
                        t.due = now;
                    }
                    // A stopped drain evicts nothing: its workers end the held pods' tasks.
                    if !stopped {
                        warn!(
                            "hold over: evicting the held pods still here",
                            pods = left,
                            reason = "halfway to the forced deletes"
                        );
                    }
                }
                drop(q);
                wake.notify_all();
                holding = left > 0 && now < end && !stopped;
                if holding {
                    sleep_until(now + WAIT_POLL_INTERVAL, end);
                }
            }
        });
        let fates = queue.into_inner().unwrap_or_else(|p| p.into_inner()).fates;
        fates
            .into_iter()
            .map(|f| f.unwrap_or_else(|| Fate::Failed("not attempted".to_string())))
            .collect()
    }

    /// Holds the critical tier until the ordinary pods are gone or its latest start
    /// ([`critical_tier_start`]); returns why it opened. `fates` gives the ordinary targets'
    /// fates so far (`None`: still being evicted).
    fn tier_gate(
        &self,
        targets: &[Target],
        before: &[String],
        control: &Control,
        need: i64,
        fates: &dyn Fn() -> Vec<Option<(String, Fate)>>,
    ) -> &'static str {
        let start = Instant::now();
        let ordinary = targets.iter().filter(|t| !t.critical).count();
        loop {
            let budget = control.budget();
            if control.is_cancelled() {
                return "drain stopped";
            }
            let gone = self.ordinary_gone(before, &fates(), budget.report_at);
            let now = Instant::now();
            if now >= critical_tier_start(start, budget.report_at, need, gone.then_some(now)) {
                return match (gone, ordinary == 0 && before.is_empty()) {
                    (true, true) => "no other pods",
                    (true, false) => "the other pods are gone",
                    (false, _) => "latest start that still gives them their own grace",
                };
            }
            sleep_until(
                Instant::now() + WAIT_POLL_INTERVAL,
                critical_tier_latest(start, budget.report_at, need),
            );
        }
    }

    /// True when every ordinary target has its fate and those evicted or deleted, and the
    /// ordinary pods that were already terminating (`before`), have left the node (one LIST).
    fn ordinary_gone(
        &self,
        before: &[String],
        known: &[Option<(String, Fate)>],
        report_at: Instant,
    ) -> bool {
        if !known.iter().all(Option::is_some) {
            return false;
        }
        let mut wait: HashSet<&str> = HashSet::new();
        for (uid, fate) in known.iter().flatten() {
            match fate {
                Fate::Evicted | Fate::Forced => {
                    wait.insert(uid.as_str());
                }
                Fate::AlreadyGone | Fate::Moved => {}
                // Not evicted: still on the node.
                Fate::Failed(_) => return false,
            }
        }
        wait.extend(before.iter().map(String::as_str));
        if wait.is_empty() {
            return true;
        }
        match self.client.list_pods_on_node(&self.node, Some(report_at)) {
            Ok(pods) => !pods.iter().any(|p| wait.contains(p.uid())),
            Err(e) => {
                warn!(
                    "listing pods failed while holding the critical tier; retrying",
                    error = e
                );
                false
            }
        }
    }

    /// One attempt for one pod: evict, or delete once past `force_at`. `shed` is set to the
    /// server's `Retry-After` when it shed load (see [`Pacer`]).
    fn attempt(
        &self,
        t: &Target,
        attempts: u32,
        control: &Control,
        surge: &Mutex<SurgeState>,
        shed: &mut Option<Duration>,
    ) -> Step {
        let now = Instant::now();
        let pod = t.key();
        let budget = &control.budget();
        let force = control.force();
        if control.is_cancelled() {
            return Step::Done(Fate::Failed("drain stopped".to_string()));
        }
        if now >= budget.report_at {
            error!(
                "gave up on pod: out of time before the deadline",
                pod = pod,
                attempts = attempts
            );
            return Step::Done(Fate::Failed("out of time".to_string()));
        }
        let grace = budget.grace(t.grace, now);
        if attempts > 0 && now >= budget.force_at && force {
            return match self.client.delete_pod(
                &t.namespace,
                &t.name,
                &t.uid,
                grace,
                Some(budget.report_at),
            ) {
                Ok(()) => {
                    warn!(
                        "deleted pod at deadline minus reserve",
                        pod = pod,
                        grace_s = grace,
                        attempts = attempts + 1
                    );
                    Step::Done(Fate::Forced)
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {
                    info!("pod already gone", pod = pod);
                    Step::Done(Fate::AlreadyGone)
                }
                Err(e) => {
                    warn!("delete failed; retrying", pod = pod, error = e);
                    *shed = self::shed(&e);
                    let delay = shed.unwrap_or(ERROR_RETRY_INTERVAL);
                    retry(
                        now + jitter(delay, &pod, attempts),
                        budget,
                        &pod,
                        &e.to_string(),
                    )
                }
            };
        }
        match self.client.evict(
            &t.namespace,
            &t.name,
            &t.uid,
            grace,
            self.version,
            Some(budget.report_at),
        ) {
            Ok(()) => {
                info!(
                    "evicted pod",
                    pod = pod,
                    grace_s = grace,
                    attempts = attempts + 1
                );
                Step::Done(Fate::Evicted)
            }
            Err(e) if e.is_not_found() => {
                info!("pod already gone", pod = pod);
                Step::Done(Fate::AlreadyGone)
            }
            Err(e) if e.is_conflict() => {
                info!(
                    "pod already gone (replaced by a new pod of the same name)",
                    pod = pod
                );
                Step::Done(Fate::AlreadyGone)
            }
            Err(e) => {
                if self.surge_blocked && e.is_budget_exhausted() {
                    self.maybe_surge(t, surge, budget);
                }
                let delay = if e.is_budget_blocked()
                    || e.is_multiple_budgets()
                    || e.is_namespace_terminating()
                {
                    e.retry_after()
                        .unwrap_or(EVICTION_RETRY_INTERVAL)
                        .min(Duration::from_secs(30))
                } else if e.code() == Some(429) {
                    e.retry_after()
                        .unwrap_or(ERROR_RETRY_INTERVAL)
                        .min(Duration::from_secs(30))
                } else {
                    ERROR_RETRY_INTERVAL
                };
                // A server's Retry-After is a minimum: spread the retries above it, not around it.
                let wait = if e.retry_after().is_some() {
                    delay + jitter(delay, &pod, attempts).saturating_sub(delay * 4 / 5) / 2
                } else {
                    jitter(delay, &pod, attempts)
                };
                let mut next = now + wait;
                if force {
                    // Never wait past force_at; once past it, delete right away.
                    next = next.min(budget.force_at.max(now));
                }
                *shed = self::shed(&e);
                let why = if e.is_budget_blocked() || e.is_multiple_budgets() {
                    "blocked by disruption budget"
                } else if shed.is_some() {
                    "API server throttling"
                } else {
                    "eviction failed"
                };
                warn!(
                    "eviction not accepted; retrying",
                    pod = pod,
                    reason = why,
                    retry_in_ms = next.saturating_duration_since(now).as_millis(),
                    error = e.cause_message()
                );
                retry(next, budget, &pod, &e.cause_message())
            }
        }
    }

    /// `SURGE_BLOCKED`: after a refusal by a budget that allows nothing now, restart the pod's
    /// Deployment when [`crate::surge::verdict`] says it can surge (once per Deployment).
    fn maybe_surge(&self, t: &Target, surge: &Mutex<SurgeState>, budget: &Budget) {
        let Some(name) = &t.deployment else {
            return;
        };
        let key = format!("{}/{name}", t.namespace);
        let lock = || surge.lock().unwrap_or_else(|p| p.into_inner());
        let ready_here = {
            let mut st = lock();
            if st.failures.get(&key).copied().unwrap_or(0) >= SURGE_TRIES
                || !st.done.insert(key.clone())
            {
                return;
            }
            st.ready_here.get(&key).copied().unwrap_or(0)
        };
        let failed = |e: &crate::kube::Error, what: &str| {
            warn!(what, deployment = key, pod = t.key(), error = e);
            let mut st = lock();
            st.done.remove(&key);
            *st.failures.entry(key.clone()).or_default() += 1;
        };
        let d = match self
            .client
            .get_deployment(&t.namespace, name, Some(budget.report_at))
        {
            Ok(d) => d,
            Err(e) => {
                return failed(
                    &e,
                    "could not read the Deployment of a budget-blocked pod; evictions go on",
                )
            }
        };
        match crate::surge::verdict(&d, &|k| t.labels.get(k), Some(ready_here)) {
            Err(why) => info!(
                "not restarting the Deployment of a budget-blocked pod",
                deployment = key,
                pod = t.key(),
                reason = why
            ),
            Ok(max_surge) => {
                let stamp = format_rfc3339(SystemTime::now());
                match self.client.restart_deployment(
                    &t.namespace,
                    name,
                    &stamp,
                    Some(budget.report_at),
                ) {
                    Ok(()) => {
                        warn!(
                            "its budget allows no eviction: restarted the Deployment, so that it surges a replacement on another node first",
                            deployment = key,
                            pod = t.key(),
                            max_surge = max_surge,
                            ready_replicas_here = ready_here,
                            restarted_at = stamp
                        );
                        lock().restarted.push(key.clone());
                    }
                    Err(e) => failed(
                        &e,
                        "restarting the Deployment of a budget-blocked pod failed; evictions go on",
                    ),
                }
            }
        }
    }

    /// Waits, with one LIST per second, until no pod of `watch.wait` (UIDs) is on the node (a
    /// same-name replacement has a new UID, so it counts as gone), but not past `report_at`.
    /// At `force_at`, each of `to_shorten` (pods already terminating, and held pods their
    /// rollout is stopping) still there whose deletion is due after `report_at` gets a DELETE
    /// with the rule's grace. Returns the `ns/name` of the watched pods (failed ones included)
    /// still on the node, and how many deletions were shortened.
    fn wait_gone(
        &self,
        mut watch: Watch,
        mut to_shorten: Vec<&Target>,
        control: &Control,
    ) -> (Vec<String>, usize) {
        let total = watch.wait.len();
        let mut shortened = 0;
        // Lists shed in a row, and the pause before the next one.
        let (mut sheds, mut pause) = (0, WAIT_POLL_INTERVAL);
        while !watch.wait.is_empty() && !control.is_cancelled() {
            let now = Instant::now();
            let budget = &control.budget();
            if !control.force() {
                to_shorten.clear();
            }
            if now >= budget.report_at {
                warn!(
                    "stopped waiting for pods to stop, to report before the deadline",
                    remaining = watch.wait.len()
                );
                break;
            }
            match self
                .client
                .list_pods_on_node(&self.node, Some(budget.report_at))
            {
                Ok(pods) => {
                    sheds = 0;
                    let present: HashMap<&str, &Pod> = pods.iter().map(|p| (p.uid(), p)).collect();
                    watch.wait.retain(|u, _| present.contains_key(u.as_str()));
                    watch.failed.retain(|u, _| present.contains_key(u.as_str()));
                    to_shorten.retain(|t| watch.wait.contains_key(&t.uid));
                    if now >= budget.force_at {
                        to_shorten.retain(|t| {
                            let outlasts = present
                                .get(t.uid.as_str())
                                .is_some_and(|p| deletion_outlasts(p, budget.report_at, now));
                            if !outlasts {
                                return false;
                            }
                            match self.shorten(t, budget) {
                                Shortened::Done => {
                                    shortened += 1;
                                    false
                                }
                                Shortened::Gone => false,
                                Shortened::Retry => true,
                            }
                        });
                    }
                }
                Err(e) => {
                    warn!("listing pods failed while waiting; retrying", error = e);
                    if let Some(after) = shed(&e) {
                        sheds += 1;
                        pause = shed_backoff(jitter(after, &self.node, sheds), sheds)
                            .max(WAIT_POLL_INTERVAL);
                    }
                }
            }
            if watch.wait.is_empty() {
                break;
            }
            let mut next = now + std::mem::replace(&mut pause, WAIT_POLL_INTERVAL);
            if !to_shorten.is_empty() && now < budget.force_at {
                next = next.min(budget.force_at);
            }
            sleep_until(next, budget.report_at);
        }
        info!(
            "pods gone",
            gone = total - watch.wait.len(),
            remaining = watch.wait.len()
        );
        let mut left: Vec<String> = watch
            .wait
            .into_values()
            .chain(watch.failed.into_values())
            .collect();
        left.sort();
        (left, shortened)
    }

    /// DELETE an already terminating pod with a shorter grace (only if it is still that pod).
    fn shorten(&self, t: &Target, budget: &Budget) -> Shortened {
        let now = Instant::now();
        let grace = budget.grace(t.grace, now);
        let pod = t.key();
        match self
            .client
            .delete_pod(&t.namespace, &t.name, &t.uid, grace, Some(budget.report_at))
        {
            Ok(()) => {
                warn!(
                    "shortened the grace of a terminating pod at deadline minus reserve",
                    pod = pod,
                    grace_s = grace
                );
                Shortened::Done
            }
            Err(e) if e.is_not_found() || e.is_conflict() => {
                info!("pod already gone", pod = pod);
                Shortened::Gone
            }
            Err(e) => {
                warn!("delete failed; retrying", pod = pod, error = e);
                Shortened::Retry
            }
        }
    }
}

/// The pods a drain still watches after its evictions, UID → `ns/name`.
struct Watch {
    /// Evicted, deleted or terminating: waited for.
    wait: HashMap<String, String>,
    /// Never evicted: not waited for, but reported while on the node.
    failed: HashMap<String, String>,
}

enum Shortened {
    Done,
    Gone,
    Retry,
}

/// True when `pod` (terminating) will not be gone by `report_at`: its `deletionTimestamp` lies
/// later, or cannot be read.
fn deletion_outlasts(pod: &Pod, report_at: Instant, now: Instant) -> bool {
    let report_wall = SystemTime::now() + report_at.saturating_duration_since(now);
    match pod
        .deletion_timestamp
        .as_deref()
        .and_then(crate::time::parse_rfc3339)
    {
        Some(due) => due > report_wall,
        None => true,
    }
}

/// A pod of a Deployment left (evicted, deleted or gone): one Ready replica fewer here.
fn note_gone(t: &Target, surge: &Mutex<SurgeState>) {
    if let (true, Some(d)) = (t.ready, &t.deployment) {
        let mut st = surge.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = st.ready_here.get_mut(&format!("{}/{d}", t.namespace)) {
            *n -= 1;
        }
    }
}

/// The wall-clock time of `at`, for logs.
fn wall(at: Instant) -> String {
    format_rfc3339(SystemTime::now() + at.saturating_duration_since(Instant::now()))
}

/// Retry at `next` unless that is past the report time.
fn retry(next: Instant, budget: &Budget, pod: &str, why: &str) -> Step {
    if next >= budget.report_at {
        error!(
            "gave up on pod: out of time before the deadline",
            pod = pod,
            last_error = why
        );
        Step::Done(Fate::Failed(why.to_string()))
    } else {
        Step::RetryAt(next)
    }
}

/// `d` to 1.2 `d` (see [`jitter`]): a server's `Retry-After`, never sooner.
pub fn no_sooner(d: Duration, key: &str, attempt: u32) -> Duration {
    (jitter(d, key, attempt) + d) / 2 + d / 10
}

/// `d` ± 20 %, varying by pod and attempt (no RNG needed: this only breaks lock-step).
fn jitter(d: Duration, pod: &str, attempt: u32) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    for b in pod
        .bytes()
        .chain(attempt.to_le_bytes())
        .chain(nanos.to_le_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let permille = 800 + (h % 401); // 800..=1200
    d * permille as u32 / 1000
}

/// Sleeps until `t`, never past `deadline`.
pub fn sleep_until(t: Instant, deadline: Instant) {
    let until = t.min(deadline);
    let now = Instant::now();
    if until > now {
        std::thread::sleep(until - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn pod(json: &str) -> Pod {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn selection_table() {
        let own = Some(("kube-system", "stnh-abcde"));
        let cases: &[(&str, &str, Selection)] = &[
            (
                "replicaset pod",
                r#"{"metadata":{"name":"web-1","namespace":"shop","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","controller":true}]},"status":{"phase":"Running"}}"#,
                Selection::Evict,
            ),
            (
                "daemonset pod",
                r#"{"metadata":{"name":"fluentd-x","namespace":"logging","ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"fluentd","controller":true}]},"status":{"phase":"Running"}}"#,
                Selection::Skip("DaemonSet-managed"),
            ),
            (
                "finished daemonset pod",
                r#"{"metadata":{"name":"fluentd-y","namespace":"logging","ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"fluentd","controller":true}]},"status":{"phase":"Failed"}}"#,
                Selection::Evict,
            ),
            (
                "daemonset owner that is not the controller",
                r#"{"metadata":{"name":"a","ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"d","controller":false}]}}"#,
                Selection::Evict,
            ),
            (
                "custom DaemonSet kind of another group",
                r#"{"metadata":{"name":"a","ownerReferences":[{"apiVersion":"example.com/v1","kind":"DaemonSet","name":"d","controller":true}]}}"#,
                Selection::Evict,
            ),
            (
                "mirror pod",
                r#"{"metadata":{"name":"kube-proxy-n","namespace":"kube-system","annotations":{"kubernetes.io/config.mirror":"h"},"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n","controller":true}]}}"#,
                Selection::Skip("mirror pod of a static pod"),
            ),
            (
                "own pod",
                r#"{"metadata":{"name":"stnh-abcde","namespace":"kube-system","ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"stnh","controller":true}]}}"#,
                Selection::Skip("the handler's own pod"),
            ),
            (
                "same name, other namespace",
                r#"{"metadata":{"name":"stnh-abcde","namespace":"default"}}"#,
                Selection::Evict,
            ),
            (
                "emptyDir pod",
                r#"{"metadata":{"name":"cache","namespace":"shop","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"c","controller":true}]},"spec":{"volumes":[{"name":"d","emptyDir":{}}]}}"#,
                Selection::Evict,
            ),
            (
                "unmanaged pod",
                r#"{"metadata":{"name":"debug","namespace":"default"},"status":{"phase":"Running"}}"#,
                Selection::Evict,
            ),
            (
                "succeeded job pod",
                r#"{"metadata":{"name":"job-1","ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"job","controller":true}]},"status":{"phase":"Succeeded"}}"#,
                Selection::Evict,
            ),
            (
                "terminating pod",
                r#"{"metadata":{"name":"old","deletionTimestamp":"2024-05-01T10:00:00Z"}}"#,
                Selection::Wait,
            ),
            (
                "terminating daemonset pod",
                r#"{"metadata":{"name":"ds","deletionTimestamp":"2024-05-01T10:00:00Z","ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"d","controller":true}]}}"#,
                Selection::Skip("DaemonSet-managed"),
            ),
        ];
        for (what, json, want) in cases {
            assert_eq!(select(&pod(json), own), *want, "{what}");
        }
    }

    #[test]
    fn budget_arithmetic() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let s = Duration::from_secs;
        // AWS: 120 s notice, 20 s reserve, 5 s report margin.
        let b = Budget::new(wall + s(120), s(20), None, now, wall);
        assert_eq!(
            (b.deadline - now, b.report_at - now, b.force_at - now),
            (s(120), s(115), s(100))
        );
        assert!(!b.emergency && b.passed_by.is_none());
        let cases: &[(i64, u64, i64)] = &[
            // own grace, seconds after notice, grace (evictions and deletes alike)
            (30, 0, 30),
            (300, 0, 115),
            (300, 90, 25),
            (30, 85, 30),
            (30, 86, 29),
            (300, 100, 15),
            (300, 110, 5),
            (300, 114, 1),
            (300, 119, 1),
            (300, 125, 1),
            (0, 0, 1),
        ];
        for (own, after, want) in cases {
            assert_eq!(
                b.grace(*own, now + s(*after)),
                *want,
                "own {own} after {after}"
            );
        }
        // GRACE_PERIOD caps everything.
        let capped = Budget::new(wall + s(120), s(20), Some(15), now, wall);
        assert_eq!(
            (capped.grace(300, now), capped.grace(300, now + s(100))),
            (15, 15)
        );
        // A 30 s window (GCP): a 3 s margin; a reserve longer than the window forces at once.
        let short = Budget::new(wall + s(30), s(40), None, now, wall);
        assert_eq!((short.report_at - now, short.force_at), (s(27), now));
        // DRAIN_RESERVE=0: budgets are waited for until the report time, not past it.
        let zero = Budget::new(wall + s(120), s(0), None, now, wall);
        assert_eq!(zero.force_at, zero.report_at);
    }

    #[test]
    fn budgets_get_a_sixth_of_short_windows_and_all_but_the_reserve_of_long_ones() {
        let s = Duration::from_secs;
        let r = s(20);
        // (window, seconds budgets are waited for)
        let cases: &[(u64, f64)] = &[
            (12, 0.0),
            (30, 5.0),
            (45, 7.5),
            (60, 10.0),
            (90, 55.0),
            (120, 100.0),
            (300, 280.0),
        ];
        for (w, want) in cases {
            let got = budget_time(s(*w), r).as_secs_f64();
            assert!(
                (got - want).abs() < 0.01,
                "window {w}: {got} s, want {want} s"
            );
        }
        // Never more than W − R; a reserve longer than the window forces at once.
        assert_eq!(budget_time(s(30), s(40)), Duration::ZERO);
        assert_eq!(budget_time(s(90), s(85)), s(5));
        // Monotonic in the window for a given reserve, from 10 s to 10 min, every 100 ms.
        for reserve in [0, 5, 20, 60] {
            let mut last = Duration::ZERO;
            for tenths in 100..6000u64 {
                let b = budget_time(Duration::from_millis(tenths * 100), s(reserve));
                assert!(
                    b >= last,
                    "reserve {reserve}: b({tenths}00 ms) = {b:?} < {last:?}"
                );
                assert!(b <= Duration::from_millis(tenths * 100).saturating_sub(s(reserve)));
                last = b;
            }
        }
        // In a Budget: a 30 s preemption forces at 5 s; an AWS notice at 100 s.
        let (now, wall) = (Instant::now(), SystemTime::now());
        let gcp = Budget::new(wall + s(30), r, None, now, wall);
        assert_eq!(gcp.force_at - now, s(5));
        let aws = Budget::new(wall + s(120), r, None, now, wall);
        assert_eq!(aws.force_at - now, s(100));
    }

    #[test]
    fn a_control_tightens_and_stops_a_running_drain() {
        let s = Duration::from_secs;
        let c = Control::new(None, false, "aws-rebalance/x", s(20), None);
        let open = c.budget();
        assert!(
            open.report_at - Instant::now() > s(3600),
            "no deadline: open"
        );
        assert!(!c.force());
        let deadline = SystemTime::now() + s(120);
        c.update(Some(deadline), true, "aws-spot/terminate/y");
        let b = c.budget();
        assert!(c.force() && c.primary() == "aws-spot/terminate/y");
        assert!(b.report_at - Instant::now() <= s(115), "{b:?}");
        // The same deadline again keeps the budget (measured from when it was first seen).
        c.update(Some(deadline), true, "aws-spot/terminate/y");
        assert_eq!(c.budget(), b);
        assert!(!c.is_cancelled());
        c.cancel();
        assert!(c.is_cancelled());
    }

    #[test]
    fn a_past_or_nearly_past_deadline_is_an_emergency() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let s = Duration::from_secs;
        for (deadline, passed) in [
            (wall - s(5), Some(s(5))),
            (wall - s(3600), Some(s(3600))),
            (wall, Some(s(0))),
            (wall + s(4), None),
            (wall + s(9), None),
        ] {
            let b = Budget::new(deadline, s(20), None, now, wall);
            assert!(b.emergency, "{deadline:?}");
            assert_eq!(b.passed_by, passed);
            assert_eq!(b.deadline - now, EMERGENCY_WINDOW, "acts within the window");
            assert_eq!(b.report_at - now, s(9), "a 1 s report margin");
            assert_eq!(b.force_at, now, "budgets are not waited for");
            assert_eq!(b.grace(30, now), 9, "every pod gets what the window allows");
            assert_eq!(b.seconds_left(now), 10);
        }
        let b = Budget::new(wall + s(10), s(20), None, now, wall);
        assert!(!b.emergency && b.passed_by.is_none());
    }

    #[test]
    fn report_margin_scales_with_the_window() {
        let s = Duration::from_secs;
        for (window, margin) in [
            (s(120), s(5)),
            (s(50), s(5)),
            (s(35), Duration::from_millis(3500)),
            (s(30), s(3)),
            (s(10), s(1)),
            (s(2), s(1)),
        ] {
            assert_eq!(report_margin(window), margin, "{window:?}");
        }
    }

    /// The grace rule over the whole window, every 100 ms from the notice to past the
    /// deadline: the stop time `now + grace` never moves earlier (exactly for the rule,
    /// within the whole-second rounding for what is sent), never lies past `report_at`
    /// except for the 1 s floor, and is `now + own` whenever the pod's own grace fits.
    #[test]
    fn grace_invariants_over_the_whole_window() {
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let step = Duration::from_millis(100);
        for window_s in [120u64, 30, 10, 4] {
            for reserve_s in [0u64, 20] {
                for cap in [None, Some(15u32), Some(45)] {
                    let b = Budget::new(
                        wall + Duration::from_secs(window_s),
                        Duration::from_secs(reserve_s),
                        cap,
                        t0,
                        wall,
                    );
                    for own in [1i64, 5, 30, 35, 60, 300, 3600] {
                        let what = format!(
                            "window {window_s}s reserve {reserve_s}s cap {cap:?} own {own}s"
                        );
                        let (mut prev_exact, mut prev_sent): (Option<f64>, Option<f64>) =
                            (None, None);
                        let mut now = t0;
                        while now <= b.deadline + Duration::from_secs(2) {
                            let at = (now - t0).as_secs_f64();
                            let left = (b.report_at.saturating_duration_since(now)).as_secs_f64();
                            let limit = cap.map_or(f64::MAX, f64::from);
                            // The rule before rounding.
                            let exact = at + (own as f64).min(limit).min(left).max(1.0);
                            let grace = b.grace(own, now);
                            let sent = at + grace as f64;
                            if let Some(p) = prev_exact {
                                assert!(exact >= p - 1e-9, "{what}: at {at:.1}s the rule's stop moved earlier: {p} → {exact}");
                            }
                            if let Some(p) = prev_sent {
                                assert!(sent > p - 1.0, "{what}: at {at:.1}s the stop moved a second or more earlier: {p} → {sent}");
                            }
                            let report_at = (b.report_at - t0).as_secs_f64();
                            assert!(
                                sent <= report_at + 1e-9 || (grace == 1 && left < 1.0),
                                "{what}: at {at:.1}s grace {grace} stops at {sent}, past the report time {report_at}"
                            );
                            let fits =
                                cap.is_none_or(|c| own <= i64::from(c)) && (own as f64) <= left;
                            if fits && own >= 1 {
                                assert_eq!(
                                    grace, own,
                                    "{what}: at {at:.1}s the pod's own grace fits"
                                );
                            }
                            assert!(grace >= 1 && grace <= own.max(1));
                            prev_exact = Some(exact);
                            prev_sent = Some(sent);
                            now += step;
                        }
                    }
                }
            }
        }
    }

    /// The critical tier's start over AWS's 120 s and GCP's 30 s deadlines (reserve 20 s):
    /// `min(gone, max(start, report_at − need − 1 s))`, and a pod asked then gets its whole
    /// own grace whenever it fits at all.
    #[test]
    fn critical_tier_start_table() {
        let s = Duration::from_secs;
        let (t0, wall) = (Instant::now(), SystemTime::now());
        // (deadline s, GRACE_PERIOD, critical pods' graces, ordinary gone after s, start after s)
        let cases: &[(u64, Option<u32>, &[i64], Option<u64>, u64)] = &[
            // 120 s: report at 115 s.
            (120, None, &[30], None, 84),
            (120, None, &[30], Some(10), 10),
            (120, None, &[30], Some(84), 84),
            (120, None, &[30], Some(100), 84),
            (120, None, &[30, 10, 60], None, 54),
            (120, None, &[300], None, 0),
            (120, Some(15), &[300], None, 99),
            (120, Some(15), &[300], Some(3), 3),
            (120, None, &[0], None, 113),
            (120, None, &[], None, 113),
            (120, None, &[114], None, 0),
            (120, None, &[113], None, 1),
            // 30 s: report at 27 s.
            (30, None, &[30], None, 0),
            (30, None, &[30], Some(5), 0),
            (30, None, &[10], None, 16),
            (30, None, &[10], Some(4), 4),
            (30, None, &[5], None, 21),
            (30, Some(5), &[30], None, 21),
            (30, None, &[26], None, 0),
            (30, None, &[25], None, 1),
        ];
        for (deadline, cap, graces, gone, want) in cases {
            let what = format!("deadline {deadline}s cap {cap:?} graces {graces:?} gone {gone:?}");
            let b = Budget::new(wall + s(*deadline), s(20), *cap, t0, wall);
            let need = tier_need(graces.iter().copied(), *cap);
            let at = critical_tier_start(t0, b.report_at, need, gone.map(|g| t0 + s(g)));
            assert_eq!(at - t0, s(*want), "{what}");
            // Asked at the start, or up to a second later, every pod whose grace fits before
            // the report time gets all of it.
            for late_ms in [0u64, 999] {
                let now = at + Duration::from_millis(late_ms);
                for g in graces.iter() {
                    let own = cap.map_or(*g, |c| (*g).min(i64::from(c)));
                    let fits = t0 + s(u64::try_from(own).unwrap_or(0) + 1) <= b.report_at;
                    if fits {
                        assert_eq!(b.grace(*g, now), own.max(1), "{what} +{late_ms}ms");
                    }
                }
            }
        }
        // The emergency window (report at 9 s): grace 5 s starts by 3 s.
        let e = Budget::new(wall + s(2), s(20), None, t0, wall);
        assert_eq!(critical_tier_start(t0, e.report_at, 5, None) - t0, s(3));
    }

    #[test]
    fn critical_pods() {
        let cases: &[(&str, bool)] = &[
            (r#"{"metadata":{"name":"a"}}"#, false),
            (
                r#"{"metadata":{"name":"a"},"spec":{"priorityClassName":"system-cluster-critical"}}"#,
                true,
            ),
            (
                r#"{"metadata":{"name":"a"},"spec":{"priorityClassName":"system-node-critical","priority":0}}"#,
                true,
            ),
            (
                r#"{"metadata":{"name":"a"},"spec":{"priorityClassName":"high","priority":1000000}}"#,
                false,
            ),
            (
                r#"{"metadata":{"name":"a"},"spec":{"priority":2000000000}}"#,
                true,
            ),
            (
                r#"{"metadata":{"name":"a"},"spec":{"priority":1999999999}}"#,
                false,
            ),
        ];
        for (json, want) in cases {
            assert_eq!(
                is_critical(&pod(json), DEFAULT_CRITICAL_PRIORITY),
                *want,
                "{json}"
            );
        }
        assert!(is_critical(
            &pod(r#"{"metadata":{"name":"a"},"spec":{"priority":1000}}"#),
            1000
        ));
    }

    #[test]
    fn the_pacer_backs_off_on_load_shedding_and_recovers_one_answer_at_a_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Pacer::new(32);
        // A slow start: four at first, one more per answer (twice as many per round trip).
        assert_eq!(p.wait(t0, 0), None);
        assert_eq!(p.wait(t0, 3), None);
        assert_eq!(p.wait(t0, 4), Some(t0), "at the limit: wait for one to end");
        for _ in 0..4 {
            p.answered();
        }
        assert_eq!(p.limit, 8);
        // No 429 ever: soon every worker runs, nothing waits.
        for _ in 0..100 {
            p.answered();
        }
        assert_eq!(p.wait(t0, 31), None);
        assert_eq!(
            p.wait(t0, 32),
            Some(t0),
            "at the limit: wait for one to end"
        );
        assert_eq!(p.limit, 32, "never above the worker count");
        assert_eq!(Pacer::new(2).limit, 2, "never above the worker count");
        // A 429 with Retry-After: 1: everyone holds for it, and half as many run afterwards.
        p.overloaded(t0, s);
        assert_eq!((p.limit, p.hold_until), (16, Some(t0 + s)));
        assert_eq!(p.wait(t0 + s / 2, 0), Some(t0 + s));
        assert_eq!(p.wait(t0 + s, 15), None);
        assert_eq!(p.wait(t0 + s, 16), Some(t0 + s));
        // Several 429s of the same round: the limit keeps halving down to one, the hold is
        // the latest, and it does not grow.
        for _ in 0..10 {
            p.overloaded(t0 + s / 4, s / 2);
        }
        assert_eq!((p.limit, p.hold_until), (1, Some(t0 + s)));
        // Shed again after the hold: twice the Retry-After, then 4 and 8 times, no more.
        p.overloaded(t0 + s, s);
        assert_eq!(p.hold_until, Some(t0 + s * 3));
        p.overloaded(t0 + s * 3, s);
        assert_eq!(p.hold_until, Some(t0 + s * 7));
        p.overloaded(t0 + s * 7, s);
        assert_eq!(p.hold_until, Some(t0 + s * 15));
        p.overloaded(t0 + s * 15, s);
        assert_eq!(p.hold_until, Some(t0 + s * 23));
        assert_eq!(p.wait(t0 + s * 23, 0), None);
        assert_eq!(p.wait(t0 + s * 23, 1), Some(t0 + s * 23));
        // One answer ends the streak: the next shed holds for the plain Retry-After.
        p.answered();
        p.overloaded(t0 + s * 30, s);
        assert_eq!(p.hold_until, Some(t0 + s * 31));
        p.limit = 1;
        // Answers bring the workers back, one each.
        for n in 2..=32 {
            p.answered();
            assert_eq!(p.limit, n);
        }
        assert_eq!(Pacer::new(0).limit, 1);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for attempt in 0..200 {
            let j = jitter(
                Duration::from_secs(5),
                &format!("ns/pod-{attempt}"),
                attempt,
            );
            assert!(
                j >= Duration::from_secs(4) && j <= Duration::from_secs(6),
                "{j:?}"
            );
            let later = no_sooner(Duration::from_secs(5), &format!("node-{attempt}"), attempt);
            assert!(
                later >= Duration::from_secs(5) && later <= Duration::from_secs(6),
                "{later:?}"
            );
        }
    }

    #[test]
    fn retry_never_passes_the_deadline() {
        let now = Instant::now();
        let b = Budget {
            deadline: now + Duration::from_secs(12),
            report_at: now + Duration::from_secs(10),
            force_at: now,
            grace_cap: None,
            emergency: false,
            passed_by: None,
        };
        assert_eq!(
            retry(now + Duration::from_secs(5), &b, "a/b", "x"),
            Step::RetryAt(now + Duration::from_secs(5))
        );
        assert_eq!(
            retry(now + Duration::from_secs(10), &b, "a/b", "x"),
            Step::Done(Fate::Failed("x".to_string()))
        );
    }

    #[test]
    fn report_summary_outcome_and_phase() {
        let r = Report {
            evicted: 17,
            forced: 3,
            skipped: 4,
            seconds: 31.25,
            cordoned: true,
            listed: true,
            ..Report::default()
        };
        assert_eq!(
            r.summary(),
            "evicted=17 forced=3 failed=0 already_gone=0 skipped=4 still_present=0 seconds=31.2"
        );
        assert_eq!((r.outcome(), r.phase()), (Outcome::Drained, "drained"));
        let left = Report {
            evicted: 2,
            still_present: 7,
            still_present_pods: (1..=7).map(|i| format!("shop/web-{i}")).collect(),
            cordoned: false,
            listed: true,
            passed_by: Some(Duration::from_secs(12)),
            emergency: true,
            ..Report::default()
        };
        assert_eq!(
            left.summary(),
            "evicted=2 forced=0 failed=0 already_gone=0 skipped=0 still_present=7 seconds=0.0 still_on_node=shop/web-1,shop/web-2,shop/web-3,shop/web-4,shop/web-5,… cordoned=false deadline_passed_s=12"
        );
        assert_eq!(
            (left.outcome(), left.phase()),
            (Outcome::PodsLeft, "incomplete")
        );
        let unlisted = Report {
            cordoned: true,
            seconds: 9.0,
            ..Report::default()
        };
        assert_eq!(
            unlisted.summary(),
            "could not list pods; node not drained seconds=9.0"
        );
        assert_eq!(
            (unlisted.outcome(), unlisted.phase()),
            (Outcome::NotDrained, "failed")
        );
        assert_eq!(some_names(&["a".into(), "b".into()], ", "), "a, b");
    }
}
