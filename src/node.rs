//! The one action path on the Node: make it what the decision says ([`Desired`]), or give it
//! back as it was.
//!
//! What we change, and only that: `spec.unschedulable`, one NoSchedule taint per live reason
//! (`spot-termination-notice-handler/<reason>`, value: the notice id as a label value), the label
//! `node.kubernetes.io/exclude-from-external-load-balancers=spot-termination-notice-handler`
//! while a drain holds the node, and our annotations (`record`). Before the first change we
//! record what the node looked like (`before`), so giving it back restores exactly that: we
//! uncordon only a node that was schedulable, remove only our taints, and the label only while
//! its value is ours.
//!
//! Requests. Putting the cordon on is urgent: one merge patch (cordon, label, annotations) with
//! no precondition, so nothing can make it wait. Taints are a list that a merge patch replaces
//! whole, so they go in a second merge patch carrying the `resourceVersion` the first one
//! returned: a concurrent change to the node makes it fail with 409, and we read the node again
//! and retry (a few times, within the deadline). The taints of a cordon just put on wait
//! [`TAINT_DELAY`] and then read the node first (the node controller has added its own
//! `node.kubernetes.io/unschedulable` taint by then): the cordon alone keeps new pods off, and
//! when hundreds of nodes are reclaimed at once the API server's priority level for node writes
//! carries their cordons first (docs/mass-reclaim.md). Giving the node back is not urgent: one
//! patch with the precondition, re-read on conflict.

use std::time::{Duration, Instant, SystemTime};

use crate::decision::{Desired, Ledger};
use crate::json::escape;
use crate::kube::model::{Node, Taint};
use crate::kube::Client;
use crate::notice::Kind;
use crate::record::{self, Before, LB_LABEL, LB_VALUE, PREFIX};
use crate::time::format_rfc3339;
use crate::{info, warn};

/// Attempts of a patch that carries a `resourceVersion` precondition.
const CONFLICT_ATTEMPTS: usize = 4;

/// How long the taints of a cordon just put on wait (the cordon alone keeps new pods off).
pub const TAINT_DELAY: Duration = Duration::from_secs(1);

/// The human-readable annotations, besides the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// `cordoned`, `draining`, `drained`, `incomplete`; `None` once the node is given back.
    pub phase: Option<String>,
    /// The governing notice id.
    pub notice: Option<String>,
    pub deadline: Option<SystemTime>,
    pub acted_at: Option<SystemTime>,
    pub summary: Option<String>,
}

/// The node as we know it and what we did to it.
pub struct Keeper<'a> {
    client: &'a Client,
    name: String,
    /// `EXCLUDE_FROM_LOAD_BALANCERS`.
    exclude_lb: bool,
    /// `DRY_RUN`: say what would be written, write nothing, and keep the node as it would be
    /// in memory (so the loop settles as it would).
    dry_run: bool,
    /// The node as last read or patched; `None` when it could not be read.
    view: Option<Node>,
    /// The node before our first change (from our annotation after a restart).
    pub before: Option<Before>,
    /// Set when `apply` put the cordon on (taken by the caller, for its Event).
    pub just_cordoned: bool,
    /// Our annotations as the last patch that carried them wrote them, so a retried `apply`
    /// (its taints failed) does not send them again.
    written: Option<Vec<String>>,
    /// The taints of the cordon this run put on wait until then ([`TAINT_DELAY`]).
    taints_due: Option<Instant>,
    /// The taints are due and the node is to be read before them (the node controller has
    /// written it since the cordon); stays set until a read succeeds.
    reread: bool,
}

/// What happened when the node was given back, for the log and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenBack {
    pub uncordoned: bool,
    /// Why the cordon stays, when it does.
    pub left_cordoned: Option<&'static str>,
}

