//! Telling people: Slack incoming-webhook messages and generic webhooks (`WEBHOOK_URL`), each
//! destination sent to by a background worker of its own.
//!
//! Rendering is pure (`render_*`, [`Origin::fields`]). Sending never blocks the drain: each
//! destination has a bounded queue drained by one worker thread (started with the first
//! message, so an idle handler runs none), with a 5 s timeout per request, at most one message
//! per second, retries on Slack's or the service's 429 `Retry-After`, 5xx and network errors,
//! and permanent errors (4xx such as `invalid_payload` or `no_service`) dropped with a warning.
//! Slack gets three attempts, as it always did; a webhook message is retried with backoff until
//! the notice's deadline (a message without one: 10 minutes) and carries a stable id
//! (`message_id`, the `Idempotency-Key` header) derived from the node, the notice and the
//! phase, so a receiver can drop a repeat. A webhook URL is the credential, and header values
//! may be: they appear in no log line and no error (a webhook is named by its position in
//! `WEBHOOK_URL`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::cloud::Identity;
use crate::config::Secret;
use crate::decision::{Entry, Status};
use crate::drain::{some_names, Outcome, Report, EMERGENCY_WINDOW};
use crate::http::{self, Endpoint};
use crate::notice::{Action, Kind, Notice};
use crate::time::format_rfc3339;
use crate::worker::Worker;
use crate::{debug, warn};

const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: u32 = 3;
/// Slack asks for at most one message per second per webhook.
const MIN_SPACING: Duration = Duration::from_secs(1);
const QUEUE: usize = 16;
/// Webhook retries stop here when the notice gives no deadline (or for `back`).
const NO_DEADLINE_RETRY: Duration = Duration::from_secs(600);
/// ...and this long after a deadline that has already passed.
const PAST_DEADLINE_RETRY: Duration = Duration::from_secs(30);

/// The three moments a message goes out: a notice seen, its drain ended, the node back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Notice,
    Drained,
    Back,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        ["notice", "drained", "back"][self as usize]
    }
}

/// What every message says about where it comes from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub cluster: Option<String>,
    pub node: String,
    pub identity: Identity,
    pub channel: Option<String>,
    /// `aws`, `gcp`, …
    pub provider: String,
    /// `DRY_RUN`: every message says so first.
    pub dry_run: bool,
}

