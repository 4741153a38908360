//! Kill anywhere: SIGKILL the real handler at random instants of a drain, restart it at once,
//! and check that every trial converges to the state of an uninterrupted run, with no message,
//! Event, approval or eviction twice, and that each restart did what the README's restart state
//! machine says for the phase the node was in.
//!
//! `cargo test --test chaos` runs one trial per cloud (CI); `make chaos` runs
//! `CHAOS_TRIALS` (default 200) across the four clouds, `CHAOS_SEED` replays a run, and writes
//! the tally to `target/chaos-report.txt`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use stnh_sim::webhook::WebhookKind;
use stnh_sim::{AzureEvent, Cloud, PodSpec, Scenario, Sim};
use support::*;

const NODE: &str = "ip-10-0-1-23.ec2.internal";
const LONG: Duration = Duration::from_secs(60);
/// Pods stop 0.3 to 1.5 s after their eviction, so a drain lasts about 1.5 s and the kills land
/// before, during and after it.
const QUICK: Duration = Duration::from_millis(300);

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CLOUDS: [Cloud; 4] = [Cloud::Aws, Cloud::Gcp, Cloud::Azure, Cloud::Alibaba];

fn cloud_name(c: Cloud) -> &'static str {
    match c {
        Cloud::Aws => "aws",
        Cloud::Gcp => "gcp",
        Cloud::Azure => "azure",
        Cloud::Alibaba => "alibaba",
    }
}

fn scenario(cloud: Cloud) -> Scenario {
    Scenario::new(NODE)
        .cloud(cloud)
        .handler_pod()
        .webhook_sink(WebhookKind::Generic)
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(QUICK),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(QUICK),
        )
        // A budget that allows both: the drain's budget-blocked retries (5 s each) are the
        // drain tests' subject; here they would only make each trial longer.
        .pdb("shop", "web-pdb", &[("app", "web")], None, Some(2))
        .pod(
            PodSpec::new("data", "db-0")
                .statefulset("db")
                .shutdown(QUICK),
        )
        .pod(
            PodSpec::new("batch", "worker-1")
                .replicaset("worker-5f6")
                .shutdown(Duration::from_millis(1500)),
        )
        .pod(PodSpec::new("kube-system", "cni-x1").daemonset("cni"))
}

/// Announces the reclaim in the cloud's own words.
fn announce(sim: &Sim, cloud: Cloud) {
    let in_60s = SystemTime::now() + Duration::from_secs(60);
    match cloud {
        Cloud::Aws => sim.set_notice("terminate", in_60s),
        Cloud::Gcp => sim.gcp_set("instance/preempted", "TRUE"),
        Cloud::Azure => {
            sim.azure_add_event(AzureEvent::new("Preempt", Duration::from_secs(30)));
        }
        Cloud::Alibaba => sim.alibaba_set_termination(Some(in_60s)),
    }
}

fn env(sim: &Sim) -> Vec<(String, String)> {
    let url = sim.webhook(WebhookKind::Generic).unwrap().url();
    handler_env(sim, &[("WEBHOOK_URL", &url), ("POLL_INTERVAL", "100ms")])
}

fn start(sim: &Sim) -> Handler {
    Handler::start_cmd(std::process::Command::new(BIN), env(sim))
}

/// What "the same final Node and pods" means: our marks on the node and the pods left on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    unschedulable: bool,
    taints: Vec<String>,
    phase: Option<String>,
    condition: Option<String>,
    pods_on_node: BTreeSet<String>,
    pods_elsewhere: usize,
}

fn fingerprint(sim: &Sim) -> Fingerprint {
    let node = sim.node(NODE).unwrap();
    let mut taints = our_taints(&node);
    taints.sort();
    Fingerprint {
        unschedulable: node["spec"]["unschedulable"].as_bool().unwrap_or(false),
        taints,
        phase: annotation(&node, "phase"),
        condition: sim
            .node_condition(NODE, "TerminationNotice")
            .map(|c| format!("{}/{}", c["status"], c["reason"])),
        pods_on_node: sim
            .pods_on(NODE)
            .iter()
            .map(|p| {
                let name = p["metadata"]["name"].as_str().unwrap();
                // The simulator names the handler's own pod at random.
                let name = if name.starts_with("spot-termination-notice-handler-") {
                    "(the handler's pod)"
                } else {
                    name
                };
                format!("{}/{name}", p["metadata"]["namespace"].as_str().unwrap())
            })
            .collect(),
        pods_elsewhere: sim.pods().len() - sim.pods_on(NODE).len(),
    }
}

/// The drain is over for good: phase `drained`, only the DaemonSet's and our own pod left, and
/// on Azure the event approved.
fn converged(sim: &Sim, cloud: Cloud) -> bool {
    let f = fingerprint(sim);
    if std::env::var_os("CHAOS_DEBUG").is_some() {
        eprintln!("{f:?}");
    }
    f.phase.as_deref() == Some("drained")
        && f.pods_on_node.iter().all(|p| p.starts_with("kube-system/"))
        && (cloud != Cloud::Azure || !sim.azure_approvals().is_empty())
}

