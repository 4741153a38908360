//! Alibaba `instance/spot/termination-time`: an RFC 3339 time, or anything (acted on with the
//! default deadline).
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::alibaba::parse_termination;
use spot_termination_notice_handler::time::parse_rfc3339;

fuzz_target!(|data: &[u8]| {
    let (skew, body) = stnh_fuzz::skew(data);
    let body = String::from_utf8_lossy(body);
    let default = stnh_fuzz::t0() + Duration::from_secs(120);
    match parse_termination(&body, skew, default) {
        None => assert!(body.trim().is_empty()),
        Some(n) => {
            stnh_fuzz::check_notice(&n);
            let deadline = n.deadline.expect("always a deadline");
            let when = n.id.strip_prefix("alibaba-spot/").expect("id prefix");
            if n.deadline_given {
                let t = parse_rfc3339(when).expect("id time parses back");
                let local = skew.map_or(t, |s| s.to_local(t));
                assert!(
                    deadline.duration_since(local).expect("whole second") < Duration::from_secs(1)
                );
            } else {
                // No time, or one too far ahead to believe (notice::MAX_SPOT_LEAD): the default.
                assert!(when == "no-time" || n.time.is_some(), "{when}");
                assert_eq!(deadline, default);
            }
        }
    }
});
