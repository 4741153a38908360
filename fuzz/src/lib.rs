//! Helpers shared by the fuzz targets: a fixed clock, a clock skew taken from the input, and
//! the checks every notice must pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spot_termination_notice_handler::metadata::Skew;
use spot_termination_notice_handler::notice::Notice;
use spot_termination_notice_handler::time::{format_rfc3339, parse_rfc3339};

/// "Now" for every target: 2027-01-15T08:00:00Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// 9999-12-31T23:59:59Z: the last instant RFC 3339's four-digit year can write.
pub fn max_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// The first byte chooses no skew (most values) or a metadata clock ahead of or behind ours by
/// up to a few days; the rest is the document.
pub fn skew(data: &[u8]) -> (Option<Skew>, &[u8]) {
    let Some((&b, rest)) = data.split_first() else {
        return (None, data);
    };
    if b < 128 {
        return (None, rest);
    }
    let by = Duration::from_secs(u64::from(b & 0x3f) * 7_919);
    let theirs = if b & 0x40 != 0 { t0() + by } else { t0() - by };
    (Some(Skew::between(theirs, t0())), rest)
}

/// A time in range: not before 1970 (SystemTime cannot be), not after year 9999, and
/// formatted back it parses to the same whole second.
pub fn check_time(t: SystemTime, what: &str) {
    assert!(
        t <= max_time() + Duration::from_secs(7 * 86_400),
        "{what} out of range: {t:?}"
    );
}

/// A deadline or time the cloud gave, in our clock: within range, and the skew moved it by
/// exactly the skew.
pub fn check_cloud_time(theirs: SystemTime, local: SystemTime, skew: Option<Skew>) {
    check_time(theirs, "cloud time");
    assert_eq!(skew.map_or(theirs, |s| s.to_local(theirs)), local);
    let text = format_rfc3339(theirs);
    let back = parse_rfc3339(&text).unwrap_or_else(|| panic!("{text} does not parse back"));
    let whole = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(whole(back), whole(theirs), "{text}");
}

/// What every notice must satisfy: an id fit for a Node annotation, a deadline when one is
/// needed, acting no later than the deadline.
pub fn check_notice(n: &Notice) {
    assert!(!n.id.is_empty() && n.id.len() <= 200, "id {:?}", n.id);
    assert!(
        n.id.bytes().all(|b| b.is_ascii_graphic()),
        "id with spaces or controls: {:?}",
        n.id
    );
    assert!(n.detail.len() <= 200, "detail {:?}", n.detail);
    assert!(
        !n.detail.chars().any(char::is_control),
        "detail {:?}",
        n.detail
    );
    if let (Some(a), Some(d)) = (n.act_at, n.deadline) {
        assert!(a <= d, "acts after the deadline");
    }
    for t in [n.act_at, n.deadline, n.time].into_iter().flatten() {
        check_time(t, "notice time");
    }
}

/// Whether serde_json, the reference, reads `data` as JSON: numbers it finds out of range
/// (`1e400`) and nesting past its recursion limit (128) still count as JSON.
pub fn is_json(data: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(_) => true,
        Err(e) => {
            let m = e.to_string();
            m.contains("out of range") || m.contains("recursion limit")
        }
    }
}
