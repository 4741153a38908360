//! Cordon, select, evict, wait: the drain, always inside the notice's deadline.
//!
//! Deadline arithmetic. `deadline` is when the cloud takes the VM; `force_at = deadline −
//! reserve`. Until `force_at` we evict through the Eviction API, so PodDisruptionBudgets are
//! respected: a pod a budget blocks is retried every ~5 s (with jitter). Each eviction asks for
//! `grace = min(pod's own, GRACE_PERIOD, force_at − now)`, so pods evicted in time also stop
//! in time. At `force_at`, a pod still not evicted is deleted directly with the grace that is
//! left, `min(pod's own, GRACE_PERIOD, deadline − now)`: the VM dies anyway, and a graceful stop
//! beats a hard kill (`FORCE_DELETE=false` turns that off). Past `deadline` nothing is tried.
//!
//! Pod selection is `kubectl drain --force --ignore-daemonsets --delete-emptydir-data`:
//! DaemonSet pods and mirror pods stay, as does the handler's own pod; emptyDir and unmanaged
//! pods go. Pods already terminating are not evicted again, only waited for.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::kube::model::Pod;
use crate::kube::{Client, EvictionVersion};
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
/// Prefix of our Node annotations.
pub const ANNOTATION_PREFIX: &str = "spot-termination-notice-handler/";

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
    if own_pod == Some((pod.namespace(), pod.metadata.name.as_str())) {
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

/// The time budget of one drain. Pure arithmetic over `Instant`s.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub deadline: Instant,
    pub force_at: Instant,
    pub grace_cap: Option<u32>,
    /// Pods still blocked at `force_at` may be deleted directly.
    pub force: bool,
}

impl Budget {
    /// `deadline` as an `Instant`, from the notice's wall-clock time.
    pub fn new(
        deadline: SystemTime,
        reserve: Duration,
        grace_cap: Option<u32>,
        now: Instant,
        wall_now: SystemTime,
    ) -> Budget {
        let left = deadline.duration_since(wall_now).unwrap_or_default();
        let deadline = now + left;
        let force_at = deadline.checked_sub(reserve).unwrap_or(now).max(now);
        Budget {
            deadline,
            force_at,
            grace_cap,
            force: true,
        }
    }

    fn cap(&self, own: i64, window: Duration) -> i64 {
        let mut g = own.min(window.as_secs() as i64);
        if let Some(c) = self.grace_cap {
            g = g.min(i64::from(c));
        }
        // 0 would mean "kill now" (SIGKILL without SIGTERM); one second is the least we ask.
        g.max(1)
    }

    /// Grace for an eviction at `now`: the pod must be gone by `force_at` (or, past it, by the deadline).
    pub fn eviction_grace(&self, own: i64, now: Instant) -> i64 {
        let window = if now < self.force_at {
            self.force_at - now
        } else {
            self.deadline.saturating_duration_since(now)
        };
        self.cap(own, window)
    }

