//! What we read back from our own Node annotations after a restart: the `notices` ledger and
//! the `before` record.
//!
//! Holds: no panic; what was read, written back and read again, is the same (the ledger
//! survives any number of restarts unchanged).
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::record::{ledger_from_json, ledger_to_json, Before};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((ledger, dropped)) = ledger_from_json(s) {
        assert!(stnh_fuzz::is_json(data));
        let _ = dropped;
        let once = ledger_to_json(&ledger);
        let (again, dropped_again) = ledger_from_json(&once)
            .unwrap_or_else(|e| panic!("{s:?} -> {once:?} does not parse back: {e}"));
        assert_eq!(dropped_again, 0, "{s:?} -> {once:?} loses entries");
        assert_eq!(ledger_to_json(&again), once, "{s:?}");
    }
    if let Ok(b) = Before::parse(s) {
        assert_eq!(Before::parse(&b.to_json()), Ok(b));
    }
});
