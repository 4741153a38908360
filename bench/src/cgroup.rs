//! A memory-limited cgroup for one process: cgroup v2 (`memory.max`, `memory.peak`,
//! `memory.events`) when this machine's unified hierarchy has the memory controller, else
//! cgroup v1 (`memory.limit_in_bytes`, `memory.max_usage_in_bytes`, `memory.oom_control`,
//! `memory.failcnt`). The group is created under this process's own cgroup (needs write access
//! there: root, or a delegated subtree) and removed on drop once empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which cgroup version holds the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What the kernel counted in the group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Peak usage (bytes): v2 `memory.peak` (or the largest `memory.current` sampled when the
    /// kernel has no `memory.peak`), v1 `memory.max_usage_in_bytes`.
    pub peak: u64,
    /// OOM kills: v2 `memory.events` `oom_kill`, v1 `memory.oom_control` `oom_kill`.
    pub oom_kills: u64,
    /// Times the limit was hit: v2 `memory.events` `max`, v1 `memory.failcnt` (reclaim, not
    /// necessarily an OOM).
    pub limit_hits: u64,
}

/// A child cgroup with a memory limit.
pub struct Cgroup {
    pub version: Version,
    pub dir: PathBuf,
    pub limit: u64,
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn write(p: &Path, v: &str) -> Result<(), String> {
    std::fs::write(p, v).map_err(|e| format!("write {v:?} to {}: {e}", p.display()))
}

/// `key value` lines (`memory.events`, `memory.oom_control`): the value of `key`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// This process's cgroup path in the hierarchy named by `/proc/self/cgroup`'s line whose
/// controller list is `controllers` (`""` for the v2 line `0::/path`).
fn own_path(controllers: &str) -> Option<String> {
    read(Path::new("/proc/self/cgroup"))?.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, c, p) = (it.next()?, it.next()?, it.next()?);
        (c == controllers || c.split(',').any(|x| x == controllers && !x.is_empty()))
            .then(|| p.to_string())
    })
}

impl Cgroup {
    /// Creates `<own cgroup>/<name>` with `memory.max` (v2) or `memory.limit_in_bytes` (v1) =
    /// `limit` bytes, v2 if possible.
    pub fn create(name: &str, limit: u64) -> Result<Cgroup, String> {
        let mut why = Vec::new();
        match Self::create_v2(name, limit) {
            Ok(c) => return Ok(c),
            Err(e) => why.push(format!("v2: {e}")),
        }
        match Self::create_v1(name, limit) {
            Ok(c) => return Ok(c),
            Err(e) => why.push(format!("v1: {e}")),
        }
        Err(format!(
            "no memory cgroup could be created ({})",
            why.join("; ")
        ))
    }

    fn create_v2(name: &str, limit: u64) -> Result<Cgroup, String> {
        let mount = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(PathBuf::from)
            .find(|m| m.join("cgroup.controllers").is_file())
            .ok_or("no cgroup2 mount")?;
        let own = own_path("").ok_or("no 0:: line in /proc/self/cgroup")?;
        let parent = mount.join(own.trim_start_matches('/'));
        let controllers = read(&parent.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(format!(
                "the memory controller is not available in {} (cgroup.controllers: {:?})",
                parent.display(),
                controllers.trim()
            ));
        }
        let subtree = read(&parent.join("cgroup.subtree_control")).unwrap_or_default();
        if !subtree.split_whitespace().any(|c| c == "memory") {
            write(&parent.join("cgroup.subtree_control"), "+memory")?;
        }
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let c = Cgroup {
            version: Version::V2,
            dir,
            limit,
        };
        write(&c.dir.join("memory.max"), &limit.to_string())?;
        if c.dir.join("memory.swap.max").is_file() {
            write(&c.dir.join("memory.swap.max"), "0")?;
        }
        Ok(c)
    }

    fn create_v1(name: &str, limit: u64) -> Result<Cgroup, String> {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !root.join("memory.limit_in_bytes").is_file() {
            return Err("no v1 memory hierarchy at /sys/fs/cgroup/memory".into());
        }
        let own = own_path("memory").ok_or("no memory line in /proc/self/cgroup")?;
        let dir = root.join(own.trim_start_matches('/')).join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let c = Cgroup {
            version: Version::V1,
            dir,
            limit,
        };
        write(&c.dir.join("memory.limit_in_bytes"), &limit.to_string())?;
        // No swap either (the kubelet's containers get none): memsw = mem.
        if c.dir.join("memory.memsw.limit_in_bytes").is_file() {
            write(
                &c.dir.join("memory.memsw.limit_in_bytes"),
                &limit.to_string(),
            )?;
        }
        Ok(c)
    }

