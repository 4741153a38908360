//! Scenario 4: a node of 110 evictable pods (the `bench` mix: grace 10/30/60 s, app shutdown
//! 0.2–3.0 s, plus 3 DaemonSet pods, no PDB) drained by the handler. When scenario 5 (real
//! `kubectl drain`, [`super::kubectl`]) runs too, their repetitions alternate (handler, kubectl,
//! handler, …) so that the ratios compare runs made under the same conditions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use stnh_sim::{ApiRequest, Sim};

use super::kubectl;
use super::{
    bench_scenario, detection, ms, notice_at_random_moment, progress, Ctx, Outcome, DAEMONSET_PODS,
    NODE,
};
use crate::apilog::{self, is_discovery, is_eviction, Counts};
use crate::handler::Handler;
use crate::proc::Sampler;
use crate::report::{Section, Table, TargetRow};
use crate::stats::Summary;

/// Evictable pods: the default kubelet max-pods.
pub const PODS: usize = 110;
const EVICTIONS_TARGET_MS: f64 = 500.0;
const POLL: Duration = Duration::from_millis(200);

/// One drain by the handler; times in ms from the notice becoming visible.
pub(crate) struct Ours {
    pub detect: f64,
    pub cordon: f64,
    pub first_list: f64,
    pub first_eviction: f64,
    pub last_accepted: f64,
    pub all_gone: f64,
    pub done: f64,
    pub accepted: usize,
    /// Requests from the notice on.
    pub counts: Counts,
    /// LIST requests before the first eviction: the pages of the first list.
    pub first_list_pages: usize,
    pub tls_connections: usize,
    pub startup: Vec<String>,
    /// VmHWM at the end of the drain (the kernel's peak since start).
    pub hwm_kb: u64,
    /// Most threads seen (10 ms sampling).
    pub peak_threads: u64,
    pub problems: Vec<String>,
    /// The simulator's picture of this drain.
    pub timeline: Option<std::path::PathBuf>,
}

/// When the last eviction was accepted (its 201 left the server), and how many were.
pub(crate) fn last_accepted(reqs: &[ApiRequest], latency: Duration) -> Option<(Instant, usize)> {
    let accepted: Vec<&ApiRequest> = reqs
        .iter()
        .filter(|r| is_eviction(r) && r.status == 201)
        .collect();
    // The simulated server answers `latency` after the arrival.
    Some((
        accepted.iter().map(|r| r.at).max()? + latency,
        accepted.len(),
    ))
}

