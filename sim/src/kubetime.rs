//! Kubernetes timestamps as the apiserver decodes and encodes them.
//!
//! - `metav1.Time` is parsed with Go's `time.RFC3339` layout (`2006-01-02T15:04:05Z07:00`):
//!   any fractional seconds are accepted (Go's parser allows them after the seconds even though
//!   the layout has none), `Z` or a `±hh:mm` offset. It is written back in UTC **with whole
//!   seconds** (`Time.MarshalJSON` formats with `time.RFC3339`), so a fraction is dropped.
//! - `metav1.MicroTime` is parsed with `2006-01-02T15:04:05.000000Z07:00`: the fraction must have
//!   **exactly six digits**, as Go's `.000000` layout element requires; it is written back in UTC
//!   with six digits.
//!
//! Errors read like Go's `time.ParseError`: `parsing time "x" as "2006-01-02T15:04:05Z07:00":
//! cannot parse "x" as "2006"`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{rfc3339, rfc3339_micros};

/// Go's `time.RFC3339`.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
/// apimachinery's `metav1.RFC3339Micro`.
pub const RFC3339_MICRO: &str = "2006-01-02T15:04:05.000000Z07:00";

fn cannot(s: &str, layout: &str, rest: &str, elem: &str) -> String {
    format!("parsing time {s:?} as {layout:?}: cannot parse {rest:?} as {elem:?}")
}

fn digits<'a>(
    s: &str,
    layout: &str,
    rest: &'a str,
    n: usize,
    elem: &str,
) -> Result<(i64, &'a str), String> {
    let b = rest.as_bytes();
    if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
        return Err(cannot(s, layout, rest, elem));
    }
    Ok((rest[..n].parse().unwrap_or(0), &rest[n..]))
}

fn literal<'a>(s: &str, layout: &str, rest: &'a str, lit: &str) -> Result<&'a str, String> {
    rest.strip_prefix(lit)
        .ok_or_else(|| cannot(s, layout, rest, lit))
}

fn parse(s: &str, micro: bool) -> Result<SystemTime, String> {
    let layout = if micro { RFC3339_MICRO } else { RFC3339 };
    let (y, r) = digits(s, layout, s, 4, "2006")?;
    let r = literal(s, layout, r, "-")?;
    let (mo, r) = digits(s, layout, r, 2, "01")?;
    let r = literal(s, layout, r, "-")?;
    let (d, r) = digits(s, layout, r, 2, "02")?;
    let r = literal(s, layout, r, "T")?;
    let (h, r) = digits(s, layout, r, 2, "15")?;
    let r = literal(s, layout, r, ":")?;
    let (mi, r) = digits(s, layout, r, 2, "04")?;
    let r = literal(s, layout, r, ":")?;
    let (se, mut r) = digits(s, layout, r, 2, "05")?;
    let mut nanos: u64 = 0;
    if micro {
        let frac = r
            .strip_prefix('.')
            .filter(|f| f.len() >= 6 && f.as_bytes()[..6].iter().all(u8::is_ascii_digit))
            .ok_or_else(|| cannot(s, layout, r, ".000000"))?;
        nanos = frac[..6].parse::<u64>().unwrap_or(0) * 1000;
        r = &frac[6..];
    } else if let Some(frac) = r.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n > 0 {
            let mut ds = frac[..n.min(9)].to_string();
            while ds.len() < 9 {
                ds.push('0');
            }
            nanos = ds.parse().unwrap_or(0);
            r = &frac[n..];
        }
    }
    let offset: i64 = if let Some(rest) = r.strip_prefix('Z') {
        r = rest;
        0
    } else {
        let sign = match r.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(cannot(s, layout, r, "Z07:00")),
        };
        let b = r.as_bytes();
        if b.len() < 6
            || !b[1..3].iter().all(u8::is_ascii_digit)
            || b[3] != b':'
            || !b[4..6].iter().all(u8::is_ascii_digit)
        {
            return Err(cannot(s, layout, r, "Z07:00"));
        }
        let oh: i64 = r[1..3].parse().unwrap_or(0);
        let om: i64 = r[4..6].parse().unwrap_or(0);
        r = &r[6..];
        sign * (oh * 3600 + om * 60)
    };
    if !r.is_empty() {
        return Err(format!("parsing time {s:?}: extra text: {r:?}"));
    }
    let out_of_range = |what: &str| format!("parsing time {s:?}: {what} out of range");
    if !(1..=12).contains(&mo) {
        return Err(out_of_range("month"));
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > mdays[(mo - 1) as usize] {
        return Err(out_of_range("day"));
    }
    if h > 23 {
        return Err(out_of_range("hour"));
    }
    if mi > 59 {
        return Err(out_of_range("minute"));
    }
    if se > 59 {
        return Err(out_of_range("second"));
    }
    let day_str = format!("{y:04}-{mo:02}-{d:02}T00:00:00Z");
    let midnight = crate::util::parse_rfc3339(&day_str).ok_or_else(|| out_of_range("year"))?;
    let secs = h * 3600 + mi * 60 + se - offset;
    let t = if secs >= 0 {
        midnight + Duration::from_secs(secs as u64)
    } else {
        midnight - Duration::from_secs((-secs) as u64)
    };
    Ok(t + Duration::from_nanos(nanos))
}

