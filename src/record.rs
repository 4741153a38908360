//! What the handler writes on its Node, and reads back after a restart.
//!
//! Annotations (prefix `spot-termination-notice-handler/`):
//! - `notices`: the ledger, one JSON object per notice we have seen and not forgotten
//!   (`{"id":…,"kind":"spot-interruption","action":"drain","status":"active","seen":…,
//!   "acted":…,"deadline":…,"force":true,"undo":"never","sent":"seen,drained,acked"}`; `sent` lists `seen`, `drained`,
//!   `back`, `detached`, `acked`). It is the truth a
//!   restarted handler resumes from: what is in force, what was undone, what was said.
//! - `before`: the node as it was before our first action (`{"unschedulable":false,
//!   "lbLabel":null}`), so undoing restores exactly that: a node someone had cordoned by hand
//!   stays cordoned.
//! - `notice`, `phase`, `deadline`, `acted-at`, `summary`: the same for people and tools
//!   (`kubectl get node -o yaml`): the governing notice, `cordoned`/`draining`/`drained`/
//!   `incomplete`, its deadline, when we acted, the drain's outcome.
//!
//! Parsing is forgiving: a ledger that cannot be read is logged and treated as empty (the
//! handler then acts on what the cloud says now, which is safe); one bad entry drops only itself.

use std::time::{Duration, SystemTime};

use nanoserde::DeJson;

use crate::decision::{Entry, Ledger, Sent, Status};
use crate::json::escape;
use crate::notice::{Action, Kind, Undo};
use crate::time::{format_rfc3339, parse_rfc3339};

/// Prefix of our Node annotations, labels' values and taint keys.
pub const PREFIX: &str = "spot-termination-notice-handler/";
/// The load-balancer exclusion label and the value that says it is ours.
pub const LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
pub const LB_VALUE: &str = "spot-termination-notice-handler";

/// The node as it was before we touched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Before {
    /// `None`: unknown (the node could not be read before the cordon): never uncordon then.
    pub unschedulable: Option<bool>,
    /// The value the load-balancer label had (`None`: absent).
    pub lb_label: Option<String>,
}

impl Before {
    pub fn to_json(&self) -> String {
        format!(
            "{{\"unschedulable\":{},\"lbLabel\":{}}}",
            self.unschedulable
                .map_or("null".to_string(), |b| b.to_string()),
            self.lb_label.as_deref().map_or("null".to_string(), escape)
        )
    }

    pub fn parse(s: &str) -> Result<Before, String> {
        #[derive(DeJson)]
        struct Raw {
            unschedulable: Option<bool>,
            #[nserde(rename = "lbLabel")]
            lb_label: Option<String>,
        }
        let r: Raw = crate::json::parse(s.as_bytes())?;
        Ok(Before {
            unschedulable: r.unschedulable,
            lb_label: r.lb_label,
        })
    }
}

#[derive(DeJson)]
struct RawEntry {
    id: String,
    source: Option<String>,
    kind: String,
    detail: Option<String>,
    action: String,
    status: String,
    seen: String,
    acted: Option<String>,
    act_at: Option<String>,
    deadline: Option<String>,
    force: Option<bool>,
    undo: String,
    sent: Option<String>,
}

fn undo_to_str(u: Undo) -> String {
    match u {
        Undo::Never => "never".to_string(),
        Undo::WhenGone => "gone".to_string(),
        Undo::WhenCancelledOrRebooted { starts } => format!("cancelled:{}", format_rfc3339(starts)),
        Undo::WhenRebooted => "rebooted".to_string(),
        Undo::After(d) => format!("after:{}", d.as_secs()),
    }
}

fn undo_from_str(s: &str) -> Option<Undo> {
    Some(match s {
        "never" => Undo::Never,
        "gone" => Undo::WhenGone,
        "rebooted" => Undo::WhenRebooted,
        _ => {
            if let Some(t) = s.strip_prefix("cancelled:") {
                Undo::WhenCancelledOrRebooted {
                    starts: parse_rfc3339(t)?,
                }
            } else if let Some(n) = s.strip_prefix("after:") {
                Undo::After(Duration::from_secs(n.parse().ok()?))
            } else {
                return None;
            }
        }
    })
}

