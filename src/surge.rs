//! `SURGE_BLOCKED`: move a budget-blocked Deployment by its own rolling restart.
//!
//! A Deployment whose PodDisruptionBudget can never allow an eviction (one replica under
//! `minAvailable: 1`, the most common PDB mistake) refuses every eviction until the forced
//! delete, so its pod dies with no replacement Ready. With `SURGE_BLOCKED=true`, when an
//! eviction gets 429 from a budget that allows no disruption now (`disruptionsAllowed` 0, not
//! one the server is still processing), and [`verdict`] says the pod's Deployment can surge,
//! the drain sets the pod template's `kubectl.kubernetes.io/restartedAt` annotation (what
//! `kubectl rollout restart` does), once per Deployment per drain: the deployment controller
//! starts the replacement on another node (ours is cordoned) and retires the old pod when the
//! new one is Ready, within its own rules. Evictions keep being retried as before, and the
//! forced delete at `force_at` stays the last resort.
//!
//! The Deployment: the pod's controller is an apps ReplicaSet named `<deployment>-<hash>`,
//! `hash` being the pod's `pod-template-hash` label (how the deployment controller names its
//! ReplicaSets), and that Deployment's selector matches the pod. Never for StatefulSets, bare
//! ReplicaSets or any other owner. RBAC: `deployments` `get` and `patch` in `apps` (README).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::kube::model::{Deployment, IntOrString, LabelSelector, Pod};
use crate::selector;

/// The Deployment name a pod belongs to, from its ReplicaSet and `pod-template-hash` label.
pub fn deployment_of(pod: &Pod) -> Option<String> {
    let c = pod.controller()?;
    let apps = c
        .api_version
        .as_deref()
        .is_some_and(|v| v.starts_with("apps/"));
    if c.kind != "ReplicaSet" || !apps {
        return None;
    }
    let hash = pod.label("pod-template-hash").filter(|h| !h.is_empty())?;
    let name = c.name.strip_suffix(hash)?.strip_suffix('-')?;
    (!name.is_empty()).then(|| name.to_string())
}

/// An int-or-percent resolved against `replicas`, as upstream's fenceposts: percentages round
/// up (`round_up`, maxSurge) or down (maxUnavailable); unset is the API default 25 %.
pub fn resolve(v: Option<&IntOrString>, replicas: i64, round_up: bool) -> Option<i64> {
    let p = match v {
        Some(IntOrString::Int(n)) => return Some(*n),
        Some(IntOrString::Str(s)) => s.trim().strip_suffix('%')?.trim().parse().ok()?,
        None => 25,
    };
    Some((p * replicas + if round_up { 99 } else { 0 }).div_euclid(100))
}

/// A label selector of the API as a [`selector::Selector`] (`None`: an unknown operator).
fn selector_of(sel: &LabelSelector) -> Option<selector::Selector> {
    let labels: Vec<(&str, &str)> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let exprs: Vec<(&str, &str, &[String])> = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            (
                e.key.as_str(),
                e.operator.as_str(),
                e.values.as_deref().unwrap_or(&[]),
            )
        })
        .collect();
    selector::from_label_selector(&labels, &exprs)
}

/// Whether a PodDisruptionBudget (read as a [`Deployment`], see the model) selects a pod of its
/// namespace with these labels. policy/v1: an empty selector selects every pod, none selects
/// none.
pub fn budget_selects<'a>(pdb: &Deployment, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(selector_of)
        .is_some_and(|s| s.matches(label))
}

/// Whether the pod's Deployment `d` may be restarted: `Ok(maxSurge)` or why not. `label` looks
/// up the pod's labels. `ready_here`: `Some(n)` for a budget-blocked pod (`SURGE_BLOCKED=true`),
/// `n` being how many of its Ready pods are on this node and not yet evicted, all of them
/// needed; `None` for `SURGE_BLOCKED=budgeted`, whose rollout must never go below the desired
/// Ready count (maxUnavailable 0), wherever its replicas run.
pub fn verdict<'a>(
    d: &Deployment,
    label: impl Fn(&str) -> Option<&'a str>,
    ready_here: Option<i64>,
) -> Result<i64, &'static str> {
    let spec = d.spec.as_ref().ok_or("the Deployment has no spec")?;
    if spec.paused == Some(true) {
        return Err("the Deployment is paused");
    }
    let sel = spec
        .selector
        .as_ref()
        .ok_or("the Deployment has no selector")?;
    let s = selector_of(sel).ok_or("the Deployment's selector has an unknown operator")?;
    if s.requirements.is_empty() || !s.matches(label) {
        return Err("the Deployment's selector does not match the pod");
    }
    let strategy = spec.strategy.clone().unwrap_or_default();
    if strategy
        .kind
        .as_deref()
        .is_some_and(|k| k != "RollingUpdate")
    {
        return Err("the Deployment's strategy is not RollingUpdate");
    }
    let replicas = spec.replicas.unwrap_or(1);
    let ru = strategy.rolling_update.unwrap_or_default();
    let surge = resolve(ru.max_surge.as_ref(), replicas, true)
        .ok_or("the Deployment's maxSurge is unreadable")?;
    if surge <= 0 {
        return Err("the Deployment cannot surge (maxSurge 0)");
    }
    let Some(ready_here) = ready_here else {
        let unavailable = resolve(ru.max_unavailable.as_ref(), replicas, false)
            .ok_or("the Deployment's maxUnavailable is unreadable")?;
        if unavailable > 0 {
            return Err("its rollout may go below the desired Ready count (maxUnavailable > 0)");
        }
        return Ok(surge);
    };
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready > ready_here {
        return Err("some of its Ready replicas run on other nodes");
    }
    Ok(surge)
}

