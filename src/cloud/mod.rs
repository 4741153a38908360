//! Clouds: each module turns what its metadata service says into [`Notice`]s. The loop knows
//! no cloud: it runs each cloud's [`Watcher`]s, one thread each, and reads their
//! [`Observation`]s from a channel.
//!
//! - `aws`: spot instance-action, rebalance recommendation, scheduled events, ASG lifecycle
//!   (IMDSv2 with v1 fallback), and the seed's `NOTICE_URL` mode.
//! - `gcp`: `instance/preempted` and `instance/maintenance-event`, each a hanging GET.
//! - `azure`: Scheduled Events (Preempt, Terminate, Reboot, Redeploy, Freeze), approved once
//!   our drain is over.
//! - `alibaba`: `instance/spot/termination-time` (hardened mode with fallback).
//! - `session`: the IMDSv2-style token session AWS and Alibaba share.
//!
//! A watcher is one signal: one metadata path polled on its own period, or one hanging GET. A
//! failed poll reports an error and the loop keeps that source's last good answer, so an outage
//! of the metadata service never undoes anything.
//!
//! Which cloud ([`choose`]): `NOTICE_URL` is the seed's AWS mode. Else `CLOUD`, or with `auto`
//! the Node's `spec.providerID` (`aws://`, `gce://`, `azure://`, `alicloud://`); without one,
//! every metadata service is probed once, at the same time, with its own header and the
//! metadata timeout, and the first that answers as itself in the order GCP, Azure, Alibaba,
//! AWS wins (AWS, the seed's cloud, also when none answers). An explicit `CLOUD` whose metadata
//! service does not answer while another cloud's does is a configuration error.

pub mod alibaba;
pub mod aws;
pub mod azure;
pub mod gcp;
pub mod session;

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::config::{self, Config};
use crate::decision::Entry;
use crate::notice::{Notice, Provider};

/// Instance facts for messages; "unknown" where the metadata service did not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
}

pub const UNKNOWN: &str = "unknown";

impl Identity {
    pub fn unknown() -> Identity {
        Identity {
            instance_id: UNKNOWN.to_string(),
            instance_type: UNKNOWN.to_string(),
            zone: UNKNOWN.to_string(),
        }
    }

    pub fn is_complete(&self) -> bool {
        [&self.instance_id, &self.instance_type, &self.zone]
            .iter()
            .all(|v| v.as_str() != UNKNOWN)
    }

    /// Keeps what `other` knows and we do not.
    pub fn fill_from(&mut self, other: Identity) {
        for (mine, theirs) in [
            (&mut self.instance_id, other.instance_id),
            (&mut self.instance_type, other.instance_type),
            (&mut self.zone, other.zone),
        ] {
            if mine == UNKNOWN {
                *mine = theirs;
            }
        }
    }
}

/// A metadata value fit for a message: printable, short; else "unknown".
pub fn clean_value(v: &str) -> String {
    let v = v.trim();
    if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) {
        v.to_string()
    } else {
        UNKNOWN.to_string()
    }
}

/// One signal source.
pub trait Watcher: Send {
    /// Stable name for logs and metrics: `aws-spot`, `aws-rebalance`, …
    fn name(&self) -> &'static str;
    /// One poll, bounded by the watcher's own timeout: the notices this signal shows now.
    fn poll(&mut self) -> Result<Vec<Notice>, String>;
    /// Pause between the end of one poll and the next (zero for a hanging GET).
    fn period(&self) -> Duration;
    /// Pause after a failed poll.
    fn retry_period(&self) -> Duration {
        self.period()
    }
}

/// A cloud: who it is, what the instance is, and its watchers.
pub trait Cloud: Send + Sync {
    fn provider(&self) -> Provider;
    /// Instance id, type and zone, each read with the metadata timeout. Never fails.
    fn identity(&self) -> Identity;
    /// The signal sources the configuration turns on.
    fn watchers(&self) -> Vec<Box<dyn Watcher>>;
    /// What is polled, for the start-up log: `polling <url> every 1 second(s)`.
    fn polling(&self) -> String;
    /// Tells the cloud that our drain for this notice has finished (Azure: approve the event
    /// so it starts sooner). `None`: nothing to tell for it.
    fn acknowledge(&self, _entry: &Entry) -> Option<Result<(), String>> {
        None
    }
}

