//! AWS `events/recommendations/rebalance`: `{"noticeTime": "…"}`.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::aws::parse_rebalance;
use spot_termination_notice_handler::notice::{Action, Undo};
use spot_termination_notice_handler::time::parse_rfc3339;

fuzz_target!(|data: &[u8]| {
    let (skew, body) = stnh_fuzz::skew(data);
    let ttl = Duration::from_secs(3600);
    match parse_rebalance(body, skew, Action::Notify, ttl) {
        Ok(n) => {
            stnh_fuzz::check_notice(&n);
            assert_eq!(n.deadline, None);
            assert_eq!(n.undo, Undo::After(ttl));
            let when = n.id.strip_prefix("aws-rebalance/").expect("id prefix");
            let t = parse_rfc3339(when).expect("id time parses back");
            let local = skew.map_or(t, |s| s.to_local(t));
            let time = n.time.expect("a rebalance has its notice time");
            assert!(time.duration_since(local).expect("whole second") < Duration::from_secs(1));
        }
        Err(e) => assert!(!e.is_empty() && !e.contains('\n')),
    }
});
