//! The scenarios (one module each) and what they share: the run settings, the simulator's
//! `bench` pod mix, waiting for the handler to poll, and a notice at a random moment.

pub mod drain;
pub mod idle;
pub mod kindness;
pub mod kubectl;
pub mod mass;
pub mod memlimit;
pub mod metalog;
pub mod pdb;
pub mod reaction;
pub mod scale;
pub mod size;
pub mod soak;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stnh_sim::{ImdsRequest, Scenario, Sim};

use crate::handler::wait_for;
use crate::report::{Section, TargetRow};

/// The node every scenario drains.
pub const NODE: &str = "ip-10-0-1-23.ec2.internal";
/// The path the handler polls.
pub const INSTANCE_ACTION: &str = "/latest/meta-data/spot/instance-action";
/// DaemonSet pods in the `bench` mix: they stay on the node.
pub const DAEMONSET_PODS: usize = 3;

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The production handler binary.
    pub bin: PathBuf,
    /// The arm64 binary, reported when it exists.
    pub arm64_bin: PathBuf,
    /// The image reference (`…:<KUBE_VERSION>-<REVISION>`), reported when podman has it.
    pub image: String,
    pub kubectl: String,
    /// Per-request latency of the simulated API server.
    pub latency: Duration,
    /// Reaction trials per poll interval.
    pub trials: usize,
    /// Repetitions of the 110-pod drain and of kubectl drain.
    pub reps: usize,
    /// Repetitions of the PDB and 1,000-pod scenarios.
    pub long_reps: usize,
    /// Scratch files (kubeconfigs, kubectl's HOME, perf output).
    pub work_dir: PathBuf,
    /// The flags that differ from the defaults, appended to every reproduce command.
    pub extra_flags: String,
}

impl Ctx {
    /// `make bench BENCH_ONLY=x` (→ `stnh-bench --only x …`).
    pub fn reproduce(&self, only: &str) -> String {
        format!(
            "`make bench BENCH_ONLY={only}{}` (→ `stnh-bench --only {only}{}`)",
            if self.extra_flags.is_empty() {
                String::new()
            } else {
                format!(" BENCH_FLAGS='{}'", self.extra_flags.trim())
            },
            self.extra_flags
        )
    }

    /// The latency as text (`2 ms`).
    pub fn latency_text(&self) -> String {
        format!("{} ms", self.latency.as_secs_f64() * 1000.0)
    }

    /// A fresh scratch directory under `work_dir`.
    pub fn scratch(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.work_dir.join(format!(
            "{name}-{}",
            stnh_sim::util::rand_string(6, b"abcdefghijklmnopqrstuvwxyz0123456789")
        ));
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d)
    }
}

/// What a scenario hands back: its report section, its rows of the targets table, raw data.
pub struct Outcome {
    pub section: Section,
    pub targets: Vec<TargetRow>,
    pub raw: serde_json::Value,
}

/// The simulator's `bench` preset: `n` ReplicaSet pods (10 per ReplicaSet) with grace
/// 10/30/60 s and app shutdown 0.2–3.0 s, no PDB, plus 3 DaemonSet pods.
pub fn bench_scenario(n: usize, latency: Duration) -> Scenario {
    stnh_sim::presets::bench(Scenario::new(NODE).latency(latency), n)
}

/// The handler's polls of `spot/instance-action`, in order.
pub fn polls(sim: &Sim) -> Vec<ImdsRequest> {
    sim.imds_requests()
        .into_iter()
        .filter(|r| r.path == INSTANCE_ACTION)
        .collect()
}

/// Waits until the handler has polled `n` times; returns the arrival time of poll `n`.
pub fn wait_polls(sim: &Sim, n: usize, timeout: Duration) -> Result<Instant, String> {
    wait_for(
        &format!("poll #{n} of {INSTANCE_ACTION}"),
        timeout,
        Duration::from_millis(2),
        || polls(sim).get(n - 1).map(|r| r.at),
    )
}

/// A uniform random number in [0, 1).
pub fn uniform() -> f64 {
    (stnh_sim::util::rand_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `t` rounded up to a whole second: the notice's `time` has second resolution, so a deadline on
/// a whole second is exactly the one the handler reads.
pub fn whole_second(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = if d.subsec_nanos() > 0 {
        d.as_secs() + 1
    } else {
        d.as_secs()
    };
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A notice made visible at a random moment of the poll cycle.
#[derive(Debug, Clone, Copy)]
pub struct NoticeAt {
    /// The arrival of the handler's first poll.
    pub first_poll: Instant,
    /// When it became visible.
    pub at: Instant,
    /// The deadline as an `Instant` of this process.
    pub deadline_at: Instant,
}

/// Once the handler is polling, waits a random time, uniform over one poll interval (plus 20 ms,
/// so that we never aim at a moment already past), and makes a `terminate` notice visible with
/// its deadline `deadline_in` later.
pub fn notice_at_random_moment(
    sim: &Sim,
    interval: Duration,
    deadline_in: Duration,
) -> Result<NoticeAt, String> {
    let first = wait_polls(sim, 1, Duration::from_secs(20))?;
    let target = first + Duration::from_millis(20) + interval.mul_f64(uniform());
    if let Some(d) = target.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
    let deadline = whole_second(SystemTime::now() + deadline_in);
    let at = Instant::now();
    sim.set_notice("terminate", deadline);
    let deadline_at = at
        + deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
    Ok(NoticeAt {
        first_poll: first,
        at,
        deadline_at,
    })
}

/// The arrival of the poll that saw the notice (the first 200 after `notice`).
pub fn detection(sim: &Sim, notice: Instant) -> Option<Instant> {
    polls(sim)
        .into_iter()
        .find(|r| r.status == 200 && r.at >= notice)
        .map(|r| r.at)
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub fn ms(a: Instant, b: Instant) -> f64 {
    match b.checked_duration_since(a) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(a.duration_since(b).as_secs_f64() * 1000.0),
    }
}

/// Progress on stderr (stdout gets the tables).
pub fn progress(scenario: &str, text: &str) {
    eprintln!("[stnh-bench] {scenario}: {text}");
}

/// Draws the drain of `sim` (the notice `n`, the handler's `DRAIN_RESERVE`) as the simulator's
/// SVG timeline into `<work_dir>/timeline-<name>.svg`; the path, or `None` if it could not be
/// written.
pub fn draw_timeline(
    ctx: &Ctx,
    sim: &Sim,
    n: &NoticeAt,
    reserve: Duration,
    name: &str,
) -> Option<PathBuf> {
    let drawing = sim.timeline(stnh_sim::timeline::Window {
        notice: n.at,
        deadline: n.deadline_at,
        reserve,
    });
    let path = ctx.work_dir.join(format!("timeline-{name}.svg"));
    std::fs::write(&path, stnh_sim::timeline::render(&drawing)).ok()?;
    Some(path)
}
