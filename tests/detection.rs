//! Which cloud: from the Node's spec.providerID, else by probing every metadata service once;
//! an explicit CLOUD that the metadata service contradicts exits 2 before any action.

mod support;

use std::time::Duration;

use stnh_sim::{Cloud, Reach, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(60);

fn node_on(cloud: Cloud) -> Scenario {
    Scenario::new(NODE).cloud(cloud)
}

/// The `cloud chosen` line once the handler is up.
fn chosen(sim: &Sim, extra: &[(&str, &str)]) -> (Handler, String) {
    let h = Handler::start_idle(sim, extra);
    let line = h.wait_for("cloud chosen", LONG);
    (h, line)
}

/// The first line of the polling banner each cloud prints.
fn polling_of(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "/latest/meta-data/spot/instance-action every",
        Cloud::Gcp => "/computeMetadata/v1/instance/preempted and",
        Cloud::Azure => "/metadata/scheduledevents?api-version=2020-07-01 every",
        Cloud::Alibaba => "/latest/meta-data/instance/spot/termination-time every",
    }
}

#[test]
fn the_provider_id_names_the_cloud() {
    for (cloud, prefix) in [
        (Cloud::Aws, "aws:///"),
        (Cloud::Gcp, "gce://my-proj/"),
        (Cloud::Azure, "azure:///subscriptions/"),
        (Cloud::Alibaba, "alicloud://cn-hangzhou."),
    ] {
        let sim = Sim::start(node_on(cloud)).unwrap();
        let (h, line) = chosen(&sim, &[]);
        record_requests(&format!("detection_provider_id_{}", cloud.name()), &sim);
        assert!(
            line.contains(&format!("cloud={}", cloud.name()))
                && line.contains(&format!("reason=\"node spec.providerID {prefix}")),
            "{line}"
        );
        h.wait_for(polling_of(cloud), LONG);
        // Nothing was probed: the Alibaba address (silent off Alibaba) was never tried, and on
        // Alibaba the Azure/AWS address (silent too) was not.
        if cloud != Cloud::Alibaba {
            assert_eq!(sim.alibaba_requests().len(), 0, "{}", cloud.name());
        }
        assert_eq!(h.count("msg=\"cloud chosen\""), 1);
    }
}

#[test]
fn without_a_provider_id_each_metadata_service_is_probed_once() {
    for cloud in [Cloud::Gcp, Cloud::Azure, Cloud::Alibaba, Cloud::Aws] {
        let sim = Sim::start(node_on(cloud).provider_id("")).unwrap();
        let (h, line) = chosen(&sim, &[("IMDS_TIMEOUT", "1s")]);
        record_requests(&format!("detection_probe_{}", cloud.name()), &sim);
        assert!(
            line.contains(&format!("cloud={}", cloud.name()))
                && line.contains("node has no spec.providerID; the ")
                && line.contains(&format!(
                    "{} metadata service answered a probe",
                    cloud.name()
                )),
            "{line}"
        );
        h.wait_for(polling_of(cloud), LONG);
        match cloud {
            Cloud::Gcp => {
                // The GCE fake also serves 169.254.169.254 on GCE: the AWS and Azure probes
                // landed there and were told no.
                let r = sim.gcp_requests();
                let probe = r
                    .iter()
                    .find(|r| r.path == "/computeMetadata/v1/instance/id")
                    .unwrap();
                assert_eq!(probe.header("metadata-flavor"), Some("Google"));
                assert!(r
                    .iter()
                    .any(|r| r.path == "/latest/meta-data/instance-id" && r.status == 404));
                assert!(r
                    .iter()
                    .any(|r| r.path.starts_with("/metadata/instance/compute") && r.status == 404));
            }
            Cloud::Azure => {
                let r = sim.azure_requests();
                assert!(r
                    .iter()
                    .any(|r| r.path == "/latest/meta-data/instance-id" && r.status == 400));
                assert_eq!(
                    r.iter()
                        .filter(|r| r.path.starts_with("/metadata/instance/compute"))
                        .count(),
                    2,
                    "the probe and the identity"
                );
            }
            Cloud::Alibaba => {
                assert!(sim
                    .alibaba_requests()
                    .iter()
                    .any(|r| r.path == "/latest/meta-data/region-id" && r.status == 200));
            }
            Cloud::Aws => {
                assert!(sim
                    .imds_requests()
                    .iter()
                    .any(|r| r.path == "/latest/meta-data/instance-id" && !r.token_sent));
            }
        }
    }
}