/// What went out, counted so that a repeat shows.
#[derive(Debug, Default)]
struct Told {
    /// Webhook messages by `message_id`.
    webhooks: BTreeMap<String, usize>,
    /// Phases the webhook messages were for.
    phases: BTreeSet<String>,
    slack: usize,
    /// Event objects by (reason, regarding), and the largest series count.
    events: BTreeMap<(String, String), usize>,
    event_series_max: i64,
    /// Azure: approvals per event id.
    approvals: BTreeMap<String, usize>,
    /// Accepted evictions (201) per pod.
    evictions: BTreeMap<String, usize>,
}

fn told(sim: &Sim) -> Told {
    let mut t = Told::default();
    for r in sim.webhook(WebhookKind::Generic).unwrap().accepted() {
        let v = r.json().unwrap_or(Value::Null);
        let id = v["message_id"].as_str().unwrap_or("?").to_string();
        *t.webhooks.entry(id).or_default() += 1;
        if let Some(p) = v["phase"].as_str() {
            t.phases.insert(p.to_string());
        }
    }
    t.slack = sim.slack_messages().len();
    for e in sim.events() {
        let reason = e["reason"].as_str().unwrap_or("?").to_string();
        let obj = e["regarding"]["name"]
            .as_str()
            .or(e["involvedObject"]["name"].as_str())
            .unwrap_or("?")
            .to_string();
        *t.events.entry((reason, obj)).or_default() += 1;
        let n = e["series"]["count"]
            .as_i64()
            .or(e["count"].as_i64())
            .unwrap_or(1);
        t.event_series_max = t.event_series_max.max(n);
    }
    for a in sim.azure_approvals() {
        for id in a.known {
            *t.approvals.entry(id).or_default() += 1;
        }
    }
    for r in sim.api_requests() {
        if r.method == "POST" && r.path.ends_with("/eviction") && r.status == 201 {
            if let Some(p) = pod_of(&r.path) {
                *t.evictions.entry(p).or_default() += 1;
            }
        }
    }
    t
}

/// One uninterrupted run: the state every trial must reach.
fn baseline(cloud: Cloud) -> (Fingerprint, Told, Duration) {
    let sim = Sim::start(scenario(cloud)).unwrap();
    let mut h = start(&sim);
    h.wait_for("polling", LONG);
    let t0 = Instant::now();
    announce(&sim, cloud);
    eventually("the uninterrupted drain converges", LONG, || {
        converged(&sim, cloud)
    });
    let took = t0.elapsed();
    settled(&sim);
    eventually("the messages are out", LONG, || {
        told(&sim).phases.contains("drained")
    });
    let f = fingerprint(&sim);
    let t = told(&sim);
    assert!(h.wait_exit(Duration::ZERO).is_none(), "{}", h.dump());
    (f, t, took)
}

/// The README's restart state machine: what a handler started on a node in `phase` does first.
fn expected_restart_line(phase: Option<&str>) -> &'static str {
    match phase {
        None => "polling",
        Some("cordoned" | "draining" | "incomplete" | "failed") => {
            "resuming the drain this handler started before a restart"
        }
        Some("drained") => {
            "node already drained for this notice (our record); nothing more to do while it lasts"
        }
        Some(other) => panic!("phase {other:?} is not in the state machine"),
    }
}

struct Outcome {
    kills: Vec<(u64, Option<String>)>,
}

