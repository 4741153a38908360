//! Start-up and the notice loop: sources → notices → decision → action.
//!
//! Start-up does the API calls the handler needs before a notice (find the node, read our
//! records on it to resume, discover the Eviction version), so that while idle it makes no API
//! request at all and, on a notice, the cordon goes out at once. Then each of the cloud's
//! watchers runs on a thread of its own and the loop reads what they observe. On every
//! observation (and at least once a second, for time-based steps such as a scheduled event's
//! lead or a rebalance TTL) the loop asks the decision step what the node should be, makes it so
//! through the one action path (`node`), runs the drain on a thread of its own (so polling goes
//! on, and a stronger notice can tighten its deadline), and tells people once per notice and
//! phase. The loop knows no cloud.

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::cloud::{self, Cloud, Observation};
use crate::config::{self, Config};
use crate::decision::{self, Change, Desired, Entry, Ledger, Status};
use crate::drain::{self, Drainer, Fate, Outcome, Report};
use crate::events::{Event, Object, Recorder};
use crate::kube::{Client, EvictionVersion};
use crate::node::{Keeper, Labels};
use crate::notice::{Kind, Notice};
use crate::notify::{Notifier, Origin};
use crate::time::{format_duration, format_rfc3339};
use crate::{debug, error, info, log, warn};

/// Start-up API calls get this long each.
const STARTUP_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between attempts to find our node at start-up.
const STARTUP_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Writes to the node get this long (they are retried on the next step when they fail).
const NODE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `Retry-After` a failed node write honours before it is retried.
const MAX_WRITE_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The longest a drain waits for a throttled cordon's retry ([`Loop::drain_waits_for_cordon`]).
const CORDON_FIRST_LIMIT: Duration = Duration::from_secs(5);
/// The loop re-decides at least this often (time-based steps: leads, TTLs).
const TICK: Duration = Duration::from_secs(1);
/// With nothing on record, live or being retried, no decision depends on the time: the loop
/// then waits for news up to a quarter of `HEALTH_LOOP_TIMEOUT`, at most this long.
const IDLE_TICK_MAX: Duration = Duration::from_secs(10);
/// After a failed acknowledgement, the next try waits this long.
const ACK_RETRY: Duration = Duration::from_secs(5);
/// Repeated poll errors of one source are logged once, then every this many times.
const POLL_ERROR_LOG_EVERY: u64 = 60;

/// What reaches the loop.
enum Input {
    Observed(Observation),
    Drained(Report),
}

impl From<Observation> for Input {
    fn from(o: Observation) -> Input {
        Input::Observed(o)
    }
}

/// Builds everything from the configuration (failures here are configuration errors: exit 2),
/// then runs forever.
pub fn run(cfg: Config) -> Result<(), config::Error> {
    log::set_level(cfg.log_level);
    log::set_json(cfg.log_json);
    crate::metrics::init();
    let fields = cfg.banner_fields();
    let mut pairs: Vec<(&str, &dyn std::fmt::Display)> = vec![
        ("version", &env!("CARGO_PKG_VERSION")),
        ("kube_version", &crate::KUBE_VERSION),
    ];
    pairs.extend(
        fields
            .iter()
            .map(|(k, v)| (*k, v as &dyn std::fmt::Display)),
    );
    log::log(
        log::Level::Info,
        "starting spot-termination-notice-handler",
        &pairs,
    );
    if let Some((addr, text)) = &cfg.metrics_addr {
        serve_metrics(*addr, text, &cfg)?;
    }

    let client = Arc::new(
        Client::new(&cfg.kube_api_url, &cfg.service_account_dir).map_err(|e| config::Error {
            setting: "SERVICE_ACCOUNT_DIR".to_string(),
            expected: "a readable ca.crt (PEM) and token for the Kubernetes API".to_string(),
            got: e,
        })?,
    );
    let notifier = Notifier::new(
        cfg.slack_url.as_ref(),
        crate::notify::Hooks {
            urls: cfg.webhook_urls.clone(),
            headers: cfg.webhook_headers.clone(),
            template: cfg.webhook_template.clone(),
            phases: cfg.webhook_phases,
            proxies: cfg.proxies.clone(),
        },
    )
    .map_err(|(setting, got)| config::Error {
        setting,
        expected: "a usable webhook URL".to_string(),
        got,
    })?;
    let detacher = match &cfg.aws {
        Some(env) => Some(
            crate::detach::Detacher::spawn(
                env.clone(),
                cfg.detach_asg_on.clone(),
                &cfg.imds_url,
                cfg.imds_timeout,
            )
            .map_err(|e| config::Error {
                setting: "DETACH_ASG".to_string(),
                expected: "a thread for the Auto Scaling worker".to_string(),
                got: e.to_string(),
            })?,
        ),
        None => None,
    };
    let node = match &cfg.node_name {
        Some(n) => n.clone(),
        None => find_node(
            &client,
            cfg.namespace.as_deref().unwrap_or_default(),
            cfg.pod_name.as_deref().unwrap_or_default(),
        ),
    };
    if cfg.dry_run {
        warn!("dry run: the handler reads everything and writes nothing; messages say dry run");
        client.set_dry_run(true);
    }
    // The node first: its spec.providerID names the cloud.
    let mut keeper = Keeper::new(&client, &node, cfg.exclude_from_load_balancers, cfg.dry_run);
    let ledger = load_ledger(&mut keeper, &node);
    let provider_id = keeper.view().map(|n| n.provider_id().to_string());
    let (provider, why) = cloud::choose(&cfg, provider_id.as_deref())?;
    info!("cloud chosen", cloud = provider.as_str(), reason = why);
    let cloud: Box<dyn Cloud> = cloud::build(&cfg, provider);
    crate::metrics::set_provider(cloud.provider().as_str());
    info!(&cloud.polling());
    let identity = cloud.identity();
    info!(
        "identified instance",
        node = node,
        provider = cloud.provider().as_str(),
        instance = identity.instance_id,
        instance_type = identity.instance_type,
        zone = identity.zone
    );
    // Events: one discovery request at start-up (before the Eviction one, the last).
    let core_events = cfg.events
        && match client.has_events_v1(Some(Instant::now() + STARTUP_CALL_TIMEOUT)) {
            Ok(v1) => !v1,
            Err(e) => {
                warn!(
                    "events.k8s.io discovery failed; trying it anyway",
                    error = e
                );
                false
            }
        };
    let recorder = Recorder::new(
        client.clone(),
        &node,
        (cfg.events, cfg.node_condition),
        core_events,
    );
    let version =
        match client.discover_eviction_version(Some(Instant::now() + STARTUP_CALL_TIMEOUT)) {
            Ok(v) => v,
            Err(e) => {
                let v = EvictionVersion::for_kube_version(crate::KUBE_VERSION);
                warn!(
                    "Eviction API discovery failed; using the build's default",
                    error = e,
                    kube_version = crate::KUBE_VERSION,
                    eviction_api = v.api_version()
                );
                v
            }
        };
    let boot = boot_time(&cfg.uptime_file, SystemTime::now());
    let (tx, rx) = mpsc::channel::<Input>();
    let watchers = cloud.watchers();
    let names: Vec<&'static str> = watchers.iter().map(|w| w.name()).collect();
    info!("watching", sources = names.join(","));
    for w in watchers {
        if let Err(e) = cloud::spawn(w, tx.clone()) {
            return Err(config::Error {
                setting: "the process".to_string(),
                expected: "a thread per signal source".to_string(),
                got: e.to_string(),
            });
        }
    }
    // No API request is made while idle: do not hold the start-up connection open.
    client.close_idle();
    let mut state = Loop {
        cfg: &cfg,
        client: &client,
        notifier: &notifier,
        recorder: &recorder,
        cloud: cloud.as_ref(),
        origin: Origin {
            cluster: cfg.cluster.clone(),
            node: node.clone(),
            identity,
            channel: cfg.slack_channel.clone(),
            dry_run: cfg.dry_run,
            provider: cloud.provider().as_str().to_string(),
        },
        node,
        version,
        keeper,
        ledger: ledger.unwrap_or_default(),
        loaded: false,
        boot,
        snapshots: BTreeMap::new(),
        errors: BTreeMap::new(),
        sources: names,
        write_errors: SourceErrors::default(),
        write_not_before: None,
        record_owed: false,
        drain_held: None,
        undone: Vec::new(),
        stale_logged: HashSet::new(),
        drain: None,
        tx,
        last_report: None,
        detacher,
        ack_after: Instant::now(),
        condition_checked: false,
        drain_told: None,
    };
    state.drain_told = draining_notice(&state.keeper);
    state.loaded = state.keeper.view().is_some();
    let desired = decision::desired(&state.ledger);
    let acted = state.ledger.iter().any(|e| e.acted.is_some());
    recorder.assume_written(state.holding(&desired), acted);
    std::thread::scope(|s| state.run(s, &rx));
    Ok(())
}