impl<'a> Keeper<'a> {
    pub fn new(client: &'a Client, name: &str, exclude_lb: bool, dry_run: bool) -> Keeper<'a> {
        Keeper {
            client,
            name: name.to_string(),
            exclude_lb,
            dry_run,
            view: None,
            before: None,
            just_cordoned: false,
            written: None,
            taints_due: None,
            reread: false,
        }
    }

    pub fn view(&self) -> Option<&Node> {
        self.view.as_ref()
    }

    /// When the taints of the cordon just put on are due, while they wait.
    pub fn taints_due(&self) -> Option<Instant> {
        self.taints_due
    }

    /// The taints of the cordon just put on are not written yet: they wait for their time, or
    /// for the read of the node that goes before them.
    pub fn taints_waiting(&self) -> bool {
        self.taints_due.is_some() || self.reread
    }

    /// Reads the node: our ledger and `before` record, and the node itself.
    pub fn load(&mut self, deadline: Instant) -> Result<Ledger, crate::kube::Error> {
        let node = self.client.get_node(&self.name, Some(deadline))?;
        let a = node.annotations();
        let mut ledger = Ledger::new();
        if let Some(json) = &a.notices {
            match record::ledger_from_json(json) {
                Ok((l, 0)) => ledger = l,
                Ok((l, dropped)) => {
                    warn!(
                        "some of our notice records on the node could not be read; ignoring them",
                        node = self.name,
                        dropped = dropped
                    );
                    ledger = l;
                }
                Err(e) => warn!(
                    "our notice records on the node cannot be read; starting afresh",
                    node = self.name,
                    error = e
                ),
            }
        }
        self.before = a.before.as_deref().and_then(|b| Before::parse(b).ok());
        self.view = Some(node);
        Ok(ledger)
    }

    /// Re-reads the node (after a conflict, or before giving it back).
    fn refresh(&mut self, deadline: Instant) -> Result<(), crate::kube::Error> {
        self.view = Some(self.client.get_node(&self.name, Some(deadline))?);
        Ok(())
    }

    fn unschedulable(&self) -> Option<bool> {
        self.view.as_ref().map(Node::unschedulable)
    }

    fn label(&self) -> Option<String> {
        self.view
            .as_ref()
            .and_then(|n| n.exclude_lb_label().map(String::from))
    }

    /// Our taints as the desired state wants them, with the notice id of each reason.
    fn our_taints(desired: &Desired, ids: &[(Kind, String)]) -> Vec<Taint> {
        desired
            .reasons
            .iter()
            .map(|k| Taint {
                key: record::taint_key(*k),
                value: ids
                    .iter()
                    .find(|(kind, _)| kind == k)
                    .map(|(_, id)| record::label_value(id)),
                effect: "NoSchedule".to_string(),
                time_added: None,
            })
            .collect()
    }

    /// Makes the node what `desired` says and writes `ledger` and `labels`. `ids` names, per
    /// reason, the notice its taint carries. Sets `just_cordoned` when it put the cordon on.
    pub fn apply(
        &mut self,
        desired: &Desired,
        ids: &[(Kind, String)],
        ledger: &Ledger,
        labels: &Labels,
        deadline: Instant,
    ) -> Result<(), crate::kube::Error> {
        if self.before.is_none() && desired.cordon {
            self.before = Some(Before {
                unschedulable: self.unschedulable(),
                lb_label: self.label(),
            });
        }
        let want_label = desired.exclude_lb && self.exclude_lb;
        let label_is_ours = self.label().as_deref() == Some(LB_VALUE);
        let set_label = want_label && self.label().is_none();
        let drop_label = !want_label && label_is_ours;
        let cordon_on = desired.cordon && self.unschedulable() != Some(true);

        let mut spec = Vec::new();
        if cordon_on {
            spec.push("\"unschedulable\":true".to_string());
        }
        let mut meta_labels = Vec::new();
        if set_label {
            meta_labels.push(format!("{}:{}", escape(LB_LABEL), escape(LB_VALUE)));
        }
        if drop_label {
            meta_labels.push(format!("{}:null", escape(LB_LABEL)));
        }
        let annotations = self.annotations(ledger, labels);
        if self.dry_run {
            let ours = Self::our_taints(desired, ids);
            info!(
                "dry run: would update the node",
                node = self.name,
                cordon = desired.cordon,
                taints = reason_list(&desired.reasons),
                exclude_from_load_balancers = want_label,
                phase = labels.phase.as_deref().unwrap_or("none")
            );
            self.pretend(
                Some(desired.cordon || self.unschedulable() == Some(true)),
                if set_label {
                    Some(Some(LB_VALUE.to_string()))
                } else if drop_label {
                    Some(None)
                } else {
                    None
                },
                Some(ours),
                ledger,
                labels,
            );
            return Ok(());
        }
        let ours = Self::our_taints(desired, ids);
        let unchanged = spec.is_empty()
            && meta_labels.is_empty()
            && self.written.as_ref() == Some(&annotations);
        // Else only the taints are left to do (they wait for the cordon, or failed last time).
        if !unchanged {
            let patch = merge_patch(&meta_labels, &annotations, &spec, None);
            let patched = self.client.patch_node(&self.name, &patch, Some(deadline));
            crate::metrics::node_patched(cordon_on, set_label || drop_label, patched.is_ok());
            self.view = Some(patched?);
            self.written = Some(annotations);
            if cordon_on {
                self.just_cordoned = true;
                if !ours.is_empty() {
                    self.taints_due = Some(Instant::now() + TAINT_DELAY);
                }
                info!(
                    "cordoned node",
                    node = self.name,
                    reasons = reason_list(&desired.reasons)
                );
            }
            if set_label {
                info!(
                    "labelled node out of external load balancers",
                    node = self.name,
                    label = LB_LABEL
                );
            }
        }
        match self.taints_due {
            Some(due) if Instant::now() < due => return Ok(()),
            Some(_) => {
                self.taints_due = None;
                self.reread = true;
            }
            None => {}
        }
        if self.reread {
            // The node controller has written the node since the cordon: read it first
            // rather than have the taints' precondition fail (a failed read is tried again,
            // never skipped for a patch that could only conflict).
            self.refresh(deadline)?;
            self.reread = false;
        }
        self.set_taints(&ours, deadline)
    }

    /// Dry run: the node as the writes would have left it, in memory only.
    fn pretend(
        &mut self,
        unschedulable: Option<bool>,
        label: Option<Option<String>>,
        ours: Option<Vec<Taint>>,
        ledger: &Ledger,
        labels: &Labels,
    ) {
        let n = self.view.get_or_insert_with(Node::default);
        let spec = n.spec.get_or_insert_with(Default::default);
        if let Some(u) = unschedulable {
            spec.unschedulable = Some(u);
        }
        if let Some(ours) = ours {
            let mut taints: Vec<Taint> = spec
                .taints
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !record::is_our_taint(&t.key))
                .collect();
            taints.extend(ours);
            spec.taints = Some(taints);
        }
        if let Some(l) = label {
            n.metadata
                .labels
                .get_or_insert_with(Default::default)
                .exclude_lb = l;
        }
        let a = n.metadata.annotations.get_or_insert_with(Default::default);
        a.phase = labels.phase.clone();
        a.notice = labels.notice.clone();
        a.notices = (!ledger.is_empty()).then(|| record::ledger_to_json(ledger));
    }

