//! Replacement capacity at once (`DETACH_ASG`): on a notice that ends the instance, detach it
//! from its EC2 Auto Scaling group with `ShouldDecrementDesiredCapacity=false`, so the group
//! launches the replacement now instead of after the instance is gone (and takes it out of the
//! group's load-balancer target groups).
//!
//! Which notices ([`wants`]): a spot interruption always; with `DETACH_ASG_ON`, a rebalance
//! recommendation and the scheduled events that end the instance (`instance-stop`,
//! `instance-retirement`; the reboots keep it). Never the ASG's own termination
//! (`target-lifecycle-state` `Terminated`): the group is already replacing the instance, and
//! an instance in `Terminating` cannot be detached.
//!
//! Off the action path: the loop hands each qualifying notice to a worker thread and goes on;
//! the cordon and the evictions never wait for AWS. The worker finds the group (the instance
//! tag `aws:autoscaling:groupName` from the metadata service when instance tags are exposed
//! there, else `DescribeAutoScalingInstances`), gets credentials (`credentials`) and calls
//! `DetachInstances`, retrying throttling and network errors until the notice's deadline. The
//! outcome goes back to the loop, which records it in the notice's entry on the Node (the
//! `detached` sent flag: once per notice, across restarts) and tells people of a failure. A
//! failure is logged, counted and told; it never stops anything else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::awsapi::{self, Api, ApiError, Env};
use crate::cloud::session::{self, Session};
use crate::credentials::Credentials;
use crate::decision::Ledger;
use crate::notice::Kind;
use crate::{error, info, warn};

pub const GROUP_TAG_PATH: &str = "/latest/meta-data/tags/instance/aws:autoscaling:groupName";
const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";
const REGION_PATH: &str = "/latest/meta-data/placement/region";
/// Each AWS request gets this long (and no longer than the notice's time left).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A notice without a deadline (a rebalance recommendation) gets this long to detach.
const NO_DEADLINE_BUDGET: Duration = Duration::from_secs(600);
/// Even past its deadline a notice gets this long (the instance usually lives a little longer).
const MIN_BUDGET: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The `DETACH_ASG_ON` words: notice kinds (their slugs).
pub const CHOICES: [Kind; 3] = [
    Kind::SpotInterruption,
    Kind::Rebalance,
    Kind::ScheduledMaintenance,
];

/// Parses `DETACH_ASG_ON`; the spot interruption is always in.
pub fn parse_on(text: &str) -> Result<Vec<Kind>, String> {
    let mut on = vec![Kind::SpotInterruption];
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match Kind::from_slug(word) {
            Some(k) if CHOICES.contains(&k) => {
                if !on.contains(&k) {
                    on.push(k);
                }
            }
            Some(Kind::Termination) => {
                return Err(format!(
                    "{word:?}: the group itself terminates the instance then (it is already replacing it, and an instance in Terminating cannot be detached)"
                ))
            }
            _ => return Err(format!("{word:?}")),
        }
    }
    Ok(on)
}

/// The `DETACH_ASG_ON` value as words.
pub fn on_words(on: &[Kind]) -> String {
    on.iter().map(|k| k.slug()).collect::<Vec<_>>().join(",")
}

/// Whether a notice (from watcher `source`, of `kind`, with the cloud's word `detail`) detaches
/// the instance. Only AWS notices (and the seed's `NOTICE_URL`, which polls IMDS).
pub fn wants(on: &[Kind], source: &str, kind: Kind, detail: &str) -> bool {
    if !(source.starts_with("aws-") || source == "notice-url") {
        return false;
    }
    match kind {
        Kind::SpotInterruption => true,
        Kind::Rebalance => on.contains(&kind),
        Kind::ScheduledMaintenance => {
            on.contains(&kind) && matches!(detail, "instance-stop" | "instance-retirement")
        }
        Kind::Termination => false,
    }
}