/// Slack's three control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Origin {
    /// `DRY_RUN`: the text says first that nothing was done.
    fn mark(&self, text: String) -> String {
        if self.dry_run {
            format!("[dry run: nothing was done] {text}")
        } else {
            text
        }
    }

    /// `Spot Termination (prod): node, Instance: i-…, Instance Type: m5.large, AZ: us-east-1a`:
    /// the seed script's words, which people may have alerts on (other kinds get their own title).
    pub fn seed_line(&self, kind: Kind) -> String {
        format!(
            "{}: {}, Instance: {}, Instance Type: {}, AZ: {}",
            self.title(kind),
            self.node,
            self.identity.instance_id,
            self.identity.instance_type,
            self.identity.zone
        )
    }

    fn title(&self, kind: Kind) -> String {
        let what = match kind {
            Kind::SpotInterruption => "Spot Termination",
            Kind::Rebalance => "Rebalance Recommendation",
            Kind::ScheduledMaintenance => "Scheduled Maintenance",
            Kind::Termination => "Instance Termination",
        };
        match &self.cluster {
            Some(c) => format!("{what} ({c})"),
            None => what.to_string(),
        }
    }

    fn payload(&self, kind: Kind, text: &str, color: &str, extra: &[(&str, String)]) -> String {
        let field = |title: &str, value: &str, short: bool| {
            format!(
                "{{\"title\":{},\"value\":{},\"short\":{short}}}",
                crate::json::escape(title),
                crate::json::escape(&slack_escape(value))
            )
        };
        let mut fields = vec![
            field("Node", &self.node, false),
            field("Instance", &self.identity.instance_id, true),
            field("Instance Type", &self.identity.instance_type, true),
            field("Availability Zone", &self.identity.zone, true),
        ];
        fields.extend(extra.iter().map(|(t, v)| field(t, v, true)));
        let text = crate::json::escape(&slack_escape(text));
        let channel = match &self.channel {
            Some(c) => format!("\"channel\":{},", crate::json::escape(c)),
            None => String::new(),
        };
        format!(
            "{{{channel}\"text\":{text},\"attachments\":[{{\"fallback\":{text},\"title\":{},\"color\":\"{color}\",\"fields\":[{}]}}]}}",
            crate::json::escape(&format!(":warning: {}", slack_escape(&self.title(kind)))),
            fields.join(",")
        )
    }

    /// The message when a notice is first seen: what, by when, and what we do about it.
    pub fn render_seen(&self, n: &Notice, status: Status, now: SystemTime) -> String {
        let (text, color, extra) = self.seen_parts(n, status, now);
        self.payload(n.kind, &text, color, &extra)
    }

    fn seen_parts(
        &self,
        n: &Notice,
        status: Status,
        now: SystemTime,
    ) -> (String, &'static str, Vec<(&'static str, String)>) {
        let mut text = self.seed_line(n.kind);
        let mut extra = vec![("Action", n.detail.clone())];
        match n.deadline {
            Some(d) => {
                let deadline = format_rfc3339(d);
                let left = crate::time::secs_until(d, now);
                if left <= 0.0 {
                    text.push_str(&format!(
                        ", Action: {}, Deadline: {deadline} (passed {:.0} s before the notice was seen)",
                        n.detail, -left
                    ));
                } else if left < EMERGENCY_WINDOW.as_secs_f64() && status == Status::Active {
                    text.push_str(&format!(
                        ", Action: {}, Deadline: {deadline} ({left:.0} s left, less than the {} s emergency window)",
                        n.detail,
                        EMERGENCY_WINDOW.as_secs()
                    ));
                } else {
                    text.push_str(&format!(
                        ", Action: {}, Deadline: {deadline} ({left:.0} s left)",
                        n.detail
                    ));
                }
                extra.push(("Deadline", deadline));
            }
            None => text.push_str(&format!(", Signal: {}", n.kind.words())),
        }
        let doing = match (status, n.action) {
            (Status::Pending, a) => format!(
                " We will {} the node at {}.",
                if a == Action::Drain {
                    "drain"
                } else {
                    "cordon"
                },
                n.act_at.map(format_rfc3339).unwrap_or_default()
            ),
            (Status::Notified, _) => " No action is configured for it.".to_string(),
            (_, Action::Drain) if n.deadline.is_none() => {
                " Cordoning and draining the node within its disruption budgets.".to_string()
            }
            (_, Action::Drain)
                if n.deadline.is_some_and(|d| {
                    crate::time::secs_until(d, now) < EMERGENCY_WINDOW.as_secs_f64()
                }) =>
            {
                format!(
                    " Acting at once: cordoning and draining the node within a {} s emergency window.",
                    EMERGENCY_WINDOW.as_secs()
                )
            }
            (_, Action::Drain) => " Cordoning and draining the node.".to_string(),
            _ => " Cordoning the node; its pods stay.".to_string(),
        };
        text.push('.');
        text.push_str(&doing);
        let text = self.mark(text.replace(".. ", ". "));
        let color = if n.action == Action::Drain && status == Status::Active {
            "danger"
        } else {
            "warning"
        };
        (text, color, extra)
    }

    /// The summary after a drain: drained, not fully drained (naming the pods still on the
    /// node), or not drained at all (the pods could not be listed).
    pub fn render_drained(&self, e: &Entry, report: &Report) -> String {
        let text = self.drained_text(e, report);
        if report.dry_run {
            return self.payload(e.kind, &text, "good", &[]);
        }
        let color = match report.outcome() {
            Outcome::NotDrained | Outcome::PodsLeft => "danger",
            Outcome::Drained if report.forced > 0 || !report.cordoned || report.emergency => {
                "warning"
            }
            Outcome::Drained => "good",
        };
        let mut fields = vec![
            ("Evicted", report.evicted.to_string()),
            ("Forced", report.forced.to_string()),
            ("Failed", report.failed.to_string()),
        ];
        if report.still_present > 0 {
            fields.push(("Still on the node", report.still_present.to_string()));
        }
        fields.push(("Seconds", format!("{:.1}", report.seconds)));
        self.payload(e.kind, &text, color, &fields)
    }

    fn drained_text(&self, e: &Entry, report: &Report) -> String {
        let deadline = e.deadline.map_or("none".to_string(), format_rfc3339);
        if report.dry_run {
            return self.mark(format!(
                "{}: {}: would drain: {} pods to evict, {} skipped (Action: {}, Deadline: {deadline})",
                self.title(e.kind),
                self.node,
                report.planned,
                report.skipped,
                e.detail
            ));
        }
        let outcome = report.outcome();
        let mut text = match outcome {
            Outcome::NotDrained => format!(
                "{}: {}: could not list pods; node not drained (gave up after {:.1} s)",
                self.title(e.kind),
                self.node,
                report.seconds
            ),
            _ => format!(
                "{}: {} {}: {} evicted, {} forced at the deadline, {} failed in {:.1} s",
                self.title(e.kind),
                self.node,
                if outcome == Outcome::Drained {
                    "drained"
                } else {
                    "not fully drained"
                },
                report.evicted,
                report.forced,
                report.failed,
                report.seconds
            ),
        };
        text.push_str(&format!(" (Action: {}, Deadline: {deadline})", e.detail));
        if report.still_present > 0 {
            text.push_str(&format!(
                ". {} {} still on the node: {}",
                report.still_present,
                if report.still_present == 1 {
                    "pod"
                } else {
                    "pods"
                },
                some_names(&report.still_present_pods, ", ")
            ));
        }
        if !report.failed_pods.is_empty() {
            text.push_str(&format!(
                ". Failed: {}",
                some_names(&report.failed_pods, ", ")
            ));
        }
        if !report.left_alone.is_empty() {
            text.push_str(&format!(
                ". Left alone (not matched by POD_SELECTOR): {} ({})",
                some_names(&report.left_alone, ", "),
                report.left_alone.len()
            ));
        }
        if !report.surged.is_empty() {
            text.push_str(&format!(
                ". Restarted to surge replacements first: {}",
                some_names(&report.surged, ", ")
            ));
        }
        if report.moved > 0 {
            text.push_str(&format!(". {} pods moved by their rollouts", report.moved));
        }
        if !report.cordoned {
            text.push_str(". The node could not be cordoned");
        }
        if let Some(late) = report.passed_by {
            text.push_str(&format!(
                ". The deadline had already passed ({} s ago) when the notice was seen: acted within a {} s emergency window",
                late.as_secs(),
                EMERGENCY_WINDOW.as_secs()
            ));
        } else if report.emergency {
            text.push_str(&format!(
                ". Less than {} s were left when the notice was seen: acted within that emergency window",
                EMERGENCY_WINDOW.as_secs()
            ));
        }
        self.mark(text)
    }

    /// The message when the instance could not be detached from its Auto Scaling group.
    pub fn render_detach_failed(&self, kind: Kind, group: Option<&str>, error: &str) -> String {
        let text = self.mark(format!(
            "{}: {} could not be detached from its Auto Scaling group{} ({}): {error}. The drain goes on; the group replaces the instance only once it is gone.",
            self.title(kind),
            self.node,
            group.map_or(String::new(), |g| format!(" {g}")),
            kind.words()
        ));
        self.payload(kind, &text, "warning", &[])
    }

    /// The message when the node is back in service (or left cordoned, and why).
    pub fn render_back(&self, e: &Entry, why: &str, left_cordoned: Option<&str>) -> String {
        self.payload(e.kind, &self.back_text(e, why, left_cordoned), "good", &[])
    }

    fn back_text(&self, e: &Entry, why: &str, left_cordoned: Option<&str>) -> String {
        self.mark(match left_cordoned {
            None => format!(
                "{}: {} back in service ({} {}: {why}): uncordoned, our taints and label removed.",
                self.title(e.kind),
                self.node,
                e.kind.words(),
                e.detail
            ),
            Some(reason) => format!(
                "{}: {} released by the handler ({} {}: {why}); our taints and label removed, but the node stays cordoned: {reason}.",
                self.title(e.kind),
                self.node,
                e.kind.words(),
                e.detail
            ),
        })
    }

    /// The webhook template's values, in [`crate::template::FIELDS`] order.
    pub fn fields(
        &self,
        phase: Phase,
        about: &Subject,
        message: String,
        report: Option<&Report>,
        now: SystemTime,
    ) -> Vec<String> {
        let r = report.cloned().unwrap_or_default();
        let incomplete = r.failed > 0 || r.still_present > 0;
        let severity = match phase {
            Phase::Notice if about.reaction == Action::Drain && about.deadline.is_some() => {
                "critical"
            }
            Phase::Drained if incomplete => "error",
            Phase::Back => "info",
            _ => "warning",
        };
        vec![
            phase.as_str().to_string(),
            message,
            message_id(&self.node, &about.id, phase),
            self.node.clone(),
            self.cluster.clone().unwrap_or_default(),
            self.provider.clone(),
            about.kind.slug().to_string(),
            about.kind.words().to_string(),
            about.kind.reason().to_string(),
            about.detail.clone(),
            about.reaction.as_str().to_string(),
            about.id.clone(),
            about.deadline.map(format_rfc3339).unwrap_or_default(),
            about
                .deadline
                .map(|d| format!("{:.0}", crate::time::secs_until(d, now).round()))
                .unwrap_or_default(),
            self.identity.instance_id.clone(),
            self.identity.instance_type.clone(),
            self.identity.zone.clone(),
            severity.to_string(),
            if phase == Phase::Back {
                "resolve"
            } else {
                "trigger"
            }
            .to_string(),
            format_rfc3339(now),
            r.evicted.to_string(),
            r.forced.to_string(),
            r.failed.to_string(),
            r.still_present.to_string(),
            (r.evicted + r.forced + r.failed + r.already_gone).to_string(),
            format!("{:.1}", r.seconds),
        ]
    }
}

