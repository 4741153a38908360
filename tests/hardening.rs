//! The container's security context, for real: the binary runs as a non-root user (65532, the
//! manifests' `runAsUser`), with no capabilities (none permitted, effective, inheritable, ambient
//! or in the bounding set), `no_new_privs` (`allowPrivilegeEscalation: false`), and a root
//! filesystem on which nothing is writable but `/dev/termination-log` (`readOnlyRootFilesystem:
//! true`): a fresh mount namespace whose root is a read-only tmpfs holding the binary, the
//! service-account directory, read-only `/usr` (for the dynamic loader), a read-only `/proc`,
//! and a `/dev/termination-log` bound to a file of the test's. HOME, TMPDIR and the working
//! directory are read-only directories of that root.
//!
//! In it the handler drains a node (the drain is what needs the API server, the metadata
//! service and the metrics server), without one write error, and leaves
//! `/dev/termination-log` empty; a second run with an invalid setting writes its one-line error
//! there and nowhere else.
//!
//! Needs root (or it cannot make the mount namespace and change users): without it the test
//! fails under `CI=true` and says it skipped otherwise. (`setpriv --pdeathsig`: a change of user
//! clears `unshare --kill-child`'s parent-death signal, so it is set again after it.)

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use stnh_sim::Sim;
use support::*;

const LONG: Duration = Duration::from_secs(60);
const UID: &str = "65532";

/// Builds the root in a new mount namespace, then `chroot` + `setpriv` into the handler.
const JAIL: &str = r#"
set -eu
R="$1"; BIN="$2"; SA="$3"; TLOG="$4"
mount --make-rprivate /
mount -t tmpfs -o size=64k,mode=0755 stnh-rootfs "$R"
cd "$R"
mkdir proc sa dev usr home
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then
    ln -s "$(readlink "/$d")" "$d"
  elif [ -d "/$d" ]; then
    mkdir "$d"; mount --rbind "/$d" "$d"; mount -o remount,bind,ro "$d"
  fi
done
mount --rbind /usr usr; mount -o remount,bind,ro usr
touch handler dev/termination-log
mount --bind "$BIN" handler; mount -o remount,bind,ro handler
mount --bind "$SA" sa; mount -o remount,bind,ro sa
mount --bind "$TLOG" dev/termination-log
mount -t proc -o ro,nosuid,nodev,noexec proc proc
cd /
mount -o remount,ro "$R"
exec chroot "$R" /usr/bin/setpriv --reuid=65532 --regid=65532 --clear-groups \
  --inh-caps=-all --bounding-set=-all --no-new-privs --pdeathsig KILL -- /handler
"#;

/// Whether this machine can build the jail (root, util-linux `unshare`, `setpriv`, `chroot`).
fn jail_available() -> Result<(), String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Err("not root: the mount namespace and the change of user need it".into());
    }
    for (cmd, args) in [
        ("unshare", &["--mount", "--fork", "true"][..]),
        (
            "setpriv",
            &["--reuid=65532", "--regid=65532", "--clear-groups", "true"][..],
        ),
        ("chroot", &["/", "true"][..]),
    ] {
        let ok = Command::new(cmd).args(args).status();
        if !ok.as_ref().is_ok_and(|s| s.success()) {
            return Err(format!("`{cmd} {}` failed: {ok:?}", args.join(" ")));
        }
    }
    Ok(())
}

fn require_jail(test: &str) -> bool {
    match jail_available() {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test} needs root, unshare, setpriv and chroot: {why}"
            );
            eprintln!("\n!!! SKIPPED {test}: {why} (CI fails instead).\n");
            false
        }
    }
}

struct Jail {
    dir: PathBuf,
    root: PathBuf,
    termination_log: PathBuf,
}