/// How one notice's detach ended: `Err` holds the group (if known) and the error, for people.
pub type Outcome = Result<(), (Option<String>, String)>;

/// A failure to tell people about.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    pub group: Option<String>,
    pub error: String,
}

/// What the loop and the worker share: jobs one way (notice id, until when), outcomes back.
#[derive(Default)]
struct Shared {
    jobs: Mutex<Vec<(String, Instant)>>,
    wake: Condvar,
    done: Mutex<Vec<(String, Outcome)>>,
    failures: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The loop's handle on the worker.
pub struct Detacher {
    on: Vec<Kind>,
    shared: Arc<Shared>,
    /// Notices handed to the worker by this process.
    requested: Vec<String>,
}

impl Detacher {
    /// Starts the worker; it finds the group (and credentials, when that needs them) at once,
    /// in the background, so that a notice costs one call.
    pub fn spawn(
        env: Env,
        on: Vec<Kind>,
        imds_url: &str,
        imds_timeout: Duration,
    ) -> std::io::Result<Detacher> {
        let shared = Arc::new(Shared::default());
        let imds = Arc::new(Session::new(imds_url, imds_timeout, &session::AWS));
        let Env {
            region,
            autoscaling_url,
            sts_url,
            source,
        } = env;
        let worker = Worker {
            creds: Credentials::new(source, sts_url, imds.clone(), CALL_TIMEOUT),
            imds,
            region_env: region,
            autoscaling_url,
            region: None,
            instance: None,
            group: None,
            tagged: false,
            api: None,
            detached: false,
            shared: shared.clone(),
            on_words: on_words(&on),
        };
        std::thread::Builder::new()
            .name("asg-detach".to_string())
            .stack_size(crate::worker::STACK)
            .spawn(move || worker.run())?;
        Ok(Detacher {
            on,
            shared,
            requested: Vec::new(),
        })
    }

    /// Detaches that failed so far (for metrics).
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Hands the worker every notice in force that wants a detach and has none recorded yet,
    /// and records the finished ones (`sent.detached`). Returns the failures to tell. Never
    /// blocks.
    pub fn step(&mut self, ledger: &mut Ledger, now: SystemTime) -> Vec<Failure> {
        let finished = std::mem::take(&mut *lock(&self.shared.done));
        let mut told = Vec::new();
        for (id, outcome) in finished {
            let Some(e) = ledger.iter_mut().find(|e| e.id == id) else {
                continue;
            };
            e.sent.detached = true;
            if let Err((group, error)) = outcome {
                told.push(Failure {
                    kind: e.kind,
                    group,
                    error,
                });
            }
        }
        for e in ledger.iter() {
            if !e.status.holds()
                || e.sent.detached
                || self.requested.contains(&e.id)
                || !wants(&self.on, &e.source, e.kind, &e.detail)
            {
                continue;
            }
            let left = e
                .deadline
                .map_or(NO_DEADLINE_BUDGET, |d| {
                    d.duration_since(now).unwrap_or_default()
                })
                .clamp(MIN_BUDGET, NO_DEADLINE_BUDGET);
            self.requested.push(e.id.clone());
            lock(&self.shared.jobs).push((e.id.clone(), Instant::now() + left));
            self.shared.wake.notify_one();
        }
        told
    }
}

struct Worker {
    imds: Arc<Session>,
    /// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL[_AUTO_SCALING]`.
    region_env: Option<String>,
    autoscaling_url: Option<String>,
    creds: Credentials,
    region: Option<String>,
    instance: Option<String>,
    /// `Some("")`: in no group.
    group: Option<String>,
    /// The group came from the instance tag.
    tagged: bool,
    api: Option<Api>,
    /// This process detached the instance already.
    detached: bool,
    shared: Arc<Shared>,
    on_words: String,
}

fn transport(message: String) -> ApiError {
    ApiError {
        code: "transport".to_string(),
        message,
        status: 0,
    }
}

impl Worker {
    fn run(mut self) {
        // Start-up: what a notice will need, found now (logged once, either way).
        match self.ready() {
            Ok(()) => info!(
                "detach from the auto scaling group is on",
                on = self.on_words,
                group = self.group.as_deref().unwrap_or_default(),
                group_from = if self.tagged {
                    "instance-tag"
                } else {
                    "DescribeAutoScalingInstances"
                },
                region = self.region.as_deref().unwrap_or_default(),
                credentials = self.creds.source()
            ),
            Err(e) => warn!(
                "detach from the auto scaling group is on, but not ready; trying again at a notice",
                on = self.on_words,
                credentials = self.creds.source(),
                error = e
            ),
        }
        loop {
            let (id, until) = {
                let mut jobs = lock(&self.shared.jobs);
                while jobs.is_empty() {
                    jobs = self
                        .shared
                        .wake
                        .wait(jobs)
                        .unwrap_or_else(|p| p.into_inner());
                }
                jobs.remove(0)
            };
            let outcome = self.detach(&id, until);
            lock(&self.shared.done).push((id, outcome));
        }
    }

