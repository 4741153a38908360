//! Clouds: each module turns what its metadata service says into [`Notice`]s. The loop knows
//! no cloud: it runs each cloud's [`Watcher`]s, one thread each, and reads their
//! [`Observation`]s from a channel.
//!
//! - `aws`: spot instance-action, rebalance recommendation, scheduled events, ASG lifecycle
//!   (IMDSv2 with v1 fallback), and the seed's `NOTICE_URL` mode.
//!
//! A watcher is one signal: one metadata path polled on its own period, or one hanging GET. A
//! failed poll reports an error and the loop keeps that source's last good answer, so an outage
//! of the metadata service never undoes anything.

pub mod aws;

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

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
        .spawn(move || loop {
            crate::metrics::set_source(w.name());
            let result = w.poll();
            crate::metrics::polled(result.is_ok());
            let pause = if result.is_ok() {
                w.period()
            } else {
                w.retry_period()
            };
            let obs = Observation {
                source: w.name(),
                result,
                at: Instant::now(),
            };
            if tx.send(T::from(obs)).is_err() {
                return;
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
