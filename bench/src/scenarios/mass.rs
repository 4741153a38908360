//! Scenario `mass`: an AZ loses its spot pool. `MASS_NODES` (default 500) handler processes,
//! one per node, each with a fake IMDS of its own ([`stnh_sim::imds::NodeImds`]), against ONE
//! simulated API server holding every node and its 20 pods; the same spot notice (2 min) becomes
//! visible on every IMDS at the same instant. The API server answers after a latency and has
//! APF-like throttling: at most [`SEATS`] requests in flight, up to `MASS_QUEUE` ([`QUEUE`])
//! more waiting for a seat, and kube-apiserver's plain-text 429 with `Retry-After: 1` beyond.
//!
//! Beside it: `MASS_KUBECTL` (default 50) `kubectl drain` processes started at the same instant
//! against a fresh simulator of that many nodes with the same pods, latency and throttling, and
//! as many handlers the same way (like for like); the kubectl totals are also given scaled to
//! the handlers' node count, an extrapolation, not a run.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use stnh_sim::child::Child;
use stnh_sim::imds::NodeImds;
use stnh_sim::workloads::Change;
use stnh_sim::{ApiRequest, PodSpec, Scenario, Sim};

use super::{ms, progress, whole_second, Ctx, Outcome};
use crate::report::{thousands, Section, Table, TargetRow};
use crate::stats::Summary;

const PODS_PER_NODE: usize = 20;
/// At most this many requests in flight: about what the `workload-high` priority level (where
/// kube-system service accounts land) gets of a default kube-apiserver's 600 seats.
pub const SEATS: usize = 100;
const RETRY_AFTER_S: u64 = 1;
/// Requests that may wait for a seat (`MASS_QUEUE`, 0: none): APF puts one flow (every handler
/// is the same service account) into at most handSize 6 of the level's queues of 50.
const QUEUE: usize = 300;
/// The longest a request waits in that queue before its 429 (a choice, not an APF default).
const MAX_WAIT: Duration = Duration::from_secs(5);
/// The API latency used: the run's `--latency`, at least this (a loaded API server).
const MIN_LATENCY: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(120);
const CORDON_TARGET_MS: f64 = 1000.0;
const INSTANCE_ACTION: &str = "/latest/meta-data/spot/instance-action";
/// The FlowSchema the manifests and the chart install by default: the handler's Node patches go
/// to the `node-high` priority level. Its seats here: [`SEATS`] again (a default kube-apiserver
/// gives `node-high` and `workload-high` the same share), with the same queue.
const FLOWSCHEMA: &str = include_str!("../../../manifests/flowschema.json");

fn count_env(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0 && *n <= 9999)
            .ok_or_else(|| format!("{name}: expected a number from 1 to 9999, got {v:?}")),
    }
}

fn node_name(i: usize) -> String {
    format!("spot-{i:04}")
}

fn namespace(i: usize) -> String {
    format!("n{i:04}")
}

/// A simulator with `n` spot nodes (`spot-0001` …) of 20 ReplicaSet pods each (namespace
/// `n0001` …; grace 10/30/60 s, app shutdown 0.2–3.0 s, as the `bench` mix).
fn cluster(n: usize, latency: Duration, queue: usize, flowschema: bool) -> Result<Sim, String> {
    // The scenario's own node stays empty: the reclaimed nodes are added beside it.
    let sim = Sim::start(Scenario::new("ip-10-0-1-23.ec2.internal").latency(latency))
        .map_err(|e| e.to_string())?;
    let mut pods = Vec::new();
    for i in 1..=n {
        let node = node_name(i);
        sim.add_node(
            &node,
            &format!("i-0{i:016x}"),
            &format!("10.1.{}.{}", i / 250, i % 250 + 2),
        );
        for p in 0..PODS_PER_NODE {
            let rs = format!("web-{}-5d8f7c", p / 10);
            pods.push(
                PodSpec::new(&namespace(i), &format!("{rs}-{p:02}x{i:04}"))
                    .replicaset(&rs)
                    .labels(&[("app", &format!("web-{}", p / 10))])
                    .grace([10, 30, 60][p % 3])
                    .shutdown(Duration::from_millis(200 + ((p * 37) % 29) as u64 * 100))
                    .node(&node),
            );
        }
    }
    sim.add_pods(&pods);
    sim.set_api_throttle(SEATS, RETRY_AFTER_S);
    sim.set_api_queue(queue, MAX_WAIT);
    if flowschema {
        let fs: serde_json::Value = serde_json::from_str(FLOWSCHEMA)
            .map_err(|e| format!("manifests/flowschema.json: {e}"))?;
        sim.add_api_priority_level(&fs, SEATS, RETRY_AFTER_S, queue, MAX_WAIT)
            .map_err(|e| format!("manifests/flowschema.json: {e}"))?;
    }
    Ok(sim)
}

/// The node a request is for (by node name in the path or body, or the node's namespace), as an
/// index 1..=n; `None` for requests that name no node.
fn node_of(r: &ApiRequest, n: usize) -> Option<usize> {
    let find = |s: &str| -> Option<usize> {
        for (pat, width) in [("spot-", 4usize), ("/namespaces/n", 4)] {
            let mut from = 0;
            while let Some(p) = s[from..].find(pat) {
                let start = from + p + pat.len();
                if let Some(i) = s
                    .get(start..start + width)
                    .and_then(|d| d.parse::<usize>().ok())
                {
                    if (1..=n).contains(&i) {
                        return Some(i);
                    }
                }
                from = start;
            }
        }
        None
    };
    find(&r.path).or_else(|| find(&r.body))
}

/// Per node: requests, and the 429s among them.
fn per_node(reqs: &[&ApiRequest], n: usize) -> (Vec<usize>, usize) {
    let mut v = vec![0usize; n + 1];
    let mut unattributed = 0;
    for r in reqs {
        match node_of(r, n) {
            Some(i) => v[i] += 1,
            None => unattributed += 1,
        }
    }
    (v.into_iter().skip(1).collect(), unattributed)
}

/// The clients' niceness (`MASS_NICE`).
const NICE: usize = 0;

