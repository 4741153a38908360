//! The Node we read (spec, taints, labels, our annotations), and its taints written back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::json;
use spot_termination_notice_handler::kube::model::{Node, Taint};

fuzz_target!(|data: &[u8]| {
    let Ok(node) = json::parse::<Node>(data) else {
        return;
    };
    assert!(
        stnh_fuzz::is_json(data),
        "{:?}",
        String::from_utf8_lossy(data)
    );
    let _ = (
        node.unschedulable(),
        node.provider_id(),
        node.exclude_lb_label(),
        node.annotations(),
    );
    // A taint list is written back unchanged in a patch: each taint round-trips.
    for t in node.taints() {
        let text = t.to_json();
        let back: Taint = json::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("taint {text} does not parse back: {e}"));
        assert_eq!(&back, t);
    }
});