/// What a message is about: the notice, as the webhook fields need it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: String,
    pub kind: Kind,
    pub detail: String,
    pub reaction: Action,
    pub deadline: Option<SystemTime>,
}

impl Subject {
    pub fn of_notice(n: &Notice) -> Subject {
        Subject {
            id: n.id.clone(),
            kind: n.kind,
            detail: n.detail.clone(),
            reaction: n.action,
            deadline: n.deadline,
        }
    }

    pub fn of_entry(e: &Entry) -> Subject {
        Subject {
            id: e.id.clone(),
            kind: e.kind,
            detail: e.detail.clone(),
            reaction: e.action,
            deadline: e.deadline,
        }
    }
}

/// `stnh-<phase>-<16 hex digits>`: the same for the same node, notice and phase, in every run
/// of the handler (FNV-1a, 64 bits), so a receiver can drop a message it already has.
pub fn message_id(node: &str, notice: &str, phase: Phase) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [node, notice, phase.as_str()].join("\0").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("stnh-{}-{h:016x}", phase.as_str())
}

/// One destination: where, its name for logs, and its worker (one message at a time).
struct Destination {
    /// `Slack`, or `webhook 2` (its position in `WEBHOOK_URL`): never the URL.
    name: String,
    endpoint: Endpoint,
    /// When its last message went (Slack asks for at most one per second; so do the others).
    last: Mutex<Option<Instant>>,
    worker: Worker,
}

