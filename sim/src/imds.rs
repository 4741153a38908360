//! Fake AWS EC2 instance metadata service (plain HTTP), modelled on real IMDS and on AEMM.
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 1..=21600` returns an
//!   opaque token and echoes the TTL; a missing or out-of-range TTL is 400, `X-Forwarded-For` is
//!   403. Tokens expire after their TTL (real time).
//! - GETs: in [`ImdsMode::Optional`] a GET without a token works and one with an unknown or
//!   expired token is 401; in [`ImdsMode::Required`] a GET without a valid token is 401.
//!   [`ImdsMode::TokenStatus`] makes the token endpoint answer a fixed status (v1 GETs still work);
//!   [`ImdsMode::TokenHang`] makes it read the PUT and never answer (hop limit 1 seen from a pod
//!   network namespace), holding the socket for at most [`HANG_LIMIT`].
//! - Everything is `text/plain` (JSON documents included), errors are small XHTML pages.
//! - `spot/instance-action` and `spot/termination-time` are 404 until the scripted notice time;
//!   `termination-time` only exists for `terminate`, as on real IMDS.
//! - `events/recommendations/rebalance` (`{"noticeTime": ...}`, 404 when absent),
//!   `events/maintenance/scheduled` (a JSON array of `active` events with the
//!   `D Mon YYYY HH:MM:SS GMT` date format, day not zero-padded; `[]` or 404 when there are
//!   none, see [`EmptyEvents`]) and `events/maintenance/history` (completed and cancelled
//!   events, Description prefixed `[Completed]`/`[Canceled]`), and
//!   `autoscaling/target-lifecycle-state` (plain text, 404 until a transition).
//! - Every response carries a `Date` header (IMF-fixdate) on the metadata [`Clock`], which may
//!   be skewed from the machine's; times generated from relative offsets use that clock too.
//! - Changes can be scripted ([`AwsStep`], applied when due at the next request).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::http::{reason, ConnCtx, Request, Response};
use crate::metadata::{shift, Clock, Pending};
use crate::util::{self, rfc3339};

/// How long a hanging token PUT holds its socket.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);

/// IMDS behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsMode {
    /// `HttpTokens=optional`: v1 and v2 both work (default).
    Optional,
    /// `HttpTokens=required`: GETs without a valid token get 401.
    Required,
    /// The token endpoint answers this status (e.g. 403, 404, 405); v1 GETs still work.
    TokenStatus(u16),
    /// The token endpoint reads the PUT and never answers (hop limit 1); v1 GETs still work.
    TokenHang,
    /// `HttpEndpoint=disabled`: every request gets 403.
    Disabled,
}

/// The scripted spot interruption notice.
#[derive(Debug, Clone)]
pub struct Notice {
    /// When the notice becomes visible.
    pub appear_at: Instant,
    /// `terminate`, `stop` or `hibernate`.
    pub action: String,
    /// The notice's `time` field.
    pub deadline: SystemTime,
}

/// What `events/maintenance/scheduled` (and `history`) answer when there are no events. Real
/// IMDS is unverified: AWS documents neither; NTH treats any non-2xx as an error yet runs with
/// this monitor on by default, which suggests `[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmptyEvents {
    /// `200` with body `[]` (default).
    #[default]
    EmptyArray,
    /// `404` (XHTML page), like the other absent items.
    NotFound,
}

/// A scheduled maintenance event to add, with times in whole seconds relative to the moment it
/// is added (negative: in the past), on the metadata clock.
#[derive(Debug, Clone)]
pub struct MaintenanceEvent {
    id: String,
    code: String,
    description: Option<String>,
    not_before_in: i64,
    not_after_in: Option<i64>,
    deadline_in: Option<i64>,
}

impl MaintenanceEvent {
    /// `code` (`system-reboot`, `instance-reboot`, `system-maintenance`, `instance-retirement`,
    /// `instance-stop`) with `NotBefore` = now + `not_before_in` s, `NotAfter` = NotBefore + 1 h
    /// (real events have one unless they are `instance-stop`s without an end), no
    /// `NotBeforeDeadline`, Description `The instance is scheduled for <code>` (AEMM's wording)
    /// and a random `instance-event-<17 hex>` id.
    pub fn new(code: &str, not_before_in: i64) -> MaintenanceEvent {
        MaintenanceEvent {
            id: format!(
                "instance-event-{}",
                util::rand_string(17, b"0123456789abcdef")
            ),
            code: code.to_string(),
            description: None,
            not_before_in,
            not_after_in: Some(not_before_in + 3600),
            deadline_in: None,
        }
    }

    /// Sets the `EventId`.
    pub fn id(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }

    /// The `EventId` (to cancel or complete it later).
    pub fn event_id(&self) -> &str {
        &self.id
    }

    /// Sets the `Description`.
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.to_string());
        self
    }

    /// `NotAfter` = now + `secs` (`None`: no NotAfter field, as seen on a real `instance-stop`).
    pub fn not_after(mut self, secs: Option<i64>) -> Self {
        self.not_after_in = secs;
        self
    }

    /// `NotBeforeDeadline` = now + `secs` (`None`: absent, the default).
    pub fn not_before_deadline(mut self, secs: Option<i64>) -> Self {
        self.deadline_in = secs;
        self
    }
}

