//! The JSON guard in front of nanoserde (src/json.rs): nanoserde 0.2.1 hangs or aborts on
//! truncated documents, so nothing reaches it that this checker has not accepted.
//!
//! Holds, differentially against serde_json: the checker accepts exactly the documents
//! serde_json accepts (within the nesting both allow; numbers serde_json finds out of range
//! are still JSON), and the escape function writes strings both read back unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::json::{check, escape};

fn depth(b: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &c in b {
        match (in_str, esc, c) {
            (true, true, _) => esc = false,
            (true, false, b'\\') => esc = true,
            (true, false, b'"') => in_str = false,
            (false, _, b'"') => in_str = true,
            (false, _, b'[' | b'{') => {
                d += 1;
                max = max.max(d);
            }
            (false, _, b']' | b'}') => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fuzz_target!(|data: &[u8]| {
    let ours = check(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if depth(data) < 120 {
            let theirs = serde_json::from_str::<serde_json::Value>(s);
            let out_of_range = matches!(&theirs, Err(e) if e.to_string().contains("out of range"));
            if !out_of_range {
                assert_eq!(
                    ours.is_ok(),
                    theirs.is_ok(),
                    "{s:?}: ours {ours:?}, serde_json {theirs:?}"
                );
            }
        }
        let quoted = escape(s);
        assert!(check(quoted.as_bytes()).is_ok(), "{quoted:?}");
        let back: String = serde_json::from_str(&quoted).expect("serde_json reads our escape");
        assert_eq!(back, s);
        let ours: String = spot_termination_notice_handler::json::parse(quoted.as_bytes())
            .expect("nanoserde reads our escape");
        assert_eq!(ours, s);
    }
});
