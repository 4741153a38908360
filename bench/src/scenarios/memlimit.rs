//! Scenario `memlimit`: drains of 1,000 and 5,000 evictable pods (the `bench` mix) by the handler
//! running inside a memory cgroup whose limit is the container memory limit of the manifests
//! (`manifests/daemonset.yaml`, the chart's `resources.limits.memory` too). Only the handler is
//! in the group, not the simulator. Reports whether each drain finished (every pod's eviction
//! accepted, every pod gone and the handler's `drain finished` before the notice's deadline),
//! the group's peak memory, the kernel's limit hits and OOM kills, and the handler's VmHWM.
//!
//! `MEMLIMIT=<quantity>` (e.g. `4Mi`) replaces the manifests' limit, to see what a tighter one
//! does (and that an OOM kill is counted).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use stnh_sim::child::Child;
use stnh_sim::Sim;

use super::{
    bench_scenario, ms, notice_at_random_moment, progress, Ctx, Outcome, DAEMONSET_PODS, NODE,
};
use crate::apilog::is_eviction;
use crate::cgroup::{self, Cgroup};
use crate::report::{kib, thousands, Section, Table, TargetRow};

const SIZES: [usize; 2] = [1000, 5000];
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(200);
const DAEMONSET: &str = "manifests/daemonset.yaml";
const VALUES: &str = "manifests/helm/spot-termination-notice-handler/values.yaml";

struct Run {
    pods: usize,
    finished: bool,
    why: String,
    accepted: usize,
    /// ms from the notice.
    all_gone: f64,
    drain_finished: f64,
    deadline: f64,
    peak: u64,
    oom_kills: u64,
    limit_hits: u64,
    hwm_kb: u64,
    exited: bool,
    requests: usize,
    /// Events the handler could not queue: the sum of its `not_recorded` (counted into a node's
    /// Event; an overflow no node Event followed is not in it).
    events_dropped: u64,
    problems: Vec<String>,
}

/// A memory limit as written (`32Mi`) and in bytes.
type Limit = (String, u64);

/// The limit of the manifests and of the chart.
fn limits() -> Result<(Limit, Option<Limit>), String> {
    let ds = std::fs::read_to_string(DAEMONSET).map_err(|e| format!("{DAEMONSET}: {e}"))?;
    let mut ds = cgroup::manifest_limit(&ds).ok_or(format!("{DAEMONSET}: no limits.memory"))?;
    if let Ok(v) = std::env::var("MEMLIMIT") {
        let bytes = cgroup::parse_quantity(&v).ok_or(format!(
            "MEMLIMIT: expected a quantity such as 32Mi, got {v:?}"
        ))?;
        ds = (
            format!("{v} (MEMLIMIT, not the manifests' {})", ds.0),
            bytes,
        );
    }
    let chart = std::fs::read_to_string(VALUES)
        .ok()
        .and_then(|v| cgroup::manifest_limit(&v));
    Ok((ds, chart))
}

