//! Scenario 3, reaction per signal at the default settings: each trial starts a fresh
//! simulator and handler, waits for the watcher of that signal to run, makes the signal appear
//! (at a random moment of the poll cycle for a polled source; while both hanging GETs are held
//! on GCP) and measures, all on this process's monotonic clock from the simulator's logs:
//! detection (the signal visible → the answer that carried it), processing (that answer → the
//! cordon PATCH arriving at the simulated API server) and the sum.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use stnh_sim::{AzureEvent, Cloud, MaintenanceEvent, Observer, Scenario, Script, Sim, Step};

use super::metalog::{self, bare};
use super::{ms, notice_at_random_moment, progress, uniform, whole_second, Ctx, Outcome, NODE};
use crate::handler::{wait_for, Handler};
use crate::report::{Section, Table, TargetRow};
use crate::stats::{fmt, Summary};

const PROCESSING_TARGET_MS: f64 = 20.0;
/// Issue 9: GCP `preempted` = TRUE → cordon PATCH.
const GCP_TARGET_MS: f64 = 50.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Spot,
    Rebalance,
    Scheduled,
    Asg,
    GcpPreempted,
    GcpMaintenance,
    AzurePreempt,
    AlibabaTermination,
}

#[derive(Debug, Clone, Copy)]
struct Def {
    signal: Signal,
    label: &'static str,
    cloud: Cloud,
    /// The path whose answer carries the signal.
    path: &'static str,
    /// The watcher's period at the defaults; `None`: a hanging GET.
    period: Option<Duration>,
    /// Trials run at once (each with its own simulator and handler), so that the slow sources
    /// do not take minutes; 1 for the sources polled every `POLL_INTERVAL` (or second) and GCP.
    parallel: usize,
}

/// The signals, their periods from the binary's default `POLL_INTERVAL` (`poll`): the AWS
/// sources poll every 1, 5, 30 and 5 of them (src/cloud/aws.rs), Azure every second, Alibaba every
/// one.
fn defs(poll: Duration) -> [Def; 8] {
    [
        Def {
            signal: Signal::Spot,
            label: "AWS spot instance-action (terminate)",
            cloud: Cloud::Aws,
            path: "/latest/meta-data/spot/instance-action",
            period: Some(poll),
            parallel: 1,
        },
        Def {
            signal: Signal::Rebalance,
            label: "AWS rebalance recommendation",
            cloud: Cloud::Aws,
            path: "/latest/meta-data/events/recommendations/rebalance",
            period: Some(poll * 5),
            parallel: 10,
        },
        Def {
            signal: Signal::Scheduled,
            label: "AWS scheduled maintenance (system-reboot, NotBefore in 10 min < 15 min lead)",
            cloud: Cloud::Aws,
            path: "/latest/meta-data/events/maintenance/scheduled",
            period: Some(poll * 30),
            parallel: 15,
        },
        Def {
            signal: Signal::Asg,
            label: "AWS ASG target-lifecycle-state Terminated",
            cloud: Cloud::Aws,
            path: "/latest/meta-data/autoscaling/target-lifecycle-state",
            period: Some(poll * 5),
            parallel: 10,
        },
        Def {
            signal: Signal::GcpPreempted,
            label: "GCP preempted=TRUE",
            cloud: Cloud::Gcp,
            path: "/computeMetadata/v1/instance/preempted",
            period: None,
            parallel: 1,
        },
        Def {
            signal: Signal::GcpMaintenance,
            label: "GCP maintenance-event TERMINATE_ON_HOST_MAINTENANCE",
            cloud: Cloud::Gcp,
            path: "/computeMetadata/v1/instance/maintenance-event",
            period: None,
            parallel: 1,
        },
        Def {
            signal: Signal::AzurePreempt,
            label: "Azure Preempt (NotBefore in 30 s)",
            cloud: Cloud::Azure,
            path: "/metadata/scheduledevents",
            period: Some(Duration::from_secs(1)),
            parallel: 1,
        },
        Def {
            signal: Signal::AlibabaTermination,
            label: "Alibaba spot termination-time (in 5 min)",
            cloud: Cloud::Alibaba,
            path: "/latest/meta-data/instance/spot/termination-time",
            period: Some(poll),
            parallel: 1,
        },
    ]
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    /// The signal appeared this long after the watcher's first request.
    phase_ms: f64,
    detect_ms: f64,
    process_ms: f64,
    total_ms: f64,
}

