//! The real handler binary as a child process, as `tests/support` runs it: a clean environment
//! (nothing inherited from this machine, so no real endpoint can leak in) plus the simulator's
//! `handler_env()` and the scenario's settings; stderr (the logfmt log) collected line by line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stnh_sim::Sim;

/// A running handler.
pub struct Handler {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
}

impl Handler {
    /// Starts `bin` with only `sim.handler_env()` plus `extra` (an empty value unsets a variable).
    pub fn start(bin: &Path, sim: &Sim, extra: &[(&str, &str)]) -> Result<Handler, String> {
        let mut env = sim.handler_env();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            if !v.is_empty() {
                env.push((k.to_string(), v.to_string()));
            }
        }
        let mut child = Command::new(bin)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), line));
            }
        });
        Ok(Handler {
            child,
            lines,
            reader: Some(reader),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines so far, with the time this process read them.
    pub fn logs(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Log lines at warn or error level (a benchmark run should have none unless it expects them).
    pub fn problems(&self) -> Vec<String> {
        self.logs()
            .into_iter()
            .map(|(_, l)| l)
            .filter(|l| l.contains("level=warn") || l.contains("level=error"))
            .collect()
    }

    /// Whether the process has exited (it never should during a run).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The last lines of the log, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let logs = self.logs();
        let start = logs.len().saturating_sub(n);
        logs[start..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.stop();
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
