//! `GET /api/v1` discovery (which Eviction version is served).
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::json;
use spot_termination_notice_handler::kube::model::ApiResourceList;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = json::parse::<ApiResourceList>(data) {
        assert!(
            stnh_fuzz::is_json(data),
            "{:?}",
            String::from_utf8_lossy(data)
        );
        let _ = list
            .resources
            .iter()
            .flatten()
            .find(|r| r.name == "pods/eviction");
    }
});
