//! AWS: the EC2 instance metadata service (IMDS) at `IMDS_URL`, plain HTTP through minreq.
//!
//! Signals, one watcher each (paths and formats: `shared/reference/aws-imds.md`):
//!
//! | watcher | path | notice | period |
//! |---|---|---|---|
//! | `aws-spot` | `spot/instance-action` | `terminate`/`stop`/`hibernate` by `time`: drain | `POLL_INTERVAL` (900 ms) |
//! | `aws-rebalance` | `events/recommendations/rebalance` | `REBALANCE` (cordon), no deadline, undone after `REBALANCE_TTL` | 5 × `POLL_INTERVAL` (4.5 s: AWS says "every 5 seconds") |
//! | `aws-scheduled` | `events/maintenance/scheduled` | each `active` event: `SCHEDULED_EVENTS` (drain) at `NotBefore − SCHEDULED_EVENT_LEAD` | 30 × `POLL_INTERVAL` (27 s: events come days ahead) |
//! | `aws-asg` | `autoscaling/target-lifecycle-state` | `Terminated`: drain by now + `ASG_LIFECYCLE_DEADLINE` | 5 × `POLL_INTERVAL` (4.5 s) |
//! | `notice-url` | `NOTICE_URL` (seed mode, instead of all of the above) | HTTP 200: drain | `POLL_INTERVAL` |
//!
//! IMDSv2 first: a session token from `PUT /latest/api/token`, shared by the watchers, reused
//! until shortly before it expires, dropped and fetched again on a 401. When the token endpoint
//! says no (403/404/405…), IMDSv1 (no token). When the PUT times out, its response probably died
//! at the hop limit of 1 inside a pod network namespace: we say so once, with the fix.
//!
//! Clocks: every IMDS answer carries a `Date` header. When it differs from this machine's clock
//! by more than two seconds, the times in the answer (notice `time`, `NotBefore`, `noticeTime`)
//! are moved into this machine's clock, so a drifting node still acts on the real deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nanoserde::DeJson;

use super::session::{self, fail, path_of, Session};
use super::{clean_value, Cloud, Identity, Watcher};
use crate::config::Config;
use crate::metadata::{self, Answer, Skew};
use crate::notice::{Action, Kind, Notice, Provider, Undo};
use crate::time::{format_rfc3339, parse_http_date, parse_rfc3339};
use crate::warn;

pub const INSTANCE_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
pub const REBALANCE_PATH: &str = "/latest/meta-data/events/recommendations/rebalance";
pub const SCHEDULED_PATH: &str = "/latest/meta-data/events/maintenance/scheduled";
pub const LIFECYCLE_PATH: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";
/// When a notice carries no usable time, AWS's documented lead time applies.
pub const DEFAULT_LEAD: Duration = Duration::from_secs(120);
/// Periods of the other signals, in multiples of `POLL_INTERVAL` (the spot notice's period):
/// AWS recommends checking for rebalance recommendations every 5 seconds.
pub const REBALANCE_PERIODS: u32 = 5;
/// Scheduled events are announced days ahead and acted on `SCHEDULED_EVENT_LEAD` before they
/// start: every 30 polls is plenty.
pub const SCHEDULED_PERIODS: u32 = 30;
/// The ASG lifecycle state changes to `Terminated` when a termination hook holds the instance.
pub const LIFECYCLE_PERIODS: u32 = 5;

const KNOWN_ACTIONS: [&str; 3] = ["terminate", "stop", "hibernate"];

/// Settings the AWS watchers need (from the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub poll_interval: Duration,
    pub notice_url: Option<String>,
    pub rebalance: Option<Action>,
    pub rebalance_ttl: Duration,
    pub scheduled: Option<Action>,
    pub scheduled_lead: Duration,
    pub asg_lifecycle: bool,
    pub asg_deadline: Duration,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            poll_interval: c.poll_interval,
            notice_url: c.notice_url.clone(),
            rebalance: c.rebalance,
            rebalance_ttl: c.rebalance_ttl,
            scheduled: c.scheduled_events,
            scheduled_lead: c.scheduled_event_lead,
            asg_lifecycle: c.asg_lifecycle,
            asg_deadline: c.asg_lifecycle_deadline,
        }
    }
}

/// The AWS cloud.
pub struct Aws {
    imds: Arc<Session>,
    settings: Settings,
}

impl Aws {
    pub fn new(imds_url: &str, timeout: Duration, settings: Settings) -> Aws {
        Aws {
            imds: Arc::new(Session::new(imds_url, timeout, &session::AWS)),
            settings,
        }
    }
}

