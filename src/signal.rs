//! SIGTERM and SIGINT end the process at once, even as PID 1.
//!
//! As PID 1 of a container (FROM scratch, no init), a process that installs no handler
//! *ignores* SIGTERM: the kernel drops default-action signals sent to a namespace's init. The
//! pod would then hang for its whole termination grace period. So we install a handler, and it
//! exits right away: everything that matters is recorded on the Node (our annotations), so a
//! restarted handler resumes a drain where this one stopped. The handler uses only
//! async-signal-safe calls (`clock_gettime`, `write`, `_exit`) and an atomic load (the log
//! format: its line is logfmt or JSON like every other line).

/// Formats `YYYY-MM-DDTHH:MM:SS.mmmZ` into `buf` without allocating; returns the length.
fn format_ts(buf: &mut [u8; 32], secs: i64, millis: i64) -> usize {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant), as in time.rs but allocation-free.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let fields: [(i64, usize, u8); 7] = [
        (y, 4, b'-'),
        (m, 2, b'-'),
        (d, 2, b'T'),
        (rem / 3600, 2, b':'),
        (rem / 60 % 60, 2, b':'),
        (rem % 60, 2, b'.'),
        (millis, 3, b'Z'),
    ];
    let mut i = 0;
    for (value, width, sep) in fields {
        let mut v = value.clamp(0, 9999);
        for k in (0..width).rev() {
            buf[i + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        buf[i + width] = sep;
        i += width + 1;
    }
    i
}

// time_t and c_long are i64 on the 64-bit targets we build, not everywhere.
#[allow(clippy::unnecessary_cast)]
extern "C" fn on_signal(sig: libc::c_int) {
    let mut ts = [0u8; 32];
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime, write and _exit are async-signal-safe; buffers are on the stack.
    unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        let n = format_ts(&mut ts, now.tv_sec as i64, now.tv_nsec as i64 / 1_000_000);
        let (head, msg): (&[u8], &[u8]) = match (crate::log::json_enabled(), sig == libc::SIGTERM) {
            (false, true) => (b"ts=", b" level=info msg=\"received SIGTERM; exiting\"\n"),
            (false, false) => (b"ts=", b" level=info msg=\"received SIGINT; exiting\"\n"),
            (true, true) => (
                b"{\"ts\":\"",
                b"\",\"level\":\"info\",\"msg\":\"received SIGTERM; exiting\"}\n",
            ),
            (true, false) => (
                b"{\"ts\":\"",
                b"\",\"level\":\"info\",\"msg\":\"received SIGINT; exiting\"}\n",
            ),
        };
        // One write, so the line cannot interleave with another thread's.
        let mut line = [0u8; 128];
        let mut len = 0;
        for part in [head, &ts[..n], msg] {
            line[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        if crate::log::enabled(crate::log::Level::Info) {
            libc::write(2, line.as_ptr().cast(), len);
        }
        libc::_exit(0);
    }
}

/// Installs the SIGTERM/SIGINT handler.
pub fn install() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is well-formed.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_matches_the_logger() {
        for (secs, millis) in [
            (0i64, 0i64),
            (1_505_722_920, 123),
            (4_102_444_799, 999),
            (951_782_400, 7),
        ] {
            let mut buf = [0u8; 32];
            let n = format_ts(&mut buf, secs, millis);
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::from_millis((secs * 1000 + millis) as u64);
            assert_eq!(
                std::str::from_utf8(&buf[..n]).unwrap(),
                crate::time::format_rfc3339_millis(t)
            );
        }
    }
}
