//! What the hot paths (the webhook's session and audience checks) know about the database being
//! unreachable, so that they can answer from a stale cached value at once instead of each
//! waiting for the pool's acquire timeout.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the last read on a hot path failed, and whether a background read is finding out
/// if the database is back. One is shared by the webhook's reads (sessions and resources).
#[derive(Debug, Default)]
pub struct Outage {
    failing: AtomicBool,
    probing: AtomicBool,
}

impl Outage {
    /// The last read failed and none has succeeded since: a caller with a stale answer should
    /// give it now and [`Outage::probe`] in the background.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Records how a read went; logs when the database goes away and when it comes back.
    pub fn record<T, E: Display>(&self, what: &'static str, result: &Result<T, E>) {
        match result {
            Ok(_) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(what, "database reachable again");
                }
            }
            Err(err) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(what, error = %err, "database unreachable: answering from recent reads where allowed");
                }
            }
        }
    }

    /// Runs `read` (which should [`Outage::record`] its outcome) in the background, unless a
    /// read started this way is still running: one probe at a time, not one per request.
    pub fn probe(self: &Arc<Self>, read: impl Future<Output = ()> + Send + 'static) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let outage = Arc::clone(self);
        tokio::spawn(async move {
            // Cleared even if the read panics, or no later probe could ever start.
            let _done = ProbeDone(outage);
            read.await;
        });
    }
}

struct ProbeDone(Arc<Outage>);

impl Drop for ProbeDone {
    fn drop(&mut self) {
        self.0.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_probe_at_a_time_and_failures_clear_on_success() {
        let outage = Arc::new(Outage::default());
        assert!(!outage.failing());
        outage.record::<(), _>("test", &Err("refused"));
        assert!(outage.failing());

        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<u8>();
        let first = started_tx.clone();
        outage.probe(async move {
            first.send(1).unwrap();
            let _ = released.await;
        });
        assert_eq!(started.recv().await, Some(1));
        let second = started_tx.clone();
        outage.probe(async move { second.send(2).unwrap() });
        release.send(()).unwrap();
        while outage.probing.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        assert!(started.try_recv().is_err(), "a probe started while another ran");
        let third = started_tx.clone();
        outage.probe(async move { third.send(3).unwrap() });
        assert_eq!(started.recv().await, Some(3), "a probe could start once the first had ended");

        outage.record::<(), &str>("test", &Ok(()));
        assert!(!outage.failing());
    }
}
