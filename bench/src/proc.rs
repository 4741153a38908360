//! What the kernel says about a running process: `/proc/PID/{status,stat,fd,smaps_rollup}`, a
//! background sampler that keeps the peaks, and `perf stat` attached to the process for a window.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The fields of `/proc/PID/status` we report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Status {
    /// Resident set size now (KiB).
    pub rss_kb: u64,
    /// Peak resident set size since start (KiB), kept by the kernel.
    pub hwm_kb: u64,
    /// Threads now.
    pub threads: u64,
}

/// `/proc/PID/status`, or `None` once the process is gone.
pub fn status(pid: u32) -> Option<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = || {
            value
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0)
        };
        match key {
            "VmRSS" => s.rss_kb = number(),
            "VmHWM" => s.hwm_kb = number(),
            "Threads" => s.threads = number(),
            _ => {}
        }
    }
    Some(s)
}

/// `utime + stime` of the whole process in clock ticks (`/proc/PID/stat` fields 14 and 15). The
/// kernel folds the times of exited threads into these, so short-lived threads are counted.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: the fields start after its ')'.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime (14) is index 11, stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK` (100 on every Linux we know of).
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100)
}

/// Open file descriptors (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The resident memory split of `/proc/PID/smaps_rollup`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rollup {
    /// Resident (KiB).
    pub rss_kb: u64,
    /// Resident anonymous memory: heap, thread stacks, statics written to (KiB).
    pub anon_kb: u64,
}

impl Rollup {
    /// Resident file-backed pages: the executable's own pages (KiB).
    pub fn file_kb(&self) -> u64 {
        self.rss_kb.saturating_sub(self.anon_kb)
    }
}

/// `/proc/PID/smaps_rollup`.
pub fn smaps_rollup(pid: u32) -> Option<Rollup> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let mut r = Rollup::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        match key {
            "Rss:" => r.rss_kb = value,
            "Anonymous:" => r.anon_kb = value,
            _ => {}
        }
    }
    Some(r)
}

/// The largest values a [`Sampler`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks {
    /// How many samples were taken.
    pub samples: u64,
    /// Largest VmRSS (KiB).
    pub rss_kb: u64,
    /// Largest VmHWM (KiB): the kernel's own peak, so it misses nothing between samples.
    pub hwm_kb: u64,
    /// Most threads seen at once.
    pub threads: u64,
    /// Most open file descriptors seen at once.
    pub fds: usize,
    /// The last sample.
    pub last: Status,
}

