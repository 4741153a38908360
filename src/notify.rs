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

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::cloud::Identity;
use crate::config::Secret;
use crate::decision::{Entry, Status};
use crate::drain::Report;
use crate::http::{self, Endpoint};
use crate::notice::{Action, Kind, Notice};
use crate::time::format_rfc3339;
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

/// One message for one destination's worker.
struct Job {
    payload: String,
    /// Webhooks: the message id and phase, and when retries stop (Slack: none, 3 attempts).
    hook: Option<(String, Phase, Instant)>,
}

/// One destination: its endpoint and, once the first message came, its worker.
struct Destination {
    /// `Slack`, or `webhook 2` (its position in `WEBHOOK_URL`): never the URL.
    name: String,
    endpoint: Endpoint,
    tx: Mutex<Option<SyncSender<Job>>>,
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
    slack: Option<Destination>,
    hooks: Vec<Destination>,
    template: crate::template::Template,
    phases: [bool; 3],
    /// Header lines of every webhook request (`Name: value`), shared with the workers.
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
        let mut dest = |url: &Secret, name: String| -> Result<Destination, (String, String)> {
            let https = url.expose().starts_with("https://");
            let setting = if name.starts_with('S') {
                "SLACK_URL"
            } else {
                "WEBHOOK_URL"
            };
            let config = if https {
                if tls.is_none() {
                    tls = Some(http::tls_config_public().map_err(|e| (setting.to_string(), e))?);
                }
                tls.clone()
            } else {
                None
            };
            let endpoint = Endpoint::parse(url.expose(), config).map_err(|_| {
                (
                    setting.to_string(),
                    format!("{name}: a URL whose host or port is not usable"),
                )
            })?;
            let proxy = hooks.proxies.for_url(https, endpoint.host());
            Ok(Destination {
                name,
                endpoint: endpoint.via(proxy),
                tx: Mutex::new(None),
            })
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
        self.send(
            o,
            Phase::Notice,
            &Subject::of_notice(n),
            slack,
            text,
            None,
            now,
        );
    }

    /// The summary of a finished drain.
    pub fn drained(&self, o: &Origin, e: &Entry, report: &Report) {
        let now = SystemTime::now();
        let text = o.drained_text(e, report);
        self.send(
            o,
            Phase::Drained,
            &Subject::of_entry(e),
            o.render_drained(e, report),
            text,
            Some(report),
            now,
        );
    }