/// A drain running on its own thread.
struct Running {
    ids: Vec<String>,
    control: Arc<drain::Control>,
}

/// Error bookkeeping of one source (or of node writes), for quiet logs.
#[derive(Default)]
struct SourceErrors {
    last: String,
    consecutive: u64,
    total: u64,
}

impl SourceErrors {
    /// Counts a failure; returns what to log: a new kind of error always, a repeated one every
    /// `POLL_ERROR_LOG_EVERY` times.
    fn note(&mut self, text: String) -> Option<(String, u64)> {
        self.total += 1;
        self.consecutive += 1;
        if text != self.last || self.consecutive % POLL_ERROR_LOG_EVERY == 0 {
            self.last = text.clone();
            Some((text, self.consecutive))
        } else {
            None
        }
    }
}

struct Loop<'a> {
    cfg: &'a Config,
    client: &'a Client,
    notifier: &'a Notifier,
    recorder: &'a Recorder,
    cloud: &'a dyn Cloud,
    origin: Origin,
    node: String,
    version: EvictionVersion,
    keeper: Keeper<'a>,
    ledger: Ledger,
    /// The ledger was read from the node (else it is retried when a notice comes).
    loaded: bool,
    boot: Option<SystemTime>,
    /// Each source's last good answer.
    snapshots: BTreeMap<&'static str, Vec<Notice>>,
    errors: BTreeMap<&'static str, SourceErrors>,
    /// Every source the configuration runs.
    sources: Vec<&'static str>,
    /// Failed node writes (cordon), for quiet logs.
    write_errors: SourceErrors,
    /// A throttled node write (429 with `Retry-After`) is not retried before this.
    write_not_before: Option<Instant>,
    /// Until when the drain waits for a throttled cordon's retry.
    drain_held: Option<Instant>,
    /// The ledger changed while node writes waited for their `Retry-After`: it is recorded
    /// once they may go (unless a node update carries it first).
    record_owed: bool,
    /// Notices undone whose "back in service" message waits for the node to be given back
    /// (after a running drain has stopped), with their entries as they were.
    undone: Vec<(Entry, &'static str)>,
    stale_logged: HashSet<String>,
    drain: Option<Running>,
    tx: Sender<Input>,
    /// The last drain's summary and phase (`drained`, `incomplete`, `failed`).
    last_report: Option<(String, &'static str)>,
    /// `DETACH_ASG`: the Auto Scaling worker.
    detacher: Option<crate::detach::Detacher>,
    /// No acknowledgement is tried before this (one failed a moment ago).
    ack_after: Instant,
    /// The Node condition was compared with the ledger at least once.
    condition_checked: bool,
    /// The notice whose drain an earlier run of the handler had started (phase `draining` on
    /// the node at start-up): its `DrainStarted` Event is already recorded, so resuming that
    /// drain does not record it again.
    drain_told: Option<String>,
}

impl<'a> Loop<'a> {
    fn run<'s>(&mut self, scope: &'s std::thread::Scope<'s, 'a>, rx: &Receiver<Input>)
    where
        'a: 's,
    {
        // A restart mid-drain resumes at once, before the first poll answers.
        crate::metrics::loop_turn();
        self.step(scope);
        loop {
            crate::metrics::loop_turn();
            match rx.recv_timeout(self.tick()) {
                Ok(Input::Observed(o)) => self.observed(o),
                Ok(Input::Drained(r)) => self.drained(r),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Take what else is queued before deciding, so a burst costs one step.
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    Input::Observed(o) => self.observed(o),
                    Input::Drained(r) => self.drained(r),
                }
            }
            self.step(scope);
        }
    }

    /// How long the loop waits for news before it decides again (see [`IDLE_TICK_MAX`]).
    fn tick(&self) -> Duration {
        let quiet = self.loaded
            && self.ledger.is_empty()
            && self.undone.is_empty()
            && self.drain.is_none()
            && self.write_not_before.is_none()
            && !self.record_owed
            && self.snapshots.values().all(Vec::is_empty)
            && !self.recorder.retrying();
        if quiet {
            idle_tick(self.cfg.health_loop_timeout)
        } else {
            // A throttled node write is retried the moment its Retry-After has passed, and a
            // cordon's taints go the moment they are due.
            let due = self.write_not_before.or(self.keeper.taints_due());
            due.map_or(TICK, |t| t.saturating_duration_since(Instant::now()))
                .clamp(Duration::from_millis(10), TICK)
        }
    }

    fn observed(&mut self, o: Observation) {
        match o.result {
            Ok(notices) => {
                let e = self.errors.entry(o.source).or_default();
                if e.consecutive > 0 {
                    info!(
                        "metadata polling recovered",
                        source = o.source,
                        failed_polls = e.consecutive,
                        poll_errors_total = e.total
                    );
                    e.consecutive = 0;
                    e.last.clear();
                }
                for n in &notices {
                    if n.is_stale(self.boot) && self.stale_logged.insert(n.id.clone()) {
                        warn!(
                            "ignoring a notice older than this machine's boot",
                            notice = n.id
                        );
                    }
                }
                self.snapshots.insert(o.source, notices);
            }
            Err(text) => {
                let e = self.errors.entry(o.source).or_default();
                if let Some((text, consecutive)) = e.note(text) {
                    warn!(
                        "metadata poll failed; still polling",
                        source = o.source,
                        error = text,
                        consecutive = consecutive,
                        poll_errors_total = e.total
                    );
                }
            }
        }
    }

    fn notices(&self) -> Vec<Notice> {
        self.snapshots.values().flatten().cloned().collect()
    }

    /// One decision and what follows from it.
    fn step<'s>(&mut self, scope: &'s std::thread::Scope<'s, 'a>)
    where
        'a: 's,
    {
        let notices = self.notices();
        if !notices.is_empty() && !self.loaded {
            // The start-up read failed; try again, briefly, before deciding.
            if let Some(l) = load_ledger(&mut self.keeper, &self.node) {
                self.ledger = l;
                self.loaded = true;
                self.drain_told = draining_notice(&self.keeper);
            }
        }
        let before = self.ledger.clone();
        let now = SystemTime::now();
        let observed: Vec<decision::Observed> = self
            .snapshots
            .iter()
            .map(|(s, ns)| (*s, ns.as_slice()))
            .collect();
        let configured: Vec<&str> = self.sources.clone();
        let (desired, changes) =
            decision::decide(&mut self.ledger, &observed, &configured, now, self.boot);
        // The cordon goes first: the Events and the condition wait until it holds (hundreds
        // of nodes reclaimed at once share the API server; bounded by events::HOLD_LIMIT).
        if desired.cordon && !self.cordoned() {
            self.recorder.hold();
        }
        let mut undone = Vec::new();
        let mut acting = false;
        for c in &changes {
            match c {
                Change::Seen { id, status } => {
                    let n = notices
                        .iter()
                        .find(|n| &n.id == id)
                        .expect("seen notices are live");
                    self.announce(n, *status, now);
                    acting |= *status == Status::Active;
                }
                Change::Activated { id } => {
                    info!("scheduled notice is due; acting on it", notice = id);
                    acting = true;
                }
                Change::Undone { id, why } => {
                    info!("notice no longer holds the node", notice = id, reason = why);
                    // As it was before this step: decide may have forgotten it already.
                    if let Some(e) = before.iter().find(|e| &e.id == id) {
                        undone.push((e.clone(), *why));
                    }
                }
                Change::Forgotten { id } => debug!("forgetting notice", notice = id),
            }
        }
        // Detaching from the Auto Scaling group: handed to its worker (never waited for).
        if self.cfg.dry_run && self.detacher.is_some() {
            for e in self.ledger.iter_mut() {
                if e.status.holds()
                    && !e.sent.detached
                    && e.kind == crate::notice::Kind::SpotInterruption
                {
                    info!(
                        "dry run: would detach this instance from its Auto Scaling group",
                        notice = e.id
                    );
                    e.sent.detached = true;
                }
            }
        } else if let Some(d) = self.detacher.as_mut() {
            for f in d.step(&mut self.ledger, now) {
                let text = self
                    .origin
                    .render_detach_failed(f.kind, f.group.as_deref(), &f.error);
                self.notifier.warning(text);
            }
        }
        // A first-seen message is queued as soon as the node records it as sent (the cordon's
        // patch carries that record), so a handler killed in between never sends it twice. If
        // it would say "unknown" for an identity the metadata service did not give at start-up,
        // the identity is read again after the cordon, before the message.
        let refresh_identity = acting && !self.origin.identity.is_complete();
        let mut seen = if refresh_identity {
            Vec::new()
        } else {
            self.mark_seen(&notices)
        };
        self.undone.extend(undone);
        if !desired.is_clear() {
            // The node is not going back: nothing to announce for what was undone.
            self.undone.clear();
        }
        let mut written = self.reconcile(&desired);
        // Released once the taints have gone too (node::TAINT_DELAY after the cordon): one
        // wave of node writes at a time when hundreds of nodes are reclaimed together.
        if !desired.cordon || (self.cordoned() && !self.keeper.taints_waiting()) {
            self.recorder.release();
        }
        if written {
            self.send_seen(&mut seen, now);
        }
        self.manage_drain(scope, &desired);
        if refresh_identity {
            let fresh = self.cloud.identity();
            self.origin.identity.fill_from(fresh);
            seen = self.mark_seen(&notices);
            written = false;
        }
        // While the API server asked us to wait (a throttled cordon), the record waits too: the
        // cordon's retry carries it, and a patch now would only be throttled as well.
        self.record_owed &= !written;
        if (self.ledger != before || self.record_owed) && !written {
            self.record_when_allowed();
        }
        // Recorded now, or the API did not take the record within its timeout: people hear
        // of the notice anyway (a restart may then tell them again).
        self.send_seen(&mut seen, now);
        let recorded = self.ledger.clone();
        self.acknowledge(&notices);
        if self.ledger != recorded {
            self.record_when_allowed();
        }
        // The Node condition follows the ledger (no work while idle with nothing on record).
        if !self.ledger.is_empty() || !before.is_empty() || !self.condition_checked {
            self.condition_checked = true;
            let holding = self.holding(&desired);
            self.recorder.set_condition(holding);
        }
        self.recorder.retry_condition();
    }

    /// Tells the cloud about each live notice whose drain finished with every pod gone, once
    /// per notice (the ledger on the node records it): Azure approves the event then.
    fn acknowledge(&mut self, notices: &[Notice]) {
        if Instant::now() < self.ack_after {
            return;
        }
        for e in self.ledger.iter_mut() {
            if e.status != Status::Drained || e.sent.acked || !notices.iter().any(|n| n.id == e.id)
            {
                continue;
            }
            if self.cfg.dry_run {
                if self.cloud.provider() == crate::notice::Provider::Azure && self.cfg.azure_approve
                {
                    info!(
                        "dry run: would tell the cloud our drain is done (approve the event)",
                        notice = e.id
                    );
                }
                e.sent.acked = true;
                continue;
            }
            match self.cloud.acknowledge(e) {
                None => {}
                Some(Ok(())) => e.sent.acked = true,
                Some(Err(err)) => {
                    warn!(
                        "could not tell the cloud our drain is done; will retry",
                        notice = e.id,
                        error = err
                    );
                    self.ack_after = Instant::now() + ACK_RETRY;
                    return;
                }
            }
        }
    }

    fn announce(&mut self, n: &Notice, status: Status, now: SystemTime) {
        crate::metrics::notice(n.provider.as_str(), n.kind.slug());
        let seconds_left = n.deadline.map(|d| crate::time::secs_until(d, now).round());
        let left = seconds_left.map_or("none".to_string(), |s| format!("{s:.0}"));
        let deadline = n.deadline.map_or("none".to_string(), format_rfc3339);
        let passed = seconds_left.is_some_and(|s| s <= 0.0) && status == Status::Active;
        let what = n.kind.words();
        let msg = match status {
            Status::Pending => format!("{what} notice received; acting on it later"),
            Status::Notified => format!("{what} notice received; message only"),
            _ if passed => {
                format!("{what} notice received with its deadline already passed; acting at once")
            }
            _ => format!("{what} notice received"),
        };
        let level = if passed {
            log::Level::Error
        } else {
            log::Level::Info
        };
        let act_at = n.act_at.map_or("now".to_string(), format_rfc3339);
        let doing = match (status, n.action) {
            (Status::Pending, _) => format!("acting on it at {act_at}"),
            (Status::Notified, _) => "a message only".to_string(),
            (_, crate::notice::Action::Drain) => "cordoning and draining the node".to_string(),
            _ => "cordoning the node".to_string(),
        };
        self.recorder.node_event(
            n.kind.reason(),
            "Notice",
            match n.deadline {
                Some(_) => format!(
                    "{what} notice {}: {}, deadline {deadline} ({left} s left); {doing}",
                    n.id, n.detail
                ),
                None => format!("{what} notice {}: {}, no deadline; {doing}", n.id, n.detail),
            },
            true,
        );
        log::log(
            level,
            &msg,
            &[
                ("notice", &n.id),
                ("kind", &n.kind.slug()),
                ("action", &n.detail),
                ("reaction", &n.action.as_str()),
                ("deadline", &deadline),
                ("deadline_given", &n.deadline_given),
                ("seconds_left", &left),
                ("act_at", &act_at),
            ],
        );
    }

    /// Marks the first-seen message of each notice not announced yet as sent (at most once per
    /// notice: the ledger on the node says what was sent) and returns them, to be queued by
    /// [`Loop::send_seen`] once the node has that record.
    fn mark_seen(&mut self, notices: &[Notice]) -> Vec<(Notice, Status)> {
        let mut out = Vec::new();
        for e in self.ledger.iter_mut() {
            if e.sent.seen {
                continue;
            }
            if let Some(n) = notices.iter().find(|n| n.id == e.id) {
                let status = if e.status.holds() {
                    Status::Active
                } else {
                    e.status
                };
                out.push((n.clone(), status));
                e.sent.seen = true;
            }
        }
        out
    }

    fn send_seen(&self, seen: &mut Vec<(Notice, Status)>, now: SystemTime) {
        for (n, status) in seen.drain(..) {
            self.notifier.notice(&self.origin, &n, status, now);
        }
    }

    /// Makes the node what the decision says; on failure the next step tries again. Returns
    /// whether the ledger was written to the node.
    fn reconcile(&mut self, desired: &Desired) -> bool {
        let deadline = Instant::now() + NODE_WRITE_TIMEOUT;
        if desired.is_clear() {
            let touched = self.keeper.before.is_some()
                || self.keeper.view().is_some_and(|n| {
                    n.annotations().phase.is_some()
                        || n.taints()
                            .iter()
                            .any(|t| crate::record::is_our_taint(&t.key))
                });
            if !touched || self.drain.is_some() {
                // Nothing of ours on the node; or a drain is still stopping (it reports back,
                // and the node is given back on the next step).
                return false;
            }
            // The back-in-service messages this gives rise to, marked sent in what we write.
            // An undone notice may already be forgotten (gone from the ledger): its entry as it
            // was when undone says what to tell.
            let mut ledger = self.ledger.clone();
            let mut messages = Vec::new();
            for (e, why) in &self.undone {
                if !e.sent.back && e.acted.is_some() && e.action >= crate::notice::Action::Cordon {
                    if let Some(kept) = ledger.iter_mut().find(|k| k.id == e.id) {
                        kept.sent.back = true;
                    }
                    messages.push((e.clone(), *why));
                }
            }
            let given = self.keeper.give_back(&ledger, deadline);
            crate::metrics::action(crate::metrics::Action::GiveBack, given.is_ok());
            return match given {
                Ok(g) => {
                    match g.left_cordoned {
                        None => info!(
                            "node back in service",
                            node = self.node,
                            uncordoned = g.uncordoned
                        ),
                        Some(why) => warn!(
                            "released the node but left it cordoned",
                            node = self.node,
                            reason = why
                        ),
                    }
                    let why = self
                        .undone
                        .first()
                        .map_or("no notice holds it", |(_, w)| *w);
                    let note = match g.left_cordoned {
                        None => format!(
                            "back in service ({why}): uncordoned, our taints and label removed"
                        ),
                        Some(r) => format!(
                            "released ({why}), our taints and label removed; left cordoned: {r}"
                        ),
                    };
                    self.recorder
                        .node_event("BackInService", "Uncordon", note, false);
                    self.ledger = ledger;
                    self.last_report = None;
                    self.undone.clear();
                    for (e, why) in messages {
                        self.notifier.back(&self.origin, &e, why, g.left_cordoned);
                    }
                    true
                }
                Err(e) => {
                    warn!(
                        "could not give the node back; will retry",
                        node = self.node,
                        error = e
                    );
                    false
                }
            };
        }
        if self.is_applied(desired) {
            return false;
        }
        if self.writes_deferred() {
            // The API server asked us to wait (API Priority and Fairness): the next step retries.
            return false;
        }
        let ids = self.reason_ids();
        let labels = self.labels(desired);
        let result = self
            .keeper
            .apply(desired, &ids, &self.ledger, &labels, deadline);
        if std::mem::take(&mut self.keeper.just_cordoned) {
            if let Some(g) = self.governing() {
                let note = format!("cordoned for {} notice {}", g.kind.words(), g.id);
                self.recorder.node_event("Cordoned", "Cordon", note, false);
            }
        }
        match result {
            Ok(()) => {
                self.write_not_before = None;
                if self.write_errors.consecutive > 0 {
                    info!(
                        "node update succeeded after failures",
                        node = self.node,
                        failed_attempts = self.write_errors.consecutive
                    );
                    self.write_errors.consecutive = 0;
                    self.write_errors.last.clear();
                }
                true
            }
            Err(e) => {
                let cordoned = self.cordoned();
                let e2 = self.write_errors.note(e.to_string());
                // Honour a throttled answer's Retry-After (up to 20 % more: hundreds of nodes
                // throttled at once do not all come back together), within bounds: the drain
                // must not wait long on it. Once the cordon holds, what is left (taints,
                // records) backs off as the drain does, so the cordons of other nodes find room.
                let repeats = if cordoned {
                    self.write_errors.consecutive
                } else {
                    1
                } as u32;
                self.write_not_before = e.retry_after().map(|d| {
                    let d = crate::drain::shed_backoff(d, repeats).min(MAX_WRITE_RETRY_AFTER);
                    Instant::now() + crate::drain::no_sooner(d, &self.node, repeats)
                });
                let e = e2;
                if let Some((text, consecutive)) = e {
                    warn!(
                        match (desired.cordon, self.cordoned()) {
                            (true, false) => "cordon failed; will retry",
                            (true, true) => "node cordoned, but writing its taints or our records failed; will retry",
                            (false, _) => "writing the node's taints or our records failed; will retry",
                        },
                        node = self.node,
                        error = text,
                        consecutive = consecutive
                    );
                }
                false
            }
        }
    }

    /// A node write was throttled and its `Retry-After` has not passed yet.
    fn writes_deferred(&self) -> bool {
        self.write_not_before.is_some_and(|t| Instant::now() < t)
    }

    /// The condition's reason and message while a notice holds the node.
    fn holding(&self, desired: &Desired) -> Option<(&'static str, String)> {
        let phase = self.labels(desired).phase.unwrap_or_default();
        self.governing().map(|e| {
            (
                e.kind.reason(),
                format!(
                    "{} notice {} ({}), deadline {}: node {phase}",
                    e.kind.words(),
                    e.id,
                    e.detail,
                    e.deadline.map_or("none".to_string(), format_rfc3339)
                ),
            )
        })
    }

    /// The node already is what `desired` asks (as far as our last view of it goes).
    fn is_applied(&self, desired: &Desired) -> bool {
        let Some(n) = self.keeper.view() else {
            return false;
        };
        let ours: Vec<&str> = n
            .taints()
            .iter()
            .filter(|t| crate::record::is_our_taint(&t.key))
            .map(|t| t.key.as_str())
            .collect();
        let want: Vec<String> = desired
            .reasons
            .iter()
            .map(|k| crate::record::taint_key(*k))
            .collect();
        let label_ok = !(desired.exclude_lb && self.cfg.exclude_from_load_balancers)
            || n.exclude_lb_label().is_some();
        n.unschedulable() == desired.cordon
            && ours.len() == want.len()
            && want.iter().all(|w| ours.contains(&w.as_str()))
            && label_ok
            && n.annotations().phase.as_deref() == self.labels(desired).phase.as_deref()
    }

    /// For each live reason, the notice whose id its taint carries.
    fn reason_ids(&self) -> Vec<(Kind, String)> {
        let mut out: Vec<(Kind, String)> = Vec::new();
        for e in self.ledger.iter().filter(|e| e.status.holds()) {
            if !out.iter().any(|(k, _)| *k == e.kind) {
                out.push((e.kind, e.id.clone()));
            }
        }
        out
    }

    fn governing(&self) -> Option<&Entry> {
        let holding = self.ledger.iter().filter(|e| e.status.holds());
        holding
            .clone()
            .filter(|e| e.deadline.is_some())
            .min_by_key(|e| e.deadline)
            .or_else(|| self.ledger.iter().find(|e| e.status.holds()))
    }

    fn labels(&self, desired: &Desired) -> Labels {
        let phase = if desired.is_clear() {
            None
        } else if self.drain.is_some() || desired.drain.is_some() {
            Some("draining")
        } else if self.ledger.iter().any(|e| e.status == Status::Incomplete) {
            Some(self.last_report.as_ref().map_or("incomplete", |(_, p)| p))
        } else if self.ledger.iter().any(|e| e.status == Status::Drained) {
            Some("drained")
        } else {
            Some("cordoned")
        };
        let g = self.governing();
        Labels {
            phase: phase.map(String::from),
            notice: g.map(|e| e.id.clone()),
            deadline: g.and_then(|e| e.deadline),
            acted_at: self.ledger.iter().filter_map(|e| e.acted).min(),
            summary: self.last_report.as_ref().map(|(s, _)| s.clone()),
        }
    }

    /// The node is cordoned as far as this run can tell (a dry run never writes it).
    fn cordoned(&self) -> bool {
        self.cfg.dry_run || self.keeper.view().is_some_and(|n| n.unschedulable())
    }

    /// [`Loop::record`] now, or once a throttled node write's `Retry-After` has passed.
    fn record_when_allowed(&mut self) {
        self.record_owed = self.writes_deferred();
        if !self.record_owed {
            self.record();
        }
    }

    fn record(&mut self) {
        let desired = decision::desired(&self.ledger);
        let labels = self.labels(&desired);
        let deadline = Instant::now() + NODE_WRITE_TIMEOUT;
        if let Err(e) = self.keeper.record(&self.ledger, &labels, deadline) {
            warn!(
                "could not record our notice records on the node",
                node = self.node,
                error = e
            );
        }
    }

    fn manage_drain<'s>(&mut self, scope: &'s std::thread::Scope<'s, 'a>, desired: &Desired)
    where
        'a: 's,
    {
        let wait = self.drain.is_none()
            && desired
                .drain
                .as_ref()
                .is_some_and(|o| self.drain_waits_for_cordon(desired, o.deadline));
        match (&desired.drain, &self.drain) {
            _ if wait => {}
            (Some(order), None) => {
                self.drain_held = None;
                let control = Arc::new(drain::Control::new(
                    order.deadline,
                    order.force && self.cfg.force_delete,
                    &order.primary,
                    self.cfg.drain_reserve,
                    self.cfg.grace_period,
                ));
                warn_emergency(&control.budget(), order.deadline);
                if !self.keeper.view().is_some_and(|n| n.unschedulable()) {
                    error!(
                        "could not cordon the node; draining anyway",
                        node = self.node
                    );
                }
                self.drain = Some(Running {
                    ids: order.ids.clone(),
                    control: control.clone(),
                });
                let about = self
                    .ledger
                    .iter()
                    .find(|e| e.id == order.primary)
                    .map(|e| {
                        format!(
                            "{}, deadline {} (notice {})",
                            e.kind.words(),
                            e.deadline.map_or("none".to_string(), format_rfc3339),
                            e.id
                        )
                    })
                    .unwrap_or_default();
                // Only the first drain after start-up can be the one a restart resumes.
                if self.drain_told.take().as_deref() != Some(order.primary.as_str()) {
                    self.recorder.node_event(
                        "DrainStarted",
                        "Drain",
                        format!("draining: {about}"),
                        false,
                    );
                }
                let recorder = self.recorder;
                let drainer = Drainer {
                    client: self.client,
                    node: self.node.clone(),
                    own_pod: self.cfg.namespace.clone().zip(self.cfg.pod_name.clone()),
                    version: self.version,
                    dry_run: self.cfg.dry_run,
                    eviction_delay: if self.cfg.exclude_from_load_balancers {
                        self.cfg.eviction_delay
                    } else {
                        Duration::ZERO
                    },
                    order: self.cfg.eviction_order,
                    critical_priority: self.cfg.critical_priority,
                    pod_selector: self.cfg.pod_selector.clone(),
                    surge_blocked: self.cfg.surge_blocked,
                    surge_budgeted: self.cfg.surge_budgeted,
                    since: self
                        .ledger
                        .iter()
                        .find(|e| e.id == order.primary)
                        .map(|e| e.acted.unwrap_or(e.seen)),
                    on_fate: Some(Box::new(move |t: &drain::Target, f: &Fate| {
                        let (reason, action, what, warning) = match f {
                            Fate::Evicted => ("Evicted", "Evict", "evicted", false),
                            Fate::Forced => (
                                "Deleted",
                                "Delete",
                                "deleted at the deadline minus the reserve, its disruption budget still refusing",
                                true,
                            ),
                            _ => return,
                        };
                        recorder.event(Event {
                            regarding: Object::pod(&t.namespace, &t.name, &t.uid),
                            reason,
                            action,
                            note: format!("{what}: {about}"),
                            warning,
                        });
                    })),
                };
                let tx = self.tx.clone();
                crate::metrics::drain_started();
                crate::worker::spawn_scoped(scope, move || {
                    let report = drainer.run(&control);
                    let _ = tx.send(Input::Drained(report));
                });
            }
            (Some(order), Some(running)) => {
                running.control.update(
                    order.deadline,
                    order.force && self.cfg.force_delete,
                    &order.primary,
                );
                for id in &order.ids {
                    if !self.drain.as_ref().is_some_and(|r| r.ids.contains(id)) {
                        if let Some(r) = self.drain.as_mut() {
                            r.ids.push(id.clone());
                        }
                    }
                }
            }
            (None, Some(running)) => {
                if !running.control.is_cancelled() {
                    info!(
                        "no notice needs the drain any more; stopping it",
                        node = self.node
                    );
                    running.control.cancel();
                }
            }
            (None, None) => {}
        }
    }

    /// A throttled cordon is retried before the drain starts: the API server asked us to wait,
    /// and evictions sent meanwhile would be throttled too, crowding out the cordons of other
    /// nodes reclaimed at the same time. At most [`CORDON_FIRST_LIMIT`], or a tenth of the time
    /// left before the deadline if that is less.
    fn drain_waits_for_cordon(&mut self, desired: &Desired, deadline: Option<SystemTime>) -> bool {
        if !desired.cordon || self.cordoned() || !self.writes_deferred() {
            return false;
        }
        let now = Instant::now();
        let left = deadline.map_or(CORDON_FIRST_LIMIT, |d| {
            d.duration_since(SystemTime::now()).unwrap_or_default() / 10
        });
        now < *self
            .drain_held
            .get_or_insert(now + left.min(CORDON_FIRST_LIMIT))
    }

    fn drained(&mut self, mut report: Report) {
        let Some(running) = self.drain.take() else {
            return;
        };
        report.cordoned = self.keeper.view().is_some_and(|n| n.unschedulable());
        let cancelled = running.control.is_cancelled();
        let outcome = report.outcome();
        crate::metrics::drain_finished(report.seconds, outcome == Outcome::Drained, cancelled);
        let mut send = false;
        let mut governing = None;
        if !cancelled {
            // Recorded first, so that no log line or message runs ahead of the node.
            self.last_report = Some((report.summary(), report.phase()));
            decision::drain_finished(&mut self.ledger, &running.ids, outcome == Outcome::Drained);
            let primary = running.control.primary();
            governing = self
                .ledger
                .iter()
                .find(|e| e.id == primary)
                .or_else(|| self.ledger.iter().find(|e| running.ids.contains(&e.id)))
                .cloned();
            for e in self.ledger.iter_mut() {
                if running.ids.contains(&e.id) && !e.sent.drained {
                    e.sent.drained = true;
                    send = true;
                }
            }
            self.record();
            let (reason, warning) = if outcome == Outcome::Drained {
                ("Drained", false)
            } else {
                ("DrainIncomplete", true)
            };
            let note = format!("{}; notice {}", report.summary(), primary);
            self.recorder.node_event(reason, "Drain", note, warning);
        }
        let (level, msg) = match (cancelled, outcome) {
            _ if report.dry_run => (
                log::Level::Info,
                "dry run: drain planned; nothing was evicted",
            ),
            (true, _) => (
                log::Level::Info,
                "drain stopped: no notice needs it any more",
            ),
            (_, Outcome::Drained) => (log::Level::Info, "drain finished"),
            (_, Outcome::PodsLeft) => (log::Level::Error, "drain finished with pods left"),
            (_, Outcome::NotDrained) => {
                (log::Level::Error, "could not list pods; node not drained")
            }
        };
        let seconds = format!("{:.1}", report.seconds);
        let names = drain::some_names(&report.still_present_pods, ",");
        let mut fields: Vec<(&str, &dyn std::fmt::Display)> = vec![
            ("node", &self.node),
            ("evicted", &report.evicted),
            ("forced", &report.forced),
            ("failed", &report.failed),
            ("already_gone", &report.already_gone),
            ("skipped", &report.skipped),
            ("still_present", &report.still_present),
        ];
        if !names.is_empty() {
            fields.push(("still_on_node", &names));
        }
        let left_alone = report.left_alone.len();
        let not_selected = drain::some_names(&report.left_alone, ",");
        if left_alone > 0 {
            fields.push(("left_alone", &left_alone));
            fields.push(("not_selected", &not_selected));
        }
        let surged = drain::some_names(&report.surged, ",");
        if !surged.is_empty() {
            fields.push(("surged", &surged));
        }
        if report.moved > 0 {
            fields.push(("moved", &report.moved));
        }
        fields.push(("cordoned", &report.cordoned));
        fields.push(("seconds", &seconds));
        log::log(level, msg, &fields);
        if let (true, Some(g)) = (send, governing) {
            self.notifier.drained(&self.origin, &g, &report);
        }
    }
}

