//! Scenario 2, idle cost: the handler polling the fake IMDS with no notice, at 0.2 s for 100
//! polls and at the default 1 s for 20 polls, the latter also with `METRICS_ADDR` set (nobody
//! scraping: the cost of the idle server); all at once, each against its own simulator:
//! memory, CPU per poll, threads, file descriptors, and API requests while idle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use stnh_sim::{Scenario, Sim};

use super::{polls, progress, wait_polls, Ctx, Outcome, NODE};
use crate::apilog;
use crate::handler::Handler;
use crate::proc::{self, PerfCounts, PerfStat, Rollup, Sampler, Status};
use crate::report::{kib, Section, Table, TargetRow};
use crate::stats::Summary;

const RSS_TARGET_KB: u64 = 2048;
const CPU_TARGET_MS: f64 = 0.3;

#[derive(Clone, Copy)]
struct Config {
    label: &'static str,
    /// `POLL_INTERVAL`, or `None` for the default.
    setting: Option<&'static str>,
    interval: Duration,
    polls: usize,
    /// `METRICS_ADDR=127.0.0.1:0`: the metrics server listens (and nobody scrapes).
    metrics: bool,
}

const CONFIGS: [Config; 3] = [
    Config {
        label: "POLL_INTERVAL=200ms",
        setting: Some("200ms"),
        interval: Duration::from_millis(200),
        polls: 100,
        metrics: false,
    },
    Config {
        label: "default (1 s)",
        setting: None,
        interval: Duration::from_secs(1),
        polls: 20,
        metrics: false,
    },
    Config {
        label: "default (1 s), METRICS_ADDR set",
        setting: None,
        interval: Duration::from_secs(1),
        polls: 20,
        metrics: true,
    },
];

