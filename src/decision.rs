//! The decision step: live notices + what we did before → what the node should be now.
//!
//! Pure: no clock, no I/O. The caller passes what each source last said (its last good answer: a
//! source in error keeps what it said last, and a source that has not answered yet is absent, so
//! neither a metadata outage nor a restart ever undoes anything), the names of the sources the
//! configuration runs, the ledger of notices we have seen (kept on the Node, so it survives
//! restarts), the wall-clock time and the machine's boot time. [`decide`] updates the ledger and says what
//! the node should be ([`Desired`]) and what happened ([`Change`]: what to announce).
//!
//! Rules:
//! - A notice seen for the first time is announced once. If its action is a message only
//!   (`notify`) that is all; if it is not due yet (a scheduled event acted on `lead` before it
//!   starts) it waits as `Pending`; otherwise it is `Active` from now.
//! - Several notices can hold the node at once. The strongest wins (drain over cordon), the
//!   earliest deadline wins, budgets may be overridden at the deadline if any drain notice
//!   allows it, and the node keeps one taint per live reason.
//! - A notice stops holding the node when its [`Undo`] rule says so; nothing is undone while
//!   another notice that needs the same state is still active (the desired state is computed from
//!   the remaining ones). An undone notice is never applied again while it stays visible (a
//!   rebalance recommendation after its TTL), and is forgotten once it is gone.
//! - A notice older than the machine's boot is stale: it is not live.

use std::time::{Duration, SystemTime};

use crate::notice::{Action, Kind, Notice, Undo};

/// Where one notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A message only; nothing is done to the node.
    Notified,
    /// Announced; its action is due at `act_at`.
    Pending,
    /// Its action is in force (a drain not finished yet, or a cordon).
    Active,
    /// Its drain ran to the end (the node stays cordoned while it is live).
    Drained,
    /// Its drain ended with pods left on the node or not listable.
    Incomplete,
    /// No longer holds the node; never applied again while it stays visible.
    Undone,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Notified => "notified",
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Drained => "drained",
            Status::Incomplete => "incomplete",
            Status::Undone => "undone",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Notified,
            Status::Pending,
            Status::Active,
            Status::Drained,
            Status::Incomplete,
            Status::Undone,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// The notice holds the node (cordon, taint, drain).
    pub fn holds(self) -> bool {
        matches!(self, Status::Active | Status::Drained | Status::Incomplete)
    }
}

/// Messages already sent for one notice (each at most once per notice, across restarts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub seen: bool,
    pub drained: bool,
    pub back: bool,
    /// The detach from the Auto Scaling group was done for it (whatever its outcome).
    pub detached: bool,
    /// The cloud was told our drain is done (Azure: the event approved).
    pub acked: bool,
}

/// What we remember about one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// The source (watcher) that reported it: only that source can say it is gone.
    pub source: String,
    pub kind: Kind,
    /// The cloud's own word (`terminate`, `system-reboot`, …), for messages.
    pub detail: String,
    pub action: Action,
    pub status: Status,
    /// When we first saw it.
    pub seen: SystemTime,
    /// When its action was put in force.
    pub acted: Option<SystemTime>,
    pub act_at: Option<SystemTime>,
    pub deadline: Option<SystemTime>,
    pub force: bool,
    pub undo: Undo,
    pub sent: Sent,
}

/// The ledger: every notice we have seen and not yet forgotten.
pub type Ledger = Vec<Entry>;

/// What happened to the ledger in one step (the caller logs and announces these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// First seen; `status` says whether it is a message only, pending or in force.
    Seen { id: String, status: Status },
    /// A pending notice became due and is now in force.
    Activated { id: String },
    /// No longer holds the node.
    Undone { id: String, why: &'static str },
    /// Gone from the ledger (its notice is no longer visible).
    Forgotten { id: String },
}

/// What the node should be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    pub cordon: bool,
    /// One taint per live reason, sorted.
    pub reasons: Vec<Kind>,
    /// Label the node out of external load balancers (while a drain holds it).
    pub exclude_lb: bool,
    /// A drain to run or keep running: some drain notice is `Active`.
    pub drain: Option<DrainOrder>,
}

