//! Scenario 3, reaction: a notice appears at a random moment of the poll cycle; detection delay
//! (notice visible → the poll that got the 200) and processing delay (that poll → the cordon
//! PATCH arriving at the simulator), at the default 1 s poll and at 0.2 s.

use std::time::Duration;

use serde_json::json;
use stnh_sim::{Scenario, Sim};

use super::{detection, first_request, ms, notice_at_random_moment, progress, Ctx, Outcome, NODE};
use crate::handler::{wait_for, Handler};
use crate::report::{Section, Table, TargetRow};
use crate::stats::{fmt, Summary};

const PROCESSING_TARGET_MS: f64 = 20.0;

#[derive(Debug, Clone, Copy)]
struct Trial {
    /// Notice visible, ms after the handler's first poll.
    phase_ms: f64,
    detect_ms: f64,
    process_ms: f64,
    total_ms: f64,
}

fn trial(ctx: &Ctx, interval: Duration, setting: &str) -> Result<Trial, String> {
    let sim = Sim::start(Scenario::new(NODE).latency(ctx.latency)).map_err(|e| e.to_string())?;
    let mut h = Handler::start(&ctx.bin, &sim, &[("POLL_INTERVAL", setting)])?;
    let notice = notice_at_random_moment(&sim, interval, Duration::from_secs(120))?;
    let cordon = wait_for(
        "the cordon PATCH",
        interval + Duration::from_secs(10),
        Duration::from_millis(1),
        || first_request(&sim.api_requests(), notice.at, "PATCH", "/api/v1/nodes/").map(|r| r.at),
    )
    .map_err(|e| format!("{e}; handler log:\n{}", h.tail(10)))?;
    let detected = detection(&sim, notice.at).ok_or("no poll answered 200 before the cordon")?;
    h.stop();
    Ok(Trial {
        phase_ms: ms(notice.first_poll, notice.at),
        detect_ms: ms(notice.at, detected),
        process_ms: ms(detected, cordon),
        total_ms: ms(notice.at, cordon),
    })
}

fn cells(s: &Option<Summary>) -> [String; 4] {
    match s {
        Some(s) => [
            fmt(s.median, 1),
            fmt(s.p90, 1),
            fmt(s.max, 1),
            fmt(s.min, 1),
        ],
        None => Default::default(),
    }
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let mut s = Section::new("reaction", "3. Reaction", ctx.reproduce("reaction"));
    s.para(format!(
        "Per trial: a fresh simulator (empty node, API latency {}), the handler started, and once it polls, a `terminate` notice made visible at a moment uniform over one \
         poll interval. Detection = notice visible → arrival of the poll that got the 200. Processing = that poll's arrival → arrival of the cordon PATCH at the simulator \
         (before its simulated latency): parsing, logging, queueing Slack, a new TCP+TLS connection and the request. {} trials per interval; times in ms.",
        ctx.latency_text(),
        ctx.trials
    ));
    let mut t = Table::new(&[
        "Poll interval",
        ">Trials",
        ">Detection median",
        ">p90",
        ">max",
        ">min",
        ">Processing median",
        ">p90",
        ">max",
        ">min",
        ">Notice → cordon median",
        ">p90",
        ">max",
    ]);
    let mut all_processing = Vec::new();
    let mut raw = json!({});
    for (setting, interval) in [
        ("1s", Duration::from_secs(1)),
        ("200ms", Duration::from_millis(200)),
    ] {
        let mut trials = Vec::new();
        for i in 0..ctx.trials {
            let tr = trial(ctx, interval, setting)?;
            if (i + 1) % 10 == 0 || i + 1 == ctx.trials {
                progress(
                    "reaction",
                    &format!(
                        "POLL_INTERVAL={setting}: {}/{} trials (last: detection {:.1} ms, processing {:.2} ms)",
                        i + 1,
                        ctx.trials,
                        tr.detect_ms,
                        tr.process_ms
                    ),
                );
            }
            trials.push(tr);
        }
        let d = Summary::of(&trials.iter().map(|t| t.detect_ms).collect::<Vec<_>>());
        let p = Summary::of(&trials.iter().map(|t| t.process_ms).collect::<Vec<_>>());
        let n = Summary::of(&trials.iter().map(|t| t.total_ms).collect::<Vec<_>>());
        all_processing.extend(trials.iter().map(|t| t.process_ms));
        let [nm, np, nx, _] = cells(&n);
        let mut row = vec![
            format!("{} s", interval.as_secs_f64()),
            trials.len().to_string(),
        ];
        row.extend(cells(&d));
        row.extend(cells(&p));
        row.extend([nm, np, nx]);
        t.row(row);
        raw[setting] = json!(trials
            .iter()
            .map(|t| json!({"phase_ms": t.phase_ms, "detect_ms": t.detect_ms, "process_ms": t.process_ms}))
            .collect::<Vec<_>>());
    }
    s.table(t);
    s.para("Detection is bounded by the poll interval (expected: uniform over it, median about half of it). Processing is the handler's own reaction time.");
    let p = Summary::of(&all_processing).ok_or("no trials")?;
    let targets = vec![TargetRow {
        target: "Processing delay ≤ 20 ms".into(),
        measured: format!(
            "median {:.2} ms, p90 {:.2} ms, max {:.2} ms ({} trials)",
            p.median, p.p90, p.max, p.n
        ),
        met: Some(p.median <= PROCESSING_TARGET_MS),
        reproduce: ctx.reproduce("reaction"),
    }];
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