fn once(ctx: &Ctx, pods: usize, limit: u64) -> Result<(Run, String), String> {
    let sim = Sim::start(bench_scenario(pods, ctx.latency)).map_err(|e| e.to_string())?;
    let cg = Cgroup::create(
        &format!(
            "stnh-bench-memlimit-{}",
            stnh_sim::util::rand_string(6, b"abcdefghijklmnopqrstuvwxyz0123456789")
        ),
        limit,
    )?;
    let describe = cg.describe();
    // The shell moves itself into the group, then becomes the handler (same pid): nothing of
    // the handler ever runs outside it. `env_clear` leaves no PATH: echo and exec are built in.
    let bin = std::fs::canonicalize(&ctx.bin).map_err(|e| format!("{}: {e}", ctx.bin.display()))?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("echo $$ > \"$1\" && exec \"$2\"")
        .arg("sh")
        .arg(cg.procs())
        .arg(&bin);
    let mut h = Child::spawn(
        cmd,
        sim.handler_env_with(&[("POLL_INTERVAL", "200ms")]),
        None,
    )
    .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let notice = notice_at_random_moment(&sim, POLL, DEADLINE)?;
    let in_group = std::fs::read_to_string(cg.procs())
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim() == h.pid().to_string());
    if !in_group {
        h.kill();
        return Err(format!(
            "the handler (pid {}) is not in {}",
            h.pid(),
            cg.procs().display()
        ));
    }
    let mut sampled_peak = 0u64;
    let mut all_gone = None;
    let mut finished_line = None;
    let mut exited = false;
    let end = notice.deadline_at + Duration::from_secs(5);
    let mut tick = 0u32;
    while Instant::now() < end {
        sampled_peak = sampled_peak.max(cg.current().unwrap_or(0));
        if all_gone.is_none() && sim.pod_count_on(NODE) <= DAEMONSET_PODS {
            all_gone = Some(Instant::now());
        }
        tick += 1;
        if tick.is_multiple_of(10) {
            finished_line = h
                .timed_lines()
                .into_iter()
                .find(|(_, l)| l.contains("msg=\"drain finished"));
            if h.wait_exit(Duration::ZERO).is_some() {
                exited = true;
                break;
            }
            if all_gone.is_some() && finished_line.is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let hwm_kb = crate::proc::status(h.pid()).map_or(0, |s| s.hwm_kb);
    let usage = cg.usage(sampled_peak);
    let lines = h.lines();
    let field = |l: &str, key: &str| -> Option<u64> {
        l.split(key).nth(1)?.split(' ').next()?.parse().ok()
    };
    // Events that found the handler's queue full, as it counted them into a node's Event.
    let events_dropped = lines
        .iter()
        .filter_map(|l| field(l, "not_recorded="))
        .sum::<u64>();
    let problems: Vec<String> = lines
        .into_iter()
        .filter(|l| l.contains("level=warn") || l.contains("level=error"))
        .collect();
    h.kill();
    drop(cg);
    let reqs = sim.api_requests();
    let mut evicted: Vec<&str> = reqs
        .iter()
        .filter(|r| is_eviction(r) && r.status == 201)
        .map(|r| r.path.as_str())
        .collect();
    evicted.sort_unstable();
    evicted.dedup();
    let accepted = evicted.len();
    let deadline = ms(notice.at, notice.deadline_at);
    let gone = all_gone.map_or(f64::NAN, |t| ms(notice.at, t));
    let done = finished_line
        .as_ref()
        .map_or(f64::NAN, |(t, _)| ms(notice.at, *t));
    let clean_finish = finished_line
        .as_ref()
        .is_some_and(|(_, l)| l.contains("msg=\"drain finished\""));
    let mut why = Vec::new();
    if exited {
        why.push("the handler exited".to_string());
    }
    if accepted < pods {
        why.push(format!("{accepted} of {pods} evictions accepted"));
    }
    if gone.is_nan() || gone >= deadline {
        why.push("pods left at the deadline".into());
    }
    if done.is_nan() || done >= deadline || !clean_finish {
        why.push("no `drain finished` before the deadline".into());
    }
    if usage.oom_kills > 0 {
        why.push(format!("{} OOM kills", usage.oom_kills));
    }
    Ok((
        Run {
            pods,
            finished: why.is_empty(),
            why: why.join("; "),
            accepted,
            all_gone: gone,
            drain_finished: done,
            deadline,
            peak: usage.peak,
            oom_kills: usage.oom_kills,
            limit_hits: usage.limit_hits,
            hwm_kb,
            exited,
            requests: reqs.len(),
            events_dropped,
            problems,
        },
        describe,
    ))
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let ((ds_text, limit), chart) = limits()?;
    let mut runs = Vec::new();
    let mut describe = String::new();
    for pods in SIZES {
        let (r, d) = once(ctx, pods, limit)?;
        progress(
            "memlimit",
            &format!(
                "{pods} pods under {ds_text}: {}, cgroup peak {} KiB, OOM kills {}, VmHWM {} KiB, drain finished {:.0} ms after the notice",
                if r.finished { "finished" } else { "NOT finished" },
                r.peak / 1024,
                r.oom_kills,
                r.hwm_kb,
                r.drain_finished
            ),
        );
        runs.push(r);
        describe = d;
    }
    let mut s = Section::new(
        "memlimit",
        &format!("Drains under the manifests' memory limit ({ds_text})"),
        ctx.reproduce("memlimit"),
    );
    s.para(format!(
        "The handler alone (not the simulator) runs in a memory cgroup whose limit is the container limit of `{DAEMONSET}` (`limits.memory: {ds_text}`; the chart's `resources.limits.memory`: {}): {describe}. \
         It drains a node of N evictable pods of the `bench` mix (+{DAEMONSET_PODS} DaemonSet pods) after a spot notice with a {} s deadline, `POLL_INTERVAL=200ms`, API latency {}. \
         Finished = every pod's eviction accepted (201), every pod gone and the handler's `drain finished` logged, all before the deadline, and no OOM kill. \
         The cgroup's peak counts what the kernel charges the group (heap, stacks, kernel memory of its sockets; not the binary's page cache, already charged when an earlier run read it); VmHWM is the process's own peak RSS. Times in ms from the notice.",
        chart.as_ref().map_or("not found".to_string(), |c| format!("`{}`", c.0)),
        DEADLINE.as_secs(),
        ctx.latency_text()
    ));
    let mut t = Table::new(&[
        ">Pods",
        "Finished",
        ">Evictions accepted",
        ">All pods gone",
        ">`drain finished`",
        ">Deadline",
        ">cgroup peak",
        ">Peak / limit",
        ">Limit hits",
        ">OOM kills",
        ">VmHWM",
        ">API requests",
        ">Events not recorded",
    ]);
    for r in &runs {
        t.row([
            thousands(r.pods as u64),
            if r.finished {
                "yes".to_string()
            } else {
                format!("**no**: {}", r.why)
            },
            thousands(r.accepted as u64),
            format!("{:.0}", r.all_gone),
            format!("{:.0}", r.drain_finished),
            format!("{:.0}", r.deadline),
            kib(r.peak / 1024),
            format!("{:.0} %", r.peak as f64 * 100.0 / limit as f64),
            r.limit_hits.to_string(),
            r.oom_kills.to_string(),
            kib(r.hwm_kb),
            thousands(r.requests as u64),
            thousands(r.events_dropped),
        ]);
    }
    s.table(t);
    let problems: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .take(5)
                .map(move |p| format!("{} pods: `{p}`", r.pods))
        })
        .collect();
    if !problems.is_empty() {
        s.para("Warn and error lines of the handler (first 5 per run; `Event queue full` is the handler's bounded Event queue shedding Events during a drain this large, by design: Events are counted into the node's next Event, and the Events not recorded column sums those counts):");
        s.list(problems);
    }
    let all = runs.iter().all(|r| r.finished);
    let targets = vec![TargetRow {
        target: format!(
            "Drains of 1,000 and 5,000 pods finish inside the manifests' memory limit ({ds_text})"
        ),
        measured: runs
            .iter()
            .map(|r| {
                format!(
                    "{} pods: {}, peak {} ({:.0} % of the limit), {} OOM kills",
                    thousands(r.pods as u64),
                    if r.finished {
                        "finished"
                    } else {
                        "not finished"
                    },
                    kib(r.peak / 1024),
                    r.peak as f64 * 100.0 / limit as f64,
                    r.oom_kills
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        met: Some(all),
        reproduce: ctx.reproduce("memlimit"),
    }];
    let raw = json!({
        "limit": ds_text, "limit_bytes": limit, "cgroup": describe,
        "runs": runs.iter().map(|r| json!({"pods": r.pods, "finished": r.finished, "why": r.why,
            "accepted": r.accepted, "all_gone_ms": r.all_gone, "drain_finished_ms": r.drain_finished,
            "deadline_ms": r.deadline, "peak_bytes": r.peak, "oom_kills": r.oom_kills,
            "limit_hits": r.limit_hits, "vmhwm_kb": r.hwm_kb, "exited": r.exited,
            "requests": r.requests, "events_dropped": r.events_dropped})).collect::<Vec<_>>(),
    });
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