/// A scheduled event as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEvent {
    /// `EventId`.
    pub id: String,
    /// `Code`.
    pub code: String,
    /// `Description` (with the `[Completed]`/`[Canceled]` prefix once in history).
    pub description: String,
    /// `NotBefore`.
    pub not_before: SystemTime,
    /// `NotAfter`, when present.
    pub not_after: Option<SystemTime>,
    /// `NotBeforeDeadline`, when present.
    pub deadline: Option<SystemTime>,
    /// `active`, `completed` or `canceled`.
    pub state: String,
}

/// A scripted AWS IMDS change.
#[derive(Debug, Clone)]
pub enum AwsStep {
    /// Spot notice `action` with `time` = the step's instant + `deadline_in` (metadata clock).
    Spot {
        /// `terminate`, `stop` or `hibernate`.
        action: String,
        /// Time from the notice's appearance to its `time`.
        deadline_in: Duration,
    },
    /// The spot notice goes (404).
    SpotClear,
    /// Rebalance recommendation with `noticeTime` = the step's instant.
    Rebalance,
    /// The rebalance recommendation goes (404).
    RebalanceClear,
    /// A scheduled maintenance event appears.
    Scheduled(MaintenanceEvent),
    /// Scheduled event `id` is cancelled.
    Cancel(String),
    /// Scheduled event `id` is completed.
    Complete(String),
    /// `autoscaling/target-lifecycle-state` becomes this (`None`: 404).
    Lifecycle(Option<String>),
}

/// One IMDS request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct ImdsRequest {
    /// HTTP method.
    pub method: String,
    /// Path (with query, as sent).
    pub path: String,
    /// An `X-aws-ec2-metadata-token` header was sent.
    pub token_sent: bool,
    /// ... and it was a live token.
    pub token_valid: bool,
    /// The `X-aws-ec2-metadata-token-ttl-seconds` request header, if any.
    pub ttl_header: Option<String>,
    /// Response status; 0 when the request was left hanging.
    pub status: u16,
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub time: SystemTime,
}

/// The instance identity served by the fake IMDS.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `instance-id`.
    pub instance_id: String,
    /// `instance-type`.
    pub instance_type: String,
    /// `placement/availability-zone`.
    pub zone: String,
    /// `placement/region`.
    pub region: String,
    /// `local-hostname`.
    pub local_hostname: String,
    /// `local-ipv4`.
    pub local_ipv4: String,
}

