//! GCP metadata values (`instance/preempted`, `instance/maintenance-event`) and the ETag that a
//! hanging GET sends back in its query string.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::gcp::{parse_maintenance, parse_preempted, valid_etag};
use spot_termination_notice_handler::notice::Action;

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let deadline = stnh_fuzz::t0();
    let upper = value.trim().to_ascii_uppercase();
    match parse_preempted(&value, deadline) {
        Ok(Some(n)) => {
            assert_eq!(upper, "TRUE");
            stnh_fuzz::check_notice(&n);
        }
        Ok(None) => assert_eq!(upper, "FALSE"),
        Err(e) => {
            assert!(upper != "TRUE" && upper != "FALSE");
            assert!(!e.contains('\n') && e.len() < 1200, "{e:?}");
        }
    }
    for migrate in [None, Some(Action::Notify), Some(Action::Drain)] {
        match parse_maintenance(&value, deadline, migrate) {
            Some(n) => {
                stnh_fuzz::check_notice(&n);
                assert!(upper != "NONE" && !upper.is_empty());
                assert_eq!(n.deadline, Some(deadline));
                assert!(n.id.starts_with("gcp-maintenance/"));
            }
            None => assert!(
                upper == "NONE"
                    || upper.is_empty()
                    || (upper == "MIGRATE_ON_HOST_MAINTENANCE" && migrate.is_none())
            ),
        }
    }
    // An ETag we keep goes into `last_etag=` unescaped: nothing that could end or change the
    // query may pass.
    let etag = value.trim();
    if valid_etag(etag) {
        assert!(!etag.is_empty() && etag.len() <= 64);
        assert!(!etag
            .bytes()
            .any(|b| b"&#?=%+/ \\\"'<>".contains(&b) || !b.is_ascii_graphic()));
    }
});
