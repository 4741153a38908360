//! What a cloud says, in one shape: a [`Notice`] that the node is going away or at risk.
//!
//! Every cloud module (`cloud::aws`, …) turns what its metadata service says into notices; the
//! decision step (`decision`) and the action path never look at a cloud's own documents. A notice
//! carries everything the decision needs: how strong it is ([`Action`]), by when the node must
//! be empty (`deadline`), when to act (`act_at`, for announcements days ahead), and what would
//! undo it ([`Undo`]). Pure data; no I/O.

use std::time::{Duration, SystemTime};

/// Which source said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    Aws,
    Gcp,
    Azure,
    Alibaba,
    /// Seed compatibility: an HTTP 200 from `NOTICE_URL`.
    NoticeUrl,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
            Provider::Alibaba => "alibaba",
            Provider::NoticeUrl => "notice-url",
        }
    }
}

/// The reason a node is at risk. Each reason has its own taint
/// (`spot-termination-notice-handler/<slug>`) while it is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The cloud reclaims a spot / preemptible VM (AWS instance-action, GCP preemption,
    /// Azure Preempt, Alibaba spot termination).
    SpotInterruption,
    /// AWS rebalance recommendation: elevated risk of interruption, no deadline.
    Rebalance,
    /// Planned maintenance: AWS scheduled events, GCP host maintenance, Azure Reboot/Redeploy/Freeze.
    ScheduledMaintenance,
    /// The instance is being terminated by its group (AWS ASG lifecycle `Terminated`, Azure
    /// `Terminate`).
    Termination,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::SpotInterruption,
        Kind::Rebalance,
        Kind::ScheduledMaintenance,
        Kind::Termination,
    ];

    /// Stable lowercase name: taint key suffix, annotation value, log field.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::SpotInterruption => "spot-interruption",
            Kind::Rebalance => "rebalance-recommendation",
            Kind::ScheduledMaintenance => "scheduled-maintenance",
            Kind::Termination => "termination",
        }
    }

    /// CamelCase name for Kubernetes Event reasons.
    pub fn reason(self) -> &'static str {
        match self {
            Kind::SpotInterruption => "SpotInterruption",
            Kind::Rebalance => "RebalanceRecommendation",
            Kind::ScheduledMaintenance => "ScheduledMaintenance",
            Kind::Termination => "Termination",
        }
    }

    /// Words for people ("spot interruption").
    pub fn words(self) -> &'static str {
        match self {
            Kind::SpotInterruption => "spot interruption",
            Kind::Rebalance => "rebalance recommendation",
            Kind::ScheduledMaintenance => "scheduled maintenance",
            Kind::Termination => "termination",
        }
    }

    pub fn from_slug(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.slug() == s)
    }
}

/// How strongly to react. Ordered: a drain beats a cordon beats a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Tell people; leave the node alone.
    Notify,
    /// Mark the node unschedulable (with our taint); pods stay.
    Cordon,
    /// Cordon, then evict the pods.
    Drain,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Notify => "notify",
            Action::Cordon => "cordon",
            Action::Drain => "drain",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "notify" => Some(Action::Notify),
            "cordon" => Some(Action::Cordon),
            "drain" => Some(Action::Drain),
            _ => None,
        }
    }
}

/// What ends a notice's hold on the node, so the node goes back into service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undo {
    /// Never: the VM goes away (a terminate notice).
    Never,
    /// When the notice is no longer live (GCP maintenance back to `NONE`, an Azure event gone).
    WhenGone,
    /// When the notice left before `starts` (cancelled), or the machine booted after we acted
    /// (AWS scheduled events).
    WhenCancelledOrRebooted { starts: SystemTime },
    /// When the machine booted after we acted and the notice is no longer live (a spot stop or
    /// hibernate that came back).
    WhenRebooted,
    /// This long after we acted, or when the notice is gone (AWS rebalance: `REBALANCE_TTL`).
    After(Duration),
}

