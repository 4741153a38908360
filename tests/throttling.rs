//! The API server sheds load (API Priority and Fairness: 429 with `Retry-After` and no budget
//! behind it): the drain's workers back off together (drain::Pacer) instead of retrying in a
//! storm, and the drain still finishes within its deadline.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use stnh_sim::{PodSpec, Scenario, Sim};
use support::*;

const PODS: usize = 40;
const SEATS: usize = 4;

#[test]
fn under_api_throttling_the_drain_backs_off_together_and_still_finishes() {
    let mut s = Scenario::new(NODE)
        .handler_pod()
        .latency(Duration::from_millis(200));
    for i in 0..PODS {
        s = s.pod(
            PodSpec::new("shop", &format!("web-{i:02}"))
                .replicaset("web-7d4b9c")
                .shutdown(Duration::from_millis(100)),
        );
    }
    let sim = Sim::start(s).unwrap();
    let h = Handler::start_idle(&sim, &[]);
    sim.set_api_throttle(SEATS, 1);
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(90));
    h.wait_for("msg=\"drain finished\"", Duration::from_secs(80));
    let reqs = sim.api_requests();
    let evictions: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .collect();
    let accepted: BTreeSet<&str> = evictions
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(accepted.len(), PODS, "every pod evicted");
    let throttled = evictions.iter().filter(|r| r.status == 429).count();
    assert!(
        throttled > 0,
        "32 workers against {SEATS} seats: the server sheds load"
    );
    // Retrying each refused pod on its own every Retry-After, the 32 workers meet the 4 seats
    // again and again: about 28 + 24 + ... + 4 = 112 refusals. Backing off together (half the
    // workers per refusal, everyone waiting out the Retry-After) leaves the first burst and a
    // few probes.
    assert!(
        throttled <= PODS + PODS / 4,
        "{throttled} evictions refused with 429: the workers did not back off together"
    );
    assert!(
        !reqs
            .iter()
            .any(|r| r.method == "DELETE" && r.path.contains("/pods/")),
        "load shedding is not a budget: nothing forced"
    );
    assert!(
        h.count("reason=\"API server throttling\"") > 0,
        "{}",
        h.dump()
    );
    assert!(h.count("blocked by disruption budget") == 0, "{}", h.dump());
}
