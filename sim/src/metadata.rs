//! The metadata side of the simulator, shared by the four cloud fakes: which cloud the
//! scenario is on ([`Cloud`]), what each cloud's metadata URL reaches from that host
//! ([`Reach`]), the metadata services' clock, which can disagree with the machine's
//! ([`Clock`]), the timeline script ([`Script`], [`Step`]) and the request log of the GCE,
//! Azure and Alibaba fakes ([`MetaRequest`]).
//!
//! Every fake always runs on its own 127.0.0.1 port. What the handler is pointed at
//! ([`crate::Sim::handler_env`]) depends on the scenario's cloud, as a real host would see it:
//!
//! | URL setting | on that cloud | on another cloud |
//! |---|---|---|
//! | `IMDS_URL` (169.254.169.254) | the AWS fake | AWS, GCP, Azure: [`Reach::Host`] (the host's own server at that IP); Alibaba: [`Reach::Silent`] |
//! | `AZURE_METADATA_URL` (169.254.169.254) | the Azure fake | same as `IMDS_URL` |
//! | `GCP_METADATA_URL` (`metadata.google.internal`) | the GCE fake | [`Reach::Refused`] (the name does not resolve) |
//! | `ALIBABA_METADATA_URL` (100.100.100.200) | the Alibaba fake | [`Reach::Silent`] (not routed: connect times out) |
//!
//! [`crate::Scenario::reach`] overrides any of these.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::alibaba::{self, Alibaba, AlibabaMode, AlibabaStep, WhenNone};
use crate::azure::{self, Azure, AzureEvent, AzureStep};
use crate::gcp::{self, Gcp, GcpStep};
use crate::http::Server;
use crate::imds::{AwsStep, EmptyEvents, ImdsState, MaintenanceEvent};
use crate::{lock, Observer};

/// A cloud whose metadata service the simulator fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cloud {
    /// EC2 (IMDS at 169.254.169.254).
    #[default]
    Aws,
    /// Compute Engine / GKE (`metadata.google.internal`).
    Gcp,
    /// Azure VMs / AKS (IMDS at 169.254.169.254).
    Azure,
    /// Alibaba Cloud ECS / ACK (100.100.100.200).
    Alibaba,
}

impl Cloud {
    /// All four, AWS last (the order in which the handler's auto-detection probes them).
    pub const ALL: [Cloud; 4] = [Cloud::Gcp, Cloud::Azure, Cloud::Alibaba, Cloud::Aws];

    /// `aws`, `gcp`, `azure`, `alibaba`.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
            Cloud::Alibaba => "alibaba",
        }
    }

    /// Parses [`Cloud::name`].
    pub fn parse(s: &str) -> Option<Cloud> {
        Cloud::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The handler setting holding this cloud's metadata base URL.
    pub fn env_var(self) -> &'static str {
        match self {
            Cloud::Aws => "IMDS_URL",
            Cloud::Gcp => "GCP_METADATA_URL",
            Cloud::Azure => "AZURE_METADATA_URL",
            Cloud::Alibaba => "ALIBABA_METADATA_URL",
        }
    }
}

/// What a cloud's metadata URL reaches from the simulated host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// That cloud's own fake answers (the default for the scenario's cloud; for another cloud it
    /// simulates a host that answers as that cloud, e.g. to test a wrong `CLOUD=`).
    Own,
    /// The host's own metadata server at the same address answers: the fake of the scenario's
    /// cloud (AWS, GCE and Azure all serve 169.254.169.254). It answers with its own errors
    /// (AWS: XHTML 404; GCE: 404; Azure: 400 without `Metadata: true`).
    Host,
    /// Connection refused at once (a port nothing listens on; like a name that does not resolve).
    Refused,
    /// The connection is accepted and never answered (bounded at 30 s), like an unrouted
    /// address whose connect times out. The request is still logged, with status 0.
    Silent,
}

/// What `cloud`'s URL reaches on a host of cloud `on` unless the scenario says otherwise.
pub fn default_reach(cloud: Cloud, on: Cloud) -> Reach {
    if cloud == on {
        return Reach::Own;
    }
    match cloud {
        // metadata.google.internal does not resolve outside GCE.
        Cloud::Gcp => Reach::Refused,
        // 100.100.100.200 is not routed outside Alibaba's VPCs.
        Cloud::Alibaba => Reach::Silent,
        // 169.254.169.254 is the host's own metadata server on AWS, GCE and Azure; Alibaba's
        // VPC does not route it (unverified; modelled as silent).
        Cloud::Aws | Cloud::Azure => {
            if on == Cloud::Alibaba {
                Reach::Silent
            } else {
                Reach::Host
            }
        }
    }
}

