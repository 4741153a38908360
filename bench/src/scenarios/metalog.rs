//! The handler's metadata requests as the simulator logged them, whichever cloud's fake got
//! them, and the cordon PATCH: what the idle and reaction scenarios measure from.

use std::time::Instant;

use stnh_sim::{ApiRequest, Cloud, Sim};

/// One metadata request.
#[derive(Debug, Clone)]
pub struct MetaHit {
    pub method: String,
    /// Path with query, as sent.
    pub path: String,
    pub status: u16,
    /// Arrival at the fake.
    pub at: Instant,
    /// When the answer went out. The AWS fake answers at once, without latency, and logs the
    /// arrival only: there `answered` is the arrival. The GCE, Azure and Alibaba fakes log both
    /// (a GCE hanging GET is answered when the value changes or its time is up).
    pub answered: Instant,
}

/// Every metadata request to `cloud`'s fake so far (GCE: only those answered so far; a hanging
/// GET still held is not in the log yet).
pub fn requests(sim: &Sim, cloud: Cloud) -> Vec<MetaHit> {
    match cloud {
        Cloud::Aws => sim
            .imds_requests()
            .into_iter()
            .map(|r| MetaHit {
                method: r.method,
                path: r.path,
                status: r.status,
                at: r.at,
                answered: r.at,
            })
            .collect(),
        c => {
            let log = match c {
                Cloud::Gcp => sim.gcp_requests(),
                Cloud::Azure => sim.azure_requests(),
                _ => sim.alibaba_requests(),
            };
            log.into_iter()
                .map(|r| MetaHit {
                    method: r.method,
                    path: r.path,
                    status: r.status,
                    at: r.at,
                    answered: r.answered,
                })
                .collect()
        }
    }
}

/// `path` without its query.
pub fn bare(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Is `r` the cordon: a PATCH of the node itself (not `/status`) setting `unschedulable`?
pub fn is_cordon(r: &ApiRequest, node: &str) -> bool {
    r.method == "PATCH"
        && bare(&r.path) == format!("/api/v1/nodes/{node}")
        && r.body.replace(' ', "").contains("\"unschedulable\":true")
}

/// The arrival of the first cordon PATCH of `node` at or after `from`.
pub fn cordon_after(sim: &Sim, node: &str, from: Instant) -> Option<Instant> {
    sim.api_requests()
        .iter()
        .find(|r| r.at >= from && is_cordon(r, node))
        .map(|r| r.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cordon_patch_only() {
        let req = |method: &str, path: &str, body: &str| ApiRequest {
            seq: 1,
            at: Instant::now(),
            time: std::time::SystemTime::now(),
            method: method.into(),
            path: path.into(),
            content_type: None,
            body: body.into(),
            token: None,
            status: 200,
            connection: 1,
            user_agent: None,
        };
        let yes = r#"{"spec":{"unschedulable":true,"taints":[]}}"#;
        assert!(is_cordon(&req("PATCH", "/api/v1/nodes/n1", yes), "n1"));
        assert!(is_cordon(
            &req("PATCH", "/api/v1/nodes/n1?fieldManager=x", yes),
            "n1"
        ));
        assert!(!is_cordon(
            &req("PATCH", "/api/v1/nodes/n1/status", yes),
            "n1"
        ));
        assert!(!is_cordon(&req("PATCH", "/api/v1/nodes/n10", yes), "n1"));
        assert!(!is_cordon(&req("GET", "/api/v1/nodes/n1", yes), "n1"));
        assert!(!is_cordon(
            &req(
                "PATCH",
                "/api/v1/nodes/n1",
                r#"{"spec":{"unschedulable":null}}"#
            ),
            "n1"
        ));
        assert_eq!(bare("/a/b?c=d"), "/a/b");
    }
}
