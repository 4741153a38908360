//! The API server is verified against the service account's `ca.crt`, by IP address (the
//! in-cluster `KUBERNETES_SERVICE_HOST` is an IP): a certificate without the IP SAN, or one from
//! another CA, is refused, and the handler says why.

mod support;

use std::time::Duration;

use stnh_sim::{Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn the_api_server_certificate_must_carry_the_ip_san() {
    let sim = Sim::start(Scenario::new(NODE).dns_only_cert()).unwrap();
    let h = Handler::start(&sim, &[]);
    let line = h.wait_for("could not read the node", LONG);
    assert!(
        line.contains("TLS handshake") && line.contains("not valid for name"),
        "{line}"
    );
    assert!(sim.api_requests().is_empty(), "no request got through");
    assert_alive_and_polling(&sim, &h);
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    // Replace the CA the handler trusts with an unrelated one.
    let dir = std::env::temp_dir().join(format!("stnh-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), stnh_sim::pki::OTHER_CA_CRT).unwrap();
    std::fs::write(dir.join("token"), sim.token()).unwrap();
    let h = Handler::start(&sim, &[("SERVICE_ACCOUNT_DIR", dir.to_str().unwrap())]);
    let line = h.wait_for("could not read the node", LONG);
    assert!(
        line.contains("TLS handshake") && line.contains("UnknownIssuer"),
        "{line}"
    );
    assert!(sim.api_requests().is_empty(), "no request got through");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_alive_and_polling(&sim, &h);
}
