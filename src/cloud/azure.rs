//! Azure (AKS and VMs): Scheduled Events from the instance metadata service at
//! `AZURE_METADATA_URL`, plain HTTP through minreq, `Metadata: true` on every request (facts:
//! `gcp-azure-metadata.md` Part B).
//!
//! One watcher, `azure-events`, polls `GET /metadata/scheduledevents?api-version=2020-07-01`
//! once a second and acts on the events whose `Resources` name this VM (`compute.name` from
//! `/metadata/instance/compute`, not the node name). A `DocumentIncarnation` seen before is
//! not read again.
//!
//! | EventType | notice | deadline | undo |
//! |---|---|---|---|
//! | `Preempt` | spot interruption, drain | `NotBefore` | after a reboot, once gone (a deallocated spot VM can come back) |
//! | `Terminate` | termination, drain | `NotBefore` | never |
//! | `Reboot`, `Redeploy` | scheduled maintenance, drain | `NotBefore` | when the event is gone (done, or cancelled) |
//! | `Freeze` | scheduled maintenance, `AZURE_FREEZE` (notify) | `NotBefore` | when gone |
//!
//! `NotBefore` is an RFC 1123 date, corrected for the clock difference the `Date` header shows;
//! once an event has `Started` it is `""`, and the deadline recorded before stays.
//!
//! Approval: once our drain for an event has finished with every pod gone, `POST
//! {"StartRequests":[{"EventId":…}]}` (`AZURE_APPROVE`), so the maintenance starts (and the
//! node comes back) sooner; never before the drain is over, and once per event: the ledger on
//! the Node records it. A drain that left pods is not approved: the platform starts at
//! `NotBefore` by itself, which is all the time those pods can get.
//!
//! The service switches on at the first scheduled-events call, which can take up to 2 minutes:
//! that call runs on the watcher's own thread with a timeout of its own (start-up does not wait
//! for it), and the next one goes out only after it (requests never pile up). Errors: 410 is
//! retried every second (Azure: it can last up to 70 s), 500 too, 429 after 2 s. All requests
//! to the service pass one limiter of 4 per second, below Azure's 5.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nanoserde::DeJson;

use super::session::fail;
use super::{clean_value, Cloud, Identity, Watcher, UNKNOWN};
use crate::config::Config;
use crate::decision::Entry;
use crate::metadata::{self, Answer, Method, Skew};
use crate::notice::{Action, Kind, Notice, Provider, Undo};
use crate::time::parse_http_date;
use crate::{info, warn};

pub const EVENTS_PATH: &str = "/metadata/scheduledevents?api-version=2020-07-01";
pub const COMPUTE_PATH: &str = "/metadata/instance/compute?api-version=2021-02-01";
/// Microsoft recommends polling once per second.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The first scheduled-events call can take up to 2 minutes (the service switches on).
pub const FIRST_CALL_TIMEOUT: Duration = Duration::from_secs(130);
/// Requests per second to the service, in all (Azure allows about 5).
pub const MAX_RATE: usize = 4;
const RATE_LIMITED_RETRY: Duration = Duration::from_secs(2);
const HEADER: (&str, &str) = ("Metadata", "true");

/// `{"DocumentIncarnation": 2, "Events": [...]}`.
#[derive(DeJson)]
struct Document {
    #[nserde(rename = "DocumentIncarnation")]
    incarnation: u64,
    #[nserde(rename = "Events")]
    events: Vec<Event>,
}

#[derive(DeJson)]
struct Event {
    #[nserde(rename = "EventId")]
    id: String,
    #[nserde(rename = "EventType")]
    event_type: String,
    #[nserde(rename = "EventStatus")]
    status: Option<String>,
    #[nserde(rename = "Resources")]
    resources: Option<Vec<String>>,
    #[nserde(rename = "NotBefore")]
    not_before: Option<String>,
}

/// The events document, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    pub incarnation: u64,
    /// Notices for the events that concern this VM.
    pub notices: Vec<Notice>,
    /// Events of this VM that cannot be acted on, with the reason.
    pub skipped: Vec<String>,
}

