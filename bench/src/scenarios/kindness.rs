//! Scenarios 8 and 9, least harm (issue 11):
//!
//! - `tiers`: a 110-pod drain (100 ordinary pods of the `bench` mix and 10 critical ones) in
//!   `EVICTION_ORDER=tiers` and `parallel`: time from detection to the last accepted eviction, and
//!   how long the critical pods keep running after detection.
//! - `availability`: workload availability through a reclaim. Five Deployments on the node (with
//!   and without budgets, one of them a one-replica Deployment under `minAvailable: 1`),
//!   replacements Ready 5 s after they are created on the other node. Per Deployment,
//!   replica-seconds below its desired Ready count from the notice until every replacement is
//!   Ready: the handler with `SURGE_BLOCKED` false (the default), `true` and `budgeted`, and the
//!   real `kubectl drain` on the same state. At the deadline the simulator reclaims the node: whatever is still on it disappears.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stnh_sim::workloads::{AvailabilityRow, Change, Strategy};
use stnh_sim::{PodSpec, Scenario, Sim};

use super::drain::last_accepted;
use super::{
    bench_scenario, detection, ms, notice_at_random_moment, progress, Ctx, Outcome, DAEMONSET_PODS,
    NODE,
};
use crate::handler::{wait_for, Handler};
use crate::report::{Section, Table, TargetRow};
use crate::stats::{fmt, Summary};

const POLL: Duration = Duration::from_millis(200);
const DEADLINE_IN: Duration = Duration::from_secs(120);
const ORDINARY: usize = 100;
const CRITICAL: usize = 10;

fn tiers_scenario(ctx: &Ctx) -> Scenario {
    let mut s = bench_scenario(ORDINARY, ctx.latency);
    for i in 0..CRITICAL {
        let shutdown = Duration::from_millis(300 + (i as u64 * 113) % 700);
        let p = match i {
            0..=1 => PodSpec::new("kube-system", &format!("coredns-5d78c9-{i}x"))
                .replicaset("coredns-5d78c9")
                .priority_class("system-cluster-critical"),
            2..=4 => PodSpec::new("ingress", &format!("ingress-nginx-controller-7c9-{i}x"))
                .replicaset("ingress-nginx-controller-7c9")
                .priority_class("ingress-critical")
                .priority(2_000_000_000),
            5..=7 => PodSpec::new("kube-system", &format!("ebs-csi-controller-6f4-{i}x"))
                .replicaset("ebs-csi-controller-6f4")
                .priority_class("system-cluster-critical"),
            _ => PodSpec::new("kube-system", &format!("metrics-server-85c-{i}x"))
                .replicaset("metrics-server-85c")
                .priority_class("system-node-critical"),
        };
        s = s.pod(p.grace(30).shutdown(shutdown));
    }
    s
}

