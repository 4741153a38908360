//! Fake Azure Instance Metadata Service (plain HTTP): Scheduled Events and the compute
//! identity, after Microsoft's documentation.
//!
//! - Every request needs `Metadata: true` (400 `{"error":"Bad request. Required metadata
//!   header not specified"}` without it) and `api-version` (400 with the `newest-versions`
//!   list without it, or with a version the endpoint does not know).
//! - `GET /metadata/scheduledevents?api-version=2020-07-01`: `{"DocumentIncarnation": n,
//!   "Events": [...]}` with the fields of that version (older versions lack the fields added
//!   later). `DocumentIncarnation` goes up whenever `Events` changes: an event is added,
//!   starts (`EventStatus: Started`, `NotBefore: ""`) or disappears (finished or cancelled).
//!   A `Scheduled` event starts by itself at its `NotBefore`.
//! - `POST /metadata/scheduledevents` with `{"StartRequests":[{"EventId":"..."}]}`: 200 for
//!   any well-formed body (unknown ids included: Microsoft documents 200 "for any valid
//!   EventId" and 400 only for a malformed body or header); every approval is recorded
//!   ([`AzureApproval`]); an approved `Scheduled` event starts (configurable).
//! - The service activates on the first scheduledevents request: that call can be delayed
//!   (real: up to 2 minutes; requests meanwhile wait for the activation too, at most 150 s).
//! - Faults: 410 for a while (real: up to 70 s), the next n requests 429 or 500.
//! - Rate accounting over every request: the most requests in any 1 s window, so a test can
//!   assert the client stayed within Azure's 5 requests/s (optionally enforced with 429).
//! - `GET /metadata/instance/compute?api-version=2021-02-01` (and `/metadata/instance`): the
//!   compute document; leaves with `format=text`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::http::{http_date, ConnCtx, Request, Response};
use crate::metadata::{Clock, Cloud, MetaRequest, Pending};
use crate::{lock, util, Observer, SimEvent};

/// The VM name (`compute.name`) of the scenario node: Uniform scale-set instance 3.
pub const VM_NAME: &str = "aks-spotpool-12345678-vmss_3";
/// Its scale set.
pub const VMSS: &str = "aks-spotpool-12345678-vmss";
/// Another VM of the same scale set (for events broadcast to several VMs).
pub const OTHER_VM: &str = "aks-spotpool-12345678-vmss_5";
/// Subscription id.
pub const SUBSCRIPTION: &str = "8c3e2f9a-5b1d-4c7e-9f0a-2d6b8e4c1a37";
/// The AKS node resource group.
pub const RESOURCE_GROUP: &str = "MC_prod-rg_prod-aks_eastus";
/// Longest wait for the slow first call.
pub const ACTIVATION_LIMIT: Duration = Duration::from_secs(150);

const SE_VERSIONS: &[&str] = &[
    "2017-08-01",
    "2017-11-01",
    "2019-01-01",
    "2019-04-01",
    "2019-08-01",
    "2020-07-01",
];
const INSTANCE_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
];

/// A scheduled event to add. `NotBefore` is relative to the moment it is added.
#[derive(Debug, Clone)]
pub struct AzureEvent {
    id: String,
    event_type: String,
    resources: Option<Vec<String>>,
    started: bool,
    not_before_in: Duration,
    description: Option<String>,
    source: String,
    duration: Option<i64>,
}

impl AzureEvent {
    /// An event of `event_type` (`Freeze`, `Reboot`, `Redeploy`, `Preempt`, `Terminate`) for
    /// this VM, `Scheduled`, `NotBefore` = now + `not_before_in`, `EventSource: Platform`, a
    /// random upper-case GUID, and the type's usual description and duration (Freeze 5 s,
    /// others -1).
    pub fn new(event_type: &str, not_before_in: Duration) -> AzureEvent {
        AzureEvent {
            id: util::uuid().to_uppercase(),
            event_type: event_type.to_string(),
            resources: None,
            started: false,
            not_before_in,
            description: None,
            source: "Platform".into(),
            duration: None,
        }
    }