/// Says so when a drain starts in an emergency (a deadline passed or closer than the window).
fn warn_emergency(budget: &drain::Budget, deadline: Option<SystemTime>) {
    if !budget.emergency {
        return;
    }
    let window_s = drain::EMERGENCY_WINDOW.as_secs();
    match budget.passed_by {
        Some(late) => warn!(
            "the notice's deadline has already passed; acting at once within the emergency window",
            late_s = late.as_secs(),
            window_s = window_s
        ),
        None => warn!(
            "less time left than the emergency window; acting at once within it",
            seconds_left = deadline
                .map(|d| crate::time::secs_until(d, SystemTime::now())
                    .max(0.0)
                    .round())
                .unwrap_or_default(),
            window_s = window_s
        ),
    }
}

/// Starts the metrics and health endpoint; a bad address is a configuration error.
fn serve_metrics(
    addr: std::net::SocketAddr,
    text: &str,
    cfg: &Config,
) -> Result<(), config::Error> {
    let limits = crate::metrics::Limits {
        loop_stall: cfg.health_loop_timeout,
        metadata_silence: cfg.health_metadata_timeout,
        metadata_note: (cfg.poll_interval * 5).max(Duration::from_secs(5)),
    };
    let bound = crate::server::start(addr, limits).map_err(|e| config::Error {
        setting: "METRICS_ADDR".to_string(),
        expected: "an address this process can listen on".to_string(),
        got: format!("{text} ({e})"),
    })?;
    info!(
        "serving /metrics and /healthz",
        addr = text,
        port = bound.port()
    );
    Ok(())
}

