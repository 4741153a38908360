//! Optional scenario `soak` (`make soak`, not in the default set, not in CI): the production
//! handler against the simulator for `SOAK_MINUTES` (default 60) at `POLL_INTERVAL=50ms`, its
//! `/metrics` scraped every second, and notices that come and go in a loop:
//!
//! 1. five unmanaged pods are put on the node and an AWS scheduled maintenance event
//!    (`instance-stop`, NotBefore in 10 min, inside the default 15 min lead) is announced: the
//!    handler cordons and drains; then the event is cancelled: the handler gives the node back;
//! 2. a rebalance recommendation with a new `noticeTime` appears: the handler cordons; its
//!    `REBALANCE_TTL` (3 s) passes: the handler gives the node back; the recommendation expires.
//!
//! A spot notice that appears and is withdrawn is not part of the loop: AWS never withdraws one,
//! and the handler (rightly) never gives a node back for it unless the machine reboots.
//!
//! `VmRSS`, threads and open fds of the handler are sampled at the start and every minute, and
//! appended to `<work_dir>/soak-samples.csv` as they come (so an interrupted run keeps its data);
//! the report gives start, end, max and the least-squares slope per hour, and is also written
//! to `<work_dir>/SOAK.md`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use stnh_sim::{MaintenanceEvent, PodSpec, Scenario, Sim};

use super::{progress, Ctx, Outcome, NODE};
use crate::handler::Handler;
use crate::proc;
use crate::report::{thousands, Section, Table, TargetRow};

const POLL: &str = "50ms";
const REBALANCE_TTL: &str = "3s";
const PODS_PER_CYCLE: usize = 5;
/// Bound of every wait for the handler to act (its scheduled-events poll is 30 × 50 ms).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Samples before this are the warm-up: a second slope leaves them out.
const WARMUP: Duration = Duration::from_secs(5 * 60);
/// "Flat": VmRSS grows less than this per hour after the warm-up (a leak of one 4 KiB page
/// every ~2.5 minutes would pass; a leak per poll, per scrape or per cycle would not).
const RSS_SLOPE_TARGET_KB: f64 = 100.0;

/// One sample of the handler process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the handler started.
    pub t: f64,
    pub rss_kb: u64,
    pub threads: u64,
    pub fds: u64,
    /// Bytes of the Node object as JSON (the handler's annotations live there).
    pub node_bytes: u64,
}

/// The least-squares slope of `y` over `x` (per unit of `x`); `None` with fewer than 2 points
/// or no spread in `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The soak length: `SOAK_MINUTES` (a positive number of minutes, default 60).
pub fn minutes() -> Result<u64, String> {
    match std::env::var("SOAK_MINUTES") {
        Err(_) => Ok(60),
        Ok(v) if v.trim().is_empty() => Ok(60),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("SOAK_MINUTES: expected a positive number of minutes, got {v:?}")
            }),
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `GET /metrics` over a fresh connection; the body on a 200.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The sum of every sample of `name` (any labels) whose label text contains `having`.
fn metric_sum(text: &str, name: &str, having: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| l.contains(having))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn unschedulable(n: &Value) -> bool {
    n["spec"]["unschedulable"] == true
}

/// Whether the node carries none of the handler's taints and is schedulable.
fn in_service(n: &Value) -> bool {
    !unschedulable(n)
        && !n["spec"]["taints"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["key"]
                    .as_str()
                    .is_some_and(|k| !k.starts_with("node.kubernetes.io/"))
            })
        })
}