    /// Sets the `EventId`.
    pub fn id(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }

    /// The `EventId`.
    pub fn event_id(&self) -> &str {
        &self.id
    }

    /// `Resources` (VM names); the default is this VM alone. Use [`OTHER_VM`] for an event
    /// that concerns another VM of the placement group, or several names.
    pub fn resources(mut self, names: &[&str]) -> Self {
        self.resources = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Appears directly as `Started` (as on a hardware failure).
    pub fn started(mut self) -> Self {
        self.started = true;
        self
    }

    /// Sets the `Description`.
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.to_string());
        self
    }

    /// Sets `EventSource` (`Platform` or `User`).
    pub fn source(mut self, s: &str) -> Self {
        self.source = s.to_string();
        self
    }

    /// Sets `DurationInSeconds`.
    pub fn duration(mut self, secs: i64) -> Self {
        self.duration = Some(secs);
        self
    }
}

/// A scripted Azure change.
#[derive(Debug, Clone)]
pub enum AzureStep {
    /// The event appears.
    Add(AzureEvent),
    /// The event starts.
    Start(String),
    /// The event disappears.
    Remove(String),
}

/// A live scheduled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    /// `EventId`.
    pub id: String,
    /// `EventType`.
    pub event_type: String,
    /// `Resources`.
    pub resources: Vec<String>,
    /// `Scheduled` or `Started`.
    pub status: String,
    /// `NotBefore` (served as `""` once Started).
    pub not_before: SystemTime,
    /// `Description`.
    pub description: String,
    /// `EventSource`.
    pub source: String,
    /// `DurationInSeconds`.
    pub duration: i64,
}

/// One accepted `StartRequests` POST.
#[derive(Debug, Clone)]
pub struct AzureApproval {
    /// When it arrived.
    pub at: Instant,
    /// The same, machine wall clock.
    pub time: SystemTime,
    /// The EventIds in it, in order.
    pub ids: Vec<String>,
    /// Which of them were live events.
    pub known: Vec<String>,
    /// The connection it came on (1-based on this server) and its `User-Agent`.
    pub connection: usize,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
}

/// Mutable state of the fake.
#[derive(Debug)]
pub struct AzureState {
    computer_name: String,
    events: Vec<LiveEvent>,
    incarnation: u64,
    pending: Pending<AzureStep>,
    approvals: Vec<AzureApproval>,
    approval_starts: bool,
    first_call_delay: Option<Duration>,
    activated_at: Option<Instant>,
    gone_until: Option<Instant>,
    fail_next: usize,
    fail_status: u16,
    arrivals: VecDeque<Instant>,
    max_rate: usize,
    rate_limit: Option<usize>,
    /// Never answer (an unrouted address on this host).
    pub silent: bool,
    log: Vec<MetaRequest>,
}

/// The fake Azure IMDS's shared state.
pub struct Azure {
    st: Mutex<AzureState>,
    clock: Arc<Clock>,
    observer: Option<Observer>,
    vm_id: String,
}

fn default_description(t: &str) -> &'static str {
    match t {
        "Freeze" => {
            "Virtual machine is being paused because of a memory-preserving Live Migration operation."
        }
        "Reboot" => "Virtual machine is going to be restarted as part of planned maintenance.",
        "Redeploy" => "Virtual machine is going to be moved to another node as part of planned maintenance.",
        _ => "",
    }
}

