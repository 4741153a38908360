//! As PID 1 of a fresh PID namespace (like a FROM-scratch container), SIGTERM ends the handler
//! within a second. The control case shows why that needs a handler: a process without one
//! ignores SIGTERM as PID 1.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use stnh_sim::Sim;
use support::*;

/// PID (in our namespace) of the only child of `parent`.
fn child_of(parent: u32) -> u32 {
    let mut found = None;
    eventually("unshare started its child", Duration::from_secs(10), || {
        let path = format!("/proc/{parent}/task/{parent}/children");
        found = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
        found.is_some()
    });
    found.unwrap()
}

/// The last field of `NSpid` in /proc/PID/status: the PID inside its own namespace.
fn pid_in_namespace(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    line.split_whitespace().last().unwrap().parse().unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

fn unshare(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--", program])
        .args(args);
    cmd
}

#[test]
fn sigterm_ends_the_handler_as_pid_1_within_a_second() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .status();
    assert!(
        probe.as_ref().is_ok_and(|s| s.success()),
        "this test needs `unshare --pid` (util-linux, and root or user namespaces): {probe:?}"
    );

    // Control: `sleep` installs no SIGTERM handler, so as PID 1 it survives SIGTERM.
    let mut control = unshare("sleep", &["30"]).spawn().unwrap();
    let sleeper = child_of(control.id());
    assert_eq!(pid_in_namespace(sleeper), 1);
    sigterm(sleeper);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(sleeper), "PID 1 without a handler ignores SIGTERM");
    let _ = control.kill();
    let _ = control.wait();

    let sim = Sim::start(mixed_node()).unwrap();
    let mut h = Handler::start_cmd(unshare(BIN, &[]), handler_env(&sim, &[]));
    h.wait_for("polling", Duration::from_secs(30));
    let pid = child_of(h.pid());
    assert_eq!(
        pid_in_namespace(pid),
        1,
        "the handler is PID 1 of its namespace"
    );
    let sent = Instant::now();
    sigterm(pid);
    let status = h
        .wait_exit(Duration::from_secs(10))
        .expect("the handler exited after SIGTERM");
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(
        h.dump().contains("received SIGTERM; exiting"),
        "{}",
        h.dump()
    );
}
