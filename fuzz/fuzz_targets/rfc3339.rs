//! RFC 3339 timestamps (AWS notice times, Kubernetes times, our own ledger).
//!
//! Holds: a parsed time is within 1970..=9999, and formatted back (seconds, or a MicroTime) it
//! parses to the same instant at that precision.
#![no_main]
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::time::{format_micro_time, format_rfc3339, parse_rfc3339};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = parse_rfc3339(s) {
        assert!(
            t <= stnh_fuzz::max_time() + Duration::from_secs(1),
            "after 9999: {s:?}"
        );
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        let secs = UNIX_EPOCH + Duration::from_secs(d.as_secs());
        let text = format_rfc3339(t);
        assert_eq!(parse_rfc3339(&text), Some(secs), "{s:?} -> {text:?}");
        let micro = format_micro_time(t);
        let back = parse_rfc3339(&micro).unwrap_or_else(|| panic!("{s:?} -> {micro:?}"));
        assert_eq!(
            back.duration_since(UNIX_EPOCH).unwrap().as_micros(),
            d.as_micros()
        );
    }
});