impl Azure {
    /// A Spot VM [`VM_NAME`] whose guest hostname (and AKS node name) is `computer_name`.
    pub fn new(computer_name: &str, clock: Arc<Clock>, observer: Option<Observer>) -> Azure {
        Azure {
            st: Mutex::new(AzureState {
                computer_name: computer_name.to_string(),
                events: Vec::new(),
                incarnation: 0,
                pending: Pending::default(),
                approvals: Vec::new(),
                approval_starts: true,
                first_call_delay: None,
                activated_at: None,
                gone_until: None,
                fail_next: 0,
                fail_status: 500,
                arrivals: VecDeque::new(),
                max_rate: 0,
                rate_limit: None,
                silent: false,
                log: Vec::new(),
            }),
            clock,
            observer,
            vm_id: util::uuid(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, AzureState> {
        let mut st = lock(&self.st);
        self.tick(&mut st, Instant::now());
        st
    }

    fn tick(&self, st: &mut AzureState, now: Instant) {
        for (at, step) in st.pending.due(now) {
            self.apply(st, at, step);
        }
        // A Scheduled event starts by itself at its NotBefore.
        let t = self.clock.service_time(now);
        let mut changed = false;
        for e in &mut st.events {
            if e.status == "Scheduled" && e.not_before <= t {
                e.status = "Started".into();
                changed = true;
            }
        }
        if changed {
            st.incarnation += 1;
        }
    }

    pub(crate) fn apply(&self, st: &mut AzureState, at: Instant, step: AzureStep) -> bool {
        match step {
            AzureStep::Add(ev) => {
                st.events.retain(|e| e.id != ev.id);
                st.events.push(LiveEvent {
                    description: ev
                        .description
                        .unwrap_or_else(|| default_description(&ev.event_type).to_string()),
                    duration: ev
                        .duration
                        .unwrap_or(if ev.event_type == "Freeze" { 5 } else { -1 }),
                    id: ev.id,
                    resources: ev.resources.unwrap_or_else(|| vec![VM_NAME.to_string()]),
                    status: if ev.started { "Started" } else { "Scheduled" }.into(),
                    not_before: self.clock.service_time(at) + ev.not_before_in,
                    source: ev.source,
                    event_type: ev.event_type,
                });
            }
            AzureStep::Start(id) => {
                let Some(e) = st
                    .events
                    .iter_mut()
                    .find(|e| e.id == id && e.status != "Started")
                else {
                    return false;
                };
                e.status = "Started".into();
            }
            AzureStep::Remove(id) => {
                let n = st.events.len();
                st.events.retain(|e| e.id != id);
                if st.events.len() == n {
                    return false;
                }
            }
        }
        st.incarnation += 1;
        true
    }

    pub(crate) fn schedule(&self, steps: Vec<(Instant, AzureStep)>) {
        let mut st = lock(&self.st);
        for (at, s) in steps {
            st.pending.push(at, s);
        }
    }

    /// The scheduled-events document for `version`.
    fn document(st: &AzureState, version: &str) -> String {
        let q = |s: &str| Value::from(s).to_string();
        let events: Vec<String> = st
            .events
            .iter()
            .filter(|e| match e.event_type.as_str() {
                "Preempt" => version >= "2017-11-01",
                "Terminate" => version >= "2019-01-01",
                _ => true,
            })
            .map(|e| {
                let resources: Vec<String> = e.resources.iter().map(|r| q(r)).collect();
                let nb = if e.status == "Started" {
                    String::new()
                } else {
                    http_date(e.not_before)
                };
                let mut s = format!(
                    "{{\"EventId\":{},\"EventStatus\":{},\"EventType\":{},\"ResourceType\":\"VirtualMachine\",\"Resources\":[{}],\"NotBefore\":{}",
                    q(&e.id),
                    q(&e.status),
                    q(&e.event_type),
                    resources.join(","),
                    q(&nb)
                );
                if version >= "2019-04-01" {
                    s += &format!(",\"Description\":{}", q(&e.description));
                }
                if version >= "2019-08-01" {
                    s += &format!(",\"EventSource\":{}", q(&e.source));
                }
                if version >= "2020-07-01" {
                    s += &format!(",\"DurationInSeconds\":{}", e.duration);
                }
                s + "}"
            })
            .collect();
        format!(
            "{{\"DocumentIncarnation\":{},\"Events\":[{}]}}",
            st.incarnation,
            events.join(",")
        )
    }

    fn compute(&self, st: &AzureState) -> Value {
        let resource_id = format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets/{VMSS}/virtualMachines/3"
        );
        json!({
            "azEnvironment": "AzurePublicCloud",
            "customData": "",
            "evictionPolicy": "Delete",
            "isHostCompatibilityLayerVm": "false",
            "licenseType": "",
            "location": "eastus",
            "name": VM_NAME,
            "offer": "",
            "osProfile": {"adminUsername": "azureuser", "computerName": st.computer_name,
                "disablePasswordAuthentication": "true"},
            "osType": "Linux",
            "placementGroupId": "",
            "plan": {"name": "", "product": "", "publisher": ""},
            "platformFaultDomain": "0",
            "platformUpdateDomain": "0",
            "priority": "Spot",
            "provider": "Microsoft.Compute",
            "publicKeys": [],
            "publisher": "",
            "resourceGroupName": RESOURCE_GROUP,
            "resourceId": resource_id,
            "securityProfile": {"secureBootEnabled": "false", "virtualTpmEnabled": "false"},
            "sku": "",
            "subscriptionId": SUBSCRIPTION,
            "tags": "aks-managed-poolName:spotpool;aks-managed-scalesetpriority:spot",
            "tagsList": [{"name": "aks-managed-poolName", "value": "spotpool"},
                {"name": "aks-managed-scalesetpriority", "value": "spot"}],
            "userData": "",
            "version": "",
            "vmId": self.vm_id,
            "vmScaleSetName": VMSS,
            "vmSize": "Standard_D4s_v3",
            "zone": "1"
        })
    }

    fn finish(&self, mut entry: MetaRequest, resp: Response) -> Response {
        entry.status = resp.status;
        entry.answered = Instant::now();
        lock(&self.st).log.push(entry.clone());
        if let Some(o) = &self.observer {
            o(&SimEvent::Metadata(&entry));
        }
        resp
    }

    /// Handles one request.
    pub fn handle(&self, req: &Request, ctx: &ConnCtx) -> Response {
        let mut entry = MetaRequest::new(Cloud::Azure, req);
        let resp = self.respond(req, ctx, &mut entry);
        let resp = match resp.action {
            crate::http::Action::Respond => resp
                .header("Server", "Microsoft-IIS/10.0")
                .header("Date", &self.clock.date_header()),
            _ => resp,
        };
        self.finish(entry, resp)
    }

    fn respond(&self, req: &Request, ctx: &ConnCtx, entry: &mut MetaRequest) -> Response {
        let now = Instant::now();
        let mut st = self.state();
        if st.silent {
            return Response::hang(crate::gcp::HOLD_LIMIT);
        }
        // Rate accounting: every request counts.
        while st
            .arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            st.arrivals.pop_front();
        }
        st.arrivals.push_back(now);
        st.max_rate = st.max_rate.max(st.arrivals.len());
        if st.rate_limit.is_some_and(|n| st.arrivals.len() > n) {
            entry.note = "rate limited".into();
            return error(429, "Too many requests");
        }
        if !req
            .header("metadata")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            entry.note = "no Metadata header".into();
            return error(400, "Bad request. Required metadata header not specified");
        }
        let path = req.path.trim_end_matches('/');
        let versions = if path == "/metadata/scheduledevents" {
            SE_VERSIONS
        } else if path.starts_with("/metadata/instance") {
            INSTANCE_VERSIONS
        } else {
            return error(404, "Not found");
        };
        let version = match req.query_param("api-version") {
            None => return bad_version(versions, false),
            Some(v) if !versions.contains(&v) => return bad_version(versions, true),
            Some(v) => v.to_string(),
        };
        if st.gone_until.is_some_and(|t| now < t) {
            entry.note = "gone".into();
            return error(410, "Gone");
        }
        if st.gone_until.is_some() {
            st.gone_until = None;
        }
        if st.fail_next > 0 {
            st.fail_next -= 1;
            let s = st.fail_status;
            return error(s, crate::http::reason(s));
        }
        if path == "/metadata/scheduledevents" {
            // Activation: the first call turns the service on, which may take a while.
            if let Some(delay) = st.first_call_delay {
                let ready = *st
                    .activated_at
                    .get_or_insert(now + delay.min(ACTIVATION_LIMIT));
                if now < ready {
                    drop(st);
                    entry.note = "slow first call".into();
                    ctx.sleep(ready - now);
                    if ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return Response::drop_connection();
                    }
                    st = self.state();
                }
            }
            return match req.method.as_str() {
                "GET" | "HEAD" => json_body(200, Self::document(&st, &version)),
                "POST" => self.approve(&mut st, req, ctx),
                _ => error(405, "Method not allowed"),
            };
        }
        if req.method != "GET" && req.method != "HEAD" {
            return error(405, "Method not allowed");
        }
        let compute = self.compute(&st);
        let doc = json!({"compute": compute, "network": {"interface": [{
            "ipv4": {"ipAddress": [{"privateIpAddress": "10.224.0.7", "publicIpAddress": ""}],
                "subnet": [{"address": "10.224.0.0", "prefix": "16"}]},
            "ipv6": {"ipAddress": []}, "macAddress": "000D3A1B2C3D"}]}});
        let rel = path.trim_start_matches("/metadata/instance");
        let mut node = &doc;
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            node = match node {
                Value::Object(m) => match m.get(part) {
                    Some(v) => v,
                    None => return error(404, "Not found"),
                },
                Value::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(v) => v,
                    None => return error(404, "Not found"),
                },
                _ => return error(404, "Not found"),
            };
        }
        let leaf = !matches!(node, Value::Object(_) | Value::Array(_));
        match (leaf, req.query_param("format")) {
            (true, Some("text")) => Response::with_body(
                200,
                "text/plain; charset=utf-8",
                node.as_str().map_or_else(|| node.to_string(), str::to_string),
            ),
            (true, _) => error(
                400,
                "Bad request. The requested format is not supported for leaf nodes: use format=text",
            ),
            (false, None | Some("json")) => json_body(200, node.to_string()),
            (false, Some(_)) => error(400, "Bad request. The requested format is not supported"),
        }
    }

    fn approve(&self, st: &mut AzureState, req: &Request, ctx: &ConnCtx) -> Response {
        let ids: Option<Vec<String>> =
            serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|v| {
                    v.get("StartRequests")?
                        .as_array()?
                        .iter()
                        .map(|r| r.get("EventId")?.as_str().map(str::to_string))
                        .collect()
                });
        let Some(ids) = ids else {
            return error(400, "Bad request. Invalid request body");
        };
        let now = Instant::now();
        let known: Vec<String> = ids
            .iter()
            .filter(|id| st.events.iter().any(|e| &e.id == *id))
            .cloned()
            .collect();
        if st.approval_starts {
            for id in &known {
                self.apply(st, now, AzureStep::Start(id.clone()));
            }
        }
        st.approvals.push(AzureApproval {
            at: now,
            time: SystemTime::now(),
            ids,
            known,
            connection: ctx.id,
            user_agent: req.header("user-agent").map(str::to_string),
        });
        Response::new(200)
    }
}