impl Cloud for Aws {
    fn provider(&self) -> Provider {
        Provider::Aws
    }

    fn identity(&self) -> Identity {
        Identity {
            instance_id: self.imds.identity_value("instance-id"),
            instance_type: self.imds.identity_value("instance-type"),
            zone: self.imds.identity_value("placement/availability-zone"),
        }
    }

    fn polling(&self) -> String {
        let url = match &self.settings.notice_url {
            Some(u) => u.clone(),
            None => format!("{}{INSTANCE_ACTION_PATH}", self.imds.base),
        };
        // The seed's words.
        format!(
            "polling {url} every {} second(s)",
            crate::handler::trim_float(self.settings.poll_interval.as_secs_f64())
        )
    }

    fn watchers(&self) -> Vec<Box<dyn Watcher>> {
        let s = &self.settings;
        let imds = || self.imds.clone();
        if let Some(url) = &s.notice_url {
            return vec![Box::new(NoticeUrl {
                on_imds: is_under(url, &self.imds.base),
                url: url.clone(),
                imds: imds(),
                period: s.poll_interval,
                default_deadline: None,
            })];
        }
        let mut out: Vec<Box<dyn Watcher>> = vec![Box::new(Spot {
            imds: imds(),
            period: s.poll_interval,
            unknown_logged: false,
            far_logged: false,
            default_deadline: None,
        })];
        if let Some(action) = s.rebalance {
            out.push(Box::new(Rebalance {
                imds: imds(),
                action,
                ttl: s.rebalance_ttl,
                period: s.poll_interval * REBALANCE_PERIODS,
            }));
        }
        if let Some(action) = s.scheduled {
            out.push(Box::new(Scheduled {
                imds: imds(),
                action,
                lead: s.scheduled_lead,
                period: s.poll_interval * SCHEDULED_PERIODS,
                retry: s.poll_interval * REBALANCE_PERIODS,
            }));
        }
        if s.asg_lifecycle {
            out.push(Box::new(Lifecycle {
                imds: imds(),
                deadline_after: s.asg_deadline,
                deadline: None,
                period: s.poll_interval * LIFECYCLE_PERIODS,
            }));
        }
        out
    }
}

/// Does the service at `base` answer as EC2's IMDS? One tokenless GET: an instance id, or the
/// 401 IMDSv2-only instances give (GCE answers 404 there, Azure 400).
pub fn probe(base: &str, timeout: Duration) -> bool {
    let url = format!(
        "{}/latest/meta-data/instance-id",
        base.trim_end_matches('/')
    );
    match metadata::send(metadata::Method::Get, &url, &[], b"", timeout) {
        Ok(a) if a.status == 200 => {
            let id = a.text();
            id.starts_with("i-") && clean_value(&id) == id
        }
        Ok(a) => a.status == 401,
        Err(_) => false,
    }
}

/// True when `url` is `base` or below it (`base/…`).
fn is_under(url: &str, base: &str) -> bool {
    url.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// 200: a document; 404: absent; anything else: an error.
fn document(answer: &Answer, path: &str) -> Result<Option<()>, String> {
    match answer.status {
        200 => Ok(Some(())),
        404 => Ok(None),
        s => Err(fail(path, format!("expected 200 or 404, got HTTP {s}"))),
    }
}

/// Moves a time the metadata service gave into our clock.
fn local(t: SystemTime, skew: Option<Skew>) -> SystemTime {
    skew.map_or(t, |s| s.to_local(t))
}

/// `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}` from `spot/instance-action`.
#[derive(DeJson)]
struct InstanceAction {
    action: String,
    time: Option<String>,
}

/// Parses `spot/instance-action`. `default_deadline` is used when the notice has no usable
/// time (AWS's two minutes from when we first saw it, kept while the notice stays).
pub fn parse_instance_action(
    body: &[u8],
    skew: Option<Skew>,
    default_deadline: SystemTime,
) -> Result<Notice, String> {
    let ia: InstanceAction = crate::json::parse(body).map_err(|e| {
        format!(
            "metadata response {INSTANCE_ACTION_PATH}: {e} (body {:?})",
            crate::json::snippet(body)
        )
    })?;
    let action = ia.action.trim().to_ascii_lowercase();
    if action.is_empty()
        || action.len() > 32
        || !action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "metadata response {INSTANCE_ACTION_PATH}: expected an action such as terminate, stop or hibernate, got {:?}",
            crate::json::snippet(ia.action.as_bytes())
        ));
    }
    let time = ia.time.as_deref().and_then(parse_rfc3339);
    Ok(spot_notice(
        "aws-spot",
        action,
        time,
        skew,
        default_deadline,
    ))
}