/// Parses a scheduled-events document for the VM named `vm`. `now` is the deadline of an event
/// without a usable `NotBefore` (one that has started: it is happening).
pub fn parse_events(
    body: &[u8],
    vm: &str,
    skew: Option<Skew>,
    freeze: Option<Action>,
    now: SystemTime,
) -> Result<Events, String> {
    let doc: Document = crate::json::parse(body).map_err(|e| {
        format!(
            "metadata response /metadata/scheduledevents: {e} (body {:?})",
            crate::json::snippet(body)
        )
    })?;
    let (mut notices, mut skipped) = (Vec::new(), Vec::new());
    for e in doc.events {
        let ours = e
            .resources
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| r.trim().eq_ignore_ascii_case(vm));
        if !ours {
            continue;
        }
        let id_ok = !e.id.is_empty()
            && e.id.len() <= 64
            && e.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !id_ok {
            skipped.push(format!(
                "expected an EventId of letters, digits and '-', got {:?}",
                crate::json::snippet(e.id.as_bytes())
            ));
            continue;
        }
        let (kind, action, force, undo) = match e.event_type.as_str() {
            "Preempt" => (
                Kind::SpotInterruption,
                Action::Drain,
                true,
                Undo::WhenRebooted,
            ),
            "Terminate" => (Kind::Termination, Action::Drain, true, Undo::Never),
            "Reboot" | "Redeploy" => (
                Kind::ScheduledMaintenance,
                Action::Drain,
                true,
                Undo::WhenGone,
            ),
            "Freeze" => match freeze {
                Some(a) => (Kind::ScheduledMaintenance, a, false, Undo::WhenGone),
                None => continue,
            },
            other => {
                skipped.push(format!(
                    "event {}: unknown EventType {:?}",
                    e.id,
                    crate::json::snippet(other.as_bytes())
                ));
                continue;
            }
        };
        let not_before = e.not_before.as_deref().and_then(parse_http_date);
        let started = e.status.as_deref() == Some("Started");
        if not_before.is_none() && !started && !e.not_before.as_deref().unwrap_or("").is_empty() {
            skipped.push(format!(
                "event {}: expected NotBefore like \"Mon, 19 Sep 2016 18:29:47 GMT\", got {:?}; acting at once",
                e.id,
                crate::json::snippet(e.not_before.as_deref().unwrap_or("").as_bytes())
            ));
        }
        let deadline = not_before.map(|t| skew.map_or(t, |s| s.to_local(t)));
        notices.push(Notice {
            provider: Provider::Azure,
            kind,
            id: format!("azure/{}", e.id),
            detail: clean_value(&e.event_type),
            action,
            act_at: None,
            deadline: Some(deadline.unwrap_or(now)),
            deadline_given: deadline.is_some(),
            force,
            undo,
            time: None,
        });
    }
    Ok(Events {
        incarnation: doc.incarnation,
        notices,
        skipped,
    })
}

/// The fields of the compute document we use.
#[derive(DeJson, Debug, Clone, PartialEq, Eq)]
pub struct Compute {
    pub name: String,
    #[nserde(rename = "vmSize")]
    pub vm_size: Option<String>,
    pub zone: Option<String>,
    pub location: Option<String>,
}

/// Parses `/metadata/instance/compute`: the VM name must be there.
pub fn parse_compute(body: &[u8]) -> Result<Compute, String> {
    let c: Compute = crate::json::parse(body)
        .map_err(|e| format!("metadata response /metadata/instance/compute: {e}"))?;
    if clean_value(&c.name) == UNKNOWN {
        return Err(format!(
            "metadata response /metadata/instance/compute: expected a VM name, got {:?}",
            crate::json::snippet(c.name.as_bytes())
        ));
    }
    Ok(c)
}

