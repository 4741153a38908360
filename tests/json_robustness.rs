//! No input can hang or abort the handler's JSON parsing: nanoserde loops forever or panics on
//! some truncated documents, so every body goes through `json::check` first. This test throws
//! random well-formed documents (built from the field names we read, with values of every
//! type), their truncations and random byte flips at every parser entry point, each under a
//! time bound. A panic fails the test; so does a parse that does not return within 5 s.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use spot_termination_notice_handler::cloud::aws;
use spot_termination_notice_handler::json;
use spot_termination_notice_handler::kube::model::{ApiResourceList, Node, Pod, PodList, Status};
use spot_termination_notice_handler::notice::Action;
use spot_termination_notice_handler::record;

/// xorshift64*: deterministic, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &[
    "metadata",
    "items",
    "continue",
    "name",
    "namespace",
    "uid",
    "annotations",
    "kubernetes.io/config.mirror",
    "ownerReferences",
    "apiVersion",
    "kind",
    "controller",
    "deletionTimestamp",
    "spec",
    "nodeName",
    "terminationGracePeriodSeconds",
    "volumes",
    "emptyDir",
    "medium",
    "status",
    "phase",
    "unschedulable",
    "spot-termination-notice-handler/notice",
    "spot-termination-notice-handler/phase",
    "message",
    "reason",
    "code",
    "details",
    "causes",
    "retryAfterSeconds",
    "resources",
    "group",
    "version",
    "action",
    "time",
    "x",
];

const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "1e3",
    "-2.5E-7",
    "1e+21",
    "9223372036854775808",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "1e400",
    "\"\"",
    "\"terminate\"",
    "\"2026-11-26T08:42:00Z\"",
    "\"\\u0041\\n\\\"\\\\\"",
    "\"\\ud83d\\ude00\"",
    "\"é\"",
    "\"DaemonSet\"",
];

fn value(rng: &mut Rng, depth: u32, out: &mut String) {
    match if depth == 0 { 0 } else { rng.below(4) } {
        0 => out.push_str(rng.pick(SCALARS)),
        1 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                value(rng, depth - 1, out);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..rng.below(6) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json::escape(rng.pick(KEYS)));
                out.push(':');
                value(rng, depth - 1, out);
            }
            out.push('}');
        }
    }
}

/// Feeds `body` to every parser the handler has; returns normally unless one panics.
fn parse_everything(body: &[u8]) {
    let _ = json::parse::<PodList>(body);
    let _ = json::parse::<Pod>(body);
    let _ = json::parse::<Node>(body);
    let _ = json::parse::<Status>(body);
    let _ = json::parse::<ApiResourceList>(body);
    let now = SystemTime::now();
    let _ = aws::parse_instance_action(body, None, now);
    let _ = aws::parse_notice_url(body, None, now);
    let _ = aws::parse_rebalance(body, None, Action::Cordon, Duration::ZERO);
    let _ = aws::parse_scheduled(body, None, Action::Drain, Duration::ZERO);
    if let Ok(s) = std::str::from_utf8(body) {
        let _ = record::ledger_from_json(s);
        let _ = record::Before::parse(s);
    }
}

/// Runs `parse_everything` on another thread, so that a hang fails instead of blocking.
fn bounded(body: Vec<u8>, seed: u64) {
    let (tx, rx) = mpsc::channel();
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    std::thread::spawn(move || {
        parse_everything(&body);
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("seed {seed}: parsing hung on {shown:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("seed {seed}: parsing panicked on {shown:?}")
        }
    }
}

#[test]
fn random_documents_truncations_and_flips_never_hang_or_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut checked = 0;
    for seed in 0..1500u64 {
        let mut doc = String::new();
        value(&mut rng, 1 + (seed % 6) as u32, &mut doc);
        let bytes = doc.into_bytes();
        let mut batch = vec![bytes.clone()];
        // Truncations (the case that hangs nanoserde) and single-byte corruptions.
        for _ in 0..4 {
            let cut = rng.below(bytes.len() as u64 + 1) as usize;
            batch.push(bytes[..cut].to_vec());
            let mut flipped = bytes.clone();
            if !flipped.is_empty() {
                let i = rng.below(flipped.len() as u64) as usize;
                flipped[i] = rng
                    .pick(&["{", "}", "[", "]", ",", ":", "\"", "\\", "0", "-", "e", " "])
                    .as_bytes()[0];
            }
            batch.push(flipped);
        }
        // One thread per document batch keeps the test quick; each batch is bounded.
        let joined_seed = seed;
        for b in batch {
            bounded(b, joined_seed);
            checked += 1;
        }
    }
    assert!(checked >= 13_000, "{checked}");
}

#[test]
fn known_nanoserde_traps_are_refused_by_the_guard() {
    // Each of these hangs (infinite loop) or panics inside nanoserde 0.2.1 without the guard.
    for body in [
        &br#"{"metadata":{"name":"n"},"items":[{"metadata":{"name":"a"#[..],
        br#"{"action":"terminate","time":"#,
        br#"{"name":"n","deep":{"a":[1"#,
        br#"{"items":[{"metadata":"#,
    ] {
        bounded(body.to_vec(), 0);
        assert!(json::parse::<PodList>(body).is_err());
    }
}