/// One notice. `id` is stable across polls, restarts and pods: it is recorded on the Node, so a
/// restarted handler resumes instead of starting over, and never acts twice on one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub provider: Provider,
    pub kind: Kind,
    /// Stable id, e.g. `aws-spot/terminate/2026-11-26T08:42:00Z`.
    pub id: String,
    /// The cloud's own word for it: `terminate`, `system-reboot`, `Preempt`, …
    pub detail: String,
    pub action: Action,
    /// When to act; `None`: at once. Scheduled events are acted on some time before they start.
    pub act_at: Option<SystemTime>,
    /// When the cloud takes the VM (or starts the maintenance); `None`: no deadline (rebalance).
    pub deadline: Option<SystemTime>,
    /// False when the cloud gave no time and `deadline` is a documented default from receipt.
    pub deadline_given: bool,
    /// Pods still blocked by a budget at the deadline minus the reserve may be deleted directly.
    pub force: bool,
    pub undo: Undo,
    /// The cloud's own timestamp of the notice, in this machine's clock: a notice older than the
    /// machine's boot is a leftover from before a stop/start or reboot.
    pub time: Option<SystemTime>,
}

/// A notice older than the machine's boot by more than this is stale.
pub const STALE_SLACK: Duration = Duration::from_secs(60);

/// The furthest ahead a spot interruption is ever announced (AWS: 2 minutes, Alibaba: about 5),
/// with room for a drifting clock. A notice time further ahead than this from when the notice
/// was first seen is a broken document or clock: the VM still goes soon, so the deadline is the
/// cloud's usual lead instead, and budget-blocked pods are still deleted in time.
pub const MAX_SPOT_LEAD: Duration = Duration::from_secs(15 * 60);

/// A spot notice's deadline and whether it is the one the cloud gave: `time` when given and
/// plausible, else `default_deadline` (`default_lead` after the notice was first seen).
pub fn spot_deadline(
    time: Option<SystemTime>,
    default_deadline: SystemTime,
    default_lead: Duration,
) -> (SystemTime, bool) {
    let latest = default_deadline - default_lead + MAX_SPOT_LEAD;
    match time {
        Some(t) if t <= latest => (t, true),
        _ => (default_deadline, false),
    }
}

impl Notice {
    /// True when the notice's own time lies before this machine booted (by more than
    /// [`STALE_SLACK`]): it cannot be about this run of the machine.
    pub fn is_stale(&self, boot: Option<SystemTime>) -> bool {
        match (self.time, boot) {
            (Some(t), Some(b)) => t + STALE_SLACK < b,
            _ => false,
        }
    }

    /// Due now: its action should be in force.
    pub fn is_due(&self, now: SystemTime) -> bool {
        self.act_at.is_none_or(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn spot_deadline_takes_a_plausible_time_and_the_default_otherwise() {
        let lead = Duration::from_secs(120);
        let seen = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let dflt = seen + lead;
        let s = |n: u64| seen + Duration::from_secs(n);
        let cases = [
            (None, (dflt, false)),
            (Some(s(120)), (s(120), true)),
            (
                Some(seen - Duration::from_secs(30)),
                (seen - Duration::from_secs(30), true),
            ),
            (Some(s(300)), (s(300), true)),
            (Some(s(900)), (s(900), true)),
            (Some(s(901)), (dflt, false)),
            (Some(s(86_400 * 365 * 8000)), (dflt, false)),
        ];
        for (time, want) in cases {
            assert_eq!(spot_deadline(time, dflt, lead), want, "{time:?}");
        }
    }

    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn kinds_round_trip_and_actions_order() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_slug(k.slug()), Some(k));
        }
        assert!(Action::Drain > Action::Cordon && Action::Cordon > Action::Notify);
        for a in [Action::Notify, Action::Cordon, Action::Drain] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }

    #[test]
    fn staleness_and_due() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let n = Notice {
            provider: Provider::Aws,
            kind: Kind::SpotInterruption,
            id: "x".into(),
            detail: "stop".into(),
            action: Action::Drain,
            act_at: None,
            deadline: Some(t),
            deadline_given: true,
            force: true,
            undo: Undo::WhenRebooted,
            time: Some(t),
        };
        assert!(n.is_stale(Some(t + Duration::from_secs(3600))));
        assert!(!n.is_stale(Some(t + Duration::from_secs(30))));
        assert!(!n.is_stale(None));
        assert!(n.is_due(t));
        let later = Notice {
            act_at: Some(t + Duration::from_secs(10)),
            ..n
        };
        assert!(!later.is_due(t) && later.is_due(t + Duration::from_secs(10)));
    }
}
