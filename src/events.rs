//! What Kubernetes shows of the handler: Events about the Node and its Pods, and the Node
//! condition `TerminationNotice`, written by one background worker.
//!
//! Events are `events.k8s.io/v1` (core `v1` when start-up discovery says the group is absent,
//! or when the group answers 404), `reportingController` [`CONTROLLER`], `reportingInstance`
//! the node. An Event repeated (same object, reason and note) becomes a series: one PATCH of
//! `series` (core v1: `count`/`lastTimestamp`) instead of a new object. The queue is bounded
//! ([`QUEUE`]): an Event that finds it full is not sent but counted into the node's next Event
//! (one warning per overflow); nothing here can delay a cordon or an eviction, since callers
//! only ever `try_send`.
//!
//! The condition is state, not a message: the loop says what it should be
//! ([`Recorder::set_condition`]), the worker writes it with a strategic-merge PATCH of
//! `nodes/status` (merged by `type`, so the kubelet's conditions stay), and a failed write is
//! tried again with backoff (1 s doubling to 60 s) until it holds. `lastTransitionTime` is sent
//! only when the status flips, so the server keeps the time of the last flip. A restarted
//! handler takes the condition its notice records imply (on the Node, like the records) as
//! written, so a restart alone writes nothing; the next change writes it again.
//!
//! The cordon goes first: until it has been applied ([`Recorder::hold`] until
//! [`Recorder::release`], at most [`HOLD_LIMIT`]), the workers wait with what they were given,
//! so an Event or the condition never takes the API server seat a cordon needed, nor adds to
//! the load while the server sheds it (hundreds of nodes reclaimed at once share one priority
//! level).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::json::escape;
use crate::kube::Client;
use crate::time::{format_micro_time, format_rfc3339};
use crate::worker::Worker;
use crate::{info, warn};

/// `reportingController` (and core v1's `source.component`).
pub const CONTROLLER: &str = "spot-termination-notice-handler";
/// The Node condition's type.
pub const CONDITION: &str = "TerminationNotice";
/// Events waiting for the worker: a node's pods at the kubelet's default `maxPods` (110), each
/// with its Event, plus the node's own fit while they wait for the cordon ([`HOLD_LIMIT`]).
pub const QUEUE: usize = 128;
/// Attempts per Event request (transport errors, 5xx, 429), 1 s then 2 s apart.
const ATTEMPTS: u32 = 3;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many distinct Events are remembered for series.
const SERIES_MEMORY: usize = 64;
const MAX_NOTE: usize = 1000;
/// The longest Events and condition writes wait for a cordon.
pub const HOLD_LIMIT: Duration = Duration::from_secs(10);
/// Pod Events are folded into the node's next Event while the API server shed an Event this
/// recently (see [`Shared::record`]).
pub const FOLD_AFTER_SHED: Duration = Duration::from_secs(10);

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: &'static str,
    /// Empty for the Node.
    pub namespace: String,
    pub name: String,
    /// The node's name for the Node (as the kubelet and `kubectl describe node` use it).
    pub uid: String,
}

impl Object {
    pub fn node(name: &str) -> Object {
        Object {
            kind: "Node",
            namespace: String::new(),
            name: name.to_string(),
            uid: name.to_string(),
        }
    }

    pub fn pod(namespace: &str, name: &str, uid: &str) -> Object {
        Object {
            kind: "Pod",
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        }
    }

    /// Events about cluster-scoped objects live in `default`, as the kubelet's do.
    fn event_namespace(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    fn to_json(&self) -> String {
        let ns = if self.namespace.is_empty() {
            String::new()
        } else {
            format!(",\"namespace\":{}", escape(&self.namespace))
        };
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"{}\",\"name\":{}{ns},\"uid\":{}}}",
            self.kind,
            escape(&self.name),
            escape(&self.uid)
        )
    }
}

/// One Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub regarding: Object,
    pub reason: &'static str,
    /// What was done (`Notice`, `Cordon`, `Drain`, `Uncordon`, `Evict`, `Delete`).
    pub action: &'static str,
    pub note: String,
    pub warning: bool,
}

/// The condition as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub holds: bool,
    pub reason: String,
    pub message: String,
}