/// Waiting for what the simulator serves without polling its logs: its observer sends a word on
/// every request served, and the waiting trial re-reads the logs only then. (Polling every
/// millisecond, ten trials at once took enough CPU from the simulators and the handlers to show
/// in their processing times.)
fn wait_served<T>(
    rx: &Receiver<()>,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let end = Instant::now() + timeout;
    loop {
        while rx.try_recv().is_ok() {}
        if let Some(v) = f() {
            return Ok(v);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        // Disconnected cannot happen while the simulator lives; a timeout re-checks.
        let _ = rx.recv_timeout(left);
    }
}

fn scenario(ctx: &Ctx, d: &Def, tx: Sender<()>) -> Scenario {
    let observer: Observer = Arc::new(move |_| {
        let _ = tx.send(());
    });
    let sc = Scenario::new(NODE)
        .latency(ctx.latency)
        .cloud(d.cloud)
        .observer(observer);
    match d.signal {
        // An instance in an Auto Scaling group reads `InService` until it is terminated.
        Signal::Asg => {
            sc.script(Script::new().at(Duration::ZERO, Step::lifecycle(Some("InService"))))
        }
        _ => sc,
    }
}

/// Makes the signal visible; returns the instant just before (for GCP, the instant the
/// simulator recorded for the change).
fn raise(sim: &Sim, d: &Def) -> Result<Instant, String> {
    let t0 = Instant::now();
    match d.signal {
        // Raised by `notice_at_random_moment` (the same as here).
        Signal::Spot => sim.set_notice(
            "terminate",
            whole_second(SystemTime::now() + Duration::from_secs(120)),
        ),
        Signal::Rebalance => sim.set_rebalance(Some(SystemTime::now())),
        Signal::Scheduled => {
            sim.add_scheduled_event(MaintenanceEvent::new("system-reboot", 600));
        }
        Signal::Asg => sim.set_lifecycle_state(Some("Terminated")),
        Signal::GcpPreempted | Signal::GcpMaintenance => {
            let (key, value) = if d.signal == Signal::GcpPreempted {
                ("instance/preempted", "TRUE")
            } else {
                (
                    "instance/maintenance-event",
                    "TERMINATE_ON_HOST_MAINTENANCE",
                )
            };
            sim.gcp_set(key, value);
            return sim
                .gcp_changes()
                .into_iter()
                .rev()
                .find(|c| c.key == key && c.value == value)
                .map(|c| c.at)
                .ok_or_else(|| format!("the simulator recorded no change of {key}"));
        }
        Signal::AzurePreempt => {
            sim.azure_add_event(AzureEvent::new("Preempt", Duration::from_secs(30)));
        }
        Signal::AlibabaTermination => {
            sim.alibaba_set_termination(Some(SystemTime::now() + Duration::from_secs(300)))
        }
    }
    Ok(t0)
}

fn trial(ctx: &Ctx, d: &Def) -> Result<Trial, String> {
    let (tx, rx) = mpsc::channel();
    let sim = Sim::start(scenario(ctx, d, tx)).map_err(|e| e.to_string())?;
    let mut h = Handler::start(&ctx.bin, &sim, &[])?;
    let log = |h: &Handler| format!("; handler log:\n{}", h.tail(10));
    let (first, appeared) = if d.signal == Signal::Spot {
        // The other scenarios' notice: uniform over one poll interval after the first poll.
        let n = notice_at_random_moment(&sim, Duration::from_secs(1), Duration::from_secs(120))
            .map_err(|e| e + &log(&h))?;
        (n.first_poll, n.at)
    } else {
        let first = wait_served(
            &rx,
            &format!("the first request to {}", d.path),
            Duration::from_secs(30),
            || {
                metalog::requests(&sim, d.cloud)
                    .into_iter()
                    .find(|r| bare(&r.path) == d.path)
                    .map(|r| r.at)
            },
        )
        .map_err(|e| e + &log(&h))?;
        let target = match d.period {
            // Uniform over one poll cycle (plus 20 ms, never a moment already past).
            Some(p) => first + Duration::from_millis(20) + p.mul_f64(uniform()),
            None => {
                wait_for(
                    "both hanging GETs held",
                    Duration::from_secs(30),
                    Duration::from_millis(2),
                    || (sim.gcp_waiters() >= 2).then_some(()),
                )
                .map_err(|e| e + &log(&h))?;
                Instant::now()
                    + Duration::from_millis(20)
                    + Duration::from_millis(200).mul_f64(uniform())
            }
        };
        if let Some(w) = target.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        (first, raise(&sim, d)?)
    };
    let cordon = wait_served(
        &rx,
        "the cordon PATCH",
        d.period.unwrap_or_default() + Duration::from_secs(20),
        || metalog::cordon_after(&sim, NODE, appeared),
    )
    .map_err(|e| e + &log(&h))?;
    // The answer that carried the signal: the last answer on that path up to the PATCH (a
    // polled path is asked once per period; GCE answers a held GET when the value changes).
    let carrier = metalog::requests(&sim, d.cloud)
        .into_iter()
        .filter(|r| bare(&r.path) == d.path && r.answered >= appeared && r.answered <= cordon)
        .max_by_key(|r| r.answered)
        .ok_or_else(|| format!("no answer on {} between the signal and the cordon", d.path))?;
    if carrier.status != 200 {
        return Err(format!(
            "the last answer on {} before the cordon was {}, not 200",
            d.path, carrier.status
        ));
    }
    h.stop();
    Ok(Trial {
        phase_ms: ms(first, appeared),
        detect_ms: ms(appeared, carrier.answered),
        process_ms: ms(carrier.answered, cordon),
        total_ms: ms(appeared, cordon),
    })
}

/// `trials` trials of `d`, `d.parallel` at a time; the failures as text.
fn trials(ctx: &Ctx, d: &Def) -> (Vec<Trial>, Vec<String>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let mut done = 0;
    while done < ctx.trials {
        let n = d.parallel.min(ctx.trials - done);
        let batch: Vec<Result<Trial, String>> = std::thread::scope(|s| {
            // Started evenly over one second: handlers started together would poll together
            // (every watcher's cycle starts with the handler), so the poll carrying one
            // trial's signal would find every other handler of the batch busy polling too.
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    s.spawn(move || {
                        std::thread::sleep(Duration::from_secs(1).mul_f64(i as f64 / n as f64));
                        trial(ctx, d)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
                .collect()
        });
        for r in batch {
            match r {
                Ok(t) => ok.push(t),
                Err(e) => failed.push(e),
            }
        }
        done += n;
        if done % 10 == 0 || done == ctx.trials {
            progress(
                "reaction",
                &format!(
                    "{}: {done}/{} trials{}",
                    d.label,
                    ctx.trials,
                    ok.last().map_or(String::new(), |t| format!(
                        " (last: detection {:.1} ms, processing {:.2} ms)",
                        t.detect_ms, t.process_ms
                    ))
                ),
            );
        }
    }
    (ok, failed)
}

fn three(s: &Option<Summary>, digits: usize) -> [String; 3] {
    match s {
        Some(s) => [
            fmt(s.median, digits),
            fmt(s.p90, digits),
            fmt(s.max, digits),
        ],
        None => Default::default(),
    }
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let defs = defs(crate::handler::default_poll_interval(&ctx.bin)?);
    let est: u64 = defs
        .iter()
        .map(|d| {
            let per = d.period.map_or(1.0, |p| p.as_secs_f64() + 1.0);
            (ctx.trials.div_ceil(d.parallel) as f64 * per) as u64
        })
        .sum();
    progress(
        "reaction",
        &format!(
            "{} signals × {} trials at the default settings (~{} s)",
            defs.len(),
            ctx.trials,
            est
        ),
    );
    let mut s = Section::new("reaction", "3. Reaction", ctx.reproduce("reaction"));
    s.para(format!(
        "Per trial: a fresh simulator on the signal's cloud (empty node, API latency {}) and the handler at its default settings (no `POLL_INTERVAL`, no source setting). \
         Once the signal's watcher has made its first request, the signal appears at a moment uniform over one poll period of that watcher (GCP: while both hanging GETs are held, \
         20–220 ms after). Times come from the simulator's logs, on this process's monotonic clock: **detection** = the signal visible → the answer that carried it went out \
         (the AWS fake answers at once and logs the arrival; the others log the answer); **processing** = that answer → the arrival of the cordon PATCH \
         (`spec.unschedulable: true`) at the simulated API server, before its simulated latency: the handler's parsing, decision, logging and its request; \
         **signal → cordon** = the sum. {} trials per signal; the sources polled every 5 and 30 polls run 10 and 15 trials at once (each against its own simulator and handler, started evenly over one second so that their polls do not coincide) so that they do \
         not take minutes; times in ms.",
        ctx.latency_text(),
        ctx.trials
    ));
    let mut t = Table::new(&[
        "Signal",
        "Watcher period (defaults)",
        ">Trials (at once)",
        ">Detection expected",
        ">Detection median",
        ">p90",
        ">max",
        ">Processing median",
        ">p90",
        ">max",
        ">Signal → cordon median",
        ">p90",
        ">max",
        ">Load average (1 min) at the end",
    ]);
    let mut raw = json!({});
    let mut all_processing = Vec::new();
    let mut per_signal: Vec<(Def, Option<Summary>)> = Vec::new();
    let mut gcp_total: Option<Summary> = None;
    let mut failures = Vec::new();
    for d in &defs {
        let (ok, failed) = trials(ctx, d);
        if ok.is_empty() {
            return Err(format!(
                "{}: every trial failed; first error: {}",
                d.label,
                failed.first().cloned().unwrap_or_default()
            ));
        }
        let det = Summary::of(&ok.iter().map(|t| t.detect_ms).collect::<Vec<_>>());
        let pro = Summary::of(&ok.iter().map(|t| t.process_ms).collect::<Vec<_>>());
        let tot = Summary::of(&ok.iter().map(|t| t.total_ms).collect::<Vec<_>>());
        all_processing.extend(ok.iter().map(|t| t.process_ms));
        if d.signal == Signal::GcpPreempted {
            gcp_total = tot;
        }
        per_signal.push((*d, tot));
        let mut row = vec![
            d.label.to_string(),
            match d.period {
                Some(p) => format!("poll every {} s", p.as_secs_f64()),
                None => "hanging GET".to_string(),
            },
            format!(
                "{}{} ({})",
                ok.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", failed.len())
                },
                d.parallel
            ),
            match d.period {
                Some(p) => format!("≈ {}", p.as_millis() / 2),
                None => "≈ 0".to_string(),
            },
        ];
        row.extend(three(&det, 1));
        row.extend(three(&pro, 2));
        row.extend(three(&tot, 1));
        let load = crate::machine::loadavg();
        row.push(load.split_whitespace().next().unwrap_or("?").to_string());
        t.row(row);
        raw[format!("{:?}", d.signal)] = json!({
            "label": d.label, "period_s": d.period.map(|p| p.as_secs_f64()), "parallel": d.parallel,
            "loadavg_end": load,
            "failed": failed,
            "trials": ok.iter().map(|t| json!({"phase_ms": t.phase_ms, "detect_ms": t.detect_ms,
                "process_ms": t.process_ms, "total_ms": t.total_ms})).collect::<Vec<_>>(),
        });
        failures.extend(failed.into_iter().map(|e| format!("{}: {e}", d.label)));
    }
    s.table(t);
    s.para("A polled source's detection is bounded by its period (expected: uniform over it, median about half of it). On GCP the hanging GET is answered when the value \
            changes, so the signal → cordon time is the handler's own reaction plus the loopback round trip. Processing is the handler's own reaction time: a few \
            milliseconds of CPU, so on a busy machine it is mostly the wait for a core (the last column gives the load average when each signal's trials ended).");
    if !failures.is_empty() {
        s.para("Failed trials (left out of the figures):");
        s.list(
            failures
                .iter()
                .map(|f| format!("`{}`", f.lines().next().unwrap_or_default()))
                .collect(),
        );
    }
    let p = Summary::of(&all_processing).ok_or("no trials")?;
    let worst = per_signal
        .iter()
        .filter_map(|(d, _)| {
            let v: Vec<f64> = raw[format!("{:?}", d.signal)]["trials"]
                .as_array()?
                .iter()
                .filter_map(|t| t["process_ms"].as_f64())
                .collect();
            Some((d.label, Summary::of(&v)?))
        })
        .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
    let mut targets = vec![TargetRow {
        target: "Processing delay ≤ 20 ms".into(),
        measured: format!(
            "median {:.2} ms, p90 {:.2} ms, max {:.2} ms ({} trials over {} signals, default settings){}",
            p.median,
            p.p90,
            p.max,
            p.n,
            defs.len(),
            worst.map_or(String::new(), |(l, w)| format!(
                "; slowest signal by median: {l}, {:.2} ms",
                w.median
            ))
        ),
        met: Some(p.median <= PROCESSING_TARGET_MS),
        reproduce: ctx.reproduce("reaction"),
    }];
    if let Some(g) = gcp_total {
        targets.push(TargetRow {
            target: "GCP preempted=TRUE → cordon PATCH ≤ 50 ms (hanging GET)".into(),
            measured: format!(
                "median {:.2} ms, p90 {:.2} ms, max {:.2} ms ({} trials)",
                g.median, g.p90, g.max, g.n
            ),
            met: Some(g.median <= GCP_TARGET_MS),
            reproduce: ctx.reproduce("reaction"),
        });
    }
    targets.push(TargetRow {
        target: "(info) Signal → cordon PATCH per signal, median, default settings".into(),
        measured: per_signal
            .iter()
            .filter_map(|(d, s)| {
                s.map(|s| {
                    format!(
                        "{} {} ms",
                        d.label,
                        fmt(s.median, if s.median < 100.0 { 1 } else { 0 })
                    )
                })
            })
            .collect::<Vec<_>>()
            .join("; "),
        met: None,
        reproduce: ctx.reproduce("reaction"),
    });
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