/// The metadata services' clock. It is the machine's clock plus a skew (which a script may
/// change over time), so a test can make the node's clock wrong relative to the metadata
/// service: every `Date` header the fakes send, and every time they generate from a relative
/// offset (a notice "deadline in 120 s", a scheduled event "NotBefore in 15 min"), is on this
/// clock. Absolute times given by a test (e.g. [`crate::Sim::set_notice`]) are served as given.
#[derive(Debug)]
pub struct Clock {
    anchor: (Instant, SystemTime),
    /// Skews in milliseconds (service minus machine), each from an instant on, sorted.
    skews: std::sync::Mutex<Vec<(Instant, i64)>>,
}

impl Clock {
    /// A clock anchored at the simulator's start with an initial skew.
    pub fn new(anchor: (Instant, SystemTime), skew_ms: i64) -> Clock {
        Clock {
            anchor,
            skews: std::sync::Mutex::new(vec![(anchor.0, skew_ms)]),
        }
    }

    /// The skew in force at `at` (milliseconds; positive: the service is ahead of the machine).
    pub fn skew_ms(&self, at: Instant) -> i64 {
        lock(&self.skews)
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map_or(0, |(_, s)| *s)
    }

    /// From `at` on, the service clock is `ms` milliseconds ahead of the machine's.
    pub fn set_skew(&self, at: Instant, ms: i64) {
        let mut s = lock(&self.skews);
        s.retain(|(t, _)| *t < at);
        s.push((at, ms));
    }

    /// The machine's wall clock at `at`.
    pub fn machine_time(&self, at: Instant) -> SystemTime {
        let (i0, t0) = self.anchor;
        if at >= i0 {
            t0 + (at - i0)
        } else {
            t0 - (i0 - at)
        }
    }

    /// The metadata service's wall clock at `at`.
    pub fn service_time(&self, at: Instant) -> SystemTime {
        shift(self.machine_time(at), self.skew_ms(at))
    }

    /// The metadata service's wall clock now.
    pub fn now(&self) -> SystemTime {
        self.service_time(Instant::now())
    }

    /// The IMF-fixdate `Date` header value for now on the service clock.
    pub fn date_header(&self) -> String {
        crate::http::http_date(self.now())
    }
}

/// `t` moved by `ms` milliseconds (either way).
pub fn shift(t: SystemTime, ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        t + d
    } else {
        t - d
    }
}

/// Parses an IMF-fixdate (`Tue, 15 Nov 1994 08:12:31 GMT`), the format of `Date` headers and
/// of Azure's `NotBefore`.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (wd, rest) = s.split_once(", ")?;
    if wd.len() != 3 {
        return None;
    }
    let p: Vec<&str> = rest.split(' ').collect();
    if p.len() != 5 || p[4] != "GMT" || p[0].len() != 2 {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| *x == p[1])? + 1;
    let t = crate::util::parse_rfc3339(&format!("{}-{m:02}-{}T{}Z", p[2], p[0], p[3]))?;
    (crate::http::http_date(t) == s).then_some(t)
}

/// One scripted change to a metadata service.
#[derive(Debug, Clone)]
pub enum Step {
    /// An AWS IMDS change.
    Aws(AwsStep),
    /// A GCE metadata change.
    Gcp(GcpStep),
    /// An Azure Scheduled Events change.
    Azure(AzureStep),
    /// An Alibaba metadata change.
    Alibaba(AlibabaStep),
    /// The metadata clock is this many milliseconds ahead of the machine's from now on.
    ClockSkew(i64),
}

impl Step {
    /// AWS spot notice `action` (terminate/stop/hibernate) with `time` = now + `deadline_in`.
    pub fn spot(action: &str, deadline_in: Duration) -> Step {
        Step::Aws(AwsStep::Spot {
            action: action.to_string(),
            deadline_in,
        })
    }

    /// The AWS spot notice goes away (404 again).
    pub fn spot_clear() -> Step {
        Step::Aws(AwsStep::SpotClear)
    }

    /// An AWS rebalance recommendation with `noticeTime` = now.
    pub fn rebalance() -> Step {
        Step::Aws(AwsStep::Rebalance)
    }

    /// The AWS rebalance recommendation goes away.
    pub fn rebalance_clear() -> Step {
        Step::Aws(AwsStep::RebalanceClear)
    }

    /// An AWS scheduled maintenance event appears (times relative to the step).
    pub fn scheduled(ev: MaintenanceEvent) -> Step {
        Step::Aws(AwsStep::Scheduled(ev))
    }

