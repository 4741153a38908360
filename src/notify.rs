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
use crate::drain::Report;
use crate::http::{self, Endpoint};
use crate::notice::{Action, Kind, Notice};
use crate::time::format_rfc3339;
use crate::worker::Worker;
use crate::{info, warn};

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
}

/// Slack's three control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Origin {
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
                if left < 0.0 {
                    text.push_str(&format!(
                        ", Action: {}, Deadline: {deadline} (passed {:.0} s ago)",
                        n.detail, -left
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
            (_, Action::Drain) if n.deadline.is_some_and(|d| d <= now) => {
                " The deadline has passed: cordoning and draining the node at once.".to_string()
            }
            (_, Action::Drain) => " Cordoning and draining the node.".to_string(),
            _ => " Cordoning the node; its pods stay.".to_string(),
        };
        text.push('.');
        text.push_str(&doing);
        let text = text.replace(".. ", ". ");
        let color = if n.action == Action::Drain && status == Status::Active {
            "danger"
        } else {
            "warning"
        };
        (text, color, extra)
    }

    /// The summary when a drain has ended.
    pub fn render_drained(&self, e: &Entry, report: &Report) -> String {
        let text = self.drained_text(e, report);
        let color = if report.failed > 0 || report.still_present > 0 {
            "danger"
        } else if report.forced > 0 {
            "warning"
        } else {
            "good"
        };
        self.payload(
            e.kind,
            &text,
            color,
            &[
                ("Evicted", report.evicted.to_string()),
                ("Forced", report.forced.to_string()),
                ("Failed", report.failed.to_string()),
                ("Seconds", format!("{:.1}", report.seconds)),
            ],
        )
    }

    fn drained_text(&self, e: &Entry, report: &Report) -> String {
        let mut text = format!(
            "{}: {} drained: {} evicted, {} forced at the deadline, {} failed in {:.1} s (Action: {}, Deadline: {})",
            self.title(e.kind),
            self.node,
            report.evicted,
            report.forced,
            report.failed,
            report.seconds,
            e.detail,
            e.deadline.map_or("none".to_string(), format_rfc3339)
        );
        if !report.failed_pods.is_empty() {
            let mut names = report
                .failed_pods
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if report.failed_pods.len() > 10 {
                names.push_str(", …");
            }
            text.push_str(&format!(". Failed: {names}"));
        }
        text
    }

    /// The message when the node is back in service (or left cordoned, and why).
    pub fn render_back(&self, e: &Entry, why: &str, left_cordoned: Option<&str>) -> String {
        self.payload(e.kind, &self.back_text(e, why, left_cordoned), "good", &[])
    }

    fn back_text(&self, e: &Entry, why: &str, left_cordoned: Option<&str>) -> String {
        match left_cordoned {
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
        }
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
    if !d.worker.submit(job) {
        warn!(
            "message queue full; message dropped",
            destination = d.name,
            message = phase.as_str()
        );
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
                info!(
                    msg,
                    destination = d.name,
                    phase = phase,
                    message_id = id,
                    attempts = attempt
                );
                return;
            }
            Verdict::Drop(why) => {
                let msg = if slack {
                    "Slack refused the message; not retrying"
                } else {
                    "webhook refused the message; not retrying"
                };
                warn!(
                    msg,
                    destination = d.name,
                    phase = phase,
                    message_id = id,
                    answer = why
                );
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
        warn!(
            msg,
            destination = d.name,
            phase = phase,
            message_id = id,
            error = error,
            attempts = attempt,
            retry_in_s = if give_up { 0 } else { wait.as_secs() }
        );
        if give_up {
            return;
        }
        std::thread::sleep(wait);
    }
}