/// The notice an earlier run was draining for, by the node's `phase` and `notice` annotations.
fn draining_notice(keeper: &Keeper) -> Option<String> {
    let a = keeper.view()?.annotations();
    if a.phase.as_deref() == Some("draining") {
        a.notice
    } else {
        None
    }
}

/// Reads our records on the node; `None` (with a warning) when the API does not answer.
fn load_ledger(keeper: &mut Keeper, node: &str) -> Option<Ledger> {
    match keeper.load(Instant::now() + STARTUP_CALL_TIMEOUT) {
        Ok(mut l) => {
            let phase = keeper
                .view()
                .and_then(|n| n.annotations().phase)
                .unwrap_or_else(|| "none".to_string());
            // A drain that ended with pods left (or none listed) gets another try after a
            // restart; only a complete one stands.
            for e in l.iter_mut() {
                if e.status == Status::Incomplete {
                    e.status = Status::Active;
                }
            }
            for e in &l {
                info!(
                    "node carries our record of a notice",
                    node = node,
                    notice = e.id,
                    status = e.status.as_str()
                );
                match e.status {
                    Status::Active if e.action == crate::notice::Action::Drain => info!(
                        "resuming the drain this handler started before a restart",
                        notice = e.id,
                        phase = phase
                    ),
                    Status::Drained | Status::Incomplete => info!(
                        "node already drained for this notice (our record); nothing more to do while it lasts",
                        notice = e.id
                    ),
                    _ => {}
                }
            }
            Some(l)
        }
        Err(e) => {
            warn!(
                "could not read the node; will retry when a notice comes",
                error = e
            );
            None
        }
    }
}