/// Mutable IMDS state.
#[derive(Debug)]
pub struct ImdsState {
    /// Current mode.
    pub mode: ImdsMode,
    /// The scripted notice, if any.
    pub notice: Option<Notice>,
    /// Raw body override for `spot/instance-action` (served with 200 while set).
    pub notice_body: Option<Vec<u8>>,
    /// Rebalance recommendation: (visible from, noticeTime).
    pub rebalance: Option<(Instant, SystemTime)>,
    /// Forced statuses by exact path.
    pub forced: HashMap<String, u16>,
    /// Live tokens and their expiry.
    pub tokens: HashMap<String, Instant>,
    /// Identity data.
    pub identity: Identity,
    /// Request log.
    pub log: Vec<ImdsRequest>,
    /// The metadata clock (`Date` headers, generated times).
    pub clock: Arc<Clock>,
    /// Scripted changes not yet applied.
    pub pending: Pending<AwsStep>,
    /// Active scheduled maintenance events.
    pub scheduled: Vec<ScheduledEvent>,
    /// Completed and cancelled events.
    pub history: Vec<ScheduledEvent>,
    /// What the events paths answer when empty.
    pub empty_events: EmptyEvents,
    /// `autoscaling/target-lifecycle-state`.
    pub lifecycle: Option<String>,
    /// The address does not answer at all on this host (requests are held, bounded).
    pub silent: bool,
    /// When the instance launched (identity document `pendingTime`).
    pub launched: SystemTime,
    /// Extra items by path (instance tags, instance-profile credentials, ...); the directories
    /// above them list them.
    pub items: BTreeMap<String, Vec<u8>>,
}

impl ImdsState {
    /// Fresh state.
    pub fn new(mode: ImdsMode, identity: Identity) -> ImdsState {
        ImdsState {
            mode,
            notice: None,
            notice_body: None,
            rebalance: None,
            forced: HashMap::new(),
            tokens: HashMap::new(),
            identity,
            log: Vec::new(),
            clock: Arc::new(Clock::new((Instant::now(), SystemTime::now()), 0)),
            pending: Pending::default(),
            scheduled: Vec::new(),
            history: Vec::new(),
            empty_events: EmptyEvents::default(),
            lifecycle: None,
            silent: false,
            launched: SystemTime::now() - Duration::from_secs(3 * 86_400),
            items: BTreeMap::new(),
        }
    }

    /// Applies the scripted changes due at `now`.
    pub fn tick(&mut self, now: Instant) {
        for (at, step) in self.pending.due(now) {
            self.apply(at, step);
        }
    }

    /// Applies one change as of instant `at`.
    pub fn apply(&mut self, at: Instant, step: AwsStep) {
        let t = self.clock.service_time(at);
        match step {
            AwsStep::Spot {
                action,
                deadline_in,
            } => {
                self.notice = Some(Notice {
                    appear_at: at,
                    action,
                    deadline: t + deadline_in,
                })
            }
            AwsStep::SpotClear => self.notice = None,
            AwsStep::Rebalance => self.rebalance = Some((at, t)),
            AwsStep::RebalanceClear => self.rebalance = None,
            AwsStep::Scheduled(ev) => {
                let when = |s: i64| shift(t, s * 1000);
                self.scheduled.retain(|e| e.id != ev.id);
                self.scheduled.push(ScheduledEvent {
                    description: ev
                        .description
                        .unwrap_or_else(|| format!("The instance is scheduled for {}", ev.code)),
                    id: ev.id,
                    code: ev.code,
                    not_before: when(ev.not_before_in),
                    not_after: ev.not_after_in.map(when),
                    deadline: ev.deadline_in.map(when),
                    state: "active".into(),
                });
            }
            AwsStep::Cancel(id) => {
                self.retire(&id, "canceled", "[Canceled]");
            }
            AwsStep::Complete(id) => {
                self.retire(&id, "completed", "[Completed]");
            }
            AwsStep::Lifecycle(s) => self.lifecycle = s,
        }
    }

    /// Moves an active event to history. False if there is no such active event.
    pub fn retire(&mut self, id: &str, state: &str, prefix: &str) -> bool {
        let Some(i) = self.scheduled.iter().position(|e| e.id == id) else {
            return false;
        };
        let mut e = self.scheduled.remove(i);
        e.state = state.to_string();
        e.description = format!("{prefix} {}", e.description);
        self.history.push(e);
        true
    }

