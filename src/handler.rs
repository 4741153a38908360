//! The main loop: start up, poll for a notice, and act on it once.
//!
//! Start-up does all the API calls the handler needs before a notice (find the node, read our
//! annotations to resume an interrupted drain, discover the Eviction version), so that while
//! idle it makes no API request at all and, on a notice, the cordon goes out at once.

use std::time::{Duration, Instant, SystemTime};

use crate::config::{self, Config};
use crate::drain::{Budget, Drainer, Outcome, ANNOTATION_PREFIX, EMERGENCY_WINDOW, PHASE_DRAINED};
use crate::imds::Imds;
use crate::kube::model::NodeAnnotations;
use crate::kube::{Client, EvictionVersion};
use crate::notice::{self, Notice};
use crate::notify::{Notifier, Origin};
use crate::time::{format_duration, format_rfc3339};
use crate::{info, log, warn};

/// Start-up API calls get this long each.
const STARTUP_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between attempts to find our node at start-up.
const STARTUP_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Repeated poll errors are logged once, then every this many times.
const POLL_ERROR_LOG_EVERY: u64 = 60;

/// Builds everything from the configuration (failures here are configuration errors: exit 2),
/// then runs forever.
pub fn run(cfg: Config) -> Result<(), config::Error> {
    log::set_debug(cfg.verbose);
    let fields = cfg.banner_fields();
    let mut pairs: Vec<(&str, &dyn std::fmt::Display)> = vec![
        ("version", &env!("CARGO_PKG_VERSION")),
        ("kube_version", &crate::KUBE_VERSION),
    ];
    pairs.extend(
        fields
            .iter()
            .map(|(k, v)| (*k, v as &dyn std::fmt::Display)),
    );
    log::log(
        log::Level::Info,
        "starting spot-termination-notice-handler",
        &pairs,
    );
    let secs = cfg.poll_interval.as_secs_f64();
    info!(&format!(
        "polling {} every {} second(s)",
        cfg.poll_url(),
        trim_float(secs)
    ));

    let client =
        Client::new(&cfg.kube_api_url, &cfg.service_account_dir).map_err(|e| config::Error {
            setting: "SERVICE_ACCOUNT_DIR".to_string(),
            expected: "a readable ca.crt (PEM) and token for the Kubernetes API".to_string(),
            got: e,
        })?;
    let notifier = match &cfg.slack_url {
        Some(url) => Notifier::spawn(url).map_err(|e| config::Error {
            setting: "SLACK_URL".to_string(),
            expected: "a usable webhook URL".to_string(),
            got: e,
        })?,
        None => Notifier::disabled(),
    };
    // The configuration step validated both URLs; should one still fail, name the right one.
    let mut imds =
        Imds::new(&cfg.imds_url, cfg.notice_url.clone(), cfg.imds_timeout).map_err(|e| {
            let imds_ok = crate::http::Url::parse(&cfg.imds_url).is_ok();
            config::Error {
                setting: if imds_ok { "NOTICE_URL" } else { "IMDS_URL" }.to_string(),
                expected: "an http:// URL with a host and a valid port".to_string(),
                got: e,
            }
        })?;

    let node = match &cfg.node_name {
        Some(n) => n.clone(),
        None => find_node(
            &client,
            cfg.namespace.as_deref().unwrap_or_default(),
            cfg.pod_name.as_deref().unwrap_or_default(),
        ),
    };
    let identity = imds.identity();
    info!(
        "identified instance",
        node = node,
        instance = identity.instance_id,
        instance_type = identity.instance_type,
        zone = identity.zone
    );
    let prior = read_annotations(&client, &node);
    let version =
        match client.discover_eviction_version(Some(Instant::now() + STARTUP_CALL_TIMEOUT)) {
            Ok(v) => v,
            Err(e) => {
                let v = EvictionVersion::for_kube_version(crate::KUBE_VERSION);
                warn!(
                    "Eviction API discovery failed; using the build's default",
                    error = e,
                    kube_version = crate::KUBE_VERSION,
                    eviction_api = v.api_version()
                );
                v
            }
        };
    let origin = Origin {
        cluster: cfg.cluster.clone(),
        node: node.clone(),
        identity,
        channel: cfg.slack_channel.clone(),
    };
    let ctx = Context {
        cfg: &cfg,
        client: &client,
        notifier: &notifier,
        origin,
        node,
        version,
        prior,
    };
    ctx.poll_forever(&mut imds);
    Ok(())
}