fn spot_notice(
    source: &str,
    action: String,
    time: Option<SystemTime>,
    skew: Option<Skew>,
    default_deadline: SystemTime,
) -> Notice {
    let id = match time {
        Some(t) => format!("{source}/{action}/{}", format_rfc3339(t)),
        None => format!("{source}/{action}/no-time"),
    };
    // A stopped or hibernated instance comes back; a terminated one (or an unknown action:
    // acted on as a terminate) does not.
    let undo = if action == "stop" || action == "hibernate" {
        Undo::WhenRebooted
    } else {
        Undo::Never
    };
    let time = time.map(|t| local(t, skew));
    let (deadline, deadline_given) =
        crate::notice::spot_deadline(time, default_deadline, DEFAULT_LEAD);
    Notice {
        provider: if source == "aws-spot" {
            Provider::Aws
        } else {
            Provider::NoticeUrl
        },
        kind: Kind::SpotInterruption,
        id,
        detail: action,
        action: Action::Drain,
        act_at: None,
        deadline: Some(deadline),
        deadline_given,
        force: true,
        undo,
        time,
    }
}

/// Seed compatibility (`NOTICE_URL`): HTTP 200 is the notice; the body may hold the
/// `termination-time` timestamp, or the instance-action JSON, or anything else.
pub fn parse_notice_url(body: &[u8], skew: Option<Skew>, default_deadline: SystemTime) -> Notice {
    if let Ok(n) = parse_instance_action(body, skew, default_deadline) {
        return Notice {
            id: n.id.replacen("aws-spot", "notice-url", 1),
            provider: Provider::NoticeUrl,
            ..n
        };
    }
    let time = std::str::from_utf8(body).ok().and_then(parse_rfc3339);
    spot_notice(
        "notice-url",
        "terminate".to_string(),
        time,
        skew,
        default_deadline,
    )
}

/// `{"noticeTime": "2020-10-27T08:22:00Z"}`.
#[derive(DeJson)]
struct RebalanceDoc {
    #[nserde(rename = "noticeTime")]
    notice_time: String,
}

pub fn parse_rebalance(
    body: &[u8],
    skew: Option<Skew>,
    action: Action,
    ttl: Duration,
) -> Result<Notice, String> {
    let doc: RebalanceDoc =
        crate::json::parse(body).map_err(|e| format!("metadata response {REBALANCE_PATH}: {e}"))?;
    let t = parse_rfc3339(&doc.notice_time).ok_or_else(|| {
        format!(
            "metadata response {REBALANCE_PATH}: expected an RFC 3339 noticeTime, got {:?}",
            crate::json::snippet(doc.notice_time.as_bytes())
        )
    })?;
    Ok(Notice {
        provider: Provider::Aws,
        kind: Kind::Rebalance,
        id: format!("aws-rebalance/{}", format_rfc3339(t)),
        detail: "rebalance-recommendation".to_string(),
        action,
        act_at: None,
        deadline: None,
        deadline_given: false,
        force: false,
        undo: Undo::After(ttl),
        time: Some(local(t, skew)),
    })
}

/// One element of `events/maintenance/scheduled`.
#[derive(DeJson)]
struct ScheduledEvent {
    #[nserde(rename = "NotBefore")]
    not_before: String,
    #[nserde(rename = "Code")]
    code: String,
    #[nserde(rename = "EventId")]
    event_id: String,
    #[nserde(rename = "State")]
    state: Option<String>,
}