impl Compute {
    fn identity(&self) -> Identity {
        let text = |v: &Option<String>| clean_value(v.as_deref().unwrap_or(""));
        let (location, zone) = (text(&self.location), text(&self.zone));
        Identity {
            instance_id: clean_value(&self.name),
            instance_type: text(&self.vm_size),
            // Kubernetes' topology zone: `eastus-1`; the region alone without zones.
            zone: match (location.as_str(), zone.as_str()) {
                (UNKNOWN, _) => UNKNOWN.to_string(),
                (l, UNKNOWN) => l.to_string(),
                (l, z) => format!("{l}-{z}"),
            },
        }
    }
}

/// At most `MAX_RATE` request starts in any second.
struct Limiter {
    sent: Mutex<VecDeque<Instant>>,
}

impl Limiter {
    /// Waits (at most a second) until a request may go out, and counts it.
    fn admit(&self) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                sent.pop_front();
            }
            if sent.len() < MAX_RATE {
                sent.push_back(now);
                return;
            }
            let wait = (sent[0] + Duration::from_secs(1)).saturating_duration_since(now);
            drop(sent);
            std::thread::sleep(wait.max(Duration::from_millis(1)));
            sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The service client the watcher and the approvals share.
struct Client {
    base: String,
    timeout: Duration,
    limiter: Limiter,
    compute: Mutex<Option<Compute>>,
}

