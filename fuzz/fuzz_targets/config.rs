//! Configuration: every setting from the environment or a flag (durations, URLs, names,
//! choices, webhook URLs, header lists and templates, proxies, the AWS variables).
//!
//! Input: NUL-separated records; a record's first byte picks the variable (high bit: as a
//! flag on the command line), its second where a canary is planted in a secret's value.
//! Holds: no panic; a refusal is one line naming a known setting; a secret's value (a canary
//! planted in it) never appears in the error; defaults round-trip through the banner.
#![no_main]
use std::collections::HashMap;
use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::config::{parse, Mode, SETTINGS};

const AWS: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_AUTO_SCALING",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
];
/// Values that are secrets: never echoed.
const SECRETS: &[&str] = &[
    "SLACK_URL",
    "WEBHOOK_URL",
    "WEBHOOK_HEADERS",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];
/// Proxy URLs: only their credentials are secret (the host is shown in the banner).
const PROXIES: &[&str] = &["WEBHOOK_PROXY", "HTTPS_PROXY"];
/// Settings that name files the parser would read: left out (no file system in a fuzzer).
const FILES: &[&str] = &[
    "WEBHOOK_TEMPLATE_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];
const CANARY: &str = "Kq9Zcanary";

fuzz_target!(|data: &[u8]| {
    let names: Vec<(&str, &str)> = SETTINGS
        .iter()
        .filter(|s| !FILES.contains(&s.env))
        .map(|s| (s.env, s.flag))
        .chain(AWS.iter().map(|a| (*a, "")))
        .collect();
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("NODE_NAME".into(), "node-a".into());
    env.insert("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into());
    env.insert("KUBERNETES_SERVICE_PORT".into(), "443".into());
    let mut args: Vec<OsString> = Vec::new();
    let mut planted = false;
    for rec in data.split(|b| *b == 0) {
        let [pick, at, value @ ..] = rec else {
            continue;
        };
        let (name, flag) = names[usize::from(pick & 0x7f) % names.len()];
        let mut value = String::from_utf8_lossy(value).into_owned();
        while value.contains(CANARY) {
            value = value.replace(CANARY, "");
        }
        if name == "WEBHOOK_HEADERS" {
            // Header values are secrets, their names are not: plant after the first colon.
            if let Some(colon) = value.find(':') {
                value.insert_str(colon + 1, CANARY);
                planted = true;
            }
        } else if SECRETS.contains(&name) {
            let mut i = usize::from(*at) % (value.len() + 1);
            while !value.is_char_boundary(i) {
                i -= 1;
            }
            value.insert_str(i, CANARY);
            planted = true;
        } else if let (true, Some(at)) = (PROXIES.contains(&name), value.rfind('@')) {
            // In the password of `user:password@host`.
            value.insert_str(at, CANARY);
            planted = true;
        }
        if pick & 0x80 != 0 && !flag.is_empty() {
            args.push(flag.into());
            args.push(value.into());
        } else {
            env.insert(name.to_string(), value);
        }
    }
    let lookup = move |k: &str| env.get(k).cloned();
    match parse(args, &lookup) {
        Ok(Mode::Run(c)) => {
            let _ = c.banner_fields();
            let _ = c.poll_url();
            assert!(!c.poll_interval.is_zero());
            // The banner shows no secret.
            if planted {
                let banner = format!("{:?}", c.banner_fields());
                assert!(!banner.contains(CANARY), "a secret in the banner: {banner}");
                let debug = format!("{c:?}");
                if let Some(i) = debug.find(CANARY) {
                    let from = debug[..i]
                        .char_indices()
                        .rev()
                        .nth(60)
                        .map_or(0, |(j, _)| j);
                    panic!(
                        "a secret in Debug: …{}…",
                        &debug[from..(i + 20).min(debug.len())]
                    );
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            let line = e.to_string();
            assert!(
                !line.chars().any(char::is_control),
                "not one line: {line:?}"
            );
            assert!(!line.contains(CANARY), "a secret in the error: {line}");
            let known = e.setting == "command line"
                || names
                    .iter()
                    .any(|(n, f)| *n == e.setting || *f == e.setting)
                || FILES.contains(&e.setting.as_str());
            assert!(known, "names no setting: {line}");
        }
    }
});
