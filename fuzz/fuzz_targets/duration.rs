//! The duration syntax of our settings (`5`, `0.5`, `200ms`, `90s`, `2m`, `1.5h`).
//!
//! Holds: a parsed duration is finite and below 10^9 s; formatted for people it parses back to
//! within a millisecond (the format's precision).
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::time::{
    format_duration, parse_duration, parse_seconds_or_duration,
};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let strict = parse_duration(s);
    let lax = parse_seconds_or_duration(s);
    if let Some(d) = strict {
        assert_eq!(lax, Some(d), "{s:?}");
    }
    if let Some(d) = lax {
        assert!(d < Duration::from_secs(1_000_000_000), "{s:?}: {d:?}");
        let text = format_duration(d);
        let back = parse_seconds_or_duration(&text)
            .unwrap_or_else(|| panic!("{s:?} = {d:?} formats as {text:?}, which does not parse"));
        let diff = back.abs_diff(d);
        assert!(
            diff < Duration::from_millis(1),
            "{s:?} = {d:?} -> {text:?} -> {back:?}"
        );
    }
});
