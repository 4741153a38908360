//! API requests grouped by verb and path pattern (`POST /api/v1/namespaces/{ns}/pods/{name}/eviction`).

use std::collections::BTreeMap;

use stnh_sim::ApiRequest;

/// The path with names replaced by placeholders and the query reduced to its sorted keys:
/// `/api/v1/pods?fieldSelector=…&limit=500` → `/api/v1/pods?fieldSelector&limit`.
pub fn pattern(path: &str) -> String {
    let (p, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    // The group/version prefix: /api/v1 or /apis/{group}/{version}.
    let prefix_len = match segs.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => segs.len(),
    };
    let mut out: Vec<String> = segs
        .iter()
        .take(prefix_len)
        .map(|s| s.to_string())
        .collect();
    let mut rest = &segs[prefix_len.min(segs.len())..];
    if rest.len() >= 3 && rest[0] == "namespaces" {
        out.push("namespaces".into());
        out.push("{ns}".into());
        rest = &rest[2..];
    }
    for (i, s) in rest.iter().enumerate() {
        // resource, name, subresource
        out.push(if i == 1 {
            "{name}".into()
        } else {
            s.to_string()
        });
    }
    let mut pat = format!("/{}", out.join("/"));
    if let Some(q) = query {
        let mut keys: Vec<&str> = q
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        pat.push('?');
        pat.push_str(&keys.join("&"));
    }
    pat
}

/// Discovery and version documents (what a generic client reads before it acts).
pub fn is_discovery(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    match segs.first() {
        Some(&"api") => segs.len() <= 2,
        Some(&"apis") => segs.len() <= 3,
        Some(&"version") | Some(&"openapi") => true,
        _ => false,
    }
}

/// An eviction POST.
pub fn is_eviction(r: &ApiRequest) -> bool {
    r.method == "POST"
        && r.path
            .split('?')
            .next()
            .unwrap_or("")
            .ends_with("/eviction")
}

/// Requests counted by `METHOD pattern`, with their statuses.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// `(method, pattern)` → status → count.
    pub by_pattern: BTreeMap<(String, String), BTreeMap<u16, usize>>,
}

impl Counts {
    /// Counts `reqs`.
    pub fn of<'a>(reqs: impl IntoIterator<Item = &'a ApiRequest>) -> Counts {
        let mut c = Counts::default();
        for r in reqs {
            *c.by_pattern
                .entry((r.method.clone(), pattern(&r.path)))
                .or_default()
                .entry(r.status)
                .or_default() += 1;
        }
        c
    }

    /// All requests.
    pub fn total(&self) -> usize {
        self.by_pattern.values().flat_map(|s| s.values()).sum()
    }

    /// Requests per HTTP method.
    pub fn by_verb(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for ((method, _), st) in &self.by_pattern {
            *m.entry(method.clone()).or_default() += st.values().sum::<usize>();
        }
        m
    }
}

/// `201×110, 429×3`.
pub fn statuses(s: &BTreeMap<u16, usize>) -> String {
    s.iter()
        .map(|(code, n)| format!("{code}×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let cases = [
            (
                "/api/v1/namespaces/shop/pods/web-1/eviction",
                "/api/v1/namespaces/{ns}/pods/{name}/eviction",
            ),
            (
                "/api/v1/namespaces/shop/pods/web-1",
                "/api/v1/namespaces/{ns}/pods/{name}",
            ),
            ("/api/v1/nodes/ip-10-0-1-23", "/api/v1/nodes/{name}"),
            (
                "/api/v1/pods?fieldSelector=spec.nodeName%3Dx&limit=500&continue=abc",
                "/api/v1/pods?continue&fieldSelector&limit",
            ),
            (
                "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node",
                "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
            ),
            ("/api/v1/namespaces/shop", "/api/v1/namespaces/{name}"),
            ("/api", "/api"),
            ("/apis/policy/v1", "/apis/policy/v1"),
            ("/version?timeout=32s", "/version?timeout"),
        ];
        for (path, want) in cases {
            assert_eq!(pattern(path), want, "{path}");
        }
        assert!(is_discovery("/api") && is_discovery("/apis/policy/v1?timeout=32s"));
        assert!(is_discovery("/api/v1") && !is_discovery("/api/v1/nodes/x"));
    }
}