struct Context<'a> {
    cfg: &'a Config,
    client: &'a Client,
    notifier: &'a Notifier,
    origin: Origin,
    node: String,
    version: EvictionVersion,
    /// Our annotations as read at start-up (`None` if the read failed).
    prior: Option<Prior>,
}

/// What the Node said at start-up: our annotations, and whether it was cordoned.
#[derive(Debug, Clone)]
struct Prior {
    annotations: NodeAnnotations,
    cordoned: bool,
}

/// What to do with a notice, given our annotations on the Node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Not ours yet: announce it and drain.
    Fresh,
    /// We started on it before a restart and did not finish (`draining`), or finished with
    /// pods left (`incomplete`) or without listing any (`failed`): drain again, silently.
    Resume,
    /// We drained the node for it (`drained`): nothing to do.
    AlreadyDrained,
}

/// Pure: the annotations' notice id and phase decide.
pub fn resume_decision(prior: Option<&NodeAnnotations>, notice_id: &str) -> Resume {
    match prior {
        Some(p) if p.notice.as_deref() == Some(notice_id) => {
            if p.phase.as_deref() == Some(PHASE_DRAINED) {
                Resume::AlreadyDrained
            } else {
                Resume::Resume
            }
        }
        _ => Resume::Fresh,
    }
}

