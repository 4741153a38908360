//! The binary's command line: help, version, and configuration errors (exit 2, one line).
#![allow(clippy::type_complexity)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_spot-termination-notice-handler");

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
        assert!(errors[0].contains(want), "{want:?} not in {err}");
    }
}

#[test]
fn secrets_never_reach_the_error_line() {
    let (code, _, err) = run(
        &[],
        &[
            ("NODE_NAME", "n"),
            ("KUBE_API_URL", "http://127.0.0.1:9"),
            ("SLACK_URL", "hooks.slack.com/services/T0/B0/VerySecretPart"),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid SLACK_URL") && !err.contains("VerySecretPart"),
        "{err}"
    );
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