    /// The file a pid is written to, to move it into the group.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Usage now, in bytes (v2 `memory.current`, v1 `memory.usage_in_bytes`).
    pub fn current(&self) -> Option<u64> {
        let f = match self.version {
            Version::V2 => "memory.current",
            Version::V1 => "memory.usage_in_bytes",
        };
        read(&self.dir.join(f))?.trim().parse().ok()
    }

    /// The kernel's counters; `sampled_peak` stands in for `memory.peak` on a v2 kernel without it.
    pub fn usage(&self, sampled_peak: u64) -> Usage {
        match self.version {
            Version::V2 => {
                let events = read(&self.dir.join("memory.events")).unwrap_or_default();
                Usage {
                    peak: read(&self.dir.join("memory.peak"))
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(sampled_peak),
                    oom_kills: keyed(&events, "oom_kill").unwrap_or(0),
                    limit_hits: keyed(&events, "max").unwrap_or(0),
                }
            }
            Version::V1 => {
                let oom = read(&self.dir.join("memory.oom_control")).unwrap_or_default();
                Usage {
                    peak: read(&self.dir.join("memory.max_usage_in_bytes"))
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(sampled_peak),
                    oom_kills: keyed(&oom, "oom_kill").unwrap_or(0),
                    limit_hits: read(&self.dir.join("memory.failcnt"))
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0),
                }
            }
        }
    }

    /// The files the figures come from, for the report.
    pub fn describe(&self) -> String {
        match self.version {
            Version::V2 => format!(
                "cgroup v2 `{}`: `memory.max` = {} bytes, `memory.swap.max` = 0; peak from `memory.peak`, OOM kills from `memory.events`",
                self.dir.display(),
                self.limit
            ),
            Version::V1 => format!(
                "cgroup v1 `{}` (this machine has no v2 memory controller): `memory.limit_in_bytes` = `memory.memsw.limit_in_bytes` = {} bytes; peak from `memory.max_usage_in_bytes`, OOM kills from `memory.oom_control` (`oom_kill`), limit hits from `memory.failcnt`",
                self.dir.display(),
                self.limit
            ),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The group can only go once its processes are gone (the caller killed them).
        let end = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `16Mi`, `32Mi`, `1Gi`, `64M`, `500000` → bytes (the Kubernetes quantities a memory limit uses).
pub fn parse_quantity(s: &str) -> Option<u64> {
    let s = s.trim().trim_matches('"');
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let m: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(m)
}

/// The container memory limit of `manifests/daemonset.yaml` (the `memory:` line under
/// `limits:`), as written and in bytes.
pub fn manifest_limit(daemonset_yaml: &str) -> Option<(String, u64)> {
    let mut in_limits = false;
    for line in daemonset_yaml.lines() {
        let t = line.trim();
        if t.starts_with("limits:") {
            in_limits = true;
            continue;
        }
        if in_limits {
            if let Some(v) = t.strip_prefix("memory:") {
                let v = v.trim().to_string();
                let bytes = parse_quantity(&v)?;
                return Some((v, bytes));
            }
            if t.ends_with(':') && !t.starts_with('#') {
                in_limits = false;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_the_manifest_limit() {
        assert_eq!(parse_quantity("32Mi"), Some(32 << 20));
        assert_eq!(parse_quantity("\"48Mi\""), Some(48 << 20));
        assert_eq!(parse_quantity("64M"), Some(64_000_000));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("12Xi"), None);
        let y = "resources:\n  requests:\n    cpu: 5m\n    memory: 16Mi\n  limits:\n    cpu: 100m\n    memory: 32Mi\n";
        assert_eq!(manifest_limit(y), Some(("32Mi".into(), 32 << 20)));
        assert_eq!(manifest_limit("requests:\n  memory: 16Mi\n"), None);
    }

    #[test]
    fn keyed_lines() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(t, "oom_kill"), Some(2));
        assert_eq!(keyed(t, "under_oom"), Some(0));
        assert_eq!(
            keyed("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n", "max"),
            Some(7)
        );
        assert_eq!(keyed(t, "missing"), None);
    }
}
