//! AWS `spot/instance-action` (and `NOTICE_URL`'s body): JSON, or a bare timestamp.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::aws::{parse_instance_action, parse_notice_url};
use spot_termination_notice_handler::metadata::Skew;
use spot_termination_notice_handler::notice::{Action, Notice};
use spot_termination_notice_handler::time::parse_rfc3339;

fn check(n: &Notice, prefix: &str, default: std::time::SystemTime, skew: Option<Skew>) {
    stnh_fuzz::check_notice(n);
    let rest = n.id.strip_prefix(prefix).expect("id prefix");
    let (action, when) = rest
        .split_once('/')
        .expect("id has the action and the time");
    assert_eq!(action, n.detail);
    assert!(!action.is_empty() && action.len() <= 32);
    assert!(action
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    assert_eq!(n.action, Action::Drain);
    assert!(n.force);
    let deadline = n.deadline.expect("a spot notice always has a deadline");
    // A time too far ahead to believe (notice::MAX_SPOT_LEAD) is kept in `time` and the id,
    // and the deadline is the default.
    assert!(!n.deadline_given || n.time.is_some());
    if n.deadline_given {
        assert_eq!(Some(deadline), n.time);
        // The id's time, written back and parsed, is the notice's time to the second.
        let t = parse_rfc3339(when).unwrap_or_else(|| panic!("id time {when:?} does not parse"));
        let local = skew.map_or(t, |s| s.to_local(t));
        let gap = deadline
            .duration_since(local)
            .expect("id time is the whole second");
        assert!(gap < Duration::from_secs(1));
    } else {
        assert!(when == "no-time" || n.time.is_some(), "{when}");
        assert_eq!(deadline, default);
    }
}

fuzz_target!(|data: &[u8]| {
    let (skew, body) = stnh_fuzz::skew(data);
    let default = stnh_fuzz::t0() + Duration::from_secs(120);
    match parse_instance_action(body, skew, default) {
        Ok(n) => check(&n, "aws-spot/", default, skew),
        Err(e) => assert!(!e.is_empty() && !e.contains('\n')),
    }
    check(
        &parse_notice_url(body, skew, default),
        "notice-url/",
        default,
        skew,
    );
});
