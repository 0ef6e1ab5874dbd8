//! Password hashing off the async runtime, with bounded concurrency and a bounded wait.
//!
//! One Django-default hash costs a few hundred milliseconds of CPU and an Argon2 hash 100 MiB of
//! memory, so hashes run on their own threads, as many as there are slots, behind a semaphore.
//! The permit travels with the job: a client that disconnects mid-login does not free a slot its
//! hash still uses. The hashing threads run at a lower CPU priority than the rest of the server,
//! so that a login storm takes the cores only when the webhook, refreshes and the JWKS leave them.
//!
//! The queue in front of the slots is bounded in length and in time: a request is refused at once
//! ([`HashingError::Busy`], answered 503 with `Retry-After`) when the queue is full or when the
//! wait it would face (the requests ahead of it times the recent mean hash time) exceeds the
//! deadline, and a request that still waits past the deadline is refused then.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::django::hashers::{self, HashError, HasherConfig, Verification};

use super::Password;

#[derive(Clone, Debug)]
pub struct Hashing {
    config: Arc<HasherConfig>,
    permits: Arc<Semaphore>,
    slots: usize,
    max_waiting: usize,
    max_wait: Duration,
    workers: Workers,
    /// Recent mean time of one hash, in microseconds (0 until the first one).
    mean_micros: Arc<AtomicU64>,
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
    /// Requests refused a slot: the queue was full, or the wait would have been (or was) too long.
    pub refused: Counter,
    /// Seconds from asking for a slot to getting one (0 when one was free).
    pub wait_seconds: Histogram,
}

