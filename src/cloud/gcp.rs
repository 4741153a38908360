//! Google Compute Engine / GKE: the metadata server at `GCP_METADATA_URL`, plain HTTP through
//! minreq, `Metadata-Flavor: Google` on every request (facts: `gcp-azure-metadata.md` Part A).
//!
//! | watcher | key | notice | deadline | undo |
//! |---|---|---|---|---|
//! | `gcp-preempted` | `instance/preempted` | `TRUE`: spot interruption, drain | first seen + `GCP_PREEMPTION_DEADLINE` (30 s) | after a reboot, once `FALSE` (a preempted VM is stopped; restarted, it is a fresh node) |
//! | `gcp-maintenance` | `instance/maintenance-event` | `TERMINATE_ON_HOST_MAINTENANCE` (or the legacy `SHUTDOWN_…`): drain; `MIGRATE_ON_HOST_MAINTENANCE`: `GCP_MIGRATE` (notify) | first seen + 60 s | when the value is back to `NONE` |
//!
//! Each key is one hanging GET (`wait_for_change=true&last_etag=…&timeout_sec=60`, client
//! timeout 5 s longer), so a change is seen within the round trip and an idle node costs one
//! request per key per minute. The first request of each watcher carries an ETag that cannot
//! match (`0`), so it answers at once: both keys are read at start-up and a restart during an
//! event acts at once. A 503 or a network error is retried after 1 s (Google's advice), and
//! so is anything else unexpected: the notice window is 30 s.
//!
//! GCE gives no time with either signal, so the deadline counts from when the value was first
//! seen: the watcher keeps it while the value stays, and the ledger on the Node keeps it across
//! restarts (a notice without a given deadline never moves the recorded one).

use std::time::{Duration, SystemTime};

use super::session::fail;
use super::{clean_value, Cloud, Identity, Watcher, UNKNOWN};
use crate::config::Config;
use crate::metadata::{self, Method};
use crate::notice::{Action, Kind, Notice, Provider, Undo};
use crate::{info, warn};

pub const PREEMPTED: &str = "instance/preempted";
pub const MAINTENANCE: &str = "instance/maintenance-event";
const V1: &str = "/computeMetadata/v1/";
const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");
/// Google: `maintenance-event` changes 60 s before the maintenance.
pub const MAINTENANCE_DEADLINE: Duration = Duration::from_secs(60);
/// `timeout_sec` of each hanging GET: the longest the server holds it.
pub const HANG: Duration = Duration::from_secs(60);
/// The client waits this much longer than the server may hold.
const HANG_MARGIN: Duration = Duration::from_secs(5);
/// Google's sample code retries after about a second.
pub const RETRY: Duration = Duration::from_secs(1);

/// Settings the GCP watchers need.
#[derive(Debug, Clone)]
pub struct Settings {
    pub base: String,
    pub timeout: Duration,
    pub preemption_deadline: Duration,
    pub migrate: Option<Action>,
}

/// `instance/preempted`: `TRUE` is the notice, `FALSE` none; anything else is an error.
pub fn parse_preempted(value: &str, deadline: SystemTime) -> Result<Option<Notice>, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "FALSE" => Ok(None),
        "TRUE" => Ok(Some(Notice {
            provider: Provider::Gcp,
            kind: Kind::SpotInterruption,
            id: "gcp-preempted".to_string(),
            detail: "preempted".to_string(),
            action: Action::Drain,
            act_at: None,
            deadline: Some(deadline),
            deadline_given: false,
            force: true,
            undo: Undo::WhenRebooted,
            time: None,
        })),
        _ => Err(format!(
            "metadata response {V1}{PREEMPTED}: expected TRUE or FALSE, got {:?}",
            crate::json::snippet(value.as_bytes())
        )),
    }
}

/// `instance/maintenance-event`: `NONE` is none; a stop drains by `deadline`; a live migration
/// gets `migrate` (`None`: ignored); an unknown value is announced only.
pub fn parse_maintenance(
    value: &str,
    deadline: SystemTime,
    migrate: Option<Action>,
) -> Option<Notice> {
    let v = value.trim().to_ascii_uppercase();
    let (action, force) = match v.as_str() {
        "NONE" | "" => return None,
        "TERMINATE_ON_HOST_MAINTENANCE" | "SHUTDOWN_ON_HOST_MAINTENANCE" => (Action::Drain, true),
        "MIGRATE_ON_HOST_MAINTENANCE" => (migrate?, false),
        _ => (Action::Notify, false),
    };
    let detail = clean_value(&v);
    Some(Notice {
        provider: Provider::Gcp,
        kind: Kind::ScheduledMaintenance,
        id: format!("gcp-maintenance/{detail}"),
        detail,
        action,
        act_at: None,
        deadline: Some(deadline),
        deadline_given: false,
        force,
        undo: Undo::WhenGone,
        time: None,
    })
}