    /// Grace for a forced delete at `now`: what is left until the deadline.
    pub fn delete_grace(&self, own: i64, now: Instant) -> i64 {
        self.cap(own, self.deadline.saturating_duration_since(now))
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
    /// Deleted directly at `deadline − reserve`.
    Forced,
    /// Gone (404) or replaced (new UID) before we got to it.
    AlreadyGone,
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
}

impl Target {
    fn from_pod(p: &Pod) -> Target {
        Target {
            namespace: p.namespace().to_string(),
            name: p.metadata.name.clone(),
            uid: p.uid().to_string(),
            grace: p.grace_seconds(),
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
    pub forced: usize,
    pub already_gone: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Evicted or forced pods still present when the wait ended (at the deadline).
    pub still_present: usize,
    pub seconds: f64,
    pub failed_pods: Vec<String>,
}

impl Report {
    /// Every pod went: none failed, none still on the node.
    pub fn is_complete(&self) -> bool {
        self.failed == 0 && self.still_present == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "evicted={} forced={} failed={} already_gone={} skipped={} still_present={} seconds={:.1}",
            self.evicted, self.forced, self.failed, self.already_gone, self.skipped, self.still_present, self.seconds
        )
    }
}

/// What the drain is asked to do, updatable while it runs (a stronger notice can tighten the
/// deadline or allow forced deletes; undoing the notice cancels it).
pub struct Control {
    order: Mutex<Order>,
    cancelled: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone)]
struct Order {
    deadline: Option<SystemTime>,
    force: bool,
    primary: String,
}

impl Control {
    pub fn new(deadline: Option<SystemTime>, force: bool, primary: &str) -> Control {
        Control {
            order: Mutex::new(Order {
                deadline,
                force,
                primary: primary.to_string(),
            }),
            cancelled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn update(&self, deadline: Option<SystemTime>, force: bool, primary: &str) {
        let mut o = self.lock();
        o.deadline = deadline;
        o.force = force;
        o.primary = primary.to_string();
    }

    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The governing notice's id.
    pub fn primary(&self) -> String {
        self.lock().primary.clone()
    }
}

/// A drain without a deadline (a rebalance drain) retries for at most this long.
const NO_DEADLINE_LIMIT: Duration = Duration::from_secs(3600);

/// A callback told each pod's fate.
pub type OnFate<'a> = Box<dyn Fn(&Target, &Fate) + Send + Sync + 'a>;

/// Settings of a drain.
pub struct Drainer<'a> {
    pub client: &'a Client,
    pub node: String,
    pub own_pod: Option<(String, String)>,
    pub version: EvictionVersion,
    pub reserve: Duration,
    pub grace_cap: Option<u32>,
    /// Pause between the load-balancer label and the first eviction, cut to what the deadline
    /// allows.
    pub eviction_delay: Duration,
    /// Told each pod's fate as soon as it is known (for its Event); must not block.
    pub on_fate: Option<OnFate<'a>>,
}

/// The notice a drain serves, for its log lines.
struct Notice {
    id: String,
    deadline: SystemTime,
}

impl Drainer<'_> {
    /// Drains the node (the cordon is already on: `node`).
    pub fn run(&self, control: &Control) -> Report {
        let started = Instant::now();
        let order = control.lock().clone();
        let force_delete = order.force;
        let deadline = order
            .deadline
            .unwrap_or_else(|| SystemTime::now() + NO_DEADLINE_LIMIT);
        let mut budget = Budget::new(
            deadline,
            self.reserve,
            self.grace_cap,
            started,
            SystemTime::now(),
        );
        budget.force = force_delete;
        let notice = Notice {
            id: order.primary.clone(),
            deadline,
        };
        info!(
            "draining node",
            node = self.node,
            notice = notice.id,
            deadline = format_rfc3339(notice.deadline),
            seconds_left = budget.seconds_left(started),
            force_in_s = budget.force_at.saturating_duration_since(started).as_secs(),
            eviction_api = self.version.api_version()
        );

        let Some(pods) = self.list_pods(&budget) else {
            error!("gave up listing pods at the deadline", node = self.node);
            return Report {
                seconds: started.elapsed().as_secs_f64(),
                ..Report::default()
            };
        };
        let own = self
            .own_pod
            .as_ref()
            .map(|(ns, n)| (ns.as_str(), n.as_str()));
        let (mut targets, mut waiting, mut skipped) = (Vec::new(), Vec::new(), 0);
        for p in &pods {
            match select(p, own) {
                Selection::Evict => targets.push(Target::from_pod(p)),
                Selection::Wait => {
                    info!(
                        "pod already terminating; waiting for it",
                        pod = format!("{}/{}", p.namespace(), p.metadata.name)
                    );
                    waiting.push(p.uid().to_string());
                }
                Selection::Skip(why) => {
                    info!(
                        "skipping pod",
                        pod = format!("{}/{}", p.namespace(), p.metadata.name),
                        reason = why
                    );
                    skipped += 1;
                }
            }
        }
        info!(
            "evicting pods",
            node = self.node,
            pods = targets.len(),
            terminating = waiting.len(),
            skipped = skipped
        );

        let fates = self.evict_all(&targets, &budget);
        let mut report = Report {
            skipped,
            ..Report::default()
        };
        let mut wait_for: HashSet<String> = waiting.into_iter().collect();
        for (t, fate) in targets.iter().zip(&fates) {
            match fate {
                Fate::Evicted => report.evicted += 1,
                Fate::Forced => report.forced += 1,
                Fate::AlreadyGone => report.already_gone += 1,
                Fate::Failed(_) => {
                    report.failed += 1;
                    report.failed_pods.push(t.key());
                }
            }
            if matches!(fate, Fate::Evicted | Fate::Forced) {
                wait_for.insert(t.uid.clone());
            }
        }
        report.still_present = self.wait_gone(wait_for, &budget);
        report.seconds = started.elapsed().as_secs_f64();
        report
    }

