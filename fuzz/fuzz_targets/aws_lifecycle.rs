//! AWS `autoscaling/target-lifecycle-state`: `Terminated` is the only state acted on.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::cloud::aws::parse_lifecycle;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let deadline = stnh_fuzz::t0();
    let n = parse_lifecycle(&text, deadline);
    assert_eq!(n.is_some(), text.trim() == "Terminated");
    if let Some(n) = n {
        stnh_fuzz::check_notice(&n);
        assert_eq!(n.deadline, Some(deadline));
    }
});