fn json_body(status: u16, body: String) -> Response {
    Response::with_body(status, "application/json; charset=utf-8", body)
}

fn error(status: u16, msg: &str) -> Response {
    json_body(status, json!({ "error": msg }).to_string())
}

fn bad_version(versions: &[&str], given: bool) -> Response {
    let newest: Vec<&str> = versions.iter().rev().take(3).copied().collect();
    let msg = if given {
        "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds"
    } else {
        "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds"
    };
    json_body(
        400,
        json!({"error": msg, "newest-versions": newest}).to_string(),
    )
}

/// Azure IMDS knobs.
impl crate::Sim {
    /// `http://127.0.0.1:PORT` of the fake Azure IMDS.
    pub fn azure_metadata_url(&self) -> String {
        self.meta.azure_url()
    }

    /// Adds a scheduled event now; returns its `EventId`.
    pub fn azure_add_event(&self, ev: AzureEvent) -> String {
        let id = ev.id.clone();
        let mut st = self.meta.azure.state();
        self.meta
            .azure
            .apply(&mut st, Instant::now(), AzureStep::Add(ev));
        id
    }

    /// Starts an event (`Started`, `NotBefore: ""`). False if none is waiting with this id.
    pub fn azure_start_event(&self, id: &str) -> bool {
        let mut st = self.meta.azure.state();
        self.meta
            .azure
            .apply(&mut st, Instant::now(), AzureStep::Start(id.to_string()))
    }