/// Samples `/proc/PID/status` (and optionally `/proc/PID/fd`) every `period` on a thread of
/// its own and keeps the peaks. Peaks of short-lived things (a thread that lives 1 ms) are only
/// caught when a sample happens to fall inside them.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<Peaks>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32, period: Duration, with_fds: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let (stop2, peaks2) = (stop.clone(), peaks.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Some(s) = status(pid) else { break };
                let fds = if with_fds {
                    fd_count(pid).unwrap_or(0)
                } else {
                    0
                };
                {
                    let mut p = peaks2.lock().unwrap_or_else(|e| e.into_inner());
                    p.samples += 1;
                    p.rss_kb = p.rss_kb.max(s.rss_kb);
                    p.hwm_kb = p.hwm_kb.max(s.hwm_kb);
                    p.threads = p.threads.max(s.threads);
                    p.fds = p.fds.max(fds);
                    p.last = s;
                }
                std::thread::sleep(period);
            }
        });
        Sampler {
            stop,
            peaks,
            thread: Some(thread),
        }
    }

    /// The peaks so far.
    pub fn peaks(&self) -> Peaks {
        *self.peaks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops sampling and returns the peaks.
    pub fn stop(mut self) -> Peaks {
        self.halt();
        self.peaks()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Software events and tracepoints counted by [`PerfStat`]; `task:task_newtask` counts every
/// thread the process creates (minreq's per-request timeout thread included).
const PERF_EVENTS_FULL: &str = "task-clock,task:task_newtask,page-faults,context-switches";
const PERF_EVENTS_BASIC: &str = "task-clock";

/// Counts from `perf stat`.
#[derive(Debug, Clone, Default)]
pub struct PerfCounts {
    /// CPU time of every thread, exited ones included (ms, µs resolution).
    pub task_clock_ms: f64,
    /// Threads created (`task:task_newtask`).
    pub new_tasks: Option<u64>,
    /// Page faults.
    pub page_faults: Option<u64>,
    /// Context switches.
    pub context_switches: Option<u64>,
    /// With an interval: `(seconds, task-clock ms)` of each interval printed, the last one
    /// possibly partial (perf prints what it counted when stopped).
    pub intervals: Vec<(f64, f64)>,
}

/// `perf stat -p PID` running in the background until [`PerfStat::stop`].
pub struct PerfStat {
    child: Child,
    out: PathBuf,
}

impl PerfStat {
    /// The event list `perf stat` accepts on this machine, if `perf` works at all.
    pub fn events() -> Option<&'static str> {
        [PERF_EVENTS_FULL, PERF_EVENTS_BASIC]
            .into_iter()
            .find(|ev| {
                Command::new("perf")
                    .args(["stat", "-x,", "-e", ev, "--", "true"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
    }

    /// Attaches to `pid` (with inheritance, so threads created later are counted too); with
    /// `interval`, perf also prints the counts of every such interval (`-I`).
    pub fn attach(
        pid: u32,
        events: &str,
        interval: Option<Duration>,
        out: &Path,
    ) -> Option<PerfStat> {
        let mut cmd = Command::new("perf");
        cmd.args(["stat", "-x,", "-e", events, "-p", &pid.to_string()]);
        if let Some(i) = interval {
            cmd.args(["-I", &i.as_millis().max(10).to_string()]);
        }
        let child = cmd
            .arg("-o")
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(PerfStat {
            child,
            out: out.to_path_buf(),
        })
    }

    /// Stops counting (SIGINT, as Ctrl-C would) and parses the counts.
    pub fn stop(mut self) -> Option<PerfCounts> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).ok()?;
        parse_perf_csv(&text)
    }
}

/// Parses `perf stat -x,` output: `value,unit,event,...` per line, or with `-I`
/// `timestamp,value,unit,event,...` per event and interval (summed up).
fn parse_perf_csv(text: &str) -> Option<PerfCounts> {
    let mut c = PerfCounts::default();
    let mut clock = None;
    let mut last_ts = 0.0;
    let add = |acc: &mut Option<u64>, v: &str| {
        if let Ok(n) = v.parse::<u64>() {
            *acc = Some(acc.unwrap_or(0) + n);
        }
    };
    for line in text.lines() {
        let mut f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() < 3 || f[0].starts_with('#') {
            continue;
        }
        // Interval mode: a timestamp first, then the usual fields.
        let ts = (f.len() >= 4
            && f[0].contains('.')
            && f[3].contains(|ch: char| ch.is_ascii_alphabetic()))
        .then(|| f[0].parse::<f64>().ok())
        .flatten();
        if ts.is_some() {
            f.remove(0);
        }
        let value = f[0];
        match f[2] {
            "task-clock" => {
                if let Ok(v) = value.parse::<f64>() {
                    clock = Some(clock.unwrap_or(0.0) + v);
                    if let Some(t) = ts {
                        c.intervals.push((t - last_ts, v));
                        last_ts = t;
                    }
                }
            }
            "task:task_newtask" => add(&mut c.new_tasks, value),
            "page-faults" => add(&mut c.page_faults, value),
            "context-switches" => add(&mut c.context_switches, value),
            _ => {}
        }
    }
    c.task_clock_ms = clock?;
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let pid = std::process::id();
        let s = status(pid).unwrap();
        assert!(s.rss_kb > 0 && s.hwm_kb >= s.rss_kb && s.threads >= 1);
        assert!(cpu_ticks(pid).is_some());
        assert!(fd_count(pid).unwrap() >= 3);
        let r = smaps_rollup(pid).unwrap();
        assert!(r.rss_kb >= r.anon_kb);
    }

    #[test]
    fn parses_perf_csv() {
        let text = "# started on x\n\n12.34,msec,task-clock,1,100.00,0.001,CPUs utilized\n100,,task:task_newtask,1,100.00,,\n<not counted>,,page-faults,0,100.00,,\n7,,context-switches,1,100.00,,\n";
        let c = parse_perf_csv(text).unwrap();
        assert_eq!(c.task_clock_ms, 12.34);
        assert_eq!(c.new_tasks, Some(100));
        assert_eq!(c.page_faults, None);
        assert_eq!(c.context_switches, Some(7));
        assert!(parse_perf_csv("garbage").is_none());
        let text = "# started\n     1.001,0.50,msec,task-clock,1,100.00,,\n     1.001,5,,task:task_newtask,1,100.00,,\n     2.002,0.70,msec,task-clock,1,100.00,,\n     2.002,5,,task:task_newtask,1,100.00,,\n     2.502,0.30,msec,task-clock,1,100.00,,\n";
        let c = parse_perf_csv(text).unwrap();
        assert!((c.task_clock_ms - 1.5).abs() < 1e-9);
        assert_eq!(c.new_tasks, Some(10));
        assert_eq!(c.intervals.len(), 3);
        assert!((c.intervals[2].0 - 0.5).abs() < 1e-9 && c.intervals[2].1 == 0.30);
    }
}