fn wait_node(sim: &Sim, what: &str, f: impl Fn(&Value) -> bool) -> Result<f64, String> {
    let t0 = Instant::now();
    loop {
        if sim.node(NODE).is_some_and(|n| f(&n)) {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "timed out after {STEP_TIMEOUT:?} waiting for {what}"
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_pods(sim: &Sim, n: usize) -> Result<f64, String> {
    let t0 = Instant::now();
    loop {
        if sim.pod_count_on(NODE) <= n {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "timed out after {STEP_TIMEOUT:?} waiting for the drain ({} pods left)",
                sim.pod_count_on(NODE)
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(Default)]
struct Tally {
    scheduled_ok: u64,
    rebalance_ok: u64,
    failed: Vec<String>,
    /// Seconds: notice → cordoned, for each cycle (scheduled and rebalance).
    cordon_s: Vec<f64>,
}

/// One scheduled-event cycle: pods, announce, cordoned and drained, cancel, back in service.
fn scheduled_cycle(sim: &Sim, i: u64, base_pods: usize) -> Result<f64, String> {
    for p in 0..PODS_PER_CYCLE {
        sim.add_pod(
            PodSpec::new("soak", &format!("soak-{i}-{p}"))
                .grace(5)
                .shutdown(Duration::from_millis(200)),
        );
    }
    let id = format!("instance-event-soak{i:06}");
    sim.add_scheduled_event(MaintenanceEvent::new("instance-stop", 600).id(&id));
    let cordon = wait_node(sim, "the scheduled event's cordon", unschedulable)?;
    wait_pods(sim, base_pods)?;
    if !sim.cancel_scheduled_event(&id) {
        return Err(format!("event {id} was not active"));
    }
    wait_node(sim, "back in service after the cancel", in_service)?;
    Ok(cordon)
}

/// One rebalance cycle: a new recommendation, cordoned, TTL passes, back in service, expires.
fn rebalance_cycle(sim: &Sim) -> Result<f64, String> {
    sim.set_rebalance(Some(SystemTime::now()));
    let cordon = wait_node(sim, "the rebalance cordon", unschedulable);
    let back = cordon
        .as_ref()
        .ok()
        .map(|_| wait_node(sim, "back in service after the TTL", in_service));
    sim.set_rebalance(None);
    let cordon = cordon?;
    back.transpose()?;
    Ok(cordon)
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let minutes = minutes()?;
    let total = Duration::from_secs(minutes * 60);
    let sim = Sim::start(
        Scenario::new(NODE)
            .handler_pod()
            .latency(ctx.latency)
            .pod(PodSpec::new("kube-system", "aws-node-soak").daemonset("aws-node")),
    )
    .map_err(|e| e.to_string())?;
    let base_pods = sim.pod_count_on(NODE);
    let port = free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let metrics_addr = addr.to_string();
    let env = [
        ("POLL_INTERVAL", POLL),
        ("REBALANCE_TTL", REBALANCE_TTL),
        ("METRICS_ADDR", metrics_addr.as_str()),
    ];
    let mut h = Handler::start(&ctx.bin, &sim, &env)?;
    let started = Instant::now();
    let mut restarts = 0u64;
    let mut problems: Vec<String> = Vec::new();

    // The scraper: every second, on its own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let last = Arc::new(std::sync::Mutex::new(String::new()));
    let scraper = {
        let (stop, ok, failed, last) = (stop.clone(), ok.clone(), failed.clone(), last.clone());
        std::thread::spawn(move || {
            // Let the server come up before counting failures.
            std::thread::sleep(Duration::from_secs(1));
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match scrape(addr) {
                    Some(body) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = body;
                    }
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next += Duration::from_secs(1);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        })
    };

    let csv_path = ctx.work_dir.join("soak-samples.csv");
    let mut csv =
        std::fs::File::create(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let _ = writeln!(csv, "seconds,vmrss_kb,threads,fds,node_bytes");
    let sample = |pid: u32, sim: &Sim| -> Option<Sample> {
        let s = proc::status(pid)?;
        Some(Sample {
            t: started.elapsed().as_secs_f64(),
            rss_kb: s.rss_kb,
            threads: s.threads,
            fds: proc::fd_count(pid)? as u64,
            node_bytes: sim.node(NODE).map_or(0, |n| n.to_string().len() as u64),
        })
    };
    // The start: once the handler polls (its start-up requests done).
    let t0 = Instant::now();
    while sim.imds_count("/latest/meta-data/spot/instance-action") < 5 {
        if t0.elapsed() > Duration::from_secs(20) || h.exited() {
            return Err(format!(
                "the handler did not start polling:\n{}",
                h.tail(10)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut samples = Vec::new();
    let record = |s: Sample, csv: &mut std::fs::File, samples: &mut Vec<Sample>| {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{}",
            s.t, s.rss_kb, s.threads, s.fds, s.node_bytes
        );
        let _ = csv.flush();
        samples.push(s);
    };
    if let Some(s) = sample(h.pid(), &sim) {
        record(s, &mut csv, &mut samples);
    }
    let mut next_sample = started + Duration::from_secs(60);
    let mut tally = Tally::default();
    let mut i = 0u64;
    while started.elapsed() < total {
        i += 1;
        match scheduled_cycle(&sim, i, base_pods) {
            Ok(c) => {
                tally.scheduled_ok += 1;
                tally.cordon_s.push(c);
            }
            Err(e) => tally
                .failed
                .push(format!("cycle {i} (scheduled event): {e}")),
        }
        match rebalance_cycle(&sim) {
            Ok(c) => {
                tally.rebalance_ok += 1;
                tally.cordon_s.push(c);
            }
            Err(e) => tally.failed.push(format!("cycle {i} (rebalance): {e}")),
        }
        if h.exited() {
            // Never expected: count it, keep the log, and carry on with a fresh process.
            restarts += 1;
            problems.push(format!(
                "handler exited at {:.0} s:\n{}",
                started.elapsed().as_secs_f64(),
                h.tail(20)
            ));
            h = Handler::start(&ctx.bin, &sim, &env)?;
        }
        if Instant::now() >= next_sample {
            if let Some(s) = sample(h.pid(), &sim) {
                record(s, &mut csv, &mut samples);
                if samples.len() % 5 == 1 || minutes <= 5 {
                    progress(
                        "soak",
                        &format!(
                            "{:.0} min: VmRSS {} KiB, {} threads, {} fds; cycles {} + {}, failed {}",
                            s.t / 60.0,
                            s.rss_kb,
                            s.threads,
                            s.fds,
                            tally.scheduled_ok,
                            tally.rebalance_ok,
                            tally.failed.len()
                        ),
                    );
                }
            }
            next_sample += Duration::from_secs(60);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The last sample at the end.
    if samples
        .last()
        .is_none_or(|s| s.t + 30.0 < started.elapsed().as_secs_f64())
    {
        if let Some(s) = sample(h.pid(), &sim) {
            record(s, &mut csv, &mut samples);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    let hwm_kb = proc::status(h.pid()).map_or(0, |s| s.hwm_kb);
    let exited = h.exited();
    if exited {
        restarts += 1;
    }
    let lines = h.problems();
    let errors = lines.iter().filter(|l| l.contains("level=error")).count();
    let warns = lines.len() - errors;
    h.stop();
    let last_scrape = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let elapsed = started.elapsed();

    let section = render(
        ctx,
        minutes,
        elapsed,
        &samples,
        &tally,
        restarts,
        (errors, warns, &lines),
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed)),
        &last_scrape,
        hwm_kb,
        &problems,
    );
    let soak_md = ctx.work_dir.join("SOAK.md");
    let _ = std::fs::write(&soak_md, section.render());
    progress(
        "soak",
        &format!("wrote {} and {}", soak_md.display(), csv_path.display()),
    );
    // Flat: after the warm-up, none of VmRSS, threads and fds grows: least-squares slopes below
    // RSS_SLOPE_TARGET_KB and one thread / one fd per hour. (Not "constant at every sample": a
    // sample that falls inside a request sees its timeout thread and its socket.)
    let steady: Vec<&Sample> = samples.iter().skip(1).collect();
    let late_of = |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|x| x.t >= WARMUP.as_secs_f64())
            .map(|x| (x.t / 3600.0, f(x)))
            .collect()
    };
    let late_slope = slope(&late_of(|x| x.rss_kb as f64));
    let threads_flat = slope(&late_of(|x| x.threads as f64)).is_some_and(|v| v < 1.0);
    let fds_flat = slope(&late_of(|x| x.fds as f64)).is_some_and(|v| v < 1.0);
    let ends = |f: fn(&Sample) -> u64| {
        format!(
            "{} → {}",
            steady.first().map_or(0, |x| f(x)),
            steady.last().map_or(0, |x| f(x))
        )
    };
    let targets = vec![TargetRow {
        target: format!(
            "Soak {minutes} min at 50 ms polls: after 5 min, slopes of VmRSS ≤ {RSS_SLOPE_TARGET_KB} KiB/h, threads and fds < 1/h; no restart, no error"
        ),
        measured: format!(
            "VmRSS slope after 5 min {} ({} → {} KiB, max {}); threads {}; fds {}; {} + {} cycles, {} failed; {restarts} restarts; {errors} error lines",
            late_slope.map_or("n/a".into(), |v| format!("{v:+.0} KiB/h")),
            samples.first().map_or(0, |s| s.rss_kb),
            samples.last().map_or(0, |s| s.rss_kb),
            samples.iter().map(|s| s.rss_kb).max().unwrap_or(0),
            ends(|x| x.threads),
            ends(|x| x.fds),
            tally.scheduled_ok,
            tally.rebalance_ok,
            tally.failed.len()
        ),
        met: Some(
            restarts == 0
                && errors == 0
                && tally.failed.is_empty()
                && threads_flat
                && fds_flat
                && late_slope.is_some_and(|v| v <= RSS_SLOPE_TARGET_KB),
        ),
        reproduce: format!("`make soak SOAK_MINUTES={minutes}`"),
    }];
    let raw = json!({
        "minutes": minutes, "elapsed_s": elapsed.as_secs_f64(),
        "samples": samples.iter().map(|s| json!({"t": s.t, "rss_kb": s.rss_kb, "threads": s.threads,
            "fds": s.fds, "node_bytes": s.node_bytes})).collect::<Vec<_>>(),
        "scheduled_cycles": tally.scheduled_ok, "rebalance_cycles": tally.rebalance_ok,
        "failed_cycles": tally.failed, "restarts": restarts, "error_lines": errors, "warn_lines": warns,
        "scrapes_ok": ok.load(Ordering::Relaxed), "scrapes_failed": failed.load(Ordering::Relaxed),
        "vmhwm_kb": hwm_kb,
    });
    Ok(Outcome {
        section,
        targets,
        raw,
    })
}

#[allow(clippy::too_many_arguments)]
fn render(
    ctx: &Ctx,
    minutes: u64,
    elapsed: Duration,
    samples: &[Sample],
    tally: &Tally,
    restarts: u64,
    (errors, warns, lines): (usize, usize, &[String]),
    (scrapes_ok, scrapes_failed): (u64, u64),
    last_scrape: &str,
    hwm_kb: u64,
    problems: &[String],
) -> Section {
    let mut s = Section::new(
        "soak",
        &format!("Soak: {minutes} min of notices that come and go"),
        format!(
            "`make soak SOAK_MINUTES={minutes}` (→ `stnh-bench --only soak`, `SOAK_MINUTES={minutes}`; not in the default set)"
        ),
    );
    s.para(format!(
        "The production binary against the simulator for {:.1} min (API latency {}), `POLL_INTERVAL={POLL}`, `REBALANCE_TTL={REBALANCE_TTL}`, \
         `METRICS_ADDR` on 127.0.0.1 scraped every second. In a loop: {PODS_PER_CYCLE} unmanaged pods are put on the node and an AWS scheduled \
         maintenance event (`instance-stop`, NotBefore in 10 min, inside the default 15 min lead) is announced, the handler cordons and drains, \
         the event is cancelled, the handler gives the node back; then a rebalance recommendation with a new `noticeTime` appears, the handler \
         cordons, its TTL passes, the handler gives the node back, the recommendation expires. (A withdrawn spot notice is not in the loop: \
         AWS never withdraws one and the handler keeps such a node cordoned until the machine reboots.) The handler process is sampled at the \
         start (once it polls) and every minute; slopes are least squares over the samples, per hour.",
        elapsed.as_secs_f64() / 60.0,
        ctx.latency_text()
    ));
    let mut t = Table::new(&[
        "Measure",
        ">Start",
        ">End",
        ">Max",
        ">Slope per hour, all samples",
        ">Slope per hour, after 5 min",
    ]);
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.t >= WARMUP.as_secs_f64())
        .collect();
    let mut row = |name: &str, unit: &str, f: &dyn Fn(&Sample) -> f64| {
        let all: Vec<(f64, f64)> = samples.iter().map(|x| (x.t / 3600.0, f(x))).collect();
        let late: Vec<(f64, f64)> = after.iter().map(|x| (x.t / 3600.0, f(x))).collect();
        let v = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.0}"));
        let sl = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:+.1} {unit}/h"));
        t.row([
            format!("{name} ({unit})"),
            v(samples.first().map(f)),
            v(samples.last().map(f)),
            v(samples.iter().map(f).reduce(f64::max)),
            sl(slope(&all)),
            sl(slope(&late)),
        ]);
    };
    row("VmRSS", "KiB", &|x| x.rss_kb as f64);
    row("Threads", "threads", &|x| x.threads as f64);
    row("Open fds", "fds", &|x| x.fds as f64);
    row("Node object (JSON)", "bytes", &|x| x.node_bytes as f64);
    s.table(t);
    let mut t = Table::new(&["Count", ">Value"]);
    t.row(["Samples".to_string(), samples.len().to_string()]);
    t.row([
        "Scheduled-event cycles completed (cordon + drain, cancel, uncordon)".to_string(),
        thousands(tally.scheduled_ok),
    ]);
    t.row([
        "Rebalance cycles completed (cordon, TTL, uncordon)".to_string(),
        thousands(tally.rebalance_ok),
    ]);
    t.row(["Cycles failed".to_string(), tally.failed.len().to_string()]);
    let cordon = crate::stats::Summary::of(&tally.cordon_s);
    t.row([
        "Signal → cordon, s: median (max)".to_string(),
        cordon.map_or("n/a".into(), |c| format!("{:.2} ({:.2})", c.median, c.max)),
    ]);
    t.row(["Handler restarts (exits)".to_string(), restarts.to_string()]);
    t.row(["Log lines at level=error".to_string(), errors.to_string()]);
    t.row(["Log lines at level=warn".to_string(), warns.to_string()]);
    t.row([
        "Scrapes of /metrics: answered 200 / failed".to_string(),
        format!("{} / {}", thousands(scrapes_ok), scrapes_failed),
    ]);
    t.row(["VmHWM at the end (KiB)".to_string(), thousands(hwm_kb)]);
    for (label, name, having) in [
        ("Metric: evictions, all results", "stnh_evictions_total", ""),
        (
            "Metric: metadata requests, all",
            "stnh_metadata_requests_total",
            "",
        ),
        (
            "Metric: metadata requests, result error",
            "stnh_metadata_requests_total",
            "result=\"error\"",
        ),
        (
            "Metric: metadata requests, result timeout",
            "stnh_metadata_requests_total",
            "result=\"timeout\"",
        ),
        (
            "Metric: Kubernetes requests, all",
            "stnh_kube_requests_total",
            "",
        ),
        ("Metric: actions, all", "stnh_actions_total", ""),
        (
            "Metric: actions, result error",
            "stnh_actions_total",
            "result=\"error\"",
        ),
        (
            "Metric: evictions, result failed",
            "stnh_evictions_total",
            "result=\"failed\"",
        ),
    ] {
        t.row([
            label.to_string(),
            thousands(metric_sum(last_scrape, name, having) as u64),
        ]);
    }
    s.table(t);
    let mut t = Table::new(&[">Minute", ">VmRSS (KiB)", ">Threads", ">Fds", ">Node bytes"]);
    for x in samples {
        t.row([
            format!("{:.1}", x.t / 60.0),
            thousands(x.rss_kb),
            x.threads.to_string(),
            x.fds.to_string(),
            thousands(x.node_bytes),
        ]);
    }
    s.para("Every sample:");
    s.table(t);
    let mut notes: Vec<String> = tally.failed.iter().take(10).cloned().collect();
    notes.extend(lines.iter().take(10).map(|l| format!("`{l}`")));
    notes.extend(problems.iter().map(|p| format!("```\n{p}\n```")));
    if !notes.is_empty() {
        s.para("Failures and warn/error lines (first 10 of each):");
        s.list(notes);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(0.0, 4.0), (1.0, 4.0)]), Some(0.0));
        assert_eq!(slope(&[(1.0, 4.0)]), None);
        assert_eq!(slope(&[(1.0, 4.0), (1.0, 5.0)]), None);
        let s = slope(&[(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, 1.0)]).unwrap();
        assert!((s - 0.2).abs() < 1e-12);
    }

    #[test]
    fn metric_sums() {
        let text = "# HELP x\nstnh_actions_total{action=\"cordon\",result=\"ok\"} 3\nstnh_actions_total{action=\"drain\",result=\"failed\"} 1\nstnh_actions_totalx 9\n";
        assert_eq!(metric_sum(text, "stnh_actions_total", ""), 4.0);
        assert_eq!(metric_sum(text, "stnh_actions_total", "result=\"fail"), 1.0);
    }
}