    /// Removes an event (finished or cancelled). False if there is no such event.
    pub fn azure_remove_event(&self, id: &str) -> bool {
        let mut st = self.meta.azure.state();
        self.meta
            .azure
            .apply(&mut st, Instant::now(), AzureStep::Remove(id.to_string()))
    }

    /// The live events.
    pub fn azure_events(&self) -> Vec<LiveEvent> {
        self.meta.azure.state().events.clone()
    }

    /// The current `DocumentIncarnation`.
    pub fn azure_incarnation(&self) -> u64 {
        self.meta.azure.state().incarnation
    }

    /// The scheduled-events document as the handler would get it now (2020-07-01).
    pub fn azure_document(&self) -> Value {
        let st = self.meta.azure.state();
        serde_json::from_str(&Azure::document(&st, "2020-07-01")).unwrap_or(Value::Null)
    }

    /// Every accepted `StartRequests` POST.
    pub fn azure_approvals(&self) -> Vec<AzureApproval> {
        self.meta.azure.state().approvals.clone()
    }

    /// Whether approving a `Scheduled` event starts it (default true).
    pub fn azure_set_approval_starts(&self, yes: bool) {
        self.meta.azure.state().approval_starts = yes;
    }

    /// Delays the first scheduledevents call (the service's activation), if not yet made.
    pub fn azure_set_first_call_delay(&self, d: Option<Duration>) {
        self.meta.azure.state().first_call_delay = d;
    }