struct Measured {
    cfg: Config,
    window: Duration,
    polls_in_window: usize,
    /// Polls from the first to the end of the window.
    polls_total: usize,
    imds_in_window: BTreeMap<String, usize>,
    cpu_ticks: u64,
    perf: Option<PerfCounts>,
    end: Status,
    rollup: Rollup,
    peak_threads: u64,
    peak_fds: usize,
    fds_end: usize,
    startup_api: Vec<String>,
    idle_api: Vec<String>,
    problems: Vec<String>,
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

fn measure(ctx: &Ctx, cfg: Config, perf_events: Option<&str>) -> Result<Measured, String> {
    let sim = Sim::start(Scenario::new(NODE).latency(ctx.latency)).map_err(|e| e.to_string())?;
    let mut extra: Vec<(&str, &str)> = cfg
        .setting
        .map(|v| vec![("POLL_INTERVAL", v)])
        .unwrap_or_default();
    if cfg.metrics {
        extra.push(("METRICS_ADDR", "127.0.0.1:0"));
    }
    let mut h = Handler::start(&ctx.bin, &sim, &extra)?;
    let pid = h.pid();
    let timeout = Duration::from_secs(20) + cfg.interval * 3;
    // Start-up is over once it polls; let two polls pass, then measure from mid-interval to
    // mid-interval, so that the window holds exactly `polls` whole polls.
    let first = wait_polls(&sim, 1, timeout)?;
    let p2 = wait_polls(&sim, 2, timeout)?;
    let start = p2 + cfg.interval / 2;
    sleep_until(start);
    let perf_dir = ctx.scratch("perf")?;
    let perf_out = perf_dir.join("idle.csv");
    let perf = perf_events
        .and_then(|ev| PerfStat::attach(pid, ev, Some(Duration::from_secs(1)), &perf_out));
    let ticks0 = proc::cpu_ticks(pid).ok_or("the handler exited")?;
    let sampler = Sampler::start(pid, Duration::from_millis(2), true);
    let last = wait_polls(
        &sim,
        2 + cfg.polls,
        timeout + cfg.interval * cfg.polls as u32,
    )?;
    let end = last + cfg.interval / 2;
    sleep_until(end);
    let perf = perf.and_then(PerfStat::stop);
    let _ = std::fs::remove_dir_all(&perf_dir);
    let ticks1 = proc::cpu_ticks(pid).ok_or("the handler exited")?;
    let peaks = sampler.stop();
    let end_status = proc::status(pid).ok_or("the handler exited")?;
    let rollup = proc::smaps_rollup(pid).unwrap_or_default();
    let fds_end = proc::fd_count(pid).unwrap_or(0);
    if h.exited() {
        return Err(format!("the handler exited:\n{}", h.tail(20)));
    }
    let mut imds_in_window = BTreeMap::new();
    for r in sim.imds_requests() {
        if r.at > start && r.at < end {
            *imds_in_window
                .entry(format!("{} {}", r.method, r.path))
                .or_insert(0) += 1;
        }
    }
    let all_polls = polls(&sim);
    let polls_in_window = all_polls
        .iter()
        .filter(|r| r.at > start && r.at < end)
        .count();
    let polls_total = all_polls.iter().filter(|r| r.at < end).count();
    let api = sim.api_requests();
    let line = |r: &stnh_sim::ApiRequest| format!("{} {}", r.method, apilog::pattern(&r.path));
    let startup_api = api.iter().filter(|r| r.at < first).map(line).collect();
    let idle_api = api
        .iter()
        .filter(|r| r.at >= first && r.at <= Instant::now())
        .map(line)
        .collect();
    let problems = h.problems();
    h.stop();
    Ok(Measured {
        cfg,
        window: end - start,
        polls_in_window,
        polls_total,
        imds_in_window,
        cpu_ticks: ticks1.saturating_sub(ticks0),
        perf,
        end: end_status,
        rollup,
        peak_threads: peaks.threads,
        peak_fds: peaks.fds,
        fds_end,
        startup_api,
        idle_api,
        problems,
    })
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let perf_events = PerfStat::events();
    progress(
        "idle",
        &format!(
            "{} polls at 0.2 s and {} polls at 1 s (twice: without and with METRICS_ADDR), side by side (~{} s)",
            CONFIGS[0].polls,
            CONFIGS[1].polls,
            (CONFIGS[1].interval * (CONFIGS[1].polls as u32 + 3)).as_secs()
        ),
    );
    let results: Vec<Result<Measured, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = CONFIGS
            .iter()
            .map(|cfg| s.spawn(move || measure(ctx, *cfg, perf_events)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    let mut ms = Vec::new();
    for r in results {
        ms.push(r?);
    }
    let tck = proc::clock_ticks_per_sec() as f64;

    let mut s = Section::new("idle", "2. Idle cost", ctx.reproduce("idle"));
    s.para(format!(
        "The handler polls the fake IMDS with no notice (API latency {}). After two polls, a window runs from mid-interval to mid-interval over exactly N polls. \
         Memory: `/proc/PID/status` (VmRSS, VmHWM) and `smaps_rollup` at the end of the window. CPU: `perf stat -p PID -I 1000 -e {}` over the window (task-clock counts every thread, \
         exited ones included; the per-second counts give the spread), cross-checked with utime+stime of `/proc/PID/stat` (10 ms ticks, so coarse). Threads and fds: `/proc` sampled every 2 ms (a thread that lives \
         under 2 ms is usually missed: the perf count of created threads is the exact one). The runs go side by side, each against its own simulator; the third sets `METRICS_ADDR` (the metrics server listens; nobody scrapes during the window).",
        ctx.latency_text(),
        perf_events.unwrap_or("(perf unavailable)")
    ));
    let headers: Vec<String> = std::iter::once("Metric".to_string())
        .chain(
            ms.iter()
                .map(|m| format!(">{} × {} polls", m.cfg.label, m.cfg.polls)),
        )
        .collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new(&header_refs);
    let mut row = |name: &str, f: &dyn Fn(&Measured) -> String| {
        t.row(std::iter::once(name.to_string()).chain(ms.iter().map(f)));
    };
    row("Window (polls counted by the simulator)", &|m| {
        format!(
            "{:.1} s, {} polls",
            m.window.as_secs_f64(),
            m.polls_in_window
        )
    });
    row("VmRSS at the end", &|m| kib(m.end.rss_kb));
    row("  of which anonymous (heap, stacks, data)", &|m| {
        kib(m.rollup.anon_kb)
    });
    row("  of which file-backed (the binary's pages)", &|m| {
        kib(m.rollup.file_kb())
    });
    row("VmHWM (peak since start, start-up included)", &|m| {
        kib(m.end.hwm_kb)
    });
    let per_poll = |m: &Measured, v: f64| v / m.polls_in_window.max(1) as f64;
    row("CPU per poll, perf task-clock", &|m| match &m.perf {
        Some(p) => format!("{:.3} ms", per_poll(m, p.task_clock_ms)),
        None => "perf unavailable".into(),
    });
    row("  per 1 s interval: median (min–max)", &|m| {
        let polls_per_s = 1.0 / m.cfg.interval.as_secs_f64();
        let per_poll: Vec<f64> = m
            .perf
            .as_ref()
            .map(|p| {
                p.intervals
                    .iter()
                    .filter(|(secs, _)| (secs - 1.0).abs() < 0.05)
                    .map(|(secs, ms)| ms / (secs * polls_per_s).round().max(1.0))
                    .collect()
            })
            .unwrap_or_default();
        match Summary::of(&per_poll) {
            Some(s) => format!("{} ms ({} intervals)", s.med_range(3), s.n),
            None => "n/a".into(),
        }
    });
    row("CPU per poll, /proc utime+stime", &|m| {
        format!(
            "{:.2} ms ({} ticks)",
            per_poll(m, m.cpu_ticks as f64 * 1000.0 / tck),
            m.cpu_ticks
        )
    });
    row(
        "CPU share of one core (task-clock / window)",
        &|m| match &m.perf {
            Some(p) => format!(
                "{:.3} %",
                p.task_clock_ms / (m.window.as_secs_f64() * 1000.0) * 100.0
            ),
            None => "n/a".into(),
        },
    );
    row(
        "Threads created per poll (perf task:task_newtask)",
        &|m| match m.perf.as_ref().and_then(|p| p.new_tasks) {
            Some(n) => format!("{:.2}", per_poll(m, n as f64)),
            None => "n/a".into(),
        },
    );
    row(
        "Page faults / context switches per poll (perf)",
        &|m| match m.perf {
            Some(PerfCounts {
                page_faults: Some(pf),
                context_switches: Some(cs),
                ..
            }) => format!(
                "{:.1} / {:.1}",
                per_poll(m, pf as f64),
                per_poll(m, cs as f64)
            ),
            _ => "n/a".into(),
        },
    );
    row("Threads: between polls / most seen (2 ms sampling)", &|m| {
        format!("{} / {}", m.end.threads, m.peak_threads)
    });
    row("Open fds: between polls / most seen", &|m| {
        format!("{} / {}", m.fds_end, m.peak_fds)
    });
    row("IMDS requests in the window", &|m| {
        m.imds_in_window
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join("; ")
    });
    row("API requests at start-up (before the first poll)", &|m| {
        format!("{}: {}", m.startup_api.len(), m.startup_api.join(", "))
    });
    row("**API requests while idle** (first poll → end)", &|m| {
        if m.idle_api.is_empty() {
            "0".into()
        } else {
            format!("{}: {}", m.idle_api.len(), m.idle_api.join(", "))
        }
    });
    s.table(t);
    s.para("minreq, the handler's metadata client, enforces its timeout by running each request on a thread of its own: the “threads created per poll” row counts them. \
            Loopback TCP charges the fake IMDS's side of each connection (SYN/FIN processing) partly to the handler's CPU time, which a real IMDS on a Nitro card would not.");
    let problems: Vec<String> = ms
        .iter()
        .flat_map(|m| m.problems.iter().map(|p| format!("`{p}`")))
        .collect();
    if !problems.is_empty() {
        s.para("Warnings the handler logged:");
        s.list(problems);
    }

    let fast = &ms[0];
    let default = &ms[1];
    let cpu_fast = fast
        .perf
        .as_ref()
        .map(|p| p.task_clock_ms)
        .unwrap_or(fast.cpu_ticks as f64 * 1000.0 / tck)
        / fast.polls_in_window.max(1) as f64;
    let idle_api: usize = ms.iter().map(|m| m.idle_api.len()).sum();
    let targets = vec![
        TargetRow {
            target: "Idle RSS ≤ 2 MiB".into(),
            measured: format!(
                "VmRSS {} at the default 1 s poll ({} anonymous, {} file-backed); VmHWM {}",
                kib(default.end.rss_kb),
                kib(default.rollup.anon_kb),
                kib(default.rollup.file_kb()),
                kib(default.end.hwm_kb)
            ),
            met: Some(default.end.rss_kb <= RSS_TARGET_KB),
            reproduce: ctx.reproduce("idle"),
        },
        TargetRow {
            target: "≤ 0.3 ms CPU per idle poll".into(),
            measured: format!(
                "{cpu_fast:.3} ms ({}, {} polls at 0.2 s; {:.3} ms at the default 1 s)",
                if fast.perf.is_some() {
                    "perf task-clock"
                } else {
                    "/proc ticks"
                },
                fast.polls_in_window,
                default
                    .perf
                    .as_ref()
                    .map(|p| p.task_clock_ms)
                    .unwrap_or(default.cpu_ticks as f64 * 1000.0 / tck)
                    / default.polls_in_window.max(1) as f64
            ),
            met: Some(cpu_fast <= CPU_TARGET_MS),
            reproduce: ctx.reproduce("idle"),
        },
        {
            let with = &ms[2];
            let cpu = |m: &Measured| {
                m.perf
                    .as_ref()
                    .map(|p| p.task_clock_ms)
                    .unwrap_or(m.cpu_ticks as f64 * 1000.0 / tck)
                    / m.polls_in_window.max(1) as f64
            };
            TargetRow {
                target: "(info) Idle cost of `METRICS_ADDR` (server listening, no scrape)".into(),
                measured: format!(
                    "VmRSS {} vs {} without; CPU per poll {:.3} vs {:.3} ms; threads {} vs {}",
                    kib(with.end.rss_kb),
                    kib(default.end.rss_kb),
                    cpu(with),
                    cpu(default),
                    with.end.threads,
                    default.end.threads
                ),
                met: None,
                reproduce: ctx.reproduce("idle"),
            }
        },
        TargetRow {
            target: "Zero API requests while idle".into(),
            measured: format!(
                "{idle_api} over {} polls",
                fast.polls_total + default.polls_total
            ),
            met: Some(idle_api == 0),
            reproduce: ctx.reproduce("idle"),
        },
    ];
    let raw = json!(ms
        .iter()
        .map(|m| json!({
            "config": m.cfg.label, "metrics_addr": m.cfg.metrics, "polls": m.polls_in_window, "window_s": m.window.as_secs_f64(),
            "vmrss_kb": m.end.rss_kb, "vmhwm_kb": m.end.hwm_kb, "anon_kb": m.rollup.anon_kb,
            "file_kb": m.rollup.file_kb(), "cpu_ticks": m.cpu_ticks,
            "perf_task_clock_ms": m.perf.as_ref().map(|p| p.task_clock_ms),
            "perf_intervals": m.perf.as_ref().map(|p| p.intervals.clone()),
            "perf_new_tasks": m.perf.as_ref().and_then(|p| p.new_tasks),
            "perf_page_faults": m.perf.as_ref().and_then(|p| p.page_faults),
            "perf_context_switches": m.perf.as_ref().and_then(|p| p.context_switches),
            "threads_end": m.end.threads, "threads_peak": m.peak_threads,
            "fds_end": m.fds_end, "fds_peak": m.peak_fds,
            "startup_api": m.startup_api, "idle_api": m.idle_api,
        }))
        .collect::<Vec<_>>());
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