    /// One metadata value (200), else an error naming the path.
    fn imds_text(&self, path: &str) -> Result<Option<String>, ApiError> {
        let a = self.imds.get(path).map_err(transport)?;
        Ok((a.status == 200).then(|| a.text()))
    }

    /// Instance id, region and group, each found once.
    fn ready(&mut self) -> Result<(), ApiError> {
        if self.instance.is_none() {
            let id =
                crate::cloud::clean_value(&self.imds_text(INSTANCE_ID_PATH)?.unwrap_or_default());
            // Printable (`clean_value`), `i-` and 8 or 17 hex digits.
            if !id.starts_with("i-") || !matches!(id.len(), 10 | 19) {
                return Err(transport(format!("{INSTANCE_ID_PATH}: no instance id")));
            }
            self.instance = Some(id);
        }
        if self.region.is_none() {
            let r = match self.region_env.clone() {
                Some(r) => r,
                None => self
                    .imds_text(REGION_PATH)?
                    .filter(|r| awsapi::valid_region(r))
                    .ok_or_else(|| {
                        transport(format!("{REGION_PATH}: no region (set AWS_REGION)"))
                    })?,
            };
            self.region = Some(r);
        }
        if self.group.is_none() {
            let tag = self
                .imds_text(GROUP_TAG_PATH)?
                .filter(|g| !g.is_empty() && g.len() <= 255 && !g.contains(char::is_control));
            self.tagged = tag.is_some();
            let group = match tag {
                Some(g) => g,
                None => {
                    let instance = self.instance.clone().unwrap_or_default();
                    let answer = self.call(&[
                        ("Action", "DescribeAutoScalingInstances"),
                        ("Version", "2011-01-01"),
                        ("InstanceIds.member.1", &instance),
                    ])?;
                    // One member at most: the instance asked about.
                    let group = match crate::xml::text(&answer, "InstanceId") {
                        Some(id) if id.trim() == instance => {
                            crate::xml::text(&answer, "AutoScalingGroupName")
                                .map(|g| g.trim().to_string())
                                .unwrap_or_default()
                        }
                        _ => String::new(),
                    };
                    if group.is_empty() {
                        info!(
                            "this instance is in no auto scaling group; DETACH_ASG has nothing to do",
                            instance = instance
                        );
                    }
                    group
                }
            };
            self.group = Some(group);
        }
        Ok(())
    }

