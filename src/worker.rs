//! A background thread that runs jobs one after another from a bounded queue. It starts with
//! the first job, so an idle handler runs none; `submit` never blocks. Slack, each webhook and
//! the Kubernetes Events each have one, so a slow receiver holds up nobody else.

use std::sync::mpsc::{self, SyncSender};
use std::sync::Mutex;

pub type Job = Box<dyn FnOnce() + Send>;

/// The stack of the threads that talk to the Kubernetes API, Slack and webhooks (TLS, JSON):
/// Rust's usual 2 MiB, given explicitly because the process default is made small for
/// minreq's request threads ([`crate::metadata::small_default_stacks`]).
pub const STACK: usize = 2 << 20;

/// `scope.spawn` with a [`STACK`]-sized stack.
pub fn spawn_scoped<'s, 'e, T: Send + 's>(
    scope: &'s std::thread::Scope<'s, 'e>,
    f: impl FnOnce() -> T + Send + 's,
) -> std::thread::ScopedJoinHandle<'s, T> {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn_scoped(scope, f)
        .expect("failed to spawn thread")
}

pub struct Worker {
    name: &'static str,
    queue: usize,
    tx: Mutex<Option<SyncSender<Job>>>,
}

impl Worker {
    pub fn new(name: &'static str, queue: usize) -> Worker {
        Worker {
            name,
            queue,
            tx: Mutex::new(None),
        }
    }

    /// Queues `job`; false when the queue is full (or no thread could be started).
    pub fn submit(&self, job: Job) -> bool {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.is_none() {
            let (t, rx) = mpsc::sync_channel::<Job>(self.queue);
            let started = std::thread::Builder::new()
                .name(self.name.to_string())
                .stack_size(STACK)
                .spawn(move || rx.into_iter().for_each(|job| job()));
            if started.is_err() {
                return false;
            }
            *tx = Some(t);
        }
        tx.as_ref().is_some_and(|t| t.try_send(job).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn runs_jobs_in_order_and_refuses_when_full() {
        let w = Worker::new("test", 1);
        let (done, seen) = channel();
        let (hold, release) = channel::<()>();
        let d = done.clone();
        assert!(w.submit(Box::new(move || {
            d.send(0).unwrap();
            let _ = release.recv();
            d.send(1).unwrap();
        })));
        // The first job runs (and waits); one more fits in the queue, the next does not.
        assert_eq!(seen.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
        let d = done.clone();
        assert!(w.submit(Box::new(move || d.send(2).unwrap())));
        assert!(!w.submit(Box::new(|| {})), "full");
        hold.send(()).unwrap();
        assert_eq!(seen.recv().unwrap(), 1);
        assert_eq!(seen.recv().unwrap(), 2);
    }
}
