//! Webhook bodies: a text with `{{name}}` placeholders, checked at start-up and filled in for
//! each message, every value JSON-escaped (without quotes: a placeholder sits inside a JSON
//! string, or stands alone where the value is a number).
//!
//! The placeholders ([`FIELDS`]) are fixed: a template naming any other is a configuration
//! error, found before the handler does anything. Numbers (`evicted`, `forced`, `failed`,
//! `still_present`, `pods`, `seconds`) are always numbers (0 outside the `drained` phase), so
//! they may stand unquoted; every other value is text and may be empty (no deadline, no
//! cluster name), so it belongs inside quotes.

use std::fmt;

/// Every placeholder, in the order of the README's table.
pub const FIELDS: &[&str] = &[
    "phase",
    "message",
    "message_id",
    "node",
    "cluster",
    "provider",
    "kind",
    "kind_words",
    "reason",
    "action",
    "reaction",
    "notice_id",
    "deadline",
    "seconds_left",
    "instance_id",
    "instance_type",
    "zone",
    "severity",
    "alert_action",
    "time",
    "evicted",
    "forced",
    "failed",
    "still_present",
    "pods",
    "seconds",
];

/// The body sent when no template is configured: a `text` line (Slack, Mattermost and
/// Rocket.Chat show it) and every field for machines.
pub const DEFAULT: &str = r#"{"text":"{{message}}","message_id":"{{message_id}}","phase":"{{phase}}","node":"{{node}}","cluster":"{{cluster}}","provider":"{{provider}}","kind":"{{kind}}","reason":"{{reason}}","action":"{{action}}","reaction":"{{reaction}}","notice_id":"{{notice_id}}","deadline":"{{deadline}}","seconds_left":"{{seconds_left}}","instance_id":"{{instance_id}}","instance_type":"{{instance_type}}","zone":"{{zone}}","severity":"{{severity}}","time":"{{time}}","evicted":{{evicted}},"forced":{{forced}},"failed":{{failed}},"still_present":{{still_present}},"pods":{{pods}},"seconds":{{seconds}}}"#;

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// An index into [`FIELDS`].
    Field(usize),
}

/// A parsed template. `Debug` shows no text: a template may hold a secret (PagerDuty's
/// routing key is part of the body).
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<template>")
    }
}

impl Template {
    /// Parses `{{name}}` (spaces inside the braces allowed). The error names the offending
    /// placeholder and never repeats the rest of the text.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!("an unclosed {{{{ at byte {}", text.len() - after.len() - 2)
            })?;
            let name = after[..close].trim();
            let field = FIELDS.iter().position(|f| *f == name).ok_or_else(|| {
                // One line: control characters (a newline inside the braces) are not repeated.
                let shown: String = name
                    .chars()
                    .take(40)
                    .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                    .collect();
                format!("the unknown placeholder {{{{{shown}}}}}")
            })?;
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            parts.push(Part::Field(field));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub fn default_body() -> Template {
        Template::parse(DEFAULT).expect("the default template parses")
    }

    /// Fills in the values; `values[i]` belongs to `FIELDS[i]`.
    pub fn render(&self, values: &[String]) -> String {
        let mut out = String::with_capacity(512);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(i) => {
                    crate::json::escape_into(&mut out, values.get(*i).map_or("", |v| v.as_str()))
                }
            }
        }
        out
    }
}

/// `{{node}}, {{cluster}}, …`: the list an error message names.
pub fn known() -> String {
    FIELDS
        .iter()
        .map(|f| format!("{{{{{f}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<String> {
        FIELDS.iter().map(|f| format!("<{f}>")).collect()
    }

    #[test]
    fn fills_and_escapes() {
        let t =
            Template::parse(r#"{"text":"{{ node }} says {{message}}","n":{{evicted}}}"#).unwrap();
        let mut v = values();
        v[1] = "a \"quoted\"\nline\\".to_string();
        v[20] = "3".to_string();
        let out = t.render(&v);
        assert_eq!(out, r#"{"text":"<node> says a \"quoted\"\nline\\","n":3}"#);
        crate::json::check(out.as_bytes()).unwrap();
        assert_eq!(Template::parse("plain").unwrap().render(&v), "plain");
        assert_eq!(Template::parse("").unwrap().render(&v), "");
    }

    #[test]
    fn refuses_unknown_and_unclosed_placeholders() {
        assert_eq!(
            Template::parse("x {{nodename}} y").unwrap_err(),
            "the unknown placeholder {{nodename}}"
        );
        assert_eq!(
            Template::parse("{\"a\":\"{{node}\"}").unwrap_err(),
            "an unclosed {{ at byte 6"
        );
        assert!(Template::parse("{{}}").is_err());
        assert!(known().starts_with("{{phase}}, {{message}}, {{message_id}}, "));
        assert_eq!(FIELDS[2], "message_id", "notify reads the id at this index");
        assert_eq!(
            &FIELDS[20..],
            [
                "evicted",
                "forced",
                "failed",
                "still_present",
                "pods",
                "seconds"
            ]
        );
        assert!(format!("{:?}", Template::parse("secret-key").unwrap()) == "<template>");
    }

    #[test]
    fn an_unknown_placeholder_error_is_one_line() {
        // Found by the fuzzer (fuzz/fuzz_targets/template.rs): the name inside the braces was
        // repeated with its control characters, so the configuration error spanned lines.
        let e = Template::parse("{{\u{11}\0\0{{}[}}").unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        let e = Template::parse("{{ a\nb }}").unwrap_err();
        assert_eq!(e, "the unknown placeholder {{a\u{FFFD}b}}");
    }

    #[test]
    fn the_default_is_json_for_any_values() {
        let mut v = values();
        for x in &mut v[20..] {
            *x = "0".into();
        }
        v[3] = "\"}\u{1}".into();
        crate::json::check(Template::default_body().render(&v).as_bytes()).unwrap();
    }
}
