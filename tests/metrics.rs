//! `METRICS_ADDR`: the real binary's `/metrics` and `/healthz` against the simulator. Counters
//! are checked against the simulator's own request logs (exact values), health against a
//! wedged loop and a silent metadata service, the server against abuse (slow clients, huge
//! requests, a flood of connections) while a drain runs, and a real scrape against `promtool`.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use spot_termination_notice_handler::metrics::kube_op;
use stnh_sim::{ImdsMode, PodSpec, Scenario, Sim};
use support::*;

const LONG: Duration = Duration::from_secs(40);
const SPOT: &str = "/latest/meta-data/spot/instance-action";

/// The address the handler logged it serves on (it binds port 0: a free one).
fn metrics_addr(h: &Handler) -> SocketAddr {
    let line = h.wait_for("msg=\"serving /metrics and /healthz\"", LONG);
    // The tests bind 127.0.0.1:0; the line names the port the OS picked.
    let port: u16 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port= in {line}"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sends `request` as is; returns the status and the body (status 0: no answer).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if s.write_all(request).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: stnh\r\n\r\n").as_bytes(),
    )
}

/// `/metrics` as series → value.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn with_prefix(m: &BTreeMap<String, f64>, prefix: &str) -> BTreeMap<String, f64> {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn sum(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    with_prefix(m, prefix).values().sum()
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

/// The kube request series the simulator's API log implies.
fn expected_kube_series(sim: &Sim) -> BTreeMap<String, f64> {
    const VERBS: [&str; 7] = [
        "get", "list", "create", "patch", "update", "delete", "other",
    ];
    const RES: [&str; 7] = [
        "discovery",
        "nodes",
        "nodes/status",
        "pods",
        "pods/eviction",
        "events",
        "other",
    ];
    let mut out = BTreeMap::new();
    for r in sim.api_requests() {
        let (v, res) = kube_op(&r.method, &r.path);
        let code = match r.status {
            0 => "transport",
            200..=299 => "2xx",
            429 => "429",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other",
        };
        *out.entry(format!(
            "stnh_kube_requests_total{{verb=\"{}\",resource=\"{}\",code=\"{code}\"}}",
            VERBS[v], RES[res]
        ))
        .or_insert(0.0) += 1.0;
    }
    out
}

fn count_api(sim: &Sim, f: impl Fn(&stnh_sim::ApiRequest) -> bool) -> f64 {
    sim.api_requests().iter().filter(|r| f(r)).count() as f64
}