/// Parses a `metav1.Time`.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    parse(s, false)
}

/// Parses a `metav1.MicroTime` (exactly six fractional digits).
pub fn parse_micro_time(s: &str) -> Result<SystemTime, String> {
    parse(s, true)
}

/// A `metav1.Time` as the apiserver writes it (UTC, whole seconds).
pub fn format_time(t: SystemTime) -> String {
    rfc3339(t)
}

/// A `metav1.MicroTime` as the apiserver writes it (UTC, six digits).
pub fn format_micro_time(t: SystemTime) -> String {
    rfc3339_micros(t)
}

/// Seconds since the epoch, for comparisons in tests.
pub fn unix_secs_f64(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_needs_six_digits() {
        let t = parse_micro_time("2024-05-01T10:00:05.123456Z").unwrap();
        assert_eq!(format_micro_time(t), "2024-05-01T10:00:05.123456Z");
        assert_eq!(
            parse_micro_time("2024-05-01T10:00:05Z").unwrap_err(),
            r#"parsing time "2024-05-01T10:00:05Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000""#
        );
        assert!(parse_micro_time("2024-05-01T10:00:05.123Z").is_err());
        assert!(parse_micro_time("2024-05-01T10:00:05.1234567Z").is_err());
        let t = parse_micro_time("2024-05-01T12:00:05.000001+02:00").unwrap();
        assert_eq!(format_micro_time(t), "2024-05-01T10:00:05.000001Z");
    }

    #[test]
    fn time_accepts_fractions_and_offsets_and_drops_them_on_output() {
        let t = parse_time("2024-05-01T10:00:05.987Z").unwrap();
        assert_eq!(format_time(t), "2024-05-01T10:00:05Z");
        let t = parse_time("2024-05-01T09:30:05-00:30").unwrap();
        assert_eq!(format_time(t), "2024-05-01T10:00:05Z");
        assert_eq!(
            parse_time("yesterday").unwrap_err(),
            r#"parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006""#
        );
        assert_eq!(
            parse_time("2024-05-01 10:00:05Z").unwrap_err(),
            r#"parsing time "2024-05-01 10:00:05Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 10:00:05Z" as "T""#
        );
        assert!(parse_time("2024-13-01T10:00:05Z")
            .unwrap_err()
            .ends_with("month out of range"));
        assert!(parse_time("2024-02-30T10:00:05Z").is_err());
        assert!(parse_time("2024-05-01T10:00:05Zjunk").is_err());
    }
}