fn is_critical_name(name: &str) -> bool {
    [
        "coredns-",
        "ingress-nginx-",
        "ebs-csi-controller-",
        "metrics-server-",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// One tiers or parallel drain; times in ms from detection.
struct TierRun {
    all_accepted: f64,
    accepted: usize,
    /// Critical pods: when each left the node.
    critical_gone: Vec<f64>,
    /// The last ordinary pod left the node.
    ordinary_gone: f64,
}

fn tier_once(ctx: &Ctx, order: &str) -> Result<TierRun, String> {
    let sim = Sim::start(tiers_scenario(ctx)).map_err(|e| e.to_string())?;
    let mut h = Handler::start(
        &ctx.bin,
        &sim,
        &[("POLL_INTERVAL", "200ms"), ("EVICTION_ORDER", order)],
    )?;
    let notice = notice_at_random_moment(&sim, POLL, DEADLINE_IN)?;
    wait_for(
        "every pod but the DaemonSets' gone",
        Duration::from_secs(110),
        Duration::from_millis(5),
        || (sim.pod_count_on(NODE) <= DAEMONSET_PODS).then_some(()),
    )?;
    if h.exited() {
        return Err(format!("the handler exited:\n{}", h.tail(15)));
    }
    h.stop();
    let seen = detection(&sim, notice.at).ok_or("no poll saw the notice")?;
    let reqs = sim.api_requests();
    let (last, accepted) = last_accepted(&reqs, ctx.latency).ok_or("no eviction accepted")?;
    let gone: Vec<(String, Instant)> = sim
        .workload_log()
        .into_iter()
        .filter(|e| e.node.as_deref() == Some(NODE) && e.change == Change::PodGone)
        .map(|e| (e.name, e.at))
        .collect();
    let critical_gone: Vec<f64> = gone
        .iter()
        .filter(|(n, _)| is_critical_name(n))
        .map(|(_, t)| ms(seen, *t))
        .collect();
    let ordinary_gone = gone
        .iter()
        .filter(|(n, _)| !is_critical_name(n))
        .map(|(_, t)| ms(seen, *t))
        .fold(f64::NAN, f64::max);
    if critical_gone.len() != CRITICAL {
        return Err(format!(
            "{} of {CRITICAL} critical pods left the node",
            critical_gone.len()
        ));
    }
    Ok(TierRun {
        all_accepted: ms(seen, last),
        accepted,
        critical_gone,
        ordinary_gone,
    })
}

pub fn run_tiers(ctx: &Ctx) -> Result<Outcome, String> {
    let mut runs: Vec<(&str, TierRun)> = Vec::new();
    for i in 0..ctx.reps {
        for order in ["tiers", "parallel"] {
            let r = tier_once(ctx, order)?;
            progress(
                "tiers",
                &format!(
                    "run {}/{} {order}: all evictions accepted {:.0} ms after detection; critical pods gone {:.0}–{:.0} ms, ordinary by {:.0} ms",
                    i + 1,
                    ctx.reps,
                    r.all_accepted,
                    r.critical_gone.iter().copied().fold(f64::INFINITY, f64::min),
                    r.critical_gone.iter().copied().fold(f64::NAN, f64::max),
                    r.ordinary_gone
                ),
            );
            runs.push((order, r));
        }
    }
    let mut s = Section::new(
        "tiers",
        "8. Critical pods last: 110 pods, tiers vs parallel",
        ctx.reproduce("tiers"),
    );
    s.para(format!(
        "The `bench` mix of {ORDINARY} ReplicaSet pods (grace 10/30/60 s, app shutdown 0.2–3.0 s) plus {CRITICAL} critical ones \
         (system-cluster-critical, system-node-critical, or priority 2000000000; grace 30 s, shutdown 0.3–1.0 s) and 3 DaemonSet pods; \
         no budget; a 120 s AWS notice at a random moment of the 200 ms poll. Times in ms from the poll that saw the notice: the last \
         accepted eviction (its answer), when the critical pods left the node (median and last), when the last ordinary pod left. \
         `EVICTION_ORDER=tiers` starts the critical tier when the ordinary pods are gone (or at report time − grace − 1 s, 84 s here, at the latest). \
         API latency {}.",
        ctx.latency_text()
    ));
    let mut t = Table::new(&[
        "Order",
        ">Runs",
        ">All evictions accepted",
        ">Critical pods run (median)",
        ">Critical pods run (last)",
        ">Last ordinary pod gone",
        ">Evictions accepted",
    ]);
    let mut raw = Vec::new();
    let mut medians = std::collections::HashMap::new();
    for order in ["tiers", "parallel"] {
        let rs: Vec<&TierRun> = runs
            .iter()
            .filter(|(o, _)| *o == order)
            .map(|(_, r)| r)
            .collect();
        let acc: Vec<f64> = rs.iter().map(|r| r.all_accepted).collect();
        let crit_med: Vec<f64> = rs
            .iter()
            .map(|r| crate::stats::median(&r.critical_gone))
            .collect();
        let crit_last: Vec<f64> = rs
            .iter()
            .map(|r| r.critical_gone.iter().copied().fold(f64::NAN, f64::max))
            .collect();
        let ord: Vec<f64> = rs.iter().map(|r| r.ordinary_gone).collect();
        let show = |v: &[f64]| Summary::of(v).map_or("n/a".into(), |s| s.med_range(0));
        t.row([
            format!("`{order}`"),
            rs.len().to_string(),
            show(&acc),
            show(&crit_med),
            show(&crit_last),
            show(&ord),
            rs.first().map_or(0, |r| r.accepted).to_string(),
        ]);
        medians.insert(
            order,
            (crate::stats::median(&acc), crate::stats::median(&crit_med)),
        );
        raw.push(json!({"order": order, "runs": rs.iter().map(|r| json!({
            "all_accepted_ms": r.all_accepted, "critical_gone_ms": r.critical_gone,
            "ordinary_gone_ms": r.ordinary_gone, "accepted": r.accepted})).collect::<Vec<_>>()}));
    }
    s.table(t);
    s.para("Each cell: median (min–max) over the runs. With several runs, tiers and parallel alternate.");
    let (tiers_acc, tiers_crit) = medians["tiers"];
    let (par_acc, par_crit) = medians["parallel"];
    let targets = vec![TargetRow {
        target: "(goal) critical pods keep running until the others are gone; all evictions still accepted well inside the window".into(),
        measured: format!(
            "critical pods run {} ms (tiers) vs {} ms (parallel) after detection, median; all evictions accepted after {} ms (tiers) vs {} ms (parallel)",
            fmt(tiers_crit, 0),
            fmt(par_crit, 0),
            fmt(tiers_acc, 0),
            fmt(par_acc, 0)
        ),
        met: Some(tiers_crit > par_crit && tiers_acc < 84_000.0),
        reproduce: ctx.reproduce("tiers"),
    }];
    Ok(Outcome {
        section: s,
        targets,
        raw: json!(raw),
    })
}

// ---- availability through a reclaim ------------------------------------------------------------

const READY_AFTER: Duration = Duration::from_secs(5);

/// (name, replicas, PDB (minAvailable, maxUnavailable))
/// A PDB's (minAvailable, maxUnavailable).
type Pdb = (Option<i64>, Option<i64>);

const DEPLOYMENTS: [(&str, i64, Option<Pdb>); 5] = [
    ("web", 3, Some((Some(2), None))),
    ("api", 2, Some((None, Some(1)))),
    ("solo", 1, Some((Some(1), None))),
    ("worker", 4, None),
    ("single", 1, None),
];

fn availability_scenario(ctx: &Ctx) -> Scenario {
    let mut s = Scenario::new(NODE)
        .latency(ctx.latency)
        .replacement_ready_after(Some(READY_AFTER));
    for (name, replicas, pdb) in DEPLOYMENTS {
        s = s.deployment(
            "shop",
            name,
            replicas,
            Strategy::default(),
            &[("app", name)],
            PodSpec::new("shop", "x")
                .grace(30)
                .shutdown(Duration::from_secs(1)),
        );
        if let Some((min, max)) = pdb {
            s = s.pdb("shop", &format!("{name}-pdb"), &[("app", name)], min, max);
        }
    }
    for ds in ["aws-node", "ebs-csi-node", "node-exporter"] {
        s = s.pod(PodSpec::new("kube-system", &format!("{ds}-x1")).daemonset(ds));
    }
    s
}

/// Until the deadline, waits for the node to empty; at the deadline the node is reclaimed; then
/// waits until every Deployment is back at its desired Ready count. Returns the rows from `from`.
fn through_reclaim(
    sim: &Sim,
    from: Instant,
    deadline: Instant,
) -> Result<(Vec<AvailabilityRow>, usize), String> {
    while Instant::now() < deadline && sim.pod_count_on(NODE) > DAEMONSET_PODS {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still occupied at the deadline: the VM goes, with every pod on it.
    let reclaimed = if sim.pod_count_on(NODE) > DAEMONSET_PODS {
        sim.reclaim_node(NODE).saturating_sub(DAEMONSET_PODS)
    } else {
        0
    };
    wait_for(
        "every Deployment back at its desired Ready count",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || {
            DEPLOYMENTS
                .iter()
                .all(|(d, _, _)| sim.rollout_complete("shop", d) || ready_again(sim, d))
                .then_some(())
        },
    )?;
    Ok((sim.availability_report(from), reclaimed))
}

fn ready_again(sim: &Sim, d: &str) -> bool {
    let h = sim.ready_history("shop", d);
    h.last().is_some_and(|p| p.ready >= p.desired)
        && sim
            .deployment_pods("shop", d)
            .iter()
            .all(|p| p["spec"]["nodeName"] != NODE)
}

struct AvailRun {
    who: &'static str,
    rows: Vec<AvailabilityRow>,
    /// Pods still on the node at the deadline (killed by the reclaim).
    reclaimed: usize,
    forced: usize,
}

/// The sides of the availability row: ours with each `SURGE_BLOCKED`, then kubectl.
const SIDES: [(&str, &str); 3] = [
    ("false", "ours (default)"),
    ("true", "ours, SURGE_BLOCKED=true"),
    ("budgeted", "ours, SURGE_BLOCKED=budgeted"),
];
const KUBECTL: &str = "`kubectl drain`";

fn ours(ctx: &Ctx, (surge, who): (&'static str, &'static str)) -> Result<AvailRun, String> {
    let sim = Sim::start(availability_scenario(ctx)).map_err(|e| e.to_string())?;
    let mut h = Handler::start(
        &ctx.bin,
        &sim,
        &[("POLL_INTERVAL", "200ms"), ("SURGE_BLOCKED", surge)],
    )?;
    let notice = notice_at_random_moment(&sim, POLL, DEADLINE_IN)?;
    let (rows, reclaimed) = through_reclaim(&sim, notice.at, notice.deadline_at)?;
    if h.exited() {
        return Err(format!("the handler exited:\n{}", h.tail(15)));
    }
    h.stop();
    let forced = sim
        .api_requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/pods/"))
        .count();
    Ok(AvailRun {
        who,
        rows,
        reclaimed,
        forced,
    })
}

fn kubectl(ctx: &Ctx) -> Result<AvailRun, String> {
    let sim = Sim::start(availability_scenario(ctx)).map_err(|e| e.to_string())?;
    let dir = ctx.scratch("kubectl-availability")?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .map_err(|e| e.to_string())?;
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + DEADLINE_IN;
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
            "--timeout=150s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", ctx.kubectl))?;
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut text);
        }
        text
    });
    let out = through_reclaim(&sim, start, deadline);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(&dir);
    let (rows, reclaimed) = out?;
    Ok(AvailRun {
        who: KUBECTL,
        rows,
        reclaimed,
        forced: 0,
    })
}

