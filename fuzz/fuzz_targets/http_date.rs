//! The HTTP `Date` header (clock skew) and the same GMT format of Azure's and AWS's dates.
//!
//! Holds: a parsed date formats back (IMF-fixdate) to a text that parses to the same instant,
//! whole seconds, between 1970 and 9999.
#![no_main]
use std::time::UNIX_EPOCH;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::time::{format_http_date, parse_http_date};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = parse_http_date(s) {
        stnh_fuzz::check_time(t, "date");
        assert!(t <= stnh_fuzz::max_time(), "after 9999: {s:?}");
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().subsec_nanos(), 0);
        let text = format_http_date(t);
        assert_eq!(parse_http_date(&text), Some(t), "{s:?} -> {text:?}");
        assert_eq!(text.len(), 29, "{text:?}");
    }
});
