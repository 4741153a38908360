//! A picture of a drain: an SVG timeline drawn from the simulator's own logs (the API request
//! log and the workload log), never from what the handler says about itself.
//!
//! The time axis runs from the notice to past the deadline. Vertical lines mark the notice, the
//! cordon (the first node PATCH that set `spec.unschedulable`), the start of the reserve
//! (deadline − reserve: from here the handler may force-delete) and the deadline. One row per
//! pod that was on the node: eviction attempts refused by a budget (red ticks), the eviction
//! accepted (green bar until the pod is gone), a forced delete (orange bar), a pod already gone
//! (grey dot), other failed attempts (dark crosses), and pods nobody evicts (DaemonSet, mirror
//! pods: a grey note). `stnh-sim --timeline FILE.svg` and `make bench` write one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::ApiRequest;
use crate::store::controller_of;
use crate::workloads::{Change, WorkloadEvent};

/// The notice the drain answered.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When the notice became visible.
    pub notice: Instant,
    /// When the cloud takes the machine.
    pub deadline: Instant,
    /// The handler's `DRAIN_RESERVE` (forced deletes from deadline − reserve).
    pub reserve: Duration,
}

/// Something that happened to one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// An eviction refused by a PodDisruptionBudget (429).
    Refused(Instant),
    /// The eviction was accepted (201).
    Evicted(Instant),
    /// The pod was deleted directly (the handler's forced delete).
    Forced(Instant),
    /// The API said the pod was already gone (404/409).
    AlreadyGone(Instant),
    /// Another answer (status; 0: none).
    Failed(Instant, u16),
}

impl Mark {
    fn at(&self) -> Instant {
        match *self {
            Mark::Refused(t)
            | Mark::Evicted(t)
            | Mark::Forced(t)
            | Mark::AlreadyGone(t)
            | Mark::Failed(t, _) => t,
        }
    }
}

/// One pod's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `namespace/name`.
    pub pod: String,
    /// The handler's requests about it, in order.
    pub marks: Vec<Mark>,
    /// When it started terminating (its deletionTimestamp was set).
    pub terminating: Option<Instant>,
    /// When the pod object went away.
    pub gone: Option<Instant>,
    /// Why nobody touched it (DaemonSet pod, mirror pod …), for pods still on the node.
    pub note: Option<String>,
}

/// Everything the picture shows.
#[derive(Debug, Clone)]
pub struct Drawing {
    /// The node drained.
    pub node: String,
    /// The notice.
    pub window: Window,
    /// The cordon's PATCH.
    pub cordon: Option<Instant>,
    /// One row per pod.
    pub rows: Vec<Row>,
    /// Where the axis ends.
    pub end: Instant,
}

/// `ns/name` and what follows (`""`, `"eviction"`) of a pod path.
fn pod_path(path: &str) -> Option<(String, &str)> {
    let rest = path
        .split('?')
        .next()?
        .strip_prefix("/api/v1/namespaces/")?;
    let mut it = rest.splitn(4, '/');
    let ns = it.next()?;
    (it.next()? == "pods").then_some(())?;
    let name = it.next()?;
    Some((format!("{ns}/{name}"), it.next().unwrap_or("")))
}

/// Why a pod still on the node was left alone.
fn left_alone(pod: &Value) -> String {
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return "mirror pod of a static pod: stays".into();
    }
    match controller_of(pod) {
        Some((kind, _)) if kind == "DaemonSet" => "DaemonSet pod: stays".into(),
        _ => "still on the node".into(),
    }
}