    /// Lists the node's pods, retrying every second until the deadline.
    fn list_pods(&self, budget: &Budget) -> Option<Vec<Pod>> {
        loop {
            match self
                .client
                .list_pods_on_node(&self.node, Some(budget.deadline))
            {
                Ok(p) => return Some(p),
                Err(e) => warn!("listing pods failed; retrying", node = self.node, error = e),
            }
            let next = Instant::now() + ERROR_RETRY_INTERVAL;
            if next >= budget.deadline {
                return None;
            }
            sleep_until(next, budget.deadline);
        }
    }

    /// Evicts every target concurrently; returns each target's fate, in order.
    fn evict_all(&self, targets: &[Target], budget: &Budget) -> Vec<Fate> {
        struct Task {
            idx: usize,
            due: Instant,
            attempts: u32,
        }
        struct Queue {
            pending: Vec<Task>,
            in_flight: usize,
            fates: Vec<Option<Fate>>,
        }
        let now = Instant::now();
        let queue = Mutex::new(Queue {
            pending: (0..targets.len())
                .map(|idx| Task {
                    idx,
                    due: now,
                    attempts: 0,
                })
                .collect(),
            in_flight: 0,
            fates: vec![None; targets.len()],
        });
        let wake = Condvar::new();
        let workers = targets.len().clamp(1, MAX_WORKERS);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    loop {
                        let Some(pos) = (0..q.pending.len()).min_by_key(|&i| q.pending[i].due)
                        else {
                            if q.in_flight == 0 {
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
                        let mut task = q.pending.swap_remove(pos);
                        q.in_flight += 1;
                        drop(q);
                        let step = self.attempt(&targets[task.idx], task.attempts, budget);
                        if let (Step::Done(fate), Some(tell)) = (&step, &self.on_fate) {
                            tell(&targets[task.idx], fate);
                        }
                        q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        q.in_flight -= 1;
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
        });
        let fates = queue.into_inner().unwrap_or_else(|p| p.into_inner()).fates;
        fates
            .into_iter()
            .map(|f| f.unwrap_or_else(|| Fate::Failed("not attempted".to_string())))
            .collect()
    }

    /// One attempt for one pod: evict, or delete once past `force_at`.
    fn attempt(&self, t: &Target, attempts: u32, budget: &Budget) -> Step {
        let now = Instant::now();
        let pod = t.key();
        if now >= budget.deadline {
            error!(
                "gave up on pod at the deadline",
                pod = pod,
                attempts = attempts
            );
            return Step::Done(Fate::Failed("deadline reached".to_string()));
        }
        if attempts > 0 && now >= budget.force_at && budget.force {
            let grace = budget.delete_grace(t.grace, now);
            return match self.client.delete_pod(
                &t.namespace,
                &t.name,
                &t.uid,
                grace,
                Some(budget.deadline),
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
                    retry(now + ERROR_RETRY_INTERVAL, budget, &pod, &e.to_string())
                }
            };
        }
        let grace = budget.eviction_grace(t.grace, now);
        match self.client.evict(
            &t.namespace,
            &t.name,
            grace,
            self.version,
            Some(budget.deadline),
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
            Err(e) => {
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
                let mut next = now + jitter(delay, &pod, attempts);
                if budget.force {
                    // Never wait past force_at; once past it, delete right away.
                    next = next.min(budget.force_at.max(now));
                }
                let why = if e.is_budget_blocked() || e.is_multiple_budgets() {
                    "blocked by disruption budget"
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

    /// Waits until no pod with one of `uids` is on the node (a same-name replacement has a new
    /// UID, so it counts as gone), with one LIST per second, until the deadline. Returns how
    /// many remain.
    fn wait_gone(&self, mut uids: HashSet<String>, budget: &Budget) -> usize {
        let total = uids.len();
        while !uids.is_empty() {
            let now = Instant::now();
            if now >= budget.deadline {
                warn!(
                    "deadline reached while waiting for pods to stop",
                    remaining = uids.len()
                );
                break;
            }
            match self
                .client
                .list_pods_on_node(&self.node, Some(budget.deadline))
            {
                Ok(pods) => {
                    let present: HashSet<&str> = pods.iter().map(Pod::uid).collect();
                    uids.retain(|u| present.contains(u.as_str()));
                }
                Err(e) => warn!("listing pods failed while waiting; retrying", error = e),
            }
            if uids.is_empty() {
                break;
            }
            sleep_until(now + WAIT_POLL_INTERVAL, budget.deadline);
        }
        info!(
            "pods gone",
            gone = total - uids.len(),
            remaining = uids.len()
        );
        uids.len()
    }
}

/// Retry at `next` unless that is past the deadline.
fn retry(next: Instant, budget: &Budget, pod: &str, why: &str) -> Step {
    if next >= budget.deadline {
        error!(
            "gave up on pod at the deadline",
            pod = pod,
            last_error = why
        );
        Step::Done(Fate::Failed(why.to_string()))
    } else {
        Step::RetryAt(next)
    }
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
        // AWS: 120 s notice, 20 s reserve.
        let b = Budget::new(wall + s(120), s(20), None, now, wall);
        assert_eq!(b.force_at - now, s(100));
        let cases: &[(i64, u64, i64, i64)] = &[
            // own grace, seconds after notice, eviction grace, delete grace
            (30, 0, 30, 30),
            (300, 0, 100, 120),
            (300, 90, 10, 30),
            (300, 100, 20, 20),
            (300, 110, 10, 10),
            (300, 119, 1, 1),
            (300, 125, 1, 1),
            (0, 0, 1, 1),
        ];
        for (own, after, evict, delete) in cases {
            let at = now + s(*after);
            assert_eq!(
                (b.eviction_grace(*own, at), b.delete_grace(*own, at)),
                (*evict, *delete),
                "own {own} after {after}"
            );
        }
        // GRACE_PERIOD caps everything.
        let capped = Budget::new(wall + s(120), s(20), Some(15), now, wall);
        assert_eq!(
            (
                capped.eviction_grace(300, now),
                capped.delete_grace(300, now + s(100))
            ),
            (15, 15)
        );
        // A reserve longer than the notice: force at once.
        let short = Budget::new(wall + s(10), s(20), None, now, wall);
        assert_eq!(short.force_at, now);
        // A deadline already past.
        let past = Budget::new(wall - s(5), s(20), None, now, wall);
        assert_eq!(
            (past.deadline, past.force_at, past.seconds_left(now)),
            (now, now, 0)
        );
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
        }
    }

    #[test]
    fn retry_never_passes_the_deadline() {
        let now = Instant::now();
        let b = Budget {
            deadline: now + Duration::from_secs(10),
            force_at: now,
            grace_cap: None,
            force: true,
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
    fn report_summary() {
        let r = Report {
            evicted: 17,
            forced: 3,
            skipped: 4,
            seconds: 31.25,
            ..Report::default()
        };
        assert_eq!(
            r.summary(),
            "evicted=17 forced=3 failed=0 already_gone=0 skipped=4 still_present=0 seconds=31.2"
        );
    }
}
