//! A tiny XML reader for AWS Query-protocol answers: the text of leaf elements, each with the
//! names of the elements around it. No DTDs, no entities beyond the five predefined ones and
//! numeric references, namespaces reduced to local names. Bounded: at most [`MAX_INPUT`] bytes,
//! [`MAX_DEPTH`] levels and [`MAX_LEAVES`] leaves, else an error; mismatched tags are an error.
//!
//! `leaf(&doc, &["Error", "Code"])` finds the first leaf whose path ends with those names.

/// Larger answers are refused (AWS's answers to our calls are a few KiB).
pub const MAX_INPUT: usize = 256 * 1024;
pub const MAX_DEPTH: usize = 32;
pub const MAX_LEAVES: usize = 10_000;

/// One leaf element: the local names from the root down to it, and its decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub path: Vec<String>,
    pub text: String,
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn decode(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .filter(|e| *e <= 12)
            .ok_or("an unterminated entity reference")?;
        let ent = &rest[i + 1..i + end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                n.and_then(char::from_u32)
                    .ok_or_else(|| format!("an unknown entity &{ent};"))?
            }
        };
        out.push(c);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `doc` into its leaves.
pub fn parse(doc: &str) -> Result<Vec<Leaf>, String> {
    if doc.len() > MAX_INPUT {
        return Err(format!("XML larger than {MAX_INPUT} bytes"));
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut leaves = Vec::new();
    // Text since the last start tag, while the open element has no child yet.
    let mut text: Option<String> = None;
    let mut rest = doc;
    let mut seen_root = false;
    loop {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                return Err("text outside the root element".to_string());
            }
            break;
        };
        let chunk = &rest[..lt];
        if stack.is_empty() && !chunk.trim().is_empty() {
            return Err("text outside the root element".to_string());
        }
        if let Some(t) = text.as_mut() {
            t.push_str(&decode(chunk)?);
        }
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or("an unterminated comment")?;
            rest = &r[end + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<![CDATA[") {
            let end = r.find("]]>").ok_or("an unterminated CDATA section")?;
            if let Some(t) = text.as_mut() {
                t.push_str(&r[..end]);
            }
            rest = &r[end + 3..];
            continue;
        }
        if rest.starts_with("<?") || rest.starts_with("<!") {
            let end = rest.find('>').ok_or("an unterminated declaration")?;
            rest = &rest[end + 1..];
            continue;
        }
        let gt = rest.find('>').ok_or("an unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let name = local(name.trim());
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => return Err(format!("</{name}> closes <{open}>")),
                None => return Err(format!("</{name}> without an open element")),
            }
            if let Some(t) = text.take() {
                let mut path: Vec<String> = stack.iter().map(|s| s.to_string()).collect();
                path.push(name.to_string());
                leaves.push(Leaf { path, text: t });
                if leaves.len() > MAX_LEAVES {
                    return Err(format!("more than {MAX_LEAVES} elements"));
                }
            }
            continue;
        }
        let empty = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = local(tag.split_whitespace().next().unwrap_or(""));
        if name.is_empty() || name.contains(['<', '&', '"', '\'', '=']) {
            return Err(format!(
                "a bad tag <{}>",
                crate::json::snippet(tag.as_bytes())
            ));
        }
        if stack.is_empty() && seen_root {
            return Err("a second root element".to_string());
        }
        seen_root = true;
        if empty {
            let mut path: Vec<String> = stack.iter().map(|s| s.to_string()).collect();
            path.push(name.to_string());
            leaves.push(Leaf {
                path,
                text: String::new(),
            });
            text = None;
            continue;
        }
        if stack.len() >= MAX_DEPTH {
            return Err(format!("deeper than {MAX_DEPTH} levels"));
        }
        stack.push(name);
        text = Some(String::new());
    }
    match stack.last() {
        Some(open) => Err(format!("<{open}> is never closed")),
        None if !seen_root => Err("no element".to_string()),
        None => Ok(leaves),
    }
}

/// The first leaf whose path ends with `suffix`.
pub fn leaf<'a>(leaves: &'a [Leaf], suffix: &[&str]) -> Option<&'a str> {
    all(leaves, suffix).next()
}

/// Every leaf whose path ends with `suffix`, in document order.
pub fn all<'a, 'b>(leaves: &'a [Leaf], suffix: &'b [&'b str]) -> impl Iterator<Item = &'a str> + 'b
where
    'a: 'b,
{
    leaves
        .iter()
        .filter(move |l| {
            l.path.len() >= suffix.len()
                && l.path[l.path.len() - suffix.len()..]
                    .iter()
                    .zip(suffix)
                    .all(|(a, b)| a == b)
        })
        .map(|l| l.text.as_str())
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
        let l = parse(doc).unwrap();
        assert_eq!(leaf(&l, &["Error", "Code"]), Some("AccessDenied"));
        assert_eq!(
            leaf(&l, &["Message"]).unwrap(),
            "User: arn:aws:iam::123:user/x is not authorized to perform: autoscaling:DetachInstances & more é!"
        );
        assert_eq!(leaf(&l, &["ErrorResponse", "RequestId"]), Some("abc"));
        assert_eq!(leaf(&l, &["Nope"]), None);

        let doc = "<a:R xmlns:a='x'><L><member><N>g1</N><I/></member><member><N><![CDATA[g<2]]></N></member></L><!-- c --></a:R>";
        let l = parse(doc).unwrap();
        assert_eq!(all(&l, &["member", "N"]).collect::<Vec<_>>(), ["g1", "g<2"]);
        assert_eq!(leaf(&l, &["member", "I"]), Some(""));
    }

    #[test]
    fn refuses_broken_and_unbounded_documents() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        let cases: Vec<(String, &str)> = vec![
            ("<a><b></a>".into(), "closes"),
            ("<a>".into(), "never closed"),
            ("</a>".into(), "without an open"),
            ("".into(), "no element"),
            ("junk".into(), "outside"),
            ("<a/><b/>".into(), "second root"),
            ("<a>&bogus;</a>".into(), "unknown entity"),
            ("<a>& x</a>".into(), "unterminated entity"),
            ("<a><!-- x</a>".into(), "unterminated comment"),
            ("<a".into(), "unterminated tag"),
            ("<a><=></a>".into(), "bad tag"),
            (deep, "deeper"),
            ("x".repeat(MAX_INPUT + 1), "larger"),
            (
                "<html><body>502 Bad Gateway</body></html> trailing".into(),
                "outside",
            ),
        ];
        for (doc, want) in cases {
            let e = parse(&doc).unwrap_err();
            assert!(
                e.contains(want),
                "{}: {e}",
                crate::json::snippet(doc.as_bytes())
            );
        }
    }
}