#[test]
fn scrapes_count_exactly_while_idle_and_after_a_drain() {
    // web-1 and web-2 sit under a budget that never allows a disruption: refused, then
    // deleted at deadline − reserve (4 s after the notice); the other four are evicted.
    let sim =
        Sim::start(mixed_node().pdb("shop", "web-pdb", &[("app", "web")], None, Some(0))).unwrap();
    let h = Handler::start_idle(
        &sim,
        &[("METRICS_ADDR", "127.0.0.1:0"), ("DRAIN_RESERVE", "10s")],
    );
    let addr = metrics_addr(&h);
    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 200, "{body}");

    // Idle.
    eventually("a poll answered, and the spot source counted", LONG, || {
        // The series appears with the first counted answer: wait for it (a missing series is
        // not a failure yet), as the health line can come from another source's answer first.
        get(addr, "/healthz").1.contains("metadata answered")
            && scrape(addr)
                .get("stnh_metadata_requests_total{source=\"aws-spot\",result=\"absent\"}")
                .is_some_and(|v| *v >= 1.0)
    });
    let imds_before = sim.imds_requests().len() as f64;
    let idle = scrape(addr);
    let imds_after = sim.imds_requests().len() as f64;
    assert_eq!(
        value(
            &idle,
            &format!(
                "stnh_build_info{{version=\"{}\",kube_version=\"{}\",provider=\"aws\"}}",
                env!("CARGO_PKG_VERSION"),
                spot_termination_notice_handler::KUBE_VERSION
            )
        ),
        1.0
    );
    assert!(
        with_prefix(&idle, "stnh_notices_total").is_empty(),
        "{idle:#?}"
    );
    assert_eq!(sum(&idle, "stnh_actions_total"), 0.0);
    assert_eq!(with_prefix(&idle, "stnh_actions_total").len(), 11);
    assert_eq!(sum(&idle, "stnh_evictions_total"), 0.0);
    assert_eq!(with_prefix(&idle, "stnh_evictions_total").len(), 5);
    assert_eq!(value(&idle, "stnh_drain_duration_seconds_count"), 0.0);
    assert_eq!(value(&idle, "stnh_draining"), 0.0);
    // The start-up calls (the node; discovery of events.k8s.io and of Eviction), nothing
    // since (no API request while idle).
    assert_eq!(
        with_prefix(&idle, "stnh_kube_requests_total"),
        BTreeMap::from([
            (
                "stnh_kube_requests_total{verb=\"get\",resource=\"discovery\",code=\"2xx\"}"
                    .to_string(),
                2.0
            ),
            (
                "stnh_kube_requests_total{verb=\"get\",resource=\"nodes\",code=\"2xx\"}"
                    .to_string(),
                1.0
            ),
        ])
    );
    assert_eq!(
        expected_kube_series(&sim),
        with_prefix(&idle, "stnh_kube_requests_total")
    );
    // Every metadata request counted once. The metrics were read between two looks at the log;
    // the simulator logs a request before it answers, so up to one per watcher (4) may be
    // logged and not counted yet.
    let counted = sum(&idle, "stnh_metadata_requests_total");
    assert!(
        imds_before - 4.0 <= counted && counted <= imds_after,
        "{imds_before} - 4 <= {counted} <= {imds_after}"
    );
    assert!(
        value(
            &idle,
            "stnh_metadata_requests_total{source=\"aws-spot\",result=\"absent\"}"
        ) >= 1.0
    );
    assert_eq!(
        value(
            &idle,
            "stnh_metadata_requests_total{source=\"aws-spot\",result=\"error\"}"
        ),
        0.0
    );
    // Identity reads at start-up: instance-id, instance-type, zone (+ the token PUT).
    assert!(
        value(
            &idle,
            "stnh_metadata_requests_total{source=\"other\",result=\"ok\"}"
        ) >= 3.0
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = value(
        &idle,
        "stnh_metadata_last_success_timestamp_seconds{source=\"aws-spot\"}",
    );
    assert!((now - 30.0..=now + 1.0).contains(&last), "{last} vs {now}");
    let turned = value(&idle, "stnh_loop_last_turn_timestamp_seconds");
    assert!(
        (now - 30.0..=now + 1.0).contains(&turned),
        "{turned} vs {now}"
    );
    assert!(value(&idle, "stnh_http_responses_total{code=\"200\"}") >= 2.0);
    assert!(value(&idle, "process_resident_memory_bytes") > 0.0);

    // The notice and the drain.
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(14));
    h.wait_for("msg=\"drain finished\"", LONG);
    // The drained record, its Event and the condition go out after the log line, in an order
    // that depends on the workers (the last request need not be the record's PATCH): wait
    // until the API requests settle and the counters caught up with the simulator's log, then
    // compare series by series.
    settled(&sim);
    let mut after = BTreeMap::new();
    eventually("every API request counted", LONG, || {
        after = scrape(addr);
        sum(&after, "stnh_kube_requests_total") == sim.api_requests().len() as f64
    });
    record_requests("metrics_scrapes_count_exactly", &sim);
    assert_eq!(
        with_prefix(&after, "stnh_kube_requests_total"),
        expected_kube_series(&sim)
    );
    let evict = |r: &stnh_sim::ApiRequest, s: u16| {
        r.method == "POST" && r.path.ends_with("/eviction") && r.status == s
    };
    let refused = count_api(&sim, |r| evict(r, 429));
    let accepted = count_api(&sim, |r| evict(r, 201));
    let forced = count_api(&sim, |r| r.method == "DELETE" && r.status == 200);
    assert_eq!(accepted, 4.0, "cache-0, debug, db-0, report-1");
    assert_eq!(forced, 2.0, "web-1 and web-2 at deadline − reserve");
    assert!(refused >= 2.0);
    let ev = |r: &str| value(&after, &format!("stnh_evictions_total{{result=\"{r}\"}}"));
    assert_eq!(
        [
            ev("accepted"),
            ev("budget_refused"),
            ev("forced"),
            ev("failed"),
            ev("already_gone")
        ],
        [accepted, refused, forced, 0.0, 0.0]
    );
    assert_eq!(
        with_prefix(&after, "stnh_notices_total"),
        BTreeMap::from([(
            "stnh_notices_total{provider=\"aws\",kind=\"spot-interruption\"}".to_string(),
            1.0
        )])
    );
    let act = |a: &str, r: &str| {
        value(
            &after,
            &format!("stnh_actions_total{{action=\"{a}\",result=\"{r}\"}}"),
        )
    };
    for (a, r, n) in [
        ("cordon", "ok", 1.0),
        ("taint", "ok", 1.0),
        ("label", "ok", 1.0),
        ("drain", "ok", 1.0),
        ("give_back", "ok", 0.0),
        ("cordon", "error", 0.0),
        ("drain", "error", 0.0),
        ("drain", "cancelled", 0.0),
    ] {
        assert_eq!(act(a, r), n, "{a} {r}");
    }
    assert_eq!(sum(&after, "stnh_actions_total"), 4.0);
    assert_eq!(value(&after, "stnh_drain_duration_seconds_count"), 1.0);
    assert_eq!(
        value(&after, "stnh_drain_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    let secs = value(&after, "stnh_drain_duration_seconds_sum");
    assert!(secs > 0.0 && secs < 14.0, "{secs}");
    assert_eq!(value(&after, "stnh_draining"), 0.0);
    if std::env::var_os("STNH_PRINT_METRICS").is_some() {
        println!("{}", get(addr, "/metrics").1);
    }
    // The scrape carries no secret.
    let text = get(addr, "/metrics").1 + &get(addr, "/healthz").1;
    assert!(!text.contains("XXXXSECRETXXXX") && !text.contains(&sim.token()));

    // The picture of this drain: one row per pod that was on the node.
    let (notice, deadline) = sim.aws_notice().unwrap();
    let d = sim.timeline(stnh_sim::timeline::Window {
        notice,
        deadline,
        reserve: Duration::from_secs(10),
    });
    let svg = stnh_sim::timeline::render(&d);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let rows = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("pod"))
        .count();
    // Six evicted or deleted, the DaemonSet pod, the mirror pod and the handler's own.
    assert_eq!(rows, 9, "{svg}");
}

