//! `stnh-bench`: runs the benchmark scenarios of spot-termination-notice-handler against the
//! simulator (and real `kubectl drain`), prints the tables and writes `BENCHMARKS.md`.
//!
//! The measured handler is the production binary (`make build`), started as a child process
//! with a clean environment plus the simulator's endpoints. Nothing here asserts a timing: the
//! benchmark reports, it does not gate. Development tool only: it talks to 127.0.0.1 only.

mod apilog;
mod cgroup;
mod handler;
mod machine;
mod proc;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::json;

use report::{Section, Table, TargetRow};
use scenarios::{Ctx, Outcome};

const HELP: &str = "\
stnh-bench: benchmarks of spot-termination-notice-handler (see BENCHMARKS.md)

USAGE:
  stnh-bench [OPTIONS]

OPTIONS:
  --only LIST        comma-separated scenarios: size,idle,reaction,drain,kubectl,pdb,scale,
                     memlimit,tiers,availability
                     (default: all; drain and kubectl alternate their runs when both are chosen);
                     optional ones, never in the default set: soak (SOAK_MINUTES, default 60),
                     mass (MASS_NODES handlers, default 500; MASS_KUBECTL kubectl drains, default 50)
  --latency D        API latency of the simulator per request (default 2ms)
  --trials N         reaction trials per signal (default 30)
  --reps N           runs of the 110-pod drain, of kubectl drain and of tiers vs parallel (default 5)
  --long-reps N      runs of the PDB, 1,000-pod and availability scenarios (default 3)
  --bin PATH         handler binary (default target/x86_64-unknown-linux-musl/release/spot-termination-notice-handler)
  --arm64-bin PATH   arm64 binary, reported if present (default target/aarch64-unknown-linux-musl/release/...)
  --image REF        image to report if podman has it (default ghcr.io/spot-termination-notice-handler/spot-termination-notice-handler:1.32.0-1)
  --kubectl PATH     kubectl (default kubectl)
  --out PATH         report file (default BENCHMARKS.md for a full run, else target/bench/BENCHMARKS-<only>.md)
  --work-dir DIR     scratch files (default target/bench)
  -h, --help         this text

Durations: 2ms, 500us, 1s.";

const ALL: [&str; 10] = [
    "size",
    "idle",
    "reaction",
    "drain",
    "kubectl",
    "pdb",
    "scale",
    "memlimit",
    "tiers",
    "availability",
];
/// Scenarios run only when named in `--only`.
const OPTIONAL: [&str; 2] = ["soak", "mass"];

struct Args {
    only: Vec<String>,
    ctx: Ctx,
    out: Option<PathBuf>,
}