/// The drain the node needs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOrder {
    /// The earliest deadline of the drain notices that hold the node; `None`: no deadline.
    pub deadline: Option<SystemTime>,
    /// Pods a budget still blocks at the deadline minus the reserve may be deleted directly.
    pub force: bool,
    /// The `Active` drain notices this drain finishes.
    pub ids: Vec<String>,
    /// The notice whose deadline governs (else the first active one): named in messages.
    pub primary: String,
}

impl Desired {
    /// Nothing held: the node is ours to give back.
    pub fn is_clear(&self) -> bool {
        !self.cordon && self.reasons.is_empty() && !self.exclude_lb
    }
}

/// True when the machine booted after `t` (it rebooted, or was stopped and started).
fn booted_after(boot: Option<SystemTime>, t: Option<SystemTime>) -> bool {
    matches!((boot, t), (Some(b), Some(t)) if b > t)
}

/// Why an entry that holds the node should let go, if it should.
fn undo_reason(
    e: &Entry,
    live: bool,
    now: SystemTime,
    boot: Option<SystemTime>,
) -> Option<&'static str> {
    let rebooted = booted_after(boot, e.acted.or(Some(e.seen)));
    match e.undo {
        Undo::Never => None,
        Undo::WhenGone => (!live).then_some("notice gone"),
        Undo::WhenCancelledOrRebooted { starts } => {
            if rebooted {
                Some("machine rebooted since we acted")
            } else if !live && now < starts {
                Some("cancelled before it started")
            } else {
                None
            }
        }
        Undo::WhenRebooted => (rebooted && !live).then_some("machine came back"),
        Undo::After(ttl) => {
            if !live {
                Some("notice gone")
            } else if ttl > Duration::ZERO && e.acted.is_some_and(|a| now >= a + ttl) {
                Some("time to live passed")
            } else {
                None
            }
        }
    }
}

/// What one source last said (absent: it has not answered yet).
pub type Observed<'a> = (&'a str, &'a [Notice]);

/// One step. Updates `ledger` in place and returns what the node should be and what changed.
/// `observed` holds each source that has answered and its notices; `configured` names every
/// source the configuration runs (an entry from a source that no longer runs counts as gone).
pub fn decide(
    ledger: &mut Ledger,
    observed: &[Observed],
    configured: &[&str],
    now: SystemTime,
    boot: Option<SystemTime>,
) -> (Desired, Vec<Change>) {
    let live: Vec<(&str, &Notice)> = observed
        .iter()
        .flat_map(|(src, ns)| ns.iter().map(move |n| (*src, n)))
        .filter(|(_, n)| !n.is_stale(boot))
        .collect();
    let is_live = |id: &str| live.iter().any(|(_, n)| n.id == id);
    // Gone: its source answered (or no longer runs) and did not show it.
    let is_gone = |e: &Entry| {
        let answered = observed.iter().any(|(s, _)| *s == e.source)
            || !configured.contains(&e.source.as_str());
        answered && !is_live(&e.id)
    };
    let mut changes = Vec::new();

    for (source, n) in &live {
        match ledger.iter_mut().find(|e| e.id == n.id) {
            None => {
                let status = if n.action == Action::Notify {
                    Status::Notified
                } else if n.is_due(now) {
                    Status::Active
                } else {
                    Status::Pending
                };
                ledger.push(Entry {
                    id: n.id.clone(),
                    source: source.to_string(),
                    kind: n.kind,
                    detail: n.detail.clone(),
                    action: n.action,
                    status,
                    seen: now,
                    acted: (status == Status::Active).then_some(now),
                    act_at: n.act_at,
                    deadline: n.deadline,
                    force: n.force,
                    undo: n.undo,
                    sent: Sent::default(),
                });
                changes.push(Change::Seen {
                    id: n.id.clone(),
                    status,
                });
            }
            Some(e) => {
                // The cloud may move a time (a rescheduled event): follow it while it matters.
                if !matches!(e.status, Status::Undone) && n.deadline_given {
                    e.deadline = n.deadline;
                    e.act_at = n.act_at;
                    e.undo = n.undo;
                }
                if e.status == Status::Pending && n.is_due(now) {
                    e.status = Status::Active;
                    e.acted = Some(now);
                    changes.push(Change::Activated { id: e.id.clone() });
                }
            }
        }
    }

    // A pending notice whose source has not answered (since a restart, or it fails) is still
    // due at its time: the ledger knows when, and only its source can say it is gone.
    for e in ledger.iter_mut() {
        if e.status == Status::Pending && !is_gone(e) && e.act_at.is_none_or(|a| a <= now) {
            e.status = Status::Active;
            e.acted = Some(now);
            changes.push(Change::Activated { id: e.id.clone() });
        }
    }

    for e in ledger.iter_mut() {
        let gone = is_gone(e);
        let why = match e.status {
            s if s.holds() => undo_reason(e, !gone, now, boot),
            Status::Pending if gone => Some("cancelled before it started"),
            _ => None,
        };
        if let Some(why) = why {
            e.status = Status::Undone;
            changes.push(Change::Undone {
                id: e.id.clone(),
                why,
            });
        }
    }

    ledger.retain(|e| {
        let keep = !is_gone(e) || e.status.holds() || e.status == Status::Pending;
        if !keep {
            changes.push(Change::Forgotten { id: e.id.clone() });
        }
        keep
    });

    (desired(ledger), changes)
}