/// The cloud a Node's `spec.providerID` names.
pub fn from_provider_id(id: &str) -> Option<Provider> {
    match id.trim().split_once("://")?.0 {
        "aws" => Some(Provider::Aws),
        "gce" => Some(Provider::Gcp),
        "azure" => Some(Provider::Azure),
        "alicloud" => Some(Provider::Alibaba),
        _ => None,
    }
}

/// The probe order: AWS last (seed compatibility: it wins only when no other cloud answers).
pub const PROBE_ORDER: [Provider; 4] = [
    Provider::Gcp,
    Provider::Azure,
    Provider::Alibaba,
    Provider::Aws,
];

/// One request (or two, with a token) to `p`'s metadata service: does it answer as `p`?
fn probe(cfg: &Config, p: Provider) -> bool {
    let t = cfg.imds_timeout;
    match p {
        Provider::Gcp => gcp::probe(&cfg.gcp_metadata_url, t),
        Provider::Azure => azure::probe(&cfg.azure_metadata_url, t),
        Provider::Alibaba => alibaba::probe(&cfg.alibaba_metadata_url, t),
        Provider::Aws | Provider::NoticeUrl => aws::probe(&cfg.imds_url, t),
    }
}

/// Probes every metadata service at once (one timeout in all): those that answer as themselves,
/// in [`PROBE_ORDER`].
fn probe_all(cfg: &Config) -> Vec<Provider> {
    std::thread::scope(|s| {
        let handles: Vec<_> = PROBE_ORDER
            .iter()
            .map(|p| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || probe(cfg, *p))
            })
            .collect();
        // A probe whose thread could not start counts as not answering.
        PROBE_ORDER
            .iter()
            .zip(handles)
            .filter_map(|(p, h)| h.ok()?.join().ok()?.then_some(*p))
            .collect()
    })
}

/// The metadata URL setting of a cloud, for messages.
fn url_setting(p: Provider) -> &'static str {
    match p {
        Provider::Gcp => "GCP_METADATA_URL",
        Provider::Azure => "AZURE_METADATA_URL",
        Provider::Alibaba => "ALIBABA_METADATA_URL",
        Provider::Aws | Provider::NoticeUrl => "IMDS_URL",
    }
}

/// Which cloud this node is on, and why. `provider_id`: the Node's, when it could be read.
pub fn choose(
    cfg: &Config,
    provider_id: Option<&str>,
) -> Result<(Provider, String), config::Error> {
    if cfg.notice_url.is_some() {
        return match cfg.cloud {
            None | Some(Provider::Aws) => Ok((
                Provider::Aws,
                "NOTICE_URL is set: the seed's AWS mode".to_string(),
            )),
            Some(p) => Err(config::Error {
                setting: "CLOUD".to_string(),
                expected: "auto or aws with NOTICE_URL (the seed's AWS mode), or NOTICE_URL unset"
                    .to_string(),
                got: format!("{:?}", p.as_str()),
            }),
        };
    }
    if let Some(p) = cfg.cloud {
        let answering = probe_all(cfg);
        if answering.contains(&p) {
            return Ok((
                p,
                format!("CLOUD={}; its metadata service answers", p.as_str()),
            ));
        }
        if let Some(other) = answering.first() {
            return Err(config::Error {
                setting: "CLOUD".to_string(),
                expected: format!(
                    "the cloud this node runs on (the metadata service at {} does not answer as {})",
                    url_setting(p),
                    p.as_str()
                ),
                got: format!(
                    "{:?}, but the {} metadata service answers ({})",
                    p.as_str(),
                    other.as_str(),
                    url_setting(*other)
                ),
            });
        }
        return Ok((
            p,
            format!(
                "CLOUD={}; no metadata service answered yet, polling it anyway",
                p.as_str()
            ),
        ));
    }
    let id = provider_id.unwrap_or_default().trim();
    if let Some(p) = from_provider_id(id) {
        return Ok((p, format!("node spec.providerID {id}")));
    }
    let why = if id.is_empty() {
        "node has no spec.providerID".to_string()
    } else {
        format!("node spec.providerID {id} names no cloud we know")
    };
    Ok(match probe_all(cfg).first() {
        Some(p) => (
            *p,
            format!(
                "{why}; the {} metadata service answered a probe ({})",
                p.as_str(),
                url_setting(*p)
            ),
        ),
        None => (
            Provider::Aws,
            format!("{why} and no metadata service answered a probe; AWS, the default"),
        ),
    })
}

