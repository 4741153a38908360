//! Scenario 5: the node of scenario 4 drained by the real
//! `kubectl drain --force --ignore-daemonsets --delete-emptydir-data` (no handler running), and
//! the side-by-side ratios with the handler's runs of the same `make bench`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stnh_sim::Sim;

use super::drain::{
    discovery, event_writes, last_accepted, non_eviction, requests_table, Ours, PODS,
};
use super::{bench_scenario, ms, Ctx, Outcome, DAEMONSET_PODS, NODE};
use crate::apilog::Counts;
use crate::report::{Section, Table, TargetRow};
use crate::stats::{fmt, median};

const REQUESTS_RATIO_TARGET: f64 = 0.1;

/// One `kubectl drain`; times in ms from its start.
pub(super) struct Kubectl {
    pub exit: f64,
    pub all_gone: f64,
    pub last_accepted: f64,
    pub accepted: usize,
    pub counts: Counts,
    pub tls_connections: usize,
    pub throttled: usize,
}

/// Runs `kubectl drain` against a fresh simulator with the same pod mix.
pub(super) fn once(ctx: &Ctx) -> Result<Kubectl, String> {
    let sim = Sim::start(bench_scenario(PODS, ctx.latency)).map_err(|e| e.to_string())?;
    let dir = ctx.scratch("kubectl")?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(&ctx.kubectl)
        .env_clear()
        .env("HOME", &home)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "drain",
            NODE,
            "--force",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", ctx.kubectl))?;
    let mut pipes = Vec::new();
    for mut p in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        pipes.push(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = p.read_to_string(&mut text);
            text
        }));
    }
    let mut all_gone = None;
    let status = loop {
        if all_gone.is_none() && sim.pod_count_on(NODE) <= DAEMONSET_PODS {
            all_gone = Some(Instant::now());
        }
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("kubectl drain did not finish within 180 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let exit = start.elapsed().as_secs_f64() * 1000.0;
    let output: String = pipes
        .into_iter()
        .map(|p| p.join().unwrap_or_default())
        .collect();
    if !status.success() || !output.contains("drained") {
        return Err(format!(
            "kubectl drain failed ({status}):\n{}",
            output.lines().rev().take(10).collect::<Vec<_>>().join("\n")
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let reqs = sim.api_requests();
    let (last, accepted) = last_accepted(&reqs, ctx.latency).ok_or("no eviction accepted")?;
    Ok(Kubectl {
        exit,
        all_gone: all_gone.map_or(f64::NAN, |t| ms(start, t)),
        last_accepted: ms(start, last),
        accepted,
        counts: Counts::of(&reqs),
        tls_connections: sim.tls_connections(),
        throttled: output
            .lines()
            .filter(|l| l.contains("client-side throttling"))
            .count(),
    })
}

pub(super) fn section(
    ctx: &Ctx,
    runs: &[Kubectl],
    ours: &[Ours],
    targets: &mut Vec<TargetRow>,
) -> Outcome {
    let version = crate::machine::first_line(&ctx.kubectl, &["version", "--client"])
        .unwrap_or_else(|| "unknown version".into());
    let mut s = Section::new(
        "kubectl",
        &format!("5. The same node drained by `kubectl drain` ({version})"),
        if ours.is_empty() {
            ctx.reproduce("kubectl")
        } else {
            ctx.reproduce("drain,kubectl")
        },
    );
    s.para(format!(
        "`kubectl drain {NODE} --force --ignore-daemonsets --delete-emptydir-data --timeout=120s` against a fresh simulator per run with the same pod mix and latency, \
         no handler running, a fresh `HOME` (so a cold discovery cache, as every new simulator has a new port anyway). Wall time = kubectl's start → exit (it exits once \
         every pod is gone; it checks each pod with a GET once a second). {} runs{}.",
        runs.len(),
        if ours.is_empty() {
            String::new()
        } else {
            ", alternating with the handler's runs of section 4".to_string()
        }
    ));
    s.para("kubectl's requests, by verb and path:");
    let counts: Vec<&Counts> = runs.iter().map(|k| &k.counts).collect();
    s.table(requests_table(&counts));
    let throttled: Vec<String> = runs.iter().map(|k| k.throttled.to_string()).collect();
    s.para(format!(
        "kubectl logged “Waited … due to client-side throttling, not priority and fairness” {} times per run: client-go's default limiter (5 requests/s, burst 10), \
         which kubectl does not let you change, paces its evictions and GETs. Evictions accepted per run: {}.",
        throttled.join(", "),
        runs.iter()
            .map(|k| k.accepted.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if ours.is_empty() {
        return Outcome {
            section: s,
            targets: Vec::new(),
            raw: json!(runs
                .iter()
                .map(|k| json!({"exit_ms": k.exit, "requests": k.counts.total()}))
                .collect::<Vec<_>>()),
        };
    }

    // Side by side: medians of each, and their ratio.
    let mut t = Table::new(&[
        "Per drain (median of runs)",
        ">Handler",
        ">kubectl drain",
        ">Ratio handler / kubectl",
    ]);
    let mut ratio_row = |name: &str, a: f64, b: f64, digits: usize| {
        t.row([
            name.to_string(),
            fmt(a, digits),
            fmt(b, digits),
            if b > 0.0 {
                format!("{:.3}", a / b)
            } else {
                "n/a".into()
            },
        ]);
    };
    let om = |f: fn(&Ours) -> f64| median(&ours.iter().map(f).collect::<Vec<_>>());
    let km = |f: fn(&Kubectl) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    ratio_row(
        "Wall time, ms: notice → drain done (handler) / start → exit (kubectl)",
        om(|o| o.done),
        km(|k| k.exit),
        0,
    );
    ratio_row(
        "Time to all pods gone, ms (from the notice / from kubectl's start)",
        om(|o| o.all_gone),
        km(|k| k.all_gone),
        0,
    );
    ratio_row(
        "Time to all evictions accepted, ms",
        om(|o| o.last_accepted),
        km(|k| k.last_accepted),
        0,
    );
    let total_o = om(|o| o.counts.total() as f64);
    let total_k = km(|k| k.counts.total() as f64);
    ratio_row("**API requests, total**", total_o, total_k, 0);
    ratio_row(
        "Eviction POSTs (one per pod: unavoidable)",
        om(|o| (o.counts.total() - non_eviction(&o.counts)) as f64),
        km(|k| (k.counts.total() - non_eviction(&k.counts)) as f64),
        0,
    );
    ratio_row(
        "**API requests other than the evictions**",
        om(|o| non_eviction(&o.counts) as f64),
        km(|k| non_eviction(&k.counts) as f64),
        0,
    );
    ratio_row(
        "  of which Event writes (one per evicted pod, and the node's)",
        om(|o| event_writes(&o.counts) as f64),
        km(|k| event_writes(&k.counts) as f64),
        0,
    );
    ratio_row(
        "  of which discovery documents",
        om(|o| discovery(&o.counts) as f64),
        km(|k| discovery(&k.counts) as f64),
        0,
    );
    ratio_row(
        "TLS connections opened",
        om(|o| o.tls_connections as f64),
        km(|k| k.tls_connections as f64),
        0,
    );
    s.para("Side by side: the handler's figures are those of section 4 (polling every 0.2 s; at the default `POLL_INTERVAL` add the detection delay of section 3), its requests counted \
            from the notice on, so without its 2 start-up requests. Ratios are of the medians.");
    s.table(t);
    let mut verbs = Table::new(&[
        "Requests by verb (median per run)",
        ">Handler",
        ">kubectl drain",
    ]);
    let mut all_verbs: Vec<String> = ours
        .iter()
        .flat_map(|o| o.counts.by_verb().into_keys())
        .chain(runs.iter().flat_map(|k| k.counts.by_verb().into_keys()))
        .collect();
    all_verbs.sort();
    all_verbs.dedup();
    for v in all_verbs {
        let o = median(
            &ours
                .iter()
                .map(|o| *o.counts.by_verb().get(&v).unwrap_or(&0) as f64)
                .collect::<Vec<_>>(),
        );
        let k = median(
            &runs
                .iter()
                .map(|k| *k.counts.by_verb().get(&v).unwrap_or(&0) as f64)
                .collect::<Vec<_>>(),
        );
        verbs.row([v, fmt(o, 0), fmt(k, 0)]);
    }
    s.table(verbs);
    let ratio = total_o / total_k;
    targets.push(TargetRow {
        target: format!("API requests for a {PODS}-pod drain ≤ 0.1× kubectl drain's"),
        measured: format!(
            "{ratio:.2}× ({total_o:.0} vs {total_k:.0}); without the {PODS} evictions: {:.2}× ({:.0} vs {:.0}), of which {:.0} Event writes (kubectl: none)",
            om(|o| non_eviction(&o.counts) as f64) / km(|k| non_eviction(&k.counts) as f64),
            om(|o| non_eviction(&o.counts) as f64),
            km(|k| non_eviction(&k.counts) as f64),
            om(|o| event_writes(&o.counts) as f64),
        ),
        met: Some(ratio <= REQUESTS_RATIO_TARGET),
        reproduce: ctx.reproduce("drain,kubectl"),
    });
    let raw = json!(runs
        .iter()
        .map(|k| json!({"exit_ms": k.exit, "all_gone_ms": k.all_gone, "last_accepted_ms": k.last_accepted,
            "accepted": k.accepted, "requests": k.counts.total(), "non_eviction": non_eviction(&k.counts),
            "discovery": discovery(&k.counts), "tls_connections": k.tls_connections, "throttled": k.throttled}))
        .collect::<Vec<_>>());
    Outcome {
        section: s,
        targets: Vec::new(),
        raw,
    }
}
