//! AWS `events/maintenance/scheduled`: an array of events with `NotBefore` dates like
//! `21 Jan 2019 09:00:43 GMT`.
#![no_main]
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::aws::parse_scheduled;
use spot_termination_notice_handler::notice::{Action, Undo};

fuzz_target!(|data: &[u8]| {
    let (skew, body) = stnh_fuzz::skew(data);
    let lead = Duration::from_secs(600);
    match parse_scheduled(body, skew, Action::Drain, lead) {
        Ok((notices, skipped)) => {
            for n in &notices {
                stnh_fuzz::check_notice(n);
                let id = n.id.strip_prefix("aws-scheduled/").expect("id prefix");
                assert!(!id.is_empty() && id.len() <= 128);
                assert!(id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                let deadline = n.deadline.expect("scheduled events have a start");
                assert!(n.deadline_given);
                assert_eq!(n.undo, Undo::WhenCancelledOrRebooted { starts: deadline });
                let act = n.act_at.expect("acted on before the start");
                assert!(act <= deadline && deadline.duration_since(act).unwrap() <= lead);
                // The date format has whole seconds; a skew is whole seconds too.
                let secs = deadline.duration_since(std::time::UNIX_EPOCH).unwrap();
                assert_eq!(secs.subsec_nanos(), 0);
            }
            for s in &skipped {
                assert!(!s.contains('\n') && s.len() < 2000, "{s:?}");
            }
        }
        Err(e) => assert!(!e.is_empty() && !e.contains('\n')),
    }
});