#[test]
fn gce_at_its_ip_on_aws_is_not_mistaken_for_google() {
    // GCP_METADATA_URL's default is 169.254.169.254: on EC2 that is the AWS IMDS, which does
    // not say Metadata-Flavor: Google.
    let sim = Sim::start(
        node_on(Cloud::Aws)
            .provider_id("")
            .reach(Cloud::Gcp, Reach::Host),
    )
    .unwrap();
    let (_h, line) = chosen(&sim, &[("IMDS_TIMEOUT", "1s")]);
    record_requests("detection_gce_ip_on_aws", &sim);
    assert!(
        line.contains("cloud=aws") && line.contains("aws metadata service answered a probe"),
        "{line}"
    );
    assert!(sim
        .imds_requests()
        .iter()
        .any(|r| r.path == "/computeMetadata/v1/instance/id" && r.status == 404));
}

#[test]
fn when_nothing_answers_aws_is_the_default() {
    let sim = Sim::start(
        node_on(Cloud::Aws)
            .provider_id("")
            .reach(Cloud::Aws, Reach::Refused)
            .reach(Cloud::Azure, Reach::Refused),
    )
    .unwrap();
    let (_h, line) = chosen(&sim, &[("IMDS_TIMEOUT", "1s")]);
    record_requests("detection_nothing_answers", &sim);
    assert!(
        line.contains("cloud=aws")
            && line.contains("no metadata service answered a probe; AWS, the default"),
        "{line}"
    );
}

#[test]
fn an_explicit_cloud_the_metadata_service_contradicts_exits_2() {
    for (on, wrong, answers, setting) in [
        (Cloud::Aws, "gcp", "aws", "IMDS_URL"),
        (Cloud::Gcp, "azure", "gcp", "GCP_METADATA_URL"),
        (Cloud::Azure, "aws", "azure", "AZURE_METADATA_URL"),
        (Cloud::Alibaba, "aws", "alibaba", "ALIBABA_METADATA_URL"),
    ] {
        let sim = Sim::start(node_on(on)).unwrap();
        let mut h = Handler::start(&sim, &[("CLOUD", wrong), ("IMDS_TIMEOUT", "1s")]);
        let status = h.wait_exit(LONG).expect("exits");
        record_requests(&format!("detection_wrong_{wrong}_on_{}", on.name()), &sim);
        assert_eq!(status.code(), Some(2), "{}", h.dump());
        let last = h.logs().last().cloned().unwrap();
        assert!(
            last.contains("level=error")
                && last.contains("invalid CLOUD: expected the cloud this node runs on")
                && last.contains(&format!(
                    "got \\\"{wrong}\\\", but the {answers} metadata service answers ({setting})"
                )),
            "{last}"
        );
        // Nothing was done: the node was read, never written.
        assert!(sim.api_requests().iter().all(|r| r.method == "GET"));
    }
}

#[test]
fn an_explicit_cloud_that_answers_is_used() {
    let sim = Sim::start(node_on(Cloud::Alibaba).provider_id("")).unwrap();
    let (h, line) = chosen(&sim, &[("CLOUD", "alibaba"), ("IMDS_TIMEOUT", "1s")]);
    record_requests("detection_explicit_alibaba", &sim);
    assert!(
        line.contains("cloud=alibaba")
            && line.contains("CLOUD=alibaba; its metadata service answers"),
        "{line}"
    );
    h.wait_for(polling_of(Cloud::Alibaba), LONG);
}

#[test]
fn notice_url_is_the_seed_mode_and_only_with_aws() {
    let sim = Sim::start(node_on(Cloud::Gcp)).unwrap();
    let url = format!("{}/latest/meta-data/spot/termination-time", sim.imds_url());
    let (h, line) = chosen(&sim, &[("NOTICE_URL", &url)]);
    assert!(
        line.contains("cloud=aws") && line.contains("NOTICE_URL is set: the seed's AWS mode"),
        "{line}"
    );
    h.wait_for(&format!("polling {url} every"), LONG);
    let mut bad = Handler::start(&sim, &[("NOTICE_URL", &url), ("CLOUD", "gcp")]);
    let status = bad.wait_exit(LONG).expect("exits");
    record_requests("detection_notice_url", &sim);
    assert_eq!(status.code(), Some(2));
    assert!(
        bad.dump().contains(
            "invalid CLOUD: expected auto or aws with NOTICE_URL (the seed's AWS mode), or NOTICE_URL unset, got \\\"gcp\\\""
        ),
        "{}",
        bad.dump()
    );
}