/// `program` run at `nice` (0: as this driver): the handlers and kubectl processes stand for
/// clients on nodes of their own, the simulator for an API server on CPUs of its own.
fn client_command(program: impl AsRef<std::ffi::OsStr>, nice: u32) -> Command {
    if nice == 0 {
        return Command::new(program);
    }
    let mut c = Command::new("nice");
    c.arg("-n").arg(nice.to_string()).arg(program);
    c
}

/// What one side (handlers or kubectl) measured.
struct Side {
    nodes: usize,
    /// ms from the notice (handlers) or the start (kubectl) to the cordon applied, per node.
    cordon: Vec<f64>,
    /// ms from the notice to the poll that saw it, per node (handlers only).
    detect: Vec<f64>,
    /// ms from the poll that saw the notice to the cordon applied (handlers only).
    detect_to_cordon: Vec<f64>,
    /// ms to the last pod gone, per node.
    drained: Vec<f64>,
    /// ms to the process's own "done" (handler: `drain finished`; kubectl: exit 0), per node.
    done: Vec<f64>,
    deadline_ms: f64,
    requests: usize,
    per_node: Vec<usize>,
    unattributed: usize,
    throttled: usize,
    peak_inflight: usize,
    peak_demand: usize,
    /// Most requests waiting for a seat at once, and requests served after waiting.
    queue: (usize, usize),
    by_verb: BTreeMap<String, usize>,
    /// The 429s among them.
    throttled_by_verb: BTreeMap<String, usize>,
    failures: Vec<String>,
    startup_s: f64,
    startup_requests: usize,
    max_hwm_kb: u64,
    wall_s: f64,
    /// Connections the kernel dropped from full listen queues (any socket of the machine) from
    /// the notice (kubectl: the start) to the end.
    overflows: Option<u64>,
    /// CPU used in the first [`BURST`] after the notice (handlers only).
    burst: Option<BurstCpu>,
    /// Requests that arrived in the first second after the notice (kubectl: the start): all,
    /// and those served (not answered 429).
    first_second: (usize, usize),
    /// The FlowSchema's own priority level, when the run had it.
    own_level: Option<stnh_sim::api::Seats>,
}

/// [`Side::first_second`] of requests from `from` on.
fn first_second(reqs: &[&ApiRequest], from: Instant) -> (usize, usize) {
    let first: Vec<&&ApiRequest> = reqs
        .iter()
        .filter(|r| r.at >= from && r.at < from + Duration::from_secs(1))
        .collect();
    (
        first.len(),
        first.iter().filter(|r| r.status != 429).count(),
    )
}

/// The window after the notice whose CPU use [`BurstCpu`] gives.
const BURST: Duration = Duration::from_secs(2);

/// CPU seconds used in [`BURST`]: by this process (the simulator and the driver) and by the
/// handler processes (`/proc/PID/stat`), and by the whole machine as the kernel's ticks count it
/// (`/proc/stat`, sampled at each tick, so short wake-ups at tick time count whole: busy, of
/// which interrupts and softirqs; and steal, the time the hypervisor gave to others), of
/// `capacity` (CPUs × window).
#[derive(Debug, Clone, Copy)]
struct BurstCpu {
    sim_s: f64,
    handlers_s: f64,
    machine_s: f64,
    irq_s: f64,
    steal_s: f64,
    capacity_s: f64,
}

/// CPU ticks at one instant: this process's, the handlers' (summed), and the machine's from
/// `/proc/stat` (busy: not idle, iowait or steal; irq + softirq; steal; total).
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    own: u64,
    handlers: u64,
    busy: u64,
    irq: u64,
    steal: u64,
    total: u64,
}

fn cpu_snapshot(pids: &[u32]) -> Option<CpuSnapshot> {
    let own = crate::proc::cpu_ticks(std::process::id())?;
    let handlers = pids.iter().filter_map(|p| crate::proc::cpu_ticks(*p)).sum();
    let cpu = crate::machine::cpu_states()?;
    let f = |i: usize| cpu.get(i).copied().unwrap_or(0);
    let total: u64 = (0..8).map(f).sum();
    let steal = f(7);
    Some(CpuSnapshot {
        own,
        handlers,
        busy: total - f(3) - f(4) - steal,
        irq: f(5) + f(6),
        steal,
        total,
    })
}

fn burst_cpu(a: CpuSnapshot, b: CpuSnapshot, window: Duration) -> BurstCpu {
    let tck = crate::proc::clock_ticks_per_sec() as f64;
    let d = |x: u64, y: u64| y.saturating_sub(x) as f64 / tck;
    // Total ticks of all CPUs over the window: the CPU count the kernel accounted.
    let cpus = (d(a.total, b.total) / window.as_secs_f64())
        .round()
        .max(1.0);
    BurstCpu {
        sim_s: d(a.own, b.own),
        handlers_s: d(a.handlers, b.handlers),
        machine_s: d(a.busy, b.busy),
        irq_s: d(a.irq, b.irq),
        steal_s: d(a.steal, b.steal),
        capacity_s: cpus * window.as_secs_f64(),
    }
}