    /// The node is back in service (or released but left cordoned).
    pub fn back(&self, o: &Origin, e: &Entry, why: &str, left_cordoned: Option<&str>) {
        let now = SystemTime::now();
        let text = o.back_text(e, why, left_cordoned);
        let slack = o.render_back(e, why, left_cordoned);
        self.send(
            o,
            Phase::Back,
            &Subject::of_entry(e),
            slack,
            text,
            None,
            now,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        o: &Origin,
        phase: Phase,
        about: &Subject,
        slack: String,
        text: String,
        report: Option<&Report>,
        now: SystemTime,
    ) {
        if let Some(s) = &self.slack {
            self.queue(
                s,
                Job {
                    payload: slack,
                    hook: None,
                },
            );
        }
        if self.hooks.is_empty() || !self.phases[phase as usize] {
            return;
        }
        let fields = o.fields(phase, about, text, report, now);
        let body = self.template.render(&fields);
        // Retries stop at the deadline: after it the machine is gone.
        let left = about
            .deadline
            .filter(|_| phase != Phase::Back)
            .map_or(NO_DEADLINE_RETRY, |d| {
                d.duration_since(now).unwrap_or(PAST_DEADLINE_RETRY)
            });
        let until = Instant::now() + left;
        for d in &self.hooks {
            self.queue(
                d,
                Job {
                    payload: body.clone(),
                    hook: Some((fields[2].clone(), phase, until)),
                },
            );
        }
    }

    /// Queues a job for `d`, starting its worker first if need be; drops it with a warning
    /// if the queue is full.
    fn queue(&self, d: &Destination, job: Job) {
        let mut tx = d.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.is_none() {
            let (t, rx) = mpsc::sync_channel(QUEUE);
            let (endpoint, name, headers) =
                (d.endpoint.clone(), d.name.clone(), self.headers.clone());
            let started = std::thread::Builder::new()
                .name(
                    if d.name == "Slack" {
                        "slack"
                    } else {
                        "webhook"
                    }
                    .to_string(),
                )
                .spawn(move || worker(endpoint, &name, &headers, rx));
            match started {
                Ok(_) => *tx = Some(t),
                Err(e) => {
                    warn!(
                        "could not start a sender; message dropped",
                        destination = d.name,
                        error = e
                    );
                    return;
                }
            }
        }
        let what = job.hook.as_ref().map_or("Slack", |(_, p, _)| p.as_str());
        match tx.as_ref().map(|t| t.try_send(job)) {
            Some(Ok(())) | None => {}
            Some(Err(TrySendError::Full(_))) => {
                warn!(
                    "message queue full; message dropped",
                    destination = d.name,
                    message = what
                )
            }
            Some(Err(TrySendError::Disconnected(_))) => {
                warn!(
                    "sender stopped; message dropped",
                    destination = d.name,
                    message = what
                )
            }
        }
    }
}

fn worker(endpoint: Endpoint, name: &str, headers: &[(String, Secret)], rx: Receiver<Job>) {
    let mut last_sent: Option<Instant> = None;
    for job in rx {
        if let Some(t) = last_sent {
            let next = t + MIN_SPACING;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
        match &job.hook {
            None => post(&endpoint, &job.payload),
            Some((id, phase, until)) => {
                post_hook(&endpoint, name, headers, &job.payload, id, *phase, *until)
            }
        }
        last_sent = Some(Instant::now());
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

fn post(endpoint: &Endpoint, payload: &str) {
    let headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", "spot-termination-notice-handler"),
    ];
    let req = http::Request {
        method: "POST",
        path: "",
        headers: &headers,
        body: payload.as_bytes(),
    };
    for attempt in 0..ATTEMPTS {
        let result = http::exchange(endpoint, &req, SEND_TIMEOUT, 64 * 1024);
        match judge(&result, attempt) {
            Verdict::Sent => {
                info!("sent Slack message", attempts = attempt + 1);
                return;
            }
            Verdict::Drop(why) => {
                warn!("Slack refused the message; not retrying", answer = why);
                return;
            }
            Verdict::RetryAfter(wait) => {
                let why = match &result {
                    Ok(r) => format!("HTTP {}", r.status),
                    Err(e) => e.to_string(),
                };
                if attempt + 1 < ATTEMPTS {
                    warn!(
                        "Slack message not delivered; retrying",
                        error = why,
                        retry_in_s = wait.as_secs()
                    );
                    std::thread::sleep(wait);
                } else {
                    warn!(
                        "Slack message not delivered; giving up",
                        error = why,
                        attempts = ATTEMPTS
                    );
                }
            }
        }
    }
}

/// One webhook message: retried with backoff (or the service's `Retry-After`) until `until`.
fn post_hook(
    endpoint: &Endpoint,
    name: &str,
    extra: &[(String, Secret)],
    payload: &str,
    id: &str,
    phase: Phase,
    until: Instant,
) {
    let mut headers: Vec<(&str, &str)> = vec![
        ("User-Agent", "spot-termination-notice-handler"),
        ("Idempotency-Key", id),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.expose())));
    let req = http::Request {
        method: "POST",
        path: "",
        headers: &headers,
        body: payload.as_bytes(),
    };
    let mut attempt = 0;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let result = http::exchange(
            endpoint,
            &req,
            SEND_TIMEOUT.min(left.max(Duration::from_secs(1))),
            64 * 1024,
        );
        attempt += 1;
        let why = match judge(&result, attempt - 1) {
            Verdict::Sent => {
                info!(
                    "sent webhook message",
                    webhook = name,
                    phase = phase.as_str(),
                    message_id = id,
                    attempts = attempt
                );
                return;
            }
            Verdict::Drop(why) => {
                warn!(
                    "webhook refused the message; not retrying",
                    webhook = name,
                    phase = phase.as_str(),
                    message_id = id,
                    answer = why
                );
                return;
            }
            Verdict::RetryAfter(wait) => (wait, result),
        };
        let (wait, result) = why;
        let error = match &result {
            Ok(r) => format!("HTTP {}", r.status),
            Err(e) => e.to_string(),
        };
        if Instant::now() + wait >= until {
            warn!(
                "webhook message not delivered by the deadline; giving up",
                webhook = name,
                phase = phase.as_str(),
                message_id = id,
                error = error,
                attempts = attempt
            );
            return;
        }
        warn!(
            "webhook message not delivered; retrying",
            webhook = name,
            phase = phase.as_str(),
            message_id = id,
            error = error,
            retry_in_s = wait.as_secs()
        );
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
            provider: "aws".into(),
        }
    }

    fn notice() -> Notice {
        crate::cloud::aws::parse_instance_action(
            br#"{"action":"terminate","time":"2017-09-18T08:22:00Z"}"#,
            None,
            SystemTime::UNIX_EPOCH,
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
        assert!(p.contains("Deadline: 2017-09-18T08:22:00Z (passed 300 s ago). The deadline has passed: cordoning and draining the node at once."), "{p}");
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

    #[test]
    fn drained_payload_colors_and_failed_pods() {
        let o = origin(Some("prod"));
        let e = entry(&notice());
        let ok = Report {
            evicted: 17,
            seconds: 12.34,
            ..Report::default()
        };
        let p = o.render_drained(&e, &ok);
        crate::json::check(p.as_bytes()).unwrap();
        assert!(p.contains("\"text\":\"Spot Termination (prod): ip-10-0-1-23.ec2.internal drained: 17 evicted, 0 forced at the deadline, 0 failed in 12.3 s"), "{p}");
        assert!(p.contains("\"color\":\"good\""));
        let forced = Report {
            evicted: 1,
            forced: 2,
            ..Report::default()
        };
        assert!(o
            .render_drained(&e, &forced)
            .contains("\"color\":\"warning\""));
        let failed = Report {
            failed: 12,
            failed_pods: (0..12).map(|i| format!("ns/p{i}")).collect(),
            ..Report::default()
        };
        let p = o.render_drained(&e, &failed);
        assert!(
            p.contains("Failed: ns/p0, ns/p1") && p.contains("ns/p9, …") && !p.contains("ns/p10"),
            "{p}"
        );
        assert!(p.contains("\"color\":\"danger\""));
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

    #[test]
    fn webhook_fields_by_name() {
        let now = crate::time::parse_rfc3339("2017-09-18T08:20:00Z").unwrap();
        let o = origin(Some("prod"));
        let n = notice();
        let e = entry(&n);
        let get = |v: &[String], name: &str| {
            let i = crate::template::FIELDS
                .iter()
                .position(|f| *f == name)
                .unwrap();
            v[i].clone()
        };
        let v = o.fields(
            Phase::Notice,
            &Subject::of_notice(&n),
            "the text".into(),
            None,
            now,
        );
        assert_eq!(v.len(), crate::template::FIELDS.len());
        for (name, want) in [
            ("phase", "notice"),
            ("message", "the text"),
            ("node", "ip-10-0-1-23.ec2.internal"),
            ("cluster", "prod"),
            ("provider", "aws"),
            ("kind", "spot-interruption"),
            ("kind_words", "spot interruption"),
            ("reason", "SpotInterruption"),
            ("action", "terminate"),
            ("reaction", "drain"),
            ("deadline", "2017-09-18T08:22:00Z"),
            ("seconds_left", "120"),
            ("instance_id", "i-0abc"),
            ("instance_type", "m5.large"),
            ("zone", "us-east-1a"),
            ("severity", "critical"),
            ("alert_action", "trigger"),
            ("time", "2017-09-18T08:20:00Z"),
            ("evicted", "0"),
            ("seconds", "0.0"),
        ] {
            assert_eq!(get(&v, name), want, "{name}");
        }
        assert_eq!(get(&v, "notice_id"), n.id);
        assert_eq!(
            get(&v, "message_id"),
            message_id("ip-10-0-1-23.ec2.internal", &n.id, Phase::Notice)
        );
        let r = Report {
            evicted: 17,
            forced: 2,
            failed: 1,
            already_gone: 3,
            still_present: 1,
            seconds: 12.34,
            ..Report::default()
        };
        let v = o.fields(
            Phase::Drained,
            &Subject::of_entry(&e),
            String::new(),
            Some(&r),
            now,
        );
        for (name, want) in [
            ("phase", "drained"),
            ("evicted", "17"),
            ("forced", "2"),
            ("failed", "1"),
            ("still_present", "1"),
            ("pods", "23"),
            ("seconds", "12.3"),
            ("severity", "error"),
        ] {
            assert_eq!(get(&v, name), want, "{name}");
        }
        let v = o.fields(
            Phase::Back,
            &Subject::of_entry(&e),
            String::new(),
            None,
            now,
        );
        assert_eq!(
            (get(&v, "severity"), get(&v, "alert_action")),
            ("info".to_string(), "resolve".to_string())
        );
        let mut o2 = origin(None);
        o2.identity = Identity::unknown();
        let v = o2.fields(
            Phase::Notice,
            &Subject::of_notice(&n),
            "x".into(),
            None,
            now,
        );
        assert_eq!(
            (get(&v, "cluster"), get(&v, "zone")),
            (String::new(), "unknown".to_string())
        );
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let id = message_id(
            "node-a",
            "aws-spot/terminate/2027-01-15T08:00:00Z",
            Phase::Notice,
        );
        assert_eq!(
            id,
            message_id(
                "node-a",
                "aws-spot/terminate/2027-01-15T08:00:00Z",
                Phase::Notice
            )
        );
        assert!(
            id.starts_with("stnh-notice-") && id.len() == "stnh-notice-".len() + 16,
            "{id}"
        );
        let others = [
            message_id(
                "node-b",
                "aws-spot/terminate/2027-01-15T08:00:00Z",
                Phase::Notice,
            ),
            message_id(
                "node-a",
                "aws-spot/terminate/2027-01-15T08:00:01Z",
                Phase::Notice,
            ),
            message_id(
                "node-a",
                "aws-spot/terminate/2027-01-15T08:00:00Z",
                Phase::Drained,
            ),
        ];
        for o in &others {
            assert_ne!(&id[id.len() - 16..], &o[o.len() - 16..]);
        }
        // FNV-1a of "a\0b\0back", so the id never changes from one release to the next.
        assert_eq!(
            message_id("a", "b", Phase::Back),
            "stnh-back-f49bf064493ed925"
        );
    }
}