    /// The scheduled event with this id is cancelled (moves to history, `[Canceled]`).
    pub fn cancel_scheduled(id: &str) -> Step {
        Step::Aws(AwsStep::Cancel(id.to_string()))
    }

    /// The scheduled event with this id is completed (moves to history, `[Completed]`).
    pub fn complete_scheduled(id: &str) -> Step {
        Step::Aws(AwsStep::Complete(id.to_string()))
    }

    /// The ASG target lifecycle state becomes `state` (`None`: 404 again).
    pub fn lifecycle(state: Option<&str>) -> Step {
        Step::Aws(AwsStep::Lifecycle(state.map(str::to_string)))
    }

    /// A GCE metadata key (e.g. `instance/preempted`) takes `value`.
    pub fn gcp(key: &str, value: &str) -> Step {
        Step::Gcp(GcpStep::Set {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    /// `instance/preempted` becomes `TRUE`.
    pub fn gcp_preempted() -> Step {
        Step::gcp("instance/preempted", "TRUE")
    }

    /// An Azure scheduled event appears (`NotBefore` relative to the step).
    pub fn azure_event(ev: AzureEvent) -> Step {
        Step::Azure(AzureStep::Add(ev))
    }

    /// The Azure event with this id starts (`EventStatus: Started`, `NotBefore: ""`).
    pub fn azure_start(id: &str) -> Step {
        Step::Azure(AzureStep::Start(id.to_string()))
    }

    /// The Azure event with this id disappears (finished or cancelled).
    pub fn azure_remove(id: &str) -> Step {
        Step::Azure(AzureStep::Remove(id.to_string()))
    }

    /// Alibaba `instance/spot/termination-time` = now + `time_in`.
    pub fn alibaba_termination(time_in: Duration) -> Step {
        Step::Alibaba(AlibabaStep::Termination(time_in))
    }

    /// Alibaba termination-time goes away.
    pub fn alibaba_clear() -> Step {
        Step::Alibaba(AlibabaStep::Clear)
    }

    /// The metadata clock runs `ms` milliseconds ahead of the machine's (negative: behind).
    pub fn clock_skew(ms: i64) -> Step {
        Step::ClockSkew(ms)
    }
}

/// A timeline of metadata changes: "at +2 s a rebalance appears, at +5 s a spot notice with
/// deadline +120 s, at +8 s the scheduled event is cancelled". Offsets count from the
/// simulator's start ([`crate::Scenario::script`]) or from the call
/// ([`crate::Sim::run_script`]). Steps are applied in time order (ties in insertion order)
/// when they fall due: lazily, at the next request to that service (or state query), and a
/// waiting GCE hanging GET wakes at the step's instant. A change is recorded at its scheduled
/// instant, not when a request happened to observe it.
#[derive(Debug, Clone, Default)]
pub struct Script {
    steps: Vec<(Duration, Step)>,
}

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script::default()
    }

    /// Adds `step` at offset `d`.
    pub fn at(mut self, d: Duration, step: Step) -> Script {
        self.steps.push((d, step));
        self
    }

    /// The steps, in the order added.
    pub fn steps(&self) -> &[(Duration, Step)] {
        &self.steps
    }
}

/// Steps waiting for their instant (kept sorted by instant, stable for ties).
#[derive(Debug, Clone)]
pub struct Pending<T> {
    items: Vec<(Instant, u64, T)>,
    seq: u64,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            items: Vec::new(),
            seq: 0,
        }
    }
}

impl<T> Pending<T> {
    /// Schedules `item` at `at`.
    pub fn push(&mut self, at: Instant, item: T) {
        self.seq += 1;
        self.items.push((at, self.seq, item));
        self.items.sort_by_key(|(t, s, _)| (*t, *s));
    }

    /// Removes and returns the items due at `now`, in order, with their instants.
    pub fn due(&mut self, now: Instant) -> Vec<(Instant, T)> {
        let n = self.items.iter().take_while(|(t, _, _)| *t <= now).count();
        self.items.drain(..n).map(|(t, _, x)| (t, x)).collect()
    }

    /// When the next item falls due.
    pub fn next_at(&self) -> Option<Instant> {
        self.items.first().map(|(t, _, _)| *t)
    }
}

/// One request to the GCE, Azure or Alibaba fake, as the simulator saw it.
#[derive(Debug, Clone)]
pub struct MetaRequest {
    /// Which fake got it.
    pub cloud: Cloud,
    /// HTTP method.
    pub method: String,
    /// Path with query, as sent.
    pub path: String,
    /// Request headers as sent.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Response status; 0 when the request was never answered (hang, silent host).
    pub status: u16,
    /// Monotonic arrival time.
    pub at: Instant,
    /// When the answer went out (or the request was given up on).
    pub answered: Instant,
    /// Wall-clock arrival time (machine clock).
    pub time: SystemTime,
    /// Short remark (`held 4.9s`, `no Metadata-Flavor`, `slow first call`).
    pub note: String,
}

