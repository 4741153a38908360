//! A tiny tag extractor for AWS Query-protocol answers: the text of `<Name>…</Name>` leaf
//! elements. AWS's answers name every field of ours uniquely (`Code` and `Message` of the
//! `Error`, `AutoScalingGroupName` of a member, STS's `AccessKeyId`), so a reader of leaves by
//! name is all we need; no tree is built. Bounded: at most [`MAX_INPUT`] bytes; elements whose
//! content holds markup (not leaves) are skipped; entities: the five predefined ones and
//! numeric references, anything else an error.

/// Larger answers are refused (AWS's answers to our calls are a few KiB).
pub const MAX_INPUT: usize = 64 * 1024;

fn decode(raw: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .filter(|e| *e <= 12)
            .ok_or("an unterminated entity reference")?;
        let c = match &rest[i + 1..i + end] {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => match e.strip_prefix("#x") {
                Some(h) => u32::from_str_radix(h, 16).ok(),
                None => e.strip_prefix('#').and_then(|d| d.parse().ok()),
            }
            .and_then(char::from_u32),
        };
        out.push(c.ok_or("an unknown entity")?);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The decoded text of every `<name>` leaf element (attributes allowed, `<name/>` is empty), in
/// document order.
pub fn texts(doc: &str, name: &str) -> Result<Vec<String>, &'static str> {
    if doc.len() > MAX_INPUT {
        return Err("larger than 64 KiB");
    }
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        // `<NameSuffix>` is another element.
        if rest.is_empty() {
            return Err("an unterminated tag");
        }
        if !rest.starts_with(|c: char| c == '>' || c == '/' || c.is_ascii_whitespace()) {
            continue;
        }
        let gt = rest.find('>').ok_or("an unterminated tag")?;
        let empty = rest[..gt].ends_with('/');
        rest = &rest[gt + 1..];
        if empty {
            out.push(String::new());
            continue;
        }
        let end = rest.find(&close).ok_or("an element is never closed")?;
        let raw = &rest[..end];
        if !raw.contains('<') {
            out.push(decode(raw)?);
        }
        rest = &rest[end + close.len()..];
    }
    Ok(out)
}

/// The first `<name>` leaf's text; `None` when there is none or the document is refused.
pub fn text(doc: &str, name: &str) -> Option<String> {
    texts(doc, name).ok()?.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_answers() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::123:user/x is not authorized to perform: autoscaling:DetachInstances &amp; more &#233;&#x21;</Message>
  </Error>
  <RequestId>abc</RequestId>
</ErrorResponse>"#;
        assert_eq!(text(doc, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            text(doc, "Message").unwrap(),
            "User: arn:aws:iam::123:user/x is not authorized to perform: autoscaling:DetachInstances & more é!"
        );
        assert_eq!(text(doc, "RequestId").as_deref(), Some("abc"));
        assert_eq!(text(doc, "Nope"), None);
        // Not a leaf: skipped.
        assert_eq!(text(doc, "Error"), None);

        let doc = "<R><L><member><N>g1</N><NX>no</NX><I/></member><member><N a=\"1\">g&lt;2</N><I />\n</member></L></R>";
        assert_eq!(texts(doc, "N").unwrap(), ["g1", "g<2"]);
        assert_eq!(texts(doc, "I").unwrap(), ["", ""]);
    }

    #[test]
    fn refuses_broken_and_oversized_documents() {
        let cases: Vec<(String, &str)> = vec![
            ("<a><N>x".into(), "never closed"),
            ("<a><N".into(), "unterminated tag"),
            ("<N>&bogus;</N>".into(), "unknown entity"),
            ("<N>& x</N>".into(), "unterminated entity"),
            (format!("<N>{}</N>", "x".repeat(MAX_INPUT)), "larger"),
        ];
        for (doc, want) in cases {
            let e = texts(&doc, "N").unwrap_err();
            assert!(
                e.contains(want),
                "{}: {e}",
                crate::json::snippet(doc.as_bytes())
            );
        }
        assert_eq!(
            text("<html><body>502 Bad Gateway</body></html>", "Code"),
            None
        );
    }
}