fn parse_args(raw: Vec<String>) -> Result<Option<Args>, String> {
    let mut only: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    let mut ctx = Ctx {
        bin: "target/x86_64-unknown-linux-musl/release/spot-termination-notice-handler".into(),
        arm64_bin: "target/aarch64-unknown-linux-musl/release/spot-termination-notice-handler"
            .into(),
        image: "ghcr.io/spot-termination-notice-handler/spot-termination-notice-handler:1.32.0-1"
            .into(),
        kubectl: "kubectl".into(),
        latency: Duration::from_millis(2),
        trials: 30,
        reps: 5,
        long_reps: 3,
        work_dir: "target/bench".into(),
        extra_flags: String::new(),
    };
    let mut out = None;
    let mut extra = Vec::new();
    let mut it = raw.into_iter();
    let value = |it: &mut std::vec::IntoIter<String>, flag: &str| {
        it.next().ok_or_else(|| format!("{flag}: missing value"))
    };
    let count = |v: String, flag: &str| -> Result<usize, String> {
        v.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{flag}: expected a positive number, got {v:?}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--only" => {
                let v = value(&mut it, "--only")?;
                only = v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if only.iter().any(|s| s == "all") {
                    only = ALL.iter().map(|s| s.to_string()).collect();
                }
                if let Some(bad) = only
                    .iter()
                    .find(|s| !ALL.contains(&s.as_str()) && !OPTIONAL.contains(&s.as_str()))
                {
                    return Err(format!(
                        "--only: unknown scenario {bad:?} (expected some of {},{})",
                        ALL.join(","),
                        OPTIONAL.join(",")
                    ));
                }
            }
            "--latency" => {
                let v = value(&mut it, "--latency")?;
                ctx.latency = stnh_sim::util::parse_duration(&v)
                    .ok_or_else(|| format!("--latency: bad duration {v:?}"))?;
                if ctx.latency != Duration::from_millis(2) {
                    extra.push(format!("--latency {v}"));
                }
            }
            "--trials" => {
                ctx.trials = count(value(&mut it, "--trials")?, "--trials")?;
                if ctx.trials != 30 {
                    extra.push(format!("--trials {}", ctx.trials));
                }
            }
            "--reps" => {
                ctx.reps = count(value(&mut it, "--reps")?, "--reps")?;
                if ctx.reps != 5 {
                    extra.push(format!("--reps {}", ctx.reps));
                }
            }
            "--long-reps" => {
                ctx.long_reps = count(value(&mut it, "--long-reps")?, "--long-reps")?;
                if ctx.long_reps != 3 {
                    extra.push(format!("--long-reps {}", ctx.long_reps));
                }
            }
            "--bin" => ctx.bin = value(&mut it, "--bin")?.into(),
            "--arm64-bin" => ctx.arm64_bin = value(&mut it, "--arm64-bin")?.into(),
            "--image" => ctx.image = value(&mut it, "--image")?,
            "--kubectl" => ctx.kubectl = value(&mut it, "--kubectl")?,
            "--out" => out = Some(value(&mut it, "--out")?.into()),
            "--work-dir" => ctx.work_dir = value(&mut it, "--work-dir")?.into(),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    ctx.extra_flags = extra.iter().map(|f| format!(" {f}")).collect();
    Ok(Some(Args { only, ctx, out }))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("stnh-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("stnh-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the chosen scenarios; `Ok(false)` when one of them failed (the report is written anyway).
fn run(args: Args) -> Result<bool, String> {
    let ctx = &args.ctx;
    if !ctx.bin.is_file() {
        return Err(format!(
            "{} not found: run `make build` first (or `make bench`)",
            ctx.bin.display()
        ));
    }
    std::fs::create_dir_all(&ctx.work_dir)
        .map_err(|e| format!("{}: {e}", ctx.work_dir.display()))?;
    let started = Instant::now();
    let machine = machine::Machine::probe();
    let busy = machine::cpu_busy(Duration::from_secs(1));
    if let Some(b) = busy.filter(|b| *b > 0.10) {
        eprintln!(
            "[stnh-bench] warning: the CPUs were {:.0} % busy just before the run: the machine is not quiet, timings will be noisier",
            b * 100.0
        );
    }
    let selected = |s: &str| args.only.iter().any(|o| o == s);
    let mut outcomes: Vec<Result<Outcome, (String, String)>> = Vec::new();
    let mut push = |id: &str, r: Result<Vec<Outcome>, String>| match r {
        Ok(v) => {
            for o in v {
                println!("{}", o.section.render());
                outcomes.push(Ok(o));
            }
        }
        Err(e) => {
            eprintln!("[stnh-bench] {id}: FAILED: {e}");
            outcomes.push(Err((id.to_string(), e)));
        }
    };
    let one = |r: Result<Outcome, String>| r.map(|o| vec![o]);
    if selected("size") {
        push("size", one(scenarios::size::run(ctx)));
    }
    if selected("idle") {
        push("idle", one(scenarios::idle::run(ctx)));
    }
    if selected("reaction") {
        push("reaction", one(scenarios::reaction::run(ctx)));
    }
    if selected("drain") || selected("kubectl") {
        push(
            "drain",
            scenarios::drain::run(ctx, selected("drain"), selected("kubectl")),
        );
    }
    if selected("pdb") {
        push("pdb", one(scenarios::pdb::run(ctx)));
    }
    if selected("scale") {
        push("scale", one(scenarios::scale::run(ctx)));
    }
    if selected("tiers") {
        push("tiers", one(scenarios::kindness::run_tiers(ctx)));
    }
    if selected("availability") {
        push(
            "availability",
            one(scenarios::kindness::run_availability(ctx)),
        );
    }
    if selected("memlimit") {
        push("memlimit", one(scenarios::memlimit::run(ctx)));
    }
    if selected("mass") {
        push("mass", one(scenarios::mass::run(ctx)));
    }
    if selected("soak") {
        push("soak", one(scenarios::soak::run(ctx)));
    }
    let elapsed = started.elapsed();
    let full = ALL.iter().all(|s| selected(s));
    let out = args.out.clone().unwrap_or_else(|| {
        if full {
            PathBuf::from("BENCHMARKS.md")
        } else {
            ctx.work_dir
                .join(format!("BENCHMARKS-{}.md", args.only.join("-")))
        }
    });

    let targets: Vec<TargetRow> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .flat_map(|o| o.targets.clone())
        .collect();
    let ok = outcomes.iter().all(Result::is_ok);
    let md = render(&args, &machine, busy, elapsed, &outcomes, &targets);
    std::fs::write(&out, &md).map_err(|e| format!("{}: {e}", out.display()))?;
    let raw: serde_json::Map<String, serde_json::Value> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|o| (o.section.id.to_string(), o.raw.clone()))
        .collect();
    let raw_path = if full {
        ctx.work_dir.join("results.json")
    } else {
        ctx.work_dir
            .join(format!("results-{}.json", args.only.join("-")))
    };
    let _ = std::fs::write(
        &raw_path,
        serde_json::to_string_pretty(&json!({"machine": machine.line(), "date": machine.date,
            "revision": machine.revision, "latency_ms": ctx.latency.as_secs_f64() * 1000.0,
            "elapsed_s": elapsed.as_secs_f64(), "scenarios": raw}))
        .unwrap_or_default(),
    );
    println!("## Summary\n\n{}", report::targets_table(&targets).render());
    eprintln!(
        "[stnh-bench] done in {}: wrote {} (raw data: {})",
        minutes(elapsed),
        out.display(),
        raw_path.display()
    );
    Ok(ok)
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{} min {:02} s", s / 60, s % 60)
}

/// The whole report.
fn render(
    args: &Args,
    m: &machine::Machine,
    busy: Option<f64>,
    elapsed: Duration,
    outcomes: &[Result<Outcome, (String, String)>],
    targets: &[TargetRow],
) -> String {
    let ctx = &args.ctx;
    let bin_bytes = std::fs::metadata(&ctx.bin).map(|m| m.len()).unwrap_or(0);
    let version = Command::new(&ctx.bin)
        .env_clear()
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .trim()
            .to_string()
        })
        .unwrap_or_default();
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str(
        "Generated by `make bench` ([bench/](bench/), [mk/bench.mk](mk/bench.mk)); do not edit by hand. \
         `make bench` runs every scenario (a few minutes on 2 cores) and rewrites this file; \
         `make bench BENCH_ONLY=<scenario>[,<scenario>…]` runs some of them and writes `target/bench/BENCHMARKS-<scenarios>.md`. \
         Nothing here is asserted by a test: the benchmark reports, it does not gate.\n\n",
    );
    let mut t = Table::new(&["Run", ""]);
    t.row(["Machine", &m.line()]);
    t.row(["Date", &format!("{} (UTC)", m.date)]);
    t.row(["Git revision", &m.revision]);
    t.row([
        "Handler binary".to_string(),
        format!(
            "`{}`, {} bytes, sha256 {}…, `--version`: {}",
            ctx.bin.display(),
            report::thousands(bin_bytes),
            machine::sha256_short(&ctx.bin).unwrap_or_default(),
            version
        ),
    ]);
    t.row([
        "kubectl".to_string(),
        machine::first_line(&ctx.kubectl, &["version", "--client"])
            .unwrap_or_else(|| "not found".into()),
    ]);
    t.row([
        "Simulator".to_string(),
        format!(
            "stnh-sim in the benchmark's own process, on 127.0.0.1: API server over TLS with {} latency per request; IMDS and Slack sink without latency",
            ctx.latency_text()
        ),
    ]);
    t.row([
        "Quietness".to_string(),
        format!(
            "CPUs {} busy in the second before the run; load average (1, 5, 15 min) {} at the start, {} at the end",
            busy.map_or("?".to_string(), |b| format!("{:.1} %", b * 100.0)),
            m.load_start,
            machine::loadavg()
        ),
    ]);
    t.row([
        "Scenarios, run time".to_string(),
        format!("{}; {}", args.only.join(", "), minutes(elapsed)),
    ]);
    t.row([
        "Command".to_string(),
        format!(
            "`stnh-bench{}{}`",
            if ALL.iter().all(|s| args.only.iter().any(|o| o == s)) {
                String::new()
            } else {
                format!(" --only {}", args.only.join(","))
            },
            ctx.extra_flags
        ),
    ]);
    out.push_str(&t.render());
    out.push_str("\n## Summary: targets\n\n");
    out.push_str(
        "The project's targets and where this run stands. MB = 10⁶ bytes, MiB = 2²⁰ bytes.\n\n",
    );
    out.push_str(&report::targets_table(targets).render());
    out.push('\n');
    for o in outcomes {
        match o {
            Ok(o) => out.push_str(&o.section.render()),
            Err((id, e)) => {
                let mut s = Section::new("failed", &format!("{id}: FAILED"), ctx.reproduce(id));
                s.para(format!("```\n{e}\n```"));
                out.push_str(&s.render());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        parse_args(s.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn flags() {
        let a = args("--only reaction,idle --trials 10 --latency 5ms")
            .unwrap()
            .unwrap();
        assert_eq!(a.only, ["reaction", "idle"]);
        assert_eq!(a.ctx.trials, 10);
        assert_eq!(a.ctx.latency, Duration::from_millis(5));
        assert_eq!(a.ctx.extra_flags, " --trials 10 --latency 5ms");
        assert_eq!(
            a.ctx.reproduce("reaction"),
            "`make bench BENCH_ONLY=reaction BENCH_FLAGS='--trials 10 --latency 5ms'` (→ `stnh-bench --only reaction --trials 10 --latency 5ms`)"
        );
        let d = args("").unwrap().unwrap();
        assert_eq!(d.only.len(), ALL.len());
        assert_eq!(
            d.ctx.reproduce("size"),
            "`make bench BENCH_ONLY=size` (→ `stnh-bench --only size`)"
        );
        assert!(args("--only bogus").is_err());
        assert!(args("--trials 0").is_err());
        assert!(args("--help").unwrap().is_none());
    }
}