fn trial(cloud: Cloud, seed: u64, base: &(Fingerprint, Told, Duration)) -> Result<Outcome, String> {
    let mut rng = Rng(seed | 1);
    let sim = Sim::start(scenario(cloud)).unwrap();
    let mut h = start(&sim);
    h.wait_for("polling", LONG);
    announce(&sim, cloud);
    // Kill points spread over the start-up, the drain and what follows it.
    let window = (base.2.as_millis() as u64 + 1500).max(1500);
    let n = 1 + rng.below(3);
    let mut kills = Vec::new();
    let mut last_start_polls = 0;
    let evictions_before_kill = |sim: &Sim| told(sim).evictions;
    for _ in 0..n {
        std::thread::sleep(Duration::from_millis(rng.below(window)));
        let at = sim.started().0.elapsed().as_millis() as u64;
        h.kill();
        // A request the dead process had sent may still be applied; let it land.
        std::thread::sleep(Duration::from_millis(100));
        let phase = sim.node(NODE).and_then(|n| annotation(&n, "phase"));
        let before = evictions_before_kill(&sim);
        last_start_polls = sim_polls(&sim, cloud);
        h = start(&sim);
        let line = expected_restart_line(phase.as_deref());
        let got = h.wait_for(line, LONG);
        if phase.as_deref() == Some("drained") {
            // A drained node is left alone: nothing more is evicted.
            settled(&sim);
            let after = evictions_before_kill(&sim);
            if after != before {
                return Err(format!(
                    "restart on a drained node evicted again: {before:?} -> {after:?}"
                ));
            }
        }
        drop(got);
        kills.push((at, phase));
    }
    eventually("the interrupted drain converges", LONG, || {
        converged(&sim, cloud)
    });
    settled(&sim);
    // The last message may still be on its way (or was lost with a kill: at most once).
    let end = Instant::now() + Duration::from_secs(5);
    while !told(&sim).phases.contains("drained") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = fingerprint(&sim);
    if f != base.0 {
        return Err(format!("final state {f:?}, uninterrupted {:?}", base.0));
    }
    let t = told(&sim);
    if let Some((id, n)) = t.webhooks.iter().find(|(_, n)| **n > 1) {
        return Err(format!("webhook message {id} sent {n} times"));
    }
    if t.slack > base.1.slack {
        return Err(format!(
            "{} Slack messages, {} without kills",
            t.slack, base.1.slack
        ));
    }
    if let Some((k, n)) = t.events.iter().find(|(_, n)| **n > 1) {
        return Err(format!("Event {k:?} created {n} times"));
    }
    if t.event_series_max > base.1.event_series_max {
        return Err(format!(
            "an Event series reached {} (uninterrupted: {})",
            t.event_series_max, base.1.event_series_max
        ));
    }
    if let Some((id, n)) = t.approvals.iter().find(|(_, n)| **n != 1) {
        return Err(format!("Azure event {id} approved {n} times"));
    }
    if cloud == Cloud::Azure && t.approvals.is_empty() {
        return Err("the Azure event was never approved".into());
    }
    if let Some((p, n)) = t.evictions.iter().find(|(_, n)| **n > 1) {
        return Err(format!("pod {p} evicted {n} times"));
    }
    if h.wait_exit(Duration::ZERO).is_some() {
        return Err(format!("the last handler exited:\n{}", h.dump()));
    }
    // Still polling after it all (on GCP: both hanging GETs parked).
    let polled = sim_polls(&sim, cloud);
    // Hanging GETs of killed handlers may still be held, so on GCP the sign of life is the
    // last handler's own requests: both keys read since it started, and parked again.
    eventually("still polling", Duration::from_secs(10), || match cloud {
        Cloud::Gcp => sim_polls(&sim, cloud) >= last_start_polls + 2 && sim.gcp_waiters() >= 2,
        _ => sim_polls(&sim, cloud) > polled,
    });
    Ok(Outcome { kills })
}

fn sim_polls(sim: &Sim, cloud: Cloud) -> usize {
    match cloud {
        Cloud::Aws => sim.imds_requests().len(),
        Cloud::Gcp => sim.gcp_requests().len(),
        Cloud::Azure => sim.azure_requests().len(),
        Cloud::Alibaba => sim.alibaba_requests().len(),
    }
}

fn run(trials: usize, seed: u64) -> String {
    let mut report = String::new();
    let mut rng = Rng(seed | 1);
    let bases: Vec<_> = CLOUDS.iter().map(|c| baseline(*c)).collect();
    for (c, b) in CLOUDS.iter().zip(&bases) {
        writeln!(
            report,
            "baseline {}: drained in {:.1} s, {} webhook messages, {} Slack, {} Events",
            cloud_name(*c),
            b.2.as_secs_f64(),
            b.1.webhooks.len(),
            b.1.slack,
            b.1.events.len()
        )
        .unwrap();
    }
    let mut by_phase: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    for i in 0..trials {
        let ci = i % CLOUDS.len();
        let s = rng.next();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            trial(CLOUDS[ci], s, &bases[ci])
        }))
        .unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()))
        });
        match result {
            Ok(o) => {
                if std::env::var_os("CHAOS_DEBUG").is_some() {
                    eprintln!("trial {i}: kills {:?}", o.kills);
                }
                for (_, p) in &o.kills {
                    *by_phase
                        .entry(format!(
                            "{}:{}",
                            cloud_name(CLOUDS[ci]),
                            p.as_deref().unwrap_or("none")
                        ))
                        .or_default() += 1;
                }
            }
            Err(e) => failures.push(format!(
                "trial {i} ({}, seed {s:#x}): {e}",
                cloud_name(CLOUDS[ci])
            )),
        }
    }
    let kills: usize = by_phase.values().sum();
    writeln!(
        report,
        "{trials} trials (seed {seed:#x}), {kills} kills in {:.0} s, {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    )
    .unwrap();
    writeln!(report, "kills by cloud and the node's phase at the kill:").unwrap();
    for (k, n) in &by_phase {
        writeln!(report, "  {k}: {n}").unwrap();
    }
    for f in &failures {
        writeln!(report, "FAILED {f}").unwrap();
    }
    assert!(failures.is_empty(), "{report}");
    report
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// One trial per cloud: the harness works and the state machine holds (CI).
#[test]
fn a_kill_at_a_random_instant_converges_on_every_cloud() {
    let s = seed();
    eprintln!("CHAOS_SEED={s:#x}");
    let report = run(CLOUDS.len(), s);
    eprintln!("{report}");
}

/// `make chaos`: `CHAOS_TRIALS` (default 200) trials.
#[test]
#[ignore]
fn chaos() {
    let trials = std::env::var("CHAOS_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let s = seed();
    eprintln!("CHAOS_SEED={s:#x}");
    let report = run(trials, s);
    let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/../chaos-report.txt");
    std::fs::write(path, &report).unwrap();
    eprintln!("{report}");
}