    fn active_notice(&self, now: Instant) -> Option<&Notice> {
        self.notice.as_ref().filter(|n| n.appear_at <= now)
    }
}

/// The XHTML error page real IMDS (and AEMM) send.
pub fn xhtml(status: u16) -> Response {
    let title = format!("{status} - {}", reason(status));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n\
 <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    Response::with_body(status, "text/html", body).header("Server", "EC2ws")
}

fn text(body: impl Into<Vec<u8>>) -> Response {
    Response::with_body(200, "text/plain", body)
        .header("Accept-Ranges", "none")
        .header("Server", "EC2ws")
}

/// Handles one IMDS request; returns the response and the log entry to record.
pub fn handle(st: &mut ImdsState, req: &Request, _ctx: &ConnCtx) -> (Response, ImdsRequest) {
    let now = Instant::now();
    st.tick(now);
    let token = req.header("x-aws-ec2-metadata-token");
    let token_valid = token.is_some_and(|t| st.tokens.get(t).is_some_and(|exp| *exp > now));
    st.tokens.retain(|_, exp| *exp > now);
    let mut entry = ImdsRequest {
        method: req.method.clone(),
        path: req.target.clone(),
        token_sent: token.is_some(),
        token_valid,
        ttl_header: req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .map(str::to_string),
        status: 0,
        at: now,
        time: SystemTime::now(),
    };
    let resp = if st.silent {
        Response::hang(HANG_LIMIT)
    } else {
        respond(st, req, token.is_some(), token_valid, now).header("Date", &st.clock.date_header())
    };
    entry.status = resp.status;
    (resp, entry)
}

fn respond(
    st: &mut ImdsState,
    req: &Request,
    token_sent: bool,
    token_valid: bool,
    now: Instant,
) -> Response {
    if st.mode == ImdsMode::Disabled {
        return xhtml(403);
    }
    let path = req.path.as_str();
    if path == "/latest/api/token" {
        if req.method != "PUT" {
            return xhtml(405);
        }
        match st.mode {
            ImdsMode::TokenStatus(s) => return xhtml(s),
            ImdsMode::TokenHang => return Response::hang(HANG_LIMIT),
            _ => {}
        }
        if req.header("x-forwarded-for").is_some() {
            return xhtml(403);
        }
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
            return xhtml(400);
        };
        let raw: Vec<u8> = (0..42).map(|_| util::rand_u64() as u8).collect();
        let token = format!("AQAEA{}", util::base64(&raw, false));
        st.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl as u64));
        return text(token).header("X-aws-ec2-metadata-token-ttl-seconds", &ttl.to_string());
    }
    if req.method != "GET" && req.method != "HEAD" {
        return xhtml(405);
    }
    if token_sent && !token_valid {
        return xhtml(401);
    }
    if !token_valid && st.mode == ImdsMode::Required {
        return xhtml(401);
    }
    if let Some(&s) = st.forced.get(path) {
        return if s == 200 { text("") } else { xhtml(s) };
    }
    match lookup(st, path, now).or_else(|| item(st, path)) {
        Some(body) => text(body),
        None => xhtml(404),
    }
}