impl Jail {
    fn new(name: &str) -> Jail {
        let dir = std::env::temp_dir().join(format!("stnh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let termination_log = dir.join("termination-log");
        std::fs::write(&termination_log, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&termination_log, std::fs::Permissions::from_mode(0o666)).unwrap();
        // The test directory is traversable by the handler's user (the termination log's
        // bind mount is made by root, the file is opened by 65532 through it).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Jail {
            dir,
            root,
            termination_log,
        }
    }

    fn command(&self, sa: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            JAIL,
            "sh",
        ])
        .arg(&self.root)
        .arg(BIN)
        .arg(sa)
        .arg(&self.termination_log);
        cmd
    }

    fn env(&self, sim: &Sim, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = vec![
            ("SERVICE_ACCOUNT_DIR", "/sa"),
            ("HOME", "/home"),
            ("TMPDIR", "/home"),
        ];
        all.extend_from_slice(extra);
        handler_env(sim, &all)
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PID (in our namespace) of the only child of `parent`.
fn child_of(parent: u32) -> u32 {
    let mut found = None;
    eventually("unshare started its child", LONG, || {
        let path = format!("/proc/{parent}/task/{parent}/children");
        found = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
        found.is_some()
    });
    found.unwrap()
}

fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn the_handler_drains_as_non_root_without_capabilities_on_a_read_only_root() {
    if !require_jail("the_handler_drains_as_non_root_without_capabilities_on_a_read_only_root") {
        return;
    }
    let jail = Jail::new("rootfs");
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_cmd(jail.command(&sim.sa_dir()), jail.env(&sim, &[]));
    h.wait_for("polling", LONG);
    eventually("start-up calls done", LONG, || {
        sim.api_requests().iter().any(|r| r.path == "/api/v1")
    });
    // The handler (chroot and setpriv exec'd into it) is unshare's child.
    let pid = child_of(h.pid());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&status, "Name"), "handler", "{status}");
    assert_eq!(
        status_field(&status, "Uid"),
        format!("{UID} {UID} {UID} {UID}")
    );
    assert_eq!(
        status_field(&status, "Gid"),
        format!("{UID} {UID} {UID} {UID}")
    );
    assert_eq!(status_field(&status, "Groups"), "");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    // Every mount the handler sees is read-only but the termination log.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mut writable = Vec::new();
    let mut seen = Vec::new();
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (point, opts) = (f[4], f[5]);
        seen.push(point.to_string());
        if !opts.split(',').any(|o| o == "ro") {
            writable.push(point.to_string());
        }
    }
    assert_eq!(writable, ["/dev/termination-log"], "{mounts}");
    for p in ["/", "/usr", "/sa", "/proc", "/handler"] {
        assert!(seen.iter().any(|s| s == p), "{p} not mounted: {mounts}");
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(cwd, root, "the working directory is the (read-only) root");

    let deadline = SystemTime::now() + Duration::from_secs(60);
    sim.set_notice("terminate", deadline);
    let done = h.wait_for("msg=\"drain finished\"", LONG);
    assert!(
        done.contains(" evicted=6 ") && done.contains(" failed=0 "),
        "{done}\n{}",
        h.dump()
    );
    assert_eq!(
        annotation(&sim.node(NODE).unwrap(), "phase").as_deref(),
        Some("drained")
    );
    assert_alive_and_polling(&sim, &h);
    // Not one write was tried and refused, and nothing went to the termination log.
    for refused in [
        "Read-only file system",
        "os error 30",
        "Permission denied",
        "os error 13",
    ] {
        assert_eq!(h.count(refused), 0, "{refused}:\n{}", h.dump());
    }
    assert_eq!(std::fs::read_to_string(&jail.termination_log).unwrap(), "");
    drop(h);
    // The root's mount point on this side never saw a file.
    assert_eq!(std::fs::read_dir(&jail.root).unwrap().count(), 0);
}

#[test]
fn a_configuration_error_in_the_jail_goes_to_the_termination_log_only() {
    if !require_jail("a_configuration_error_in_the_jail_goes_to_the_termination_log_only") {
        return;
    }
    let jail = Jail::new("rootfs-bad");
    let sim = Sim::start(mixed_node()).unwrap();
    let mut h = Handler::start_cmd(
        jail.command(&sim.sa_dir()),
        jail.env(&sim, &[("POLL_INTERVAL", "soon")]),
    );
    let status = h.wait_exit(LONG).expect("the handler exits");
    assert_eq!(status.code(), Some(2), "{}", h.dump());
    let written = std::fs::read_to_string(&jail.termination_log).unwrap();
    assert!(
        written.starts_with("invalid POLL_INTERVAL") && !written.contains('\n'),
        "{written:?}\n{}",
        h.dump()
    );
    assert!(sim.api_requests().is_empty());
    assert_eq!(std::fs::read_dir(&jail.root).unwrap().count(), 0);
}
