//! The load generator of `scripts/bench.sh` for what a fixed-request tool (wrk) cannot drive:
//! logins over many users, sign-ups with unique names, refresh-token chains (each refresh token
//! is single use, so every session sends the token its previous refresh returned), and a paced
//! request rate (the webhook's latency while logins saturate the hashing slots).
//!
//! Closed loop: `--concurrency` workers each send a request, wait for its answer, send the next
//! (paced when `--rate` is given). Prints one JSON document: requests, throughput, latency
//! percentiles over all answers and per status, and the generator's own CPU time.
//!
//! ```text
//! loadgen --url http://127.0.0.1:3000 --scenario login --style gatehouse --users-file users.txt \
//!         --password PW --concurrency 8 --duration 20
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// POST {"username","password"} to the login path, a different user each time.
    Login,
    /// Log each worker in once (not measured), then refresh in a chain.
    Refresh,
    /// POST a new user to the sign-up path, a unique name each time.
    Signup,
    /// The same request every time (`--method`, `--path`, `--header`, `--body`).
    Fixed,
    /// No server: times `--count` verifications of one PBKDF2-SHA256 hash at `--iterations`
    /// with gatehouse's own hasher, one after the other (the hashing limit is cores / this),
    /// then `--concurrency` threads doing as many each at once.
    HashTime,
}

/// Whose API the requests follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Style {
    /// gatehouse: `/webhook/login` → `refresh_token`; `/webhook/refresh {"refresh_token"}`.
    Gatehouse,
    /// djangorestframework-simplejwt: `/api/token/` → `refresh`; `/api/token/refresh/ {"refresh"}`.
    Simplejwt,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[arg(long, value_enum, default_value_t = Style::Gatehouse)]
    style: Style,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds of measurement (after the set-up of refresh chains).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Total requests per second to aim at, spread over the workers; none: as fast as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// One username per line (login, refresh).
    #[arg(long)]
    users_file: Option<String>,
    #[arg(long, default_value = "")]
    password: String,
    /// For `fixed`.
    #[arg(long, default_value = "GET")]
    method: String,
    #[arg(long, default_value = "/")]
    path: String,
    /// `Name: value`, repeatable.
    #[arg(long)]
    header: Vec<String>,
    #[arg(long)]
    body: Option<String>,
    /// Prefix of sign-up usernames, unique per run.
    #[arg(long, default_value = "signup")]
    name_prefix: String,
    /// Per-request timeout in seconds; a timed-out request counts as status 0.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Seconds a worker waits after an error answer (503, 429) before its next request.
    #[arg(long, default_value_t = 0.0)]
    error_backoff: f64,
    /// For `hash-time`.
    #[arg(long, default_value_t = gatehouse::django::hashers::DEFAULT_PBKDF2_ITERATIONS)]
    iterations: u32,
    #[arg(long, default_value_t = 5)]
    count: usize,
}

struct Shared {
    args: Args,
    client: reqwest::Client,
    users: Vec<String>,
    next: AtomicUsize,
}

impl Shared {
    fn login_path(&self) -> &'static str {
        match self.args.style {
            Style::Gatehouse => "/webhook/login",
            Style::Simplejwt => "/api/token/",
        }
    }

    fn next_user(&self) -> &str {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.users[n % self.users.len()]
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Option<Value>) {
        let sent = self.client.post(format!("{}{path}", self.args.url)).json(body).send().await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.ok())
            }
            Err(_) => (0, None),
        }
    }

    async fn login(&self) -> (u16, Option<Value>) {
        let body = json!({ "username": self.next_user(), "password": self.args.password });
        self.post_json(self.login_path(), &body).await
    }

    fn refresh_token_of(&self, answer: &Value) -> Option<String> {
        let field = match self.args.style {
            Style::Gatehouse => "refresh_token",
            Style::Simplejwt => "refresh",
        };
        answer.get(field).and_then(Value::as_str).map(str::to_owned)
    }

    async fn refresh(&self, token: &str) -> (u16, Option<String>) {
        let (path, body) = match self.args.style {
            Style::Gatehouse => ("/webhook/refresh", json!({ "refresh_token": token })),
            Style::Simplejwt => ("/api/token/refresh/", json!({ "refresh": token })),
        };
        let (status, answer) = self.post_json(path, &body).await;
        (status, answer.as_ref().and_then(|a| self.refresh_token_of(a)))
    }

    async fn fixed(&self) -> u16 {
        let method = reqwest::Method::from_bytes(self.args.method.as_bytes()).expect("HTTP method");
        let mut request = self.client.request(method, format!("{}{}", self.args.url, self.args.path));
        for header in &self.args.header {
            let (name, value) = header.split_once(':').expect("--header 'Name: value'");
            request = request.header(name.trim(), value.trim());
        }
        if let Some(body) = &self.args.body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        }
    }
}

/// (status, latency in microseconds) of each answered request.
type Samples = Vec<(u16, u32)>;