    /// Replaces our taints by `ours`, keeping every other taint as it is.
    fn set_taints(&mut self, ours: &[Taint], deadline: Instant) -> Result<(), crate::kube::Error> {
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let Some(node) = &self.view else {
                self.refresh(deadline)?;
                continue;
            };
            let current = node.taints();
            let mine: Vec<&Taint> = current
                .iter()
                .filter(|t| record::is_our_taint(&t.key))
                .collect();
            let same = mine.len() == ours.len()
                && ours.iter().all(|o| {
                    mine.iter()
                        .any(|m| m.key == o.key && m.value == o.value && m.effect == o.effect)
                });
            if same {
                return Ok(());
            }
            let mut list: Vec<String> = current
                .iter()
                .filter(|t| !record::is_our_taint(&t.key))
                .map(Taint::to_json)
                .collect();
            list.extend(ours.iter().map(Taint::to_json));
            let spec = vec![format!("\"taints\":[{}]", list.join(","))];
            let rv = node.metadata.resource_version.clone();
            let patch = merge_patch(&[], &[], &spec, rv.as_deref());
            match self.client.patch_node(&self.name, &patch, Some(deadline)) {
                Ok(n) => {
                    crate::metrics::action(crate::metrics::Action::Taint, true);
                    self.view = Some(n);
                    return Ok(());
                }
                Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                    self.refresh(deadline)?;
                }
                Err(e) => {
                    crate::metrics::action(crate::metrics::Action::Taint, false);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Gives the node back: uncordons it if it was schedulable before our first change, removes
    /// our taints and label, and clears our annotations (the ledger stays while it holds
    /// notices, so an undone one is not applied again).
    pub fn give_back(
        &mut self,
        ledger: &Ledger,
        deadline: Instant,
    ) -> Result<GivenBack, crate::kube::Error> {
        let mut outcome = GivenBack {
            uncordoned: false,
            left_cordoned: None,
        };
        self.taints_due = None;
        self.reread = false;
        if self.dry_run {
            let cordoned = self.unschedulable() == Some(true);
            let verdict = uncordon_verdict(self.before.as_ref());
            outcome.uncordoned = cordoned && verdict.is_ok();
            if cordoned {
                outcome.left_cordoned = verdict.err();
            }
            info!(
                "dry run: would give the node back",
                node = self.name,
                uncordon = outcome.uncordoned,
                remove = "our taints, label and annotations"
            );
            self.pretend(
                Some(!outcome.uncordoned && self.unschedulable() == Some(true)),
                Some(None),
                Some(Vec::new()),
                ledger,
                &Labels::default(),
            );
            self.before = None;
            return Ok(outcome);
        }
        // What we wrote is being cleared: the next `apply` writes all of it again.
        self.written = None;
        for attempt in 1..=CONFLICT_ATTEMPTS {
            self.refresh(deadline)?;
            let node = self.view.as_ref().expect("refreshed");
            let mut spec = Vec::new();
            outcome.uncordoned = false;
            outcome.left_cordoned = None;
            if node.unschedulable() {
                match uncordon_verdict(self.before.as_ref()) {
                    Ok(()) => {
                        spec.push("\"unschedulable\":null".to_string());
                        outcome.uncordoned = true;
                    }
                    Err(why) => outcome.left_cordoned = Some(why),
                }
            }
            if node.taints().iter().any(|t| record::is_our_taint(&t.key)) {
                let others: Vec<String> = node
                    .taints()
                    .iter()
                    .filter(|t| !record::is_our_taint(&t.key))
                    .map(Taint::to_json)
                    .collect();
                spec.push(format!("\"taints\":[{}]", others.join(",")));
            }
            let mut labels = Vec::new();
            if node.exclude_lb_label() == Some(LB_VALUE) {
                labels.push(format!("{}:null", escape(LB_LABEL)));
            }
            let mut annotations: Vec<String> = [
                "phase", "notice", "deadline", "acted-at", "summary", "before",
            ]
            .iter()
            .map(|k| format!("{}:null", escape(&format!("{PREFIX}{k}"))))
            .collect();
            annotations.push(format!(
                "{}:{}",
                escape(&format!("{PREFIX}notices")),
                if ledger.is_empty() {
                    "null".to_string()
                } else {
                    escape(&record::ledger_to_json(ledger))
                }
            ));
            let rv = node.metadata.resource_version.clone();
            let patch = merge_patch(&labels, &annotations, &spec, rv.as_deref());
            match self.client.patch_node(&self.name, &patch, Some(deadline)) {
                Ok(n) => {
                    self.view = Some(n);
                    self.before = None;
                    return Ok(outcome);
                }
                Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Writes only our annotations (the ledger and the labels).
    pub fn record(
        &mut self,
        ledger: &Ledger,
        labels: &Labels,
        deadline: Instant,
    ) -> Result<(), crate::kube::Error> {
        if self.dry_run {
            crate::debug!(
                "dry run: would record our notices on the node",
                node = self.name
            );
            self.pretend(None, None, None, ledger, labels);
            return Ok(());
        }
        let annotations = self.annotations(ledger, labels);
        if self.written.as_ref() == Some(&annotations) {
            // An `apply` whose taints then failed wrote these already.
            return Ok(());
        }
        let patch = merge_patch(&[], &annotations, &[], None);
        self.view = Some(self.client.patch_node(&self.name, &patch, Some(deadline))?);
        self.written = Some(annotations);
        Ok(())
    }

    fn annotations(&self, ledger: &Ledger, l: &Labels) -> Vec<String> {
        let key = |k: &str| escape(&format!("{PREFIX}{k}"));
        let opt = |v: &Option<String>| v.as_deref().map_or("null".to_string(), escape);
        let time =
            |t: Option<SystemTime>| t.map_or("null".to_string(), |t| escape(&format_rfc3339(t)));
        let mut out = vec![
            format!(
                "{}:{}",
                key("notices"),
                escape(&record::ledger_to_json(ledger))
            ),
            format!("{}:{}", key("phase"), opt(&l.phase)),
            format!("{}:{}", key("notice"), opt(&l.notice)),
            format!("{}:{}", key("deadline"), time(l.deadline)),
            format!("{}:{}", key("acted-at"), time(l.acted_at)),
        ];
        if let Some(s) = &l.summary {
            out.push(format!("{}:{}", key("summary"), escape(s)));
        }
        if let Some(b) = &self.before {
            out.push(format!("{}:{}", key("before"), escape(&b.to_json())));
        }
        out
    }
}

/// Whether giving the node back may uncordon it: only when we know it was schedulable before
/// our first change; otherwise why it stays cordoned.
pub fn uncordon_verdict(before: Option<&Before>) -> Result<(), &'static str> {
    match before.and_then(|b| b.unschedulable) {
        Some(false) => Ok(()),
        Some(true) => Err("it was cordoned before our notice"),
        None => Err("its state before our cordon is unknown"),
    }
}

fn reason_list(reasons: &[Kind]) -> String {
    reasons
        .iter()
        .map(|k| k.slug())
        .collect::<Vec<_>>()
        .join(",")
}

/// `{"metadata":{"resourceVersion":…,"labels":{…},"annotations":{…}},"spec":{…}}`, leaving out
/// what is empty.
fn merge_patch(
    labels: &[String],
    annotations: &[String],
    spec: &[String],
    rv: Option<&str>,
) -> String {
    let mut meta = Vec::new();
    if let Some(rv) = rv {
        meta.push(format!("\"resourceVersion\":{}", escape(rv)));
    }
    if !labels.is_empty() {
        meta.push(format!("\"labels\":{{{}}}", labels.join(",")));
    }
    if !annotations.is_empty() {
        meta.push(format!("\"annotations\":{{{}}}", annotations.join(",")));
    }
    let mut parts = Vec::new();
    if !meta.is_empty() {
        parts.push(format!("\"metadata\":{{{}}}", meta.join(",")));
    }
    if !spec.is_empty() {
        parts.push(format!("\"spec\":{{{}}}", spec.join(",")));
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_we_did_not_cordon_is_never_uncordoned_by_us() {
        let b = |u: Option<bool>| Before {
            unschedulable: u,
            lb_label: None,
        };
        assert_eq!(uncordon_verdict(Some(&b(Some(false)))), Ok(()));
        assert!(uncordon_verdict(Some(&b(Some(true)))).is_err());
        assert!(uncordon_verdict(Some(&b(None))).is_err());
        assert!(uncordon_verdict(None).is_err(), "no record: never");
    }

    #[test]
    fn merge_patches_are_json_and_leave_out_what_is_empty() {
        let p = merge_patch(
            &["\"a\":\"b\"".to_string()],
            &["\"c\":null".to_string()],
            &["\"unschedulable\":true".to_string()],
            Some("42"),
        );
        crate::json::check(p.as_bytes()).unwrap();
        assert_eq!(
            p,
            r#"{"metadata":{"resourceVersion":"42","labels":{"a":"b"},"annotations":{"c":null}},"spec":{"unschedulable":true}}"#
        );
        assert_eq!(merge_patch(&[], &[], &[], None), "{}");
        assert_eq!(
            merge_patch(&[], &[], &["\"taints\":[]".to_string()], Some("7")),
            r#"{"metadata":{"resourceVersion":"7"},"spec":{"taints":[]}}"#
        );
    }

    #[test]
    fn taints_carry_the_notice_as_a_label_value() {
        let desired = Desired {
            cordon: true,
            reasons: vec![Kind::SpotInterruption, Kind::Rebalance],
            exclude_lb: true,
            drain: None,
        };
        let ids = vec![
            (
                Kind::SpotInterruption,
                "aws-spot/terminate/2027-01-15T08:00:00Z".to_string(),
            ),
            (
                Kind::Rebalance,
                "aws-rebalance/2027-01-15T07:58:00Z".to_string(),
            ),
        ];
        let t = Keeper::our_taints(&desired, &ids);
        assert_eq!(
            t.iter().map(Taint::to_json).collect::<Vec<_>>(),
            [
                r#"{"key":"spot-termination-notice-handler/spot-interruption","value":"aws-spot.terminate.2027-01-15T08-00-00Z","effect":"NoSchedule"}"#,
                r#"{"key":"spot-termination-notice-handler/rebalance-recommendation","value":"aws-rebalance.2027-01-15T07-58-00Z","effect":"NoSchedule"}"#
            ]
        );
    }
}
