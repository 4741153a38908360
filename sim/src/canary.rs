//! Canary secrets: recognizable values that the test helpers give every secret setting (the
//! service-account token, Slack and webhook URLs, webhook header values, AWS keys and session
//! token) unless a test sets its own, and the audit that looks for them where no secret may go.
//!
//! [`crate::Sim`] audits what it recorded when it is dropped (Events, Nodes, Slack and webhook
//! bodies, API request bodies); the tests' `Handler` helper audits the handler's log and a final
//! metrics scrape. A hit panics, naming the canary and where it was found. Canaries legitimately
//! travel where they are used: the token in the `Authorization` header the API server receives,
//! the Slack and webhook URLs in the requests their sinks receive, header values as headers.
//! Those places are not searched.
//!
//! With `STNH_CANARY_AUDIT_DIR` set, each audit also leaves a marker file there (one per test),
//! so that `ls | wc -l` counts the tests that ran with the audit.

/// Part of every service-account token the simulator issues (the JWT's signature segment
/// starts with it).
pub const TOKEN: &str = "stnhCanaryToken";
/// The Slack webhook URL's secret (the simulator's Slack path ends with it).
pub const SLACK: &str = "XXXXSECRETXXXX";
/// The default webhook URL's secret (its query carries it).
pub const WEBHOOK_URL: &str = "stnhCanaryWebhookUrl";
/// The default webhook header value.
pub const HEADER_VALUE: &str = "stnhCanaryHeaderValue";
/// The default AWS access key id (16 to 128 letters and digits).
pub const AWS_ACCESS_KEY_ID: &str = "AKIASTNHCANARYKEYID0";
/// The default AWS secret access key.
pub const AWS_SECRET_ACCESS_KEY: &str = "stnhCanaryAwsSecretAccessKey0000000000000";
/// The default AWS session token.
pub const AWS_SESSION_TOKEN: &str = "stnhCanaryAwsSessionToken0000000000000000";

/// Every canary the audit looks for, with the webhook sinks' URL credentials.
pub fn all() -> Vec<&'static str> {
    use crate::webhook::{CHAT_TOKEN, DISCORD_TOKEN, GENERIC_SECRET, TEAMS_SIG};
    vec![
        TOKEN,
        SLACK,
        WEBHOOK_URL,
        HEADER_VALUE,
        AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN,
        GENERIC_SECRET,
        TEAMS_SIG,
        CHAT_TOKEN,
        DISCORD_TOKEN,
    ]
}

/// The hits of `canaries` in `places` (`(where, text)`), as `"<canary>" in <where>` lines.
pub fn hits<S: AsRef<str>>(canaries: &[S], places: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (place, text) in places {
        for c in canaries {
            let c = c.as_ref();
            if !c.is_empty() && text.contains(c) {
                let at = text.find(c).unwrap_or(0);
                let from = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                let to = (at + c.len() + 80).min(text.len());
                let to = (to..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                out.push(format!(
                    "canary {c:?} found in {place}: …{}…",
                    &text[from..to]
                ));
            }
        }
    }
    out
}

/// Leaves a marker for this test (the thread's name) in `STNH_CANARY_AUDIT_DIR`, if set.
pub fn mark(kind: &str) {
    let Some(dir) = std::env::var_os("STNH_CANARY_AUDIT_DIR") else {
        return;
    };
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let exe = exe
        .rsplit_once('-')
        .map_or(exe.as_str(), |(a, _)| a)
        .to_string();
    let test = std::thread::current()
        .name()
        .unwrap_or("main")
        .replace("::", "__");
    let dir = std::path::Path::new(&dir).join(kind);
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{exe}__{test}")), b"");
}
