//! Scenario 7, scale: a node with 1,000 evictable pods (lists come in pages of 500): the
//! handler's peak RSS and the time to all evictions accepted.

use serde_json::json;

use super::drain::ours;
use super::{progress, Ctx, Outcome, DAEMONSET_PODS};
use crate::report::{kib, Section, Table, TargetRow};
use crate::stats::{fmt, Summary};

const PODS: usize = 1000;
const HWM_TARGET_KB: u64 = 8 * 1024;

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let mut runs = Vec::new();
    for i in 0..ctx.long_reps {
        let o = ours(ctx, PODS)?;
        progress(
            "scale",
            &format!(
                "run {}/{}: VmHWM {} KiB, evictions accepted {:.0} ms after detection",
                i + 1,
                ctx.long_reps,
                o.hwm_kb,
                o.last_accepted - o.detect
            ),
        );
        runs.push(o);
    }
    let mut s = Section::new("scale", "7. Scale: 1,000 pods", ctx.reproduce("scale"));
    s.para(format!(
        "As section 4 with {PODS} evictable pods (+{DAEMONSET_PODS} DaemonSet pods): the handler lists with `limit=500`, so each full list is several pages. \
         VmHWM is the kernel's peak RSS of the handler, read from `/proc/PID/status` when the drain is done (and sampled every 10 ms meanwhile). Times in ms. \
         API latency {}.",
        ctx.latency_text()
    ));
    let mut t = Table::new(&[
        ">Run",
        ">VmHWM (peak RSS)",
        ">Most threads seen",
        ">Evictions accepted",
        ">Detection → all accepted",
        ">Notice → all accepted",
        ">Notice → drain done",
        ">Pages of the first LIST",
        ">LIST requests in all",
        ">Requests in all",
    ]);
    for (i, o) in runs.iter().enumerate() {
        let lists: usize = o
            .counts
            .by_pattern
            .iter()
            .filter(|((m, p), _)| m == "GET" && p.starts_with("/api/v1/pods?"))
            .map(|(_, st)| st.values().sum::<usize>())
            .sum();
        t.row([
            (i + 1).to_string(),
            kib(o.hwm_kb),
            o.peak_threads.to_string(),
            o.accepted.to_string(),
            fmt(o.last_accepted - o.detect, 0),
            fmt(o.last_accepted, 0),
            fmt(o.done, 0),
            o.first_list_pages.to_string(),
            lists.to_string(),
            o.counts.total().to_string(),
        ]);
    }
    s.table(t);
    let hwm =
        Summary::of(&runs.iter().map(|o| o.hwm_kb as f64).collect::<Vec<_>>()).ok_or("no runs")?;
    let acc = Summary::of(
        &runs
            .iter()
            .map(|o| o.last_accepted - o.detect)
            .collect::<Vec<_>>(),
    )
    .ok_or("no runs")?;
    let targets = vec![TargetRow {
        target: "Peak RSS at 1,000 pods ≤ 8 MiB".into(),
        measured: format!(
            "VmHWM {} median, {} max ({} runs); all evictions accepted {} ms after detection",
            kib(hwm.median as u64),
            kib(hwm.max as u64),
            hwm.n,
            acc.med_range(0)
        ),
        met: Some((hwm.max as u64) <= HWM_TARGET_KB),
        reproduce: ctx.reproduce("scale"),
    }];
    let raw =
        json!(runs
        .iter()
        .map(|o| json!({"hwm_kb": o.hwm_kb, "peak_threads": o.peak_threads, "accepted": o.accepted,
            "detect_ms": o.detect, "last_accepted_ms": o.last_accepted, "done_ms": o.done,
            "first_list_pages": o.first_list_pages, "requests": o.counts.total()}))
        .collect::<Vec<_>>());
    Ok(Outcome {
        section: s,
        targets,
        raw,
    })
}
