//! `stnh-sim`: runs the simulator (fake metadata services of AWS, GCE, Azure and Alibaba + fake
//! TLS kube-apiserver + Slack sink) on 127.0.0.1 with a preset scenario, prints one line per request, and optionally runs the handler
//! (or anything else) against it with the right environment.
//!
//! Dev/test tool only: it never talks to a real service.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use stnh_sim::store::{controller_of, is_terminating};
use stnh_sim::timeline;
use stnh_sim::util::{parse_duration, rfc3339};
use stnh_sim::{
    Cloud, ImdsMode, MaintenanceEvent, PodSpec, Scenario, Sim, SimEvent, Strategy, WebhookKind,
};

const HELP: &str = "\
stnh-sim: development simulator for spot-termination-notice-handler

USAGE:
  stnh-sim [OPTIONS] [--run -- CMD ARGS...]

OPTIONS:
  --scenario demo|bench   preset (default demo)
  --cloud C               aws|gcp|azure|alibaba: the node's providerID and labels, and which
                          metadata service answers (default aws)
  --pods N                bench: number of ReplicaSet pods (default 100)
  --node NAME             node name (default per cloud: ip-10-0-1-23.ec2.internal,
                          gke-prod-spot-pool-4f2a9c1e-x7kq, aks-spotpool-12345678-vmss000003,
                          cn-hangzhou.10.0.1.23)
  --latency D             API latency per request (default 2ms; 0 disables)
  --notice-after D        the cloud's notice appears D after start (demo default 5s; bench: none):
                          aws spot notice, gcp instance/preempted=TRUE, azure Preempt event,
                          alibaba termination-time
  --deadline D            aws notice `time` / azure NotBefore / alibaba termination-time =
                          appearance + D (default aws 35s, azure 30s, alibaba 40s; gcp: the
                          real ~30 s, not settable)
  --action A              aws: terminate|stop|hibernate (default terminate)
  --rebalance-after D     aws: a rebalance recommendation appears D after start
  --scheduled-event E     aws: CODE@+NOTBEFORE (e.g. system-reboot@+15m), an active scheduled
                          event from the start; repeatable
  --asg-terminated-after D  aws: target-lifecycle-state InService, Terminated from D on
  --clock-skew D          the metadata services' clock runs D ahead of this machine's (-D: behind)
  --imds MODE             optional|required|token-403|token-hang (default optional)
  --eviction-version V    v1 (default) or v1beta1 (old cluster)
  --replacement-ready D   replacement pods become Ready after D (default 2s; 'never')
  --deployment NS/NAME:N[:SURGE,UNAVAILABLE|:recreate]
                          add an apps/v1 Deployment of N pods on the node (repeatable;
                          default strategy RollingUpdate 25%/25%), e.g. shop/web:3:1,0
  --no-events-v1          serve no events.k8s.io/v1 (a cluster older than 1.19)
  --webhook KIND          start a webhook sink: generic|teams|googlechat|discord|pagerduty
                          (repeatable; URLs are printed, requests logged)
  --proxy                 start an HTTP CONNECT proxy (127.0.0.1 targets only)
  --env-file PATH         write KEY=VALUE lines for the handler
  --kubeconfig PATH       write a kubeconfig for real kubectl
  --api-log PATH          at exit, write every API request as a JSON line
  --timeline PATH         at exit, draw the drain as an SVG timeline (notice to deadline, the
                          cordon, one row per pod), from the API and workload logs
  --reserve D             the handler's DRAIN_RESERVE, for the timeline (default 20s)
  --exit-after D          stop after D (default 60s with --run, else run until killed)
  --done-words W1,W2      exit 1s after a Slack message containing one of these arrives while the
                          node is cordoned (default: drained,drain complete,drain finished,
                          drain incomplete,drain failed,drain timed out,drain aborted)
  --quiet                 do not print one line per request
  --run -- CMD ARGS...    run CMD with the handler environment; exit when it exits
  -h, --help              this text

Durations: 250ms, 2s, 1.5s, 3m.";