fn lookup(st: &ImdsState, path: &str, now: Instant) -> Option<Vec<u8>> {
    let id = &st.identity;
    let notice = st.active_notice(now);
    let s = |v: &str| Some(v.as_bytes().to_vec());
    let trimmed = path.trim_end_matches('/');
    let rebalance = st.rebalance.filter(|(at, _)| *at <= now);
    match trimmed {
        "/latest/meta-data/spot/instance-action" => {
            if let Some(raw) = &st.notice_body {
                return Some(raw.clone());
            }
            let n = notice?;
            s(&format!(
                "{{\"action\": \"{}\", \"time\": \"{}\"}}",
                n.action,
                rfc3339(n.deadline)
            ))
        }
        "/latest/meta-data/spot/termination-time" => {
            let n = notice.filter(|n| n.action == "terminate")?;
            s(&rfc3339(n.deadline))
        }
        "/latest/meta-data/spot" => {
            let mut items = Vec::new();
            if notice.is_some() || st.notice_body.is_some() {
                items.push("instance-action");
            }
            if notice.is_some_and(|n| n.action == "terminate") {
                items.push("termination-time");
            }
            if items.is_empty() {
                None
            } else {
                s(&items.join("\n"))
            }
        }
        "/latest/meta-data/events/recommendations/rebalance" => {
            let (_, t) = rebalance?;
            s(&format!("{{\"noticeTime\": \"{}\"}}", rfc3339(t)))
        }
        "/latest/meta-data/events/recommendations" => rebalance.and(s("rebalance")),
        "/latest/meta-data/events/maintenance/scheduled" => events_body(st, &st.scheduled),
        "/latest/meta-data/events/maintenance/history" => events_body(st, &st.history),
        "/latest/meta-data/events/maintenance" => s("history\nscheduled"),
        "/latest/meta-data/events" => s(if rebalance.is_some() {
            "maintenance/\nrecommendations/"
        } else {
            "maintenance/"
        }),
        "/latest/meta-data/autoscaling/target-lifecycle-state" => s(st.lifecycle.as_deref()?),
        "/latest/meta-data/autoscaling" => st.lifecycle.as_ref().and(s("target-lifecycle-state")),
        "/latest/meta-data/instance-id" => s(&id.instance_id),
        "/latest/meta-data/instance-type" => s(&id.instance_type),
        "/latest/meta-data/instance-life-cycle" => s("spot"),
        "/latest/meta-data/instance-action" => s("none"),
        "/latest/meta-data/placement/availability-zone" => s(&id.zone),
        "/latest/meta-data/placement/region" => s(&id.region),
        "/latest/meta-data/placement" => s("availability-zone\nregion"),
        "/latest/meta-data/local-hostname" | "/latest/meta-data/hostname" => {
            s(&id.local_hostname)
        }
        "/latest/meta-data/local-ipv4" => s(&id.local_ipv4),
        "/latest/meta-data/ami-id" => s("ami-0b69ea66ff7391e80"),
        "/latest/meta-data" => {
            let mut items = vec!["ami-id"];
            if st.lifecycle.is_some() {
                items.push("autoscaling/");
            }
            items.extend([
                "events/",
                "hostname",
                "instance-action",
                "instance-id",
                "instance-life-cycle",
                "instance-type",
                "local-hostname",
                "local-ipv4",
                "placement/",
            ]);
            if notice.is_some() || st.notice_body.is_some() {
                items.push("spot/");
            }
            s(&items.join("\n"))
        }
        "/latest/dynamic/instance-identity/document" => s(&format!(
            "{{\n  \"accountId\" : \"0123456789\",\n  \"architecture\" : \"x86_64\",\n  \"availabilityZone\" : \"{}\",\n  \"billingProducts\" : null,\n  \"devpayProductCodes\" : null,\n  \"marketplaceProductCodes\" : null,\n  \"imageId\" : \"ami-0b69ea66ff7391e80\",\n  \"instanceId\" : \"{}\",\n  \"instanceType\" : \"{}\",\n  \"kernelId\" : null,\n  \"pendingTime\" : \"{}\",\n  \"privateIp\" : \"{}\",\n  \"ramdiskId\" : null,\n  \"region\" : \"{}\",\n  \"version\" : \"2017-09-30\"\n}}",
            id.zone,
            id.instance_id,
            id.instance_type,
            rfc3339(st.launched),
            id.local_ipv4,
            id.region
        )),
        "/latest/dynamic/instance-identity" => s("document"),
        "/latest/dynamic" => s("instance-identity/"),
        "/latest" => s("dynamic\nmeta-data"),
        "" => s("latest"),
        _ => None,
    }
}

