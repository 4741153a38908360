//! The binary's command line: help, version, and configuration errors (exit 2, one line).
#![allow(clippy::type_complexity)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_spot-termination-notice-handler");

/// Runs the binary to its exit, at most 10 s (a configuration that is accepted by mistake
/// starts the daemon, which never exits: killed, and reported as code -1).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    );
    let end = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (code, readers.0.join().unwrap(), readers.1.join().unwrap())
}

#[test]
fn help_lists_every_setting_of_the_readme() {
    let (code, help, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    let readme = include_str!("../README.md");
    let start = readme.find("<!-- settings:start -->").unwrap();
    let end = readme.find("<!-- settings:end -->").unwrap();
    let rows: Vec<&str> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .collect();
    assert!(rows.len() >= 10, "the README lists the settings");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let (flag, env, default) = (cells[1], cells[2], cells[3]);
        assert!(
            help.contains(&format!("{flag}  (env {env})")),
            "--help lacks {flag} / {env}:\n{help}"
        );
        if default != "(unset)" {
            assert!(
                help.contains(&format!("(env {env}) [default: {default}]")),
                "--help lacks the default of {env}: {default}"
            );
        }
    }
    // And nothing in --help that the README lacks.
    let flags_in_help = help
        .lines()
        .filter(|l| l.trim_start().starts_with("--"))
        .count();
    let flags_in_readme = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .count();
    assert_eq!(flags_in_help, flags_in_readme);
}

#[test]
fn version_names_the_kube_version() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("spot-termination-notice-handler ") && out.contains("(KUBE_VERSION "),
        "{out}"
    );
}

