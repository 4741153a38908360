//! A dependency-free logger: one line per event on stderr, logfmt or JSON.
//!
//! `ts=2026-11-26T08:40:51.123Z level=info msg="cordoned node" node=ip-10-0-1-23 budget_s=87`
//! or, with `LOG_FORMAT=json`, one object per line:
//! `{"ts":"2026-11-26T08:40:51.123Z","level":"info","msg":"cordoned node","node":"ip-10-0-1-23","budget_s":"87"}`
//! (field values are strings, so a field keeps one type whatever its value).
//!
//! Keys are stable snake_case; `msg` is lowercase. Secrets never get here: callers pass the
//! redacted forms (see `config::Secret`). Lines below `LOG_LEVEL` are dropped; debug lines
//! (each poll, each HTTP exchange) are printed only at `debug` (`VERBOSE=1`).

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::SystemTime;

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JSON: AtomicBool = AtomicBool::new(false);

/// Lines below `level` are dropped (`LOG_LEVEL`; `VERBOSE` means `debug`).
pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// JSON lines instead of logfmt (`LOG_FORMAT=json`); read by the signal handler too.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub fn json_enabled() -> bool {
    JSON.load(Ordering::Relaxed)
}

pub fn debug_enabled() -> bool {
    enabled(Level::Debug)
}

/// Lines of `level` are printed (an atomic load: safe in a signal handler).
pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Appends `value` to `out`, quoted and escaped (JSON string rules) when logfmt needs it.
fn push_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if needs_quotes {
        out.push_str(&crate::json::escape(value));
    } else {
        out.push_str(value);
    }
}

/// Renders one line (without the trailing newline) in the chosen format. Pure, for tests.
pub fn render(
    ts: SystemTime,
    level: Level,
    msg: &str,
    fields: &[(&str, &dyn Display)],
    json: bool,
) -> String {
    let mut out = String::with_capacity(96);
    let ts = crate::time::format_rfc3339_millis(ts);
    let mut buf = String::new();
    if json {
        out.push_str("{\"ts\":\"");
        out.push_str(&ts);
        out.push_str("\",\"level\":\"");
        out.push_str(level.as_str());
        out.push_str("\",\"msg\":\"");
        crate::json::escape_into(&mut out, msg);
        out.push('"');
        for (key, value) in fields {
            buf.clear();
            let _ = write!(buf, "{value}");
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":\"");
            crate::json::escape_into(&mut out, &buf);
            out.push('"');
        }
        out.push('}');
        return out;
    }
    out.push_str("ts=");
    out.push_str(&ts);
    out.push_str(" level=");
    out.push_str(level.as_str());
    out.push_str(" msg=");
    push_value(&mut out, msg);
    for (key, value) in fields {
        buf.clear();
        let _ = write!(buf, "{value}");
        out.push(' ');
        out.push_str(key);
        out.push('=');
        push_value(&mut out, &buf);
    }
    out
}

/// Writes one line to stderr, in a single `write_all` so threads never interleave mid-line.
pub fn log(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
    if !enabled(level) {
        return;
    }
    let mut line = render(SystemTime::now(), level, msg, fields, json_enabled());
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `info!("cordoned node", node = name, budget_s = 87)`: the key is the identifier, the value
/// anything that implements `Display`.
#[macro_export]
macro_rules! info {
    ($msg:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::log($crate::log::Level::Info, $msg, &[$((stringify!($k), &$v as &dyn ::std::fmt::Display)),*])
    };
}
#[macro_export]
macro_rules! warn {
    ($msg:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::log($crate::log::Level::Warn, $msg, &[$((stringify!($k), &$v as &dyn ::std::fmt::Display)),*])
    };
}
#[macro_export]
macro_rules! error {
    ($msg:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::log($crate::log::Level::Error, $msg, &[$((stringify!($k), &$v as &dyn ::std::fmt::Display)),*])
    };
}
#[macro_export]
macro_rules! debug {
    ($msg:expr $(, $k:ident = $v:expr)* $(,)?) => {
        if $crate::log::debug_enabled() {
            $crate::log::log($crate::log::Level::Debug, $msg, &[$((stringify!($k), &$v as &dyn ::std::fmt::Display)),*])
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn renders_logfmt() {
        let ts = UNIX_EPOCH + Duration::from_millis(1_505_722_920_123);
        let line = render(
            ts,
            Level::Warn,
            "eviction blocked",
            &[
                ("pod", &"shop/web-1"),
                ("cause", &"needs 2 \"healthy\" pods"),
                ("empty", &""),
                ("n", &3),
                ("multi", &"a\nb=c"),
            ],
            false,
        );
        assert_eq!(
            line,
            "ts=2017-09-18T08:22:00.123Z level=warn msg=\"eviction blocked\" pod=shop/web-1 \
             cause=\"needs 2 \\\"healthy\\\" pods\" empty=\"\" n=3 multi=\"a\\nb=c\""
        );
    }

    #[test]
    fn plain_values_stay_unquoted() {
        let line = render(
            UNIX_EPOCH,
            Level::Info,
            "polled",
            &[("status", &404)],
            false,
        );
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z level=info msg=polled status=404"
        );
    }

    #[test]
    fn renders_json_lines() {
        let ts = UNIX_EPOCH + Duration::from_millis(1_505_722_920_123);
        let line = render(
            ts,
            Level::Error,
            "drain \"finished\"",
            &[("pod", &"shop/web-1"), ("n", &3), ("multi", &"a\nb")],
            true,
        );
        assert_eq!(
            line,
            r#"{"ts":"2017-09-18T08:22:00.123Z","level":"error","msg":"drain \"finished\"","pod":"shop/web-1","n":"3","multi":"a\nb"}"#
        );
        crate::json::check(line.as_bytes()).unwrap();
        assert_eq!(
            render(ts, Level::Info, "x", &[], true),
            r#"{"ts":"2017-09-18T08:22:00.123Z","level":"info","msg":"x"}"#
        );
    }
}
