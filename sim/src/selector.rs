//! Field and label selectors as accepted in `?fieldSelector=` / `?labelSelector=`.

use serde_json::Value;

/// One `key=value` / `key!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path, e.g. `spec.nodeName`.
    pub key: String,
    /// True for `=`/`==`, false for `!=`.
    pub equal: bool,
    /// Expected value.
    pub value: String,
}

/// Parses `spec.nodeName=n1,status.phase!=Succeeded` (empty → no terms).
pub fn parse_fields(s: &str) -> Result<Vec<FieldTerm>, String> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        out.push(FieldTerm {
            key: key.trim().to_string(),
            equal,
            value: value.trim().to_string(),
        });
    }
    Ok(out)
}

/// Checks field terms against `get(field)`; `get` returns None for unsupported fields, which
/// makes the whole selector invalid (the apiserver answers 400).
pub fn match_fields(
    terms: &[FieldTerm],
    get: impl Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    for t in terms {
        let Some(v) = get(&t.key) else {
            return Err(format!("field label not supported: {}", t.key));
        };
        if (v == t.value) != t.equal {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `v` at a path of object keys (`Value::pointer` without parsing and unescaping a pointer
/// string each time: a pod list of a large cluster calls this for every pod).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The pod fields the apiserver supports in field selectors.
pub fn pod_field(pod: &Value, field: &str) -> Option<String> {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let p = |a: &str, b: &str| s(at(pod, &[a, b]).unwrap_or(&Value::Null));
    Some(match field {
        "metadata.name" => p("metadata", "name"),
        "metadata.namespace" => p("metadata", "namespace"),
        "spec.nodeName" => p("spec", "nodeName"),
        "spec.restartPolicy" => p("spec", "restartPolicy"),
        "spec.schedulerName" => p("spec", "schedulerName"),
        "spec.serviceAccountName" => p("spec", "serviceAccountName"),
        "spec.hostNetwork" => {
            let v = at(pod, &["spec", "hostNetwork"]).and_then(Value::as_bool);
            v.unwrap_or(false).to_string()
        }
        "status.phase" => p("status", "phase"),
        "status.podIP" => p("status", "podIP"),
        "status.nominatedNodeName" => p("status", "nominatedNodeName"),
        _ => return None,
    })
}

/// The node fields the apiserver supports in field selectors.
pub fn node_field(node: &Value, field: &str) -> Option<String> {
    Some(match field {
        "metadata.name" => node["metadata"]["name"].as_str().unwrap_or("").to_string(),
        "spec.unschedulable" => node["spec"]["unschedulable"]
            .as_bool()
            .unwrap_or(false)
            .to_string(),
        _ => return None,
    })
}

/// The event fields the apiserver supports in field selectors.
pub fn event_field(ev: &Value, field: &str) -> Option<String> {
    let ptr = match field {
        "source" => "/source/component".to_string(),
        "metadata.name"
        | "metadata.namespace"
        | "reason"
        | "type"
        | "reportingComponent"
        | "involvedObject.kind"
        | "involvedObject.namespace"
        | "involvedObject.name"
        | "involvedObject.uid"
        | "involvedObject.apiVersion"
        | "involvedObject.resourceVersion"
        | "involvedObject.fieldPath" => format!("/{}", field.replace('.', "/")),
        _ => return None,
    };
    Some(
        ev.pointer(&ptr)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

/// Generic metadata fields (daemonsets, PDBs, ...).
pub fn meta_field(obj: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" | "metadata.namespace" => Some(
            obj.pointer(&format!("/{}", field.replace('.', "/")))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        _ => None,
    }
}

/// One label requirement (k8s.io/apimachinery `labels.Requirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `k=v`, `k==v`, `k in (a,b)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (a,b)`: also matches objects without the key.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
    /// `k>5` (the label must exist and parse as an integer).
    Gt(String, i64),
    /// `k<5`.
    Lt(String, i64),
}

/// A lexer token of the selector grammar (apimachinery `labels/selector.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Comma,
    Open,
    Close,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
    End,
}

impl Tok {
    /// The token as an identifier where the grammar expects keys or values (`in` and `notin`
    /// are plain words there).
    fn as_value(&self) -> Option<String> {
        match self {
            Tok::Ident(s) => Some(s.clone()),
            Tok::In => Some("in".into()),
            Tok::NotIn => Some("notin".into()),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Comma => ",".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Not => "!".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::End => "end of string".into(),
        }
    }
}

/// Splits a selector into tokens: the special characters `=!(),><` end an identifier,
/// whitespace separates tokens, `in`/`notin` are keywords.
fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        let next = cs.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '>' => {
                out.push(Tok::Gt);
                i += 1
            }
            '<' => {
                out.push(Tok::Lt);
                i += 1
            }
            '!' if next == Some('=') => {
                out.push(Tok::NotEq);
                i += 2
            }
            '!' => {
                out.push(Tok::Not);
                i += 1
            }
            '=' if next == Some('=') => {
                out.push(Tok::DoubleEq);
                i += 2
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1
            }
            _ => {
                let st = i;
                while i < cs.len() && !cs[i].is_whitespace() && !"=!(),><".contains(cs[i]) {
                    i += 1;
                }
                let word: String = cs[st..i].iter().collect();
                out.push(match word.as_str() {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident(word),
                });
            }
        }
    }
    out.push(Tok::End);
    out
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// True for a lowercase RFC 1123 subdomain (≤ 253 characters).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// The errors apimachinery's `IsQualifiedName` reports (empty: valid). Label keys,
/// `reportingController` and the like are qualified names: `[prefix/]name`, the prefix a DNS
/// subdomain, the name ≤ 63 characters of `[-A-Za-z0-9_.]` starting and ending alphanumeric.
pub fn qualified_name_errors(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [n] => *n,
        [prefix, n] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if !is_dns_subdomain(prefix) {
                errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
            }
            n
        }
        _ => {
            return vec![format!("a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

fn check_key(k: &str) -> Result<(), String> {
    let errs = qualified_name_errors(k);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("key: Invalid value: {k:?}: {}", errs.join("; ")))
    }
}

fn check_value(v: &str) -> Result<(), String> {
    if v.len() > 63 {
        return Err(format!(
            "values[0][{v}]: Invalid value: {v:?}: must be no more than 63 characters"
        ));
    }
    if !v.is_empty() && !is_name_part(v) {
        return Err(format!(
            "values[0][{v}]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ));
    }
    Ok(())
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        if *self.peek() == Tok::Not {
            self.next();
            let t = self.next();
            return match t.as_value() {
                Some(k) => {
                    check_key(&k)?;
                    Ok(LabelReq::NotExists(k))
                }
                None => Err(format!("found '{}', expected: identifier", t.text())),
            };
        }
        let t = self.next();
        let Some(key) = t.as_value() else {
            return Err(format!(
                "found '{}', expected: !, identifier, or 'end of string'",
                t.text()
            ));
        };
        check_key(&key)?;
        let op = self.next();
        match op {
            Tok::Comma | Tok::End => {
                self.pos -= 1;
                Ok(LabelReq::Exists(key))
            }
            Tok::Eq | Tok::DoubleEq | Tok::NotEq => {
                let v = match self.peek().clone() {
                    t @ (Tok::Ident(_) | Tok::In | Tok::NotIn) => {
                        self.next();
                        t.as_value().unwrap_or_default()
                    }
                    Tok::Comma | Tok::End => String::new(),
                    t => {
                        return Err(format!(
                            "found '{}', expected: identifier for the value",
                            t.text()
                        ))
                    }
                };
                check_value(&v)?;
                Ok(if op == Tok::NotEq {
                    LabelReq::NotIn(key, vec![v])
                } else {
                    LabelReq::In(key, vec![v])
                })
            }
            Tok::Gt | Tok::Lt => {
                let v = match self.next() {
                    Tok::Ident(v) => v,
                    t => return Err(format!("found '{}', expected: an integer", t.text())),
                };
                let n: i64 = v.parse().map_err(|_| {
                    format!("values[0]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer")
                })?;
                Ok(if op == Tok::Gt {
                    LabelReq::Gt(key, n)
                } else {
                    LabelReq::Lt(key, n)
                })
            }
            Tok::In | Tok::NotIn => {
                if self.next() != Tok::Open {
                    return Err(format!(
                        "found '{}' expected: '('",
                        self.toks[self.pos - 1].text()
                    ));
                }
                // apimachinery's parseValues/parseIdentifiersList: `()` is the set {""}, and
                // `(,a)`, `(a,,b)`, `(a,)` carry an empty value.
                let mut vals: Vec<String> = Vec::new();
                fn add(v: String, vals: &mut Vec<String>) {
                    if !vals.contains(&v) {
                        vals.push(v);
                    }
                }
                if *self.peek() == Tok::Close {
                    self.next();
                    add(String::new(), &mut vals);
                } else {
                    loop {
                        match self.next().as_value() {
                            Some(v) => {
                                check_value(&v)?;
                                add(v, &mut vals);
                                match self.peek() {
                                    Tok::Comma => {}
                                    Tok::Close => {
                                        self.next();
                                        break;
                                    }
                                    t => {
                                        return Err(format!(
                                            "found '{}', expected: ',' or ')'",
                                            t.text()
                                        ))
                                    }
                                }
                            }
                            None if self.toks[self.pos - 1] == Tok::Comma => {
                                if vals.is_empty() {
                                    add(String::new(), &mut vals);
                                }
                                match self.peek() {
                                    Tok::Close => {
                                        self.next();
                                        add(String::new(), &mut vals);
                                        break;
                                    }
                                    Tok::Comma => add(String::new(), &mut vals),
                                    _ => {}
                                }
                            }
                            None => {
                                return Err(format!(
                                    "found '{}', expected: ',', or identifier",
                                    self.toks[self.pos - 1].text()
                                ))
                            }
                        }
                    }
                }
                Ok(if op == Tok::In {
                    LabelReq::In(key, vals)
                } else {
                    LabelReq::NotIn(key, vals)
                })
            }
            t => Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                t.text()
            )),
        }
    }
}

/// Parses a label selector string in kubectl's full syntax:
/// `a=b,c==d,e!=f,g in (h,i),j notin (k),l,!m,n>1,o<9` (whitespace between tokens is free).
pub fn parse_labels(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut p = Parser {
        toks: lex(s),
        pos: 0,
    };
    let mut out = Vec::new();
    if *p.peek() == Tok::End {
        return Ok(out);
    }
    loop {
        out.push(
            p.requirement()
                .map_err(|e| format!("unable to parse requirement: {e}"))?,
        );
        match p.next() {
            Tok::End => return Ok(out),
            Tok::Comma => {
                let t = p.peek();
                if t.as_value().is_none() && *t != Tok::Not {
                    return Err(format!(
                        "found '{}', expected: identifier after ','",
                        t.text()
                    ));
                }
            }
            t => {
                return Err(format!(
                    "found '{}', expected: ',' or 'end of string'",
                    t.text()
                ))
            }
        }
    }
}

/// Whether an object's `metadata.labels` satisfy every requirement.
pub fn match_labels(reqs: &[LabelReq], obj: &Value) -> bool {
    if reqs.is_empty() {
        return true;
    }
    let labels = at(obj, &["metadata", "labels"]);
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let int = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
    reqs.iter().all(|r| match r {
        LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
        LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
        LabelReq::Gt(k, n) => int(k).is_some_and(|v| v > *n),
        LabelReq::Lt(k, n) => int(k).is_some_and(|v| v < *n),
    })
}

/// Whether a `metav1.LabelSelector` (matchLabels + matchExpressions) selects `obj`. An empty
/// selector selects everything (policy/v1 PDB semantics).
pub fn selector_matches(selector: &Value, obj: &Value) -> bool {
    let labels = at(obj, &["metadata", "labels"]);
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        if !ml.iter().all(|(k, v)| get(k) == v.as_str()) {
            return false;
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e["operator"].as_str().unwrap_or("") {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"},
                         "status": {"phase": "Running"}});
        let t = parse_fields("spec.nodeName=n1,status.phase!=Succeeded").unwrap();
        assert!(match_fields(&t, |f| pod_field(&pod, f)).unwrap());
        let t = parse_fields("spec.nodeName==n2").unwrap();
        assert!(!match_fields(&t, |f| pod_field(&pod, f)).unwrap());
        let t = parse_fields("metadata.labels=x").unwrap();
        assert!(match_fields(&t, |f| pod_field(&pod, f)).is_err());
        assert!(parse_fields("garbage").is_err());
    }

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let m = |s: &str| match_labels(&parse_labels(s).unwrap(), &o);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(m("app in (web, api),!canary"));
        assert!(!m("app notin (web)"));
        assert!(!m("app!=web"));
        assert!(m(""));
        // kubectl's full syntax, with and without spaces.
        let o2 = json!({"metadata": {"labels": {"a": "b", "e": "f", "j": "", "n": "7"}}});
        let m = |s: &str| match_labels(&parse_labels(s).unwrap(), &o2);
        assert!(m("a=b,c!=d,e in (f,g),h notin (i),j,!k"));
        assert!(m("a==b , c != d , e in(f , g) , h notin(i) , j , ! k"));
        assert!(m("j=") && m("j in ()") && !m("a in ()") && m("a in (b,)"));
        assert!(m("n>6,n<8") && !m("n>7") && !m("a>1"));
        assert!(!m("a!=b") && !m("e notin (f)") && !m("k") && !m("!a"));
        assert!(
            m("in!=x"),
            "'in' is an ordinary key where a key is expected"
        );
        assert_eq!(
            parse_labels("e in (f,g)").unwrap(),
            vec![LabelReq::In("e".into(), vec!["f".into(), "g".into()])]
        );
        for bad in [
            "a in f",
            "a in (f",
            "a=b=c",
            "a,",
            ",a",
            "a b",
            "=b",
            "a>x",
            "Bad Key",
            "a=has space",
            "-a=b",
            "a/b/c",
            "x=(y)",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad:?} must not parse");
        }
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &o
        ));
        assert!(selector_matches(&json!({}), &o));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}),
            &o
        ));
    }
}