impl Client {
    fn send(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, String> {
        self.limiter.admit();
        let url = format!("{}{path}", self.base);
        let mut headers = vec![HEADER];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        let a = metadata::send(method, &url, &headers, body, timeout).map_err(|e| {
            crate::debug!("polled", url = url, error = e);
            fail(path, e)
        })?;
        crate::debug!("polled", url = url, status = a.status);
        Ok(a)
    }

    /// This VM's compute document, read once.
    fn compute(&self) -> Result<Compute, String> {
        if let Some(c) = self.lock().clone() {
            return Ok(c);
        }
        let a = self.send(Method::Get, COMPUTE_PATH, b"", self.timeout)?;
        if a.status != 200 {
            return Err(fail(
                COMPUTE_PATH,
                format!("expected 200, got HTTP {}", a.status),
            ));
        }
        let c = parse_compute(&a.body)?;
        *self.lock() = Some(c.clone());
        Ok(c)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Compute>> {
        self.compute.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Does the service at `base` answer as Azure's IMDS (a compute document with a VM name)?
pub fn probe(base: &str, timeout: Duration) -> bool {
    let url = format!("{}{COMPUTE_PATH}", base.trim_end_matches('/'));
    metadata::send(Method::Get, &url, &[HEADER], b"", timeout)
        .is_ok_and(|a| a.status == 200 && parse_compute(&a.body).is_ok())
}

/// The Azure cloud.
pub struct Azure {
    client: Arc<Client>,
    approve: bool,
    freeze: Option<Action>,
}

impl Azure {
    pub fn new(cfg: &Config) -> Azure {
        Azure {
            client: Arc::new(Client {
                base: cfg.azure_metadata_url.trim_end_matches('/').to_string(),
                timeout: cfg.imds_timeout,
                limiter: Limiter {
                    sent: Mutex::new(VecDeque::new()),
                },
                compute: Mutex::new(None),
            }),
            approve: cfg.azure_approve,
            freeze: cfg.azure_freeze,
        }
    }
}

impl Cloud for Azure {
    fn provider(&self) -> Provider {
        Provider::Azure
    }

    fn identity(&self) -> Identity {
        match self.client.compute() {
            Ok(c) => c.identity(),
            Err(e) => {
                warn!("could not read instance metadata", error = e);
                Identity::unknown()
            }
        }
    }

    fn watchers(&self) -> Vec<Box<dyn Watcher>> {
        vec![Box::new(EventsWatcher {
            client: self.client.clone(),
            freeze: self.freeze,
            activated: false,
            last: None,
            retry: PERIOD,
        })]
    }

    fn polling(&self) -> String {
        format!(
            "polling {}{EVENTS_PATH} every 1 second(s)",
            self.client.base
        )
    }

    fn acknowledge(&self, entry: &Entry) -> Option<Result<(), String>> {
        let id = entry.id.strip_prefix("azure/")?;
        if !self.approve || entry.action != Action::Drain {
            return None;
        }
        let body = format!(
            "{{\"StartRequests\":[{{\"EventId\":{}}}]}}",
            crate::json::escape(id)
        );
        let result = self
            .client
            .send(
                Method::Post,
                EVENTS_PATH,
                body.as_bytes(),
                self.client.timeout,
            )
            .and_then(|a| match a.status {
                200 => Ok(()),
                s => Err(fail(
                    EVENTS_PATH,
                    format!("approval: expected 200, got HTTP {s}"),
                )),
            });
        if result.is_ok() {
            info!(
                "approved the scheduled event: our drain is done",
                event = id
            );
        }
        Some(result)
    }
}

/// The scheduled-events watcher.
struct EventsWatcher {
    client: Arc<Client>,
    freeze: Option<Action>,
    /// A scheduled-events call has answered: the service is on, normal timeouts from now on.
    activated: bool,
    /// The last document's incarnation and its notices.
    last: Option<(u64, Vec<Notice>)>,
    retry: Duration,
}

impl Watcher for EventsWatcher {
    fn name(&self) -> &'static str {
        "azure-events"
    }
    fn period(&self) -> Duration {
        PERIOD
    }
    fn retry_period(&self) -> Duration {
        self.retry
    }
    fn poll(&mut self) -> Result<Vec<Notice>, String> {
        self.retry = PERIOD;
        let vm = self.client.compute()?.name;
        let timeout = if self.activated {
            self.client.timeout
        } else {
            FIRST_CALL_TIMEOUT
        };
        let a = self.client.send(Method::Get, EVENTS_PATH, b"", timeout)?;
        match a.status {
            200 => {}
            410 => {
                return Err(fail(
                    EVENTS_PATH,
                    "HTTP 410 Gone (Azure: retry; it can last up to 70 s)",
                ))
            }
            429 => {
                self.retry = RATE_LIMITED_RETRY;
                return Err(fail(
                    EVENTS_PATH,
                    "HTTP 429 Too Many Requests; slowing down",
                ));
            }
            s => return Err(fail(EVENTS_PATH, format!("expected 200, got HTTP {s}"))),
        }
        self.activated = true;
        // An incarnation seen before is the same document.
        if let Some((inc, notices)) = &self.last {
            if incarnation_of(&a.body) == Some(*inc) {
                return Ok(notices.clone());
            }
        }
        let skew = metadata::clock_skew(&a, SystemTime::now());
        let ev = parse_events(&a.body, &vm, skew, self.freeze, SystemTime::now())?;
        for why in &ev.skipped {
            warn!(
                "ignoring a scheduled event that cannot be read",
                reason = why
            );
        }
        self.last = Some((ev.incarnation, ev.notices.clone()));
        Ok(ev.notices)
    }
}

/// `DocumentIncarnation` alone, without reading the events: the digits after the key.
fn incarnation_of(body: &[u8]) -> Option<u64> {
    let key = b"\"DocumentIncarnation\"";
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = std::str::from_utf8(&body[at..]).ok()?.trim_start();
    let digits = rest.strip_prefix(':')?.trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const VM: &str = "aks-spotpool-12345678-vmss_3";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_730_801_700)
    }

    fn doc(events: &str) -> Vec<u8> {
        format!("{{\"DocumentIncarnation\":7,\"Events\":[{events}]}}").into_bytes()
    }

    fn event(id: &str, t: &str, status: &str, resources: &str, nb: &str) -> String {
        format!(
            "{{\"EventId\":\"{id}\",\"EventStatus\":\"{status}\",\"EventType\":\"{t}\",\"ResourceType\":\"VirtualMachine\",\"Resources\":[{resources}],\"NotBefore\":\"{nb}\",\"Description\":\"\",\"EventSource\":\"Platform\",\"DurationInSeconds\":-1}}"
        )
    }

    #[test]
    fn events_table() {
        let nb = "Tue, 05 Nov 2024 10:15:30 GMT";
        let t = parse_http_date(nb).unwrap();
        let me = format!("\"{VM}\"");
        // (type, status, resources, NotBefore, AZURE_FREEZE) → (kind, action, force, undo, deadline, given)
        let cases: Vec<(
            &str,
            &str,
            String,
            &str,
            Option<Action>,
            Option<(Kind, Action, bool, Undo, SystemTime, bool)>,
        )> = vec![
            (
                "Preempt",
                "Scheduled",
                me.clone(),
                nb,
                None,
                Some((
                    Kind::SpotInterruption,
                    Action::Drain,
                    true,
                    Undo::WhenRebooted,
                    t,
                    true,
                )),
            ),
            (
                "Terminate",
                "Scheduled",
                me.clone(),
                nb,
                None,
                Some((Kind::Termination, Action::Drain, true, Undo::Never, t, true)),
            ),
            (
                "Reboot",
                "Scheduled",
                me.clone(),
                nb,
                None,
                Some((
                    Kind::ScheduledMaintenance,
                    Action::Drain,
                    true,
                    Undo::WhenGone,
                    t,
                    true,
                )),
            ),
            (
                "Redeploy",
                "Scheduled",
                me.clone(),
                nb,
                None,
                Some((
                    Kind::ScheduledMaintenance,
                    Action::Drain,
                    true,
                    Undo::WhenGone,
                    t,
                    true,
                )),
            ),
            (
                "Freeze",
                "Scheduled",
                me.clone(),
                nb,
                Some(Action::Notify),
                Some((
                    Kind::ScheduledMaintenance,
                    Action::Notify,
                    false,
                    Undo::WhenGone,
                    t,
                    true,
                )),
            ),
            (
                "Freeze",
                "Scheduled",
                me.clone(),
                nb,
                Some(Action::Drain),
                Some((
                    Kind::ScheduledMaintenance,
                    Action::Drain,
                    false,
                    Undo::WhenGone,
                    t,
                    true,
                )),
            ),
            ("Freeze", "Scheduled", me.clone(), nb, None, None),
            // Started: NotBefore is "", the deadline is now and not given.
            (
                "Preempt",
                "Started",
                me.clone(),
                "",
                None,
                Some((
                    Kind::SpotInterruption,
                    Action::Drain,
                    true,
                    Undo::WhenRebooted,
                    now(),
                    false,
                )),
            ),
            // Broadcast to the placement group: ours among others, in any case.
            (
                "Reboot",
                "Scheduled",
                format!("\"other_1\",\"{}\"", VM.to_uppercase()),
                nb,
                None,
                Some((
                    Kind::ScheduledMaintenance,
                    Action::Drain,
                    true,
                    Undo::WhenGone,
                    t,
                    true,
                )),
            ),
            // Another VM's event.
            (
                "Preempt",
                "Scheduled",
                "\"aks-spotpool-12345678-vmss_5\"".into(),
                nb,
                None,
                None,
            ),
            ("Preempt", "Scheduled", String::new(), nb, None, None),
        ];
        for (ty, status, res, nb, freeze, want) in cases {
            let body = doc(&event(
                "5DD55B64-45AD-49D3-BBC9-F57D4EA97BD7",
                ty,
                status,
                &res,
                nb,
            ));
            let ev = parse_events(&body, VM, None, freeze, now()).unwrap();
            assert_eq!(ev.incarnation, 7);
            match (ev.notices.first(), want) {
                (None, None) => {}
                (Some(n), Some((kind, action, force, undo, deadline, given))) => {
                    assert_eq!(
                        (
                            n.kind,
                            n.action,
                            n.force,
                            n.undo,
                            n.deadline,
                            n.deadline_given
                        ),
                        (kind, action, force, undo, Some(deadline), given),
                        "{ty} {status} {res}"
                    );
                    assert_eq!(n.id, "azure/5DD55B64-45AD-49D3-BBC9-F57D4EA97BD7");
                    assert_eq!(n.detail, ty);
                }
                (got, want) => panic!("{ty} {status} {res}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn bad_events_are_skipped_and_bad_documents_fail() {
        let me = format!("\"{VM}\"");
        let body = doc(&[
            event(
                "../x",
                "Preempt",
                "Scheduled",
                &me,
                "Tue, 05 Nov 2024 10:15:30 GMT",
            ),
            event(
                "A1",
                "Hibernate",
                "Scheduled",
                &me,
                "Tue, 05 Nov 2024 10:15:30 GMT",
            ),
            event("A2", "Reboot", "Scheduled", &me, "soon"),
        ]
        .join(","));
        let ev = parse_events(&body, VM, None, None, now()).unwrap();
        assert_eq!(ev.skipped.len(), 3, "{:?}", ev.skipped);
        // An unreadable NotBefore: acted on at once rather than not at all.
        assert_eq!(ev.notices.len(), 1);
        assert_eq!(ev.notices[0].deadline, Some(now()));
        assert!(!ev.notices[0].deadline_given);
        let empty = parse_events(
            b"{\"DocumentIncarnation\":0,\"Events\":[]}",
            VM,
            None,
            None,
            now(),
        )
        .unwrap();
        assert!(empty.notices.is_empty());
        for bad in [&b"{"[..], b"[]", b"{\"Events\":[]}", b"<html>"] {
            assert!(parse_events(bad, VM, None, None, now()).is_err(), "{bad:?}");
        }
        assert_eq!(
            incarnation_of(b"{\"DocumentIncarnation\":12,\"Events\":[]}"),
            Some(12)
        );
        assert_eq!(incarnation_of(b"{ \"DocumentIncarnation\" : 3 }"), Some(3));
        assert_eq!(incarnation_of(b"{\"Events\":[]}"), None);
        assert_eq!(incarnation_of(b"{\"DocumentIncarnation\":\"x\"}"), None);
    }

    #[test]
    fn skew_moves_not_before() {
        let nb = "Tue, 05 Nov 2024 10:15:30 GMT";
        let body = doc(&event(
            "E1",
            "Preempt",
            "Scheduled",
            &format!("\"{VM}\""),
            nb,
        ));
        let skew = Skew::between(now() + Duration::from_secs(300), now());
        let ev = parse_events(&body, VM, Some(skew), None, now()).unwrap();
        assert_eq!(
            ev.notices[0].deadline,
            Some(parse_http_date(nb).unwrap() - Duration::from_secs(300))
        );
    }

    #[test]
    fn compute_document() {
        let body = br#"{"azEnvironment":"AzurePublicCloud","location":"eastus","name":"aks-spotpool-12345678-vmss_3",
            "osProfile":{"adminUsername":"azureuser","computerName":"aks-spotpool-12345678-vmss000003"},
            "tagsList":[{"name":"a","value":"b"}],"vmSize":"Standard_D4s_v3","zone":"1"}"#;
        let c = parse_compute(body).unwrap();
        assert_eq!(
            c.identity(),
            Identity {
                instance_id: VM.into(),
                instance_type: "Standard_D4s_v3".into(),
                zone: "eastus-1".into()
            }
        );
        let no_zone =
            parse_compute(br#"{"name":"vm1","location":"westeurope","zone":""}"#).unwrap();
        assert_eq!(no_zone.identity().zone, "westeurope");
        assert!(parse_compute(br#"{"name":""}"#).is_err());
        assert!(parse_compute(br#"{"error":"Bad request"}"#).is_err());
    }

    #[test]
    fn limiter_keeps_to_the_rate() {
        let l = Limiter {
            sent: Mutex::new(VecDeque::new()),
        };
        let start = Instant::now();
        for _ in 0..MAX_RATE + 1 {
            l.admit();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(990),
            "the request beyond the rate waited for the window"
        );
    }
}
