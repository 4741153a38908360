//! Shared test support: run the real handler binary against the simulator and watch its logs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use stnh_sim::canary;
use stnh_sim::child::Child;
use stnh_sim::webhook::{WebhookKind, WebhookSink};
use stnh_sim::Sim;

pub const BIN: &str = env!("CARGO_BIN_EXE_spot-termination-notice-handler");

/// A running handler process whose stderr lines are collected. When it is dropped or killed, the
/// secrets audit runs (see [`Handler::canary_audit`]).
pub struct Handler {
    proc: Child,
    canaries: Vec<String>,
    audited: bool,
}

/// The webhook sink every test handler reports to unless the test sets `WEBHOOK_URL`: its URL
/// carries the canary [`canary::WEBHOOK_URL`].
fn default_sink() -> &'static WebhookSink {
    static SINK: OnceLock<WebhookSink> = OnceLock::new();
    SINK.get_or_init(|| WebhookSink::start(WebhookKind::Generic).expect("start the webhook sink"))
}

/// The default `WEBHOOK_URL` of a test handler.
pub fn default_webhook_url() -> String {
    format!("{}?sig={}", default_sink().url(), canary::WEBHOOK_URL)
}

/// The environment a test handler gets: nothing inherited from this machine (so no real
/// endpoint can leak in), the simulator's endpoints, a fast poll, canary secrets (a webhook
/// whose URL and header value are canaries, AWS keys and a session token that are canaries;
/// the simulator's token and Slack URL are canaries already), a metrics server on a free
/// port (so the audit can scrape it), then the test's extras. A test that sets a secret
/// setting, `METRICS_ADDR` or anything about AWS credentials or the ASG detach keeps its own.
pub fn handler_env(sim: &Sim, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let set = |k: &str| extra.iter().any(|(ek, _)| *ek == k);
    let webhook = default_webhook_url();
    let header = format!("X-Canary: {}", canary::HEADER_VALUE);
    let mut with_defaults = vec![("POLL_INTERVAL", "200ms")];
    if !set("WEBHOOK_URL") {
        with_defaults.push(("WEBHOOK_URL", &webhook));
    }
    if !set("WEBHOOK_HEADERS") {
        with_defaults.push(("WEBHOOK_HEADERS", &header));
    }
    if !set("METRICS_ADDR") {
        with_defaults.push(("METRICS_ADDR", "127.0.0.1:0"));
    }
    let aws_own = extra
        .iter()
        .any(|(k, _)| k.starts_with("AWS_") || k.starts_with("DETACH_ASG"));
    if !aws_own {
        with_defaults.extend([
            ("AWS_ACCESS_KEY_ID", canary::AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", canary::AWS_SECRET_ACCESS_KEY),
            ("AWS_SESSION_TOKEN", canary::AWS_SESSION_TOKEN),
        ]);
    }
    with_defaults.extend_from_slice(extra);
    sim.handler_env_with(&with_defaults)
}

/// The canaries to look for: the fixed ones, plus the parts of the secret settings the test
/// set itself that are recognizably canaries (they contain `canary`, `secret` or `XXXX`).
fn canaries_of(env: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = canary::all().into_iter().map(String::from).collect();
    const SECRET: [&str; 7] = [
        "SLACK_URL",
        "WEBHOOK_URL",
        "WEBHOOK_HEADERS",
        "WEBHOOK_PROXY",
        "HTTPS_PROXY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ];
    for (k, v) in env {
        if !SECRET.contains(&k.as_str()) {
            continue;
        }
        for part in v.split(|c: char| "/?&=:@, \n\r\t".contains(c)) {
            let l = part.to_ascii_lowercase();
            if part.len() >= 8
                && (l.contains("canary") || l.contains("secret") || l.contains("xxxx"))
            {
                out.push(part.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
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
        let canaries = canaries_of(&env);
        Handler {
            proc: Child::spawn(cmd, env, echo).expect("spawn the handler"),
            canaries,
            audited: false,
        }
    }

    /// The secrets audit of this handler: its whole log (stderr and stdout), a final scrape of
    /// its metrics (while it runs and serves them) and the bodies the default webhook sink
    /// received, searched for every canary. Runs once, when the handler is killed or dropped
    /// (or here); panics naming the canary and where it was found.
    pub fn canary_audit(&mut self) {
        if self.audited {
            return;
        }
        self.audited = true;
        let mut places = Vec::new();
        if let Some(addr) = self.metrics_port() {
            if let Some(body) = scrape_metrics(addr) {
                places.push(("a metrics scrape".to_string(), body));
            }
        }
        for l in self.proc.lines() {
            places.push(("the handler's log (stderr)".to_string(), l));
        }
        for l in self.proc.stdout_lines() {
            places.push(("the handler's stdout".to_string(), l));
        }
        for r in default_sink().requests() {
            places.push((
                "a body the default webhook sink received".to_string(),
                r.body,
            ));
        }
        let hits = canary::hits(&self.canaries, &places);
        canary::mark("handler");
        assert!(
            hits.is_empty(),
            "secrets audit of the handler:\n{}",
            hits.join("\n")
        );
    }

    /// The metrics server's port, from its start-up line (logfmt or JSON).
    fn metrics_port(&self) -> Option<u16> {
        let line = self
            .proc
            .lines()
            .into_iter()
            .find(|l| l.contains("serving /metrics and /healthz"))?;
        let rest = line
            .split_once("port=")
            .or_else(|| line.split_once("\"port\":"))?
            .1
            .trim_start_matches('"');
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
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

    /// True while the process runs (not exited, not a zombie).
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    pub fn kill(&mut self) {
        if !std::thread::panicking() {
            self.canary_audit();
        }
        self.proc.kill();
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.canary_audit();
        }
    }
}

/// One `GET /metrics` with short timeouts; `None` when nothing answers.
fn scrape_metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: audit\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = Vec::new();
    let _ = s.take(16 * 1024 * 1024).read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    text.starts_with("HTTP/1.1 200").then_some(text)
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

/// Metadata polls the simulator has answered so far (every cloud's fake).
pub fn metadata_polls(sim: &Sim) -> usize {
    sim.imds_requests().len()
        + sim.gcp_requests().len()
        + sim.azure_requests().len()
        + sim.alibaba_requests().len()
}

/// The handler is still running and still polling its metadata service: three more polls
/// arrive, and it is still alive after them.
pub fn assert_alive_and_polling(sim: &Sim, h: &Handler) {
    assert!(h.alive(), "the handler exited:\n{}", h.dump());
    let seen = metadata_polls(sim);
    eventually("the handler polls on", Duration::from_secs(60), || {
        metadata_polls(sim) >= seen + 3
    });
    assert!(h.alive(), "the handler exited:\n{}", h.dump());
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

/// Keys of the taints in `spec.taints` of a node (or of a patch of it), in order.
pub fn taint_keys(node: &serde_json::Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["key"].as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Keys of our taints on a node.
pub fn our_taints(node: &serde_json::Value) -> Vec<String> {
    let mut keys = taint_keys(node);
    keys.retain(|k| k.starts_with("spot-termination-notice-handler/"));
    keys
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
/// discovery, then (on the notice) the cordon patch alone and the list of the node's pods. The
/// taints follow the cordon ([`assert_taints_follow_the_cordon`]).
pub fn assert_api_head(sim: &Sim) {
    let head: Vec<String> = action_requests(sim)
        .iter()
        .take(4)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        head,
        [
            format!("GET /api/v1/nodes/{NODE}"),
            "GET /api/v1".to_string(),
            format!("PATCH /api/v1/nodes/{NODE}"),
            format!("GET /api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}&limit=500"),
        ]
    );
    assert_taints_follow_the_cordon(sim);
}

/// The first patch of our taints comes a second after the cordon (node::TAINT_DELAY, never
/// sooner), right after a read of the node, and carries the resourceVersion that read returned;
/// the node's Events and its condition wait for it. Returns that patch.
pub fn assert_taints_follow_the_cordon(sim: &Sim) -> stnh_sim::ApiRequest {
    let reqs = sim.api_requests();
    let node = format!("/api/v1/nodes/{NODE}");
    let cordon = reqs
        .iter()
        .position(|r| {
            r.method == "PATCH"
                && r.path == node
                && r.status == 200
                && r.body.contains("\"unschedulable\":true")
        })
        .expect("a cordon patch that held");
    let taints = reqs
        .iter()
        .position(|r| {
            r.method == "PATCH"
                && r.path == node
                && r.body.contains("\"taints\"")
                && r.body.contains("spot-termination-notice-handler/")
        })
        .expect("a patch of our taints");
    let (c, t) = (&reqs[cordon], &reqs[taints]);
    assert!(
        t.at - c.at >= Duration::from_millis(990),
        "taints {:?} after the cordon",
        t.at - c.at
    );
    let read = reqs[cordon + 1..taints]
        .iter()
        .rev()
        .find(|r| r.path == node)
        .expect("a read of the node before the taints");
    assert_eq!(
        (read.method.as_str(), read.status),
        ("GET", 200),
        "{read:?}"
    );
    assert_eq!(t.status, 200, "the first patch of our taints holds: {t:?}");
    let body: serde_json::Value = serde_json::from_str(&t.body).unwrap();
    assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    let reports: Vec<String> = reqs[cordon + 1..taints]
        .iter()
        .filter(|r| is_report(r))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        reports.is_empty(),
        "Events or the condition before the taints: {reports:?}"
    );
    t.clone()
}