impl Default for HashingMetrics {
    fn default() -> Self {
        HashingMetrics {
            waiting: Gauge::default(),
            in_progress: Gauge::default(),
            computed: Counter::default(),
            refused: Counter::default(),
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
    /// Every hashing slot is taken and the queue is full, or the wait would pass the deadline.
    #[error("password hashing is at capacity")]
    Busy,
    /// The hashing threads could not be started.
    #[error("cannot start the password hashing threads: {0}")]
    Threads(#[source] std::io::Error),
}

/// Requests that may wait for a hashing slot, per slot, by default.
pub const DEFAULT_QUEUE_PER_SLOT: usize = 16;

/// How long a request may wait for a hashing slot, by default.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many nice steps below the server's the hashing threads run with [`HashPriority::Low`].
const LOW_PRIORITY_NICENESS: i32 = 10;

/// The CPU priority of the hashing threads, beside the server's other threads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HashPriority {
    /// The same as the rest of the server.
    Normal,
    /// Ten nice steps lower: the webhook and token endpoints get most of a busy core.
    #[default]
    Low,
    /// Linux's `SCHED_IDLE`: hashing runs on what the server's other threads (and anything
    /// else in its cgroup) leave, and gives the core up at once when a request wakes.
    Idle,
}

impl Hashing {
    /// Starts `max_concurrent` hashing threads (at least one) at `priority`; they stop when the
    /// last clone of this handle is dropped.
    pub fn new(config: HasherConfig, max_concurrent: usize, priority: HashPriority) -> Result<Self, HashingError> {
        let slots = max_concurrent.max(1);
        Ok(Hashing {
            config: Arc::new(config),
            permits: Arc::new(Semaphore::new(slots)),
            slots,
            max_waiting: slots * DEFAULT_QUEUE_PER_SLOT,
            max_wait: DEFAULT_QUEUE_TIMEOUT,
            workers: Workers::start(slots, priority).map_err(HashingError::Threads)?,
            mean_micros: Arc::new(AtomicU64::new(0)),
            metrics: HashingMetrics::default(),
        })
    }

    /// At most `max_waiting` requests wait for a slot, none longer than `max_wait`; the rest are
    /// refused with `Busy`.
    pub fn with_queue(mut self, max_waiting: usize, max_wait: Duration) -> Self {
        self.max_waiting = max_waiting;
        self.max_wait = max_wait;
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

    /// The wait a request would face with `ahead` requests queued before it and every slot busy:
    /// it starts when `ahead + 1` of the running and queued hashes have finished.
    fn expected_wait(&self, ahead: usize) -> Duration {
        let mean = Duration::from_micros(self.mean_micros.load(Ordering::Relaxed));
        mean.saturating_mul(u32::try_from(ahead + 1).unwrap_or(u32::MAX)) / u32::try_from(self.slots).unwrap_or(1)
    }

    /// Whether a request with `ahead` requests queued before it (and no free slot) is refused.
    fn refuses(&self, ahead: usize) -> bool {
        ahead >= self.max_waiting || self.expected_wait(ahead) > self.max_wait
    }

    /// Refuses at once a request that [`Hashing::reserve`] would refuse now, without queueing
    /// it: a caller can skip work, such as a database query, that a refusal would waste. Holds
    /// nothing, so that work does not keep a slot from the requests behind it.
    pub fn check_capacity(&self) -> Result<(), HashingError> {
        if self.permits.available_permits() == 0 && self.refuses(self.waiting()) {
            self.metrics.refused.inc();
            return Err(HashingError::Busy);
        }
        Ok(())
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashingError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        let (waiting, before) = Held::take(&self.metrics.waiting);
        if self.refuses(usize::try_from(before).unwrap_or(0)) {
            self.metrics.refused.inc();
            return Err(HashingError::Busy);
        }
        let acquired = tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned()).await;
        drop(waiting);
        match acquired {
            Ok(permit) => permit.map_err(|_| HashingError::Failed),
            Err(_) => {
                self.metrics.refused.inc();
                Err(HashingError::Busy)
            }
        }
    }

    /// Takes a hashing slot, waiting within the queue's bounds.
    pub async fn reserve(&self) -> Result<HashSlot<'_>, HashingError> {
        let asked = Instant::now();
        let permit = self.slot().await?;
        self.metrics.wait_seconds.observe(asked.elapsed().as_secs_f64());
        Ok(HashSlot { hashing: self, permit })
    }

    /// [`HashSlot::make`] in a slot of its own.
    pub async fn make(&self, password: &Password) -> Result<String, HashingError> {
        self.reserve().await?.make(password).await
    }

    #[cfg(test)]
    async fn fake(&self) -> Result<(), HashingError> {
        self.reserve().await?.fake().await
    }

    #[cfg(test)]
    async fn run<T, F>(&self, job: F) -> Result<T, HashingError>
    where
        T: Send + 'static,
        F: FnOnce(&HasherConfig) -> T + Send + 'static,
    {
        self.reserve().await?.run(job).await
    }
}

/// One hashing slot, held until its hash is done (or it is dropped unused).
#[derive(Debug)]
pub struct HashSlot<'a> {
    hashing: &'a Hashing,
    permit: OwnedSemaphorePermit,
}

impl HashSlot<'_> {
    async fn run<T, F>(self, job: F) -> Result<T, HashingError>
    where
        T: Send + 'static,
        F: FnOnce(&HasherConfig) -> T + Send + 'static,
    {
        let HashSlot { hashing, permit } = self;
        let config = Arc::clone(&hashing.config);
        let metrics = hashing.metrics.clone();
        let mean_micros = Arc::clone(&hashing.mean_micros);
        let (answer, answered) = oneshot::channel();
        hashing.workers.submit(Box::new(move || {
            let (running, _) = Held::take(&metrics.in_progress);
            let started = Instant::now();
            let result = job(&config);
            record_duration(&mean_micros, started.elapsed());
            metrics.computed.inc();
            drop(running);
            drop(permit);
            // The request may have been cancelled meanwhile; then nobody wants the answer.
            let _ = answer.send(result);
        }))?;
        answered.await.map_err(|_| HashingError::Failed)
    }

    /// Django's `verify_password`, including its fake runtime and `harden_runtime`; and, for a
    /// right password on an outdated hash (`must_update`), the new hash, computed in the same
    /// slot. Waiting for a second slot would queue a login that already passed behind the
    /// whole queue again, and refuse it with [`HashingError::Busy`] when that queue is full.
    pub async fn verify(
        self,
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
    pub async fn make(self, password: &Password) -> Result<String, HashingError> {
        let password = password.clone();
        self.run(move |config| hashers::make_password(password.expose(), config)).await
    }

    /// One default-hasher hash of a random password, so that a login for an unknown user takes
    /// as long as one for a real user (Django ticket #20760).
    pub async fn fake(self) -> Result<(), HashingError> {
        self.run(hashers::fake_runtime).await
    }
}