/// An ETag fit to be sent back in a query string (`pub` for the fuzzers).
#[doc(hidden)]
pub fn valid_etag(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 64
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Does the server at `base` answer as the GCE metadata server (it says `Metadata-Flavor:
/// Google` on every answer)?
pub fn probe(base: &str, timeout: Duration) -> bool {
    let url = format!("{}{V1}instance/id", base.trim_end_matches('/'));
    metadata::send(Method::Get, &url, &[FLAVOR], b"", timeout)
        .is_ok_and(|a| a.header("metadata-flavor") == Some("Google"))
}

/// The GCP cloud.
pub struct Gcp {
    settings: Settings,
}

impl Gcp {
    pub fn new(cfg: &Config) -> Gcp {
        Gcp {
            settings: Settings {
                base: cfg.gcp_metadata_url.trim_end_matches('/').to_string(),
                timeout: cfg.imds_timeout,
                preemption_deadline: cfg.gcp_preemption_deadline,
                migrate: cfg.gcp_migrate,
            },
        }
    }

    /// One plain value; "unknown" (with a warning) when it cannot be read.
    fn value(&self, key: &str) -> String {
        let url = format!("{}{V1}{key}", self.settings.base);
        match metadata::send(Method::Get, &url, &[FLAVOR], b"", self.settings.timeout) {
            Ok(a) if a.status == 200 => clean_value(&a.text()),
            Ok(a) => {
                warn!(
                    "could not read instance metadata",
                    path = key,
                    status = a.status
                );
                UNKNOWN.to_string()
            }
            Err(e) => {
                warn!("could not read instance metadata", path = key, error = e);
                UNKNOWN.to_string()
            }
        }
    }
}

/// `projects/123/zones/us-central1-a` → `us-central1-a`.
fn last_segment(v: String) -> String {
    match v.rsplit_once('/') {
        Some((_, last)) if !last.is_empty() => last.to_string(),
        _ => v,
    }
}

impl Cloud for Gcp {
    fn provider(&self) -> Provider {
        Provider::Gcp
    }

    fn identity(&self) -> Identity {
        let project = self.value("project/project-id");
        if project != UNKNOWN {
            info!("google cloud project", project = project);
        }
        Identity {
            instance_id: self.value("instance/id"),
            instance_type: last_segment(self.value("instance/machine-type")),
            zone: last_segment(self.value("instance/zone")),
        }
    }

    fn watchers(&self) -> Vec<Box<dyn Watcher>> {
        [
            ("gcp-preempted", PREEMPTED),
            ("gcp-maintenance", MAINTENANCE),
        ]
        .into_iter()
        .map(|(name, key)| {
            Box::new(Key {
                name,
                key,
                settings: self.settings.clone(),
                etag: "0".to_string(),
                seen: None,
            }) as Box<dyn Watcher>
        })
        .collect()
    }

    fn polling(&self) -> String {
        format!(
            "polling {base}{V1}{PREEMPTED} and {base}{V1}{MAINTENANCE} with hanging GETs (wait_for_change, up to {}s each)",
            HANG.as_secs(),
            base = self.settings.base
        )
    }
}

/// One key, watched with hanging GETs.
struct Key {
    name: &'static str,
    key: &'static str,
    settings: Settings,
    /// The ETag of the last answer (`0` at first: answers at once).
    etag: String,
    /// The value last seen and when it was first seen (the default deadline counts from there).
    seen: Option<(String, SystemTime)>,
}

impl Watcher for Key {
    fn name(&self) -> &'static str {
        self.name
    }
    fn period(&self) -> Duration {
        Duration::ZERO
    }
    fn retry_period(&self) -> Duration {
        RETRY
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let path = format!("{V1}{}", self.key);
        let url = format!(
            "{}{path}?wait_for_change=true&last_etag={}&timeout_sec={}",
            self.settings.base,
            self.etag,
            HANG.as_secs()
        );
        let a = metadata::send(Method::Get, &url, &[FLAVOR], b"", HANG + HANG_MARGIN)
            .map_err(|e| fail(&path, e))?;
        crate::debug!("polled", url = url, status = a.status);
        if a.status != 200 {
            return Err(fail(&path, format!("expected 200, got HTTP {}", a.status)));
        }
        // Without a usable ETag the next request could not wait: fail (retried in a second)
        // rather than spin.
        match a.header("etag").map(str::trim) {
            Some(e) if valid_etag(e) => self.etag = e.to_string(),
            other => {
                self.etag = "0".to_string();
                return Err(fail(
                    &path,
                    format!(
                        "expected an ETag header, got {:?}",
                        other.map(|e| crate::json::snippet(e.as_bytes()))
                    ),
                ));
            }
        }
        let value = a.text();
        let since = match &self.seen {
            Some((v, t)) if *v == value => *t,
            _ => {
                let now = SystemTime::now();
                self.seen = Some((value.clone(), now));
                now
            }
        };
        let notice = if self.key == PREEMPTED {
            parse_preempted(&value, since + self.settings.preemption_deadline)?
        } else {
            parse_maintenance(&value, since + MAINTENANCE_DEADLINE, self.settings.migrate)
        };
        Ok(notice.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn preempted_values() {
        let n = parse_preempted("TRUE\n", t(30)).unwrap().unwrap();
        assert_eq!(
            (
                n.id.as_str(),
                n.kind,
                n.action,
                n.deadline,
                n.deadline_given,
                n.force,
                n.undo
            ),
            (
                "gcp-preempted",
                Kind::SpotInterruption,
                Action::Drain,
                Some(t(30)),
                false,
                true,
                Undo::WhenRebooted
            )
        );
        assert_eq!(parse_preempted("FALSE", t(30)), Ok(None));
        assert_eq!(parse_preempted("false", t(30)), Ok(None));
        assert!(parse_preempted("<html>", t(30))
            .unwrap_err()
            .contains("expected TRUE or FALSE"));
    }

    #[test]
    fn maintenance_values() {
        let d = t(60);
        // (value, GCP_MIGRATE, want: id, action, force)
        let cases: &[(&str, Option<Action>, Option<(&str, Action, bool)>)] = &[
            ("NONE", Some(Action::Drain), None),
            ("", None, None),
            (
                "TERMINATE_ON_HOST_MAINTENANCE",
                None,
                Some((
                    "gcp-maintenance/TERMINATE_ON_HOST_MAINTENANCE",
                    Action::Drain,
                    true,
                )),
            ),
            (
                "SHUTDOWN_ON_HOST_MAINTENANCE\n",
                None,
                Some((
                    "gcp-maintenance/SHUTDOWN_ON_HOST_MAINTENANCE",
                    Action::Drain,
                    true,
                )),
            ),
            (
                "MIGRATE_ON_HOST_MAINTENANCE",
                Some(Action::Notify),
                Some((
                    "gcp-maintenance/MIGRATE_ON_HOST_MAINTENANCE",
                    Action::Notify,
                    false,
                )),
            ),
            (
                "MIGRATE_ON_HOST_MAINTENANCE",
                Some(Action::Cordon),
                Some((
                    "gcp-maintenance/MIGRATE_ON_HOST_MAINTENANCE",
                    Action::Cordon,
                    false,
                )),
            ),
            ("MIGRATE_ON_HOST_MAINTENANCE", None, None),
            (
                "SOMETHING_NEW",
                None,
                Some(("gcp-maintenance/SOMETHING_NEW", Action::Notify, false)),
            ),
        ];
        for (value, migrate, want) in cases {
            let got = parse_maintenance(value, d, *migrate);
            match (got, want) {
                (None, None) => {}
                (Some(n), Some((id, action, force))) => {
                    assert_eq!(
                        (n.id.as_str(), n.action, n.force, n.undo, n.deadline),
                        (*id, *action, *force, Undo::WhenGone, Some(d)),
                        "{value}"
                    );
                    assert!(!n.deadline_given && n.kind == Kind::ScheduledMaintenance);
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn etags_and_segments() {
        assert!(valid_etag("9f2c4d1e8a7b6c55"));
        assert!(!valid_etag(""));
        assert!(!valid_etag("a&b=c"));
        assert!(!valid_etag(&"a".repeat(65)));
        assert_eq!(
            last_segment("projects/123/zones/us-central1-a".into()),
            "us-central1-a"
        );
        assert_eq!(last_segment("e2-standard-4".into()), "e2-standard-4");
        assert_eq!(last_segment(UNKNOWN.into()), UNKNOWN);
    }
}