impl Condition {
    /// The condition body for a strategic-merge PATCH of `nodes/status`; the transition time
    /// only when the status changes (else the server keeps the one it has).
    pub fn patch(&self, transition: bool, now: SystemTime) -> String {
        let t = escape(&format_rfc3339(now));
        format!(
            "{{\"status\":{{\"conditions\":[{{\"type\":\"{CONDITION}\",\"status\":\"{}\",\"reason\":{},\"message\":{},\"lastHeartbeatTime\":{t}{}}}]}}}}",
            if self.holds { "True" } else { "False" },
            escape(&self.reason),
            escape(&self.message),
            if transition {
                format!(",\"lastTransitionTime\":{t}")
            } else {
                String::new()
            }
        )
    }
}

#[derive(Default)]
struct ConditionState {
    want: Option<Condition>,
    written: Option<Condition>,
    /// A write failed: the loop asks again from then on (`retry_condition`).
    retry_at: Option<(Instant, Duration)>,
    /// A write is queued or running.
    queued: bool,
}

/// An Event already created, for series.
struct Series {
    key: String,
    namespace: String,
    name: String,
    count: u64,
}

struct Shared {
    client: Arc<Client>,
    node: String,
    /// Events go through core v1.
    core: AtomicBool,
    /// The wanted condition is not written yet (read without the lock: idle steps cost nothing).
    pending: AtomicBool,
    /// Load-shedding answers in a row (see [`Shared::send`]).
    sheds: AtomicU32,
    /// When the API server last shed an Event.
    last_shed: Mutex<Option<Instant>>,
    /// Pod Events folded since the last node Event (while shedding).
    folded: AtomicU64,
    /// Events that found the queue full since the last node Event was queued.
    overflowed: AtomicU64,
    condition: Mutex<ConditionState>,
    /// Only the worker thread uses these.
    series: Mutex<(Vec<Series>, u64)>,
    /// Until when the workers hold off for a cordon being tried (`None`: they do not).
    hold: (Mutex<Option<Instant>>, std::sync::Condvar),
}

/// Ends a node Event's note with how many Events were not recorded, and why.
fn not_recorded(note: &mut String, n: u64, what: &str, why: &str) {
    if n > 0 {
        let s = if n == 1 { "" } else { "s" };
        note.push_str(&format!(" ({n} {what}{s} not recorded{why})"));
    }
}

/// The handle the loop and the drain use; every call returns at once.
pub struct Recorder {
    shared: Arc<Shared>,
    events: bool,
    condition: bool,
    worker: Worker,
    /// Condition writes have their own, so they never wait behind Events.
    condition_worker: Worker,
}

impl Recorder {
    /// `core`: record core v1 Events.
    pub fn new(
        client: Arc<Client>,
        node: &str,
        (events, condition): (bool, bool),
        core: bool,
    ) -> Recorder {
        Recorder {
            shared: Arc::new(Shared {
                client,
                node: node.to_string(),
                core: AtomicBool::new(core),
                pending: AtomicBool::new(false),
                sheds: AtomicU32::new(0),
                last_shed: Mutex::new(None),
                folded: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
                condition: Mutex::new(ConditionState::default()),
                series: Mutex::new((Vec::new(), 0)),
                hold: (Mutex::new(None), std::sync::Condvar::new()),
            }),
            events,
            condition,
            worker: Worker::new("events", QUEUE),
            condition_worker: Worker::new("condition", 1),
        }
    }

    /// An Event about the Node.
    pub fn node_event(
        &self,
        reason: &'static str,
        action: &'static str,
        note: String,
        warning: bool,
    ) {
        self.event(Event {
            regarding: Object::node(&self.shared.node),
            reason,
            action,
            note,
            warning,
        });
    }