/// Parses the scheduled-events array: one notice per `active` event. Events that cannot be
/// read are skipped with the reason in the second half of the answer.
pub fn parse_scheduled(
    body: &[u8],
    skew: Option<Skew>,
    action: Action,
    lead: Duration,
) -> Result<(Vec<Notice>, Vec<String>), String> {
    let events: Vec<ScheduledEvent> =
        crate::json::parse(body).map_err(|e| format!("metadata response {SCHEDULED_PATH}: {e}"))?;
    let (mut notices, mut skipped) = (Vec::new(), Vec::new());
    for e in events {
        if e.state.as_deref().is_some_and(|s| s != "active") {
            continue;
        }
        let id_ok = !e.event_id.is_empty()
            && e.event_id.len() <= 128
            && e.event_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let Some(not_before) = parse_http_date(&e.not_before) else {
            skipped.push(format!(
                "event {:?}: expected NotBefore like \"21 Jan 2019 09:00:43 GMT\", got {:?}",
                crate::json::snippet(e.event_id.as_bytes()),
                crate::json::snippet(e.not_before.as_bytes())
            ));
            continue;
        };
        if !id_ok {
            skipped.push(format!(
                "expected an EventId of letters, digits and '-', got {:?}",
                crate::json::snippet(e.event_id.as_bytes())
            ));
            continue;
        }
        let starts = local(not_before, skew);
        notices.push(Notice {
            provider: Provider::Aws,
            kind: Kind::ScheduledMaintenance,
            id: format!("aws-scheduled/{}", e.event_id),
            detail: clean_value(&e.code),
            action,
            act_at: Some(starts.checked_sub(lead).unwrap_or(starts)),
            deadline: Some(starts),
            deadline_given: true,
            force: true,
            undo: Undo::WhenCancelledOrRebooted { starts },
            time: Some(starts),
        });
    }
    Ok((notices, skipped))
}

/// The ASG lifecycle state: `Terminated` is the only one we act on.
pub fn parse_lifecycle(text: &str, deadline: SystemTime) -> Option<Notice> {
    (text.trim() == "Terminated").then(|| Notice {
        provider: Provider::Aws,
        kind: Kind::Termination,
        id: "aws-asg/terminated".to_string(),
        detail: "Terminated".to_string(),
        action: Action::Drain,
        act_at: None,
        deadline: Some(deadline),
        deadline_given: false,
        force: true,
        undo: Undo::Never,
        time: None,
    })
}

struct Spot {
    imds: Arc<Session>,
    period: Duration,
    unknown_logged: bool,
    /// The "implausibly far ahead" warning was given (once per handler).
    far_logged: bool,
    /// The default deadline of a notice without a time, fixed when first seen.
    default_deadline: Option<SystemTime>,
}

impl Watcher for Spot {
    fn name(&self) -> &'static str {
        "aws-spot"
    }
    fn period(&self) -> Duration {
        self.period
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let a = self.imds.get(INSTANCE_ACTION_PATH)?;
        if document(&a, INSTANCE_ACTION_PATH)?.is_none() {
            self.default_deadline = None;
            return Ok(vec![]);
        }
        let skew = self.imds.skew(&a);
        let default = *self
            .default_deadline
            .get_or_insert_with(|| SystemTime::now() + DEFAULT_LEAD);
        let n = parse_instance_action(&a.body, skew, default)?;
        if n.time.is_some() && !n.deadline_given && !self.far_logged {
            warn!(
                "spot notice time is implausibly far ahead; taking AWS's two minutes from when it was first seen",
                notice = n.id,
                deadline = format_rfc3339(default)
            );
            self.far_logged = true;
        }
        if !KNOWN_ACTIONS.contains(&n.detail.as_str()) && !self.unknown_logged {
            warn!(
                "unknown spot notice action; draining anyway",
                action = n.detail
            );
            self.unknown_logged = true;
        }
        Ok(vec![n])
    }
}

struct NoticeUrl {
    url: String,
    on_imds: bool,
    imds: Arc<Session>,
    period: Duration,
    default_deadline: Option<SystemTime>,
}

impl Watcher for NoticeUrl {
    fn name(&self) -> &'static str {
        "notice-url"
    }
    fn period(&self) -> Duration {
        self.period
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let a = self.imds.get_url(&self.url, self.on_imds)?;
        if document(&a, &path_of(&self.url))?.is_none() {
            self.default_deadline = None;
            return Ok(vec![]);
        }
        let skew = metadata::clock_skew(&a, SystemTime::now());
        let default = *self
            .default_deadline
            .get_or_insert_with(|| SystemTime::now() + DEFAULT_LEAD);
        Ok(vec![parse_notice_url(&a.body, skew, default)])
    }
}

struct Rebalance {
    imds: Arc<Session>,
    action: Action,
    ttl: Duration,
    period: Duration,
}

impl Watcher for Rebalance {
    fn name(&self) -> &'static str {
        "aws-rebalance"
    }
    fn period(&self) -> Duration {
        self.period
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let a = self.imds.get(REBALANCE_PATH)?;
        if document(&a, REBALANCE_PATH)?.is_none() {
            return Ok(vec![]);
        }
        let skew = self.imds.skew(&a);
        parse_rebalance(&a.body, skew, self.action, self.ttl).map(|n| vec![n])
    }
}

