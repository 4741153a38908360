//! JSON in and out.
//!
//! In: nanoserde's derive parses our structs, but it loops forever or panics (an abort under
//! `panic = "abort"`) on truncated input (see README, "nanoserde"). So nothing reaches it unless
//! [`check`] has first proved the bytes are one complete, well-formed RFC 8259 document of
//! bounded depth. The checker is iterative, so no input can overflow the stack either.
//!
//! Out: we write the few documents we send (patches, evictions, Slack payloads) by hand with
//! [`escape`], which is shorter than deriving serializers for one-off shapes.

use nanoserde::DeJson;

/// Deeper nesting than any Kubernetes object we read; deeper input is refused.
const MAX_DEPTH: usize = 256;

/// Why a body was refused, with a byte offset for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub what: &'static str,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

fn err(offset: usize, what: &'static str) -> Error {
    Error { offset, what }
}

/// Checks that `b` is exactly one complete JSON value (surrounded by optional white space).
pub fn check(b: &[u8]) -> Result<(), Error> {
    #[derive(Clone, Copy, PartialEq)]
    enum Frame {
        Object,
        Array,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = skip_ws(b, 0);
    // `true` when a value is expected next, `false` when a separator or closer is.
    let mut want_value = true;
    loop {
        if want_value {
            let Some(&c) = b.get(i) else {
                return Err(err(i, "unexpected end of input"));
            };
            match c {
                b'{' | b'[' => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(err(i, "nesting too deep"));
                    }
                    let frame = if c == b'{' {
                        Frame::Object
                    } else {
                        Frame::Array
                    };
                    stack.push(frame);
                    i = skip_ws(b, i + 1);
                    let closer = if c == b'{' { b'}' } else { b']' };
                    if b.get(i) == Some(&closer) {
                        stack.pop();
                        i += 1;
                        want_value = false;
                    } else if frame == Frame::Object {
                        i = object_key(b, i)?;
                    }
                    continue;
                }
                b'"' => i = string(b, i)?,
                b't' => i = literal(b, i, b"true")?,
                b'f' => i = literal(b, i, b"false")?,
                b'n' => i = literal(b, i, b"null")?,
                b'-' | b'0'..=b'9' => i = number(b, i)?,
                _ => return Err(err(i, "expected a value")),
            }
            want_value = false;
        }
        i = skip_ws(b, i);
        let Some(&frame) = stack.last() else {
            return if i == b.len() {
                Ok(())
            } else {
                Err(err(i, "trailing data after the value"))
            };
        };
        match (b.get(i), frame) {
            (Some(b','), Frame::Array) => {
                i = skip_ws(b, i + 1);
                want_value = true;
            }
            (Some(b','), Frame::Object) => {
                i = object_key(b, skip_ws(b, i + 1))?;
                want_value = true;
            }
            (Some(b']'), Frame::Array) | (Some(b'}'), Frame::Object) => {
                stack.pop();
                i += 1;
            }
            (None, _) => return Err(err(i, "unexpected end of input")),
            _ => return Err(err(i, "expected ',' or a closing bracket")),
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A key and its colon; returns the index after the colon and white space.
fn object_key(b: &[u8], i: usize) -> Result<usize, Error> {
    if b.get(i) != Some(&b'"') {
        return Err(err(i, "expected an object key"));
    }
    let i = skip_ws(b, string(b, i)?);
    if b.get(i) != Some(&b':') {
        return Err(err(i, "expected ':'"));
    }
    Ok(skip_ws(b, i + 1))
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, Error> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(err(i, "invalid literal"))
    }
}

fn number(b: &[u8], mut i: usize) -> Result<usize, Error> {
    let start = i;
    let run = |b: &[u8], i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += run(b, i),
        _ => return Err(err(start, "invalid number")),
    }
    if b.get(i) == Some(&b'.') {
        let n = run(b, i + 1);
        if n == 0 {
            return Err(err(start, "invalid number"));
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = run(b, i);
        if n == 0 {
            return Err(err(start, "invalid number"));
        }
        i += n;
    }
    Ok(i)
}

/// A string starting at `b[i] == '"'`; returns the index after the closing quote. Checks escapes,
/// rejects raw control characters and lone surrogates (nanoserde refuses those too).
fn string(b: &[u8], i: usize) -> Result<usize, Error> {
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(err(i, "unterminated string")),
            Some(b'"') => return Ok(j + 1),
            Some(b'\\') => match b.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                Some(b'u') => {
                    let hi = hex4(b, j + 2).ok_or(err(j, "invalid \\u escape"))?;
                    j += 6;
                    if (0xD800..0xDC00).contains(&hi) {
                        let lo = (b.get(j) == Some(&b'\\') && b.get(j + 1) == Some(&b'u'))
                            .then(|| hex4(b, j + 2))
                            .flatten();
                        match lo {
                            Some(lo) if (0xDC00..0xE000).contains(&lo) => j += 6,
                            _ => return Err(err(j, "lone surrogate in \\u escape")),
                        }
                    } else if (0xDC00..0xE000).contains(&hi) {
                        return Err(err(j, "lone surrogate in \\u escape"));
                    }
                }
                _ => return Err(err(j, "invalid escape")),
            },
            Some(c) if *c < 0x20 => return Err(err(j, "control character in string")),
            Some(_) => j += 1,
        }
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let s = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Parses a complete body into `T`, refusing anything [`check`] would not pass.
pub fn parse<T: DeJson>(body: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    check(body).map_err(|e| format!("malformed JSON: {e}"))?;
    T::deserialize_json(text).map_err(|e| format!("unexpected JSON shape: {e}"))
}