/// The cloud's implementation with its settings.
pub fn build(cfg: &Config, p: Provider) -> Box<dyn Cloud> {
    match p {
        Provider::Gcp => Box::new(gcp::Gcp::new(cfg)),
        Provider::Azure => Box::new(azure::Azure::new(cfg)),
        Provider::Alibaba => Box::new(alibaba::Alibaba::new(cfg)),
        Provider::Aws | Provider::NoticeUrl => Box::new(aws::Aws::new(
            &cfg.imds_url,
            cfg.imds_timeout,
            aws::Settings::from_config(cfg),
        )),
    }
}

/// What one watcher said on one poll.
#[derive(Debug)]
pub struct Observation {
    pub source: &'static str,
    pub result: Result<Vec<Notice>, String>,
    pub at: Instant,
}

/// Runs `w` on a thread of its own until the receiving end is gone.
pub fn spawn<T: From<Observation> + Send + 'static>(
    mut w: Box<dyn Watcher>,
    tx: Sender<T>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(w.name().to_string())
        // Watchers parse small documents; the default 2 MiB stack is never touched but for a
        // few KiB. Keep the reservation small.
        .stack_size(256 * 1024)
        .spawn(move || {
            // The notices of the last successful poll the loop was told of: an answer that
            // repeats them wakes nobody (failures are always told: the loop counts them).
            let mut told: Option<Vec<Notice>> = None;
            loop {
                crate::metrics::set_source(w.name());
                let result = w.poll();
                crate::metrics::polled(result.is_ok());
                let pause = if result.is_ok() {
                    w.period()
                } else {
                    w.retry_period()
                };
                let repeat = matches!((&result, &told), (Ok(n), Some(t)) if n == t);
                told = result.as_ref().ok().cloned();
                let obs = Observation {
                    source: w.name(),
                    result,
                    at: Instant::now(),
                };
                if !repeat && tx.send(T::from(obs)).is_err() {
                    return;
                }
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers from a script, then fails until nobody listens.
    struct Scripted(Vec<Result<Vec<Notice>, String>>);

    impl Watcher for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn poll(&mut self) -> Result<Vec<Notice>, String> {
            if self.0.is_empty() {
                Err("end".into())
            } else {
                self.0.remove(0)
            }
        }
        fn period(&self) -> Duration {
            Duration::ZERO
        }
    }

    #[test]
    fn a_repeated_answer_wakes_nobody_and_every_failure_is_told() {
        let ok = || Ok(Vec::new());
        let script = vec![ok(), ok(), ok(), Err("refused".into()), ok(), ok()];
        let (tx, rx) = std::sync::mpsc::channel::<Observation>();
        spawn(Box::new(Scripted(script)), tx).unwrap();
        let told: Vec<Result<usize, String>> = rx
            .iter()
            .take(5)
            .map(|o| o.result.map(|n| n.len()))
            .collect();
        let want = [Ok(0), Err("refused"), Ok(0), Err("end"), Err("end")];
        let want: Vec<Result<usize, String>> =
            want.into_iter().map(|r| r.map_err(String::from)).collect();
        assert_eq!(told, want);
    }

    #[test]
    fn identity_fills_gaps_only() {
        let mut a = Identity {
            instance_id: "i-1".into(),
            ..Identity::unknown()
        };
        assert!(!a.is_complete());
        a.fill_from(Identity {
            instance_id: "i-2".into(),
            instance_type: "m5.large".into(),
            zone: UNKNOWN.into(),
        });
        assert_eq!(
            (
                a.instance_id.as_str(),
                a.instance_type.as_str(),
                a.zone.as_str()
            ),
            ("i-1", "m5.large", UNKNOWN)
        );
        assert_eq!(clean_value(" us-east-1a\n"), "us-east-1a");
        assert_eq!(clean_value("<html>x y</html>"), UNKNOWN);
        assert_eq!(clean_value(""), UNKNOWN);
    }

    #[test]
    fn provider_ids() {
        let cases = [
            ("aws:///us-east-1a/i-0abc123def4567890", Some(Provider::Aws)),
            ("gce://my-proj/us-central1-a/gke-x", Some(Provider::Gcp)),
            (
                "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v/virtualMachines/3",
                Some(Provider::Azure),
            ),
            ("alicloud://cn-hangzhou.i-bp1", Some(Provider::Alibaba)),
            ("kind://docker/kind/kind-worker", None),
            ("", None),
            ("aws", None),
        ];
        for (id, want) in cases {
            assert_eq!(from_provider_id(id), want, "{id}");
        }
    }
}