/// The settings every webhook shares.
pub struct Hooks {
    pub urls: Vec<Secret>,
    pub headers: Vec<(String, Secret)>,
    pub template: crate::template::Template,
    pub phases: [bool; 3],
    pub proxies: http::ProxySettings,
}

/// Every destination; sending never blocks.
pub struct Notifier {
    slack: Option<Arc<Destination>>,
    hooks: Vec<Arc<Destination>>,
    template: crate::template::Template,
    phases: [bool; 3],
    /// Headers of every webhook request (`Content-Type` first), shared with the workers.
    headers: Arc<Vec<(String, Secret)>>,
}

impl Notifier {
    /// No destination: a notifier that drops everything.
    pub fn disabled() -> Notifier {
        Notifier {
            slack: None,
            hooks: Vec::new(),
            template: crate::template::Template::default_body(),
            phases: [false; 3],
            headers: Arc::new(Vec::new()),
        }
    }

    /// Checks every URL (a malformed one is a configuration error: `(setting, what came)`,
    /// naming the URL by its position only). Workers start with the first message.
    pub fn new(slack: Option<&Secret>, hooks: Hooks) -> Result<Notifier, (String, String)> {
        let mut tls = None;
        let mut dest = |url: &Secret, name: String| -> Result<Arc<Destination>, (String, String)> {
            let https = url.expose().starts_with("https://");
            let setting = if name == "Slack" {
                "SLACK_URL"
            } else {
                "WEBHOOK_URL"
            };
            let bad = |got: String| (setting.to_string(), got);
            if https && tls.is_none() {
                tls = Some(http::tls_config_public().map_err(bad)?);
            }
            let endpoint = Endpoint::parse(url.expose(), tls.clone().filter(|_| https))
                .map_err(|_| bad(format!("{name}: a URL whose host or port is not usable")))?;
            let proxy = hooks.proxies.for_url(https, endpoint.host());
            Ok(Arc::new(Destination {
                endpoint: endpoint.via(proxy),
                last: Mutex::new(None),
                worker: Worker::new(if name == "Slack" { "slack" } else { "webhook" }, QUEUE),
                name,
            }))
        };
        let slack = match slack {
            Some(u) => Some(dest(u, "Slack".to_string())?),
            None => None,
        };
        let mut list = Vec::new();
        for (i, u) in hooks.urls.iter().enumerate() {
            list.push(dest(u, format!("webhook {}", i + 1))?);
        }
        let mut headers = hooks.headers;
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.insert(
                0,
                ("Content-Type".to_string(), Secret::new("application/json")),
            );
        }
        Ok(Notifier {
            slack,
            hooks: list,
            template: hooks.template,
            phases: hooks.phases,
            headers: Arc::new(headers),
        })
    }

    /// The first-seen message of a notice.
    pub fn notice(&self, o: &Origin, n: &Notice, status: Status, now: SystemTime) {
        let (text, color, extra) = o.seen_parts(n, status, now);
        let slack = o.payload(n.kind, &text, color, &extra);
        self.send(o, Phase::Notice, &Subject::of_notice(n), slack, text, None);
    }

    /// The summary of a finished drain.
    pub fn drained(&self, o: &Origin, e: &Entry, report: &Report) {
        let text = o.drained_text(e, report);
        let slack = o.render_drained(e, report);
        self.send(
            o,
            Phase::Drained,
            &Subject::of_entry(e),
            slack,
            text,
            Some(report),
        );
    }

    /// A warning for people only (Slack): the ASG detach failed.
    pub fn warning(&self, slack: String) {
        if let Some(s) = &self.slack {
            let s2 = s.clone();
            submit(
                s,
                Phase::Notice,
                Box::new(move || deliver(&s2, &[], &slack, Phase::Notice, None)),
            );
        }
    }

    /// The node is back in service (or released but left cordoned).
    pub fn back(&self, o: &Origin, e: &Entry, why: &str, left_cordoned: Option<&str>) {
        let text = o.back_text(e, why, left_cordoned);
        let slack = o.render_back(e, why, left_cordoned);
        self.send(o, Phase::Back, &Subject::of_entry(e), slack, text, None);
    }

    fn send(
        &self,
        o: &Origin,
        phase: Phase,
        about: &Subject,
        slack: String,
        text: String,
        report: Option<&Report>,
    ) {
        if let Some(s) = &self.slack {
            let s2 = s.clone();
            submit(
                s,
                phase,
                Box::new(move || deliver(&s2, &[], &slack, phase, None)),
            );
        }
        if self.hooks.is_empty() || !self.phases[phase as usize] {
            return;
        }
        let now = SystemTime::now();
        let fields = o.fields(phase, about, text, report, now);
        let body = Arc::new(self.template.render(&fields));
        // Retries stop at the deadline: after it the machine is gone.
        let left = about
            .deadline
            .filter(|_| phase != Phase::Back)
            .map_or(NO_DEADLINE_RETRY, |d| {
                d.duration_since(now).unwrap_or(PAST_DEADLINE_RETRY)
            });
        // FIELDS[2] is `message_id` (a template test holds it there).
        let hook = Arc::new((fields[2].clone(), Instant::now() + left));
        for d in &self.hooks {
            let (d2, body, hook, headers) =
                (d.clone(), body.clone(), hook.clone(), self.headers.clone());
            submit(
                d,
                phase,
                Box::new(move || deliver(&d2, &headers, &body, phase, Some(&hook))),
            );
        }
    }
}