pub fn run_availability(ctx: &Ctx) -> Result<Outcome, String> {
    let mut runs: Vec<AvailRun> = Vec::new();
    for i in 0..ctx.long_reps {
        for which in 0..=SIDES.len() {
            let r = match SIDES.get(which) {
                Some(side) => ours(ctx, *side)?,
                None => kubectl(ctx)?,
            };
            progress(
                "availability",
                &format!(
                    "run {}/{} {}: deficit {} replica-s in all, {} pods killed by the reclaim",
                    i + 1,
                    ctx.long_reps,
                    r.who,
                    fmt(r.rows.iter().map(|x| x.deficit).sum(), 1),
                    r.reclaimed
                ),
            );
            runs.push(r);
        }
    }
    let mut s = Section::new(
        "availability",
        "9. Workload availability through a reclaim",
        ctx.reproduce("availability"),
    );
    s.para(format!(
        "Five Deployments on the node (default RollingUpdate strategy, 25 % surge): web ×3 under `minAvailable: 2`, api ×2 under `maxUnavailable: 1`, \
         solo ×1 under `minAvailable: 1` (a budget that never allows an eviction), worker ×4 and single ×1 without a budget; grace 30 s, app shutdown 1 s; \
         replacements become Ready {} s after they are created on the other node. A 120 s notice; at the deadline the simulator reclaims the node (every pod \
         still on it disappears at once, which is kinder to late movers than a real cluster). Per Deployment: replica-seconds below its desired Ready count \
         from the notice (for kubectl: its start) until every replacement is Ready; median over the runs. `kubectl drain --force --ignore-daemonsets \
         --delete-emptydir-data` runs alone on the same state, as an operator would run it on the notice. Ours with `SURGE_BLOCKED` false (the default), \
         `true` (restart a budget-blocked Deployment) and `budgeted` (also restart, at the drain's start, each Deployment under a budget whose rollout keeps \
         every replica Ready, here web, api and solo (25 % of 3 or fewer replicas rounds down to maxUnavailable 0), and hold its pods until the rollout \
         moves them). API latency {}.",
        READY_AFTER.as_secs(),
        ctx.latency_text()
    ));
    let whos = [SIDES[0].1, SIDES[1].1, SIDES[2].1, KUBECTL];
    let mut headers: Vec<String> = vec!["Drain".into()];
    for (d, n, pdb) in DEPLOYMENTS {
        headers.push(format!(
            ">{d} ×{n}{}",
            if pdb.is_some() { " (PDB)" } else { "" }
        ));
    }
    headers.extend([
        ">Total".to_string(),
        ">Forced deletes".to_string(),
        ">Killed by the reclaim".to_string(),
    ]);
    let hs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new(&hs);
    let mut med = std::collections::HashMap::new();
    for who in whos {
        let rs: Vec<&AvailRun> = runs.iter().filter(|r| r.who == who).collect();
        let mut cells = vec![who.to_string()];
        let mut per = Vec::new();
        for (d, _, _) in DEPLOYMENTS {
            let v: Vec<f64> = rs
                .iter()
                .map(|r| {
                    r.rows
                        .iter()
                        .find(|x| x.name == d)
                        .map_or(f64::NAN, |x| x.deficit)
                })
                .collect();
            let m = crate::stats::median(&v);
            per.push((d, m));
            cells.push(fmt(m, 1));
        }
        let total: Vec<f64> = rs
            .iter()
            .map(|r| r.rows.iter().map(|x| x.deficit).sum())
            .collect();
        cells.push(fmt(crate::stats::median(&total), 1));
        cells.push(rs.first().map_or(0, |r| r.forced).to_string());
        cells.push(rs.first().map_or(0, |r| r.reclaimed).to_string());
        t.row(cells);
        med.insert(who, per);
    }
    s.table(t);
    s.para("Replica-seconds below the desired Ready count (0.0: the Deployment never had fewer Ready replicas than it wants).");
    let of = |who: &str, d: &str| {
        med[who]
            .iter()
            .find(|(n, _)| *n == d)
            .map_or(f64::NAN, |(_, m)| *m)
    };
    let multi_pdb: Vec<&str> = DEPLOYMENTS
        .iter()
        .filter(|(_, n, p)| *n >= 2 && p.is_some())
        .map(|(d, _, _)| *d)
        .collect();
    let budgeted = SIDES[2].1;
    let zero_multi = multi_pdb.iter().all(|d| of(budgeted, d) == 0.0);
    let never_worse = DEPLOYMENTS.iter().all(|(d, _, _)| {
        SIDES
            .iter()
            .all(|(_, who)| of(who, d) <= of(KUBECTL, d) + 0.05)
    });
    let targets = vec![
        TargetRow {
            target: "(goal) zero deficit for Deployments of two or more replicas under a PDB".into(),
            measured: multi_pdb
                .iter()
                .map(|d| {
                    format!(
                        "{d}: {} (default), {} (SURGE_BLOCKED=true), {} (budgeted), {} (kubectl)",
                        fmt(of(SIDES[0].1, d), 1),
                        fmt(of(SIDES[1].1, d), 1),
                        fmt(of(budgeted, d), 1),
                        fmt(of(KUBECTL, d), 1)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            met: Some(zero_multi),
            reproduce: ctx.reproduce("availability"),
        },
        TargetRow {
            target: "(goal) never worse than kubectl drain for any Deployment".into(),
            measured: format!(
                "solo ×1 under minAvailable 1: {} (default), {} (SURGE_BLOCKED=true), {} (budgeted), {} (kubectl) replica-s",
                fmt(of(SIDES[0].1, "solo"), 1),
                fmt(of(SIDES[1].1, "solo"), 1),
                fmt(of(budgeted, "solo"), 1),
                fmt(of(KUBECTL, "solo"), 1)
            ),
            met: Some(never_worse),
            reproduce: ctx.reproduce("availability"),
        },
    ];
    let raw = json!(runs
        .iter()
        .map(|r| json!({"who": r.who, "reclaimed": r.reclaimed, "forced": r.forced,
            "rows": r.rows.iter().map(|x| json!({"deployment": x.name, "desired": x.desired,
                "min_ready": x.min_ready, "deficit": x.deficit,
                "recovered_after_s": x.recovered_after.map(|d| d.as_secs_f64())})).collect::<Vec<_>>()}))
        .collect::<Vec<_>>());
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
