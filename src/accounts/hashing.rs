//! Password hashing off the async runtime, with bounded concurrency.
//!
//! One Django-default hash costs ~200 ms of CPU and an Argon2 hash 100 MiB of memory, so hashes
//! run on the blocking pool behind a semaphore sized to the cores. The permit travels with the
//! blocking job: a client that disconnects mid-login does not free a slot its hash still uses.
//!
//! The queue in front of the semaphore is bounded too: when it is full a request is refused at
//! once ([`HashingError::Busy`], answered 503 with `Retry-After`) instead of waiting without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::django::hashers::{self, HashError, HasherConfig, Verification};

use super::Password;

#[derive(Clone, Debug)]
pub struct Hashing {
    config: Arc<HasherConfig>,
    permits: Arc<Semaphore>,
    max_waiting: usize,
    waiting: Arc<AtomicUsize>,
    computed: Arc<AtomicU64>,
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
            waiting: Arc::new(AtomicUsize::new(0)),
            computed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// At most `max_waiting` requests wait for a slot; more are refused with `Busy`.
    pub fn with_queue(mut self, max_waiting: usize) -> Self {
        self.max_waiting = max_waiting;
        self
    }

    /// How many hashes have been computed (verifications, new hashes and fakes).
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> &HasherConfig {
        &self.config
    }

    async fn run<T, F>(&self, job: F) -> Result<T, HashingError>
    where
        T: Send + 'static,
        F: FnOnce(&HasherConfig) -> T + Send + 'static,
    {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashingError::Busy);
                }
                let acquired = Arc::clone(&self.permits).acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                acquired.map_err(|_| HashingError::Failed)?
            }
        };
        let config = Arc::clone(&self.config);
        let computed = Arc::clone(&self.computed);
        tokio::task::spawn_blocking(move || {
            let result = job(&config);
            computed.fetch_add(1, Ordering::Relaxed);
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
