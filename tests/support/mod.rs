//! Shared test support: run the real handler binary against the simulator and watch its logs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use stnh_sim::child::Child;
use stnh_sim::Sim;

pub const BIN: &str = env!("CARGO_BIN_EXE_spot-termination-notice-handler");

/// A running handler process whose stderr lines are collected.
pub struct Handler {
    proc: Child,
}

/// The environment a test handler gets: nothing inherited from this machine (so no real
/// endpoint can leak in), the simulator's endpoints, a fast poll, then the test's extras.
pub fn handler_env(sim: &Sim, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut with_poll = vec![("POLL_INTERVAL", "200ms")];
    with_poll.extend_from_slice(extra);
    sim.handler_env_with(&with_poll)
}

impl Handler {
    pub fn start(sim: &Sim, extra: &[(&str, &str)]) -> Handler {
        Handler::start_cmd(Command::new(BIN), handler_env(sim, extra))
    }

    /// Starts the handler and waits until its start-up API calls are done: it is polling, idle.
    pub fn start_idle(sim: &Sim, extra: &[(&str, &str)]) -> Handler {
        let h = Handler::start(sim, extra);
        h.wait_for("polling", Duration::from_secs(30));
        eventually("start-up calls done", Duration::from_secs(30), || {
            sim.api_requests().iter().any(|r| r.path == "/api/v1")
        });
        h
    }

