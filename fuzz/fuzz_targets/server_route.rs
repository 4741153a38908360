//! The metrics/health server's request line (`GET /metrics HTTP/1.1`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::server::{route, Route};

fuzz_target!(|data: &[u8]| {
    match route(data) {
        Route::Metrics => assert!(data.starts_with(b"GET /metrics")),
        Route::Health => assert!(data.starts_with(b"GET /healthz")),
        Route::Error(code, text) => {
            assert!([400, 404, 405].contains(&code));
            assert!(!text.is_empty());
        }
    }
});