    /// Events and condition writes wait from now until [`Recorder::release`], at most
    /// [`HOLD_LIMIT`] from the first of these calls (a cordon that keeps failing holds nothing
    /// after that): the loop is trying a cordon.
    pub fn hold(&self) {
        let mut held = self.shared.hold.0.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            *held = Some(Instant::now() + HOLD_LIMIT);
        }
    }

    /// The node is cordoned (or needs no cordon): what waits goes out.
    pub fn release(&self) {
        let (held, cv) = &self.shared.hold;
        if held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
        {
            cv.notify_all();
        }
    }

    pub fn event(&self, mut e: Event) {
        if !self.events {
            return;
        }
        let reason = e.reason;
        // A node's Event carries the count of the Events that found the queue full before it.
        let lost = if e.regarding.kind == "Pod" {
            0
        } else {
            self.shared.overflowed.swap(0, Ordering::Relaxed)
        };
        not_recorded(&mut e.note, lost, "Event", ": the Event queue was full");
        let shared = self.shared.clone();
        if self.worker.submit(Box::new(move || {
            shared.wait_for_cordon();
            shared.record(e)
        })) {
            if lost > 0 {
                info!(
                    "Events not recorded, counted into the node's Event",
                    reason = reason,
                    not_recorded = lost
                );
            }
        } else if self
            .shared
            .overflowed
            .fetch_add(1 + lost, Ordering::Relaxed)
            == 0
        {
            warn!(
                "Event queue full; Events are counted into the node's next Event",
                reason = reason
            );
        }
    }

    /// What the condition should be: `Some((reason, message))` while a notice holds the node;
    /// `None` once none does (False, if it was ever True; else the node gets no condition).
    pub fn set_condition(&self, holding: Option<(&str, String)>) {
        if !self.condition {
            return;
        }
        let mut st = self.shared.lock();
        let was_true = st
            .want
            .as_ref()
            .or(st.written.as_ref())
            .is_some_and(|c| c.holds);
        let Some(want) = wanted(holding, was_true) else {
            return;
        };
        if st.want.as_ref().or(st.written.as_ref()) == Some(&want) {
            return;
        }
        st.want = Some(want);
        st.retry_at = None;
        self.shared.pending.store(true, Ordering::Relaxed);
        drop(st);
        self.retry_condition();
    }

    /// After a restart: the condition the records imply the last run wrote (`acted`: some
    /// notice on record was acted on), so a restart writes nothing when nothing changed.
    pub fn assume_written(&self, holding: Option<(&str, String)>, acted: bool) {
        self.shared.lock().written = wanted(holding, acted);
    }

    /// A condition write failed and waits for its retry.
    pub fn retrying(&self) -> bool {
        self.condition && self.shared.pending.load(Ordering::Relaxed)
    }

    /// Queues a write of the wanted condition if it is not written yet and no write is queued
    /// or backing off. Cheap when there is nothing to do (the loop calls it every step).
    pub fn retry_condition(&self) {
        if !self.retrying() {
            return;
        }
        let mut st = self.shared.lock();
        if st.want.is_none() || st.want == st.written {
            self.shared.pending.store(false, Ordering::Relaxed);
            return;
        }
        let due = st.retry_at.is_none_or(|(at, _)| at <= Instant::now());
        if st.queued || !due {
            return;
        }
        st.queued = true;
        drop(st);
        let shared = self.shared.clone();
        if !self.condition_worker.submit(Box::new(move || {
            shared.wait_for_cordon();
            shared.write_condition()
        })) {
            self.shared.lock().queued = false;
        }
    }
}

/// The condition for `holding` (see [`Recorder::set_condition`]).
fn wanted(holding: Option<(&str, String)>, was_true: bool) -> Option<Condition> {
    match holding {
        Some((reason, message)) => Some(Condition {
            holds: true,
            reason: reason.to_string(),
            message,
        }),
        None if was_true => Some(Condition {
            holds: false,
            reason: "BackInService".to_string(),
            message: "no termination notice holds the node".to_string(),
        }),
        None => None,
    }
}

/// Shortens `s` to at most `max` bytes, at a character boundary.
fn cut(s: &mut String, max: usize) {
    let mut at = max.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
}