/// An extra item, or the listing of the directory above extra items (`name` or `name/` per line).
fn item(st: &ImdsState, path: &str) -> Option<Vec<u8>> {
    let trimmed = path.trim_end_matches('/');
    if let Some(body) = st.items.get(trimmed) {
        return Some(body.clone());
    }
    let dir = format!("{trimmed}/");
    let mut names: Vec<String> = Vec::new();
    for key in st.items.keys() {
        if let Some(rest) = key.strip_prefix(&dir) {
            let name = match rest.split_once('/') {
                Some((d, _)) => format!("{d}/"),
                None => rest.to_string(),
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    (!names.is_empty()).then(|| names.join("\n").into_bytes())
}

/// The events array as real IMDS pretty-prints it (AWS docs' example layout).
fn events_body(st: &ImdsState, events: &[ScheduledEvent]) -> Option<Vec<u8>> {
    if events.is_empty() {
        return match st.empty_events {
            EmptyEvents::EmptyArray => Some(b"[]".to_vec()),
            EmptyEvents::NotFound => None,
        };
    }
    let q = |v: &str| serde_json::Value::from(v).to_string();
    let items: Vec<String> = events
        .iter()
        .map(|e| {
            let mut f = vec![
                ("NotBefore", q(&event_date(e.not_before))),
                ("Code", q(&e.code)),
                ("Description", q(&e.description)),
                ("EventId", q(&e.id)),
            ];
            if let Some(t) = e.not_after {
                f.push(("NotAfter", q(&event_date(t))));
            }
            if let Some(t) = e.deadline {
                f.push(("NotBeforeDeadline", q(&event_date(t))));
            }
            f.push(("State", q(&e.state)));
            let fields: Vec<String> = f
                .iter()
                .map(|(k, v)| format!("    \"{k}\" : {v}"))
                .collect();
            format!("  {{\n{}\n  }}", fields.join(",\n"))
        })
        .collect();
    Some(format!("[\n{}\n]", items.join(",\n")).into_bytes())
}

/// `21 Jan 2019 09:00:43 GMT`, `1 Jan 2021 02:00:00 GMT`: the scheduled-events date format
/// (Go layout `2 Jan 2006 15:04:05 GMT`; the day is not zero-padded).
pub fn event_date(t: SystemTime) -> String {
    let s = rfc3339(t); // 2019-01-21T09:00:43Z
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = s[5..7].parse().unwrap_or(1);
    let d: u32 = s[8..10].parse().unwrap_or(1);
    format!("{d} {} {} {} GMT", months[m - 1], &s[0..4], &s[11..19])
}

/// Parses [`event_date`]'s format back (for tests and the CLI summary).
pub fn parse_event_date(s: &str) -> Option<SystemTime> {
    let mut it = s.split(' ');
    let (d, mon, y, hms, gmt) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if gmt != "GMT" || it.next().is_some() || d.len() > 2 || d.starts_with('0') {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| *x == mon)? + 1;
    let d: u32 = d.parse().ok()?;
    util::parse_rfc3339(&format!("{y}-{m:02}-{d:02}T{hms}Z"))
}

/// AWS IMDS knobs beyond the spot notice (which lives in lib.rs with the original API).
impl crate::Sim {
    fn imds_state(&self) -> std::sync::MutexGuard<'_, ImdsState> {
        let mut st = crate::lock(&self.shared.imds);
        st.tick(Instant::now());
        st
    }

    /// How many IMDS requests so far had a path (with query) starting with `path_prefix`
    /// (`"/latest/meta-data/events/"`, `"/latest/api/token"`).
    pub fn imds_count(&self, path_prefix: &str) -> usize {
        let st = crate::lock(&self.shared.imds);
        crate::metadata::count_prefix(st.log.iter().map(|r| r.path.as_str()), path_prefix)
    }

    /// Adds a scheduled maintenance event now (times relative to now on the metadata clock);
    /// returns its `EventId`.
    pub fn add_scheduled_event(&self, ev: MaintenanceEvent) -> String {
        let id = ev.id.clone();
        self.imds_state()
            .apply(Instant::now(), AwsStep::Scheduled(ev));
        id
    }

    /// Cancels an active scheduled event: it moves to `history` as `canceled` with
    /// Description `[Canceled] ...`. False if no active event has this id.
    pub fn cancel_scheduled_event(&self, id: &str) -> bool {
        self.imds_state().retire(id, "canceled", "[Canceled]")
    }

    /// Completes an active scheduled event (`history`, `completed`, `[Completed] ...`).
    pub fn complete_scheduled_event(&self, id: &str) -> bool {
        self.imds_state().retire(id, "completed", "[Completed]")
    }

    /// The active scheduled events.
    pub fn scheduled_events(&self) -> Vec<ScheduledEvent> {
        self.imds_state().scheduled.clone()
    }

    /// The events in `events/maintenance/history`.
    pub fn scheduled_history(&self) -> Vec<ScheduledEvent> {
        self.imds_state().history.clone()
    }

    /// What the events paths answer when there are no events.
    pub fn set_scheduled_events_when_empty(&self, e: EmptyEvents) {
        self.imds_state().empty_events = e;
    }

    /// `autoscaling/target-lifecycle-state` (`InService`, `Terminated`, ...; `None`: 404).
    pub fn set_lifecycle_state(&self, state: Option<&str>) {
        self.imds_state().lifecycle = state.map(str::to_string);
    }
}

/// A fake IMDS of its own, for one more node of a scenario with many nodes (one handler per
/// node, each polling its own metadata service, all against the one API server of a [`crate::Sim`]).
/// Serves what the scenario's IMDS serves (optional IMDSv2), with this identity. Dropping it
/// stops it.
pub struct NodeImds {
    state: Arc<std::sync::Mutex<ImdsState>>,
    server: crate::http::Server,
}

impl NodeImds {
    /// Starts one on `127.0.0.1:0` for the instance `instance_id`.
    pub fn start(instance_id: &str, local_ipv4: &str) -> std::io::Result<NodeImds> {
        let state = Arc::new(std::sync::Mutex::new(ImdsState::new(
            ImdsMode::Optional,
            Identity {
                instance_id: instance_id.to_string(),
                instance_type: "m5.large".to_string(),
                zone: "us-east-1a".to_string(),
                region: "us-east-1".to_string(),
                local_hostname: format!("ip-{}.ec2.internal", local_ipv4.replace('.', "-")),
                local_ipv4: local_ipv4.to_string(),
            },
        )));
        let st = state.clone();
        let server = crate::http::Server::start(
            "imds",
            Arc::new(move |req, ctx| {
                let mut st = crate::lock(&st);
                let (resp, entry) = handle(&mut st, req, ctx);
                st.log.push(entry);
                resp
            }),
            None,
        )?;
        Ok(NodeImds { state, server })
    }

    /// `http://127.0.0.1:PORT` (the handler's `IMDS_URL`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.addr().port())
    }

    /// Makes a spot notice with this action and `time` visible from `appear_at` on.
    pub fn set_notice(&self, appear_at: Instant, action: &str, deadline: SystemTime) {
        crate::lock(&self.state).notice = Some(Notice {
            appear_at,
            action: action.to_string(),
            deadline,
        });
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        crate::lock(&self.state).log.clone()
    }

    /// How many requests so far had a path (with query) starting with `path_prefix`.
    pub fn count(&self, path_prefix: &str) -> usize {
        let st = crate::lock(&self.state);
        crate::metadata::count_prefix(st.log.iter().map(|r| r.path.as_str()), path_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_dates_are_not_zero_padded() {
        let t = util::parse_rfc3339("2021-01-01T02:00:00Z").unwrap();
        assert_eq!(event_date(t), "1 Jan 2021 02:00:00 GMT");
        let t = util::parse_rfc3339("2019-01-21T09:00:43Z").unwrap();
        assert_eq!(event_date(t), "21 Jan 2019 09:00:43 GMT");
        assert_eq!(parse_event_date("21 Jan 2019 09:00:43 GMT"), Some(t));
        assert_eq!(parse_event_date("01 Jan 2021 02:00:00 GMT"), None);
    }
}
