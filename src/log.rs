//! A dependency-free logfmt logger: one line per event on stderr.
//!
//! `ts=2026-11-26T08:40:51.123Z level=info msg="cordoned node" node=ip-10-0-1-23 budget_s=87`
//!
//! Keys are stable snake_case; `msg` is lowercase. Secrets never get here: callers pass the
//! redacted forms (see `config::Secret`). Debug lines (each poll, each HTTP exchange) are printed
//! only with `VERBOSE=1`.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on or off (the `VERBOSE` setting).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
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

/// Renders one logfmt line (without the trailing newline). Pure, for tests.
pub fn render(ts: SystemTime, level: Level, msg: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("ts=");
    out.push_str(&crate::time::format_rfc3339_millis(ts));
    out.push_str(" level=");
    out.push_str(level.as_str());
    out.push_str(" msg=");
    push_value(&mut out, msg);
    let mut buf = String::new();
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
    if level == Level::Debug && !debug_enabled() {
        return;
    }
    let mut line = render(SystemTime::now(), level, msg, fields);
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
        );
        assert_eq!(
            line,
            "ts=2017-09-18T08:22:00.123Z level=warn msg=\"eviction blocked\" pod=shop/web-1 \
             cause=\"needs 2 \\\"healthy\\\" pods\" empty=\"\" n=3 multi=\"a\\nb=c\""
        );
    }

    #[test]
    fn plain_values_stay_unquoted() {
        let line = render(UNIX_EPOCH, Level::Info, "polled", &[("status", &404)]);
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z level=info msg=polled status=404"
        );
    }
}
