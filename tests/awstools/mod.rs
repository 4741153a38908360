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
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                format!(
                    "\n##########\n## SKIPPED {test}: python3 with botocore/boto3/moto is not available and pip could not install it:\n## {why}\n## (under CI this is a failure)\n##########\n"
                )
                .as_bytes(),
            );
            false
        }
    }
}

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::Mutex;

/// moto on 127.0.0.1 (`tests/aws/moto_helper.py`), one per test binary, shared by its tests
/// (each uses its own group and user names). It exits when this process does (its stdin closes).
pub struct Moto {
    pub url: String,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    _child: Child,
}

impl Moto {
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| {
            let mut child = Command::new("python3")
                .arg(dir().join("moto_helper.py"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(if std::env::var_os("STNH_TEST_ECHO").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .spawn()
                .expect("start tests/aws/moto_helper.py");
            let stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout
                .read_line(&mut line)
                .expect("moto helper's first line");
            let hello: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("moto helper did not start ({e}): {line:?}"));
            let url = hello["url"].as_str().expect("moto's URL").to_string();
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
            Moto {
                url,
                io: Mutex::new((stdin, stdout)),
                _child: child,
            }
        })
    }

    /// One command (see the helper's docstring); panics with moto's error.
    pub fn cmd(&self, cmd: serde_json::Value) -> serde_json::Value {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(io.0, "{cmd}").expect("write to the moto helper");
        io.0.flush().unwrap();
        let mut line = String::new();
        io.1.read_line(&mut line)
            .expect("read from the moto helper");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("moto helper said {line:?}: {e}"));
        assert!(v.get("error").is_none(), "moto helper: {cmd} -> {v}");
        v
    }
}
