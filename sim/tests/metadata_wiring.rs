//! What the handler is pointed at on each cloud: all four metadata URLs, the present cloud's
//! fake, and the others as a real host of that cloud would see them (the host's own server at
//! 169.254.169.254, a refused connection, or silence); the simulated node's providerID and
//! labels per cloud.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use stnh_sim::testclient::plain_request;
use stnh_sim::{Cloud, Reach, Scenario, Sim};

fn env(sim: &Sim, k: &str) -> String {
    sim.handler_env()
        .into_iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{k} missing from handler_env"))
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Sends a GET and reports whether any answer came within `wait`.
fn answers_within(url: &str, wait: Duration) -> bool {
    let mut s = TcpStream::connect(addr(url)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 16];
    !matches!(s.read(&mut buf), Err(_) | Ok(0))
}

fn refuses(url: &str) -> bool {
    matches!(TcpStream::connect(addr(url)), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

#[test]
fn every_url_is_set_for_every_cloud() {
    for cloud in Cloud::ALL {
        let sim = Sim::start(Scenario::new("n1").cloud(cloud)).unwrap();
        assert_eq!(sim.cloud(), cloud);
        for var in [
            "IMDS_URL",
            "GCP_METADATA_URL",
            "AZURE_METADATA_URL",
            "ALIBABA_METADATA_URL",
        ] {
            assert!(env(&sim, var).starts_with("http://127.0.0.1:"), "{var}");
        }
        let own = match cloud {
            Cloud::Aws => sim.imds_url(),
            Cloud::Gcp => sim.gcp_metadata_url(),
            Cloud::Azure => sim.azure_metadata_url(),
            Cloud::Alibaba => sim.alibaba_metadata_url(),
        };
        assert_eq!(env(&sim, cloud.env_var()), own, "{cloud:?}");
        assert_eq!(sim.reach(cloud), Reach::Own);
    }
}

#[test]
fn on_aws() {
    let sim = Sim::start(Scenario::new("n1")).unwrap();
    // metadata.google.internal does not resolve: refused at once.
    assert!(refuses(&env(&sim, "GCP_METADATA_URL")));
    // 169.254.169.254 is the AWS IMDS itself: the Azure probe gets its XHTML 404.
    let az = env(&sim, "AZURE_METADATA_URL");
    assert_eq!(az, sim.imds_url());
    let r = plain_request(
        &az,
        "GET",
        "/metadata/instance/compute?api-version=2021-02-01",
        &[("Metadata", "true")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("server"), Some("EC2ws"));
    assert_eq!(sim.imds_count("/metadata/"), 1);
    // 100.100.100.200 is not routed: no answer, but the attempt is visible.
    let ali = env(&sim, "ALIBABA_METADATA_URL");
    assert!(!answers_within(&ali, Duration::from_millis(400)));
    let end = Instant::now() + Duration::from_secs(10);
    while sim.alibaba_requests().is_empty() {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sim.alibaba_requests()[0].status, 0);
    // The node is an EKS spot node.
    let node = sim.node("n1").unwrap();
    assert_eq!(
        node["spec"]["providerID"],
        "aws:///us-east-1a/i-0abc123def4567890"
    );
    assert_eq!(
        node["metadata"]["labels"]["eks.amazonaws.com/capacityType"],
        "SPOT"
    );
}

#[test]
fn on_gcp() {
    let sim = Sim::start(Scenario::new("gke-pool-1-abcd1234-x7kq").cloud(Cloud::Gcp)).unwrap();
    // IMDS_URL and AZURE_METADATA_URL (169.254.169.254) reach the GCE metadata server.
    for var in ["IMDS_URL", "AZURE_METADATA_URL"] {
        assert_eq!(env(&sim, var), sim.gcp_metadata_url());
    }
    let r = plain_request(
        &env(&sim, "IMDS_URL"),
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("metadata-flavor"), Some("Google"));
    assert_eq!(sim.gcp_count("/latest/api/token"), 1);
    assert_eq!(sim.imds_requests().len(), 0, "the AWS fake saw nothing");
    assert!(!answers_within(
        &env(&sim, "ALIBABA_METADATA_URL"),
        Duration::from_millis(200)
    ));
    let node = sim.node("gke-pool-1-abcd1234-x7kq").unwrap();
    assert_eq!(
        node["spec"]["providerID"],
        "gce://my-proj/us-central1-a/gke-pool-1-abcd1234-x7kq"
    );
    let l = &node["metadata"]["labels"];
    assert_eq!(l["cloud.google.com/gke-spot"], "true");
    assert_eq!(l["topology.kubernetes.io/zone"], "us-central1-a");
    assert!(l.get("eks.amazonaws.com/capacityType").is_none());
    let b = sim.node("node-b").unwrap();
    assert!(b["metadata"]["labels"]
        .get("cloud.google.com/gke-spot")
        .is_none());
    assert_eq!(
        b["spec"]["providerID"],
        "gce://my-proj/us-central1-a/node-b"
    );
}

#[test]
fn on_azure() {
    let sim =
        Sim::start(Scenario::new("aks-spotpool-12345678-vmss000003").cloud(Cloud::Azure)).unwrap();
    assert_eq!(env(&sim, "IMDS_URL"), sim.azure_metadata_url());
    // The AWS probe (no Metadata header) gets Azure's 400.
    let r = plain_request(
        &env(&sim, "IMDS_URL"),
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "Bad request. Required metadata header not specified"
    );
    assert!(refuses(&env(&sim, "GCP_METADATA_URL")));
    let node = sim.node("aks-spotpool-12345678-vmss000003").unwrap();
    assert_eq!(
        node["spec"]["providerID"],
        "azure:///subscriptions/8c3e2f9a-5b1d-4c7e-9f0a-2d6b8e4c1a37/resourceGroups/mc_prod-rg_prod-aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-spotpool-12345678-vmss/virtualMachines/3"
    );
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.azure.com/scalesetpriority"],
        "spot"
    );
    assert!(node["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .any(
            |t| t["key"] == "kubernetes.azure.com/scalesetpriority" && t["effect"] == "NoSchedule"
        ));
}

#[test]
fn on_alibaba() {
    let sim = Sim::start(Scenario::new("cn-hangzhou.10.0.1.23").cloud(Cloud::Alibaba)).unwrap();
    assert_eq!(sim.reach(Cloud::Aws), Reach::Silent);
    assert_eq!(sim.reach(Cloud::Azure), Reach::Silent);
    assert!(!answers_within(
        &env(&sim, "IMDS_URL"),
        Duration::from_millis(200)
    ));
    let end = Instant::now() + Duration::from_secs(10);
    while sim.imds_requests().is_empty() {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sim.imds_requests()[0].status, 0, "held, never answered");
    assert!(!answers_within(
        &env(&sim, "AZURE_METADATA_URL"),
        Duration::from_millis(200)
    ));
    assert!(refuses(&env(&sim, "GCP_METADATA_URL")));
    let node = sim.node("cn-hangzhou.10.0.1.23").unwrap();
    assert_eq!(
        node["spec"]["providerID"],
        "alicloud://cn-hangzhou.i-bp13znx0m0me8cquu4k2"
    );
    assert_eq!(
        node["metadata"]["labels"]["node.alibabacloud.com/spot-strategy"],
        "SpotAsPriceGo"
    );
    // Dropping the simulator ends held connections promptly.
    let t = Instant::now();
    drop(sim);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn empty_provider_id_reach_override_and_user_labels() {
    let sim = Sim::start(
        Scenario::new("n1")
            .cloud(Cloud::Gcp)
            .provider_id("")
            .node_label("cloud.google.com/gke-nodepool", "custom")
            .reach(Cloud::Aws, Reach::Own)
            .reach(Cloud::Alibaba, Reach::Refused),
    )
    .unwrap();
    let node = sim.node("n1").unwrap();
    assert!(node["spec"].get("providerID").is_none(), "{}", node["spec"]);
    assert_eq!(
        node["metadata"]["labels"]["cloud.google.com/gke-nodepool"],
        "custom"
    );
    assert_eq!(env(&sim, "IMDS_URL"), sim.imds_url());
    assert!(refuses(&env(&sim, "ALIBABA_METADATA_URL")));
    let sim = Sim::start(Scenario::new("n1").provider_id("kind://docker/kind/n1")).unwrap();
    assert_eq!(
        sim.node("n1").unwrap()["spec"]["providerID"],
        "kind://docker/kind/n1"
    );
}