/// The node state the entries that hold it ask for.
pub fn desired(ledger: &Ledger) -> Desired {
    let holding: Vec<&Entry> = ledger
        .iter()
        .filter(|e| e.status.holds() && e.action >= Action::Cordon)
        .collect();
    let mut reasons: Vec<Kind> = holding.iter().map(|e| e.kind).collect();
    reasons.sort();
    reasons.dedup();
    let drains: Vec<&&Entry> = holding
        .iter()
        .filter(|e| e.action == Action::Drain)
        .collect();
    let active: Vec<&&&Entry> = drains
        .iter()
        .filter(|e| e.status == Status::Active)
        .collect();
    let drain = (!active.is_empty()).then(|| {
        let governing = drains
            .iter()
            .filter(|e| e.deadline.is_some())
            .min_by_key(|e| e.deadline);
        DrainOrder {
            deadline: governing.and_then(|e| e.deadline),
            force: drains.iter().any(|e| e.force && e.deadline.is_some()),
            ids: active.iter().map(|e| e.id.clone()).collect(),
            primary: governing.map_or_else(|| active[0].id.clone(), |e| e.id.clone()),
        }
    });
    Desired {
        cordon: !holding.is_empty(),
        reasons,
        exclude_lb: !drains.is_empty(),
        drain,
    }
}

