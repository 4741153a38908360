//! Label selectors in `kubectl`'s text syntax (`POD_SELECTOR`, as `kubectl drain
//! --pod-selector` takes it), and the same requirements built from a Deployment's
//! `spec.selector`. Pure.
//!
//! Syntax: requirements separated by commas, all of which must hold:
//! `key=value` (or `==`), `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key` (the label
//! exists), `!key` (it does not), `key>N` and `key<N` (integer values). Spaces around tokens are
//! allowed. As in Kubernetes, `!=` and `notin` also hold for a pod without the label. Keys are
//! `[prefix/]name` (a DNS subdomain prefix, a name of up to 63 of `[A-Za-z0-9._-]` starting and
//! ending alphanumeric); values are empty or such a name.

use std::fmt;

/// What one requirement asks of a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

impl Requirement {
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::Exists, v) => v.is_some(),
            (Op::NotExists, v) => v.is_none(),
            (Op::Eq(want), Some(v)) => v == want,
            (Op::NotEq(want), v) => v != Some(want.as_str()),
            (Op::In(set), Some(v)) => set.iter().any(|s| s == v),
            (Op::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (Op::Eq(_) | Op::In(_) | Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }
}

/// A parsed selector: every requirement must hold. No requirement selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let k = &r.key;
            match &r.op {
                Op::Eq(v) => write!(f, "{k}={v}")?,
                Op::NotEq(v) => write!(f, "{k}!={v}")?,
                Op::In(s) => write!(f, "{k} in ({})", s.join(","))?,
                Op::NotIn(s) => write!(f, "{k} notin ({})", s.join(","))?,
                Op::Exists => write!(f, "{k}")?,
                Op::NotExists => write!(f, "!{k}")?,
                Op::Gt(n) => write!(f, "{k}>{n}")?,
                Op::Lt(n) => write!(f, "{k}<{n}")?,
            }
        }
        Ok(())
    }
}

impl Selector {
    /// True when every requirement holds for the labels `get` looks up.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches(get(&r.key)))
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn key_ok(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    name_ok(l)
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
                && name_ok(name)
        }
        None => name_ok(k),
    }
}

fn value_ok(v: &str) -> bool {
    v.is_empty() || name_ok(v)
}

fn check_key(k: &str) -> Result<String, String> {
    if key_ok(k) {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key {k:?}"))
    }
}

fn check_value(v: &str) -> Result<String, String> {
    if value_ok(v) {
        Ok(v.to_string())
    } else {
        Err(format!("invalid label value {v:?}"))
    }
}

