//! AWS Query-protocol answers (Auto Scaling, STS): the leaf-text extractor of src/xml.rs.
//!
//! Holds: no panic; a refused document is refused whole; and any text, written as an element
//! with the five entities (and a numeric reference or two), reads back as itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::xml::{text, texts, MAX_INPUT};

const NAMES: [&str; 6] = [
    "Code",
    "Message",
    "RequestId",
    "AutoScalingGroupName",
    "InstanceId",
    "Expiration",
];

fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' if i % 2 == 0 => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if i % 7 == 3 => out.push_str(&format!("&#x{:X};", c as u32)),
            c if i % 7 == 5 => out.push_str(&format!("&#{};", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let doc = String::from_utf8_lossy(data);
    for name in NAMES {
        match texts(&doc, name) {
            Ok(all) => {
                assert_eq!(text(&doc, name), all.first().cloned());
                assert!(doc.len() <= MAX_INPUT);
                let total: usize = all.iter().map(String::len).sum();
                assert!(
                    total <= doc.len() * 4,
                    "decoded text larger than the document"
                );
            }
            Err(e) => assert!(text(&doc, name).is_none(), "{e}"),
        }
    }
    // Round trip: the input as the text of an element inside a realistic answer.
    let value = &*doc;
    let wrapped = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{}</Code><Message>m</Message></Error><RequestId>r-1</RequestId></ErrorResponse>",
        escape(value)
    );
    if wrapped.len() <= MAX_INPUT {
        assert_eq!(
            texts(&wrapped, "Code"),
            Ok(vec![value.to_string()]),
            "{wrapped}"
        );
        assert_eq!(text(&wrapped, "RequestId").as_deref(), Some("r-1"));
    }
});