    /// One signed Auto Scaling call; expired credentials are fetched again once.
    fn call(&mut self, params: &[(&str, &str)]) -> Result<String, ApiError> {
        let region = self.region.clone().unwrap_or_default();
        if self.api.is_none() {
            let url = self
                .autoscaling_url
                .clone()
                .unwrap_or_else(|| awsapi::default_url("autoscaling", &region));
            self.api =
                Some(
                    Api::new(&url, "autoscaling", &region).map_err(|message| ApiError {
                        code: "configuration".to_string(),
                        message,
                        status: 400,
                    })?,
                );
        }
        let mut expired = false;
        loop {
            let keys = self.creds.keys(&region)?;
            let api = self.api.as_mut().expect("built above");
            match api.call(params, Some(&keys), &[], CALL_TIMEOUT) {
                Err(e) if !expired && e.code.starts_with("ExpiredToken") => {
                    self.creds.invalidate();
                    expired = true;
                }
                other => return other,
            }
        }
    }

    /// Until done, refused, or `until`.
    fn detach(&mut self, id: &str, until: Instant) -> Outcome {
        if self.detached || self.group.as_deref() == Some("") {
            // Out already (for an earlier notice), or in no group (logged once).
            return Ok(());
        }
        let started = Instant::now();
        let mut backoff = Duration::from_secs(1);
        let mut attempts = 0u32;
        let e = loop {
            attempts += 1;
            let result = self.ready().and_then(|()| {
                let instance = self.instance.clone().unwrap_or_default();
                let group = self.group.clone().unwrap_or_default();
                if group.is_empty() {
                    return Ok(());
                }
                self.call(&[
                    ("Action", "DetachInstances"),
                    ("Version", "2011-01-01"),
                    ("InstanceIds.member.1", &instance),
                    ("AutoScalingGroupName", &group),
                    ("ShouldDecrementDesiredCapacity", "false"),
                ])
                .map(|_| {
                    self.detached = true;
                    info!(
                        "detached this instance from its auto scaling group; the group launches a replacement now",
                        notice = id,
                        group = group,
                        instance = instance,
                        desired_capacity = "unchanged",
                        ms = started.elapsed().as_millis()
                    );
                })
            });
            match result {
                Ok(()) => return Ok(()),
                // Out of the group already (detached by hand, or by an earlier run).
                Err(e) if e.code == "ValidationError" && e.message.contains("not part of") => {
                    info!(
                        "the instance is not in its auto scaling group any more",
                        notice = id,
                        detail = e.message
                    );
                    self.detached = true;
                    return Ok(());
                }
                Err(e)
                    if e.is_retryable()
                        && until.saturating_duration_since(Instant::now()) > backoff =>
                {
                    warn!(
                        "detach from the auto scaling group failed; retrying",
                        notice = id,
                        error = e,
                        retry_in_s = backoff.as_secs()
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => break e,
            }
        };
        let failures = self.shared.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let denied = e.code.starts_with("AccessDenied") || e.code == "UnauthorizedOperation";
        error!(
            "could not detach this instance from its auto scaling group; the drain goes on",
            notice = id,
            group = self.group.as_deref().unwrap_or("unknown"),
            error = e,
            attempts = attempts,
            hint = if denied {
                "the AWS role needs autoscaling:DetachInstances and autoscaling:DescribeAutoScalingInstances (README)"
            } else if e.is_retryable() {
                "gave up at the notice's deadline"
            } else {
                "not retried"
            },
            detach_failures_total = failures
        );
        Err((self.group.clone().filter(|g| !g.is_empty()), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_notice_is_handed_over_once_and_its_outcome_recorded() {
        use crate::decision::{Entry, Sent, Status};
        use crate::notice::{Action, Undo};
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let entry = |id: &str, source: &str, kind: Kind, status: Status| Entry {
            id: id.to_string(),
            source: source.to_string(),
            kind,
            detail: "terminate".to_string(),
            action: Action::Drain,
            status,
            seen: t,
            acted: Some(t),
            act_at: None,
            deadline: Some(t + Duration::from_secs(120)),
            force: true,
            undo: Undo::Never,
            sent: Sent::default(),
        };
        let mut ledger = vec![
            entry("spot", "aws-spot", Kind::SpotInterruption, Status::Active),
            entry("reb", "aws-rebalance", Kind::Rebalance, Status::Active),
            entry("later", "aws-spot", Kind::SpotInterruption, Status::Pending),
            entry("old", "aws-spot", Kind::SpotInterruption, Status::Drained),
        ];
        ledger[3].sent.detached = true;
        let mut d = Detacher {
            on: parse_on("").unwrap(),
            shared: Arc::new(Shared::default()),
            requested: Vec::new(),
        };
        assert!(d.step(&mut ledger, t).is_empty());
        let jobs: Vec<String> = lock(&d.shared.jobs)
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(jobs, ["spot"], "in force, wanted, not done yet");
        d.step(&mut ledger, t);
        assert_eq!(lock(&d.shared.jobs).len(), 1, "handed over once");
        lock(&d.shared.done).push((
            "spot".to_string(),
            Err((Some("g".into()), "AccessDenied".into())),
        ));
        let told = d.step(&mut ledger, t);
        assert_eq!(told.len(), 1);
        assert_eq!(
            (
                told[0].kind,
                told[0].group.as_deref(),
                told[0].error.as_str()
            ),
            (Kind::SpotInterruption, Some("g"), "AccessDenied")
        );
        assert!(ledger[0].sent.detached && !ledger[1].sent.detached);
        // A success is recorded and told to no one.
        ledger.push(entry(
            "spot2",
            "aws-spot",
            Kind::SpotInterruption,
            Status::Active,
        ));
        d.step(&mut ledger, t);
        lock(&d.shared.done).push(("spot2".to_string(), Ok(())));
        assert!(d.step(&mut ledger, t).is_empty());
        assert!(ledger[4].sent.detached);
    }

    #[test]
    fn which_notices_detach() {
        let spot_only = parse_on("").unwrap();
        let all =
            parse_on("rebalance-recommendation, scheduled-maintenance,spot-interruption").unwrap();
        let cases: &[(&str, Kind, &str, bool, bool)] = &[
            // source, kind, detail, with the default, with everything on
            ("aws-spot", Kind::SpotInterruption, "terminate", true, true),
            ("aws-spot", Kind::SpotInterruption, "stop", true, true),
            (
                "notice-url",
                Kind::SpotInterruption,
                "terminate",
                true,
                true,
            ),
            ("aws-rebalance", Kind::Rebalance, "", false, true),
            (
                "aws-scheduled",
                Kind::ScheduledMaintenance,
                "instance-stop",
                false,
                true,
            ),
            (
                "aws-scheduled",
                Kind::ScheduledMaintenance,
                "instance-retirement",
                false,
                true,
            ),
            (
                "aws-scheduled",
                Kind::ScheduledMaintenance,
                "system-reboot",
                false,
                false,
            ),
            (
                "aws-scheduled",
                Kind::ScheduledMaintenance,
                "instance-reboot",
                false,
                false,
            ),
            (
                "aws-scheduled",
                Kind::ScheduledMaintenance,
                "system-maintenance",
                false,
                false,
            ),
            ("aws-asg", Kind::Termination, "Terminated", false, false),
            (
                "gcp-preempted",
                Kind::SpotInterruption,
                "TRUE",
                false,
                false,
            ),
            ("azure", Kind::SpotInterruption, "Preempt", false, false),
        ];
        for (source, kind, detail, dflt, every) in cases {
            assert_eq!(
                wants(&spot_only, source, *kind, detail),
                *dflt,
                "{source} {detail} default"
            );
            assert_eq!(
                wants(&all, source, *kind, detail),
                *every,
                "{source} {detail} all"
            );
        }
        assert_eq!(
            on_words(&all),
            "spot-interruption,rebalance-recommendation,scheduled-maintenance"
        );
        assert!(parse_on("termination").unwrap_err().contains("Terminating"));
        assert_eq!(parse_on("rebalance").unwrap_err(), "\"rebalance\"");
    }
}