struct Scheduled {
    imds: Arc<Session>,
    action: Action,
    lead: Duration,
    period: Duration,
    retry: Duration,
}

impl Watcher for Scheduled {
    fn name(&self) -> &'static str {
        "aws-scheduled"
    }
    fn period(&self) -> Duration {
        self.period
    }
    fn retry_period(&self) -> Duration {
        self.retry
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let a = self.imds.get(SCHEDULED_PATH)?;
        if document(&a, SCHEDULED_PATH)?.is_none() || a.text().is_empty() {
            return Ok(vec![]);
        }
        let skew = self.imds.skew(&a);
        let (notices, skipped) = parse_scheduled(&a.body, skew, self.action, self.lead)?;
        for why in skipped {
            warn!(
                "ignoring a scheduled event that cannot be read",
                reason = why
            );
        }
        Ok(notices)
    }
}

struct Lifecycle {
    imds: Arc<Session>,
    deadline_after: Duration,
    /// Fixed when `Terminated` is first seen.
    deadline: Option<SystemTime>,
    period: Duration,
}

impl Watcher for Lifecycle {
    fn name(&self) -> &'static str {
        "aws-asg"
    }
    fn period(&self) -> Duration {
        self.period
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        let a = self.imds.get(LIFECYCLE_PATH)?;
        if document(&a, LIFECYCLE_PATH)?.is_none() {
            return Ok(vec![]);
        }
        let text = a.text();
        if text != "Terminated" {
            self.deadline = None;
            return Ok(vec![]);
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| SystemTime::now() + self.deadline_after);
        Ok(parse_lifecycle(&text, deadline).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_505_722_800)
    }

    #[test]
    fn instance_action_table() {
        let t = parse_rfc3339("2017-09-18T08:22:00Z").unwrap();
        let dflt = now() + DEFAULT_LEAD;
        let cases: &[(&str, Result<(&str, SystemTime, bool, Undo), &str>)] = &[
            (
                r#"{"action": "terminate", "time": "2017-09-18T08:22:00Z"}"#,
                Ok(("terminate", t, true, Undo::Never)),
            ),
            (
                r#"{"action":"stop","time":"2017-09-18T08:22:00Z"}"#,
                Ok(("stop", t, true, Undo::WhenRebooted)),
            ),
            (
                r#"{"action":"Hibernate","time":"2017-09-18T08:22:00Z","extra":[1]}"#,
                Ok(("hibernate", t, true, Undo::WhenRebooted)),
            ),
            (
                r#"{"action":"terminate"}"#,
                Ok(("terminate", dflt, false, Undo::Never)),
            ),
            (
                r#"{"action":"terminate","time":"soon"}"#,
                Ok(("terminate", dflt, false, Undo::Never)),
            ),
            (
                r#"{"action":"reboot-ish","time":"2017-09-18T08:22:00Z"}"#,
                Ok(("reboot-ish", t, true, Undo::Never)),
            ),
            (r#"{"action":"","time":"x"}"#, Err("expected an action")),
            (r#"{"action":"a b"}"#, Err("expected an action")),
            (r#"{"time":"2017-09-18T08:22:00Z"}"#, Err("instance-action")),
            (r#"{"action":"terminate""#, Err("instance-action")),
            ("<html></html>", Err("instance-action")),
        ];
        for (body, want) in cases {
            match (parse_instance_action(body.as_bytes(), None, dflt), want) {
                (Ok(n), Ok((action, deadline, given, undo))) => {
                    assert_eq!(
                        (
                            n.detail.as_str(),
                            n.deadline,
                            n.deadline_given,
                            n.undo,
                            n.kind,
                            n.action
                        ),
                        (
                            *action,
                            Some(*deadline),
                            *given,
                            *undo,
                            Kind::SpotInterruption,
                            Action::Drain
                        ),
                        "{body}"
                    );
                }
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{body}: {e}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ids_are_stable_and_times_follow_the_metadata_clock() {
        let body = br#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#;
        let a = parse_instance_action(body, None, now()).unwrap();
        let b = parse_instance_action(body, None, now() + Duration::from_secs(30)).unwrap();
        assert_eq!(a.id, "aws-spot/terminate/2017-09-18T08:22:00Z");
        assert_eq!(a.id, b.id);
        // The metadata service's clock is 300 s ahead of ours: the deadline moves 300 s earlier
        // in our clock, the id (the cloud's own words) stays.
        let skew = Skew::between(now() + Duration::from_secs(300), now());
        let c = parse_instance_action(body, Some(skew), now()).unwrap();
        assert_eq!(c.id, a.id);
        assert_eq!(
            c.deadline,
            Some(parse_rfc3339("2017-09-18T08:17:00Z").unwrap())
        );
        let seed = parse_notice_url(b"2017-09-18T08:22:00Z", None, now());
        assert_eq!(seed.id, "notice-url/terminate/2017-09-18T08:22:00Z");
        assert_eq!(seed.provider, Provider::NoticeUrl);
        assert!(seed.deadline_given);
        let seed_json = parse_notice_url(body, None, now());
        assert_eq!(seed_json.id, "notice-url/terminate/2017-09-18T08:22:00Z");
        let seed_junk = parse_notice_url(b"<html>ok</html>", None, now());
        assert_eq!(seed_junk.id, "notice-url/terminate/no-time");
        assert_eq!(seed_junk.deadline, Some(now()));
    }

    #[test]
    fn rebalance_documents() {
        let n = parse_rebalance(
            br#"{"noticeTime": "2020-10-27T08:22:00Z"}"#,
            None,
            Action::Cordon,
            Duration::from_secs(1800),
        )
        .unwrap();
        assert_eq!(n.id, "aws-rebalance/2020-10-27T08:22:00Z");
        assert_eq!(
            (n.kind, n.action, n.deadline, n.force, n.undo),
            (
                Kind::Rebalance,
                Action::Cordon,
                None,
                false,
                Undo::After(Duration::from_secs(1800))
            )
        );
        for bad in [
            &br#"{"noticeTime": "later"}"#[..],
            br#"{}"#,
            br#"{"noticeTime":"#,
        ] {
            assert!(
                parse_rebalance(bad, None, Action::Cordon, Duration::ZERO).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scheduled_events() {
        let body = br#"[
          {"NotBefore" : "21 Jan 2019 09:00:43 GMT", "Code" : "system-reboot", "Description" : "scheduled reboot",
           "EventId" : "instance-event-0d59937288b749b32", "NotAfter" : "21 Jan 2019 09:17:23 GMT", "State" : "active"},
          {"NotBefore" : "1 Feb 2019 02:00:00 GMT", "Code" : "instance-stop", "Description" : "x",
           "EventId" : "instance-event-2", "State" : "active"},
          {"NotBefore" : "1 Feb 2019 02:00:00 GMT", "Code" : "instance-stop", "EventId" : "instance-event-3",
           "State" : "canceled"},
          {"NotBefore" : "2019-02-01T02:00:00Z", "Code" : "instance-stop", "EventId" : "instance-event-4", "State" : "active"},
          {"NotBefore" : "1 Feb 2019 02:00:00 GMT", "Code" : "instance-stop", "EventId" : "../x", "State" : "active"}
        ]"#;
        let lead = Duration::from_secs(900);
        let (ns, skipped) = parse_scheduled(body, None, Action::Drain, lead).unwrap();
        assert_eq!(
            ns.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            [
                "aws-scheduled/instance-event-0d59937288b749b32",
                "aws-scheduled/instance-event-2"
            ]
        );
        let start = parse_rfc3339("2019-01-21T09:00:43Z").unwrap();
        assert_eq!(ns[0].deadline, Some(start));
        assert_eq!(ns[0].act_at, Some(start - lead));
        assert_eq!(ns[0].undo, Undo::WhenCancelledOrRebooted { starts: start });
        assert_eq!(ns[0].detail, "system-reboot");
        assert_eq!(
            ns[1].deadline,
            Some(parse_rfc3339("2019-02-01T02:00:00Z").unwrap())
        );
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("NotBefore"), "{skipped:?}");
        assert_eq!(
            parse_scheduled(b"[]", None, Action::Drain, lead)
                .unwrap()
                .0
                .len(),
            0
        );
        assert!(parse_scheduled(b"{\"a\":1}", None, Action::Drain, lead).is_err());
    }

    #[test]
    fn lifecycle_states() {
        let d = now() + Duration::from_secs(120);
        let n = parse_lifecycle("Terminated\n", d).unwrap();
        assert_eq!(
            (n.kind, n.deadline, n.undo),
            (Kind::Termination, Some(d), Undo::Never)
        );
        for s in ["InService", "Warmed:Terminated", "Detached", ""] {
            assert!(parse_lifecycle(s, d).is_none(), "{s}");
        }
    }

    #[test]
    fn urls_under_the_service() {
        assert!(is_under("http://a/b", "http://a"));
        assert!(!is_under("http://ab/b", "http://a"));
    }
}