/// Folds one hash's duration into the recent mean (weight 1/8: a few hashes of a new kind, say
/// Argon2 users logging in after PBKDF2 ones, move it most of the way).
fn record_duration(mean_micros: &AtomicU64, took: Duration) {
    let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let _ = mean_micros.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
        Some(if mean == 0 { took } else { mean - mean / 8 + took / 8 })
    });
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads. Only as many jobs as slots are ever submitted at once (each holds a
/// permit), so the channel never holds more than a handful.
#[derive(Clone, Debug)]
struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl Workers {
    fn start(count: usize, priority: HashPriority) -> std::io::Result<Workers> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new().name(format!("gatehouse-hash-{n}")).spawn(move || {
                lower_priority(priority);
                loop {
                    // The lock is held only while waiting for the next job, never while hashing.
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else {
                        return; // every handle is gone
                    };
                    // A panicking hasher fails its own request (its answer channel is dropped),
                    // not the thread.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        }
        Ok(Workers { jobs })
    }

    fn submit(&self, job: Job) -> Result<(), HashingError> {
        self.jobs.send(job).map_err(|_| HashingError::Failed)
    }
}

/// Lowers the calling thread's CPU priority (Linux: both the nice value and the policy are per
/// thread). Raising it back would need privileges, hence threads of their own. Best effort.
fn lower_priority(priority: HashPriority) {
    #[cfg(target_os = "linux")]
    {
        let lowered = match priority {
            HashPriority::Normal => Ok(()),
            HashPriority::Low => {
                use rustix::process::{getpriority_process, setpriority_process};
                let me = Some(rustix::thread::gettid());
                let now = getpriority_process(me).unwrap_or(0);
                setpriority_process(me, (now + LOW_PRIORITY_NICENESS).min(19)).map_err(std::io::Error::from)
            }
            HashPriority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: a system call on the calling thread (pid 0) with a valid parameter block;
                // any thread may lower itself to SCHED_IDLE without privileges.
                match unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            }
        };
        if let Err(error) = lowered {
            tracing::warn!(%error, ?priority, "could not lower the hashing threads' CPU priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn hashing(slots: usize) -> Hashing {
        Hashing::new(HasherConfig { pbkdf2_iterations: 1_000 }, slots, HashPriority::default()).unwrap()
    }

    #[tokio::test]
    async fn a_cancelled_wait_gives_its_place_in_the_queue_back() {
        let hashing = hashing(1).with_queue(1, Duration::from_secs(60));
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

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_no_longer_than_the_deadline() {
        let hashing = hashing(1).with_queue(10, Duration::from_secs(3));
        let slot = Arc::clone(&hashing.permits).try_acquire_owned().unwrap();
        let asked = tokio::time::Instant::now();
        assert!(matches!(hashing.fake().await, Err(HashingError::Busy)));
        assert_eq!(asked.elapsed(), Duration::from_secs(3), "refused at the deadline, not later");
        assert_eq!(hashing.waiting(), 0);
        assert_eq!(hashing.metrics().refused.get(), 1);
        drop(slot);
        hashing.fake().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_the_deadline_is_refused_at_once() {
        let hashing = hashing(2).with_queue(100, Duration::from_secs(5));
        // Hashes have been taking 2 s each and both slots are busy.
        record_duration(&hashing.mean_micros, Duration::from_secs(2));
        let busy = [0, 1].map(|_| Arc::clone(&hashing.permits).try_acquire_owned().unwrap());
        let mut queued: Vec<_> = (0..5).map(|_| Box::pin(hashing.fake())).collect();
        for request in &mut queued {
            assert!(tokio::time::timeout(Duration::from_millis(1), request).await.is_err());
        }
        assert_eq!(hashing.waiting(), 5, "waits of up to (4 ahead + 1) × 2 s / 2 slots = 5 s were admitted");
        let asked = tokio::time::Instant::now();
        assert!(matches!(hashing.fake().await, Err(HashingError::Busy)), "a sixth would wait 6 s");
        assert_eq!(asked.elapsed(), Duration::ZERO, "refused without waiting");
        drop(busy);
        for request in queued {
            request.await.unwrap();
        }
    }

    #[tokio::test]
    async fn capacity_is_checked_without_taking_a_place() {
        let hashing = hashing(1).with_queue(1, Duration::from_secs(60));
        hashing.check_capacity().unwrap();
        let slot = Arc::clone(&hashing.permits).try_acquire_owned().unwrap();
        hashing.check_capacity().expect("no slot is free, but the queue has room");
        assert_eq!(hashing.waiting(), 0, "a check queues nothing");
        let mut queued = std::pin::pin!(hashing.fake());
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut queued).await.is_err());
        assert!(matches!(hashing.check_capacity(), Err(HashingError::Busy)), "the queue of one is full");
        assert_eq!(hashing.metrics().refused.get(), 1);
        drop(slot);
        queued.await.unwrap();
    }

    #[tokio::test]
    async fn the_recent_mean_hash_time_is_measured() {
        let hashing = hashing(1);
        assert_eq!(hashing.expected_wait(0), Duration::ZERO, "no hash yet: nothing is predicted");
        hashing.fake().await.unwrap();
        assert!(hashing.expected_wait(0) > Duration::ZERO);
    }

    #[test]
    fn the_mean_follows_a_change_of_hasher_within_a_few_hashes() {
        let mean = AtomicU64::new(0);
        record_duration(&mean, Duration::from_millis(200));
        assert_eq!(mean.load(Ordering::Relaxed), 200_000);
        for _ in 0..16 {
            record_duration(&mean, Duration::from_millis(1000));
        }
        assert!(mean.load(Ordering::Relaxed) > 900_000, "{}", mean.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_panicking_hash_fails_its_request_and_frees_its_slot() {
        let hashing = hashing(1);
        let failed = hashing.run::<(), _>(|_| panic!("a hasher bug")).await;
        assert!(matches!(failed, Err(HashingError::Failed)));
        assert_eq!(hashing.metrics().in_progress.get(), 0);
        hashing.fake().await.unwrap();
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_at_the_priority_asked_for() {
        fn nice() -> i32 {
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        }
        fn policy() -> i32 {
            // SAFETY: reads the calling thread's scheduling policy.
            unsafe { libc::sched_getscheduler(0) }
        }
        let (server_nice, server_policy) = (nice(), policy());
        for (priority, expected) in [
            (HashPriority::Normal, (server_nice, server_policy)),
            (HashPriority::Low, ((server_nice + LOW_PRIORITY_NICENESS).min(19), server_policy)),
            (HashPriority::Idle, (server_nice, libc::SCHED_IDLE)),
        ] {
            let hashing = Hashing::new(HasherConfig { pbkdf2_iterations: 1_000 }, 1, priority).unwrap();
            assert_eq!(hashing.run(|_| (nice(), policy())).await.unwrap(), expected, "{priority:?}");
        }
    }
}