/// Marks the notices a finished drain served.
pub fn drain_finished(ledger: &mut Ledger, ids: &[String], complete: bool) {
    for e in ledger.iter_mut() {
        if e.status == Status::Active && ids.contains(&e.id) {
            e.status = if complete {
                Status::Drained
            } else {
                Status::Incomplete
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::Provider;
    use std::time::UNIX_EPOCH;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }
    const BOOT: u64 = 0;

    fn spot(action: &str, at: u64) -> Notice {
        Notice {
            provider: Provider::Aws,
            kind: Kind::SpotInterruption,
            id: format!("aws-spot/{action}/{at}"),
            detail: action.to_string(),
            action: Action::Drain,
            act_at: None,
            deadline: Some(t(at)),
            deadline_given: true,
            force: true,
            undo: if action == "terminate" {
                Undo::Never
            } else {
                Undo::WhenRebooted
            },
            time: Some(t(at)),
        }
    }

    fn rebalance(at: u64, action: Action, ttl: u64) -> Notice {
        Notice {
            provider: Provider::Aws,
            kind: Kind::Rebalance,
            id: format!("aws-rebalance/{at}"),
            detail: "rebalance".into(),
            action,
            act_at: None,
            deadline: None,
            deadline_given: false,
            force: false,
            undo: Undo::After(Duration::from_secs(ttl)),
            time: Some(t(at)),
        }
    }

    fn scheduled(id: &str, not_before: u64, lead: u64, action: Action) -> Notice {
        Notice {
            provider: Provider::Aws,
            kind: Kind::ScheduledMaintenance,
            id: format!("aws-scheduled/{id}"),
            detail: "system-reboot".into(),
            action,
            act_at: Some(t(not_before - lead)),
            deadline: Some(t(not_before)),
            deadline_given: true,
            force: true,
            undo: Undo::WhenCancelledOrRebooted {
                starts: t(not_before),
            },
            time: Some(t(not_before)),
        }
    }

    fn gone(id: &str) -> Notice {
        Notice {
            provider: Provider::Gcp,
            kind: Kind::ScheduledMaintenance,
            id: id.to_string(),
            detail: "TERMINATE_ON_HOST_MAINTENANCE".into(),
            action: Action::Drain,
            act_at: None,
            deadline: Some(t(1000)),
            deadline_given: false,
            force: true,
            undo: Undo::WhenGone,
            time: None,
        }
    }

    /// Runs `steps` of (time, visible notices) and returns the desired state and changes of
    /// each step.
    /// One source, `src`, saying `ns`.
    fn step(
        ledger: &mut Ledger,
        ns: &[Notice],
        now: SystemTime,
        boot: Option<SystemTime>,
    ) -> (Desired, Vec<Change>) {
        decide(ledger, &[("src", ns)], &["src"], now, boot)
    }

    fn run(steps: &[(u64, Vec<Notice>)], boot: u64) -> Vec<(Desired, Vec<Change>)> {
        let mut ledger = Ledger::new();
        steps
            .iter()
            .map(|(now, ns)| step(&mut ledger, ns, t(*now), Some(t(boot))))
            .collect()
    }

    fn state(d: &Desired) -> (bool, Vec<&'static str>, bool, Option<(Option<u64>, bool)>) {
        let secs = |s: SystemTime| {
            s.duration_since(t(0))
                .map(|d| d.as_secs())
                .unwrap_or_default()
        };
        (
            d.cordon,
            d.reasons.iter().map(|k| k.slug()).collect(),
            d.exclude_lb,
            d.drain.as_ref().map(|o| (o.deadline.map(secs), o.force)),
        )
    }

    #[test]
    fn one_notice_each() {
        // (what, notice, desired: cordon, taints, lb label, drain(deadline, force))
        let cases: Vec<(
            &str,
            Notice,
            (bool, Vec<&str>, bool, Option<(Option<u64>, bool)>),
        )> = vec![
            (
                "spot terminate drains by its time",
                spot("terminate", 120),
                (
                    true,
                    vec!["spot-interruption"],
                    true,
                    Some((Some(120), true)),
                ),
            ),
            (
                "rebalance cordon only",
                rebalance(10, Action::Cordon, 1800),
                (true, vec!["rebalance-recommendation"], false, None),
            ),
            (
                "rebalance drain: no deadline, no force",
                rebalance(10, Action::Drain, 1800),
                (
                    true,
                    vec!["rebalance-recommendation"],
                    true,
                    Some((None, false)),
                ),
            ),
            (
                "rebalance notify only",
                rebalance(10, Action::Notify, 1800),
                (false, vec![], false, None),
            ),
            (
                "scheduled event not due yet",
                scheduled("e1", 100_000, 900, Action::Drain),
                (false, vec![], false, None),
            ),
            (
                "scheduled event due",
                scheduled("e2", 500, 499, Action::Drain),
                (
                    true,
                    vec!["scheduled-maintenance"],
                    true,
                    Some((Some(500), true)),
                ),
            ),
        ];
        for (what, n, want) in cases {
            let out = run(&[(1, vec![n])], BOOT);
            assert_eq!(state(&out[0].0), want, "{what}");
            assert!(
                matches!(out[0].1.as_slice(), [Change::Seen { .. }]),
                "{what}: announced once: {:?}",
                out[0].1
            );
        }
    }

    #[test]
    fn combinations_strongest_and_earliest_win() {
        let reb = rebalance(1, Action::Cordon, 1800);
        let itn = spot("terminate", 130);
        let out = run(
            &[
                (1, vec![reb.clone()]),
                (10, vec![reb.clone(), itn.clone()]),
                (20, vec![reb.clone(), itn.clone()]),
            ],
            BOOT,
        );
        assert_eq!(
            state(&out[0].0),
            (true, vec!["rebalance-recommendation"], false, None)
        );
        assert_eq!(
            state(&out[1].0),
            (
                true,
                vec!["spot-interruption", "rebalance-recommendation"],
                true,
                Some((Some(130), true))
            )
        );
        assert_eq!(out[2].1, vec![], "nothing new on the third poll");

        // A scheduled reboot drain, then a spot interruption with an earlier deadline.
        let sched = scheduled("e3", 600, 599, Action::Drain);
        let out = run(
            &[
                (1, vec![sched.clone()]),
                (5, vec![sched, spot("stop", 125)]),
            ],
            BOOT,
        );
        assert_eq!(out[0].0.drain.as_ref().unwrap().deadline, Some(t(600)));
        let order = out[1].0.drain.as_ref().unwrap();
        assert_eq!(order.deadline, Some(t(125)));
        assert_eq!(order.primary, "aws-spot/stop/125");
        assert_eq!(order.ids.len(), 2);

        // A rebalance drain (no force) beside a spot drain (force): force wins.
        let out = run(
            &[(
                1,
                vec![rebalance(1, Action::Drain, 0), spot("terminate", 120)],
            )],
            BOOT,
        );
        assert_eq!(
            state(&out[0].0).3,
            Some((Some(120), true)),
            "the spot deadline governs and allows forced deletes"
        );
    }

    #[test]
    fn rebalance_ttl_expires_and_is_never_reapplied() {
        let reb = rebalance(1, Action::Cordon, 60);
        let out = run(
            &[
                (1, vec![reb.clone()]),
                (60, vec![reb.clone()]),
                (61, vec![reb.clone()]),
                (200, vec![reb.clone()]),
                (300, vec![]),
                (400, vec![rebalance(390, Action::Cordon, 60)]),
            ],
            BOOT,
        );
        assert!(out[1].0.cordon, "59 s after acting: still held");
        assert!(!out[2].0.cordon, "TTL passed");
        assert_eq!(
            out[2].1,
            vec![Change::Undone {
                id: "aws-rebalance/1".into(),
                why: "time to live passed"
            }]
        );
        assert!(
            !out[3].0.cordon && out[3].1.is_empty(),
            "the same noticeTime is not applied again"
        );
        assert_eq!(
            out[4].1,
            vec![Change::Forgotten {
                id: "aws-rebalance/1".into()
            }]
        );
        assert!(out[5].0.cordon, "a new noticeTime is a new notice");
        // TTL 0: never expires.
        let keep = rebalance(1, Action::Cordon, 0);
        let out = run(&[(1, vec![keep.clone()]), (1_000_000, vec![keep])], BOOT);
        assert!(out[1].0.cordon);
    }

    #[test]
    fn rebalance_expiry_keeps_a_stronger_signal() {
        let reb = rebalance(1, Action::Cordon, 60);
        let itn = spot("terminate", 200);
        let out = run(
            &[(1, vec![reb.clone()]), (70, vec![reb.clone(), itn.clone()])],
            BOOT,
        );
        assert_eq!(
            state(&out[1].0),
            (
                true,
                vec!["spot-interruption"],
                true,
                Some((Some(200), true))
            ),
            "the rebalance taint goes, the cordon and drain stay"
        );
    }

    #[test]
    fn scheduled_events_wait_for_their_lead_then_cancel_or_reboot_undoes() {
        let ev = scheduled("e4", 2000, 900, Action::Drain);
        // Pending at 1, due at 1100, cancelled at 1500 (before it starts at 2000).
        let out = run(
            &[
                (1, vec![ev.clone()]),
                (1100, vec![ev.clone()]),
                (1500, vec![]),
            ],
            BOOT,
        );
        assert_eq!(
            out[0].1,
            vec![Change::Seen {
                id: "aws-scheduled/e4".into(),
                status: Status::Pending
            }]
        );
        assert!(!out[0].0.cordon);
        assert_eq!(
            out[1].1,
            vec![Change::Activated {
                id: "aws-scheduled/e4".into()
            }]
        );
        assert!(out[1].0.drain.is_some());
        assert_eq!(
            out[2].1,
            vec![
                Change::Undone {
                    id: "aws-scheduled/e4".into(),
                    why: "cancelled before it started"
                },
                Change::Forgotten {
                    id: "aws-scheduled/e4".into()
                }
            ]
        );
        assert!(out[2].0.is_clear());

        // Gone after it started, no reboot: stays (the reboot has not happened yet).
        let out = run(&[(1100, vec![ev.clone()]), (2100, vec![])], BOOT);
        assert!(out[1].0.cordon);

        // A reboot after we acted: undone even while the event is still listed.
        let mut ledger = Ledger::new();
        step(
            &mut ledger,
            std::slice::from_ref(&ev),
            t(1100),
            Some(t(BOOT)),
        );
        let (d, ch) = step(
            &mut ledger,
            std::slice::from_ref(&ev),
            t(2300),
            Some(t(2200)),
        );
        assert!(d.is_clear(), "{d:?}");
        assert_eq!(
            ch,
            vec![
                Change::Undone {
                    id: "aws-scheduled/e4".into(),
                    why: "machine rebooted since we acted"
                },
                // Its start lies before the boot: stale, so no longer live, so forgotten.
                Change::Forgotten {
                    id: "aws-scheduled/e4".into()
                }
            ]
        );
        // ... and never applied again while it stays listed.
        let (d, _) = step(&mut ledger, &[ev], t(2400), Some(t(2200)));
        assert!(d.is_clear());

        // A pending event cancelled before it was due: nothing applied, nothing to undo.
        let later = scheduled("e5", 5000, 900, Action::Drain);
        let out = run(&[(1, vec![later]), (2, vec![])], BOOT);
        assert!(out[1].0.is_clear());
        assert!(matches!(out[1].1[0], Change::Undone { .. }));
    }

    #[test]
    fn stop_notice_undone_when_the_machine_comes_back() {
        let stop = spot("stop", 120);
        let mut ledger = Ledger::new();
        step(
            &mut ledger,
            std::slice::from_ref(&stop),
            t(1),
            Some(t(BOOT)),
        );
        drain_finished(&mut ledger, &["aws-spot/stop/120".into()], true);
        // Restarted after the stop/start: the notice is still served but older than the boot.
        let (d, ch) = step(
            &mut ledger,
            std::slice::from_ref(&stop),
            t(600),
            Some(t(500)),
        );
        assert!(d.is_clear(), "{d:?}");
        assert_eq!(
            ch,
            vec![
                Change::Undone {
                    id: "aws-spot/stop/120".into(),
                    why: "machine came back"
                },
                Change::Forgotten {
                    id: "aws-spot/stop/120".into()
                }
            ]
        );
        // A terminate notice is never undone.
        let term = spot("terminate", 120);
        let mut ledger = Ledger::new();
        step(&mut ledger, &[term], t(1), Some(t(BOOT)));
        let (d, _) = step(&mut ledger, &[], t(600), Some(t(500)));
        assert!(d.cordon);
    }

    #[test]
    fn a_source_that_has_not_answered_cannot_say_a_notice_is_gone() {
        let reb = rebalance(1, Action::Cordon, 1800);
        let mut ledger = Ledger::new();
        decide(
            &mut ledger,
            &[("aws-rebalance", std::slice::from_ref(&reb))],
            &["aws-rebalance", "aws-spot"],
            t(1),
            Some(t(BOOT)),
        );
        assert_eq!(ledger[0].source, "aws-rebalance");
        // After a restart: only the spot source has answered yet.
        let (d, ch) = decide(
            &mut ledger,
            &[("aws-spot", &[])],
            &["aws-rebalance", "aws-spot"],
            t(2),
            Some(t(BOOT)),
        );
        assert!(d.cordon && ch.is_empty(), "{d:?} {ch:?}");
        // It answers without the notice: gone.
        let (d, _) = decide(
            &mut ledger,
            &[("aws-spot", &[]), ("aws-rebalance", &[])],
            &["aws-rebalance", "aws-spot"],
            t(3),
            Some(t(BOOT)),
        );
        assert!(d.is_clear());
        // A source the configuration no longer runs counts as gone.
        let mut ledger = Ledger::new();
        decide(
            &mut ledger,
            &[("aws-rebalance", std::slice::from_ref(&reb))],
            &["aws-rebalance"],
            t(1),
            Some(t(BOOT)),
        );
        let (d, _) = decide(&mut ledger, &[], &["aws-spot"], t(2), Some(t(BOOT)));
        assert!(d.is_clear());
    }

    #[test]
    fn a_pending_notice_comes_due_even_while_its_source_is_silent() {
        // Found by the property tests: after a restart, with the scheduled-events source failing,
        // the pending event must still be acted on at its lead.
        let ev = scheduled("e9", 900, 600, Action::Drain);
        let mut ledger = Ledger::new();
        decide(
            &mut ledger,
            &[("sched", std::slice::from_ref(&ev))],
            &["sched"],
            t(9),
            Some(t(BOOT)),
        );
        assert_eq!(ledger[0].status, Status::Pending);
        let json = crate::record::ledger_to_json(&ledger);
        let mut ledger = crate::record::ledger_from_json(&json).unwrap().0;
        let (d, ch) = decide(&mut ledger, &[], &["sched"], t(300), Some(t(BOOT)));
        assert_eq!(
            ch,
            vec![Change::Activated {
                id: "aws-scheduled/e9".into()
            }]
        );
        assert_eq!(d.drain.unwrap().deadline, Some(t(900)));
    }

    #[test]
    fn stale_notices_are_not_live() {
        let out = run(&[(5000, vec![spot("stop", 120)])], 4000);
        assert!(out[0].0.is_clear());
        assert!(out[0].1.is_empty());
    }

    #[test]
    fn undo_when_gone_and_drained_state() {
        let m = gone("gcp-maintenance/1");
        let mut ledger = Ledger::new();
        let (d, _) = step(&mut ledger, std::slice::from_ref(&m), t(1), Some(t(BOOT)));
        let ids = d.drain.unwrap().ids;
        drain_finished(&mut ledger, &ids, false);
        assert_eq!(ledger[0].status, Status::Incomplete);
        let (d, _) = step(&mut ledger, std::slice::from_ref(&m), t(2), Some(t(BOOT)));
        assert!(
            d.cordon && d.drain.is_none(),
            "drained: held, not drained again"
        );
        let (d, ch) = step(&mut ledger, &[], t(3), Some(t(BOOT)));
        assert!(d.is_clear());
        assert_eq!(ch.len(), 2);
    }

    #[test]
    fn a_moved_deadline_is_followed() {
        let mut a = Notice {
            deadline_given: true,
            ..gone("azure/2")
        };
        let mut ledger = Ledger::new();
        step(&mut ledger, &[a.clone()], t(1), Some(t(BOOT)));
        a.deadline = Some(t(50));
        let (d, _) = step(&mut ledger, &[a.clone()], t(2), Some(t(BOOT)));
        assert_eq!(d.drain.unwrap().deadline, Some(t(50)));
        // A default deadline (none given) is fixed when first seen.
        let mut b = gone("gcp-maintenance/3");
        let mut ledger = Ledger::new();
        step(&mut ledger, &[b.clone()], t(1), Some(t(BOOT)));
        b.deadline = Some(t(2000));
        let (d, _) = step(&mut ledger, &[b], t(2), Some(t(BOOT)));
        assert_eq!(d.drain.unwrap().deadline, Some(t(1000)));
    }
}
