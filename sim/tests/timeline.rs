//! The drain picture: a drain made by hand through the fake API server (cordon, an eviction a
//! budget refuses, accepted evictions, a forced delete, a pod already gone), then the SVG is
//! parsed as XML and checked row by row.

use std::time::{Duration, Instant};

use serde_json::json;
use stnh_sim::testclient::{Client, Response};
use stnh_sim::timeline::{self, Mark, Window};
use stnh_sim::{PodSpec, Scenario, Sim};

const NODE: &str = "node-a";
const SVG: &str = "http://www.w3.org/2000/svg";

fn call(sim: &Sim, method: &str, path: &str, ct: Option<&str>, body: &str) -> Response {
    Client::api(sim)
        .unwrap()
        .call(method, path, &sim.token(), ct, body)
        .unwrap()
}

fn evict(sim: &Sim, ns: &str, name: &str) -> u16 {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns}});
    call(
        sim,
        "POST",
        &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
        Some("application/json"),
        &body.to_string(),
    )
    .status
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_svg_is_well_formed_with_a_row_per_pod_and_what_happened_to_it() {
    let quick = Duration::from_millis(200);
    let sim = Sim::start(
        Scenario::new(NODE)
            .latency(Duration::ZERO)
            .pod(
                PodSpec::new("shop", "web-1")
                    .replicaset("web")
                    .labels(&[("app", "web")])
                    .shutdown(quick),
            )
            .pod(
                PodSpec::new("shop", "checkout-1")
                    .replicaset("checkout")
                    .labels(&[("app", "checkout")])
                    .shutdown(quick),
            )
            .pod(PodSpec::new("default", "debug <&> \"x\"").shutdown(quick))
            .pod(PodSpec::new("logging", "fluentd-x1").daemonset("fluentd"))
            .pod(PodSpec::new("kube-system", "kube-proxy-node-a").mirror())
            .pdb(
                "shop",
                "checkout-pdb",
                &[("app", "checkout")],
                None,
                Some(0),
            ),
    )
    .unwrap();
    let notice = Instant::now();
    let patch = call(
        &sim,
        "PATCH",
        &format!("/api/v1/nodes/{NODE}"),
        Some("application/merge-patch+json"),
        r#"{"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(patch.status, 200);
    assert_eq!(evict(&sim, "shop", "web-1"), 201);
    assert_eq!(evict(&sim, "shop", "checkout-1"), 429);
    assert_eq!(evict(&sim, "shop", "checkout-1"), 429);
    let del = call(
        &sim,
        "DELETE",
        "/api/v1/namespaces/shop/pods/checkout-1",
        Some("application/json"),
        r#"{"apiVersion":"v1","kind":"DeleteOptions","gracePeriodSeconds":1}"#,
    );
    assert_eq!(del.status, 200);
    assert_eq!(evict(&sim, "shop", "gone-1"), 404);
    eventually("web-1 and checkout-1 gone", || {
        sim.pod("shop", "web-1").is_none() && sim.pod("shop", "checkout-1").is_none()
    });

    let window = Window {
        notice,
        deadline: notice + Duration::from_secs(30),
        reserve: Duration::from_secs(10),
    };
    let d = sim.timeline(window);
    assert!(d.cordon.is_some_and(|c| c >= notice));
    let row = |pod: &str| d.rows.iter().find(|r| r.pod == pod).unwrap();
    let kinds = |pod: &str| -> Vec<&str> {
        row(pod)
            .marks
            .iter()
            .map(|m| match m {
                Mark::Refused(_) => "refused",
                Mark::Evicted(_) => "evicted",
                Mark::Forced(_) => "forced",
                Mark::AlreadyGone(_) => "gone",
                Mark::Failed(..) => "failed",
            })
            .collect()
    };
    assert_eq!(kinds("shop/web-1"), ["evicted"]);
    assert_eq!(kinds("shop/checkout-1"), ["refused", "refused", "forced"]);
    assert_eq!(kinds("shop/gone-1"), ["gone"]);
    assert!(row("shop/web-1").gone.is_some() && row("shop/web-1").terminating.is_some());
    assert!(row("shop/checkout-1").gone.is_some());
    assert_eq!(
        row("logging/fluentd-x1").note.as_deref(),
        Some("DaemonSet pod: stays")
    );
    assert_eq!(
        row("kube-system/kube-proxy-node-a").note.as_deref(),
        Some("mirror pod of a static pod: stays")
    );
    assert_eq!(
        row("default/debug <&> \"x\"").note.as_deref(),
        Some("still on the node")
    );

    let svg = timeline::render(&d);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.tag_name().namespace(), Some(SVG));
    let rows: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name((SVG, "g")) && n.attribute("class") == Some("pod"))
        .map(|n| n.attribute("data-pod").unwrap())
        .collect();
    let want = [
        "shop/web-1",
        "shop/checkout-1",
        "shop/gone-1",
        "default/debug <&> \"x\"",
        "kube-system/kube-proxy-node-a",
        "logging/fluentd-x1",
    ];
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for p in want {
        assert!(rows.contains(&p), "no row for {p}: {rows:?}");
    }
    // The marks are drawn where they belong.
    let count = |pod: &str, class: &str| {
        root.descendants()
            .find(|n| n.attribute("data-pod") == Some(pod))
            .unwrap()
            .descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .count()
    };
    assert_eq!(count("shop/checkout-1", "refused"), 2);
    assert_eq!(count("shop/checkout-1", "forced"), 1);
    assert_eq!(count("shop/checkout-1", "bar"), 1);
    assert_eq!(count("shop/web-1", "evicted"), 1);
    assert_eq!(count("shop/gone-1", "gone"), 1);
    assert_eq!(count("logging/fluentd-x1", "bar"), 0);
    let text: String = root
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    for label in ["notice", "cordon +", "deadline +30 s", "reserve (10 s)"] {
        assert!(text.contains(label), "{label:?} not in the picture");
    }
    assert!(text.contains("not drawn by hand"));
}

#[test]
fn escaping_keeps_any_text_inside_its_element() {
    assert_eq!(
        timeline::escape("a<b>&\"c'\u{1}"),
        "a&lt;b&gt;&amp;&quot;c&apos; "
    );
}