#[test]
fn healthz_fails_while_the_loop_is_wedged_and_recovers() {
    let sim = Sim::start(
        Scenario::new(NODE).pod(
            PodSpec::new("shop", "web-1")
                .replicaset("web")
                .shutdown(Duration::from_millis(200)),
        ),
    )
    .unwrap();
    let h = Handler::start_idle(
        &sim,
        &[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("HEALTH_LOOP_TIMEOUT", "1s"),
        ],
    );
    let addr = metrics_addr(&h);
    eventually("healthy", LONG, || get(addr, "/healthz").0 == 200);
    // The cordon's PATCH gets no answer twice: the loop waits in it (5 s each) and cannot turn.
    sim.hang_next("PATCH", &format!("/api/v1/nodes/{NODE}"), 2);
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(60));
    let mut seen = String::new();
    eventually("503 while the loop is stuck", LONG, || {
        let (s, b) = get(addr, "/healthz");
        seen = b;
        s == 503
    });
    assert!(
        seen.starts_with("unhealthy: the notice loop has not turned for ")
            && seen.trim_end().ends_with("(HEALTH_LOOP_TIMEOUT 1s)")
            && seen.lines().count() == 1,
        "{seen:?}"
    );
    h.wait_for("msg=\"drain finished\"", LONG);
    eventually("healthy again", LONG, || get(addr, "/healthz").0 == 200);
    // The drain runs beside the loop's retries: wait for the cordon to be on and counted.
    let cordon_ok = "stnh_actions_total{action=\"cordon\",result=\"ok\"}";
    let mut m = BTreeMap::new();
    eventually("the cordon counted", LONG, || {
        m = scrape(addr);
        m.get(cordon_ok) == Some(&1.0)
    });
    assert!(value(&m, "stnh_http_responses_total{code=\"503\"}") >= 1.0);
    assert!(
        value(
            &m,
            "stnh_kube_requests_total{verb=\"patch\",resource=\"nodes\",code=\"transport\"}"
        ) >= 2.0
    );
    // The cordon's PATCH failed once or twice (the second hang may catch the record instead).
    let cordons = |ok: bool| {
        count_api(&sim, |r| {
            r.method == "PATCH"
                && r.body.contains("\"unschedulable\":true")
                && (r.status == 200) == ok
        })
    };
    assert!(cordons(false) >= 1.0);
    assert_eq!(
        value(&m, "stnh_actions_total{action=\"cordon\",result=\"error\"}"),
        cordons(false)
    );
    assert_eq!(cordons(true), 1.0);
}

