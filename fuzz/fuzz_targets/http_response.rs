//! The HTTP/1.1 response reader (status line, headers, Content-Length, chunked, until close,
//! keep-alive), driven through an in-memory `Read` that hands the bytes out in pieces the
//! input chooses.
//!
//! Holds: no panic or hang; a body never longer than the limit; the same answer however the
//! bytes are split into reads (TCP may split them anywhere); a Content-Length body is exactly
//! that long; and the reader's memory stays within a bound set by the limit and the input.
#![no_main]
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Cursor, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::http::read_response_from;

/// Counts live and peak heap bytes, to check the reader's memory bound.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let live = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Hands out the bytes in reads of 1 to 64 bytes chosen by a small generator.
struct Split<'a> {
    data: &'a [u8],
    state: u32,
}

impl Read for Split<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.state = self.state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (1 + (self.state >> 16) as usize % 64)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, seed, stream @ ..] = data else {
        return;
    };
    let head_only = flags & 1 != 0;
    let max_body = [0, 7, 64, 4096, 65_536, 1 << 20][(flags >> 1) as usize % 6];

    let live_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(live_before, Ordering::Relaxed);
    let whole = read_response_from(&mut Cursor::new(stream), head_only, max_body);
    let peak = PEAK.load(Ordering::Relaxed) - live_before;
    // The buffer (64 KiB head and lines + a read), headers twice (the answer and its copy),
    // the body with its growth: nothing else may scale with the input.
    let bound = 3 * max_body + 40 * stream.len() + 300_000;
    assert!(
        peak <= bound,
        "reader peak {peak} bytes > {bound} (input {} bytes)",
        stream.len()
    );

    let split = read_response_from(
        &mut Split {
            data: stream,
            state: u32::from(*seed),
        },
        head_only,
        max_body,
    );
    match (&whole, &split) {
        (Ok((a, keep_a)), Ok((b, keep_b))) => {
            assert_eq!(a.status, b.status);
            assert_eq!(a.headers, b.headers);
            assert_eq!(a.body, b.body);
            // Whether the connection can be reused depends on whether bytes after the answer
            // were already read; when the whole stream fits one read (8 KiB), reading it in
            // one piece sees them all, so "reusable" then means there are none.
            if stream.len() <= 8192 {
                assert!(!keep_a || *keep_b);
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "the answer depends on how the bytes were split: whole {:?}, split {:?}",
            whole.as_ref().map(|r| r.0.status),
            split.as_ref().map(|r| r.0.status)
        ),
    }
    if let Ok((r, _)) = &whole {
        assert!((200..1000).contains(&r.status), "status {}", r.status);
        assert!(
            r.body.len() <= max_body,
            "body {} > limit {max_body}",
            r.body.len()
        );
        if head_only || r.status == 204 || r.status == 304 {
            assert!(r.body.is_empty());
        }
        let chunked = r
            .header("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        if let (false, false, Some(len)) = (head_only, chunked, r.header("content-length")) {
            if r.status != 204 && r.status != 304 {
                assert_eq!(Some(r.body.len()), len.parse().ok());
            }
        }
        for (k, v) in &r.headers {
            assert!(!k.contains(['\r', '\n', ':']) && !v.contains(['\r', '\n']));
        }
    }
});
