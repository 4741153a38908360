//! The Python tools of the AWS tests (botocore, boto3, moto; `tests/aws/requirements.txt`):
//! found, or installed with pip when missing. When they cannot be had the test says so loudly
//! and returns; under CI (`CI` set) it fails instead, so CI never skips these tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/aws")
}

fn importable() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import botocore, boto3, moto, moto.server, flask"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn install() -> Result<(), String> {
    importable().or_else(|missing| {
        eprintln!(
            "python tools missing ({missing}); installing tests/aws/requirements.txt with pip"
        );
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(dir().join("requirements.txt"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pip install failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        importable()
    })
}

/// True when botocore, boto3 and moto are usable. False (after a loud message) when they
/// cannot be installed; panics instead when running under CI.
pub fn available(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    match READY.get_or_init(install) {
        Ok(()) => true,
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "{test}: the Python tools are required under CI and could not be had: {why}"
            );
            eprintln!(
                "\n##########\n## SKIPPED {test}: python3 with botocore/boto3/moto is not available and pip could not install it:\n## {why}\n## (under CI this is a failure)\n##########\n"
            );
            false
        }
    }
}
