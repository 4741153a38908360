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
//! `SURGE_BLOCKED=budgeted` (all of the above, and): an eviction a budget allows still stops a
//! Ready pod before its replacement is Ready. So at the drain's start, each Deployment with pods
//! to drain here that a PodDisruptionBudget selects ([`budget_selects`]) and whose rollout never
//! goes below its desired Ready count ([`verdict`] with `None`: RollingUpdate, not paused,
//! maxSurge > 0, maxUnavailable 0) is restarted, and its pods here are held (not evicted) until
//! the rollout deletes them, at the latest until [`hold_end`]. The stamp is the drain's start (the
//! notice record's `acted`), so a handler restarted mid-drain sends the very same patch, which
//! changes nothing: one rollout. RBAC: also `poddisruptionbudgets` `list` in `policy`.
//!
//! The Deployment: the pod's controller is an apps ReplicaSet named `<deployment>-<hash>`,
//! `hash` being the pod's `pod-template-hash` label (how the deployment controller names its
//! ReplicaSets), and that Deployment's selector matches the pod. Never for StatefulSets, bare
//! ReplicaSets or any other owner. RBAC: `deployments` `get` and `patch` in `apps` (README).

use std::time::Instant;

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
pub fn budget_selects<'a>(pdb: &Deployment, label: &dyn Fn(&str) -> Option<&'a str>) -> bool {
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
    label: &dyn Fn(&str) -> Option<&'a str>,
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
    let strategy = spec.strategy.as_ref();
    if strategy
        .and_then(|s| s.kind.as_deref())
        .is_some_and(|k| k != "RollingUpdate")
    {
        return Err("the Deployment's strategy is not RollingUpdate");
    }
    let replicas = spec.replicas.unwrap_or(1);
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let ru = (
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
    );
    let surge =
        resolve(ru.0, replicas, true).ok_or("the Deployment's rollingUpdate is unreadable")?;
    if surge <= 0 {
        return Err("the Deployment cannot surge (maxSurge 0)");
    }
    let Some(ready_here) = ready_here else {
        let unavailable =
            resolve(ru.1, replicas, false).ok_or("the Deployment's rollingUpdate is unreadable")?;
        if unavailable > 0 {
            return Err("its maxUnavailable is above 0");
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
    use std::time::Duration;

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
    fn max_unavailable_rounds_down_like_upstream() {
        let s = |t: &str| Some(IntOrString::Str(t.to_string()));
        // (value, replicas, maxUnavailable): the API default 25 % is 0 below 4 replicas.
        let cases: &[(Option<IntOrString>, i64, Option<i64>)] = &[
            (None, 1, Some(0)),
            (None, 3, Some(0)),
            (None, 4, Some(1)),
            (None, 7, Some(1)),
            (s("50%"), 3, Some(1)),
            (s("33%"), 2, Some(0)),
            (Some(IntOrString::Int(1)), 1, Some(1)),
            (s("x%"), 1, None),
        ];
        for (v, replicas, want) in cases {
            assert_eq!(
                resolve(v.as_ref(), *replicas, false),
                *want,
                "{v:?} of {replicas}"
            );
        }
    }

    #[test]
    fn budgeted_verdict_table() {
        let p = pod("web-7d4b9c", "7d4b9c", "web", "ReplicaSet");
        let sel = r#""selector":{"matchLabels":{"app":"web"}}"#;
        let ru = |n: i64, surge: &str, unavailable: &str| {
            format!(
                r#"{{"replicas":{n},{sel},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxSurge":{surge},"maxUnavailable":{unavailable}}}}}}}"#
            )
        };
        let cases: &[(String, Result<i64, &str>)] = &[
            // The API defaults (25 %/25 %): maxUnavailable rounds down to 0 below 4 replicas.
            (format!(r#"{{"replicas":3,{sel}}}"#), Ok(1)),
            (format!(r#"{{"replicas":2,{sel}}}"#), Ok(1)),
            (
                format!(r#"{{"replicas":4,{sel}}}"#),
                Err("its maxUnavailable is above 0"),
            ),
            (ru(3, "1", "0"), Ok(1)),
            (ru(10, r#""20%""#, r#""9%""#), Ok(2)),
            (ru(2, "1", "1"), Err("its maxUnavailable is above 0")),
            (
                ru(3, "0", "1"),
                Err("the Deployment cannot surge (maxSurge 0)"),
            ),
            (
                ru(3, "1", r#""x""#),
                Err("the Deployment's rollingUpdate is unreadable"),
            ),
            // Replicas elsewhere do not matter here (readyReplicas 9 of 3 on this node).
            (
                format!(r#"{{"replicas":3,{sel},"paused":true}}"#),
                Err("the Deployment is paused"),
            ),
            (
                format!(r#"{{"replicas":3,{sel},"strategy":{{"type":"Recreate"}}}}"#),
                Err("the Deployment's strategy is not RollingUpdate"),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                verdict(&deployment(spec, 9), &|k| p.label(k), None),
                *want,
                "{spec}"
            );
        }
    }

    #[test]
    fn budgets_select_like_policy_v1() {
        let p = pod("web-7d4b9c", "7d4b9c", "web", "ReplicaSet");
        let pdb = |spec: &str| -> Deployment {
            parse(format!(r#"{{"metadata":{{"name":"b"}},"spec":{spec}}}"#).as_bytes()).unwrap()
        };
        let cases = [
            (
                r#"{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}}"#,
                true,
            ),
            (
                r#"{"maxUnavailable":1,"selector":{"matchLabels":{"app":"api"}}}"#,
                false,
            ),
            (
                r#"{"selector":{"matchExpressions":[{"key":"app","operator":"In","values":["web","api"]}]}}"#,
                true,
            ),
            // An empty selector selects every pod of the namespace; none selects none.
            (r#"{"minAvailable":1,"selector":{}}"#, true),
            (r#"{"minAvailable":1}"#, false),
            (
                r#"{"selector":{"matchExpressions":[{"key":"app","operator":"Near"}]}}"#,
                false,
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(budget_selects(&pdb(spec), &|k| p.label(k)), want, "{spec}");
        }
        // A PodDisruptionBudgetList reads through the same struct.
        let list: Deployment = parse(br#"{"kind":"PodDisruptionBudgetList","apiVersion":"policy/v1","metadata":{"resourceVersion":"7"},
            "items":[{"metadata":{"name":"web-pdb","namespace":"shop"},"spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}},
              "status":{"currentHealthy":3,"desiredHealthy":2,"disruptionsAllowed":1,"expectedPods":3}}]}"#).unwrap();
        let items = list.items.unwrap();
        assert_eq!(items.len(), 1);
        assert!(budget_selects(&items[0], &|k| p.label(k)));
    }

    #[test]
    fn the_hold_ends_halfway_to_force_at() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (force_at after start, hold end after start): AWS 120 s (force at 100 s), GCP 30 s
        // (5 s), an emergency (force at once: no hold), a start after force_at (no hold).
        let cases = [
            (s(100), s(50)),
            (s(5), Duration::from_millis(2500)),
            (s(0), s(0)),
            (s(61), Duration::from_millis(30_500)),
        ];
        for (force, want) in cases {
            assert_eq!(hold_end(t0, t0 + force), t0 + want, "{force:?}");
        }
        assert_eq!(hold_end(t0 + s(10), t0 + s(4)), t0 + s(10));
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
                verdict(&deployment(spec, *ready), &|k| p.label(k), Some(*here)),
                *want,
                "{spec}"
            );
        }
    }
}