/// The Deployment's pod template was restarted at or after `since` (the drain's start): a
/// handler restarted mid-drain must not restart it again. Whole seconds, as the stamp is.
pub fn restarted_since(d: &Deployment, since: SystemTime) -> bool {
    let stamp = d
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.annotations.as_ref())
        .and_then(|a| a.restarted_at.as_deref())
        .and_then(crate::time::parse_rfc3339);
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    stamp.is_some_and(|t| secs(t) >= secs(since))
}

/// When the hold of `SURGE_BLOCKED=budgeted` ends at the latest: halfway from the drain's
/// `start` to `force_at`, so that the pods the rollout did not retire by then still get the
/// ordinary evictions (and the forced delete) in time. Not later than `force_at`.
pub fn hold_end(start: Instant, force_at: Instant) -> Instant {
    start + force_at.saturating_duration_since(start) / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn pod(rs: &str, hash: &str, app: &str, kind: &str) -> Pod {
        parse(
            format!(
                r#"{{"metadata":{{"name":"p","namespace":"shop","labels":{{"app":"{app}","pod-template-hash":"{hash}"}},
                "ownerReferences":[{{"apiVersion":"apps/v1","kind":"{kind}","name":"{rs}","controller":true}}]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn deployment(spec: &str, ready: i64) -> Deployment {
        parse(
            format!(
                r#"{{"metadata":{{"name":"web"}},"spec":{spec},"status":{{"readyReplicas":{ready}}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_deployment_of_a_pod() {
        assert_eq!(
            deployment_of(&pod("web-7d4b9c", "7d4b9c", "web", "ReplicaSet")).as_deref(),
            Some("web")
        );
        assert_eq!(
            deployment_of(&pod("my-app-v2-5f6", "5f6", "web", "ReplicaSet")).as_deref(),
            Some("my-app-v2")
        );
        // A bare ReplicaSet whose name does not end in the hash, a StatefulSet, no hash.
        assert_eq!(
            deployment_of(&pod("web", "7d4b9c", "web", "ReplicaSet")),
            None
        );
        assert_eq!(
            deployment_of(&pod("db-7d4b9c", "7d4b9c", "db", "StatefulSet")),
            None
        );
        assert_eq!(deployment_of(&pod("web-", "", "web", "ReplicaSet")), None);
        assert_eq!(deployment_of(&pod("-7d", "7d", "web", "ReplicaSet")), None);
    }

    #[test]
    fn max_surge_resolves_like_upstream() {
        let i = |n| Some(IntOrString::Int(n));
        let s = |t: &str| Some(IntOrString::Str(t.to_string()));
        let cases: &[(Option<IntOrString>, i64, Option<i64>)] = &[
            (None, 1, Some(1)),
            (None, 4, Some(1)),
            (None, 5, Some(2)),
            (i(0), 1, Some(0)),
            (i(2), 1, Some(2)),
            (s("25%"), 1, Some(1)),
            (s("0%"), 10, Some(0)),
            (s("1%"), 1, Some(1)),
            (s("50%"), 3, Some(2)),
            (s("x"), 1, None),
            (s("5"), 1, None),
        ];
        for (v, replicas, want) in cases {
            assert_eq!(
                resolve(v.as_ref(), *replicas, true),
                *want,
                "{v:?} of {replicas}"
            );
        }
    }

    #[test]
    fn verdict_table() {
        let p = pod("web-7d4b9c", "7d4b9c", "web", "ReplicaSet");
        let sel = r#""selector":{"matchLabels":{"app":"web"}}"#;
        let cases: &[(String, i64, i64, Result<i64, &str>)] = &[
            // spec, readyReplicas, ready here, verdict
            (format!(r#"{{"replicas":1,{sel}}}"#), 1, 1, Ok(1)),
            (
                format!(r#"{{"replicas":1,{sel},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxSurge":"25%","maxUnavailable":0}}}}}}"#),
                1,
                1,
                Ok(1),
            ),
            (
                format!(r#"{{"replicas":2,{sel},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxSurge":3}}}}}}"#),
                2,
                2,
                Ok(3),
            ),
            (
                format!(r#"{{"replicas":1,{sel},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxSurge":0,"maxUnavailable":1}}}}}}"#),
                1,
                1,
                Err("the Deployment cannot surge (maxSurge 0)"),
            ),
            (
                format!(r#"{{"replicas":4,{sel},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxSurge":"0%"}}}}}}"#),
                4,
                4,
                Err("the Deployment cannot surge (maxSurge 0)"),
            ),
            (
                format!(r#"{{"replicas":1,{sel},"strategy":{{"type":"Recreate"}}}}"#),
                1,
                1,
                Err("the Deployment's strategy is not RollingUpdate"),
            ),
            (
                format!(r#"{{"replicas":3,{sel}}}"#),
                3,
                2,
                Err("some of its Ready replicas run on other nodes"),
            ),
            (
                format!(r#"{{"replicas":1,{sel},"paused":true}}"#),
                1,
                1,
                Err("the Deployment is paused"),
            ),
            (
                r#"{"replicas":1,"selector":{"matchLabels":{"app":"api"}}}"#.to_string(),
                1,
                1,
                Err("the Deployment's selector does not match the pod"),
            ),
            (
                r#"{"replicas":1,"selector":{"matchExpressions":[{"key":"app","operator":"In","values":["web"]}]}}"#.to_string(),
                1,
                1,
                Ok(1),
            ),
            (
                r#"{"replicas":1}"#.to_string(),
                1,
                1,
                Err("the Deployment has no selector"),
            ),
        ];
        for (spec, ready, here, want) in cases {
            assert_eq!(
                verdict(&deployment(spec, *ready), |k| p.label(k), Some(*here)),
                *want,
                "{spec}"
            );
        }
    }
}