    /// Starts `cmd` (the handler, or a wrapper such as `unshare`) with `env` only.
    /// `STNH_TEST_ECHO=1` echoes its log.
    pub fn start_cmd(cmd: Command, env: Vec<(String, String)>) -> Handler {
        let echo = std::env::var_os("STNH_TEST_ECHO").map(|_| "[handler] ");
        Handler {
            proc: Child::spawn(cmd, env, echo).expect("spawn the handler"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn logs(&self) -> Vec<String> {
        self.proc.lines()
    }

    pub fn dump(&self) -> String {
        self.logs().join("\n")
    }

    /// Waits until a log line contains `needle`; panics with the whole log after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            if let Some(l) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if Instant::now() > end {
                panic!(
                    "no log line with {needle:?} within {timeout:?}; log:\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn count(&self, needle: &str) -> usize {
        self.logs().iter().filter(|l| l.contains(needle)).count()
    }

    /// Index of the first line containing `needle`.
    pub fn position(&self, needle: &str) -> Option<usize> {
        self.logs().iter().position(|l| l.contains(needle))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

/// Writes every API request the test made, as `METHOD PATH?QUERY` lines, to
/// `target/api-requests/<test>.log`: `make rbac-check` replays them against the ClusterRole.
pub fn record_requests(test: &str, sim: &Sim) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("api-requests");
    std::fs::create_dir_all(&dir).expect("create target/api-requests");
    let body: String = sim
        .api_requests()
        .iter()
        .map(|r| format!("{} {}\n", r.method, r.path))
        .collect();
    std::fs::write(dir.join(format!("{test}.log")), body).expect("write the request log");
}

/// Events and `nodes/status` requests (and the start-up discovery of events.k8s.io): the
/// handler's background worker sends them at its own pace, so they interleave with the rest.
pub fn is_report(r: &stnh_sim::ApiRequest) -> bool {
    r.path.contains("/events") || r.path.ends_with("/status")
}

/// The API requests of the start-up and action path, in order, without the reports.
pub fn action_requests(sim: &Sim) -> Vec<stnh_sim::ApiRequest> {
    sim.api_requests()
        .into_iter()
        .filter(|r| !is_report(r))
        .collect()
}

/// Waits until the API server has seen no new request for 500 ms (a killed handler's last
/// Events and condition write have landed).
pub fn settled(sim: &Sim) {
    let mut n = sim.api_requests().len();
    let mut quiet_since = Instant::now();
    eventually("the API requests settle", Duration::from_secs(30), || {
        let now = sim.api_requests().len();
        if now != n {
            n = now;
            quiet_since = Instant::now();
        }
        quiet_since.elapsed() >= Duration::from_millis(500)
    });
}

/// What a restarted handler reads at start-up (node, events.k8s.io discovery, Eviction
/// discovery), and nothing else.
pub fn startup_reads() -> Vec<String> {
    vec![
        format!("GET /api/v1/nodes/{NODE}"),
        "GET /apis/events.k8s.io/v1".to_string(),
        "GET /api/v1".to_string(),
    ]
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

use stnh_sim::{PodSpec, Scenario};

pub const NODE: &str = "node-a";

/// A node with one pod of each kind kubectl drain distinguishes, plus the handler's own pod.
/// Evictable: shop/web-1, shop/web-2, shop/cache-0, default/debug, data/db-0, batch/report-1.
pub fn mixed_node() -> Scenario {
    let quick = Duration::from_millis(300);
    Scenario::new(NODE)
        .handler_pod()
        .pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("shop", "web-2")
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(quick)
                .grace(60),
        )
        .pod(
            PodSpec::new("shop", "cache-0")
                .replicaset("cache-5f6")
                .empty_dir()
                .shutdown(quick),
        )
        .pod(PodSpec::new("default", "debug").shutdown(quick).grace(5))
        .pod(
            PodSpec::new("data", "db-0")
                .statefulset("db")
                .shutdown(quick),
        )
        .pod(
            PodSpec::new("batch", "report-1")
                .job("report")
                .phase("Succeeded"),
        )
        .pod(PodSpec::new("logging", "fluentd-x1").daemonset("fluentd"))
        .pod(PodSpec::new("kube-system", "kube-proxy-node-a").mirror())
}

pub const MIXED_EVICTABLE: [&str; 6] = [
    "shop/web-1",
    "shop/web-2",
    "shop/cache-0",
    "default/debug",
    "data/db-0",
    "batch/report-1",
];

/// `ns/name` of the pod an eviction or pod DELETE path names.
pub fn pod_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    let ns = parts.next()?;
    (parts.next()? == "pods").then_some(())?;
    let name = parts.next()?.split('?').next()?;
    Some(format!("{ns}/{name}"))
}

/// Statuses of the eviction POSTs for one pod, in order.
pub fn eviction_statuses(sim: &Sim, pod: &str) -> Vec<u16> {
    sim.api_requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.ends_with("/eviction")
                && pod_of(&r.path).as_deref() == Some(pod)
        })
        .map(|r| r.status)
        .collect()
}

pub fn annotation(node: &serde_json::Value, key: &str) -> Option<String> {
    node["metadata"]["annotations"][format!("spot-termination-notice-handler/{key}")]
        .as_str()
        .map(String::from)
}

/// Keys of our taints on a node.
pub fn our_taints(node: &serde_json::Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str())
                .filter(|k| k.starts_with("spot-termination-notice-handler/"))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub const LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The node is held by us for `reason` (our taint key suffix): cordoned, our one taint, the
/// load-balancer label, and `phase`.
pub fn assert_held(node: &serde_json::Value, reason: &str, phase: &str) {
    assert_eq!(node["spec"]["unschedulable"], true, "{node:#}");
    assert_eq!(
        our_taints(node),
        [format!("spot-termination-notice-handler/{reason}")],
        "{node:#}"
    );
    assert_eq!(
        node["metadata"]["labels"][LB_LABEL], "spot-termination-notice-handler",
        "{node:#}"
    );
    assert_eq!(
        annotation(node, "phase").as_deref(),
        Some(phase),
        "{node:#}"
    );
}

/// The node is back in service: schedulable, none of our taints, label or annotations.
pub fn assert_released(node: &serde_json::Value) {
    assert_ne!(node["spec"]["unschedulable"], true, "{node:#}");
    assert!(our_taints(node).is_empty(), "{node:#}");
    assert!(
        node["metadata"]["labels"].get(LB_LABEL).is_none(),
        "{node:#}"
    );
    let ours: Vec<&String> = node["metadata"]["annotations"]
        .as_object()
        .map(|a| {
            a.keys()
                .filter(|k| k.starts_with("spot-termination-notice-handler/"))
                .collect()
        })
        .unwrap_or_default();
    assert!(ours.is_empty(), "{ours:?}");
}

/// `spot-termination-notice-handler/deadline` as a wall-clock time.
pub fn deadline_annotation(node: &serde_json::Value) -> Option<std::time::SystemTime> {
    let s = annotation(node, "deadline")?;
    let t = stnh_sim::util::parse_rfc3339(&s)?;
    Some(t)
}

/// PATCHes of the node whose body sets `spec.unschedulable` to true.
pub fn cordon_patches(sim: &Sim) -> Vec<stnh_sim::ApiRequest> {
    sim.api_requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.starts_with("/api/v1/nodes/")
                && serde_json::from_str::<serde_json::Value>(&r.body)
                    .is_ok_and(|b| b["spec"]["unschedulable"] == true)
        })
        .collect()
}

/// The API requests from start-up to the first pod list, reports aside: read the node,
/// discovery, then (on the notice) the cordon patch and the taint patch, and the list of the
/// node's pods.
pub fn assert_api_head(sim: &Sim) {
    let head: Vec<String> = action_requests(sim)
        .iter()
        .take(5)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        head,
        [
            format!("GET /api/v1/nodes/{NODE}"),
            "GET /api/v1".to_string(),
            format!("PATCH /api/v1/nodes/{NODE}"),
            format!("PATCH /api/v1/nodes/{NODE}"),
            format!("GET /api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}&limit=500"),
        ]
    );
}
