//! The real handler binary as a child process, as `tests/support` runs it: a clean environment
//! (nothing inherited from this machine, so no real endpoint can leak in) plus the simulator's
//! `handler_env()` and the scenario's settings; stderr (the logfmt log) collected line by line.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use stnh_sim::child::Child;
use stnh_sim::Sim;

/// The binary's default `POLL_INTERVAL`, from its `--help` (`(env POLL_INTERVAL) [default: 900ms]`):
/// the figures describe the binary measured, not what this file assumes.
pub fn default_poll_interval(bin: &Path) -> Result<Duration, String> {
    let out = Command::new(bin)
        .arg("--help")
        .env_clear()
        .output()
        .map_err(|e| format!("{} --help: {e}", bin.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    help.lines()
        .find(|l| l.contains("(env POLL_INTERVAL)"))
        .and_then(|l| l.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .and_then(stnh_sim::util::parse_duration)
        .ok_or_else(|| {
            format!(
                "{} --help: no POLL_INTERVAL default like `[default: 900ms]`",
                bin.display()
            )
        })
}

/// A duration for a report: milliseconds below 2 s unless whole (`900 ms`), else seconds (`1 s`, `4.5 s`).
pub fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 || d >= Duration::from_secs(2) {
        format!("{} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A running handler.
pub struct Handler {
    proc: Child,
}

impl Handler {
    /// Starts `bin` with only `sim.handler_env()` plus `extra` (an empty value unsets a variable).
    pub fn start(bin: &Path, sim: &Sim, extra: &[(&str, &str)]) -> Result<Handler, String> {
        let proc = Child::spawn(Command::new(bin), sim.handler_env_with(extra), None)
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Handler { proc })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Log lines at warn or error level (a benchmark run should have none unless it expects them).
    pub fn problems(&self) -> Vec<String> {
        self.proc
            .lines()
            .into_iter()
            .filter(|l| l.contains("level=warn") || l.contains("level=error"))
            .collect()
    }

    /// Whether the process has exited (it never should during a run).
    pub fn exited(&mut self) -> bool {
        self.proc.wait_exit(Duration::ZERO).is_some()
    }

    /// The last lines of the log, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.proc.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        self.proc.kill();
    }
}

/// Calls `f` every `step` until it returns `Some`, or fails with `what` after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(step);
    }
}