/// The requirements at the top level: commas inside `( … )` do not separate.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => {
                depth += 1;
                if depth > 1 {
                    return Err("nested parentheses".to_string());
                }
            }
            ')' => {
                if depth == 0 {
                    return Err("')' without '('".to_string());
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("'(' without ')'".to_string());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn set(rest: &str, op: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected '(' values ')' after {op:?}"))?;
    let values = inner
        .split(',')
        .map(|v| check_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if inner.trim().is_empty() {
        return Err(format!("empty value set after {op:?}"));
    }
    Ok(values)
}

fn requirement(part: &str) -> Result<Requirement, String> {
    let p = part.trim();
    if p.is_empty() {
        return Err("empty requirement".to_string());
    }
    if let Some(k) = p.strip_prefix('!') {
        return Ok(Requirement {
            key: check_key(k.trim())?,
            op: Op::NotExists,
        });
    }
    let end = p
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
        .unwrap_or(p.len());
    let key = check_key(&p[..end])?;
    let rest = p[end..].trim_start();
    let word = |w: &str| {
        rest.strip_prefix(w)
            .filter(|r| r.starts_with(|c: char| c.is_whitespace() || c == '('))
    };
    let op = if rest.is_empty() {
        Op::Exists
    } else if let Some(v) = rest.strip_prefix("!=") {
        Op::NotEq(check_value(v.trim())?)
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        Op::Eq(check_value(v.trim())?)
    } else if let Some(v) = rest.strip_prefix('>') {
        Op::Gt(
            v.trim()
                .parse()
                .map_err(|_| format!("expected an integer after '>' in {p:?}"))?,
        )
    } else if let Some(v) = rest.strip_prefix('<') {
        Op::Lt(
            v.trim()
                .parse()
                .map_err(|_| format!("expected an integer after '<' in {p:?}"))?,
        )
    } else if let Some(r) = word("notin") {
        Op::NotIn(set(r, "notin")?)
    } else if let Some(r) = word("in") {
        Op::In(set(r, "in")?)
    } else {
        return Err(format!(
            "expected =, ==, !=, in, notin, >, < or nothing after the key in {p:?}"
        ));
    };
    Ok(Requirement { key, op })
}

/// Parses `kubectl`'s selector syntax; the error says what is wrong, for the config error.
pub fn parse(s: &str) -> Result<Selector, String> {
    if s.trim().is_empty() {
        return Ok(Selector::default());
    }
    let requirements = split_top(s)?
        .into_iter()
        .map(requirement)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Selector { requirements })
}

/// A Deployment's `spec.selector` as a [`Selector`]: `matchLabels` and `matchExpressions`
/// (`In`, `NotIn`, `Exists`, `DoesNotExist`). `None` for an operator we do not know.
pub fn from_label_selector(
    match_labels: &[(&str, &str)],
    match_expressions: &[(&str, &str, &[String])],
) -> Option<Selector> {
    let mut requirements: Vec<Requirement> = match_labels
        .iter()
        .map(|(k, v)| Requirement {
            key: k.to_string(),
            op: Op::Eq(v.to_string()),
        })
        .collect();
    for (key, operator, values) in match_expressions {
        let op = match *operator {
            "In" => Op::In(values.to_vec()),
            "NotIn" => Op::NotIn(values.to_vec()),
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::NotExists,
            _ => return None,
        };
        requirements.push(Requirement {
            key: key.to_string(),
            op,
        });
    }
    Some(Selector { requirements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(l: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |k| l.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v)
    }

    #[test]
    fn parses_kubectl_syntax() {
        let s = |k: &str, op: Op| Requirement {
            key: k.to_string(),
            op,
        };
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: &[(&str, Vec<Requirement>)] = &[
            ("a=b", vec![s("a", Op::Eq("b".into()))]),
            ("a==b", vec![s("a", Op::Eq("b".into()))]),
            ("a = b", vec![s("a", Op::Eq("b".into()))]),
            ("a=", vec![s("a", Op::Eq(String::new()))]),
            ("c!=d", vec![s("c", Op::NotEq("d".into()))]),
            ("e in (f,g)", vec![s("e", Op::In(v(&["f", "g"])))]),
            ("e in(f, g )", vec![s("e", Op::In(v(&["f", "g"])))]),
            ("e notin (h)", vec![s("e", Op::NotIn(v(&["h"])))]),
            ("k", vec![s("k", Op::Exists)]),
            ("!k", vec![s("k", Op::NotExists)]),
            ("! k", vec![s("k", Op::NotExists)]),
            ("n>3,m<10", vec![s("n", Op::Gt(3)), s("m", Op::Lt(10))]),
            (
                "app.kubernetes.io/name=web",
                vec![s("app.kubernetes.io/name", Op::Eq("web".into()))],
            ),
            (
                "a=b,c!=d,e in (f,g),e notin (h),k,!k",
                vec![
                    s("a", Op::Eq("b".into())),
                    s("c", Op::NotEq("d".into())),
                    s("e", Op::In(v(&["f", "g"]))),
                    s("e", Op::NotIn(v(&["h"]))),
                    s("k", Op::Exists),
                    s("k", Op::NotExists),
                ],
            ),
            // A key that merely starts with the operator's word.
            ("index=1", vec![s("index", Op::Eq("1".into()))]),
            ("inx", vec![s("inx", Op::Exists)]),
            ("", vec![]),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(&got.requirements, want, "{text:?}");
            // Display round-trips.
            assert_eq!(parse(&got.to_string()).unwrap(), got, "{text:?}");
        }
    }

    #[test]
    fn refuses_bad_selectors() {
        for bad in [
            "a=b,",
            ",a=b",
            "a=b,,c=d",
            "a in f,g",
            "a in (f,g",
            "a in ()",
            "a notin f",
            "a=(b)",
            "a b",
            "a=b c",
            "=b",
            "!",
            "a>x",
            "-a=b",
            "a=-b",
            "a/b/c=d",
            "Upper.Prefix/a=b",
            "a in ((b))",
            "a)=b",
            "a=b=c",
            "a~b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed: {:?}", parse(bad));
        }
        let long = format!("{}=x", "a".repeat(64));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn matches_like_kubernetes() {
        let pod = [("app", "web"), ("tier", "front"), ("n", "5")];
        let cases: &[(&str, bool)] = &[
            ("app=web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,api)", true),
            ("app in (api)", false),
            ("missing in (x)", false),
            ("app notin (api)", true),
            ("missing notin (x)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("missing", false),
            ("!missing", true),
            ("!tier", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("", true),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse(text).unwrap().matches(labels(&pod)),
                *want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn deployment_selectors() {
        let vals = vec!["web".to_string()];
        let s = from_label_selector(&[("app", "web")], &[("tier", "In", &vals)]).unwrap();
        assert!(!s.matches(labels(&[("app", "web"), ("tier", "db")])));
        assert!(s.matches(labels(&[("app", "web"), ("tier", "web")])));
        assert!(from_label_selector(&[], &[("a", "Foo", &vals)]).is_none());
    }
}
