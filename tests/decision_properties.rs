//! Invariants of the decision step, by property tests: random sequences of signals appearing
//! and vanishing, sources failing, time passing (TTLs expiring, scheduled leads arriving),
//! reboots and restarts (the ledger round-tripped through its Node annotation) at any step.
//!
//! Checked after every step:
//! 1. nothing is undone while a signal that needs it is live (only a passed TTL or a reboot since
//!    we acted may undo a notice that is still visible);
//! 2. once every signal is gone (every source answered, none showing anything), our cordon,
//!    taints and label are gone, except for notices whose rule keeps them (a terminate, an ASG
//!    termination, a scheduled event that started, a spot stop, until the machine reboots);
//! 3. at most one first-seen message per notice while it stays visible;
//! 4. the desired state is exactly what the ledger's holding entries ask for;
//! 5. the final state equals that of the same sequence without restarts.
//!
//! (That a node we did not cordon is never uncordoned by us is the `node` module's rule:
//! `node::uncordon_verdict` and its table test.) `PROPTEST_CASES=N` runs more cases. A failing case shrinks; write it down as a table test in
//! `src/decision.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use spot_termination_notice_handler::decision::{self, Change, Desired, Ledger, Status};
use spot_termination_notice_handler::notice::{Action, Kind, Notice, Provider, Undo};
use spot_termination_notice_handler::record;

const T0: u64 = 1_800_000_000;

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + s)
}

fn notice(
    kind: Kind,
    id: &str,
    action: Action,
    act_at: Option<u64>,
    deadline: Option<u64>,
    undo: Undo,
    time: Option<u64>,
) -> Notice {
    Notice {
        provider: Provider::Aws,
        kind,
        id: id.to_string(),
        detail: "x".to_string(),
        action,
        act_at: act_at.map(t),
        deadline: deadline.map(t),
        deadline_given: deadline.is_some(),
        force: action == Action::Drain && deadline.is_some(),
        undo,
        time: time.map(t),
    }
}

/// Every notice the sequences draw from, with the source that reports it.
fn universe() -> Vec<(&'static str, Notice)> {
    vec![
        (
            "spot",
            notice(
                Kind::SpotInterruption,
                "aws-spot/terminate",
                Action::Drain,
                None,
                Some(400),
                Undo::Never,
                Some(400),
            ),
        ),
        (
            "spot",
            notice(
                Kind::SpotInterruption,
                "aws-spot/stop",
                Action::Drain,
                None,
                Some(700),
                Undo::WhenRebooted,
                Some(700),
            ),
        ),
        (
            "rebalance",
            notice(
                Kind::Rebalance,
                "aws-rebalance/a",
                Action::Cordon,
                None,
                None,
                Undo::After(Duration::from_secs(120)),
                Some(0),
            ),
        ),
        (
            "rebalance",
            notice(
                Kind::Rebalance,
                "aws-rebalance/b",
                Action::Drain,
                None,
                None,
                Undo::After(Duration::ZERO),
                Some(500),
            ),
        ),
        (
            "scheduled",
            notice(
                Kind::ScheduledMaintenance,
                "aws-scheduled/e1",
                Action::Drain,
                Some(300),
                Some(900),
                Undo::WhenCancelledOrRebooted { starts: t(900) },
                Some(900),
            ),
        ),
        (
            "gcp",
            notice(
                Kind::ScheduledMaintenance,
                "gcp-maintenance/1",
                Action::Drain,
                None,
                Some(2000),
                Undo::WhenGone,
                None,
            ),
        ),
        (
            "asg",
            notice(
                Kind::Termination,
                "aws-asg/terminated",
                Action::Drain,
                None,
                Some(3000),
                Undo::Never,
                None,
            ),
        ),
        (
            "rebalance",
            notice(
                Kind::Rebalance,
                "aws-rebalance/notify",
                Action::Notify,
                None,
                None,
                Undo::After(Duration::from_secs(60)),
                Some(100),
            ),
        ),
    ]
}

const SOURCES: [&str; 5] = ["spot", "rebalance", "scheduled", "gcp", "asg"];

#[derive(Debug, Clone)]
struct Step {
    /// Seconds since the previous step.
    dt: u64,
    /// Which notices of the universe are visible (bit i: notice i).
    visible: u8,
    /// Sources whose poll fails this step (bit i: SOURCES[i]): they keep their last answer.
    failing: u8,
    reboot: bool,
    restart: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u64..200,
        any::<u8>(),
        prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(dt, visible, failing, reboot, restart)| Step {
            dt,
            visible,
            failing,
            reboot,
            restart,
        })
}

/// What a run ends with.
#[derive(Debug, PartialEq)]
struct End {
    desired: Desired,
    ledger: Vec<(String, Status, bool, bool)>,
}

