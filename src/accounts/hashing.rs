//! Password hashing off the async runtime, with bounded concurrency.
//!
//! One Django-default hash costs ~200 ms of CPU and an Argon2 hash 100 MiB of memory, so hashes
//! run on the blocking pool behind a semaphore sized to the cores. The permit travels with the
//! blocking job: a client that disconnects mid-login does not free a slot its hash still uses.
//!
//! The queue in front of the semaphore is bounded too: when it is full a request is refused at
//! once ([`HashingError::Busy`], answered 503 with `Retry-After`) instead of waiting without end.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Semaphore;

use crate::django::hashers::{self, HashError, HasherConfig, Verification};

use super::Password;

#[derive(Clone, Debug)]
pub struct Hashing {
    config: Arc<HasherConfig>,
    permits: Arc<Semaphore>,
    max_waiting: usize,
    metrics: HashingMetrics,
}

/// The queue's own counters; `/metrics` exposes them (they are shared handles, not copies).
#[derive(Clone, Debug)]
pub struct HashingMetrics {
    /// Requests waiting for a slot now.
    pub waiting: Gauge,
    /// Hashes running now.
    pub in_progress: Gauge,
    /// Hashes computed (verifications, new hashes and fakes).
    pub computed: Counter,
    /// Seconds from asking for a slot to getting one (0 when one was free).
    pub wait_seconds: Histogram,
}

impl Default for HashingMetrics {
    fn default() -> Self {
        HashingMetrics {
            waiting: Gauge::default(),
            in_progress: Gauge::default(),
            computed: Counter::default(),
            // 1 ms to ~16 s: one hash is ~200 ms, a full queue waits a few of them.
            wait_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

/// One unit of a gauge, given back when dropped: a wait cancelled by a client that left (or a
/// request timeout) and a hasher that panics still leave the count right.
struct Held(Gauge);

impl Held {
    /// Takes a unit; also returns the value before.
    fn take(gauge: &Gauge) -> (Held, i64) {
        let before = gauge.inc();
        (Held(gauge.clone()), before)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// The hashing job itself died (a panic in a hasher); treated as a server fault.
    #[error("the password hashing task failed")]
    Failed,
    /// Every hashing slot is taken and the queue is full.
    #[error("password hashing is at capacity")]
    Busy,
}

/// Requests that may wait for a hashing slot, per slot, by default.
pub const DEFAULT_QUEUE_PER_SLOT: usize = 16;

impl Hashing {
    pub fn new(config: HasherConfig, max_concurrent: usize) -> Self {
        let slots = max_concurrent.max(1);
        Hashing {
            config: Arc::new(config),
            permits: Arc::new(Semaphore::new(slots)),
            max_waiting: slots * DEFAULT_QUEUE_PER_SLOT,
            metrics: HashingMetrics::default(),
        }
    }

    /// At most `max_waiting` requests wait for a slot; more are refused with `Busy`.
    pub fn with_queue(mut self, max_waiting: usize) -> Self {
        self.max_waiting = max_waiting;
        self
    }

    /// How many hashes have been computed (verifications, new hashes and fakes).
    pub fn computed(&self) -> u64 {
        self.metrics.computed.get()
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        usize::try_from(self.metrics.waiting.get()).unwrap_or(0)
    }

    pub fn metrics(&self) -> &HashingMetrics {
        &self.metrics
    }

    pub fn config(&self) -> &HasherConfig {
        &self.config
    }

    async fn run<T, F>(&self, job: F) -> Result<T, HashingError>
    where
        T: Send + 'static,
        F: FnOnce(&HasherConfig) -> T + Send + 'static,
    {
        let asked = Instant::now();
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let (waiting, before) = Held::take(&self.metrics.waiting);
                if usize::try_from(before).unwrap_or(0) >= self.max_waiting {
                    return Err(HashingError::Busy);
                }
                let acquired = Arc::clone(&self.permits).acquire_owned().await;
                drop(waiting);
                acquired.map_err(|_| HashingError::Failed)?
            }
        };
        self.metrics.wait_seconds.observe(asked.elapsed().as_secs_f64());
        let config = Arc::clone(&self.config);
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let (running, _) = Held::take(&metrics.in_progress);
            let result = job(&config);
            metrics.computed.inc();
            drop(running);
            drop(permit);
            result
        })
        .await
        .map_err(|_| HashingError::Failed)
    }

    /// Django's `verify_password`, including its fake runtime and `harden_runtime`; and, for a
    /// right password on an outdated hash (`must_update`), the new hash, computed in the same
    /// slot. Waiting for a second slot would queue a login that already passed behind the
    /// whole queue again, and refuse it with [`HashingError::Busy`] when that queue is full.
    pub async fn verify(
        &self,
        password: &Password,
        encoded: &str,
    ) -> Result<Result<(Verification, Option<String>), HashError>, HashingError> {
        let (password, encoded) = (password.clone(), encoded.to_owned());
        self.run(move |config| {
            let verification = hashers::verify(password.expose(), &encoded, config)?;
            let upgraded = (verification.valid && verification.must_update)
                .then(|| hashers::make_password(password.expose(), config));
            Ok((verification, upgraded))
        })
        .await
    }

    /// A new hash with the default hasher, as Django's `make_password` writes it.
    pub async fn make(&self, password: &Password) -> Result<String, HashingError> {
        let password = password.clone();
        self.run(move |config| hashers::make_password(password.expose(), config)).await
    }

    /// One default-hasher hash of a random password, so that a login for an unknown user takes
    /// as long as one for a real user (Django ticket #20760).
    pub async fn fake(&self) -> Result<(), HashingError> {
        self.run(hashers::fake_runtime).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_cancelled_wait_gives_its_place_in_the_queue_back() {
        let hashing = Hashing::new(HasherConfig { pbkdf2_iterations: 1_000 }, 1).with_queue(1);
        let slot = Arc::clone(&hashing.permits).try_acquire_owned().unwrap();
        {
            let mut queued = std::pin::pin!(hashing.fake());
            assert!(tokio::time::timeout(Duration::from_millis(20), &mut queued).await.is_err());
            assert_eq!(hashing.waiting(), 1);
            assert!(matches!(hashing.fake().await, Err(HashingError::Busy)), "the queue of one is full");
        }
        assert_eq!(hashing.waiting(), 0, "the abandoned wait left the queue");
        drop(slot);
        hashing.fake().await.unwrap();
        assert_eq!(hashing.computed(), 1);
        assert_eq!(hashing.metrics().in_progress.get(), 0);
    }
}