impl Shared {
    /// Returns once no cordon is being tried ([`Recorder::hold`]).
    fn wait_for_cordon(&self) {
        let (held, cv) = &self.hold;
        let mut until = held.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(t) = *until {
            let left = t.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            until = cv
                .wait_timeout(until, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConditionState> {
        self.condition.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One attempt to write the wanted condition; on failure the loop tries again later.
    fn write_condition(&self) {
        let (want, written) = {
            let mut st = self.lock();
            st.queued = false;
            (st.want.clone(), st.written.clone())
        };
        let Some(want) = want.filter(|w| Some(w) != written.as_ref()) else {
            return;
        };
        let transition = written.as_ref().is_none_or(|w| w.holds != want.holds);
        let path = format!("/api/v1/nodes/{}/status", self.node);
        let result = self.send(
            "PATCH",
            &path,
            &want.patch(transition, SystemTime::now()),
            true,
        );
        let mut st = self.lock();
        match result {
            Ok(()) => {
                info!(
                    "node condition set",
                    condition = CONDITION,
                    status = if want.holds { "True" } else { "False" },
                    reason = want.reason
                );
                self.pending
                    .store(st.want.as_ref() != Some(&want), Ordering::Relaxed);
                st.written = Some(want);
                st.retry_at = None;
            }
            Err(e) => {
                let wait = st.retry_at.map_or(Duration::from_secs(1), |(_, w)| {
                    (w * 2).min(Duration::from_secs(60))
                });
                warn!(
                    "could not set the node condition; will retry",
                    condition = CONDITION,
                    error = e,
                    retry_in_s = wait.as_secs()
                );
                st.retry_at = Some((Instant::now() + wait, wait));
            }
        }
    }

    fn path(&self, namespace: &str, name: Option<&str>) -> String {
        let prefix = if self.core.load(Ordering::Relaxed) {
            "/api/v1"
        } else {
            "/apis/events.k8s.io/v1"
        };
        let name = name.map(|n| format!("/{n}")).unwrap_or_default();
        format!("{prefix}/namespaces/{namespace}/events{name}")
    }

    /// The API server shed an Event within [`FOLD_AFTER_SHED`].
    fn shedding(&self) -> bool {
        self.last_shed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < FOLD_AFTER_SHED)
    }

    /// Creates the Event, or bumps its series if it was created before. While the API server
    /// sheds load, a pod's Event is not sent: the node's next Event says how many were folded
    /// into it (hundreds of nodes drained at once would otherwise send one per pod, a third of
    /// all their requests, to a server that is turning requests away).
    fn record(&self, mut e: Event) {
        if e.regarding.kind == "Pod" && self.shedding() {
            if self.folded.fetch_add(1, Ordering::Relaxed) == 0 {
                info!(
                    "the API server is shedding load; pod Events are folded into the node's next Event",
                    reason = e.reason
                );
            }
            return;
        }
        if e.regarding.kind == "Node" {
            let folded = self.folded.swap(0, Ordering::Relaxed);
            not_recorded(
                &mut e.note,
                folded,
                "pod Event",
                " while the API server shed load",
            );
        }
        let mut guard = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let (series, last_nanos) = &mut *guard;
        cut(&mut e.note, MAX_NOTE);
        let r = &e.regarding;
        let key = format!(
            "{}/{}/{}/{}/{}",
            r.kind, r.namespace, r.name, e.reason, e.note
        );
        let now = SystemTime::now();
        if let Some(i) = series.iter().position(|s| s.key == key) {
            series[i].count += 1;
            let s = &series[i];
            let body = if self.core.load(Ordering::Relaxed) {
                format!(
                    "{{\"count\":{},\"lastTimestamp\":{}}}",
                    s.count,
                    escape(&format_rfc3339(now))
                )
            } else {
                format!(
                    "{{\"series\":{{\"count\":{},\"lastObservedTime\":{}}}}}",
                    s.count,
                    escape(&format_micro_time(now))
                )
            };
            match self.send(
                "PATCH",
                &self.path(&s.namespace, Some(&s.name)),
                &body,
                false,
            ) {
                Ok(()) => return,
                // Gone (Events expire after an hour): record it afresh.
                Err(err) if err.is_not_found() => {
                    series.remove(i);
                }
                Err(err) => {
                    warn!("could not record an Event", reason = e.reason, error = err);
                    return;
                }
            }
        }
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .max(*last_nanos + 1);
        *last_nanos = nanos;
        let mut name = r.name.clone();
        cut(&mut name, 200);
        let name = format!("{name}.{nanos:x}");
        let ns = r.event_namespace().to_string();
        loop {
            let core = self.core.load(Ordering::Relaxed);
            match self.send(
                "POST",
                &self.path(&ns, None),
                &self.body(&e, &name, &ns, core, now),
                false,
            ) {
                Ok(()) => break,
                // A cluster without events.k8s.io/v1 after all.
                Err(err) if err.is_not_found() && !core => self.core.store(true, Ordering::Relaxed),
                Err(err) => {
                    warn!("could not record an Event", reason = e.reason, error = err);
                    return;
                }
            }
        }
        if series.len() >= SERIES_MEMORY {
            series.remove(0);
        }
        series.push(Series {
            key,
            namespace: ns,
            name,
            count: 1,
        });
    }

    fn body(&self, e: &Event, name: &str, ns: &str, core: bool, now: SystemTime) -> String {
        let node = escape(&self.node);
        let kind = if e.warning { "Warning" } else { "Normal" };
        let meta = format!(
            "\"metadata\":{{\"name\":{},\"namespace\":{}}}",
            escape(name),
            escape(ns)
        );
        if core {
            let t = escape(&format_rfc3339(now));
            format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Event\",{meta},\"involvedObject\":{},\"reason\":\"{}\",\"message\":{},\"type\":\"{kind}\",\"source\":{{\"component\":\"{CONTROLLER}\",\"host\":{node}}},\"firstTimestamp\":{t},\"lastTimestamp\":{t},\"count\":1,\"action\":\"{}\",\"reportingComponent\":\"{CONTROLLER}\",\"reportingInstance\":{node}}}",
                e.regarding.to_json(),
                e.reason,
                escape(&e.note),
                e.action
            )
        } else {
            format!(
                "{{\"apiVersion\":\"events.k8s.io/v1\",\"kind\":\"Event\",{meta},\"eventTime\":{},\"reportingController\":\"{CONTROLLER}\",\"reportingInstance\":{node},\"action\":\"{}\",\"reason\":\"{}\",\"regarding\":{},\"note\":{},\"type\":\"{kind}\"}}",
                escape(&format_micro_time(now)),
                e.action,
                e.reason,
                e.regarding.to_json(),
                escape(&e.note)
            )
        }
    }

    /// One request, retried on transport errors, 5xx and 429 (1 s, then 2 s apart). An Event's
    /// load-shedding answer waits its `Retry-After`, doubled for each shed answer in a row
    /// across Events, at most 8 times; the condition (`strategic`, its own worker and backoff)
    /// neither counts nor resets that run.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        strategic: bool,
    ) -> Result<(), crate::kube::Error> {
        let event = !strategic;
        let mut attempt = 1;
        loop {
            let deadline = Instant::now() + WRITE_TIMEOUT;
            let err = match self
                .client
                .send_json(method, path, body, strategic, Some(deadline))
            {
                Ok(()) => {
                    if event {
                        self.sheds.store(0, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            let retryable = err.code().is_none_or(|c| c == 429 || c >= 500);
            if !retryable || attempt >= ATTEMPTS {
                return Err(err);
            }
            // The server shedding load (API Priority and Fairness): Events are what can wait
            // most, so their pause doubles with every such answer in a row, across Events.
            let pause = match crate::drain::shed(&err) {
                Some(after) if event => {
                    *self.last_shed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now());
                    let sheds = self.sheds.fetch_add(1, Ordering::Relaxed) + 1;
                    crate::drain::shed_backoff(after, sheds)
                }
                _ => Duration::from_secs(u64::from(attempt)),
            };
            std::thread::sleep(pause);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_patches_merge_by_type() {
        let t = crate::time::parse_rfc3339("2026-11-26T08:40:51Z").unwrap();
        let c = Condition {
            holds: true,
            reason: "SpotInterruption".into(),
            message: "spot \"interruption\"".into(),
        };
        let p = c.patch(true, t);
        crate::json::check(p.as_bytes()).unwrap();
        assert_eq!(
            p,
            r#"{"status":{"conditions":[{"type":"TerminationNotice","status":"True","reason":"SpotInterruption","message":"spot \"interruption\"","lastHeartbeatTime":"2026-11-26T08:40:51Z","lastTransitionTime":"2026-11-26T08:40:51Z"}]}}"#
        );
        let off = Condition { holds: false, ..c };
        assert!(!off.patch(false, t).contains("lastTransitionTime"));
        assert!(off.patch(false, t).contains("\"status\":\"False\""));
    }

    #[test]
    fn objects_as_references() {
        assert_eq!(
            Object::node("n1").to_json(),
            r#"{"apiVersion":"v1","kind":"Node","name":"n1","uid":"n1"}"#
        );
        assert_eq!(Object::node("n1").event_namespace(), "default");
        let p = Object::pod("shop", "web-1", "u-1");
        assert_eq!(
            p.to_json(),
            r#"{"apiVersion":"v1","kind":"Pod","name":"web-1","namespace":"shop","uid":"u-1"}"#
        );
        assert_eq!(p.event_namespace(), "shop");
    }
}
