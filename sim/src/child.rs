//! The real handler binary as a child process, for the tests and the benchmark: a clean
//! environment (nothing inherited from this machine, so no real endpoint can leak in) plus the
//! simulator's endpoints, and its stderr (the logfmt log) collected line by line.

use std::io::{self, BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Sim;

/// A running child whose stderr lines are collected with the time they were read.
pub struct Child {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    out_reader: Option<JoinHandle<()>>,
}

impl Child {
    /// Starts `cmd` with `env` only. With `echo`, each line is also printed to this process's
    /// stderr behind that prefix.
    pub fn spawn(
        mut cmd: Command,
        env: Vec<(String, String)>,
        echo: Option<&str>,
    ) -> io::Result<Child> {
        cmd.env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let out_lines = Arc::new(Mutex::new(Vec::new()));
        let out_sink = out_lines.clone();
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out_sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let echo = echo.map(str::to_string);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(prefix) = &echo {
                    eprintln!("{prefix}{line}");
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), line));
            }
        });
        Ok(Child {
            child,
            lines,
            stdout: out_lines,
            reader: Some(reader),
            out_reader: Some(out_reader),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines so far, with the time they were read.
    pub fn timed_lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.timed_lines().into_iter().map(|(_, l)| l).collect()
    }

    /// What the child wrote to stdout so far, line by line (the handler's log is on stderr).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The exit status once the child has exited, waiting at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.join_reader();
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_reader();
    }

    fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(r) = self.out_reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Sim {
    /// [`Sim::handler_env`] with `extra` on top: a variable in `extra` replaces the simulator's,
    /// and an empty value removes it.
    pub fn handler_env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.handler_env();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            if !v.is_empty() {
                env.push((k.to_string(), v.to_string()));
            }
        }
        env
    }
}