/// Queues a message for `d`; drops it with a warning when its queue is full.
fn submit(d: &Destination, phase: Phase, job: crate::worker::Job) {
    if d.worker.submit(job) {
        let msg = if d.name == "Slack" {
            "queued Slack message"
        } else {
            "queued webhook message"
        };
        debug!(msg, destination = d.name, message = phase.as_str());
    } else {
        warn!(
            "message queue full; message dropped",
            destination = d.name,
            message = phase.as_str()
        );
    }
}

/// Logs a delivery line; Slack messages have no message id (only webhooks send one), so
/// theirs leave the field out rather than print it empty.
fn say(
    level: crate::log::Level,
    msg: &str,
    fields: &[(&str, &dyn std::fmt::Display)],
    slack: bool,
) {
    if slack {
        let kept: Vec<_> = fields
            .iter()
            .filter(|(k, _)| *k != "message_id")
            .copied()
            .collect();
        crate::log::log(level, msg, &kept);
    } else {
        crate::log::log(level, msg, fields);
    }
}

/// What to do after one POST.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Sent,
    RetryAfter(Duration),
    Drop(String),
}

/// Slack's answer → what to do. Pure.
fn judge(result: &Result<http::Response, http::Error>, attempt: u32) -> Verdict {
    let backoff = Duration::from_secs(1 << attempt.min(4));
    match result {
        Ok(r) if (200..300).contains(&r.status) => Verdict::Sent,
        Ok(r) if r.status == 429 => {
            let secs = r
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            Verdict::RetryAfter(Duration::from_secs(secs.clamp(1, 10)))
        }
        Ok(r) if r.status >= 500 => Verdict::RetryAfter(backoff),
        Ok(r) => Verdict::Drop(format!(
            "HTTP {} {}",
            r.status,
            crate::json::snippet(&r.body)
        )),
        Err(_) => Verdict::RetryAfter(backoff),
    }
}