#[test]
fn healthz_judges_metadata_silence_only_past_its_long_limit() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    // One handler with a short limit, one with the default (15 min).
    let short = Handler::start_idle(
        &sim,
        &[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("HEALTH_METADATA_TIMEOUT", "2s"),
        ],
    );
    let long = Handler::start(&sim, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let (a_short, a_long) = (metrics_addr(&short), metrics_addr(&long));
    for a in [a_short, a_long] {
        eventually("metadata answered", LONG, || {
            let (s, b) = get(a, "/healthz");
            s == 200 && b.contains("metadata answered")
        });
    }
    sim.set_imds_mode(ImdsMode::Disabled); // every metadata request: 403
    let mut seen = String::new();
    eventually("503 past 2 s of silence", LONG, || {
        let (s, b) = get(a_short, "/healthz");
        seen = b;
        s == 503
    });
    assert!(
        seen.starts_with("unhealthy: no metadata source has answered for ")
            && seen.trim_end().ends_with("(HEALTH_METADATA_TIMEOUT 2s)"),
        "{seen:?}"
    );
    // The default limit: the silence is reported, and the pod stays healthy.
    eventually("the silence noted", LONG, || {
        get(a_long, "/healthz").1.contains("no metadata answer for")
    });
    let (s, b) = get(a_long, "/healthz");
    assert_eq!(s, 200, "{b}");
    let m = scrape(a_long);
    assert!(
        value(
            &m,
            "stnh_metadata_requests_total{source=\"aws-spot\",result=\"error\"}"
        ) >= 1.0
    );
    sim.set_imds_mode(ImdsMode::Optional);
    eventually("healthy again once metadata answers", LONG, || {
        get(a_short, "/healthz").0 == 200
    });
}

#[test]
fn requests_other_than_get_metrics_or_healthz_get_their_status() {
    let sim = Sim::start(Scenario::new(NODE)).unwrap();
    let h = Handler::start_idle(&sim, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let addr = metrics_addr(&h);
    let big_head = format!(
        "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(5000)
    );
    let cases: &[(&[u8], u16, &str)] = &[
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            405,
            "only GET is served\n",
        ),
        (
            b"DELETE /healthz HTTP/1.1\r\n\r\n",
            405,
            "only GET is served\n",
        ),
        (
            b"GET /debug/pprof HTTP/1.1\r\n\r\n",
            404,
            "not found: try /metrics or /healthz\n",
        ),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n",
            400,
            "malformed request line\n",
        ),
        (
            big_head.as_bytes(),
            431,
            "request head larger than 4096 bytes\n",
        ),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x",
            408,
            "request head not received in time\n",
        ),
    ];
    for (req, status, body) in cases {
        let (s, b) = exchange(addr, req);
        assert_eq!(
            (s, b.as_str()),
            (*status, *body),
            "{:?}",
            String::from_utf8_lossy(&req[..req.len().min(40)])
        );
    }
    let (_, raw) = exchange(addr, b"PUT / HTTP/1.1\r\n\r\n");
    assert_eq!(raw, "only GET is served\n");
    let m = scrape(addr);
    for (code, n) in [
        ("405", 3.0),
        ("404", 1.0),
        ("400", 1.0),
        ("431", 1.0),
        ("408", 1.0),
    ] {
        assert_eq!(
            value(&m, &format!("stnh_http_responses_total{{code=\"{code}\"}}")),
            n,
            "{code}"
        );
    }
}