#[test]
fn invalid_configuration_exits_2_with_one_line_naming_the_setting() {
    let base = [
        ("NODE_NAME", "node-a"),
        ("KUBE_API_URL", "http://127.0.0.1:9"),
        ("SERVICE_ACCOUNT_DIR", "/nonexistent"),
    ];
    let cases: &[(&[&str], &[(&str, &str)], &str)] = &[
        (
            &[],
            &[("POLL_INTERVAL", "soon")],
            "invalid POLL_INTERVAL: expected a duration",
        ),
        (
            &["--drain-reserve", "-3s"],
            &[],
            "invalid --drain-reserve: expected a duration",
        ),
        (
            &[],
            &[("FORCE_DELETE", "perhaps")],
            "invalid FORCE_DELETE: expected true or false",
        ),
        (
            &[],
            &[("POD_SELECTOR", "app in web,db")],
            "invalid POD_SELECTOR: expected a label selector such as `app=web,tier!=db,env in (a,b),!canary`, got … app in web,db … expected '(' values ')' after",
        ),
        (
            &["--pod-selector", "a b"],
            &[],
            "invalid --pod-selector: expected a label selector",
        ),
        (
            &[],
            &[("EVICTION_ORDER", "critical-first")],
            "invalid EVICTION_ORDER: expected one of tiers, parallel",
        ),
        (
            &[],
            &[("CRITICAL_PRIORITY", "1e9")],
            "invalid CRITICAL_PRIORITY: expected a 32-bit integer priority",
        ),
        (
            &[],
            &[("SURGE_BLOCKED", "sometimes")],
            "invalid SURGE_BLOCKED: expected true, false or budgeted",
        ),
        (&["--unknown-flag", "x"], &[], "invalid command line"),
        (
            &[],
            &[("KUBE_API_URL", "ftp://x")],
            "invalid KUBE_API_URL: expected a URL starting with http:// or https://",
        ),
        (
            &[],
            &[("KUBE_API_URL", "https://127.0.0.1:9")],
            "invalid SERVICE_ACCOUNT_DIR: expected a readable ca.crt",
        ),
        // Every URL under its own name, before any use of it.
        (
            &[],
            &[("KUBE_API_URL", "https://127.0.0.1:99999")],
            "invalid KUBE_API_URL: expected a URL starting with http:// or https:// and naming a host, got … (its port is not a number from 1 to 65535)",
        ),
        (
            &[],
            &[("KUBE_API_URL", "https://u:p@127.0.0.1:6443")],
            "invalid KUBE_API_URL: expected a URL starting with http:// or https:// and naming a host, got … (it has user info (user@host), which is not allowed)",
        ),
        (
            &[],
            &[
                ("IMDS_URL", "http://127.0.0.1:0"),
                ("NOTICE_URL", "http://127.0.0.1:9/latest/meta-data/spot/termination-time"),
            ],
            "invalid IMDS_URL: expected a URL starting with http:// and naming a host, got … (its port is not a number from 1 to 65535)",
        ),
        (
            &[],
            &[("NOTICE_URL", "http://127.0.0.1:9?x=1")],
            "invalid NOTICE_URL: expected a URL starting with http:// and naming a host, got … (it has a '?' or '#' before the path)",
        ),
        // The token never goes over plain http to anything but loopback (kubectl proxy).
        (
            &[],
            &[("KUBE_API_URL", "http://10.1.2.3:8001")],
            "invalid KUBE_API_URL: expected https://, or http:// only to a loopback address",
        ),
        (
            &[],
            &[("METRICS_ADDR", "localhost:17864")],
            "invalid METRICS_ADDR: expected an address to listen on: :PORT, IP:PORT or [IPv6]:PORT, got \\\"localhost:17864\\\"",
        ),
        (
            &["--metrics-addr", ":99999"],
            &[],
            "invalid --metrics-addr: expected an address to listen on",
        ),
        (
            &[],
            &[("HEALTH_LOOP_TIMEOUT", "0")],
            "invalid HEALTH_LOOP_TIMEOUT: expected a duration such as 5, 5s, 200ms or 2m, from 1s to 10m",
        ),
        (
            &[],
            &[("HEALTH_METADATA_TIMEOUT", "2d")],
            "invalid HEALTH_METADATA_TIMEOUT: expected a duration",
        ),
    ];
    for (args, extra, want) in cases {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        for (k, v) in extra.iter() {
            env.retain(|(ek, _)| ek != k);
            env.push((k, v));
        }
        let (code, _, err) = run(args, &env);
        assert_eq!(code, 2, "{want}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("level=error")).collect();
        assert_eq!(errors.len(), 1, "exactly one error line: {err}");
        // " … " separates fragments that must appear in this order (the value between them is
        // quoted, and the log escapes its quotes).
        let mut rest = errors[0];
        for part in want.split(" … ") {
            let at = rest.find(part);
            assert!(at.is_some(), "{part:?} of {want:?} not in {err}");
            rest = &rest[at.unwrap() + part.len()..];
        }
    }
}

#[test]
fn secrets_never_reach_the_error_line() {
    for slack in [
        "hooks.slack.com/services/T0/B0/VerySecretPart",
        "https://hooks.slack.com:99999/services/T0/B0/VerySecretPart",
        "https://VerySecretPart@hooks.slack.com/services/T0/B0/x",
        "https://hooks.slack.com/services/T0/B0/VerySecretPart#x",
    ] {
        let (code, _, err) = run(
            &[],
            &[
                ("NODE_NAME", "n"),
                ("KUBE_API_URL", "http://127.0.0.1:9"),
                ("SLACK_URL", slack),
            ],
        );
        assert_eq!(code, 2, "{slack}");
        assert!(
            err.contains("invalid SLACK_URL") && !err.contains("VerySecretPart"),
            "{err}"
        );
    }
}

#[test]
fn a_metrics_address_in_use_exits_2_naming_it_before_any_api_call() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(
        &[],
        &[
            ("NODE_NAME", "node-a"),
            // Nothing listens there: an API call would fail differently (and later).
            ("KUBE_API_URL", "http://127.0.0.1:9"),
            ("METRICS_ADDR", &addr),
        ],
    );
    assert_eq!(code, 2, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("level=error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains(&format!(
            "invalid METRICS_ADDR: expected an address this process can listen on, got {addr} ("
        )),
        "{err}"
    );
    assert!(!err.contains("find") && !err.contains("node-a\" "), "{err}");
}