fn summary_ms(v: &[f64]) -> String {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    match Summary::of(&finite) {
        None => "n/a".into(),
        Some(s) => {
            let p99 = percentile(&finite, 0.99);
            format!(
                "median {:.0}, p99 {:.0}, max {:.0} ({} of {})",
                s.median,
                p99,
                s.max,
                finite.len(),
                v.len()
            )
        }
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Cordon applied (the first PATCH of the node answered 200, + the latency: the simulator
/// applies after it) at or after `from`, per node.
fn cordons(
    reqs: &[ApiRequest],
    n: usize,
    from: Instant,
    latency: Duration,
) -> Vec<Option<Instant>> {
    let mut v = vec![None; n + 1];
    for r in reqs
        .iter()
        .filter(|r| r.at >= from && r.method == "PATCH" && r.status == 200)
    {
        if let Some(i) = r
            .path
            .strip_prefix("/api/v1/nodes/spot-")
            .and_then(|rest| rest.get(..4))
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|i| (1..=n).contains(i))
        {
            if v[i].is_none() {
                v[i] = Some(r.at + latency);
            }
        }
    }
    v.into_iter().skip(1).collect()
}

/// The last pod of each node gone (from the simulator's workload log).
fn drained(sim: &Sim, n: usize) -> Vec<Option<Instant>> {
    let mut last: Vec<Option<Instant>> = vec![None; n + 1];
    let mut gone = vec![0usize; n + 1];
    for e in sim.workload_log() {
        if !matches!(e.change, Change::PodGone) {
            continue;
        }
        let Some(i) = e
            .namespace
            .strip_prefix('n')
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|i| (1..=n).contains(i))
        else {
            continue;
        };
        if e.node.as_deref() == Some(node_name(i).as_str()) {
            gone[i] += 1;
            last[i] = Some(last[i].map_or(e.at, |t: Instant| t.max(e.at)));
        }
    }
    (1..=n)
        .map(|i| last[i].filter(|_| gone[i] >= PODS_PER_NODE))
        .collect()
}

fn by_verb(reqs: &[&ApiRequest]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in reqs {
        let kind = if r.path.ends_with("/eviction") {
            "POST eviction".to_string()
        } else if r.path.contains("/events") {
            format!("{} events", r.method)
        } else if r.path.starts_with("/api/v1/nodes/") {
            format!("{} node", r.method)
        } else if r.path.starts_with("/api/v1/pods") {
            format!("{} pod list", r.method)
        } else if r.path.contains("/pods/") {
            format!("{} pod", r.method)
        } else {
            format!("{} other", r.method)
        };
        *m.entry(kind).or_default() += 1;
    }
    m
}

fn handlers(
    ctx: &Ctx,
    n: usize,
    latency: Duration,
    queue: usize,
    flowschema: bool,
) -> Result<Side, String> {
    let nice = count_env("MASS_NICE", NICE)? as u32;
    let wall = Instant::now();
    let sim = cluster(n, latency, queue, flowschema)?;
    progress(
        "mass",
        &format!(
            "{n} nodes, {} pods in one simulator; starting {n} handlers",
            n * PODS_PER_NODE
        ),
    );
    let mut imds = Vec::new();
    for i in 1..=n {
        imds.push(
            NodeImds::start(
                &format!("i-0{i:016x}"),
                &format!("10.1.{}.{}", i / 250, i % 250 + 2),
            )
            .map_err(|e| format!("IMDS {i}: {e}"))?,
        );
    }
    let bin = std::fs::canonicalize(&ctx.bin).map_err(|e| format!("{}: {e}", ctx.bin.display()))?;
    let started = Instant::now();
    let mut procs: Vec<Child> = Vec::new();
    for (k, m) in imds.iter().enumerate() {
        let node = node_name(k + 1);
        let url = m.url();
        let env = sim.handler_env_with(&[("IMDS_URL", &url), ("NODE_NAME", &node)]);
        procs.push(
            Child::spawn(client_command(&bin, nice), env, None)
                .map_err(|e| format!("cannot start handler {}: {e}", k + 1))?,
        );
        // A DaemonSet rollout does not start every pod in the same millisecond either; this
        // also keeps the start-up TLS handshakes from starving each other on 2 cores.
        if k % 25 == 24 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Every handler polling its IMDS.
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let polling = imds.iter().filter(|m| m.count(INSTANCE_ACTION) > 0).count();
        if polling == n {
            break;
        }
        let exited = procs
            .iter_mut()
            .map(|p| p.wait_exit(Duration::ZERO).is_some())
            .filter(|e| *e)
            .count();
        if exited > 0 || Instant::now() > end {
            let tail = procs
                .iter()
                .find_map(|p| p.lines().last().cloned())
                .unwrap_or_default();
            return Err(format!(
                "only {polling} of {n} handlers polling after {:.0} s, {exited} exited; a log line: {tail}",
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let startup_s = started.elapsed().as_secs_f64();
    let startup_requests = sim.api_requests().len();
    progress("mass", &format!("all {n} handlers polling after {startup_s:.1} s ({startup_requests} API requests); the notice in 3 s"));
    std::thread::sleep(Duration::from_secs(1));
    sim.reset_api_concurrency();
    let overflows0 = listen_overflows();
    // The same notice on every IMDS from the same instant.
    let at = Instant::now() + Duration::from_secs(2);
    let deadline = whole_second(SystemTime::now() + Duration::from_secs(2) + DEADLINE);
    for m in &imds {
        m.set_notice(at, "terminate", deadline);
    }
    let deadline_at = at
        + deadline
            .duration_since(SystemTime::now() + Duration::from_secs(2))
            .unwrap_or_default();
    let deadline_ms = ms(at, deadline_at);
    // The CPU of the burst: from the notice becoming visible, for BURST.
    let pids: Vec<u32> = procs.iter().map(Child::pid).collect();
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    let cpu0 = cpu_snapshot(&pids);
    let burst_start = Instant::now();
    std::thread::sleep(BURST);
    let burst = cpu0
        .zip(cpu_snapshot(&pids))
        .map(|(a, b)| burst_cpu(a, b, burst_start.elapsed()));
    // Until every handler has said `drain finished` (or the deadline + 5 s).
    let mut done: Vec<Option<Instant>> = vec![None; n];
    let stop_at = deadline_at + Duration::from_secs(5);
    while Instant::now() < stop_at && done.iter().any(Option::is_none) {
        std::thread::sleep(Duration::from_millis(500));
        for (k, p) in procs.iter().enumerate() {
            if done[k].is_none() {
                done[k] = p
                    .timed_lines()
                    .into_iter()
                    .find(|(_, l)| l.contains("msg=\"drain finished\""))
                    .map(|(t, _)| t);
            }
        }
    }
    let (peak_inflight, peak_demand, throttled) = sim.api_concurrency();
    let own_level = if flowschema {
        let name = serde_json::from_str::<serde_json::Value>(FLOWSCHEMA)
            .ok()
            .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
            .unwrap_or_default();
        sim.api_seats(Some(&name))
    } else {
        None
    };
    let throttled = throttled + own_level.as_ref().map_or(0, |l| l.throttled);
    let overflows = listen_overflows()
        .zip(overflows0)
        .map(|(b, a)| b.saturating_sub(a));
    let mut failures = Vec::new();
    let mut max_hwm_kb = 0;
    let mut problems = 0usize;
    for (k, p) in procs.iter_mut().enumerate() {
        max_hwm_kb = max_hwm_kb.max(crate::proc::status(p.pid()).map_or(0, |s| s.hwm_kb));
        if p.wait_exit(Duration::ZERO).is_some() {
            failures.push(format!("handler {} exited", k + 1));
        }
        let bad: Vec<String> = p
            .lines()
            .into_iter()
            .filter(|l| {
                l.contains("level=error")
                    || (l.contains("level=warn") && !l.contains("Event queue full"))
            })
            .collect();
        problems += bad.len();
        if let Some(l) = bad.first() {
            if failures.len() < 12 {
                failures.push(format!("{}: `{l}`", node_name(k + 1)));
            }
        }
    }
    if problems > 0 {
        failures.push(format!(
            "{problems} warn/error log lines in all (Event queue full not counted)"
        ));
    }
    for p in &mut procs {
        p.kill();
    }
    let _ = sim.write_api_log(&ctx.work_dir.join(format!(
        "mass-{n}-handlers{}-api-log.jsonl",
        if flowschema { "-flowschema" } else { "" }
    )));
    let reqs = sim.api_requests();
    let after: Vec<&ApiRequest> = reqs.iter().filter(|r| r.at >= at).collect();
    let (per, unattributed) = per_node(&after, n);
    let cordon_at = cordons(&reqs, n, at, latency);
    let mut detect_to_cordon = Vec::new();
    let mut detect = Vec::new();
    for (k, m) in imds.iter().enumerate() {
        let seen = m
            .requests()
            .into_iter()
            .find(|r| r.path == INSTANCE_ACTION && r.status == 200 && r.at >= at)
            .map(|r| r.at);
        detect.push(seen.map_or(f64::NAN, |s| ms(at, s)));
        detect_to_cordon.push(match (seen, cordon_at[k]) {
            (Some(s), Some(c)) => ms(s, c),
            _ => f64::NAN,
        });
    }
    let gone = drained(&sim, n);
    Ok(Side {
        nodes: n,
        cordon: cordon_at
            .iter()
            .map(|c| c.map_or(f64::NAN, |c| ms(at, c)))
            .collect(),
        detect,
        detect_to_cordon,
        drained: gone
            .iter()
            .map(|g| g.map_or(f64::NAN, |g| ms(at, g)))
            .collect(),
        done: done
            .iter()
            .map(|d| d.map_or(f64::NAN, |d| ms(at, d)))
            .collect(),
        deadline_ms,
        requests: after.len(),
        per_node: per,
        unattributed,
        throttled,
        peak_inflight,
        peak_demand,
        queue: sim.api_queue_stats(),
        by_verb: by_verb(&after),
        throttled_by_verb: by_verb(
            &after
                .iter()
                .copied()
                .filter(|r| r.status == 429)
                .collect::<Vec<_>>(),
        ),
        failures,
        startup_s,
        startup_requests,
        max_hwm_kb,
        wall_s: wall.elapsed().as_secs_f64(),
        overflows,
        burst,
        first_second: first_second(&after, at),
        own_level,
    })
}

fn kubectls(ctx: &Ctx, n: usize, latency: Duration, queue: usize) -> Result<Side, String> {
    let nice = count_env("MASS_NICE", NICE)? as u32;
    let wall = Instant::now();
    let sim = cluster(n, latency, queue, false)?;
    let dir = ctx.scratch("mass-kubectl")?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    // One HOME (discovery cache) per process, as on n different machines.
    let homes: Vec<_> = (1..=n)
        .map(|i| {
            let h = dir.join(format!("home-{i}"));
            std::fs::create_dir_all(&h).map(|_| h)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    sim.reset_api_concurrency();
    let overflows0 = listen_overflows();
    progress("mass", &format!("{n} kubectl drain processes at once"));
    let start = Instant::now();
    let mut children = Vec::new();
    for (k, home) in homes.iter().enumerate() {
        let mut c = client_command(&ctx.kubectl, nice)
            .env_clear()
            .env("HOME", home)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "drain",
                &node_name(k + 1),
                "--force",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=120s",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", ctx.kubectl))?;
        let out = c.stdout.take();
        let err = c.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut o) = out {
                let _ = o.read_to_string(&mut text);
            }
            if let Some(mut e) = err {
                let _ = e.read_to_string(&mut text);
            }
            text
        });
        children.push((c, reader, None::<(Instant, bool)>));
    }
    let deadline_at = start + DEADLINE;
    let stop_at = deadline_at + Duration::from_secs(10);
    let mut max_hwm_kb = 0;
    let mut tick = 0u32;
    while Instant::now() < stop_at && children.iter().any(|c| c.2.is_none()) {
        tick += 1;
        if tick % 10 == 1 {
            for c in children.iter().filter(|c| c.2.is_none()) {
                max_hwm_kb = max_hwm_kb.max(crate::proc::status(c.0.id()).map_or(0, |s| s.hwm_kb));
            }
        }
        for c in children.iter_mut().filter(|c| c.2.is_none()) {
            if let Ok(Some(st)) = c.0.try_wait() {
                c.2 = Some((Instant::now(), st.success()));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (peak_inflight, peak_demand, throttled) = sim.api_concurrency();
    let overflows = listen_overflows()
        .zip(overflows0)
        .map(|(b, a)| b.saturating_sub(a));
    let mut failures = Vec::new();
    let mut done = Vec::new();
    let mut client_throttled = 0;
    for (k, (mut c, reader, exit)) in children.into_iter().enumerate() {
        if exit.is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let text = reader.join().unwrap_or_default();
        client_throttled += text
            .lines()
            .filter(|l| l.contains("client-side throttling"))
            .count();
        match exit {
            Some((t, true)) => done.push(ms(start, t)),
            Some((_, false)) | None => {
                done.push(f64::NAN);
                if failures.len() < 10 {
                    failures.push(format!(
                        "kubectl drain {}: {}",
                        node_name(k + 1),
                        text.lines().rev().take(2).collect::<Vec<_>>().join(" / ")
                    ));
                }
            }
        }
    }
    if client_throttled > 0 {
        failures.push(format!(
            "{client_throttled} client-side throttling lines from kubectl (not failures)"
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let reqs = sim.api_requests();
    let after: Vec<&ApiRequest> = reqs.iter().filter(|r| r.at >= start).collect();
    let (per, unattributed) = per_node(&after, n);
    let gone = drained(&sim, n);
    Ok(Side {
        nodes: n,
        cordon: cordons(&reqs, n, start, latency)
            .iter()
            .map(|c| c.map_or(f64::NAN, |c| ms(start, c)))
            .collect(),
        detect: Vec::new(),
        detect_to_cordon: Vec::new(),
        drained: gone
            .iter()
            .map(|g| g.map_or(f64::NAN, |g| ms(start, g)))
            .collect(),
        done,
        deadline_ms: ms(start, deadline_at),
        requests: after.len(),
        per_node: per,
        unattributed,
        throttled,
        peak_inflight,
        peak_demand,
        queue: sim.api_queue_stats(),
        by_verb: by_verb(&after),
        throttled_by_verb: by_verb(
            &after
                .iter()
                .copied()
                .filter(|r| r.status == 429)
                .collect::<Vec<_>>(),
        ),
        failures,
        startup_s: 0.0,
        startup_requests: 0,
        max_hwm_kb,
        wall_s: wall.elapsed().as_secs_f64(),
        overflows,
        burst: None,
        first_second: first_second(&after, start),
        own_level: None,
    })
}

/// What [`server_floor`] measured.
struct Floor {
    /// Per client: ms from the common start until it had its cordon's 200 (∞: never).
    applied: Vec<f64>,
    throttled: usize,
    failures: Vec<String>,
    /// CPU seconds this process (the simulator and these clients) used during the burst.
    cpu_s: f64,
    /// Connections the kernel dropped from full listen queues during the burst.
    overflows: Option<u64>,
}

/// The kernel's count of connections dropped because a listen queue was full (all sockets;
/// `TcpExtListenOverflows` of /proc/net/netstat), if readable.
fn listen_overflows() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = t.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// The simulated API server alone, with no handler on the machine: `n` clients (a thread and a
/// fresh TLS connection each, as a handler opens at the notice) send their node's cordon PATCH at
/// the same instant; a 429 is retried after its `Retry-After`, as the handlers do. The time until
/// each was applied is the floor this machine and simulator put under the handlers' figure.
fn server_floor(n: usize, latency: Duration, queue: usize) -> Result<Floor, String> {
    use std::sync::{Arc, Barrier};
    let sim = cluster(n, latency, queue, false)?;
    let token = sim.token();
    let barrier = Arc::new(Barrier::new(n + 1));
    let sim = Arc::new(sim);
    let mut threads = Vec::new();
    for i in 1..=n {
        let (barrier, sim, token) = (Arc::clone(&barrier), Arc::clone(&sim), token.clone());
        let spawned = std::thread::Builder::new().stack_size(256 * 1024).spawn(
            move || -> (Option<Instant>, usize, Option<String>) {
                barrier.wait();
                let path = format!("/api/v1/nodes/{}", node_name(i));
                let mut throttled = 0;
                for _ in 0..10 {
                    let mut c = match stnh_sim::testclient::Client::api(&sim) {
                        Ok(c) => c,
                        Err(e) => return (None, throttled, Some(format!("connect: {e}"))),
                    };
                    match c.call(
                        "PATCH",
                        &path,
                        &token,
                        Some("application/strategic-merge-patch+json"),
                        r#"{"spec":{"unschedulable":true}}"#,
                    ) {
                        Ok(r) if r.status == 200 => return (Some(Instant::now()), throttled, None),
                        Ok(r) if r.status == 429 => {
                            throttled += 1;
                            let s = r
                                .header("retry-after")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(1);
                            std::thread::sleep(Duration::from_secs(s));
                        }
                        Ok(r) => return (None, throttled, Some(format!("status {}", r.status))),
                        Err(e) => return (None, throttled, Some(e.to_string())),
                    }
                }
                (
                    None,
                    throttled,
                    Some("still throttled after 10 tries".into()),
                )
            },
        );
        threads.push(spawned.map_err(|e| format!("thread {i}: {e}"))?);
    }
    let cpu = || {
        crate::proc::cpu_ticks(std::process::id()).unwrap_or(0) as f64
            / crate::proc::clock_ticks_per_sec() as f64
    };
    let cpu0 = cpu();
    let overflows0 = listen_overflows();
    let start = Instant::now();
    barrier.wait();
    let mut floor = Floor {
        applied: Vec::new(),
        throttled: 0,
        failures: Vec::new(),
        cpu_s: 0.0,
        overflows: None,
    };
    for t in threads {
        let (at, throttled, failure) = t
            .join()
            .map_err(|_| "a probe thread panicked".to_string())?;
        floor.throttled += throttled;
        floor
            .applied
            .push(at.map_or(f64::INFINITY, |t| ms(start, t)));
        floor.failures.extend(failure);
    }
    floor.cpu_s = cpu() - cpu0;
    floor.overflows = listen_overflows()
        .zip(overflows0)
        .map(|(b, a)| b.saturating_sub(a));
    Ok(floor)
}

fn within(v: &[f64], limit: f64) -> usize {
    v.iter().filter(|x| x.is_finite() && **x <= limit).count()
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let n = count_env("MASS_NODES", 500)?;
    let k = count_env("MASS_KUBECTL", 50)?;
    let queue = match std::env::var("MASS_QUEUE") {
        Ok(v) if v.trim() == "0" => 0,
        _ => count_env("MASS_QUEUE", QUEUE)?,
    };
    let latency = ctx.latency.max(MIN_LATENCY);
    progress(
        "mass",
        &format!("the server alone: {n} cordon PATCHes at once, no handler running"),
    );
    let floor = server_floor(n, latency, queue)?;
    progress(
        "mass",
        &format!(
            "server alone: cordon {}; {} of {n} within 1 s; {} throttled; {:.2} CPU s",
            summary_ms(&floor.applied),
            within(&floor.applied, CORDON_TARGET_MS),
            floor.throttled,
            floor.cpu_s
        ),
    );
    // The default install (its FlowSchema), then the same without the FlowSchema.
    let ours = handlers(ctx, n, latency, queue, true)?;
    progress(
        "mass",
        &format!(
            "handlers: cordon {}; drained {} of {n} before the deadline; {} requests, {} throttled, peak {} in flight",
            summary_ms(&ours.cordon),
            within(&ours.drained, ours.deadline_ms),
            ours.requests,
            ours.throttled,
            ours.peak_inflight
        ),
    );
    let bare = handlers(ctx, n, latency, queue, false)?;
    progress(
        "mass",
        &format!(
            "handlers without the FlowSchema: cordon {}; drained {} of {n} before the deadline; {} requests, {} throttled",
            summary_ms(&bare.cordon),
            within(&bare.drained, bare.deadline_ms),
            bare.requests,
            bare.throttled,
        ),
    );
    let ours_small = if k < n {
        Some(handlers(ctx, k, latency, queue, true)?)
    } else {
        None
    };
    let theirs = kubectls(ctx, k, latency, queue)?;
    progress(
        "mass",
        &format!(
            "kubectl: cordon {}; drained {} of {k}; {} requests, {} throttled, peak {} in flight",
            summary_ms(&theirs.cordon),
            within(&theirs.drained, theirs.deadline_ms),
            theirs.requests,
            theirs.throttled,
            theirs.peak_inflight
        ),
    );
    let reproduce = if n == 500 && k == 50 && queue == QUEUE {
        ctx.reproduce("mass")
    } else {
        format!(
            "`MASS_NODES={n} MASS_KUBECTL={k} MASS_QUEUE={queue}` {}",
            ctx.reproduce("mass")
        )
    };
    let mut s = Section::new(
        "mass",
        &format!("Mass reclaim: {n} nodes at once (an AZ losing its spot pool)"),
        reproduce.clone(),
    );
    let queue_text = if queue == 0 {
        "a request without a seat turned away at once (no queue: harsher than APF)".to_string()
    } else {
        format!("up to {queue} more waiting for a seat for at most {} s (`MASS_QUEUE`; APF puts one flow, here the handlers' one service account, in at most 6 queues of 50)", MAX_WAIT.as_secs())
    };
    let kubectl_text = if k < n {
        format!(
            "not {n}: the largest kubectl here peaked at {:.0} MiB RSS, so {n} of them would need about {:.1} GiB beside the simulator on this 24 GiB, 2-core machine; totals scaled ×{:.0} are an extrapolation",
            theirs.max_hwm_kb as f64 / 1024.0,
            theirs.max_hwm_kb as f64 * n as f64 / 1024.0 / 1024.0,
            n as f64 / k as f64
        )
    } else {
        "as many as handlers".to_string()
    };
    s.para(format!(
        "{n} handler processes (the production binary at its default settings, so `POLL_INTERVAL` {}), one per node, each with a fake IMDS of its own, against one simulated API server \
         holding the {n} nodes and {} pods ({PODS_PER_NODE} ReplicaSet pods per node, grace 10/30/60 s, app shutdown 0.2–3.0 s). The handlers are started in batches of 25 and \
         left polling; then the same spot notice (`terminate`, deadline {} s) becomes visible on every IMDS at the same instant. API latency {} ms per request; APF-like throttling: \
         at most {SEATS} requests in flight (about the seats of the `workload-high` priority level of a default kube-apiserver), {}; then kube-apiserver's plain-text 429 \
         with `Retry-After: {RETRY_AFTER_S}`. Beside it, {k} `kubectl drain --force --ignore-daemonsets \
         --delete-emptydir-data` processes started at the same instant against a fresh simulator of {k} such nodes with the same latency and throttling ({}), \
         and {k} handlers the same way, for a like-for-like column. \
         Everything (simulator, {n} handlers or {k} kubectl processes, this driver) shares the machine's {} CPUs, so the handlers are CPU-starved at the notice: the figures \
         include that (the handler and kubectl processes ran at niceness {}, `MASS_NICE`). Cordon = the node PATCH applied (its arrival + the latency); times in ms from the notice becoming visible (kubectl: from its start). \
         The handlers run as installed by default, with the FlowSchema of `manifests/flowschema.json` (the chart's `flowSchema.create`), which the simulator reads: their Node patches \
         (cordon, taints, records) go to a priority level of their own (`node-high`: {SEATS} seats and the same queue, as a default kube-apiserver gives it the share of `workload-high`), \
         everything else stays in `workload-high`. The second column is the same run without it (`flowSchema.create=false`, or the plain manifests on Kubernetes 1.25–1.28 without flowschema.json): \
         every request in `workload-high`.",
        crate::handler::duration_text(crate::handler::default_poll_interval(&ctx.bin)?),
        n * PODS_PER_NODE,
        DEADLINE.as_secs(),
        latency.as_secs_f64() * 1000.0,
        queue_text,
        kubectl_text,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        std::env::var("MASS_NICE").unwrap_or_else(|_| NICE.to_string())
    ));
    // The columns: the handlers at full scale, the handlers at kubectl's scale (like for like),
    // kubectl.
    let mut sides: Vec<(String, &Side, bool)> = vec![
        (format!("{n} handlers (default install)"), &ours, true),
        (format!("{n} handlers without the FlowSchema"), &bare, true),
    ];
    if let Some(small) = &ours_small {
        sides.push((format!("{k} handlers"), small, true));
    }
    sides.push((format!("{k} × kubectl drain"), &theirs, false));
    let mut headers = vec![String::new()];
    headers.extend(sides.iter().map(|x| x.0.clone()));
    let mut t = Table::new(&headers.iter().map(String::as_str).collect::<Vec<_>>());
    let mut row = |name: &str, f: &dyn Fn(&Side, bool) -> String| {
        let mut cells = vec![name.to_string()];
        cells.extend(sides.iter().map(|(_, x, h)| f(x, *h)));
        t.row(cells);
    };
    let per = |v: &[usize]| {
        let f: Vec<f64> = v.iter().map(|x| *x as f64).collect();
        Summary::of(&f).map_or("n/a".into(), |s| {
            format!("median {:.0}, min {:.0}, max {:.0}", s.median, s.min, s.max)
        })
    };
    row("Cordoned (ms)", &|x, _| summary_ms(&x.cordon));
    row("Cordoned within 1 s", &|x, _| {
        format!("{} of {}", within(&x.cordon, CORDON_TARGET_MS), x.nodes)
    });
    row("Notice visible → the poll that saw it (ms)", &|x, h| {
        if h {
            format!(
                "{}; later than 950 ms: {} of {} (each of these has under 50 ms for its cordon)",
                summary_ms(&x.detect),
                x.detect.len() - within(&x.detect, CORDON_TARGET_MS - 50.0),
                x.nodes
            )
        } else {
            "n/a".into()
        }
    });
    row("Poll that saw the notice → cordoned (ms)", &|x, h| {
        if h {
            format!(
                "{}; within 1 s: {} of {}",
                summary_ms(&x.detect_to_cordon),
                within(&x.detect_to_cordon, CORDON_TARGET_MS),
                x.nodes
            )
        } else {
            "n/a".into()
        }
    });
    row("Last pod gone (ms)", &|x, _| summary_ms(&x.drained));
    row("Drained before the deadline", &|x, h| {
        format!(
            "{} of {} ({})",
            within(&x.drained, x.deadline_ms),
            x.nodes,
            if h {
                format!("deadline {:.0} ms", x.deadline_ms)
            } else {
                "120 s after start".into()
            }
        )
    });
    row("Done: `drain finished` / kubectl exit 0 (ms)", &|x, _| {
        summary_ms(&x.done)
    });
    row("API requests in all (from the notice / start)", &|x, h| {
        if !h && x.nodes < n {
            format!(
                "{} (×{:.0} scaled: {})",
                thousands(x.requests as u64),
                n as f64 / x.nodes as f64,
                thousands((x.requests as f64 * n as f64 / x.nodes as f64) as u64)
            )
        } else {
            thousands(x.requests as u64)
        }
    });
    row("API requests per node", &|x, _| {
        format!(
            "{} (mean {:.1}; {} name no node)",
            per(&x.per_node),
            x.requests as f64 / x.nodes as f64,
            x.unattributed
        )
    });
    row("Throttled (429)", &|x, _| thousands(x.throttled as u64));
    row(
        "The FlowSchema's level (`node-high`): requests admitted / throttled / most in flight",
        &|x, _| {
            x.own_level.as_ref().map_or("n/a".into(), |l| {
                format!(
                    "{} / {} / {}",
                    thousands(l.admitted as u64),
                    thousands(l.throttled as u64),
                    l.peak_inflight
                )
            })
        },
    );
    row(
        "Server: most requests in flight (admitted) / wanting a seat (`workload-high`)",
        &|x, _| format!("{} / {}", x.peak_inflight, x.peak_demand),
    );
    row(
        "Server: requests that arrived in the first second / of them served (not 429)",
        &|x, _| {
            format!(
                "{} / {}",
                thousands(x.first_second.0 as u64),
                thousands(x.first_second.1 as u64)
            )
        },
    );
    row(
        "Server: most requests waiting for a seat / served after waiting (`workload-high`)",
        &|x, _| format!("{} / {}", x.queue.0, thousands(x.queue.1 as u64)),
    );
    row("Requests by kind", &|x, _| {
        x.by_verb
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row("Throttled (429) by kind", &|x, _| {
        x.throttled_by_verb
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row("Start-up (before the notice)", &|x, h| {
        if h {
            format!(
                "all polling after {:.1} s, {} API requests",
                x.startup_s,
                thousands(x.startup_requests as u64)
            )
        } else {
            "n/a".into()
        }
    });
    row(
        "Largest process VmHWM (kubectl: sampled every ~0.2 s)",
        &|x, _| crate::report::kib(x.max_hwm_kb),
    );
    row(
        &format!(
            "CPU used in the first {} s after the notice (s of CPU)",
            BURST.as_secs()
        ),
        &|x, _| {
            x.burst.map_or("n/a".into(), |b| {
                format!(
                    "simulator and driver {:.2}, handlers {:.2} (their own accounting); the kernel's tick count: {:.0} % of {:.2} CPU-seconds busy (interrupts and softirqs {:.2}), steal {:.2}",
                    b.sim_s,
                    b.handlers_s,
                    100.0 * b.machine_s / b.capacity_s,
                    b.capacity_s,
                    b.irq_s,
                    b.steal_s
                )
            })
        },
    );
    row(
        "Connections dropped by a full listen queue (kernel, whole machine)",
        &|x, _| x.overflows.map_or("n/a".into(), thousands),
    );
    row("Wall time of the part", &|x, _| {
        format!("{:.0} s", x.wall_s)
    });
    s.table(t);
    s.para(format!(
        "The floor under the first two rows, measured first with no handler on the machine: {n} clients of this driver (a thread and a fresh TLS connection each, \
         as a handler opens at the notice) sent their node's cordon PATCH to a fresh simulator of the same cluster, latency and throttling at the same instant, a 429 retried after \
         its `Retry-After`: applied {} ms; **{} of {n} within 1 s**; {} throttled{}; {} connections dropped by a full listen queue; {:.2} s of CPU for the simulator and the clients (2 CPUs: {:.2} s of CPU per second of the burst). \
         No handler can beat this on this machine and simulator.",
        summary_ms(&floor.applied),
        within(&floor.applied, CORDON_TARGET_MS),
        thousands(floor.throttled as u64),
        if floor.failures.is_empty() {
            String::new()
        } else {
            format!("; {} failed ({})", floor.failures.len(), floor.failures[0])
        },
        floor.overflows.map_or("n/a".into(), thousands),
        floor.cpu_s,
        floor.cpu_s
            / (floor.applied.iter().copied().filter(|x| x.is_finite()).fold(0.0, f64::max) / 1000.0)
                .max(0.001)
    ));
    let mut notes: Vec<String> = ours
        .failures
        .iter()
        .map(|f| format!("{n} handlers: {f}"))
        .collect();
    notes.extend(
        bare.failures
            .iter()
            .map(|f| format!("{n} handlers without the FlowSchema: {f}")),
    );
    if let Some(small) = &ours_small {
        notes.extend(small.failures.iter().map(|f| format!("{k} handlers: {f}")));
    }
    notes.extend(theirs.failures.iter().map(|f| format!("kubectl: {f}")));
    if !notes.is_empty() {
        s.para("Failures and log lines:");
        s.list(notes);
    }
    let cordon_ok = within(&ours.cordon, CORDON_TARGET_MS);
    let drained_ok = within(&ours.drained, ours.deadline_ms);
    let targets = vec![TargetRow {
        target: format!("Mass reclaim of {n} nodes: every node cordoned within 1 s of the notice and drained before its deadline"),
        measured: format!(
            "cordoned within 1 s: {cordon_ok} of {n} (max {:.0} ms, p99 {:.0} ms); within 1 s of the poll that saw it: {} of {n} ({} of {n} polls saw the notice later than 950 ms after it); drained before the deadline: {drained_ok} of {n}; {} API requests ({:.1} per node), peak {} in flight, {} throttled; {k} kubectl drains: {} requests ({:.1} per node); the server alone, with no handler: {} of {n} within 1 s",
            ours.cordon.iter().copied().filter(|x| x.is_finite()).fold(f64::NAN, f64::max),
            percentile(&ours.cordon.iter().copied().filter(|x| x.is_finite()).collect::<Vec<_>>(), 0.99),
            within(&ours.detect_to_cordon, CORDON_TARGET_MS),
            n - within(&ours.detect, CORDON_TARGET_MS - 50.0),
            thousands(ours.requests as u64),
            ours.requests as f64 / n as f64,
            ours.peak_inflight,
            thousands(ours.throttled as u64),
            thousands(theirs.requests as u64),
            theirs.requests as f64 / k as f64,
            within(&floor.applied, CORDON_TARGET_MS)
        ),
        met: Some(cordon_ok == n && drained_ok == n),
        reproduce: reproduce.clone(),
    }];
    let bare_cordon_ok = within(&bare.cordon, CORDON_TARGET_MS);
    let bare_detect_ok = within(&bare.detect_to_cordon, CORDON_TARGET_MS);
    let bare_drained_ok = within(&bare.drained, bare.deadline_ms);
    let mut targets = targets;
    targets.push(TargetRow {
        target: format!("(info) The same {n} nodes without the FlowSchema (`flowSchema.create=false`; every request of the handlers in `workload-high`)"),
        measured: format!(
            "cordoned within 1 s of the notice: {bare_cordon_ok} of {n} (max {:.0} ms); within 1 s of the poll that saw it: {bare_detect_ok} of {n}; drained before the deadline: {bare_drained_ok} of {n}; {} API requests, {} throttled",
            bare.cordon.iter().copied().filter(|x| x.is_finite()).fold(f64::NAN, f64::max),
            thousands(bare.requests as u64),
            thousands(bare.throttled as u64),
        ),
        met: None,
        reproduce,
    });
    let side = |x: &Side| {
        json!({"nodes": x.nodes, "cordon_ms": x.cordon, "detect_ms": x.detect, "detect_to_cordon_ms": x.detect_to_cordon,
            "drained_ms": x.drained, "done_ms": x.done, "deadline_ms": x.deadline_ms,
            "requests": x.requests, "per_node": x.per_node, "unattributed": x.unattributed,
            "throttled": x.throttled, "peak_inflight": x.peak_inflight, "peak_demand": x.peak_demand, "peak_queued": x.queue.0, "served_after_wait": x.queue.1,
            "by_kind": x.by_verb, "throttled_by_kind": x.throttled_by_verb, "failures": x.failures, "startup_s": x.startup_s,
            "startup_requests": x.startup_requests, "max_hwm_kb": x.max_hwm_kb, "wall_s": x.wall_s})
    };
    let small = ours_small.as_ref().map(side);
    Ok(Outcome {
        section: s,
        targets,
        raw: json!({"latency_ms": latency.as_secs_f64() * 1000.0, "seats": SEATS,
            "handlers": side(&ours), "handlers_without_flowschema": side(&bare),
            "handlers_at_kubectl_scale": small, "kubectl": side(&theirs)}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, body: &str) -> ApiRequest {
        ApiRequest {
            seq: 1,
            at: Instant::now(),
            time: SystemTime::now(),
            method: method.into(),
            path: path.into(),
            content_type: None,
            body: body.into(),
            token: None,
            status: 200,
            connection: 1,
            user_agent: None,
        }
    }

    #[test]
    fn requests_are_attributed_to_their_node() {
        let n = 500;
        assert_eq!(
            node_of(&req("PATCH", "/api/v1/nodes/spot-0042", ""), n),
            Some(42)
        );
        assert_eq!(
            node_of(
                &req(
                    "GET",
                    "/api/v1/pods?fieldSelector=spec.nodeName%3Dspot-0500&limit=500",
                    ""
                ),
                n
            ),
            Some(500)
        );
        assert_eq!(
            node_of(
                &req(
                    "POST",
                    "/api/v1/namespaces/n0007/pods/web-0-5d8f7c-03x0007/eviction",
                    ""
                ),
                n
            ),
            Some(7)
        );
        assert_eq!(
            node_of(
                &req(
                    "POST",
                    "/apis/events.k8s.io/v1/namespaces/default/events",
                    "{\"regarding\":{\"name\":\"spot-0003\"}}"
                ),
                n
            ),
            Some(3)
        );
        assert_eq!(node_of(&req("GET", "/api/v1/nodes/spot-0501", ""), n), None);
        assert_eq!(node_of(&req("GET", "/apis/policy/v1", ""), n), None);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
        assert_eq!(
            percentile(&(1..=100).map(f64::from).collect::<Vec<_>>(), 0.99),
            99.0
        );
    }

    #[test]
    fn burst_cpu_takes_the_differences_and_counts_the_cpus() {
        let tck = crate::proc::clock_ticks_per_sec();
        // 2 CPUs over 2 s: 4 s of ticks in all; 3 s busy, of which 0.5 s interrupts.
        let a = CpuSnapshot {
            own: 10,
            handlers: 20,
            busy: 100,
            irq: 5,
            steal: 0,
            total: 1000,
        };
        let b = CpuSnapshot {
            own: 10 + tck,
            handlers: 20 + tck / 2,
            busy: 100 + 3 * tck,
            irq: 5 + tck / 2,
            steal: 0,
            total: 1000 + 4 * tck,
        };
        let c = burst_cpu(a, b, Duration::from_secs(2));
        assert_eq!(c.sim_s, 1.0);
        assert_eq!(c.handlers_s, 0.5);
        assert_eq!(c.machine_s, 3.0);
        assert_eq!(c.irq_s, 0.5);
        assert_eq!(c.steal_s, 0.0);
        assert_eq!(c.capacity_s, 4.0);
        // A sum that went down (a handler exited, its ticks left the sum) counts as nothing,
        // not a wrap.
        assert_eq!(burst_cpu(b, a, Duration::from_secs(2)).sim_s, 0.0);
    }
}
