//! LOG_FORMAT and LOG_LEVEL with the real binary: every line of a whole run (start-up, a
//! drain, the SIGTERM line written by the signal handler) is one JSON object; a level drops
//! what is below it.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use stnh_sim::{PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);

fn sigterm(h: &mut Handler) {
    let ok = Command::new("kill")
        .args(["-TERM", &h.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(
        h.wait_exit(Duration::from_secs(5)).is_some(),
        "exits on SIGTERM"
    );
}

#[test]
fn json_logs_are_one_object_per_line_including_the_signal_line() {
    let sim = Sim::start(
        Scenario::new(NODE)
            .pod(PodSpec::new("shop", "web-1").shutdown(Duration::from_millis(200)))
            .notice_after(
                Duration::from_millis(300),
                "terminate",
                Duration::from_secs(60),
            ),
    )
    .unwrap();
    let mut h = Handler::start(&sim, &[("LOG_FORMAT", "json")]);
    h.wait_for("\"msg\":\"drain finished\"", LONG);
    sigterm(&mut h);
    let lines = h.logs();
    assert!(lines.len() > 10, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let o = v.as_object().unwrap();
        let (ts, level) = (l.find("{\"ts\":\""), l.find("\",\"level\":\""));
        let msg = l.find("\",\"msg\":\"");
        assert!(
            ts == Some(0) && level == Some(31) && msg > level,
            "ts, level, msg first: {l}"
        );
        assert!(
            o.values().all(Value::is_string),
            "every value a string: {l}"
        );
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
    let evicted: Value = serde_json::from_str(
        lines
            .iter()
            .find(|l| l.contains("\"msg\":\"evicted pod\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(evicted["pod"], "shop/web-1");
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(
        (last["level"].as_str(), last["msg"].as_str()),
        (Some("info"), Some("received SIGTERM; exiting"))
    );
}

#[test]
fn log_level_drops_the_lines_below_it() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let mut h = Handler::start(&sim, &[("LOG_LEVEL", "warn")]);
    eventually("polling", LONG, || {
        sim.imds_count("/latest/meta-data/spot") > 2
    });
    sim.imds_fail_path("/latest/meta-data/spot/instance-action", Some(500));
    h.wait_for("metadata poll failed; still polling", LONG);
    sigterm(&mut h);
    let lines = h.logs();
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" level=warn ") || l.contains(" level=error ")),
        "{lines:?}"
    );
    // VERBOSE keeps its meaning: debug lines, each poll among them.
    let mut h = Handler::start(&sim, &[("VERBOSE", "true"), ("LOG_LEVEL", "error")]);
    h.wait_for(" level=debug ", LONG);
    sigterm(&mut h);
    assert!(h
        .logs()
        .last()
        .unwrap()
        .contains("msg=\"received SIGTERM; exiting\""));
}
