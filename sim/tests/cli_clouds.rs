//! The `stnh-sim` binary per cloud: the banner names each cloud's story and metadata URLs, the
//! env file has all four URLs, and the summary counts metadata requests.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stnh-sim");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .output()
        .expect("run stnh-sim");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn demo_story_per_cloud() {
    let dir = std::env::temp_dir().join(format!("stnh-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (cloud, node, story) in [
        (
            "aws",
            "ip-10-0-1-23.ec2.internal",
            "terminate visible at +5.0s, time = +40.0s",
        ),
        (
            "gcp",
            "gke-prod-spot-pool-4f2a9c1e-x7kq",
            "instance/preempted = TRUE at +5.0s",
        ),
        (
            "azure",
            "aks-spotpool-12345678-vmss000003",
            "Preempt event at +5.0s, NotBefore = +35.0s",
        ),
        (
            "alibaba",
            "cn-hangzhou.10.0.1.23",
            "termination-time at +5.0s = +45.0s",
        ),
    ] {
        let env_file = dir.join(format!("{cloud}.env"));
        let (code, out) = run(&[
            "--cloud",
            cloud,
            "--quiet",
            "--latency",
            "0",
            "--env-file",
            env_file.to_str().unwrap(),
            "--run",
            "--",
            "sh",
            "-c",
            "exit 3",
        ]);
        assert_eq!(code, 3, "the child's exit code\n{out}");
        assert!(
            out.contains(&format!("node {node}")),
            "{cloud}: node name\n{out}"
        );
        assert!(out.contains(story), "{cloud}: story {story:?}\n{out}");
        assert!(
            out.contains(&format!("(cloud {cloud})")),
            "{cloud}: summary\n{out}"
        );
        let env = std::fs::read_to_string(&env_file).unwrap();
        for var in [
            "IMDS_URL=http://127.0.0.1:",
            "GCP_METADATA_URL=http://127.0.0.1:",
            "AZURE_METADATA_URL=http://127.0.0.1:",
            "ALIBABA_METADATA_URL=http://127.0.0.1:",
        ] {
            assert!(env.contains(var), "{cloud}: {var}\n{env}");
        }
    }
    let (code, out) = run(&["--cloud", "oracle"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("--cloud: expected aws, gcp, azure or alibaba, got \"oracle\""),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
