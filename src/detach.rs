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

use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::awsapi::{self, Api, ApiError, Env};
use crate::cloud::aws::Imds;
use crate::credentials::Credentials;
use crate::decision::{Entry, Ledger};
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

/// How one notice's detach ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Detached {
        group: String,
    },
    /// Detached already (for an earlier notice), or AWS says it is not in the group any more.
    AlreadyOut,
    NotInGroup,
    Failed {
        group: Option<String>,
        error: String,
    },
}

/// A finished detach the loop has not recorded yet.
#[derive(Debug, Clone)]
pub struct Done {
    pub id: String,
    pub outcome: Outcome,
}

/// A failure to tell people about.
#[derive(Debug, Clone)]
pub struct Failure {
    pub entry: Entry,
    pub group: Option<String>,
    pub error: String,
}

struct Job {
    id: String,
    until: Instant,
}

/// Counters, for logs (and metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub detached: u64,
    pub failures: u64,
}

/// The loop's handle on the worker.
pub struct Detacher {
    on: Vec<Kind>,
    tx: Sender<Job>,
    done: Arc<Mutex<Vec<Done>>>,
    counts: Arc<Mutex<Counts>>,
    requested: HashSet<String>,
}

impl Detacher {
    /// Starts the worker; it finds the group and credentials at once (in the background), so
    /// a notice costs one call.
    pub fn spawn(
        env: Env,
        on: Vec<Kind>,
        imds_url: &str,
        imds_timeout: Duration,
    ) -> std::io::Result<Detacher> {
        let (tx, rx) = mpsc::channel();
        let done = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Mutex::new(Counts::default()));
        let imds = Arc::new(Imds::new(imds_url, imds_timeout));
        let worker = Worker {
            creds: Credentials::new(
                env.source.clone(),
                env.sts_url.clone(),
                imds.clone(),
                CALL_TIMEOUT,
            ),
            imds,
            env,
            region: None,
            instance: None,
            group: None,
            api: None,
            detached: false,
            done: done.clone(),
            counts: counts.clone(),
            on_words: on_words(&on),
        };
        std::thread::Builder::new()
            .name("asg-detach".to_string())
            .spawn(move || worker.run(rx))?;
        Ok(Detacher {
            on,
            tx,
            done,
            counts,
            requested: HashSet::new(),
        })
    }

    pub fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the worker every notice in force that wants a detach and has none recorded yet,
    /// and records the finished ones (`sent.detached`). Returns the failures to tell. Never
    /// blocks.
    pub fn step(&mut self, ledger: &mut Ledger, now: SystemTime) -> Vec<Failure> {
        let finished: Vec<Done> =
            std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()));
        let mut told = Vec::new();
        for d in finished {
            let Some(e) = ledger.iter_mut().find(|e| e.id == d.id) else {
                continue;
            };
            e.sent.detached = true;
            if let Outcome::Failed { group, error } = d.outcome {
                told.push(Failure {
                    entry: e.clone(),
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
            self.requested.insert(e.id.clone());
            let _ = self.tx.send(Job {
                id: e.id.clone(),
                until: Instant::now() + left,
            });
        }
        told
    }
}

enum Group {
    In { name: String, from: &'static str },
    None,
}

struct Worker {
    imds: Arc<Imds>,
    env: Env,
    creds: Credentials,
    region: Option<String>,
    instance: Option<String>,
    group: Option<Group>,
    api: Option<Api>,
    /// This process detached the instance already.
    detached: bool,
    done: Arc<Mutex<Vec<Done>>>,
    counts: Arc<Mutex<Counts>>,
    on_words: String,
}

/// A failure of one attempt: retry or give up.
struct Attempt {
    error: ApiError,
}

impl From<ApiError> for Attempt {
    fn from(error: ApiError) -> Attempt {
        Attempt { error }
    }
}

fn imds_error(e: String) -> Attempt {
    Attempt {
        error: ApiError {
            code: "transport".to_string(),
            message: e,
            status: 0,
        },
    }
}

impl Worker {
    fn run(mut self, rx: Receiver<Job>) {
        self.prepare();
        while let Ok(job) = rx.recv() {
            let outcome = self.detach(&job);
            self.done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Done {
                    id: job.id,
                    outcome,
                });
        }
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) -> Counts {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c);
        *c
    }

    /// Start-up: what a notice will need, found now so that the notice costs one call.
    fn prepare(&mut self) {
        let ready = self
            .instance()
            .and_then(|_| self.region())
            .and_then(|_| self.group());
        match ready {
            Ok(()) => {
                let (group, from) = match &self.group {
                    Some(Group::In { name, from }) => (name.as_str(), *from),
                    _ => ("none", "-"),
                };
                info!(
                    "detach from the auto scaling group is on",
                    on = self.on_words,
                    group = group,
                    group_from = from,
                    region = self.region.as_deref().unwrap_or_default(),
                    credentials = self.creds.source()
                );
            }
            Err(a) => warn!(
                "detach from the auto scaling group is on, but it is not ready yet; trying again when a notice comes",
                on = self.on_words,
                credentials = self.creds.source(),
                error = a.error
            ),
        }
    }

    fn instance(&mut self) -> Result<String, Attempt> {
        if let Some(i) = &self.instance {
            return Ok(i.clone());
        }
        let a = self.imds.get(INSTANCE_ID_PATH).map_err(imds_error)?;
        let id = a.text();
        let ok = a.status == 200
            && id.starts_with("i-")
            && id.len() <= 19
            && id[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(imds_error(format!(
                "{INSTANCE_ID_PATH}: expected an instance id, got HTTP {}",
                a.status
            )));
        }
        self.instance = Some(id.clone());
        Ok(id)
    }

    fn region(&mut self) -> Result<String, Attempt> {
        if let Some(r) = self.region.clone().or_else(|| self.env.region.clone()) {
            self.region = Some(r.clone());
            return Ok(r);
        }
        let a = self.imds.get(REGION_PATH).map_err(imds_error)?;
        let r = a.text();
        if a.status != 200 || !awsapi::valid_region(&r) {
            return Err(imds_error(format!(
                "{REGION_PATH}: expected a region, got HTTP {} (set AWS_REGION)",
                a.status
            )));
        }
        self.region = Some(r.clone());
        Ok(r)
    }

    fn api(&mut self) -> Result<&mut Api, Attempt> {
        if self.api.is_none() {
            let region = self.region()?;
            let url = self
                .env
                .autoscaling_url
                .clone()
                .unwrap_or_else(|| awsapi::default_url("autoscaling", &region));
            let api = Api::new(&url, "autoscaling", &region).map_err(|e| Attempt {
                error: ApiError {
                    code: "configuration".to_string(),
                    message: e,
                    status: 400,
                },
            })?;
            self.api = Some(api);
        }
        Ok(self.api.as_mut().expect("built above"))
    }

    /// One signed Auto Scaling call; expired credentials are fetched again once.
    fn call(&mut self, params: &[(&str, &str)]) -> Result<Vec<crate::xml::Leaf>, Attempt> {
        let region = self.region()?;
        for attempt in 0..2 {
            let keys = self.creds.keys(&region)?;
            let result = self.api()?.call(params, Some(&keys), &[], CALL_TIMEOUT);
            match result {
                Err(e)
                    if attempt == 0
                        && matches!(e.code.as_str(), "ExpiredToken" | "ExpiredTokenException") =>
                {
                    self.creds.invalidate();
                }
                other => return other.map_err(Attempt::from),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// The group: the instance tag from the metadata service, else DescribeAutoScalingInstances.
    fn group(&mut self) -> Result<(), Attempt> {
        if self.group.is_some() {
            return Ok(());
        }
        let instance = self.instance()?;
        let a = self.imds.get(GROUP_TAG_PATH).map_err(imds_error)?;
        if a.status == 200 {
            let name = a.text();
            if !name.is_empty() && name.len() <= 255 && !name.contains(char::is_control) {
                self.group = Some(Group::In {
                    name,
                    from: "instance-tag",
                });
                return Ok(());
            }
        }
        let leaves = self.call(&[
            ("Action", "DescribeAutoScalingInstances"),
            ("Version", "2011-01-01"),
            ("InstanceIds.member.1", &instance),
        ])?;
        let members = crate::xml::all(&leaves, &["AutoScalingInstances", "member", "InstanceId"])
            .zip(crate::xml::all(
                &leaves,
                &["AutoScalingInstances", "member", "AutoScalingGroupName"],
            ));
        let mut found = None;
        for (id, group) in members {
            if id.trim() == instance {
                found = Some(group.trim().to_string());
            }
        }
        self.group = Some(match found {
            Some(name) if !name.is_empty() => Group::In {
                name,
                from: "DescribeAutoScalingInstances",
            },
            _ => {
                info!(
                    "this instance is in no auto scaling group; DETACH_ASG has nothing to do",
                    instance = instance
                );
                Group::None
            }
        });
        Ok(())
    }

    fn detach(&mut self, job: &Job) -> Outcome {
        if self.detached {
            info!(
                "instance already detached from its auto scaling group for an earlier notice",
                notice = job.id
            );
            return Outcome::AlreadyOut;
        }
        if matches!(self.group, Some(Group::None)) {
            return Outcome::NotInGroup;
        }
        self.count(|c| c.requests += 1);
        let started = Instant::now();
        let mut backoff = Duration::from_secs(1);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let e = match self.try_detach(&job.id) {
                Ok(outcome) => {
                    if let Outcome::Detached { group } = &outcome {
                        let c = self.count(|c| c.detached += 1);
                        info!(
                            "detached this instance from its auto scaling group; the group launches a replacement now",
                            notice = job.id,
                            group = group,
                            instance = self.instance.as_deref().unwrap_or_default(),
                            desired_capacity = "unchanged",
                            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                            detached_total = c.detached
                        );
                    }
                    return outcome;
                }
                Err(a) => a.error,
            };
            let left = job.until.saturating_duration_since(Instant::now());
            if e.is_retryable() && left > backoff {
                warn!(
                    "detach from the auto scaling group failed; retrying",
                    notice = job.id,
                    error = e,
                    attempt = attempts,
                    retry_in = crate::time::format_duration(backoff)
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            let group = match &self.group {
                Some(Group::In { name, .. }) => Some(name.clone()),
                _ => None,
            };
            let c = self.count(|c| c.failures += 1);
            let hint = if matches!(
                e.code.as_str(),
                "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
            ) {
                "the handler's AWS role needs autoscaling:DetachInstances and autoscaling:DescribeAutoScalingInstances (README: Detach from the Auto Scaling group)"
            } else if e.is_retryable() {
                "gave up at the notice's deadline"
            } else {
                "not retried"
            };
            error!(
                "could not detach this instance from its auto scaling group; the drain goes on",
                notice = job.id,
                group = group.as_deref().unwrap_or("unknown"),
                error = e,
                attempts = attempts,
                hint = hint,
                detach_failures_total = c.failures
            );
            return Outcome::Failed {
                group,
                error: e.to_string(),
            };
        }
    }

    fn try_detach(&mut self, notice: &str) -> Result<Outcome, Attempt> {
        let instance = self.instance()?;
        self.group()?;
        let group = match &self.group {
            Some(Group::In { name, .. }) => name.clone(),
            _ => return Ok(Outcome::NotInGroup),
        };
        info!(
            "detaching this instance from its auto scaling group",
            notice = notice,
            group = group,
            instance = instance
        );
        let result = self.call(&[
            ("Action", "DetachInstances"),
            ("Version", "2011-01-01"),
            ("InstanceIds.member.1", &instance),
            ("AutoScalingGroupName", &group),
            ("ShouldDecrementDesiredCapacity", "false"),
        ]);
        match result {
            Ok(_) => {
                self.detached = true;
                Ok(Outcome::Detached { group })
            }
            Err(a)
                if a.error.code == "ValidationError" && a.error.message.contains("not part of") =>
            {
                info!(
                    "auto scaling says this instance is not in the group any more; nothing to detach",
                    notice = notice,
                    group = group,
                    detail = a.error.message
                );
                self.detached = true;
                Ok(Outcome::AlreadyOut)
            }
            Err(a) => Err(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