/// Runs the handler on a fresh node of `pods` evictable pods until it records the outcome on
/// the node.
pub(crate) fn ours(ctx: &Ctx, pods: usize) -> Result<Ours, String> {
    let sim = Sim::start(bench_scenario(pods, ctx.latency)).map_err(|e| e.to_string())?;
    let mut h = Handler::start(&ctx.bin, &sim, &[("POLL_INTERVAL", "200ms")])?;
    let notice = notice_at_random_moment(&sim, POLL, Duration::from_secs(120))?;
    let sampler = Sampler::start(h.pid(), Duration::from_millis(10), false);
    let end = Instant::now() + Duration::from_secs(90);
    let mut all_gone = None;
    let mut recorded = false;
    let mut tick = 0u32;
    // Done when the node records the drain's outcome (its `phase` annotation); counting PATCHes
    // would also count the Node condition's `nodes/status` PATCH.
    while !recorded {
        if all_gone.is_none() && sim.pod_count_on(NODE) <= DAEMONSET_PODS {
            all_gone = Some(Instant::now());
        }
        tick += 1;
        if tick.is_multiple_of(4) {
            recorded = sim.node(NODE).is_some_and(|n| {
                matches!(
                    n["metadata"]["annotations"]["spot-termination-notice-handler/phase"].as_str(),
                    Some("drained" | "incomplete" | "failed")
                )
            });
            if h.exited() || Instant::now() > end {
                return Err(format!(
                    "the drain did not finish within 90 s; handler log:\n{}",
                    h.tail(15)
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let peaks = sampler.stop();
    let reqs = sim.api_requests();
    let detected = detection(&sim, notice.at).ok_or("no poll answered 200")?;
    let after: Vec<ApiRequest> = reqs.iter().filter(|r| r.at >= notice.at).cloned().collect();
    let first = |pred: &dyn Fn(&ApiRequest) -> bool| {
        after
            .iter()
            .find(|r| pred(r))
            .map(|r| ms(notice.at, r.at))
            .unwrap_or(f64::NAN)
    };
    let (last, accepted) = last_accepted(&after, ctx.latency).ok_or("no eviction accepted")?;
    let startup = reqs
        .iter()
        .filter(|r| r.at < notice.at)
        .map(|r| format!("{} {}", r.method, apilog::pattern(&r.path)))
        .collect();
    let first_eviction_at = after.iter().find(|r| is_eviction(r)).map(|r| r.at);
    let first_list_pages = after
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path.starts_with("/api/v1/pods?")
                && first_eviction_at.is_none_or(|t| r.at < t)
        })
        .count();
    let hwm_kb = crate::proc::status(h.pid()).map_or(peaks.hwm_kb, |s| s.hwm_kb.max(peaks.hwm_kb));
    let problems = h.problems();
    h.stop();
    let timeline = super::draw_timeline(
        ctx,
        &sim,
        &notice,
        Duration::from_secs(20),
        &format!("drain-{pods}"),
    );
    Ok(Ours {
        detect: ms(notice.at, detected),
        cordon: first(&|r| super::metalog::is_cordon(r, NODE)),
        first_list: first(&|r| r.method == "GET" && r.path.starts_with("/api/v1/pods?")),
        first_eviction: first(&is_eviction),
        last_accepted: ms(notice.at, last),
        all_gone: all_gone.map_or(f64::NAN, |t| ms(notice.at, t)),
        // The outcome's record: the last PATCH of the node object itself.
        done: after
            .iter()
            .filter(|r| {
                r.method == "PATCH"
                    && super::metalog::bare(&r.path) == format!("/api/v1/nodes/{NODE}")
            })
            .map(|r| ms(notice.at, r.at))
            .fold(f64::NAN, f64::max),
        accepted,
        counts: Counts::of(&after),
        first_list_pages,
        tls_connections: sim.tls_connections(),
        startup,
        hwm_kb,
        peak_threads: peaks.threads,
        problems,
        timeline,
    })
}

/// `median (min–max)` of `values`.
pub(super) fn med_range(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let v: Vec<f64> = values.collect();
    Summary::of(&v).map_or("n/a".into(), |s| s.med_range(digits))
}

/// Requests per run by `METHOD pattern`: median (min–max) and every status seen.
pub(super) fn requests_table(runs: &[&Counts]) -> Table {
    let mut keys: Vec<(String, String)> = runs
        .iter()
        .flat_map(|c| c.by_pattern.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let mut t = Table::new(&[
        "Method",
        "Path pattern",
        ">Per run: median (min–max)",
        "Statuses, all runs",
    ]);
    for k in keys {
        let per_run: Vec<f64> = runs
            .iter()
            .map(|c| {
                c.by_pattern
                    .get(&k)
                    .map_or(0, |s| s.values().sum::<usize>()) as f64
            })
            .collect();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for c in runs {
            for (code, n) in c.by_pattern.get(&k).into_iter().flatten() {
                *statuses.entry(*code).or_default() += n;
            }
        }
        t.row([
            k.0.clone(),
            format!("`{}`", k.1),
            med_range(per_run.into_iter(), 0),
            apilog::statuses(&statuses),
        ]);
    }
    let totals: Vec<f64> = runs.iter().map(|c| c.total() as f64).collect();
    t.row([
        "**all**".to_string(),
        String::new(),
        med_range(totals.into_iter(), 0),
        String::new(),
    ]);
    t
}

/// Requests other than eviction POSTs.
pub(super) fn non_eviction(c: &Counts) -> usize {
    c.by_pattern
        .iter()
        .filter(|((m, p), _)| !(m == "POST" && p.ends_with("/eviction")))
        .map(|(_, s)| s.values().sum::<usize>())
        .sum()
}

/// Event writes (POST, and PATCH of a series).
pub(super) fn event_writes(c: &Counts) -> usize {
    c.by_pattern
        .iter()
        .filter(|((m, p), _)| m != "GET" && p.contains("/events"))
        .map(|(_, s)| s.values().sum::<usize>())
        .sum()
}

/// Requests for discovery documents.
pub(super) fn discovery(c: &Counts) -> usize {
    c.by_pattern
        .iter()
        .filter(|((_, p), _)| is_discovery(p))
        .map(|(_, s)| s.values().sum::<usize>())
        .sum()
}

/// Runs the selected halves, alternating, and reports each.
pub fn run(ctx: &Ctx, with_ours: bool, with_kubectl: bool) -> Result<Vec<Outcome>, String> {
    let mut ours_runs = Vec::new();
    let mut kubectl_runs = Vec::new();
    for i in 0..ctx.reps {
        if with_ours {
            let o = ours(ctx, PODS)?;
            progress(
                "drain",
                &format!(
                    "handler run {}/{}: last eviction accepted {:.0} ms after detection, pods gone {:.0} ms, done {:.0} ms after the notice, {} requests",
                    i + 1,
                    ctx.reps,
                    o.last_accepted - o.detect,
                    o.all_gone,
                    o.done,
                    o.counts.total()
                ),
            );
            ours_runs.push(o);
        }
        if with_kubectl {
            let k = kubectl::once(ctx)?;
            progress(
                "kubectl",
                &format!(
                    "kubectl run {}/{}: exit after {:.0} ms, {} requests, {} throttling waits logged",
                    i + 1,
                    ctx.reps,
                    k.exit,
                    k.counts.total(),
                    k.throttled
                ),
            );
            kubectl_runs.push(k);
        }
    }
    let mut out = Vec::new();
    let mut targets = Vec::new();
    if with_ours {
        out.push(ours_section(ctx, &ours_runs, &mut targets));
    }
    if with_kubectl {
        out.push(kubectl::section(
            ctx,
            &kubectl_runs,
            &ours_runs,
            &mut targets,
        ));
    }
    // The targets go with the last section produced.
    if let Some(last) = out.last_mut() {
        last.targets = targets;
    }
    Ok(out)
}

fn ours_section(ctx: &Ctx, runs: &[Ours], targets: &mut Vec<TargetRow>) -> Outcome {
    let mut s = Section::new(
        "drain",
        &format!("4. Drain of {PODS} pods"),
        ctx.reproduce("drain"),
    );
    s.para(format!(
        "A fresh simulator per run: {PODS} ReplicaSet pods (grace 10/30/60 s, app shutdown 0.2–3.0 s) and {DAEMONSET_PODS} DaemonSet pods on the node, no PDB, API latency {}. \
         The handler polls every 0.2 s; the notice (deadline 120 s) appears at a random moment once it polls. Times are arrivals at the simulator, in ms, \
         median (min–max) of {} runs; “accepted” = arrival of the last 201 + the simulated latency; “all pods gone” = the simulator's node holds only DaemonSet pods \
         (sampled every 5 ms); “drain done” = the handler's outcome PATCH on the node, sent once its once-a-second LIST saw the pods gone.",
        ctx.latency_text(),
        runs.len()
    ));
    if let Some(p) = runs.last().and_then(|o| o.timeline.as_ref()) {
        s.para(format!(
            "The last run's drain, drawn by the simulator from its API and workload logs (one row per pod): `{}`.",
            p.display()
        ));
    }
    let mut t = Table::new(&["Step", ">From the notice", ">From detection"]);
    type Step = (&'static str, fn(&Ours) -> f64);
    let rows: [Step; 7] = [
        ("Detection (poll got the 200)", |o| o.detect),
        ("Cordon PATCH", |o| o.cordon),
        ("First LIST", |o| o.first_list),
        ("First eviction POST", |o| o.first_eviction),
        ("**All evictions accepted**", |o| o.last_accepted),
        ("All pods gone (simulator)", |o| o.all_gone),
        ("Drain done (outcome PATCH)", |o| o.done),
    ];
    for (name, f) in rows {
        t.row([
            name.to_string(),
            med_range(runs.iter().map(f), 0),
            med_range(runs.iter().map(|o| f(o) - o.detect), 0),
        ]);
    }
    s.table(t);
    let accepted: Vec<String> = runs.iter().map(|o| o.accepted.to_string()).collect();
    s.para(format!(
        "Evictions accepted per run: {}. Handler VmHWM (peak RSS) at the end of the drain, KiB: {}; most threads seen: {}. TLS connections per run (start-up included): {}.",
        accepted.join(", "),
        med_range(runs.iter().map(|o| o.hwm_kb as f64), 0),
        med_range(runs.iter().map(|o| o.peak_threads as f64), 0),
        med_range(runs.iter().map(|o| o.tls_connections as f64), 0),
    ));
    s.para("API requests from the notice on, by verb and path:");
    let counts: Vec<&Counts> = runs.iter().map(|o| &o.counts).collect();
    s.table(requests_table(&counts));
    if let Some(o) = runs.first() {
        s.para(format!(
            "Plus, once per process start (before any notice): {}.",
            o.startup.join(", ")
        ));
    }
    let problems: Vec<String> = runs
        .iter()
        .flat_map(|o| o.problems.iter().map(|p| format!("`{p}`")))
        .take(10)
        .collect();
    if !problems.is_empty() {
        s.para("Warnings the handler logged:");
        s.list(problems);
    }
    let from_detection: Vec<f64> = runs.iter().map(|o| o.last_accepted - o.detect).collect();
    let sm = Summary::of(&from_detection);
    targets.push(TargetRow {
        target: format!("{PODS} evictions accepted ≤ 0.5 s"),
        measured: match sm {
            Some(sm) => format!(
                "{} ms from detection, median (min–max) of {} runs; {} ms from the notice",
                sm.med_range(0),
                sm.n,
                med_range(runs.iter().map(|o| o.last_accepted), 0)
            ),
            None => "n/a".into(),
        },
        met: sm.map(|s| s.median <= EVICTIONS_TARGET_MS),
        reproduce: ctx.reproduce("drain"),
    });
    let raw =
        json!(runs
        .iter()
        .map(|o| json!({"detect_ms": o.detect, "cordon_ms": o.cordon, "first_list_ms": o.first_list,
            "first_eviction_ms": o.first_eviction, "last_accepted_ms": o.last_accepted,
            "all_gone_ms": o.all_gone, "done_ms": o.done, "accepted": o.accepted,
            "requests": o.counts.total(), "tls_connections": o.tls_connections,
            "hwm_kb": o.hwm_kb, "peak_threads": o.peak_threads}))
        .collect::<Vec<_>>());
    Outcome {
        section: s,
        targets: Vec::new(),
        raw,
    }
}