fn sent_to_str(s: Sent) -> String {
    let mut parts = Vec::new();
    if s.seen {
        parts.push("seen");
    }
    if s.drained {
        parts.push("drained");
    }
    if s.back {
        parts.push("back");
    }
    if s.detached {
        parts.push("detached");
    }
    if s.acked {
        parts.push("acked");
    }
    parts.join(",")
}

fn sent_from_str(s: &str) -> Sent {
    let has = |w: &str| s.split(',').any(|p| p.trim() == w);
    Sent {
        seen: has("seen"),
        drained: has("drained"),
        back: has("back"),
        detached: has("detached"),
        acked: has("acked"),
    }
}

fn entry_to_json(e: &Entry) -> String {
    let time = |t: Option<SystemTime>| t.map_or("null".to_string(), |t| escape(&format_rfc3339(t)));
    format!(
        "{{\"id\":{},\"source\":{},\"kind\":\"{}\",\"detail\":{},\"action\":\"{}\",\"status\":\"{}\",\"seen\":{},\"acted\":{},\"act_at\":{},\"deadline\":{},\"force\":{},\"undo\":{},\"sent\":\"{}\"}}",
        escape(&e.id),
        escape(&e.source),
        e.kind.slug(),
        escape(&e.detail),
        e.action.as_str(),
        e.status.as_str(),
        time(Some(e.seen)),
        time(e.acted),
        time(e.act_at),
        time(e.deadline),
        e.force,
        escape(&undo_to_str(e.undo)),
        sent_to_str(e.sent)
    )
}

fn entry_from_raw(r: RawEntry) -> Option<Entry> {
    let time = |s: &Option<String>| s.as_deref().and_then(parse_rfc3339);
    Some(Entry {
        kind: Kind::from_slug(&r.kind)?,
        detail: r.detail.unwrap_or_default(),
        action: Action::parse(&r.action)?,
        status: Status::parse(&r.status)?,
        seen: parse_rfc3339(&r.seen)?,
        acted: time(&r.acted),
        act_at: time(&r.act_at),
        deadline: time(&r.deadline),
        force: r.force.unwrap_or(false),
        undo: undo_from_str(&r.undo)?,
        sent: sent_from_str(r.sent.as_deref().unwrap_or("")),
        source: r.source.unwrap_or_default(),
        id: r.id,
    })
}

/// The ledger as the `notices` annotation value.
pub fn ledger_to_json(ledger: &Ledger) -> String {
    let items: Vec<String> = ledger.iter().map(entry_to_json).collect();
    format!("[{}]", items.join(","))
}

/// Reads the `notices` annotation. Entries that cannot be read are dropped and counted.
pub fn ledger_from_json(s: &str) -> Result<(Ledger, usize), String> {
    let raw: Vec<RawEntry> = crate::json::parse(s.as_bytes())?;
    let total = raw.len();
    let ledger: Ledger = raw.into_iter().filter_map(entry_from_raw).collect();
    let dropped = total - ledger.len();
    Ok((ledger, dropped))
}

/// A taint value must be a label value: at most 63 characters of `[A-Za-z0-9._-]`, starting
/// and ending with an alphanumeric. Notice ids (`aws-spot/terminate/2026-…:00Z`) are mapped to
/// that alphabet (`/` and `:` become `.` and `-`) and cut to 63.
pub fn label_value(id: &str) -> String {
    let mapped: String = id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            '/' => '.',
            _ => '-',
        })
        .collect();
    let cut: String = mapped.chars().take(63).collect();
    cut.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Our taint key for a reason.
pub fn taint_key(kind: Kind) -> String {
    format!("{PREFIX}{}", kind.slug())
}