/// Builds the drawing from the logs: the API requests, the workload log and the pods now.
pub fn build(
    node: &str,
    window: Window,
    api: &[ApiRequest],
    work: &[WorkloadEvent],
    pods_now: &[Value],
) -> Drawing {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let node_path = format!("/api/v1/nodes/{node}");
    let mut cordon = None;
    for r in api {
        let path = r.path.split('?').next().unwrap_or("");
        if cordon.is_none()
            && r.method == "PATCH"
            && path == node_path
            && (200..300).contains(&r.status)
            && r.body.replace(' ', "").contains("\"unschedulable\":true")
        {
            cordon = Some(r.at);
        }
        let Some((pod, sub)) = pod_path(&r.path) else {
            continue;
        };
        let mark = match (r.method.as_str(), sub, r.status) {
            ("POST", "eviction", 200..=299) => Mark::Evicted(r.at),
            ("POST", "eviction", 429) => Mark::Refused(r.at),
            ("POST", "eviction", 404) | ("DELETE", "", 404 | 409) => Mark::AlreadyGone(r.at),
            ("DELETE", "", 200..=299) => Mark::Forced(r.at),
            ("POST", "eviction", s) | ("DELETE", "", s) => Mark::Failed(r.at, s),
            _ => continue,
        };
        row(&mut rows, &pod).marks.push(mark);
    }
    for w in work {
        if w.node.as_deref() != Some(node) || w.at < window.notice {
            continue;
        }
        let pod = format!("{}/{}", w.namespace, w.name);
        match w.change {
            Change::PodTerminating { .. } => {
                row(&mut rows, &pod).terminating.get_or_insert(w.at);
            }
            Change::PodGone => {
                if let Some(e) = rows.get_mut(&pod) {
                    e.gone = Some(w.at);
                }
            }
            _ => {}
        }
    }
    for p in pods_now {
        if p["spec"]["nodeName"] != node {
            continue;
        }
        let pod = format!(
            "{}/{}",
            p["metadata"]["namespace"].as_str().unwrap_or(""),
            p["metadata"]["name"].as_str().unwrap_or("")
        );
        let e = row(&mut rows, &pod);
        // A pod still here is not gone, whatever happened to an earlier one of that name.
        e.gone = None;
        if e.marks.is_empty() && e.terminating.is_none() {
            e.note = Some(left_alone(p));
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by_key(|r| {
        let first = r.marks.first().map(Mark::at).or(r.terminating);
        (first.is_none(), first, r.pod.clone())
    });
    let last = rows
        .iter()
        .flat_map(|r| {
            r.marks
                .iter()
                .map(Mark::at)
                .chain(r.gone)
                .chain(r.terminating)
        })
        .chain(cordon)
        .max()
        .unwrap_or(window.deadline);
    let span = window.deadline.saturating_duration_since(window.notice);
    let end = window.deadline.max(last) + (span / 12).max(Duration::from_secs(1));
    Drawing {
        node: node.to_string(),
        window,
        cordon,
        rows,
        end,
    }
}

/// The row of `pod`, made on first use.
fn row<'a>(rows: &'a mut BTreeMap<String, Row>, pod: &str) -> &'a mut Row {
    rows.entry(pod.to_string()).or_insert_with(|| Row {
        pod: pod.to_string(),
        marks: Vec::new(),
        terminating: None,
        gone: None,
        note: None,
    })
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 310.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 78.0;
const ROW: f64 = 20.0;

/// The SVG document.
pub fn render(d: &Drawing) -> String {
    let w = &d.window;
    let total = d
        .end
        .saturating_duration_since(w.notice)
        .as_secs_f64()
        .max(1.0);
    let plot = WIDTH - LEFT - RIGHT;
    let x = |t: Instant| -> f64 {
        let s = if t >= w.notice {
            t.duration_since(w.notice).as_secs_f64()
        } else {
            -w.notice.duration_since(t).as_secs_f64()
        };
        LEFT + (s / total).clamp(-0.02, 1.0) * plot
    };
    let secs = |t: Instant| -> f64 {
        if t >= w.notice {
            t.duration_since(w.notice).as_secs_f64()
        } else {
            -w.notice.duration_since(t).as_secs_f64()
        }
    };
    let rows_h = d.rows.len() as f64 * ROW;
    let bottom = TOP + rows_h;
    let height = bottom + 92.0;
    let mut o = String::with_capacity(16 * 1024 + d.rows.len() * 400);
    let _ = write!(
        o,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <title>Drain of node {node}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>\n",
        node = escape(&d.node)
    );
    let deadline_s = secs(w.deadline);
    let _ = writeln!(
        o,
        "<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Drain of {} after a notice with {:.0} s to its deadline</text>",
        escape(&d.node),
        deadline_s
    );
    // Bands: the reserve, and past the deadline.
    let force_at = w
        .deadline
        .checked_sub(w.reserve)
        .unwrap_or(w.notice)
        .max(w.notice);
    let _ = writeln!(
        o,
        "<rect class=\"reserve\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{rows_h}\" fill=\"#fff3e0\"/>",
        x(force_at),
        x(w.deadline) - x(force_at)
    );
    let _ = writeln!(
        o,
        "<rect x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{rows_h}\" fill=\"#eeeeee\"/>",
        x(w.deadline),
        (LEFT + plot - x(w.deadline)).max(0.0)
    );
    // Axis: ticks every 1/2/5/10/15/30/60 s, at most 14.
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ]
    .into_iter()
    .find(|s| total / s <= 14.0)
    .unwrap_or(3600.0);
    let mut t = 0.0;
    while t <= total {
        let px = LEFT + t / total * plot;
        let _ = writeln!(
            o,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{bottom:.1}\" stroke=\"#e0e0e0\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555555\">{t:.0}</text>",
            TOP - 4.0,
            TOP - 8.0
        );
        t += step;
    }
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555555\">seconds after the notice</text>",
        LEFT - 8.0,
        TOP - 8.0
    );
    // Vertical markers, labelled above the axis.
    let marker = |o: &mut String, t: Instant, color: &str, dash: &str, label: String, row: f64| {
        let px = x(t);
        // Labels near the right edge go to the left of their line.
        let near_end = px > LEFT + plot * 0.75;
        let anchor = if near_end { "end" } else { "start" };
        let _ = writeln!(
            o,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{bottom:.1}\" stroke=\"{color}\" stroke-width=\"1.5\"{dash}/><text x=\"{:.1}\" y=\"{row:.1}\" fill=\"{color}\" text-anchor=\"{anchor}\">{}</text>",
            TOP - 2.0,
            if near_end { px - 3.0 } else { px + 3.0 },
            escape(&label)
        );
    };
    marker(&mut o, w.notice, "#1565c0", "", "notice".into(), 40.0);
    if let Some(c) = d.cordon {
        marker(
            &mut o,
            c,
            "#6a1b9a",
            " stroke-dasharray=\"2,2\"",
            format!("cordon +{:.2} s", secs(c)),
            54.0,
        );
    }
    if !w.reserve.is_zero() {
        marker(
            &mut o,
            force_at,
            "#ef6c00",
            " stroke-dasharray=\"5,3\"",
            format!(
                "deadline − reserve ({:.0} s): forced deletes",
                w.reserve.as_secs_f64()
            ),
            40.0,
        );
    }
    marker(
        &mut o,
        w.deadline,
        "#c62828",
        "",
        format!("deadline +{deadline_s:.0} s"),
        54.0,
    );
    // Rows.
    for (i, r) in d.rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW;
        let mid = y + ROW / 2.0;
        let label: String = if r.pod.chars().count() > 44 {
            r.pod.chars().take(43).chain(std::iter::once('…')).collect()
        } else {
            r.pod.clone()
        };
        let _ = write!(
            o,
            "<g class=\"pod\" data-pod=\"{pod}\"><title>{pod}</title><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            mid + 4.0,
            escape(&label),
            pod = escape(&r.pod)
        );
        let forced = r.marks.iter().any(|m| matches!(m, Mark::Forced(_)));
        if let Some(start) = r.terminating.or_else(|| {
            r.marks
                .iter()
                .find(|m| matches!(m, Mark::Evicted(_) | Mark::Forced(_)))
                .map(Mark::at)
        }) {
            let (fill, what) = if forced {
                ("#ffb74d", "deleted at deadline − reserve")
            } else {
                ("#81c784", "evicted")
            };
            let (end, tail) = match r.gone {
                Some(g) => (
                    x(g),
                    format!(
                        "gone after {:.1} s",
                        g.saturating_duration_since(start).as_secs_f64()
                    ),
                ),
                None => (LEFT + plot, "still there at the end".to_string()),
            };
            let _ = write!(
                o,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{fill}\"><title>{what} at +{:.2} s, {tail}</title></rect>",
                x(start),
                y + 4.0,
                (end - x(start)).max(2.0),
                ROW - 8.0,
                secs(start)
            );
        }
        for m in &r.marks {
            let px = x(m.at());
            let s = secs(m.at());
            let _ = match *m {
                Mark::Refused(_) => write!(
                    o,
                    "<line class=\"refused\" x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#c62828\" stroke-width=\"2\"><title>eviction refused by its budget at +{s:.2} s</title></line>",
                    y + 2.0,
                    y + ROW - 2.0
                ),
                Mark::Evicted(_) => write!(
                    o,
                    "<circle class=\"evicted\" cx=\"{px:.1}\" cy=\"{mid:.1}\" r=\"4\" fill=\"#2e7d32\"><title>eviction accepted at +{s:.2} s</title></circle>"
                ),
                Mark::Forced(_) => write!(
                    o,
                    "<circle class=\"forced\" cx=\"{px:.1}\" cy=\"{mid:.1}\" r=\"4\" fill=\"#e65100\"><title>deleted (forced) at +{s:.2} s</title></circle>"
                ),
                Mark::AlreadyGone(_) => write!(
                    o,
                    "<circle class=\"gone\" cx=\"{px:.1}\" cy=\"{mid:.1}\" r=\"4\" fill=\"#9e9e9e\"><title>already gone at +{s:.2} s</title></circle>"
                ),
                Mark::Failed(_, status) => write!(
                    o,
                    "<path class=\"failed\" d=\"M{:.1},{:.1} l6,6 m0,-6 l-6,6\" stroke=\"#212121\" stroke-width=\"1.5\"><title>attempt failed ({}) at +{s:.2} s</title></path>",
                    px - 3.0,
                    mid - 3.0,
                    if status == 0 { "no answer".to_string() } else { format!("HTTP {status}") }
                ),
            };
        }
        if let Some(n) = &r.note {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#757575\" font-style=\"italic\">{}</text>",
                LEFT + 6.0,
                mid + 4.0,
                escape(n)
            );
        }
        o.push_str("</g>\n");
    }
    // Legend and provenance.
    let ly = bottom + 24.0;
    let _ = writeln!(
        o,
        "<g class=\"legend\" transform=\"translate({LEFT},{ly:.1})\">\
         <line x1=\"0\" y1=\"-6\" x2=\"0\" y2=\"6\" stroke=\"#c62828\" stroke-width=\"2\"/><text x=\"8\" y=\"4\">refused by its budget</text>\
         <circle cx=\"150\" cy=\"0\" r=\"4\" fill=\"#2e7d32\"/><rect x=\"158\" y=\"-6\" width=\"24\" height=\"12\" rx=\"2\" fill=\"#81c784\"/><text x=\"188\" y=\"4\">evicted, until gone</text>\
         <circle cx=\"320\" cy=\"0\" r=\"4\" fill=\"#e65100\"/><rect x=\"328\" y=\"-6\" width=\"24\" height=\"12\" rx=\"2\" fill=\"#ffb74d\"/><text x=\"358\" y=\"4\">forced, until gone</text>\
         <circle cx=\"480\" cy=\"0\" r=\"4\" fill=\"#9e9e9e\"/><text x=\"490\" y=\"4\">already gone</text>\
         <rect x=\"580\" y=\"-6\" width=\"24\" height=\"12\" fill=\"#fff3e0\"/><text x=\"610\" y=\"4\">reserve</text></g>"
    );
    let _ = writeln!(
        o,
        "<text x=\"12\" y=\"{:.1}\" fill=\"#757575\" font-size=\"11\">Drawn by stnh-sim from its own API request log and workload log ({} pods, {} API requests about them); not drawn by hand.</text>\n</svg>",
        ly + 34.0,
        d.rows.len(),
        d.rows.iter().map(|r| r.marks.len()).sum::<usize>()
    );
    o
}
