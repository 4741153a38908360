//! Scenario presets shared by the simulator's CLI and the benchmark.

use std::time::Duration;

use crate::{PodSpec, Scenario};

/// The `bench` preset: `n` ReplicaSet pods (10 per ReplicaSet) with grace 10/30/60 s and app
/// shutdown 0.2–3.0 s, no PDB, plus 3 DaemonSet pods.
pub fn bench(mut s: Scenario, n: usize) -> Scenario {
    for i in 0..n {
        let rs = format!("bench-{:02}-5d8f7c", i / 10);
        let grace = [10, 30, 60][i % 3];
        let shutdown = Duration::from_millis(200 + ((i * 37) % 29) as u64 * 100);
        s = s.pod(
            PodSpec::new("bench", &format!("{rs}-{}", crate::util::name_suffix()))
                .replicaset(&rs)
                .labels(&[("app", &format!("bench-{:02}", i / 10))])
                .grace(grace)
                .shutdown(shutdown),
        );
    }
    for ds in ["aws-node", "ebs-csi-node", "node-exporter"] {
        s = s.pod(
            PodSpec::new(
                "kube-system",
                &format!("{ds}-{}", crate::util::name_suffix()),
            )
            .daemonset(ds),
        );
    }
    s
}