/// One message to one destination, at least a second after its previous one. Slack: three
/// attempts, as always. A webhook (`hook`: message id, when retries stop): retried with
/// backoff (or the service's `Retry-After`) until then.
fn deliver(
    d: &Destination,
    extra: &[(String, Secret)],
    payload: &str,
    phase: Phase,
    hook: Option<&(String, Instant)>,
) {
    let mut last = d.last.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = *last {
        std::thread::sleep((t + MIN_SPACING).saturating_duration_since(Instant::now()));
    }
    let mut headers: Vec<(&str, &str)> = vec![("User-Agent", "spot-termination-notice-handler")];
    match hook {
        Some((id, _)) => headers.push(("Idempotency-Key", id)),
        None => headers.insert(0, ("Content-Type", "application/json")),
    }
    headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.expose())));
    let req = http::Request {
        method: "POST",
        path: "",
        headers: &headers,
        body: payload.as_bytes(),
    };
    let (id, phase) = (hook.map_or("", |h| h.0.as_str()), phase.as_str());
    let until = hook.map(|h| h.1);
    let mut attempt = 0;
    loop {
        let left = until.map_or(SEND_TIMEOUT, |u| {
            u.saturating_duration_since(Instant::now())
        });
        let result = http::exchange(
            &d.endpoint,
            &req,
            SEND_TIMEOUT.min(left.max(Duration::from_secs(1))),
            64 * 1024,
        );
        attempt += 1;
        *last = Some(Instant::now());
        let slack = hook.is_none();
        let wait = match judge(&result, attempt - 1) {
            Verdict::Sent => {
                let msg = if slack {
                    "sent Slack message"
                } else {
                    "sent webhook message"
                };
                let f: [(&str, &dyn std::fmt::Display); 4] = [
                    ("destination", &d.name),
                    ("phase", &phase),
                    ("message_id", &id),
                    ("attempts", &attempt),
                ];
                say(crate::log::Level::Info, msg, &f, slack);
                return;
            }
            Verdict::Drop(why) => {
                let msg = if slack {
                    "Slack refused the message; not retrying"
                } else {
                    "webhook refused the message; not retrying"
                };
                let f: [(&str, &dyn std::fmt::Display); 4] = [
                    ("destination", &d.name),
                    ("phase", &phase),
                    ("message_id", &id),
                    ("answer", &why),
                ];
                say(crate::log::Level::Warn, msg, &f, slack);
                return;
            }
            Verdict::RetryAfter(wait) => wait,
        };
        let error = match &result {
            Ok(r) => format!("HTTP {}", r.status),
            Err(e) => e.to_string(),
        };
        let give_up = match until {
            None => attempt >= ATTEMPTS,
            Some(u) => Instant::now() + wait >= u,
        };
        let msg = match (slack, give_up) {
            (true, false) => "Slack message not delivered; retrying",
            (true, true) => "Slack message not delivered; giving up",
            (false, false) => "webhook message not delivered; retrying",
            (false, true) => "webhook message not delivered by the deadline; giving up",
        };
        let retry_in_s = if give_up { 0 } else { wait.as_secs() };
        let f: [(&str, &dyn std::fmt::Display); 6] = [
            ("destination", &d.name),
            ("phase", &phase),
            ("message_id", &id),
            ("error", &error),
            ("attempts", &attempt),
            ("retry_in_s", &retry_in_s),
        ];
        say(crate::log::Level::Warn, msg, &f, slack);
        if give_up {
            return;
        }
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Sent;
    use crate::notice::{Provider, Undo};

    fn origin(cluster: Option<&str>) -> Origin {
        Origin {
            cluster: cluster.map(String::from),
            node: "ip-10-0-1-23.ec2.internal".to_string(),
            identity: Identity {
                instance_id: "i-0abc".into(),
                instance_type: "m5.large".into(),
                zone: "us-east-1a".into(),
            },
            channel: None,
            provider: "aws".to_string(),
            dry_run: false,
        }
    }

    fn notice() -> Notice {
        crate::cloud::aws::parse_instance_action(
            br#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#,
            None,
            crate::time::parse_rfc3339("2017-09-18T08:22:00Z").unwrap(),
        )
        .unwrap()
    }

    fn entry(n: &Notice) -> Entry {
        Entry {
            id: n.id.clone(),
            source: "aws-spot".into(),
            kind: n.kind,
            detail: n.detail.clone(),
            action: n.action,
            status: Status::Active,
            seen: SystemTime::UNIX_EPOCH,
            acted: None,
            act_at: n.act_at,
            deadline: n.deadline,
            force: n.force,
            undo: n.undo,
            sent: Sent::default(),
        }
    }

    #[test]
    fn seed_wording() {
        assert_eq!(
            origin(Some("prod")).seed_line(Kind::SpotInterruption),
            "Spot Termination (prod): ip-10-0-1-23.ec2.internal, Instance: i-0abc, Instance Type: m5.large, AZ: us-east-1a"
        );
        assert_eq!(origin(None).seed_line(Kind::SpotInterruption), "Spot Termination: ip-10-0-1-23.ec2.internal, Instance: i-0abc, Instance Type: m5.large, AZ: us-east-1a");
    }

    #[test]
    fn notice_payload_is_valid_json_with_the_seed_line() {
        let now = crate::time::parse_rfc3339("2017-09-18T08:20:00Z").unwrap();
        let mut o = origin(Some("a \"quoted\" <cluster> & co\n"));
        o.channel = Some("#ops".into());
        let p = o.render_seen(&notice(), Status::Active, now);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(p.starts_with("{\"channel\":\"#ops\",\"text\":\"Spot Termination (a \\\"quoted\\\" &lt;cluster&gt; &amp; co\\n): ip-10-0-1-23.ec2.internal, Instance: i-0abc, Instance Type: m5.large, AZ: us-east-1a, Action: terminate, Deadline: 2017-09-18T08:22:00Z (120 s left). Cordoning and draining the node.\""), "{p}");
        assert!(p.contains("\"color\":\"danger\""));
        let late = crate::time::parse_rfc3339("2017-09-18T08:27:00Z").unwrap();
        let p = o.render_seen(&notice(), Status::Active, late);
        assert!(p.contains("Deadline: 2017-09-18T08:22:00Z (passed 300 s before the notice was seen). Acting at once: cordoning and draining the node within a 10 s emergency window."), "{p}");
    }

    #[test]
    fn other_kinds_say_what_and_when() {
        let now = crate::time::parse_rfc3339("2019-01-20T09:00:00Z").unwrap();
        let (sched, _) = crate::cloud::aws::parse_scheduled(
            br#"[{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot","EventId":"instance-event-1","State":"active"}]"#,
            None,
            Action::Drain,
            Duration::from_secs(900),
        )
        .unwrap();
        let p = origin(None).render_seen(&sched[0], Status::Pending, now);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(p.contains("Scheduled Maintenance: ip-10-0-1-23.ec2.internal, Instance: i-0abc, Instance Type: m5.large, AZ: us-east-1a, Action: system-reboot, Deadline: 2019-01-21T09:00:43Z (86443 s left). We will drain the node at 2019-01-21T08:45:43Z."), "{p}");
        let reb = Notice {
            provider: Provider::Aws,
            kind: Kind::Rebalance,
            id: "aws-rebalance/x".into(),
            detail: "rebalance-recommendation".into(),
            action: Action::Cordon,
            act_at: None,
            deadline: None,
            deadline_given: false,
            force: false,
            undo: Undo::After(Duration::from_secs(60)),
            time: None,
        };
        let p = origin(None).render_seen(&reb, Status::Active, now);
        assert!(
            p.contains("Signal: rebalance recommendation. Cordoning the node; its pods stay."),
            "{p}"
        );
        let p = origin(None).render_back(&entry(&reb), "time to live passed", None);
        assert!(p.contains("Rebalance Recommendation: ip-10-0-1-23.ec2.internal back in service (rebalance recommendation rebalance-recommendation: time to live passed): uncordoned, our taints and label removed."), "{p}");
        let p = origin(None).render_back(
            &entry(&reb),
            "notice gone",
            Some("it was cordoned before our notice"),
        );
        assert!(
            p.contains("stays cordoned: it was cordoned before our notice."),
            "{p}"
        );
    }

    fn done(r: Report) -> Report {
        Report {
            cordoned: true,
            listed: true,
            ..r
        }
    }

    #[test]
    fn drained_payload_colors_and_failed_pods() {
        let o = origin(Some("prod"));
        let ok = done(Report {
            evicted: 17,
            seconds: 12.34,
            ..Report::default()
        });
        let p = o.render_drained(&entry(&notice()), &ok);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(p.contains("\"text\":\"Spot Termination (prod): ip-10-0-1-23.ec2.internal drained: 17 evicted, 0 forced at the deadline, 0 failed in 12.3 s (Action: terminate, Deadline: 2017-09-18T08:22:00Z)\""), "{p}");
        assert!(p.contains("\"color\":\"good\""));
        let forced = done(Report {
            evicted: 1,
            forced: 2,
            ..Report::default()
        });
        assert!(o
            .render_drained(&entry(&notice()), &forced)
            .contains("\"color\":\"warning\""));
        let failed = done(Report {
            failed: 12,
            failed_pods: (0..12).map(|i| format!("ns/p{i}")).collect(),
            still_present: 12,
            still_present_pods: (0..12).map(|i| format!("ns/p{i}")).collect(),
            ..Report::default()
        });
        let p = o.render_drained(&entry(&notice()), &failed);
        assert!(
            p.contains("not fully drained: 0 evicted, 0 forced at the deadline, 12 failed")
                && p.contains("12 pods still on the node: ns/p0, ns/p1, ns/p2, ns/p3, ns/p4, …")
                && p.contains("Failed: ns/p0, ns/p1")
                && !p.contains("ns/p5"),
            "{p}"
        );
        assert!(p.contains("\"color\":\"danger\""));
    }

    #[test]
    fn pods_left_behind_are_named_and_never_called_drained() {
        let o = origin(None);
        let left = done(Report {
            evicted: 5,
            still_present: 1,
            still_present_pods: vec!["shop/slow-0".into()],
            ..Report::default()
        });
        let p = o.render_drained(&entry(&notice()), &left);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(
            p.contains("ip-10-0-1-23.ec2.internal not fully drained: 5 evicted")
                && p.contains(". 1 pod still on the node: shop/slow-0")
                && p.contains("{\"title\":\"Still on the node\",\"value\":\"1\""),
            "{p}"
        );
        assert!(p.contains("\"color\":\"danger\""));
    }

    #[test]
    fn a_drain_that_could_not_list_pods_is_a_failure() {
        let o = origin(Some("prod"));
        let r = Report {
            cordoned: true,
            listed: false,
            seconds: 100.0,
            ..Report::default()
        };
        let p = o.render_drained(&entry(&notice()), &r);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(
            p.contains("\"text\":\"Spot Termination (prod): ip-10-0-1-23.ec2.internal: could not list pods; node not drained (gave up after 100.0 s)"),
            "{p}"
        );
        assert!(!p.contains(" drained:") && !p.contains("evicted"), "{p}");
        assert!(p.contains("\"color\":\"danger\""), "{p}");
        let uncordoned = Report {
            cordoned: false,
            ..r
        };
        assert!(o
            .render_drained(&entry(&notice()), &uncordoned)
            .contains("The node could not be cordoned"));
    }

    #[test]
    fn a_passed_deadline_is_said_in_both_messages() {
        let o = origin(None);
        let late = crate::time::parse_rfc3339("2017-09-18T08:22:30Z").unwrap();
        let p = o.render_seen(&notice(), Status::Active, late);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(p.contains("Deadline: 2017-09-18T08:22:00Z (passed 30 s before the notice was seen). Acting at once: cordoning and draining the node within a 10 s emergency window."), "{p}");
        let near = crate::time::parse_rfc3339("2017-09-18T08:21:56Z").unwrap();
        let p = o.render_seen(&notice(), Status::Active, near);
        assert!(
            p.contains("(4 s left, less than the 10 s emergency window). Acting at once"),
            "{p}"
        );
        let r = done(Report {
            evicted: 3,
            emergency: true,
            passed_by: Some(Duration::from_secs(30)),
            ..Report::default()
        });
        let p = o.render_drained(&entry(&notice()), &r);
        assert!(p.contains("drained: 3 evicted") && p.contains("The deadline had already passed (30 s ago) when the notice was seen: acted within a 10 s emergency window"), "{p}");
        assert!(p.contains("\"color\":\"warning\""), "{p}");
    }

    #[test]
    fn judges_slack_answers() {
        let r = |status: u16,
                 headers: &[(&str, &str)],
                 body: &str|
         -> Result<http::Response, http::Error> {
            Ok(http::Response::canned(status, headers, body))
        };
        assert_eq!(judge(&r(200, &[], "ok"), 0), Verdict::Sent);
        assert_eq!(
            judge(&r(429, &[("Retry-After", "3")], ""), 0),
            Verdict::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            judge(&r(429, &[("Retry-After", "3600")], ""), 0),
            Verdict::RetryAfter(Duration::from_secs(10))
        );
        assert_eq!(
            judge(&r(500, &[], "rollup_error"), 1),
            Verdict::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            judge(&r(404, &[], "no_service"), 0),
            Verdict::Drop("HTTP 404 no_service".to_string())
        );
        assert_eq!(
            judge(&r(400, &[], "invalid_payload"), 0),
            Verdict::Drop("HTTP 400 invalid_payload".to_string())
        );
        let timeout = Err(http::Error {
            authority: "h:1".into(),
            phase: http::Phase::Read,
            kind: http::ErrorKind::TimedOut,
        });
        assert_eq!(
            judge(&timeout, 0),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
    }
}
