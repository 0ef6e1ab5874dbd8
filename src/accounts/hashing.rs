//! Password hashing off the async runtime, with bounded concurrency.
//!
//! One Django-default hash costs ~200 ms of CPU and an Argon2 hash 100 MiB of memory, so hashes
//! run on the blocking pool behind a semaphore sized to the cores. The permit travels with the
//! blocking job: a client that disconnects mid-login does not free a slot its hash still uses.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::django::hashers::{self, HashError, HasherConfig, Verification};

use super::Password;

#[derive(Clone, Debug)]
pub struct Hashing {
    config: Arc<HasherConfig>,
    permits: Arc<Semaphore>,
}

/// The hashing job itself died (a panic in a hasher); treated as a server fault.
#[derive(Debug, thiserror::Error)]
#[error("the password hashing task failed")]
pub struct HashingFailed;

impl Hashing {
    pub fn new(config: HasherConfig, max_concurrent: usize) -> Self {
        Hashing { config: Arc::new(config), permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }

    pub fn config(&self) -> &HasherConfig {
        &self.config
    }

    async fn run<T, F>(&self, job: F) -> Result<T, HashingFailed>
    where
        T: Send + 'static,
        F: FnOnce(&HasherConfig) -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|_| HashingFailed)?;
        let config = Arc::clone(&self.config);
        tokio::task::spawn_blocking(move || {
            let result = job(&config);
            drop(permit);
            result
        })
        .await
        .map_err(|_| HashingFailed)
    }

    /// Django's `verify_password`, including its fake runtime and `harden_runtime`.
    pub async fn verify(
        &self,
        password: &Password,
        encoded: &str,
    ) -> Result<Result<Verification, HashError>, HashingFailed> {
        let (password, encoded) = (password.clone(), encoded.to_owned());
        self.run(move |config| hashers::verify(password.expose(), &encoded, config)).await
    }

    /// A new hash with the default hasher, as Django's `make_password` writes it.
    pub async fn make(&self, password: &Password) -> Result<String, HashingFailed> {
        let password = password.clone();
        self.run(move |config| hashers::make_password(password.expose(), config)).await
    }

    /// One default-hasher hash of a random password, so that a login for an unknown user takes
    /// as long as one for a real user (Django ticket #20760).
    pub async fn fake(&self) -> Result<(), HashingFailed> {
        self.run(hashers::fake_runtime).await
    }
}