/// VmRSS and threads of a process, from /proc.
/// The process's peak resident set (`VmHWM`), in KiB.
fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kb_and_threads(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

#[test]
fn slow_clients_huge_requests_and_a_flood_do_not_disturb_polls_or_the_drain() {
    let sim = Sim::start(mixed_node()).unwrap();
    let h = Handler::start_idle(&sim, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let addr = metrics_addr(&h);
    let pid = h.pid();
    let (_, threads_idle) = rss_kb_and_threads(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let mut abusers = Vec::new();
    // 24 clients that send one byte per second, reconnecting whenever they are cut off.
    for _ in 0..24 {
        let stop = stop.clone();
        abusers.push(std::thread::spawn(move || {
            let mut cut_off = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                };
                for b in b"GET /metrics HTTP/1.1\r\nHost: slow\r\n".iter().cycle() {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                cut_off += 1;
            }
            cut_off
        }));
    }
    // Requests of 1 MB, one after another.
    let big = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            let mut req = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
            req.resize(1024 * 1024, b'x');
            while !stop.load(Ordering::Relaxed) && statuses.len() < 20 {
                statuses.push(exchange(addr, &req).0);
            }
            statuses
        })
    };
    // 1,000 connections at once (10 threads of 100), held open and silent: the server serves
    // 16, the kernel's listen queue holds more, the rest time out connecting.
    let flood: Vec<TcpStream> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                (0..100)
                    .filter_map(|_| {
                        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(flood.len() >= 100, "only {} connections", flood.len());
    eprintln!("flood: {} of 1000 connections established", flood.len());

    // Meanwhile the handler polls on, and a notice is drained as usual.
    let polls = |sim: &Sim| {
        sim.imds_requests()
            .iter()
            .filter(|r| r.path == SPOT)
            .count()
    };
    let before = polls(&sim);
    eventually("polls go on under the flood", LONG, || {
        polls(&sim) >= before + 10
    });
    let mut peak = (0, 0);
    let notice_at = Instant::now();
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(30));
    let finished = loop {
        let (rss, threads) = rss_kb_and_threads(pid);
        peak = (peak.0.max(rss), peak.1.max(threads));
        if let Some(l) = h.logs().into_iter().find(|l| l.contains("drain finished")) {
            break l;
        }
        assert!(notice_at.elapsed() < LONG, "no drain:\n{}", h.dump());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        finished.contains("msg=\"drain finished\"")
            && finished.contains(" evicted=6 forced=0 failed=0 ")
            && finished.contains(" still_present=0 "),
        "{finished}"
    );
    assert!(
        sim.api_requests().iter().all(|r| r.method != "DELETE"),
        "nothing forced"
    );
    let after_drain = polls(&sim);
    eventually("polls go on after the drain", LONG, || {
        polls(&sim) >= after_drain + 3
    });
    // Bounded: at most MAX_CONNECTIONS (16) connection threads on top of the idle ones and
    // the drain's workers; memory far below the 32 MiB limit of the manifests.
    assert!(peak.0 < 16 * 1024, "VmRSS peaked at {} KiB", peak.0);
    // The high-water mark over the whole abuse (the kernel's, not our samples'): a generous
    // resource bound, far above the figure and below the chart's limit.
    let hwm = vm_hwm_kb(pid);
    eprintln!(
        "VmHWM {hwm} KiB, sampled VmRSS peak {} KiB, threads peak {}",
        peak.0, peak.1
    );
    assert!(hwm > 0 && hwm < 64 * 1024, "VmHWM {hwm} KiB");
    assert!(
        peak.1 <= threads_idle + 16 + 6 + 8,
        "{} threads at the peak, {threads_idle} idle",
        peak.1
    );

    stop.store(true, Ordering::Relaxed);
    drop(flood);
    let cut_off: usize = abusers.into_iter().map(|t| t.join().unwrap()).sum();
    let statuses = big.join().unwrap();
    assert!(cut_off >= 1, "slow clients are cut off");
    eventually("healthy once the flood is over", LONG, || {
        get(addr, "/healthz").0 == 200
    });
    let m = scrape(addr);
    assert!(value(&m, "stnh_http_responses_total{code=\"408\"}") >= 16.0);
    let refused = statuses.iter().filter(|s| **s == 431).count() as f64;
    assert!(value(&m, "stnh_http_responses_total{code=\"431\"}") >= refused.max(1.0));
    assert!(
        statuses.iter().all(|s| *s == 431 || *s == 0),
        "a 1 MB request is refused: {statuses:?}"
    );
    assert!(
        h.logs().iter().all(|l| !l.contains("level=error")),
        "{}",
        h.dump()
    );
}

#[test]
fn promtool_accepts_a_real_scrape() {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let required = std::env::var_os("STNH_REQUIRE_PROMTOOL").is_some()
        || std::env::var("CI").is_ok_and(|v| v == "true");
    let found = std::process::Command::new(&promtool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !required,
            "promtool not found ({promtool}): `make metrics-check` installs Debian's prometheus package"
        );
        eprintln!(
            "\n!!! SKIPPED promtool_accepts_a_real_scrape: promtool is not installed. \
             `make metrics-check` installs it (Debian: apt-get install prometheus) and runs this test; CI does.\n"
        );
        return;
    }
    // A drain with every kind of answer, so that every family has samples.
    let sim =
        Sim::start(mixed_node().pdb("shop", "web-pdb", &[("app", "web")], None, Some(0))).unwrap();
    let h = Handler::start_idle(
        &sim,
        &[("METRICS_ADDR", "127.0.0.1:0"), ("DRAIN_RESERVE", "10s")],
    );
    let addr = metrics_addr(&h);
    sim.set_notice("terminate", SystemTime::now() + Duration::from_secs(14));
    h.wait_for("msg=\"drain finished\"", LONG);
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("stnh_drain_duration_seconds_bucket{le=\"+Inf\"} 1"),
        "{body}"
    );
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}\n{body}"
    );
    eprintln!(
        "promtool check metrics: no problems in a scrape of {} lines",
        body.lines().count()
    );
}