    /// Every request gets 410 Gone for `d` from now (real: up to 70 s).
    pub fn azure_gone_for(&self, d: Duration) {
        self.meta.azure.state().gone_until = Some(Instant::now() + d);
    }

    /// The next `n` requests (that pass the header and version checks) get `status` (429, 500).
    pub fn azure_fail_next(&self, n: usize, status: u16) {
        let mut st = self.meta.azure.state();
        st.fail_next = n;
        st.fail_status = status;
    }

    /// Answer 429 to requests beyond `n` in any 1 s window (`None`, the default: only count).
    pub fn azure_set_rate_limit(&self, n: Option<usize>) {
        self.meta.azure.state().rate_limit = n;
    }

    /// The most requests seen in any 1 s window.
    pub fn azure_max_rate(&self) -> usize {
        lock(&self.meta.azure.st).max_rate
    }

    /// Whether the client ever exceeded Azure's 5 requests/s.
    pub fn azure_rate_exceeded(&self) -> bool {
        self.azure_max_rate() > 5
    }

    /// Every request to the Azure fake so far.
    pub fn azure_requests(&self) -> Vec<MetaRequest> {
        lock(&self.meta.azure.st).log.clone()
    }

    /// How many Azure requests had a path (with query) starting with `path_prefix`.
    pub fn azure_count(&self, path_prefix: &str) -> usize {
        let st = lock(&self.meta.azure.st);
        crate::metadata::count_prefix(st.log.iter().map(|r| r.path.as_str()), path_prefix)
    }
}

impl AzureState {
    pub(crate) fn configure(
        &mut self,
        first_call_delay: Option<Duration>,
        approval_starts: Option<bool>,
        rate_limit: Option<usize>,
    ) {
        self.first_call_delay = first_call_delay;
        if let Some(a) = approval_starts {
            self.approval_starts = a;
        }
        self.rate_limit = rate_limit;
    }
}
