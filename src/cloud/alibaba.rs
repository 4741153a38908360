//! Alibaba Cloud ECS spot instances: the metadata service at `ALIBABA_METADATA_URL`, plain HTTP
//! through minreq (facts: `gcp-azure-metadata.md` Part C, sim/README.md's Alibaba findings).
//!
//! One watcher, `alibaba-spot`, polls `instance/spot/termination-time` every `POLL_INTERVAL`:
//! 404 (or an empty 200, as an older Alibaba page says) means none; a UTC time such as
//! `2015-01-05T18:02:00Z` is the release time, about 5 minutes ahead: drain by then. A 200 with
//! a body that is not a time is acted on too, with a 2-minute deadline from when it was first
//! seen (a changed format must not leave the node undrained).
//!
//! Security hardening mode works like IMDSv2 (the shared [`Session`]): a token from `PUT
//! /latest/api/token` (`X-aliyun-ecs-metadata-token-ttl-seconds`), sent as
//! `X-aliyun-ecs-metadata-token`; without a token when the PUT is refused. An instance in
//! hardened-only mode answers 403 to a tokenless GET: a token is asked for again then.
//!
//! Undo: a spot instance may be stopped rather than released, and come back: the notice is
//! undone once the machine has rebooted and the time is gone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::session::{self, fail, Session};
use super::{Cloud, Identity, Watcher};
use crate::config::Config;
use crate::metadata::{self, Skew};
use crate::notice::{Action, Kind, Notice, Provider, Undo};
use crate::time::{format_rfc3339, parse_rfc3339};
use crate::warn;

pub const TERMINATION_PATH: &str = "/latest/meta-data/instance/spot/termination-time";
const REGION_PATH: &str = "/latest/meta-data/region-id";
/// The deadline of a notice whose time cannot be read, from when it was first seen.
pub const DEFAULT_LEAD: Duration = Duration::from_secs(120);

/// Parses the termination-time body: `None` when empty. `default_deadline` serves a body that
/// is not a time.
pub fn parse_termination(
    body: &str,
    skew: Option<Skew>,
    default_deadline: SystemTime,
) -> Option<Notice> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    let time = parse_rfc3339(body);
    let local = time.map(|t| skew.map_or(t, |s| s.to_local(t)));
    let (deadline, deadline_given) =
        crate::notice::spot_deadline(local, default_deadline, DEFAULT_LEAD);
    Some(Notice {
        provider: Provider::Alibaba,
        kind: Kind::SpotInterruption,
        id: match time {
            Some(t) => format!("alibaba-spot/{}", format_rfc3339(t)),
            None => "alibaba-spot/no-time".to_string(),
        },
        detail: "reclaim".to_string(),
        action: Action::Drain,
        act_at: None,
        deadline: Some(deadline),
        deadline_given,
        force: true,
        undo: Undo::WhenRebooted,
        time: local,
    })
}

