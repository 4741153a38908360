//! Webhook body templates (`WEBHOOK_TEMPLATE`): `{{name}}` placeholders.
//!
//! Holds: a template that parses renders only known placeholders (its output, with empty
//! values, holds no `{{`; with marker values, one marker per placeholder of the text); the
//! error is one short line that never repeats the text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spot_termination_notice_handler::template::{Template, FIELDS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Template::parse(text) {
        Ok(t) => {
            let empty = t.render(&vec![String::new(); FIELDS.len()]);
            assert!(!empty.contains("{{"), "{text:?} renders {empty:?}");
            let markers: Vec<String> = (0..FIELDS.len())
                .map(|i| format!("\u{1F600}{i}\u{1F601}"))
                .collect();
            let full = t.render(&markers);
            let placeholders = text.matches("{{").count();
            assert_eq!(
                full.matches('\u{1F600}').count() - text.matches('\u{1F600}').count(),
                placeholders
            );
            // Values are JSON-escaped: a value cannot end the string it sits in.
            let quote = t.render(&vec!["\"\n\\".to_string(); FIELDS.len()]);
            let escaped = "\\\"\\n\\\\";
            assert_eq!(
                quote.matches(escaped).count() - text.matches(escaped).count(),
                placeholders
            );
        }
        Err(e) => {
            assert!(
                !e.chars().any(char::is_control),
                "error {e:?} is not one line"
            );
            assert!(e.chars().count() <= 80, "error {e:?}");
        }
    }
});