/// True for a taint key we own.
pub fn is_our_taint(key: &str) -> bool {
    key.strip_prefix(PREFIX)
        .is_some_and(|rest| Kind::from_slug(rest).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn ledger_round_trips() {
        let ledger = vec![
            Entry {
                id: "aws-spot/terminate/2027-01-15T08:00:00Z".into(),
                source: "aws-spot".into(),
                kind: Kind::SpotInterruption,
                detail: "terminate".into(),
                action: Action::Drain,
                status: Status::Active,
                seen: t(1),
                acted: Some(t(1)),
                act_at: None,
                deadline: Some(t(120)),
                force: true,
                undo: Undo::Never,
                sent: Sent {
                    seen: true,
                    ..Sent::default()
                },
            },
            Entry {
                id: "aws-scheduled/instance-event-0d59937288b749b32".into(),
                source: "aws-scheduled".into(),
                kind: Kind::ScheduledMaintenance,
                detail: "system-reboot".into(),
                action: Action::Drain,
                status: Status::Pending,
                seen: t(2),
                acted: None,
                act_at: Some(t(1000)),
                deadline: Some(t(1900)),
                force: true,
                undo: Undo::WhenCancelledOrRebooted { starts: t(1900) },
                sent: Sent {
                    seen: true,
                    drained: true,
                    back: true,
                    detached: true,
                    acked: true,
                },
            },
            Entry {
                id: "aws-rebalance/2027-01-15T07:58:00Z".into(),
                source: "aws-rebalance".into(),
                kind: Kind::Rebalance,
                detail: String::new(),
                action: Action::Cordon,
                status: Status::Undone,
                seen: t(3),
                acted: Some(t(3)),
                act_at: None,
                deadline: None,
                force: false,
                undo: Undo::After(Duration::from_secs(1800)),
                sent: Sent::default(),
            },
        ];
        let json = ledger_to_json(&ledger);
        crate::json::check(json.as_bytes()).unwrap();
        assert_eq!(ledger_from_json(&json).unwrap(), (ledger, 0));
    }

    #[test]
    fn bad_entries_drop_alone() {
        let json = r#"[{"id":"a","kind":"spot-interruption","action":"drain","status":"active","seen":"2027-01-15T08:00:00Z","undo":"never"},
                       {"id":"b","kind":"alien","action":"drain","status":"active","seen":"2027-01-15T08:00:00Z","undo":"never"}]"#;
        let (ledger, dropped) = ledger_from_json(json).unwrap();
        assert_eq!((ledger.len(), dropped, ledger[0].id.as_str()), (1, 1, "a"));
        assert!(ledger_from_json("{").is_err());
        assert!(ledger_from_json("{}").is_err());
    }

    #[test]
    fn before_round_trips() {
        for b in [
            Before {
                unschedulable: Some(false),
                lb_label: None,
            },
            Before {
                unschedulable: None,
                lb_label: Some("someone \"else\"".into()),
            },
        ] {
            assert_eq!(Before::parse(&b.to_json()).unwrap(), b);
        }
    }

    #[test]
    fn label_values_are_valid() {
        let cases = [
            (
                "aws-spot/terminate/2026-11-26T08:42:00Z",
                "aws-spot.terminate.2026-11-26T08-42-00Z",
            ),
            (
                "azure/5DD55B64-45AD-49D3-BBC9-F57D4EA97BD7",
                "azure.5DD55B64-45AD-49D3-BBC9-F57D4EA97BD7",
            ),
            ("/x/", "x"),
        ];
        for (id, want) in cases {
            assert_eq!(label_value(id), want);
        }
        let long = label_value(&format!("aws-scheduled/{}", "e".repeat(80)));
        assert_eq!(long.len(), 63);
        assert!(is_our_taint(
            "spot-termination-notice-handler/spot-interruption"
        ));
        assert!(!is_our_taint("spot-termination-notice-handler/other"));
        assert!(!is_our_taint("node.kubernetes.io/unschedulable"));
    }
}