/// Runs `steps`, checking the invariants after each; `restarts` false ignores the restart flags.
fn run(steps: &[Step], restarts: bool) -> Result<End, TestCaseError> {
    let u = universe();
    let mut ledger = Ledger::new();
    let mut snapshots: BTreeMap<&str, Vec<Notice>> = BTreeMap::new();
    let mut now = 0u64;
    let mut boot = 0u64;
    let mut seen_while_visible: HashSet<String> = HashSet::new();
    let mut acted_at: HashMap<String, u64> = HashMap::new();
    let mut desired = Desired::default();
    for s in steps {
        now += s.dt;
        if s.reboot {
            // The machine rebooted: it booted `now`; the process restarted with it.
            boot = now;
        }
        if s.reboot || (restarts && s.restart) {
            let json = record::ledger_to_json(&ledger);
            ledger = record::ledger_from_json(&json).expect("our own JSON").0;
            snapshots.clear();
            // The loop's first step after start, before any source has answered.
            let (d, ch) = decision::decide(&mut ledger, &[], &SOURCES, t(now), Some(t(boot)));
            // Before any source has answered, nothing can be seen or be gone: only time (a
            // TTL, a scheduled lead) or the reboot itself may change something.
            for c in &ch {
                let ok = matches!(c, Change::Activated { .. })
                    || matches!(c, Change::Undone { why, .. }
                    if *why == "time to live passed" || why.contains("reboot") || why.contains("came back"));
                prop_assert!(ok, "a start changed {c:?}");
            }
            prop_assert_eq!(&d, &decision::desired(&ledger));
        }
        for (i, src) in SOURCES.iter().enumerate() {
            if s.failing & (1 << i) != 0 {
                continue;
            }
            let shown: Vec<Notice> = u
                .iter()
                .enumerate()
                .filter(|(j, (from, _))| from == src && s.visible & (1 << j) != 0)
                .map(|(_, (_, n))| n.clone())
                .collect();
            snapshots.insert(src, shown);
        }
        let observed: Vec<decision::Observed> =
            snapshots.iter().map(|(s, n)| (*s, n.as_slice())).collect();
        let before = ledger.clone();
        let (d, changes) =
            decision::decide(&mut ledger, &observed, &SOURCES, t(now), Some(t(boot)));
        desired = d;
        let live: Vec<&Notice> = snapshots
            .values()
            .flatten()
            .filter(|n| !n.is_stale(Some(t(boot))))
            .collect();
        let is_live = |id: &str| live.iter().any(|n| n.id == id);

        for c in &changes {
            match c {
                Change::Seen { id, .. } => {
                    // 3. At most one first-seen message while it stays visible.
                    prop_assert!(
                        seen_while_visible.insert(id.clone()),
                        "{id} announced twice while visible"
                    );
                }
                Change::Activated { id } => {
                    acted_at.insert(id.clone(), now);
                }
                Change::Undone { id, why } if is_live(id) => {
                    // 1. A live notice is undone only by a passed TTL or a reboot since we acted.
                    // Its entry: from before this step, or seen and undone in it.
                    let e = before
                        .iter()
                        .chain(ledger.iter())
                        .find(|e| &e.id == id)
                        .expect("an undone notice was in the ledger");
                    let acted = e
                        .acted
                        .map(|a| a.duration_since(t(0)).unwrap().as_secs())
                        .unwrap_or(now);
                    let ttl_passed = matches!(e.undo, Undo::After(ttl)
                        if ttl > Duration::ZERO && now >= acted + ttl.as_secs());
                    let rebooted = boot > acted;
                    prop_assert!(
                        ttl_passed || rebooted,
                        "{id} undone while live ({why}) at {now}: acted {acted}, boot {boot}"
                    );
                }
                _ => {}
            }
        }
        for e in &ledger {
            if e.status == Status::Active && e.acted.is_some() && !acted_at.contains_key(&e.id) {
                acted_at.insert(e.id.clone(), now);
            }
        }
        // Forget what is no longer visible, for property 3.
        seen_while_visible.retain(|id| is_live(id) || ledger.iter().any(|e| &e.id == id));

        // 4. The desired state is exactly what the holding entries ask for.
        prop_assert_eq!(&desired, &decision::desired(&ledger));
        for e in ledger.iter().filter(|e| e.status.holds()) {
            if e.action >= Action::Cordon {
                prop_assert!(desired.cordon && desired.reasons.contains(&e.kind));
            }
        }

        // 2. Every source answered, none shows anything: clear, but for the rules that keep.
        let all_answered = SOURCES.iter().all(|s| snapshots.contains_key(s));
        if all_answered && live.is_empty() {
            for e in ledger.iter().filter(|e| e.status.holds()) {
                let acted = e
                    .acted
                    .map(|a| a.duration_since(t(0)).unwrap().as_secs())
                    .unwrap_or(0);
                let keeps = match e.undo {
                    Undo::Never => true,
                    Undo::WhenCancelledOrRebooted { starts } => t(now) >= starts && boot <= acted,
                    // A stop or hibernate comes undone when the machine comes back.
                    Undo::WhenRebooted => boot <= acted,
                    _ => false,
                };
                prop_assert!(keeps, "{} still holds with every signal gone: {e:?}", e.id);
            }
        }
    }
    Ok(End {
        desired,
        ledger: ledger
            .iter()
            .map(|e| (e.id.clone(), e.status, e.sent.seen, e.sent.back))
            .collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_decision_keeps_its_invariants(steps in prop::collection::vec(step(), 1..40)) {
        run(&steps, true)?;
    }

    #[test]
    fn restarts_change_nothing(steps in prop::collection::vec(step(), 1..40)) {
        // 5. With and without restarts (reboots are kept: they change the machine).
        let with = run(&steps, true)?;
        let without = run(&steps, false)?;
        prop_assert_eq!(with, without);
    }
}