impl Context<'_> {
    fn poll_forever(&self, imds: &mut Imds) {
        let boot = notice::boot_time(SystemTime::now());
        let (mut errors, mut consecutive) = (0u64, 0u64);
        let mut last_error = String::new();
        let mut stale_logged = false;
        // No API request is made while idle: do not hold the start-up connection open.
        self.client.close_idle();
        let mut next = Instant::now();
        let cordoned = loop {
            match imds.poll(SystemTime::now()) {
                Ok(Some(n)) if n.is_stale(boot) => {
                    if !stale_logged {
                        warn!(
                            "ignoring a notice older than this machine's boot",
                            notice = n.id
                        );
                        stale_logged = true;
                    }
                }
                Ok(Some(n)) => {
                    let cordoned = self.handle(n);
                    self.client.close_idle();
                    break cordoned;
                }
                Ok(None) => {
                    last_error.clear();
                    if consecutive > 0 {
                        info!(
                            "metadata polling recovered",
                            failed_polls = consecutive,
                            poll_errors_total = errors
                        );
                        consecutive = 0;
                    }
                }
                Err(e) => {
                    errors += 1;
                    consecutive += 1;
                    // A new kind of error is always logged; a repeated one every so often.
                    let text = e.to_string();
                    if text != last_error || consecutive % POLL_ERROR_LOG_EVERY == 0 {
                        last_error = text;
                        warn!(
                            "metadata poll failed; still polling",
                            error = e,
                            consecutive = consecutive,
                            poll_errors_total = errors
                        );
                    }
                }
            }
            next += self.cfg.poll_interval;
            let now = Instant::now();
            if next < now {
                next = now + self.cfg.poll_interval;
            }
            std::thread::sleep(next - now);
        };
        if cordoned {
            info!(
                "done; staying idle with the node cordoned",
                node = self.node
            );
        } else {
            warn!(
                "done; staying idle; the node is not cordoned",
                node = self.node
            );
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    /// Acts on a notice: Slack, cordon, drain, record, Slack. Returns whether the node is
    /// cordoned as far as the API told us.
    fn handle(&self, mut notice: Notice) -> bool {
        // The budget is measured from here, the moment the notice was seen.
        let (seen, now) = (Instant::now(), SystemTime::now());
        let left = crate::time::secs_until(notice.deadline, now);
        info!(
            "spot interruption notice received",
            notice = notice.id,
            action = notice.action,
            deadline = format_rfc3339(notice.deadline),
            deadline_given = notice.deadline_given,
            seconds_left = left.max(0.0).round(),
            deadline_passed = left <= 0.0
        );
        if !notice.is_known_action() {
            warn!(
                "unknown notice action; draining anyway",
                action = notice.action
            );
        }
        let prior = match &self.prior {
            Some(p) => Some(p.clone()),
            // The start-up read failed; one more try, bounded, before deciding.
            None => read_annotations(self.client, &self.node),
        };
        match resume_decision(prior.as_ref().map(|p| &p.annotations), &notice.id) {
            Resume::AlreadyDrained => {
                info!(
                    "node already drained for this notice (our annotation); nothing to do",
                    notice = notice.id
                );
                return prior.is_some_and(|p| p.cordoned);
            }
            Resume::Resume => {
                let p = &prior.as_ref().expect("resume implies prior").annotations;
                if !notice.deadline_given {
                    if let Some(d) = p.deadline.as_deref().and_then(crate::time::parse_rfc3339) {
                        notice.deadline = d;
                    }
                }
                info!(
                    "resuming the drain this handler started before a restart",
                    notice = notice.id,
                    phase = p.phase.as_deref().unwrap_or("?")
                );
            }
            Resume::Fresh => self
                .notifier
                .send("notice", self.origin.render_notice(&notice, now)),
        }

        let budget = Budget::new(
            notice.deadline,
            self.cfg.drain_reserve,
            self.cfg.grace_period,
            seen,
            now,
        );
        if budget.emergency {
            let window_s = EMERGENCY_WINDOW.as_secs();
            match budget.passed_by {
                Some(late) => warn!(
                    "the notice's deadline has already passed; acting at once within the emergency window",
                    late_s = late.as_secs(),
                    window_s = window_s
                ),
                None => warn!(
                    "less time left than the emergency window; acting at once within it",
                    seconds_left = left.max(0.0).round(),
                    window_s = window_s
                ),
            }
        }
        let drainer = Drainer {
            client: self.client,
            node: self.node.clone(),
            own_pod: self.cfg.namespace.clone().zip(self.cfg.pod_name.clone()),
            version: self.version,
            force_delete: self.cfg.force_delete,
        };
        let report = drainer.run(&notice, &budget);
        let summary = report.summary();
        // A cordon that failed gets one more chance with the record.
        let uncordoned = if report.cordoned {
            ""
        } else {
            ",\"spec\":{\"unschedulable\":true}"
        };
        let patch = format!(
            "{{\"metadata\":{{\"annotations\":{{\"{p}phase\":\"{}\",\"{p}summary\":{}}}}}{uncordoned}}}",
            report.phase(),
            crate::json::escape(&summary),
            p = ANNOTATION_PREFIX
        );
        // Recording the outcome gets what is left until the deadline (the report margin).
        let record_by = budget.deadline.max(Instant::now() + Duration::from_secs(1));
        let recorded = match self.client.patch_node(&self.node, &patch, Some(record_by)) {
            Ok(()) => true,
            Err(e) => {
                warn!("could not record the drain outcome on the node", error = e);
                false
            }
        };
        let cordoned = report.cordoned || recorded;
        let (level, msg) = match report.outcome() {
            Outcome::Drained => (log::Level::Info, "drain finished"),
            Outcome::PodsLeft => (log::Level::Error, "drain finished with pods left"),
            Outcome::NotDrained => (log::Level::Error, "could not list pods; node not drained"),
        };
        let seconds = format!("{:.1}", report.seconds);
        let names = crate::drain::some_names(&report.still_present_pods, ",");
        let mut fields: Vec<(&str, &dyn std::fmt::Display)> = vec![
            ("node", &self.node),
            ("evicted", &report.evicted),
            ("forced", &report.forced),
            ("failed", &report.failed),
            ("already_gone", &report.already_gone),
            ("skipped", &report.skipped),
            ("still_present", &report.still_present),
        ];
        if !names.is_empty() {
            fields.push(("still_on_node", &names));
        }
        fields.push(("cordoned", &cordoned));
        fields.push(("seconds", &seconds));
        log::log(level, msg, &fields);
        self.notifier
            .send("drained", self.origin.render_drained(&notice, &report));
        cordoned
    }
}

/// `spec.nodeName` of our own pod, retried with backoff until the API answers.
fn find_node(client: &Client, ns: &str, pod: &str) -> String {
    let mut backoff = Duration::from_secs(1);
    loop {
        match client.get_pod(ns, pod, Some(Instant::now() + STARTUP_CALL_TIMEOUT)) {
            Ok(p) => match p.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty()) {
                Some(n) => {
                    info!(
                        "found this pod's node",
                        pod = format!("{ns}/{pod}"),
                        node = n
                    );
                    return n;
                }
                None => warn!(
                    "this pod has no spec.nodeName yet; retrying",
                    pod = format!("{ns}/{pod}"),
                    retry_in = format_duration(backoff)
                ),
            },
            Err(e) => warn!(
                "could not look up this pod's node; retrying",
                error = e,
                retry_in = format_duration(backoff)
            ),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(STARTUP_MAX_BACKOFF);
    }
}

/// Our annotations on the node; `None` (with a warning) when the API does not answer.
fn read_annotations(client: &Client, node: &str) -> Option<Prior> {
    match client.get_node(node, Some(Instant::now() + STARTUP_CALL_TIMEOUT)) {
        Ok(n) => {
            let cordoned = n.spec.and_then(|s| s.unschedulable) == Some(true);
            let a = n.metadata.annotations.unwrap_or_default();
            if let Some(id) = &a.notice {
                info!(
                    "node carries our notice annotation",
                    node = node,
                    notice = id,
                    phase = a.phase.as_deref().unwrap_or("?")
                );
            }
            Some(Prior {
                annotations: a,
                cordoned,
            })
        }
        Err(e) => {
            warn!(
                "could not read the node; will retry when a notice comes",
                error = e
            );
            None
        }
    }
}

/// `1` for 1.0, `0.2` for 0.2: the seed's "every 5 second(s)" wording.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_decision_table() {
        let ann = |notice: &str, phase: &str| NodeAnnotations {
            notice: Some(notice.to_string()),
            phase: Some(phase.to_string()),
            deadline: None,
        };
        let id = "aws-spot/terminate/2026-11-26T08:42:00Z";
        let cases: &[(Option<NodeAnnotations>, Resume)] = &[
            (None, Resume::Fresh),
            (Some(NodeAnnotations::default()), Resume::Fresh),
            (
                Some(ann("aws-spot/terminate/2020-01-01T00:00:00Z", "drained")),
                Resume::Fresh,
            ),
            (Some(ann(id, "draining")), Resume::Resume),
            (Some(ann(id, "incomplete")), Resume::Resume),
            (Some(ann(id, "failed")), Resume::Resume),
            (Some(ann(id, "drained")), Resume::AlreadyDrained),
        ];
        for (prior, want) in cases {
            assert_eq!(resume_decision(prior.as_ref(), id), *want, "{prior:?}");
        }
    }

    #[test]
    fn seconds_wording() {
        assert_eq!(super::trim_float(1.0), "1");
        assert_eq!(super::trim_float(0.2), "0.2");
        assert_eq!(super::trim_float(5.0), "5");
    }
}
