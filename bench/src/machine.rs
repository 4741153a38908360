//! The machine and source tree a run measured: CPU, memory, kernel, load, git revision, tools.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// Facts for the report header.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub mem_gib: f64,
    pub kernel: String,
    pub date: String,
    pub revision: String,
    pub load_start: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            cpu,
            cores,
            mem_gib: mem_kb / 1024.0 / 1024.0,
            kernel: format!("Linux {kernel}"),
            date: stnh_sim::util::rfc3339(SystemTime::now()),
            revision: git_revision(),
            load_start: loadavg(),
        }
    }

    /// One line: `Intel(R) Xeon(R) Processor, 2 cores, 23.4 GiB RAM, Linux 6.1.0`.
    pub fn line(&self) -> String {
        format!(
            "{}, {} cores, {:.1} GiB RAM, {}",
            self.cpu, self.cores, self.mem_gib, self.kernel
        )
    }
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The machine's CPU time by state, in clock ticks summed over all CPUs: the first line of
/// `/proc/stat` (user nice system idle iowait irq softirq steal …).
pub fn cpu_states() -> Option<Vec<u64>> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    Some(
        text.lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}

/// The share of all CPUs busy (anything but idle and iowait) over `window`, from `/proc/stat`:
/// a quietness check before measuring.
pub fn cpu_busy(window: std::time::Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let v = cpu_states()?;
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((v.iter().sum(), idle))
    }
    let (t0, i0) = sample()?;
    std::thread::sleep(window);
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    Some(1.0 - (i1 - i0) as f64 / total as f64)
}

/// `abc123def456 (clean)` or `abc123def456 (dirty: Cargo.toml, bench/, …)`.
fn git_revision() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let Some(rev) = out(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown (not a git checkout)".to_string();
    };
    let changed: Vec<String> = out(&["status", "--porcelain"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(3..).map(str::to_string))
        .collect();
    if changed.is_empty() {
        format!("{} (clean)", rev.trim())
    } else {
        let shown: Vec<&str> = changed.iter().take(8).map(String::as_str).collect();
        let more = if changed.len() > shown.len() {
            format!(", … {} more", changed.len() - shown.len())
        } else {
            String::new()
        };
        format!("{} (dirty: {}{more})", rev.trim(), shown.join(", "))
    }
}

/// The first line a command prints (e.g. a version), if it runs.
pub fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    let text = if o.stdout.is_empty() {
        o.stderr
    } else {
        o.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// `sha256sum` of a file, shortened to 16 hex digits.
pub fn sha256_short(path: &Path) -> Option<String> {
    let o = Command::new("sha256sum").arg(path).output().ok()?;
    let s = String::from_utf8_lossy(&o.stdout);
    s.split_whitespace()
        .next()
        .map(|h| h[..16.min(h.len())].to_string())
}