/// `spec.nodeName` of our own pod, retried with backoff until the API answers.
fn find_node(client: &Client, ns: &str, pod: &str) -> String {
    let mut backoff = Duration::from_secs(1);
    loop {
        match client.get_pod(ns, pod, Some(Instant::now() + STARTUP_CALL_TIMEOUT)) {
            Ok(p) => match p.node_name.filter(|n| !n.is_empty()) {
                Some(n) => {
                    info!(
                        "found this pod's node",
                        pod = format!("{ns}/{pod}"),
                        node = n
                    );
                    return n;
                }
                None => warn!(
                    "this pod has no spec.nodeName yet; retrying",
                    pod = format!("{ns}/{pod}"),
                    retry_in = format_duration(backoff)
                ),
            },
            Err(e) => warn!(
                "could not look up this pod's node; retrying",
                error = e,
                retry_in = format_duration(backoff)
            ),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(STARTUP_MAX_BACKOFF);
    }
}

/// The loop's wait while nothing is on record: a quarter of `HEALTH_LOOP_TIMEOUT`, so
/// `/healthz` never sees an idle loop as stuck, between [`TICK`] and [`IDLE_TICK_MAX`].
fn idle_tick(health_loop_timeout: Duration) -> Duration {
    (health_loop_timeout / 4).clamp(TICK, IDLE_TICK_MAX)
}

/// When this machine booted, from its uptime (`/proc/uptime` is not namespaced, so it is the
/// host's uptime inside a container too). `None`, with a warning, when unreadable.
pub fn boot_time(uptime_file: &std::path::Path, now: SystemTime) -> Option<SystemTime> {
    let read = || -> Option<SystemTime> {
        let text = std::fs::read_to_string(uptime_file).ok()?;
        let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
        now.checked_sub(Duration::try_from_secs_f64(secs).ok()?)
    };
    let boot = read();
    match boot {
        Some(b) => debug!("machine boot time", boot = format_rfc3339(b)),
        None => error!(
            "cannot read the machine's uptime; stale notices and reboots will not be recognized",
            uptime_file = uptime_file.display()
        ),
    }
    boot
}

/// `1` for 1.0, `0.2` for 0.2: the seed's "every 5 second(s)" wording.
pub fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_loop_turns_well_inside_the_health_limit() {
        for (limit, tick) in [(1, 1), (2, 1), (4, 1), (8, 2), (20, 5), (60, 10), (600, 10)] {
            let t = idle_tick(Duration::from_secs(limit));
            assert_eq!(t, Duration::from_secs(tick), "HEALTH_LOOP_TIMEOUT={limit}s");
        }
    }

    #[test]
    fn seconds_wording() {
        assert_eq!(trim_float(1.0), "1");
        assert_eq!(trim_float(0.2), "0.2");
        assert_eq!(trim_float(5.0), "5");
    }

    #[test]
    fn boot_time_from_an_uptime_file() {
        let dir = std::env::temp_dir().join(format!("stnh-uptime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("uptime");
        std::fs::write(&f, "350735.47 234388.90\n").unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            boot_time(&f, now),
            Some(now - Duration::from_secs_f64(350_735.47))
        );
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(boot_time(&f, now), None);
        let real = boot_time(std::path::Path::new("/proc/uptime"), SystemTime::now());
        assert!(real.is_some_and(|b| b < SystemTime::now()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