/// Returns `s` as a JSON string literal, quotes included.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    escape_into(&mut out, s);
    out.push('"');
    out
}

/// Appends `s` JSON-escaped, without the surrounding quotes (for text inside a JSON string).
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// A short, printable excerpt of a body for error messages (never the whole body).
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > 80 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_documents() {
        for doc in [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e+3, 0, true, false, null, \"x\\u00e9\\n\\\"\"], \"b\": {}} ",
            "\"\\ud83d\\ude00\"",
            "0",
            "-0.0E-0",
            "[[[[]]]]",
            "{\"a\":{\"b\":{\"c\":[{}]}}}",
        ] {
            assert_eq!(check(doc.as_bytes()), Ok(()), "{doc}");
        }
    }

    #[test]
    fn refuses_truncated_and_malformed_documents() {
        // Every one of these truncations hangs or aborts nanoserde when fed directly.
        let doc = br#"{"name":"n","deep":{"a":[1,{"x":"y\u0041"}],"b":null},"t":true}"#;
        for cut in 0..doc.len() {
            assert!(
                check(&doc[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        assert_eq!(check(doc), Ok(()));
        for bad in [
            "",
            "   ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            "-",
            ".5",
            "1e",
            "tru",
            "nul",
            "\"a",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"a\u{1}\"",
            "[1 2]",
            "{}{}",
            "{} x",
            "// c\n{}",
            "{\"a\":1/*c*/}",
            "+1",
            "[1,,2]",
            "{\"a\"}",
        ] {
            assert!(check(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_excessive_nesting_without_recursion() {
        let deep = "[".repeat(100_000);
        assert_eq!(check(deep.as_bytes()).unwrap_err().what, "nesting too deep");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(ok.as_bytes()), Ok(()));
    }

    #[derive(DeJson, Debug, PartialEq)]
    struct Probe {
        name: String,
        n: Option<i64>,
    }

    #[test]
    fn parse_guards_nanoserde() {
        assert_eq!(
            parse::<Probe>(br#"{"name":"a","n":3,"extra":{"x":[1]}}"#),
            Ok(Probe {
                name: "a".into(),
                n: Some(3)
            })
        );
        // These two inputs make nanoserde 0.2.1 loop forever / panic when unguarded.
        assert!(parse::<Probe>(br#"{"name":"n","deep":{"a":[1"#).is_err());
        assert!(parse::<Probe>(br#"{"name":"n","x":"#).is_err());
        assert!(parse::<Probe>(b"\xff\xfe").unwrap_err().contains("UTF-8"));
        assert!(parse::<Probe>(br#"{"n":1}"#).unwrap_err().contains("shape"));
    }

    #[test]
    fn escapes_strings() {
        assert_eq!(escape("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(snippet(b"ab\ncd"), "ab cd");
        assert!(snippet(&[b'x'; 200]).ends_with('…'));
    }
}