struct Args {
    scenario: String,
    cloud: Cloud,
    pods: usize,
    node: String,
    latency: Duration,
    notice_after: Option<Duration>,
    deadline: Duration,
    action: String,
    rebalance_after: Option<Duration>,
    scheduled: Vec<(String, i64)>,
    asg_terminated_after: Option<Duration>,
    clock_skew_ms: i64,
    imds: ImdsMode,
    eviction_version: String,
    replacement_ready: Option<Duration>,
    deployments: Vec<(String, String, i64, Strategy)>,
    events_v1: bool,
    webhooks: Vec<WebhookKind>,
    proxy: bool,
    env_file: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    api_log: Option<PathBuf>,
    timeline: Option<PathBuf>,
    reserve: Duration,
    exit_after: Option<Duration>,
    done_words: Vec<String>,
    quiet: bool,
    run: Vec<String>,
}

fn parse_args(raw: Vec<String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        scenario: "demo".into(),
        cloud: Cloud::Aws,
        pods: 100,
        node: String::new(),
        latency: Duration::from_millis(2),
        notice_after: None,
        deadline: Duration::ZERO,
        action: "terminate".into(),
        rebalance_after: None,
        scheduled: Vec::new(),
        asg_terminated_after: None,
        clock_skew_ms: 0,
        imds: ImdsMode::Optional,
        eviction_version: "v1".into(),
        replacement_ready: Some(Duration::from_secs(2)),
        deployments: Vec::new(),
        events_v1: true,
        webhooks: Vec::new(),
        proxy: false,
        env_file: None,
        kubeconfig: None,
        api_log: None,
        timeline: None,
        reserve: Duration::from_secs(20),
        exit_after: None,
        done_words: [
            "drained",
            "drain complete",
            "drain finished",
            "drain incomplete",
            "drain failed",
            "drain timed out",
            "drain aborted",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        quiet: false,
        run: Vec::new(),
    };
    let mut notice_set = false;
    let mut deadline_set = false;
    let mut it = raw.into_iter();
    let dur = |flag: &str, v: Option<String>| -> Result<Duration, String> {
        let v = v.ok_or_else(|| format!("{flag}: missing value"))?;
        parse_duration(&v).ok_or_else(|| format!("{flag}: bad duration {v:?}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--scenario" => a.scenario = it.next().ok_or("--scenario: missing value")?,
            "--cloud" => {
                let v = it.next().ok_or("--cloud: missing value")?;
                a.cloud = Cloud::parse(&v).ok_or_else(|| {
                    format!("--cloud: expected aws, gcp, azure or alibaba, got {v:?}")
                })?;
            }
            "--rebalance-after" => a.rebalance_after = Some(dur("--rebalance-after", it.next())?),
            "--asg-terminated-after" => {
                a.asg_terminated_after = Some(dur("--asg-terminated-after", it.next())?)
            }
            "--scheduled-event" => {
                let v = it.next().ok_or("--scheduled-event: missing value")?;
                a.scheduled.push(parse_scheduled(&v)?);
            }
            "--clock-skew" => {
                let v = it.next().ok_or("--clock-skew: missing value")?;
                a.clock_skew_ms = parse_signed_ms(&v).ok_or_else(|| {
                    format!("--clock-skew: expected a duration such as -5m or 30s, got {v:?}")
                })?;
            }
            "--pods" => {
                let v = it.next().ok_or("--pods: missing value")?;
                a.pods = v.parse().map_err(|_| format!("--pods: bad number {v:?}"))?;
            }
            "--node" => a.node = it.next().ok_or("--node: missing value")?,
            "--latency" => a.latency = dur("--latency", it.next())?,
            "--notice-after" => {
                a.notice_after = Some(dur("--notice-after", it.next())?);
                notice_set = true;
            }
            "--deadline" => {
                a.deadline = dur("--deadline", it.next())?;
                deadline_set = true;
            }
            "--action" => a.action = it.next().ok_or("--action: missing value")?,
            "--imds" => {
                let v = it.next().ok_or("--imds: missing value")?;
                a.imds = match v.as_str() {
                    "optional" => ImdsMode::Optional,
                    "required" => ImdsMode::Required,
                    "token-hang" => ImdsMode::TokenHang,
                    "disabled" => ImdsMode::Disabled,
                    other => match other.strip_prefix("token-").and_then(|s| s.parse().ok()) {
                        Some(code) => ImdsMode::TokenStatus(code),
                        None => return Err(format!("--imds: unknown mode {other:?}")),
                    },
                }
            }
            "--eviction-version" => {
                a.eviction_version = it.next().ok_or("--eviction-version: missing value")?
            }
            "--replacement-ready" => {
                let v = it.next().ok_or("--replacement-ready: missing value")?;
                a.replacement_ready = if v == "never" {
                    None
                } else {
                    Some(parse_duration(&v).ok_or(format!("--replacement-ready: bad {v:?}"))?)
                };
            }
            "--deployment" => {
                let v = it.next().ok_or("--deployment: missing value")?;
                a.deployments.push(parse_deployment(&v)?);
            }
            "--no-events-v1" => a.events_v1 = false,
            "--webhook" => {
                let v = it.next().ok_or("--webhook: missing value")?;
                a.webhooks.push(WebhookKind::parse(&v).ok_or_else(|| {
                    format!(
                        "--webhook: expected generic|teams|googlechat|discord|pagerduty, got {v:?}"
                    )
                })?);
            }
            "--proxy" => a.proxy = true,
            "--env-file" => a.env_file = Some(it.next().ok_or("--env-file: missing value")?.into()),
            "--kubeconfig" => {
                a.kubeconfig = Some(it.next().ok_or("--kubeconfig: missing value")?.into())
            }
            "--api-log" => a.api_log = Some(it.next().ok_or("--api-log: missing value")?.into()),
            "--timeline" => a.timeline = Some(it.next().ok_or("--timeline: missing value")?.into()),
            "--reserve" => a.reserve = dur("--reserve", it.next())?,
            "--exit-after" => a.exit_after = Some(dur("--exit-after", it.next())?),
            "--done-words" => {
                let v = it.next().ok_or("--done-words: missing value")?;
                a.done_words = v.split(',').map(|s| s.trim().to_lowercase()).collect();
            }
            "--quiet" => a.quiet = true,
            "--run" => {
                a.run = it.by_ref().skip_while(|s| s == "--").collect();
                if a.run.is_empty() {
                    return Err("--run: missing command".into());
                }
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if !notice_set && a.scenario == "demo" {
        a.notice_after = Some(Duration::from_secs(5));
    }
    if !deadline_set {
        a.deadline = Duration::from_secs(match a.cloud {
            Cloud::Aws => 35,
            Cloud::Gcp | Cloud::Azure => 30,
            Cloud::Alibaba => 40,
        });
    }
    if a.node.is_empty() {
        a.node = default_node(a.cloud).to_string();
    }
    if !matches!(a.scenario.as_str(), "demo" | "bench") {
        return Err(format!("--scenario: unknown preset {:?}", a.scenario));
    }
    if !a.run.is_empty() && a.exit_after.is_none() {
        a.exit_after = Some(Duration::from_secs(60));
    }
    Ok(Some(a))
}

/// The node name a cluster of that cloud would give the spot node.
fn default_node(c: Cloud) -> &'static str {
    match c {
        Cloud::Aws => "ip-10-0-1-23.ec2.internal",
        Cloud::Gcp => "gke-prod-spot-pool-4f2a9c1e-x7kq",
        Cloud::Azure => "aks-spotpool-12345678-vmss000003",
        Cloud::Alibaba => "cn-hangzhou.10.0.1.23",
    }
}

/// `system-reboot@+15m` -> ("system-reboot", 900).
fn parse_scheduled(v: &str) -> Result<(String, i64), String> {
    let err = || {
        format!("--scheduled-event: expected CODE@+NOTBEFORE such as system-reboot@+15m, got {v:?}")
    };
    let (code, when) = v.split_once('@').ok_or_else(err)?;
    if code.is_empty() {
        return Err(err());
    }
    let ms = parse_signed_ms(when).ok_or_else(err)?;
    Ok((code.to_string(), ms / 1000))
}

/// `-5m`, `+30s`, `90s` -> milliseconds.
fn parse_signed_ms(v: &str) -> Option<i64> {
    let (neg, rest) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let ms = parse_duration(rest)?.as_millis() as i64;
    Some(if neg { -ms } else { ms })
}

/// `NS/NAME:N[:SURGE,UNAVAILABLE|:recreate]`.
fn parse_deployment(v: &str) -> Result<(String, String, i64, Strategy), String> {
    let bad =
        || format!("--deployment: expected NS/NAME:N[:SURGE,UNAVAILABLE|:recreate], got {v:?}");
    let mut parts = v.split(':');
    let (ns, name) = parts
        .next()
        .and_then(|p| p.split_once('/'))
        .ok_or_else(bad)?;
    let n: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let strategy = match parts.next() {
        None => Strategy::default(),
        Some("recreate") => Strategy::recreate(),
        Some(fp) => {
            let (s, u) = fp.split_once(',').ok_or_else(bad)?;
            let iop = |x: &str| -> Value {
                x.parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(x))
            };
            Strategy::rolling_update(iop(s), iop(u))
        }
    };
    if parts.next().is_some() || ns.is_empty() || name.is_empty() || n < 0 {
        return Err(bad());
    }
    Ok((ns.to_string(), name.to_string(), n, strategy))
}

/// ~20 pods of every kind the handler must tell apart.
fn demo(s: Scenario, cloud: Cloud, node: &str) -> Scenario {
    // The node's networking and storage DaemonSets, as that cloud's clusters name them.
    let (net, csi) = match cloud {
        Cloud::Aws => ("aws-node", "ebs-csi-node"),
        Cloud::Gcp => ("netd", "pdcsi-node"),
        Cloud::Azure => ("azure-cns", "csi-azuredisk-node"),
        Cloud::Alibaba => ("terway-eniip", "csi-plugin"),
    };
    let secs = |x: f64| Duration::from_secs_f64(x);
    let mut s = s.handler_pod();
    for (i, name) in [
        "web-7d4b9c-xk2lp",
        "web-7d4b9c-9fzq4",
        "web-7d4b9c-hw7tn",
        "web-7d4b9c-m2b8c",
    ]
    .iter()
    .enumerate()
    {
        s = s.pod(
            PodSpec::new("shop", name)
                .replicaset("web-7d4b9c")
                .labels(&[("app", "web")])
                .shutdown(secs(1.0 + i as f64 * 0.5)),
        );
    }
    for (i, name) in ["api-5f6d7c-4dq9r", "api-5f6d7c-8lmxs", "api-5f6d7c-tz6wv"]
        .iter()
        .enumerate()
    {
        s = s.pod(
            PodSpec::new("shop", name)
                .replicaset("api-5f6d7c")
                .labels(&[("app", "api")])
                .shutdown(secs(3.0 - i as f64)),
        );
    }
    // Fully covered by a PDB that can never allow a disruption.
    for name in [
        "checkout-6c8d9f-2xk4p",
        "checkout-6c8d9f-7bqlw",
        "checkout-6c8d9f-vn5rd",
    ] {
        s = s.pod(
            PodSpec::new("shop", name)
                .replicaset("checkout-6c8d9f")
                .labels(&[("app", "checkout")])
                .shutdown(secs(2.0)),
        );
    }
    s = s.pdb(
        "shop",
        "checkout-pdb",
        &[("app", "checkout")],
        None,
        Some(0),
    );
    // Two coredns replicas under maxUnavailable 1: the second eviction waits for a replacement.
    for name in ["coredns-6b9c8f-5kq2w", "coredns-6b9c8f-rj8xz"] {
        s = s.pod(
            PodSpec::new("kube-system", name)
                .replicaset("coredns-6b9c8f")
                .labels(&[("k8s-app", "kube-dns")])
                .shutdown(secs(1.0)),
        );
    }
    s = s.pdb(
        "kube-system",
        "coredns",
        &[("k8s-app", "kube-dns")],
        None,
        Some(1),
    );
    s.pod(
        PodSpec::new("monitoring", "grafana-7c5d8b-q4zkt")
            .replicaset("grafana-7c5d8b")
            .empty_dir()
            .shutdown(secs(1.5)),
    )
    .pod(
        PodSpec::new("kube-system", &format!("{net}-8x2kd"))
            .daemonset(net)
            .host_network(),
    )
    .pod(PodSpec::new("kube-system", &format!("{csi}-p7wqm")).daemonset(csi))
    .pod(
        PodSpec::new("kube-system", &format!("kube-proxy-{node}"))
            .mirror()
            .host_network(),
    )
    .pod(
        PodSpec::new("default", "debug-shell")
            .shutdown(secs(0.5))
            .grace(5),
    )
    .pod(
        PodSpec::new("data", "redis-0")
            .statefulset("redis")
            .shutdown(secs(2.5))
            .grace(30),
    )
    .pod(
        PodSpec::new("batch", "report-28901234-h8kzt")
            .job("report-28901234")
            .phase("Succeeded"),
    )
}

/// N ReplicaSet pods with mixed grace and shutdown, 3 DaemonSet pods, no PDB.
fn printer(start: Instant) -> stnh_sim::Observer {
    Arc::new(move |e: &SimEvent| {
        let t = start.elapsed().as_secs_f64();
        let line = match e {
            SimEvent::Api(r) => {
                format!("[api] {} {} -> {}", r.method, r.path, status_text(r.status))
            }
            SimEvent::Imds(r) => format!(
                "[imds] {} {}{} -> {}",
                r.method,
                r.path,
                if r.token_sent { " (v2)" } else { "" },
                status_text(r.status)
            ),
            SimEvent::Metadata(r) => format!(
                "[{}] {} {} -> {}{}",
                r.cloud.name(),
                r.method,
                r.path,
                status_text(r.status),
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.note)
                }
            ),
            SimEvent::Slack(m) => {
                let text = m.text().unwrap_or_else(|| m.body.clone());
                let text = text.replace('\n', " | ");
                if m.status == 200 {
                    format!("[slack] {text}")
                } else {
                    format!("[slack] ({}) {text}", status_text(m.status))
                }
            }
            SimEvent::Webhook(kind, r) => {
                let verdict = match &r.check {
                    Ok(()) => "shape ok".to_string(),
                    Err(p) => format!("shape: {}", p.join("; ")),
                };
                let body: String = r.body.chars().take(200).collect();
                format!(
                    "[{}] {} -> {} ({verdict}) {}",
                    kind.name(),
                    r.method,
                    status_text(r.status),
                    body.replace('\n', " ")
                )
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{t:7.3}s] {line}");
    })
}

fn status_text(s: u16) -> String {
    if s == 0 {
        "no answer".into()
    } else {
        s.to_string()
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn done(sim: &Sim, words: &[String]) -> bool {
    let cordoned = sim
        .node(sim.node_name())
        .is_some_and(|n| n["spec"]["unschedulable"] == true);
    cordoned
        && sim.slack_messages().iter().any(|m| {
            let t = m.text().unwrap_or_else(|| m.body.clone()).to_lowercase();
            words
                .iter()
                .any(|w| !w.is_empty() && t.contains(w.as_str()))
        })
}

/// SIGTERM first (the handler shuts down cleanly on it), SIGKILL after 5 s.
fn stop_child(child: &mut Child) -> Option<i32> {
    if let Ok(Some(st)) = child.try_wait() {
        return st.code();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().ok().and_then(|s| s.code())
}

fn pod_kind(p: &Value) -> String {
    if p.pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return "mirror".into();
    }
    controller_of(p)
        .map(|(k, _)| k)
        .unwrap_or_else(|| "unmanaged".into())
}

fn summary(sim: &Sim, started: Instant, child_code: Option<Option<i32>>) {
    let node = sim.node(sim.node_name()).unwrap_or(Value::Null);
    let taints: Vec<String> = node["spec"]["taints"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    format!(
                        "{}{}:{}",
                        t["key"].as_str().unwrap_or(""),
                        t["value"]
                            .as_str()
                            .map(|v| format!("={v}"))
                            .unwrap_or_default(),
                        t["effect"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let left = sim.pods_on(sim.node_name());
    let reqs = sim.api_requests();
    let mut evictions: BTreeMap<u16, usize> = BTreeMap::new();
    for r in reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
    {
        *evictions.entry(r.status).or_default() += 1;
    }
    let deletes = reqs
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/pods/"))
        .count();
    println!();
    println!(
        "== stnh-sim summary after {:.1}s ==",
        started.elapsed().as_secs_f64()
    );
    println!(
        "node {}: unschedulable={} taints=[{}]",
        sim.node_name(),
        node["spec"]["unschedulable"].as_bool().unwrap_or(false),
        taints.join(", ")
    );
    println!("pods left on the node: {}", left.len());
    for p in &left {
        let state = if is_terminating(p) {
            "Terminating".to_string()
        } else {
            p["status"]["phase"].as_str().unwrap_or("?").to_string()
        };
        println!(
            "  {:<14} {:<44} {:<12} {}",
            p["metadata"]["namespace"].as_str().unwrap_or(""),
            p["metadata"]["name"].as_str().unwrap_or(""),
            state,
            pod_kind(p)
        );
    }
    let ev: Vec<String> = evictions
        .iter()
        .map(|(s, n)| format!("{n} x {s}"))
        .collect();
    println!(
        "evictions: {} ({}); pod DELETEs: {}",
        evictions.values().sum::<usize>(),
        if ev.is_empty() {
            "none".into()
        } else {
            ev.join(", ")
        },
        deletes
    );
    println!("slack messages: {}", sim.slack_messages().len());
    println!(
        "API requests: {} over {} TLS connections; IMDS requests: {}",
        reqs.len(),
        sim.tls_connections(),
        sim.imds_requests().len()
    );
    println!(
        "metadata requests: aws {}, gcp {}, azure {}, alibaba {} (cloud {})",
        sim.imds_requests().len(),
        sim.gcp_requests().len(),
        sim.azure_requests().len(),
        sim.alibaba_requests().len(),
        sim.cloud().name()
    );
    if let Some(code) = child_code {
        match code {
            Some(c) => println!("child exit code: {c}"),
            None => println!("child killed by a signal"),
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("stnh-sim: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stnh-sim: {e}");
            ExitCode::from(1)
        }
    }
}

fn reach_text(sim: &Sim, c: Cloud) -> String {
    match sim.reach(c) {
        stnh_sim::Reach::Own => "this fake".into(),
        stnh_sim::Reach::Host => format!("the {} fake at the same address", sim.cloud().name()),
        stnh_sim::Reach::Refused => "connection refused".into(),
        stnh_sim::Reach::Silent => "never answers".into(),
    }
}

fn notice_text(a: &Args, sim: &Sim, d: Duration) -> String {
    let t0 = sim.started().1;
    let at = |x: Duration| format!("+{:.1}s ({})", x.as_secs_f64(), rfc3339(t0 + x));
    match a.cloud {
        Cloud::Aws => format!(
            "{} visible at +{:.1}s, time = {}",
            a.action,
            d.as_secs_f64(),
            at(d + a.deadline)
        ),
        Cloud::Gcp => format!(
            "instance/preempted = TRUE at +{:.1}s (hard power-off about 30 s later)",
            d.as_secs_f64()
        ),
        Cloud::Azure => format!(
            "Preempt event at +{:.1}s, NotBefore = {}",
            d.as_secs_f64(),
            at(d + a.deadline)
        ),
        Cloud::Alibaba => format!(
            "termination-time at +{:.1}s = {} (real notices come ~5 min ahead)",
            d.as_secs_f64(),
            at(d + a.deadline)
        ),
    }
}

/// The notice the timeline starts at: the AWS notice as the fake serves it, else the scheduled
/// appearance plus the cloud's deadline (GCP: the ~30 s before the hard power-off).
fn notice_window(a: &Args, sim: &Sim) -> Option<timeline::Window> {
    let (notice, deadline) = match sim.aws_notice() {
        Some(n) if a.cloud == Cloud::Aws => n,
        _ => {
            let at = sim.started().0 + a.notice_after?;
            (at, at + a.deadline)
        }
    };
    Some(timeline::Window {
        notice,
        deadline,
        reserve: a.reserve,
    })
}

fn run(a: Args) -> std::io::Result<ExitCode> {
    let started = Instant::now();
    let mut s = Scenario::new(&a.node)
        .cloud(a.cloud)
        .clock_skew(a.clock_skew_ms)
        .latency(a.latency)
        .imds_mode(a.imds)
        .eviction_version(&a.eviction_version)
        .replacement_ready_after(a.replacement_ready)
        .events_k8s_io(a.events_v1);
    for k in &a.webhooks {
        s = s.webhook_sink(*k);
    }
    if a.proxy {
        s = s.connect_proxy(None);
    }
    for (ns, name, n, strategy) in &a.deployments {
        s = s.deployment(
            ns,
            name,
            *n,
            strategy.clone(),
            &[("app", name)],
            PodSpec::new(ns, name).shutdown(Duration::from_secs(1)),
        );
    }
    if let Some(d) = a.notice_after {
        s = match a.cloud {
            Cloud::Aws => s.notice_after(d, &a.action, a.deadline),
            Cloud::Gcp => s.gcp_preempt_after(d),
            Cloud::Azure => s.azure_event_after(d, "Preempt", a.deadline),
            Cloud::Alibaba => s.alibaba_termination_after(d, a.deadline),
        };
    }
    if let Some(d) = a.rebalance_after {
        s = s.rebalance_after(d);
    }
    for (code, nb) in &a.scheduled {
        s = s.scheduled_event_after(Duration::ZERO, MaintenanceEvent::new(code, *nb));
    }
    if let Some(d) = a.asg_terminated_after {
        s = s.asg_terminated_after(d);
    }
    s = match a.scenario.as_str() {
        "bench" => stnh_sim::presets::bench(s, a.pods),
        _ => demo(s, a.cloud, &a.node),
    };
    if !a.quiet {
        s = s.observer(printer(started));
    }
    let sim = Sim::start(s)?;
    let sa = sim.sa_dir();
    println!(
        "stnh-sim: scenario {}, node {}, {} pods on it",
        a.scenario,
        sim.node_name(),
        sim.pods_on(sim.node_name()).len()
    );
    for c in [Cloud::Aws, Cloud::Gcp, Cloud::Azure, Cloud::Alibaba] {
        println!(
            "  {:<11} {}  ({} -> {})",
            match c {
                Cloud::Aws => "IMDS",
                Cloud::Gcp => "GCE md",
                Cloud::Azure => "Azure IMDS",
                Cloud::Alibaba => "Alibaba md",
            },
            match c {
                Cloud::Aws => sim.imds_url(),
                Cloud::Gcp => sim.gcp_metadata_url(),
                Cloud::Azure => sim.azure_metadata_url(),
                Cloud::Alibaba => sim.alibaba_metadata_url(),
            },
            c.env_var(),
            reach_text(&sim, c)
        );
    }
    println!(
        "  API server  {}  (CA {}, token {})",
        sim.api_url(),
        sa.join("ca.crt").display(),
        sa.join("token").display()
    );
    println!("  Slack       {}", sim.slack_url());
    for w in sim.webhook_sinks() {
        println!("  {:<11} {}", w.kind().name(), w.url());
    }
    if let Some(p) = sim.proxy() {
        println!("  proxy       {} (CONNECT to 127.0.0.1 only)", p.url());
    }
    match a.notice_after {
        Some(d) => println!("  notice      {}", notice_text(&a, &sim, d)),
        None => println!("  notice      none"),
    }
    if a.clock_skew_ms != 0 {
        println!(
            "  clock       metadata services run {:+.1}s from this machine's clock",
            a.clock_skew_ms as f64 / 1000.0
        );
    }
    let env = sim.handler_env();
    if let Some(path) = &a.env_file {
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(path, text)?;
        println!("  env file    {}", path.display());
    }
    if let Some(path) = &a.kubeconfig {
        sim.write_kubeconfig(path)?;
        println!("  kubeconfig  {}", path.display());
    }
    if a.run.is_empty() {
        println!("  handler env:");
        for (k, v) in &env {
            println!("    {k}={}", shell_quote(v));
        }
    }
    let _ = std::io::stdout().flush();

    let mut child = if a.run.is_empty() {
        None
    } else {
        Some(
            Command::new(&a.run[0])
                .args(&a.run[1..])
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .spawn()
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot run {:?}: {e}", a.run[0]))
                })?,
        )
    };
    let mut notice_announced = a.notice_after.is_none();
    let mut done_at: Option<Instant> = None;
    let mut child_code = None;
    loop {
        sleep(Duration::from_millis(100));
        if !notice_announced && started.elapsed() >= a.notice_after.unwrap_or_default() {
            notice_announced = true;
            if !a.quiet {
                println!(
                    "[{:7.3}s] [sim] {}",
                    started.elapsed().as_secs_f64(),
                    match a.cloud {
                        Cloud::Aws =>
                            "spot notice is now visible at /latest/meta-data/spot/instance-action",
                        Cloud::Gcp => "instance/preempted is now TRUE (about 30 s left)",
                        Cloud::Azure => "a Preempt event is now in /metadata/scheduledevents",
                        Cloud::Alibaba => "instance/spot/termination-time is now set",
                    }
                );
            }
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                child_code = Some(st.code());
                child = None;
                break;
            }
        }
        if a.exit_after.is_some_and(|d| started.elapsed() >= d) {
            if !a.quiet {
                println!(
                    "[{:7.3}s] [sim] --exit-after reached",
                    started.elapsed().as_secs_f64()
                );
            }
            break;
        }
        match done_at {
            None if done(&sim, &a.done_words) => done_at = Some(Instant::now()),
            Some(t) if t.elapsed() >= Duration::from_secs(1) => {
                if !a.quiet {
                    println!(
                        "[{:7.3}s] [sim] node cordoned and drain summary received; stopping",
                        started.elapsed().as_secs_f64()
                    );
                }
                break;
            }
            _ => {}
        }
    }
    if let Some(mut c) = child.take() {
        child_code = Some(stop_child(&mut c));
    }
    summary(&sim, started, child_code);
    if let Some(path) = &a.api_log {
        sim.write_api_log(path)?;
        println!("API request log written to {}", path.display());
    }
    if let Some(path) = &a.timeline {
        match notice_window(&a, &sim) {
            Some(w) => {
                std::fs::write(path, timeline::render(&sim.timeline(w)))?;
                println!("drain timeline written to {}", path.display());
            }
            None => eprintln!("stnh-sim: --timeline: no notice was scheduled, nothing to draw"),
        }
    }
    Ok(match child_code {
        Some(Some(c)) => ExitCode::from(c.clamp(0, 255) as u8),
        Some(None) => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        parse_args(s.split_whitespace().map(String::from).collect())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn flags() {
        let a = args("--scenario bench --pods 7 --latency 0 --imds token-404 --quiet");
        assert_eq!(
            (a.scenario.as_str(), a.pods, a.latency),
            ("bench", 7, Duration::ZERO)
        );
        assert_eq!(a.imds, ImdsMode::TokenStatus(404));
        assert!(a.quiet && a.notice_after.is_none() && a.exit_after.is_none());
        let a = args("--run -- echo hi --quiet");
        assert_eq!(a.run, vec!["echo", "hi", "--quiet"]);
        assert_eq!(a.notice_after, Some(Duration::from_secs(5)));
        assert_eq!(a.exit_after, Some(Duration::from_secs(60)));
        assert!(parse_args(vec!["--bogus".into()]).is_err());
        assert_eq!(a.node, "ip-10-0-1-23.ec2.internal");
        assert_eq!(a.deadline, Duration::from_secs(35));
        let a = args("--cloud azure --clock-skew -5m --scheduled-event system-reboot@+15m --scheduled-event instance-stop@-30s --rebalance-after 2s --asg-terminated-after 9s");
        assert_eq!(a.cloud, Cloud::Azure);
        assert_eq!(a.node, "aks-spotpool-12345678-vmss000003");
        assert_eq!(a.deadline, Duration::from_secs(30));
        assert_eq!(a.clock_skew_ms, -300_000);
        assert_eq!(
            a.scheduled,
            vec![
                ("system-reboot".to_string(), 900),
                ("instance-stop".to_string(), -30)
            ]
        );
        assert_eq!(a.rebalance_after, Some(Duration::from_secs(2)));
        assert_eq!(a.asg_terminated_after, Some(Duration::from_secs(9)));
        let a = args("--cloud alibaba --deadline 5m");
        assert_eq!(a.deadline, Duration::from_secs(300));
        for bad in [
            "--cloud oracle",
            "--scheduled-event system-reboot",
            "--scheduled-event @+5m",
            "--clock-skew soon",
        ] {
            assert!(
                parse_args(bad.split(' ').map(String::from).collect()).is_err(),
                "{bad}"
            );
        }
        let a = args("--deployment shop/web:3:1,0 --deployment a/b:1:recreate --no-events-v1");
        assert_eq!(a.deployments[0].2, 3);
        assert_eq!(a.deployments[0].3, Strategy::rolling_update(1, 0));
        assert_eq!(a.deployments[1].3, Strategy::recreate());
        assert!(!a.events_v1);
        let a = args("--webhook teams --webhook pd --proxy");
        assert_eq!(a.webhooks, vec![WebhookKind::Teams, WebhookKind::PagerDuty]);
        assert!(a.proxy);
        assert!(parse_args(vec!["--webhook".into(), "irc".into()]).is_err());
        assert!(parse_args(vec!["--deployment".into(), "web:3".into()]).is_err());
        assert!(parse_args(vec!["--help".into()]).unwrap().is_none());
    }

    #[test]
    fn presets_have_the_promised_pods() {
        let sim = Sim::start(demo(Scenario::new("n1"), Cloud::Gcp, "n1")).unwrap();
        assert!(sim.pod("kube-system", "kube-proxy-n1").is_some());
        assert!(sim.pod("kube-system", "pdcsi-node-p7wqm").is_some());
        let pods = sim.pods_on("n1");
        assert!((18..=24).contains(&pods.len()), "{}", pods.len());
        assert!(sim.handler_pod_name().is_some());
        let sim = Sim::start(stnh_sim::presets::bench(Scenario::new("n1"), 25)).unwrap();
        assert_eq!(sim.pods_on("n1").len(), 28);
    }
}
