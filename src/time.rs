//! Wall-clock helpers: RFC 3339 parsing and formatting, and the duration syntax of our settings.
//!
//! Pure functions over `SystemTime`, no time-zone database: AWS and Kubernetes only ever send UTC
//! (`Z`) or a numeric offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// 9999-12-31T23:59:59Z, the last second a four-digit year can write.
const LAST_SECOND: u64 = 253_402_300_799;

/// Parses an RFC 3339 timestamp (`2017-09-18T08:22:00Z`, fractional seconds and `+hh:mm` offsets
/// allowed; `t`/`z` and a space separator accepted as RFC 3339 permits). Returns `None` for
/// anything else, including times before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, min, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (60) is folded into the next second's neighbour: 59.
    if day == 0 || day > days_in_month || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &rest[1..1 + n];
        for i in 0..9 {
            nanos = nanos * 10 + frac.get(i).map_or(0, |c| u32::from(c - b'0'));
        }
        rest = &rest[1 + n..];
    }
    let offset_secs: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(digits(&[*h1, *h2])?);
            let m = i64::from(digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec.min(59)) - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    // A negative offset on the last day of 9999 lands in year 10000, which [`format_rfc3339`]
    // could not write back in four digits (a ledger entry would not parse after a restart).
    if secs > LAST_SECOND {
        return None;
    }
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Parses the GMT dates of HTTP and the clouds: the HTTP `Date` header and Azure's `NotBefore`
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 7231 IMF-fixdate / RFC 1123) and AWS scheduled events
/// (`21 Jan 2019 09:00:43 GMT`, `1 Jan 2021 02:00:00 GMT`: no weekday, day not zero-padded).
/// The weekday, when present, is not checked. `None` for anything else.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let rest = match s.split_once(", ") {
        Some((wd, rest)) if wd.len() == 3 && wd.bytes().all(|b| b.is_ascii_alphabetic()) => rest,
        Some(_) => return None,
        None => s,
    };
    let mut parts = rest.split(' ');
    let (day, mon, year, hms, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || zone != "GMT" || !(1..=2).contains(&day.len()) || year.len() != 4 {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == mon)? + 1;
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let rfc3339 = format!("{year}-{month:02}-{:02}T{}Z", digits(day.as_bytes())?, hms);
    parse_rfc3339(&rfc3339)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 IMF-fixdate).
pub fn format_http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, s, _) = split(t);
    let days = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 86_400;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn split(t: SystemTime) -> (i64, u32, u32, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    (y, m, day, secs % 86_400, d.subsec_millis())
}