/// Does the service at `base` answer as Alibaba's (a region id, where EC2 has none)? A
/// tokenless GET first (one timeout where nothing answers); a token only when the instance is
/// in hardened-only mode (403).
pub fn probe(base: &str, timeout: Duration) -> bool {
    let region = |a: &metadata::Answer| {
        let v = a.text();
        a.status == 200
            && v.len() <= 64
            && v.contains('-')
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let url = format!("{}{REGION_PATH}", base.trim_end_matches('/'));
    match metadata::send(metadata::Method::Get, &url, &[], b"", timeout) {
        Ok(a) if a.status == 403 => Session::new(base, timeout, &session::ALIBABA)
            .get(REGION_PATH)
            .is_ok_and(|a| region(&a)),
        Ok(a) => region(&a),
        Err(_) => false,
    }
}

/// The Alibaba cloud.
pub struct Alibaba {
    session: Arc<Session>,
    period: Duration,
}

impl Alibaba {
    pub fn new(cfg: &Config) -> Alibaba {
        Alibaba {
            session: Arc::new(Session::new(
                &cfg.alibaba_metadata_url,
                cfg.imds_timeout,
                &session::ALIBABA,
            )),
            period: cfg.poll_interval,
        }
    }
}

impl Cloud for Alibaba {
    fn provider(&self) -> Provider {
        Provider::Alibaba
    }

    fn identity(&self) -> Identity {
        Identity {
            instance_id: self.session.identity_value("instance-id"),
            instance_type: self.session.identity_value("instance/instance-type"),
            zone: self.session.identity_value("zone-id"),
        }
    }

    fn watchers(&self) -> Vec<Box<dyn Watcher>> {
        vec![Box::new(Spot {
            session: self.session.clone(),
            period: self.period,
            default_deadline: None,
            odd_logged: false,
        })]
    }

    fn polling(&self) -> String {
        format!(
            "polling {}{TERMINATION_PATH} every {} second(s)",
            self.session.base,
            crate::handler::trim_float(self.period.as_secs_f64())
        )
    }
}

struct Spot {
    session: Arc<Session>,
    period: Duration,
    /// The deadline of a notice without a readable time, fixed when first seen.
    default_deadline: Option<SystemTime>,
    /// A warning about the termination-time was given (once while it stays).
    odd_logged: bool,
}

impl Watcher for Spot {
    fn name(&self) -> &'static str {
        "alibaba-spot"
    }
    fn period(&self) -> Duration {
        self.period
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let a = self.session.get(TERMINATION_PATH)?;
        match a.status {
            200 => {}
            404 => {
                self.default_deadline = None;
                return Ok(vec![]);
            }
            s => {
                return Err(fail(
                    TERMINATION_PATH,
                    format!("expected 200 or 404, got HTTP {s}"),
                ))
            }
        }
        let skew = self.session.skew(&a);
        let text = a.text();
        let default = *self
            .default_deadline
            .get_or_insert_with(|| SystemTime::now() + DEFAULT_LEAD);
        let n = parse_termination(&text, skew, default);
        match &n {
            None => {
                self.default_deadline = None;
                self.odd_logged = false;
            }
            Some(_) if self.odd_logged => {}
            Some(n) if n.time.is_some() && !n.deadline_given => warn!(
                "spot termination-time is implausibly far ahead; taking two minutes from when it was first seen",
                notice = n.id
            ),
            Some(n) if !n.deadline_given => warn!(
                "spot termination-time is not a time; draining anyway",
                body = crate::json::snippet(text.as_bytes())
            ),
            Some(_) => {}
        }
        if n.as_ref().is_some_and(|n| !n.deadline_given) {
            self.odd_logged = true;
        }
        Ok(n.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn termination_times() {
        let dflt = UNIX_EPOCH + Duration::from_secs(1_420_481_000);
        let t = parse_rfc3339("2015-01-05T18:02:00Z").unwrap();
        let n = parse_termination("2015-01-05T18:02:00Z\n", None, dflt).unwrap();
        assert_eq!(
            (
                n.id.as_str(),
                n.kind,
                n.action,
                n.deadline,
                n.deadline_given,
                n.force,
                n.undo,
                n.time
            ),
            (
                "alibaba-spot/2015-01-05T18:02:00Z",
                Kind::SpotInterruption,
                Action::Drain,
                Some(t),
                true,
                true,
                Undo::WhenRebooted,
                Some(t)
            )
        );
        assert_eq!(parse_termination("", None, dflt), None);
        assert_eq!(parse_termination("  \n", None, dflt), None);
        let junk = parse_termination("2015-01-05 18:02:00", None, dflt).unwrap();
        assert_eq!(
            (junk.id.as_str(), junk.deadline, junk.deadline_given),
            ("alibaba-spot/no-time", Some(dflt), false)
        );
        // The metadata clock 60 s ahead: the deadline is 60 s earlier in ours; the id stays.
        let skew = Skew::between(dflt + Duration::from_secs(60), dflt);
        let s = parse_termination("2015-01-05T18:02:00Z", Some(skew), dflt).unwrap();
        assert_eq!(s.id, n.id);
        assert_eq!(s.deadline, Some(t - Duration::from_secs(60)));
    }
}
