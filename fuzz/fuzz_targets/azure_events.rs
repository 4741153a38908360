//! The Azure scheduled-events document (and the compute document that names the VM).
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::azure::{parse_compute, parse_events};
use spot_termination_notice_handler::notice::Action;

fuzz_target!(|data: &[u8]| {
    let (skew, body) = stnh_fuzz::skew(data);
    let now = stnh_fuzz::t0();
    for (vm, freeze) in [("vm-a", None), ("VM-A", Some(Action::Notify))] {
        match parse_events(body, vm, skew, freeze, now) {
            Ok(ev) => {
                for n in &ev.notices {
                    stnh_fuzz::check_notice(n);
                    let id = n.id.strip_prefix("azure/").expect("id prefix");
                    assert!(!id.is_empty() && id.len() <= 64);
                    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
                    let d = n.deadline.expect("an event has a deadline");
                    if !n.deadline_given {
                        assert_eq!(d, now);
                    }
                    if freeze.is_none() {
                        assert_ne!(n.detail, "Freeze");
                    }
                }
                for s in &ev.skipped {
                    assert!(!s.contains('\n') && s.len() < 2000, "{s:?}");
                }
            }
            Err(e) => assert!(!e.is_empty() && !e.contains('\n')),
        }
    }
    if let Ok(c) = parse_compute(body) {
        assert!(!c.name.trim().is_empty());
    }
});