/// `2017-09-18T08:22:00Z`: whole seconds, as AWS and Kubernetes write them.
pub fn format_rfc3339(t: SystemTime) -> String {
    let (y, m, d, s, _) = split(t);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2017-09-18T08:22:00.123456Z`: a Kubernetes MicroTime (exactly six fractional digits).
pub fn format_micro_time(t: SystemTime) -> String {
    let s = format_rfc3339(t);
    let micros = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    format!("{}.{micros:06}Z", &s[..s.len() - 1])
}

/// `2017-09-18T08:22:00.123Z`: for log lines.
pub fn format_rfc3339_millis(t: SystemTime) -> String {
    let (y, m, d, s, ms) = split(t);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses the duration syntax of our settings: a bare number means seconds (`5`, `0.5`), or a
/// number with a unit: `ms`, `s`, `m`, `h` (`200ms`, `90s`, `2m`, `1.5m`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split_at = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = if split_at == 0 {
        return None;
    } else {
        s.split_at(split_at)
    };
    parse_duration_with_unit(num, unit)
}

fn parse_duration_with_unit(num: &str, unit: &str) -> Option<Duration> {
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let secs = value * scale;
    (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

/// [`parse_duration`] that also accepts a bare number (seconds), e.g. the seed's `POLL_INTERVAL=5`.
pub fn parse_seconds_or_duration(s: &str) -> Option<Duration> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return parse_duration_with_unit(t, "");
    }
    parse_duration(t)
}

/// Human form of a duration for banners and help: `1s`, `200ms`, `2m`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Whole seconds from `now` until `t` (negative when `t` is past).
pub fn secs_until(t: SystemTime, now: SystemTime) -> f64 {
    match t.duration_since(now) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = parse_rfc3339("1994-11-06T08:49:37Z").unwrap();
        let cases: &[(&str, Option<SystemTime>)] = &[
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(t)),
            ("6 Nov 1994 08:49:37 GMT", Some(t)),
            ("06 Nov 1994 08:49:37 GMT", Some(t)),
            (
                "21 Jan 2019 09:00:43 GMT",
                parse_rfc3339("2019-01-21T09:00:43Z"),
            ),
            (
                "1 Jan 2021 02:00:00 GMT",
                parse_rfc3339("2021-01-01T02:00:00Z"),
            ),
            (
                "Tue, 05 Nov 2024 10:15:30 GMT",
                parse_rfc3339("2024-11-05T10:15:30Z"),
            ),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sunday, 06-Nov-94 08:49:37 GMT", None),
            ("31 Feb 2021 02:00:00 GMT", None),
            ("1 Foo 2021 02:00:00 GMT", None),
            ("1 Jan 2021 2:00:00 GMT", None),
            ("", None),
            ("1 Jan 2021 02:00:00 GMT extra", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_http_date(s), *want, "{s:?}");
        }
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let now = SystemTime::now();
        let whole =
            UNIX_EPOCH + Duration::from_secs(now.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(parse_http_date(&format_http_date(now)), Some(whole));
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_table() {
        let cases: &[(&str, Option<SystemTime>)] = &[
            ("1970-01-01T00:00:00Z", Some(at(0))),
            ("2017-09-18T08:22:00Z", Some(at(1_505_722_920))),
            ("2017-09-18t08:22:00z", Some(at(1_505_722_920))),
            ("2017-09-18 08:22:00Z", Some(at(1_505_722_920))),
            ("2017-09-18T10:22:00+02:00", Some(at(1_505_722_920))),
            ("2017-09-18T06:22:00-02:00", Some(at(1_505_722_920))),
            ("2024-02-29T00:00:00Z", Some(at(1_709_164_800))),
            (
                "2017-09-18T08:22:00.250Z",
                Some(at(1_505_722_920) + Duration::from_millis(250)),
            ),
            ("  2017-09-18T08:22:00Z\n", Some(at(1_505_722_920))),
            ("2023-02-29T00:00:00Z", None),
            ("2017-13-18T08:22:00Z", None),
            ("2017-09-18T24:00:00Z", None),
            ("2017-09-18T08:22:00", None),
            ("2017-09-18T08:22:00.Z", None),
            ("2017-09-18T08:22:00+0200", None),
            ("2017-09-18", None),
            ("1969-12-31T23:59:59Z", None),
            ("not a time at all, no", None),
            ("", None),
            ("2017-09-18T08:22:00Zjunk", None),
            ("2017-0a-18T08:22:00Z", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_rfc3339(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn times_after_year_9999_are_refused() {
        // A negative offset on 9999-12-31 is year 10000 in UTC: format_rfc3339 wrote it with
        // five digits, which no longer parsed (a ledger entry lost after a restart).
        let last = parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(format_rfc3339(last), "9999-12-31T23:59:59Z");
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59.999-00:00"),
            Some(last + Duration::from_nanos(999_000_000))
        );
        assert_eq!(parse_rfc3339("9999-12-31T23:30:00-01:00"), None);
        assert_eq!(
            parse_rfc3339("9999-12-31T22:00:00+01:00"),
            Some(last - Duration::from_secs(10_799))
        );
    }

    #[test]
    fn format_round_trips() {
        for secs in [
            0u64,
            951_782_400,
            1_505_722_920,
            4_102_444_800,
            1_709_164_800,
        ] {
            let s = format_rfc3339(at(secs));
            assert_eq!(parse_rfc3339(&s), Some(at(secs)), "{s}");
        }
        assert_eq!(format_rfc3339(at(1_505_722_920)), "2017-09-18T08:22:00Z");
        assert_eq!(
            format_rfc3339_millis(at(1_505_722_920) + Duration::from_millis(7)),
            "2017-09-18T08:22:00.007Z"
        );
    }

    #[test]
    fn durations_table() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Option<Duration>)] = &[
            ("5", Some(ms(5000))),
            ("0.2", Some(ms(200))),
            ("5s", Some(ms(5000))),
            ("200ms", Some(ms(200))),
            ("2m", Some(ms(120_000))),
            ("1.5m", Some(ms(90_000))),
            ("1h", Some(ms(3_600_000))),
            ("", None),
            ("s", None),
            ("5 s", None),
            ("-5s", None),
            ("5d", None),
            ("1..5s", None),
            (".5s", None),
            ("5.s", None),
            ("1e3", None),
            ("99999999999999999999h", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_seconds_or_duration(input), *want, "input {input:?}");
        }
        assert_eq!(
            parse_duration("5"),
            None,
            "a bare number needs the seconds variant"
        );
        assert_eq!(format_duration(ms(1000)), "1s");
        assert_eq!(format_duration(ms(200)), "200ms");
        assert_eq!(format_duration(ms(120_000)), "2m");
        assert_eq!(format_duration(ms(1500)), "1.5s");
    }
}
