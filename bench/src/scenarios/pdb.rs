//! Scenario 6, PDB-blocked drain: 20 pods, 5 of them under a budget that never allows an
//! eviction (maxUnavailable 0, replacements never Ready); deadline ~15 s after the notice,
//! `DRAIN_RESERVE=5s`. When did the forced DELETEs happen relative to `the force time (detection + min(W/6, W − R))`, with
//! what grace, and was anything of the node left at the deadline?

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stnh_sim::store::controller_of;
use stnh_sim::{PodSpec, Scenario, Sim};

use super::{ms, notice_at_random_moment, progress, Ctx, Outcome, NODE};
use crate::apilog::is_eviction;
use crate::handler::Handler;
use crate::report::{Section, Table, TargetRow};
use crate::stats::{fmt, Summary};

const FREE: usize = 15;
const GUARDED: usize = 5;
const RESERVE: Duration = Duration::from_secs(5);
const DEADLINE_IN: Duration = Duration::from_secs(15);

fn scenario(ctx: &Ctx) -> Scenario {
    let mut s = Scenario::new(NODE)
        .latency(ctx.latency)
        .replacement_ready_after(None);
    for i in 0..FREE {
        s = s.pod(
            PodSpec::new("shop", &format!("web-7d4b9c-{i:02}x"))
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(Duration::from_millis(500 + (i as u64 * 137) % 2000)),
        );
    }
    for i in 0..GUARDED {
        s = s.pod(
            PodSpec::new("shop", &format!("checkout-6c8d9f-{i:02}x"))
                .replicaset("checkout-6c8d9f")
                .labels(&[("app", "checkout")])
                .shutdown(Duration::from_secs(2)),
        );
    }
    s.pdb(
        "shop",
        "checkout-pdb",
        &[("app", "checkout")],
        None,
        Some(0),
    )
    .pod(PodSpec::new("kube-system", "aws-node-x1").daemonset("aws-node"))
    .pod(PodSpec::new("kube-system", "ebs-csi-node-x1").daemonset("ebs-csi-node"))
}

struct Run {
    /// ms from `the force time (detection + min(W/6, W − R))` to each forced DELETE's arrival.
    offsets: Vec<f64>,
    graces: Vec<i64>,
    evicted: usize,
    refused: usize,
    /// Non-DaemonSet pods of the node at the deadline.
    left: Vec<String>,
    problems: usize,
    /// The simulator's picture of this drain (first run only).
    timeline: Option<std::path::PathBuf>,
}

