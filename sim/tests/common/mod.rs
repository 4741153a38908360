//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use stnh_sim::testclient::{Client, Response};
use stnh_sim::Sim;

pub const NODE: &str = "ip-10-0-1-23.ec2.internal";

/// One request to the fake API server with the service-account token.
pub fn call(sim: &Sim, method: &str, path: &str, ct: Option<&str>, body: &str) -> Response {
    Client::api(sim)
        .unwrap()
        .call(method, path, &sim.token(), ct, body)
        .unwrap()
}

pub fn get(sim: &Sim, path: &str) -> Response {
    call(sim, "GET", path, None, "")
}

pub fn post(sim: &Sim, path: &str, body: &Value) -> Response {
    call(
        sim,
        "POST",
        path,
        Some("application/json"),
        &body.to_string(),
    )
}

pub fn smp(sim: &Sim, path: &str, body: &Value) -> Response {
    call(
        sim,
        "PATCH",
        path,
        Some("application/strategic-merge-patch+json"),
        &body.to_string(),
    )
}

pub fn merge(sim: &Sim, path: &str, body: &Value) -> Response {
    call(
        sim,
        "PATCH",
        path,
        Some("application/merge-patch+json"),
        &body.to_string(),
    )
}

/// Polls `f` every 20 ms until it holds or `limit` passes (a bound, not a timing assumption).
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    f()
}