async fn worker(shared: Arc<Shared>, index: usize, start: Instant, end: Instant) -> Samples {
    let mut samples = Samples::new();
    let interval = shared.args.rate.map(|rate| Duration::from_secs_f64(shared.args.concurrency as f64 / rate));
    // Stagger paced workers so that their requests spread over the interval.
    let mut next_send =
        start + interval.map_or(Duration::ZERO, |i| i.mul_f64(index as f64 / shared.args.concurrency as f64));
    let mut signups = 0usize;
    loop {
        if let Some(interval) = interval {
            tokio::time::sleep_until(next_send.into()).await;
            next_send += interval;
        }
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let status = match shared.args.scenario {
            Scenario::Fixed => shared.fixed().await,
            Scenario::Login => shared.login().await.0,
            Scenario::Signup => {
                signups += 1;
                let name = format!("{}-{index}-{signups}", shared.args.name_prefix);
                let body = json!({ "username": name, "password": shared.args.password });
                shared.post_json("/webhook/signup", &body).await.0
            }
            Scenario::Refresh | Scenario::HashTime => unreachable!("not a request loop"),
        };
        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        samples.push((status, micros));
        if status != 200 && shared.args.error_backoff > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(shared.args.error_backoff)).await;
        }
    }
    samples
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn latency_summary(latencies: &mut [u32]) -> Value {
    latencies.sort_unstable();
    json!({
        "count": latencies.len(),
        "p50_ms": percentile(latencies, 50.0),
        "p90_ms": percentile(latencies, 90.0),
        "p99_ms": percentile(latencies, 99.0),
        "max_ms": percentile(latencies, 100.0),
    })
}

/// This process's user + system CPU seconds, from `/proc/self/stat` (Linux).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; clock ticks
    // are 100 a second on every Linux this runs on.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One PBKDF2-SHA256 verification with gatehouse's hasher: the median and minimum seconds of
/// `count` one after the other; then `threads` threads verifying `count` times each at once, as
/// logins a second (what the cores give right now, other load included).
fn hash_time(iterations: u32, count: usize, threads: usize) -> Value {
    use gatehouse::django::hashers::{self, HasherConfig};
    let config = HasherConfig { pbkdf2_iterations: iterations };
    let encoded = hashers::make_password("correct horse battery staple", &config);
    let verify = || {
        let verification = hashers::verify("correct horse battery staple", &encoded, &config).expect("verifies");
        assert!(verification.valid && !verification.must_update);
    };
    let mut seconds: Vec<f64> = (0..count.max(1))
        .map(|_| {
            let start = Instant::now();
            verify();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| (0..count.max(1)).for_each(|_| verify()));
        }
    });
    let parallel_rate = (threads.max(1) * count.max(1)) as f64 / start.elapsed().as_secs_f64();
    json!({
        "iterations": iterations,
        "count": seconds.len(),
        "median_s": seconds[seconds.len() / 2],
        "min_s": seconds[0],
        "threads": threads.max(1),
        "parallel_per_s": parallel_rate,
    })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.scenario == Scenario::HashTime {
        println!("{}", hash_time(args.iterations, args.count, args.concurrency));
        return;
    }
    let users = match &args.users_file {
        Some(path) => std::fs::read_to_string(path)
            .expect("users file")
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if matches!(args.scenario, Scenario::Login | Scenario::Refresh) {
        assert!(!users.is_empty(), "--users-file is needed for logins");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs_f64(args.timeout))
        .build()
        .expect("HTTP client");
    let shared = Arc::new(Shared { args, client, users, next: AtomicUsize::new(0) });

    // Refresh chains start from one login per worker, before the clock starts.
    let mut chains = Vec::new();
    if shared.args.scenario == Scenario::Refresh {
        for _ in 0..shared.args.concurrency {
            let (status, answer) = shared.login().await;
            let token = answer.as_ref().and_then(|a| shared.refresh_token_of(a));
            chains.push(token.unwrap_or_else(|| panic!("set-up login failed with status {status}")));
        }
    }

    let cpu_before = own_cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(shared.args.duration);
    let mut handles = Vec::new();
    for index in 0..shared.args.concurrency {
        let shared = Arc::clone(&shared);
        let seed = chains.get(index).cloned();
        handles.push(tokio::spawn(async move {
            match seed {
                Some(token) => refresh_worker(shared, token, end).await,
                None => worker(shared, index, start, end).await,
            }
        }));
    }
    let mut samples = Samples::new();
    for handle in handles {
        samples.extend(handle.await.expect("worker"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = match (cpu_before, own_cpu_seconds()) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };

    let mut by_status: BTreeMap<u16, Vec<u32>> = BTreeMap::new();
    for (status, micros) in &samples {
        by_status.entry(*status).or_default().push(*micros);
    }
    let ok = by_status.get(&200).map_or(0, Vec::len);
    let mut all: Vec<u32> = samples.iter().map(|(_, m)| *m).collect();
    let statuses: serde_json::Map<String, Value> =
        by_status.iter_mut().map(|(status, latencies)| (status.to_string(), latency_summary(latencies))).collect();
    let report = json!({
        "scenario": format!("{:?}", shared.args.scenario).to_lowercase(),
        "concurrency": shared.args.concurrency,
        "duration_s": elapsed,
        "requests": samples.len(),
        "ok": ok,
        "rps": samples.len() as f64 / elapsed,
        "ok_rps": ok as f64 / elapsed,
        "latency": latency_summary(&mut all),
        "by_status": statuses,
        "loadgen_cpu_s": cpu,
    });
    println!("{report}");
}

/// [`worker`] for a refresh chain seeded by the set-up login.
async fn refresh_worker(shared: Arc<Shared>, token: String, end: Instant) -> Samples {
    let mut samples = Samples::new();
    let mut chain = token;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let (status, successor) = shared.refresh(&chain).await;
        let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
        samples.push((status, micros));
        match successor {
            Some(successor) => chain = successor,
            // The chain broke (an error answer): start a new session, unmeasured.
            None => match shared.login().await {
                (200, Some(answer)) => match shared.refresh_token_of(&answer) {
                    Some(token) => chain = token,
                    None => break,
                },
                _ => break,
            },
        }
    }
    samples
}