fn once(ctx: &Ctx, draw: bool) -> Result<Run, String> {
    let sim = Sim::start(scenario(ctx)).map_err(|e| e.to_string())?;
    let mut h = Handler::start(
        &ctx.bin,
        &sim,
        &[("POLL_INTERVAL", "200ms"), ("DRAIN_RESERVE", "5s")],
    )?;
    let notice = notice_at_random_moment(&sim, Duration::from_millis(200), DEADLINE_IN)?;
    if let Some(d) = notice.deadline_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
    // The force time by src/drain.rs's rule: with W = deadline − detection (≤ 60 s here) and R
    // the reserve, budgets are waited for min(W/6, W − R).
    let detected = super::detection(&sim, notice.at).ok_or("no poll answered 200")?;
    let window = notice.deadline_at.saturating_duration_since(detected);
    let force_at = detected + (window / 6).min(window.saturating_sub(RESERVE));
    let left: Vec<String> = sim
        .pods_on(NODE)
        .iter()
        .filter(|p| controller_of(p).is_none_or(|(kind, _)| kind != "DaemonSet"))
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    let reqs = sim.api_requests();
    let deletes: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/pods/"))
        .collect();
    let graces = deletes
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok()?["gracePeriodSeconds"].as_i64())
        .collect();
    let timeline = draw
        .then(|| super::draw_timeline(ctx, &sim, &notice, RESERVE, "pdb"))
        .flatten();
    let problems = h.problems().len();
    if h.exited() {
        return Err(format!("the handler exited:\n{}", h.tail(15)));
    }
    h.stop();
    Ok(Run {
        offsets: deletes.iter().map(|r| ms(force_at, r.at)).collect(),
        graces,
        evicted: reqs
            .iter()
            .filter(|r| is_eviction(r) && r.status == 201)
            .count(),
        refused: reqs
            .iter()
            .filter(|r| is_eviction(r) && r.status == 429)
            .count(),
        left,
        problems,
        timeline,
    })
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let mut runs = Vec::new();
    for i in 0..ctx.long_reps {
        let r = once(ctx, i == 0)?;
        progress(
            "pdb",
            &format!(
                "run {}/{}: {} forced DELETEs at {:?} ms from force time, {} pods left at the deadline",
                i + 1,
                ctx.long_reps,
                r.offsets.len(),
                r.offsets.iter().map(|x| x.round()).collect::<Vec<_>>(),
                r.left.len()
            ),
        );
        runs.push(r);
    }
    let mut s = Section::new("pdb", "6. PDB-blocked drain", ctx.reproduce("pdb"));
    s.para(format!(
        "{FREE} free ReplicaSet pods and {GUARDED} under a PodDisruptionBudget with maxUnavailable 0 whose replacements never become Ready (so it never allows an eviction), \
         plus 2 DaemonSet pods; app shutdown 0.5–2.5 s, grace 30 s. `POLL_INTERVAL=200ms`, `DRAIN_RESERVE=5s`; the notice's `time` is {}–{} s after it appears \
         (a whole second, as IMDS gives it). Offsets are DELETE arrivals at the simulator minus `the force time (detection + min(W/6, W − R))`, in ms; at the deadline the simulator's node is \
         sampled for pods other than DaemonSet pods. API latency {}.",
        DEADLINE_IN.as_secs(),
        DEADLINE_IN.as_secs() + 1,
        ctx.latency_text()
    ));
    let mut t = Table::new(&[
        ">Run",
        ">Forced DELETEs",
        ">Offset median",
        ">Offset max",
        ">Offset min",
        "Grace asked (s)",
        ">Evictions 201",
        ">Evictions 429",
        ">Pods left at the deadline",
        ">Warnings logged",
    ]);
    let mut all_offsets = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let sm = Summary::of(&r.offsets);
        all_offsets.extend(&r.offsets);
        let mut graces = r.graces.clone();
        graces.sort_unstable();
        graces.dedup();
        t.row([
            (i + 1).to_string(),
            r.offsets.len().to_string(),
            sm.map_or("n/a".into(), |s| fmt(s.median, 1)),
            sm.map_or("n/a".into(), |s| fmt(s.max, 1)),
            sm.map_or("n/a".into(), |s| fmt(s.min, 1)),
            graces
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            r.evicted.to_string(),
            r.refused.to_string(),
            if r.left.is_empty() {
                "0".to_string()
            } else {
                format!("{}: {}", r.left.len(), r.left.join(", "))
            },
            r.problems.to_string(),
        ]);
    }
    s.table(t);
    if let Some(p) = runs.first().and_then(|r| r.timeline.as_ref()) {
        s.para(format!(
            "The first run's drain, drawn by the simulator from its API and workload logs (the refusals, the forced deletes at the force time (detection + min(W/6, W − R)), one row per pod): `{}`.",
            p.display()
        ));
    }
    s.para("The warnings are the expected “eviction not accepted; retrying” and “deleted pod at deadline minus reserve” lines.");
    let all = Summary::of(&all_offsets);
    let left: usize = runs.iter().map(|r| r.left.len()).sum();
    let targets = vec![TargetRow {
        target: "(goal) PDB-blocked pods deleted at the force time (detection + min(W/6, W − R)); none left at the deadline".into(),
        measured: format!(
            "forced DELETEs {} ms after the force time (detection + min(W/6, W − R)), median (min–max) of {}; {left} pods left at the deadline over {} runs",
            all.map_or("n/a".into(), |s| s.med_range(1)),
            all_offsets.len(),
            runs.len()
        ),
        met: Some(left == 0 && runs.iter().all(|r| r.offsets.len() == GUARDED)),
        reproduce: ctx.reproduce("pdb"),
    }];
    let raw = json!(runs
        .iter()
        .map(
            |r| json!({"offsets_ms": r.offsets, "graces": r.graces, "evicted": r.evicted,
            "refused": r.refused, "left": r.left})
        )
        .collect::<Vec<_>>());
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
