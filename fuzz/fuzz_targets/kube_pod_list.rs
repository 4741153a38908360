//! The Kubernetes pod list we drain from (`GET /api/v1/pods?fieldSelector=spec.nodeName=…`),
//! and what the drain reads off each pod.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::drain::{select, Budget};
use spot_termination_notice_handler::json;
use spot_termination_notice_handler::kube::model::{Pod, PodList};

fuzz_target!(|data: &[u8]| {
    // The guard in front of nanoserde accepts only what a reference parser accepts.
    let list = json::parse::<PodList>(data);
    if list.is_ok() {
        assert!(
            stnh_fuzz::is_json(data),
            "{:?}",
            String::from_utf8_lossy(data)
        );
    }
    if let Ok(list) = list {
        for p in list.items.iter().flatten() {
            let _ = (
                p.namespace(),
                p.uid(),
                p.phase(),
                p.controller(),
                p.is_mirror(),
            );
            let _ = (p.has_empty_dir(), p.is_terminating());
            // Whatever the pod says, the grace we send is at least 1 s (0 would be SIGKILL at
            // once) and never more than the pod's own.
            let now = std::time::Instant::now();
            let g = Budget::open(None, now).grace(p.grace_seconds(), now);
            assert!(
                g >= 1 && g <= p.grace_seconds().max(1),
                "grace {g} for {}",
                p.grace_seconds()
            );
            let _ = select(p, Some(("kube-system", "stnh-abc")));
        }
    }
    // One pod alone (GET of a pod while waiting for it to go).
    if let Ok(p) = json::parse::<Pod>(data) {
        let _ = select(&p, None);
    }
});