impl MetaRequest {
    pub(crate) fn new(cloud: Cloud, req: &crate::http::Request) -> MetaRequest {
        let now = Instant::now();
        MetaRequest {
            cloud,
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            status: 0,
            at: now,
            answered: now,
            time: SystemTime::now(),
            note: String::new(),
        }
    }

    /// First request header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How long the request was held before its answer.
    pub fn held(&self) -> Duration {
        self.answered.saturating_duration_since(self.at)
    }
}

/// Counts log entries whose path (with query) starts with `prefix`.
pub fn count_prefix<'a>(paths: impl Iterator<Item = &'a str>, prefix: &str) -> usize {
    paths.filter(|p| p.starts_with(prefix)).count()
}

/// A 127.0.0.1 port that refuses connections for as long as this lives, and that no other
/// socket can take meanwhile: the local end of an established loopback connection holds the
/// port without listening on it (so a connect gets RST / ECONNREFUSED, and bind(0) never hands
/// it out). Closing a listener instead would leave a port another test may be given.
pub struct RefusedPort {
    port: u16,
    _pair: (TcpStream, TcpStream),
}

impl RefusedPort {
    /// Reserves such a port.
    pub fn new() -> io::Result<RefusedPort> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(l.local_addr()?)?;
        let (server, _) = l.accept()?;
        Ok(RefusedPort {
            port: client.local_addr()?.port(),
            _pair: (client, server),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// What the scenario says about the metadata side (kept in [`crate::Scenario`]).
#[derive(Clone, Default)]
pub struct MetaPlan {
    pub(crate) cloud: Cloud,
    pub(crate) provider_id: Option<String>,
    pub(crate) reach: Vec<(Cloud, Reach)>,
    pub(crate) skew_ms: i64,
    pub(crate) script: Vec<(Duration, Step)>,
    pub(crate) aws_empty_events: crate::imds::EmptyEvents,
    pub(crate) gcp_hold_limit: Option<Duration>,
    pub(crate) azure_first_call_delay: Option<Duration>,
    pub(crate) azure_approval_starts: Option<bool>,
    pub(crate) azure_rate_limit: Option<usize>,
    pub(crate) alibaba_mode: crate::alibaba::AlibabaMode,
    pub(crate) alibaba_when_none: crate::alibaba::WhenNone,
}

impl MetaPlan {
    /// What `cloud`'s URL reaches in this scenario.
    pub fn reach_of(&self, cloud: Cloud) -> Reach {
        self.reach
            .iter()
            .rev()
            .find(|(c, _)| *c == cloud)
            .map_or_else(|| default_reach(cloud, self.cloud), |(_, r)| *r)
    }
}

/// Splits a script into per-service schedules, with instants from `base`.
pub(crate) struct Split {
    pub aws: Vec<(Instant, AwsStep)>,
    pub gcp: Vec<(Instant, GcpStep)>,
    pub azure: Vec<(Instant, AzureStep)>,
    pub alibaba: Vec<(Instant, AlibabaStep)>,
}

pub(crate) fn split(steps: &[(Duration, Step)], base: Instant, clock: &Clock) -> Split {
    let mut s = Split {
        aws: Vec::new(),
        gcp: Vec::new(),
        azure: Vec::new(),
        alibaba: Vec::new(),
    };
    for (d, step) in steps {
        let at = base + *d;
        match step.clone() {
            Step::Aws(x) => s.aws.push((at, x)),
            Step::Gcp(x) => s.gcp.push((at, x)),
            Step::Azure(x) => s.azure.push((at, x)),
            Step::Alibaba(x) => s.alibaba.push((at, x)),
            Step::ClockSkew(ms) => clock.set_skew(at, ms),
        }
    }
    s
}

/// The GCE, Azure and Alibaba fakes of a running [`crate::Sim`] (the AWS one lives with the
/// API server's shared state), the clock they share and the refusing port.
pub struct Fakes {
    pub(crate) plan: MetaPlan,
    pub(crate) clock: Arc<Clock>,
    pub(crate) gcp: Arc<Gcp>,
    pub(crate) azure: Arc<Azure>,
    pub(crate) alibaba: Arc<Alibaba>,
    servers: Vec<(Cloud, Server)>,
    refused: RefusedPort,
}

impl Fakes {
    /// Starts the three fakes, and configures `imds` (the AWS fake) for the scenario: its
    /// clock, scripted AWS steps and whether it answers at all on this host.
    pub(crate) fn start(
        plan: &MetaPlan,
        node_name: &str,
        anchor: (Instant, SystemTime),
        observer: Option<Observer>,
        imds: &mut ImdsState,
    ) -> io::Result<Fakes> {
        let clock = Arc::new(Clock::new(anchor, plan.skew_ms));
        imds.clock = clock.clone();
        imds.empty_events = plan.aws_empty_events;
        imds.launched = anchor.1 - Duration::from_secs(3 * 86_400);
        imds.silent = plan.reach_of(Cloud::Aws) == Reach::Silent;
        let gcp = Arc::new(Gcp::new(node_name, clock.clone(), observer.clone()));
        let azure = Arc::new(Azure::new(node_name, clock.clone(), observer.clone()));
        let alibaba = Arc::new(Alibaba::new(clock.clone(), observer));
        {
            let mut g = gcp.state();
            g.silent = plan.reach_of(Cloud::Gcp) == Reach::Silent;
            if let Some(d) = plan.gcp_hold_limit {
                g.hold_limit = d;
            }
        }
        {
            let mut a = azure.state();
            a.silent = plan.reach_of(Cloud::Azure) == Reach::Silent;
            a.configure(
                plan.azure_first_call_delay,
                plan.azure_approval_starts,
                plan.azure_rate_limit,
            );
        }
        alibaba.configure(plan.alibaba_mode, plan.alibaba_when_none);
        alibaba.state().silent = plan.reach_of(Cloud::Alibaba) == Reach::Silent;
        let mut fakes = Fakes {
            plan: plan.clone(),
            clock,
            servers: Vec::new(),
            refused: RefusedPort::new()?,
            gcp,
            azure,
            alibaba,
        };
        let split = split(&plan.script, anchor.0, &fakes.clock);
        for (at, step) in split.aws {
            imds.pending.push(at, step);
        }
        fakes.gcp.schedule(split.gcp);
        fakes.azure.schedule(split.azure);
        fakes.alibaba.schedule(split.alibaba);
        let g = fakes.gcp.clone();
        let gs = Server::start("gcp", Arc::new(move |req, ctx| g.handle(req, ctx)), None)?;
        let a = fakes.azure.clone();
        let az = Server::start("azure", Arc::new(move |req, ctx| a.handle(req, ctx)), None)?;
        let b = fakes.alibaba.clone();
        let al = Server::start(
            "alibaba",
            Arc::new(move |req, ctx| b.handle(req, ctx)),
            None,
        )?;
        fakes.servers = vec![(Cloud::Gcp, gs), (Cloud::Azure, az), (Cloud::Alibaba, al)];
        Ok(fakes)
    }

    fn url(&self, cloud: Cloud) -> String {
        self.servers
            .iter()
            .find(|(c, _)| *c == cloud)
            .map_or_else(String::new, |(_, s)| {
                format!("http://127.0.0.1:{}", s.addr().port())
            })
    }

    pub(crate) fn gcp_url(&self) -> String {
        self.url(Cloud::Gcp)
    }

    pub(crate) fn azure_url(&self) -> String {
        self.url(Cloud::Azure)
    }

    pub(crate) fn alibaba_url(&self) -> String {
        self.url(Cloud::Alibaba)
    }

    /// The URL a handler gets for `cloud` (see the module docs).
    pub(crate) fn env_url(&self, cloud: Cloud, imds_url: &str) -> String {
        let own = |c: Cloud| match c {
            Cloud::Aws => imds_url.to_string(),
            c => self.url(c),
        };
        match self.plan.reach_of(cloud) {
            Reach::Own | Reach::Silent => own(cloud),
            Reach::Host => own(self.plan.cloud),
            Reach::Refused => self.refused.url(),
        }
    }

    /// Stops the three servers (joining their threads).
    pub(crate) fn stop(&mut self) {
        self.servers.clear();
    }
}

/// Sets the scenario's nodes up as nodes of the scenario's cloud: `spec.providerID`, that
/// provider's spot-pool labels (and, on AKS, the spot taint); the replacement node as an
/// on-demand node of the same cloud. `user_labels` are applied again on top.
pub(crate) fn dress_nodes(
    nodes: &mut std::collections::BTreeMap<String, Value>,
    plan: &MetaPlan,
    main: &str,
    replacement: &str,
    user_labels: &[(String, String)],
) {
    for (name, spot) in [(main, true), (replacement, false)] {
        let Some(node) = nodes.get_mut(name) else {
            continue;
        };
        if name == replacement && name == main && !spot {
            continue;
        }
        dress(node, plan.cloud, name, spot);
        if spot {
            match &plan.provider_id {
                Some(p) if p.is_empty() => {
                    if let Some(spec) = node["spec"].as_object_mut() {
                        spec.remove("providerID");
                    }
                }
                Some(p) => node["spec"]["providerID"] = json!(p),
                None => {}
            }
            for (k, v) in user_labels {
                node["metadata"]["labels"][k] = json!(v);
            }
        }
    }
}

fn dress(node: &mut Value, cloud: Cloud, name: &str, spot: bool) {
    let (provider_id, region, zone, itype, labels): (String, &str, &str, &str, Vec<(&str, &str)>) =
        match cloud {
            Cloud::Aws => return,
            Cloud::Gcp => (
                format!("gce://{}/{}/{name}", gcp::PROJECT_ID, gcp::ZONE),
                "us-central1",
                gcp::ZONE,
                "e2-standard-4",
                if spot {
                    vec![
                        ("cloud.google.com/gke-nodepool", "spot-pool"),
                        ("cloud.google.com/gke-spot", "true"),
                        ("cloud.google.com/gke-provisioning", "spot"),
                        ("cloud.google.com/machine-family", "e2"),
                    ]
                } else {
                    vec![
                        ("cloud.google.com/gke-nodepool", "default-pool"),
                        ("cloud.google.com/gke-provisioning", "standard"),
                        ("cloud.google.com/machine-family", "e2"),
                    ]
                },
            ),
            Cloud::Azure => (
                if spot {
                    format!(
                        "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/3",
                        azure::SUBSCRIPTION,
                        azure::RESOURCE_GROUP.to_lowercase(),
                        azure::VMSS
                    )
                } else {
                    format!(
                        "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss/virtualMachines/0",
                        azure::SUBSCRIPTION,
                        azure::RESOURCE_GROUP.to_lowercase()
                    )
                },
                "eastus",
                "eastus-1",
                "Standard_D4s_v3",
                if spot {
                    vec![
                        ("agentpool", "spotpool"),
                        ("kubernetes.azure.com/agentpool", "spotpool"),
                        ("kubernetes.azure.com/mode", "user"),
                        ("kubernetes.azure.com/scalesetpriority", "spot"),
                    ]
                } else {
                    vec![
                        ("agentpool", "nodepool1"),
                        ("kubernetes.azure.com/agentpool", "nodepool1"),
                        ("kubernetes.azure.com/mode", "system"),
                    ]
                },
            ),
            Cloud::Alibaba => (
                if spot {
                    format!("alicloud://{}.{}", alibaba::REGION, alibaba::INSTANCE_ID)
                } else {
                    format!("alicloud://{}.i-bp1aaa222bbb333ccc44", alibaba::REGION)
                },
                alibaba::REGION,
                alibaba::ZONE,
                "ecs.g6e.large",
                if spot {
                    vec![
                        ("alibabacloud.com/nodepool-id", "np-spot3a8c1f"),
                        ("node.alibabacloud.com/instance-charge-type", "PostPaid"),
                        ("node.alibabacloud.com/spot-strategy", "SpotAsPriceGo"),
                    ]
                } else {
                    vec![
                        ("alibabacloud.com/nodepool-id", "np-core9b2d4e"),
                        ("node.alibabacloud.com/instance-charge-type", "PostPaid"),
                        ("node.alibabacloud.com/spot-strategy", "NoSpot"),
                    ]
                },
            ),
        };
    node["spec"]["providerID"] = json!(provider_id);
    if let Some(l) = node["metadata"]["labels"].as_object_mut() {
        l.retain(|k, _| !k.starts_with("eks.amazonaws.com/"));
        for (k, v) in [
            ("beta.kubernetes.io/instance-type", itype),
            ("node.kubernetes.io/instance-type", itype),
            ("failure-domain.beta.kubernetes.io/region", region),
            ("failure-domain.beta.kubernetes.io/zone", zone),
            ("topology.kubernetes.io/region", region),
            ("topology.kubernetes.io/zone", zone),
        ] {
            l.insert(k.to_string(), json!(v));
        }
        for (k, v) in labels {
            l.insert(k.to_string(), json!(v));
        }
    }
    if let Some(a) = node["status"]["addresses"].as_array_mut() {
        a.retain(|x| x["type"] != "InternalDNS");
    }
    if cloud == Cloud::Azure && spot {
        let taint = json!({"key": "kubernetes.azure.com/scalesetpriority", "value": "spot",
            "effect": "NoSchedule"});
        match node["spec"]["taints"].as_array_mut() {
            Some(t) => t.push(taint),
            None => node["spec"]["taints"] = json!([taint]),
        }
    }
}

/// Scenario builders for the metadata side.
impl crate::Scenario {
    /// Which cloud the node is on (default AWS): the node's `spec.providerID` and spot-pool
    /// labels, and which metadata service answers (the others behave as on a real host of
    /// that cloud, see [`Reach`]).
    pub fn cloud(mut self, c: Cloud) -> Self {
        self.meta.cloud = c;
        self
    }

    /// Overrides the node's `spec.providerID`; `""` leaves the field out (a cluster without a
    /// cloud provider: detection must probe).
    pub fn provider_id(mut self, id: &str) -> Self {
        self.meta.provider_id = Some(id.to_string());
        self
    }

    /// What `cloud`'s metadata URL reaches on this host (overrides [`default_reach`]).
    pub fn reach(mut self, cloud: Cloud, r: Reach) -> Self {
        self.meta.reach.push((cloud, r));
        self
    }

    /// The metadata clock runs `ms` milliseconds ahead of the machine's (negative: behind),
    /// i.e. the node's clock is `ms` behind the metadata service's.
    pub fn clock_skew(mut self, ms: i64) -> Self {
        self.meta.skew_ms = ms;
        self
    }

    /// Adds a timeline of metadata changes (offsets from the simulator's start).
    pub fn script(mut self, s: Script) -> Self {
        self.meta.script.extend(s.steps);
        self
    }

    fn step(mut self, d: Duration, step: Step) -> Self {
        self.meta.script.push((d, step));
        self
    }

    /// An AWS rebalance recommendation appears `d` after start.
    pub fn rebalance_after(self, d: Duration) -> Self {
        self.step(d, Step::rebalance())
    }

    /// An AWS scheduled maintenance event appears `d` after start (its times relative then).
    pub fn scheduled_event_after(self, d: Duration, ev: MaintenanceEvent) -> Self {
        self.step(d, Step::scheduled(ev))
    }

    /// What `events/maintenance/scheduled` answers with no events (default `[]`).
    pub fn scheduled_events_when_empty(mut self, e: EmptyEvents) -> Self {
        self.meta.aws_empty_events = e;
        self
    }

    /// `autoscaling/target-lifecycle-state` is `InService` from the start and `Terminated`
    /// from `d` on.
    pub fn asg_terminated_after(self, d: Duration) -> Self {
        self.step(Duration::ZERO, Step::lifecycle(Some("InService")))
            .step(d, Step::lifecycle(Some("Terminated")))
    }

    /// GCE `instance/preempted` becomes `TRUE` `d` after start.
    pub fn gcp_preempt_after(self, d: Duration) -> Self {
        self.step(d, Step::gcp_preempted())
    }

    /// GCE `instance/maintenance-event` becomes `value` (e.g. `TERMINATE_ON_HOST_MAINTENANCE`)
    /// `d` after start.
    pub fn gcp_maintenance_after(self, d: Duration, value: &str) -> Self {
        self.step(d, Step::gcp("instance/maintenance-event", value))
    }

    /// Longest hold of a GCE hanging GET (default 30 s).
    pub fn gcp_hold_limit(mut self, d: Duration) -> Self {
        self.meta.gcp_hold_limit = Some(d);
        self
    }

    /// An Azure event of `event_type` for this VM appears `d` after start, with `NotBefore`
    /// `not_before_in` after its appearance.
    pub fn azure_event_after(self, d: Duration, event_type: &str, not_before_in: Duration) -> Self {
        self.step(
            d,
            Step::azure_event(AzureEvent::new(event_type, not_before_in)),
        )
    }

    /// The first scheduledevents call (the service's activation) takes `d`.
    pub fn azure_first_call_delay(mut self, d: Duration) -> Self {
        self.meta.azure_first_call_delay = Some(d);
        self
    }

    /// Whether approving a `Scheduled` event starts it (default true).
    pub fn azure_approval_starts(mut self, yes: bool) -> Self {
        self.meta.azure_approval_starts = Some(yes);
        self
    }

    /// Answer 429 beyond `n` requests in any 1 s window (default: count only).
    pub fn azure_rate_limit(mut self, n: usize) -> Self {
        self.meta.azure_rate_limit = Some(n);
        self
    }

    /// Alibaba `termination-time` appears `d` after start with a time `time_in` after that
    /// (real notices come about 5 minutes ahead).
    pub fn alibaba_termination_after(self, d: Duration, time_in: Duration) -> Self {
        self.step(d, Step::alibaba_termination(time_in))
    }

    /// Alibaba metadata access mode (default [`AlibabaMode::Optional`]).
    pub fn alibaba_mode(mut self, m: AlibabaMode) -> Self {
        self.meta.alibaba_mode = m;
        self
    }

    /// What Alibaba `termination-time` answers while none is scheduled (default 404).
    pub fn alibaba_when_none(mut self, w: WhenNone) -> Self {
        self.meta.alibaba_when_none = w;
        self
    }
}

/// Metadata-side accessors and knobs common to all clouds.
impl crate::Sim {
    /// The cloud the scenario is on.
    pub fn cloud(&self) -> Cloud {
        self.meta.plan.cloud
    }

    /// What `cloud`'s metadata URL reaches in this scenario.
    pub fn reach(&self, cloud: Cloud) -> Reach {
        self.meta.plan.reach_of(cloud)
    }

    /// The base URL the handler gets for `cloud` (`IMDS_URL`, `GCP_METADATA_URL`, ...): that
    /// cloud's fake, the host's fake at the same address, a refusing port or a silent one.
    pub fn handler_metadata_url(&self, cloud: Cloud) -> String {
        self.meta.env_url(cloud, &self.imds_url())
    }

    /// From now on the metadata clock runs `ms` milliseconds ahead of the machine's.
    pub fn set_clock_skew(&self, ms: i64) {
        self.meta.clock.set_skew(Instant::now(), ms);
    }

    /// The metadata clock's skew now (ms).
    pub fn clock_skew_ms(&self) -> i64 {
        self.meta.clock.skew_ms(Instant::now())
    }

    /// The metadata services' wall clock now.
    pub fn metadata_time(&self) -> SystemTime {
        self.meta.clock.now()
    }

    /// Runs a timeline of changes with offsets from now.
    pub fn run_script(&self, s: Script) {
        let split = split(&s.steps, Instant::now(), &self.meta.clock);
        {
            let mut st = lock(&self.shared.imds);
            for (at, step) in split.aws {
                st.pending.push(at, step);
            }
        }
        self.meta.gcp.schedule(split.gcp);
        self.meta.azure.schedule(split.azure);
        self.meta.alibaba.schedule(split.alibaba);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_table() {
        use Cloud::*;
        assert_eq!(default_reach(Aws, Aws), Reach::Own);
        assert_eq!(default_reach(Gcp, Aws), Reach::Refused);
        assert_eq!(default_reach(Azure, Aws), Reach::Host);
        assert_eq!(default_reach(Alibaba, Aws), Reach::Silent);
        assert_eq!(default_reach(Aws, Gcp), Reach::Host);
        assert_eq!(default_reach(Aws, Azure), Reach::Host);
        assert_eq!(default_reach(Aws, Alibaba), Reach::Silent);
        assert_eq!(default_reach(Azure, Alibaba), Reach::Silent);
        assert_eq!(default_reach(Gcp, Alibaba), Reach::Refused);
        for c in Cloud::ALL {
            assert_eq!(Cloud::parse(c.name()), Some(c));
        }
    }

    #[test]
    fn clock_skew_over_time() {
        let i0 = Instant::now();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = Clock::new((i0, t0), 5_000);
        assert_eq!(c.service_time(i0), t0 + Duration::from_secs(5));
        c.set_skew(i0 + Duration::from_secs(10), -2_000);
        assert_eq!(c.skew_ms(i0 + Duration::from_secs(9)), 5_000);
        assert_eq!(
            c.service_time(i0 + Duration::from_secs(10)),
            t0 + Duration::from_secs(8)
        );
    }

    #[test]
    fn pending_order_is_stable() {
        let i0 = Instant::now();
        let mut p = Pending::default();
        p.push(i0 + Duration::from_secs(2), "b");
        p.push(i0 + Duration::from_secs(1), "a");
        p.push(i0 + Duration::from_secs(2), "c");
        assert_eq!(p.next_at(), Some(i0 + Duration::from_secs(1)));
        let due: Vec<_> = p
            .due(i0 + Duration::from_secs(2))
            .into_iter()
            .map(|(_, x)| x)
            .collect();
        assert_eq!(due, ["a", "b", "c"]);
        assert!(p.next_at().is_none());
    }

    #[test]
    fn http_dates_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_887_151);
        assert_eq!(parse_http_date("Tue, 15 Nov 1994 08:12:31 GMT"), Some(t));
        assert_eq!(parse_http_date("Mon, 15 Nov 1994 08:12:31 GMT"), None);
        assert_eq!(parse_http_date("Tue, 5 Nov 1994 08:12:31 GMT"), None);
    }

    #[test]
    fn refused_port_refuses() {
        let r = RefusedPort::new().unwrap();
        let addr = r.url().trim_start_matches("http://").to_string();
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }
}
