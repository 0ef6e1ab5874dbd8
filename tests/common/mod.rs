//! The one helper every integration test goes through: a fresh database (a real SQLite file, or
//! a PostgreSQL database of its own) and, where needed, the real server on an ephemeral port.
#![allow(dead_code)] // each test binary uses a different part of it

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse::accounts::{Accounts, HashPriority, Hashing};
use gatehouse::db::{DatabaseUrl, Db};
use gatehouse::django::hashers::HasherConfig;
use gatehouse::django::validators::PasswordPolicy;
use gatehouse::settings::{GlobalArgs, Settings};
use gatehouse::startup::Application;

/// The PostgreSQL server tests use, as a URL to a database they may connect to (to create
/// their own). Unset: PostgreSQL tests skip, except under `CI=true` where that is a failure.
pub const POSTGRES_URL_VAR: &str = "TEST_POSTGRES_URL";

/// Fewer PBKDF2 iterations than Django's default keep the suite fast; tests about the default
/// itself set it explicitly.
pub const TEST_ITERATIONS: u32 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    /// For SQLite: the directory holding the file.
    dir: Option<tempfile::TempDir>,
    /// gatehouse's data directory (the generated signing key).
    data_dir: tempfile::TempDir,
    /// For PostgreSQL: (server URL to connect as admin, database name) to drop at the end.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite()),
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        TestDb { url, backend: Backend::Sqlite, dir: Some(dir), data_dir: temp_dir(), postgres: None }
    }

    /// A new, empty PostgreSQL database, or `None` (with a notice) when no server is configured.
    pub async fn postgres() -> Option<TestDb> {
        let server = postgres_server_url()?;
        let name = format!("gatehouse_test_{}_{}", std::process::id(), unique_suffix());
        let admin = admin_pool(&server).await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&admin).await.expect("create test database");
        admin.close().await;
        let url = with_database(&server, &name);
        Some(TestDb {
            url,
            backend: Backend::Postgres,
            dir: None,
            data_dir: temp_dir(),
            postgres: Some((server, name)),
        })
    }

    /// The same database for another instance of the server, with its own data directory.
    /// The database is dropped with `self`, which must outlive this handle.
    pub fn another_instance(&self) -> TestDb {
        TestDb { url: self.url.clone(), backend: self.backend, dir: None, data_dir: temp_dir(), postgres: None }
    }

    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// A pool straight to the database, for checks beneath gatehouse's own API.
    pub async fn connect(&self) -> Db {
        Db::connect(&self.database_url(), Duration::from_secs(5)).await.expect("connect to test database")
    }

    pub fn database_url(&self) -> DatabaseUrl {
        self.url.parse().expect("valid test database URL")
    }

    /// Settings as `gatehouse` would build them from these flags (and no environment), on
    /// this database, an ephemeral port, a fresh data directory and cheap hashing.
    pub fn settings(&self, extra: &[&str]) -> Settings {
        #[derive(clap::Parser)]
        #[command(args_override_self = true)]
        struct Flags {
            #[command(flatten)]
            global: GlobalArgs,
        }
        let iterations = TEST_ITERATIONS.to_string();
        let data_dir = self.data_dir.path().display().to_string();
        let mut argv = vec![
            "gatehouse",
            "--database-url",
            &self.url,
            "--pbkdf2-iterations",
            &iterations,
            "--hash-concurrency",
            "2",
            "--data-dir",
            &data_dir,
            "--port",
            "0",
            "--public-url",
            "http://gatehouse.test",
        ];
        argv.extend_from_slice(extra);
        let flags = <Flags as clap::Parser>::try_parse_from(argv).expect("test flags parse");
        Settings::from_args(&flags.global).expect("test settings")
    }

    /// The account service over this database, migrated.
    pub async fn accounts(&self) -> Accounts {
        self.accounts_with(HasherConfig { pbkdf2_iterations: TEST_ITERATIONS }).await
    }

    pub async fn accounts_with(&self, hasher: HasherConfig) -> Accounts {
        let db = self.connect().await;
        db.migrate().await.expect("migrate");
        Accounts::new(db, Hashing::new(hasher, 2, HashPriority::default()).unwrap(), PasswordPolicy::default())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else { return };
        // Drop runs outside any runtime we may borrow; a short-lived one does the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let admin = sqlx::PgPool::connect(&server).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&admin).await.ok()?;
                admin.close().await;
                Some(())
            })
        })
        .join();
    }
}

fn postgres_server_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{POSTGRES_URL_VAR} is not set: under CI=true the PostgreSQL tests must run, not skip"
            );
            eprintln!("notice: {POSTGRES_URL_VAR} is not set; skipping a PostgreSQL test");
            None
        }
    }
}

async fn admin_pool(server: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"))
}

/// The server URL with its database path replaced.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..].find('/').map_or(base.len(), |i| authority_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}_{}", COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// The real server, started in-process on an ephemeral port.
pub struct TestApp {
    pub address: SocketAddr,
    pub db: TestDb,
    pub settings: Settings,
    /// The server's own password-hashing pool, for counting the hashes it computed.
    pub hashing: gatehouse::accounts::Hashing,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, &[]).await
}

/// [`spawn_app`] with extra command-line flags (`--signup false`, …).
pub async fn spawn_app_with(db: TestDb, flags: &[&str]) -> TestApp {
    let settings = db.settings(flags);
    spawn_app_with_settings(db, settings).await
}

/// [`spawn_app`] with settings built by the caller (for values only the environment sets).
pub async fn spawn_app_with_settings(db: TestDb, settings: Settings) -> TestApp {
    let app = Application::build(&settings).await.expect("build application");
    start(app, db, settings)
}

/// Runs a built application until the returned [`TestApp`] is dropped.
fn start(app: Application, db: TestDb, settings: Settings) -> TestApp {
    let address = app.local_addr().expect("bound address");
    let hashing = app.state().accounts.hashing().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp { address, db, shutdown: Some(stop), settings, hashing }
}

/// [`spawn_app_with`] with the public URL set to the address the server really listens on, as
/// OIDC clients need (they compare the issuer with the URL they reach it at).
pub async fn spawn_app_at_own_url(db: TestDb, flags: &[&str], admin_secret: bool) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    let mut all = flags.to_vec();
    all.extend_from_slice(&["--public-url", &url]);
    let mut settings = db.settings(&all);
    if admin_secret {
        use sha2::Digest;
        settings.admin.secret_digest = Some(sha2::Sha256::digest(ADMIN_SECRET).into());
    }
    let app = Application::build_on(&settings, listener).await.expect("build application");
    start(app, db, settings)
}

/// The admin secret tests configure.
pub const ADMIN_SECRET: &str = "an-admin-secret-that-is-long-enough-to-pass";

/// Declares `$name` once per backend (`$name::sqlite`, `$name::postgres`), each with its own
/// fresh database passed to the async function `$body`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::new($crate::common::Backend::Sqlite).await.unwrap();
                $body(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::common::TestDb::new($crate::common::Backend::Postgres).await {
                    $body(db).await;
                }
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to the native pool inside a `Db`, for checks written in SQL.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            gatehouse::db::Db::Sqlite($pool) => $body,
            gatehouse::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Counts rows with a query that returns one integer.
pub async fn count(db: &Db, sql: &str) -> i64 {
    with_pool!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// Runs one statement beneath gatehouse's API.
pub async fn execute(db: &Db, sql: &str) {
    with_pool!(db, pool => sqlx::query(sql).execute(pool).await.map(drop).unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// The Django 6.1.3 hash vectors (all for the password `correct horse ☃`).
pub fn django_vectors() -> Vec<(String, String, bool)> {
    let raw = include_str!("../data/django-6.1-hash-vectors.json");
    let parsed: serde_json::Value = serde_json::from_str(raw).expect("vectors JSON");
    parsed["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            (
                v["alg"].as_str().unwrap().to_owned(),
                v["encoded"].as_str().unwrap().to_owned(),
                v["must_update_vs_default"].as_bool().unwrap(),
            )
        })
        .collect()
}

pub const VECTOR_PASSWORD: &str = "correct horse ☃";

impl TestApp {
    /// The account service over the app's database (already migrated by the app).
    pub async fn accounts(&self) -> Accounts {
        self.db.accounts().await
    }

    /// The app's own signing keys, for forging test tokens the way only the server could.
    pub fn keys(&self) -> gatehouse::tokens::KeyRing {
        gatehouse::tokens::install_crypto_provider();
        gatehouse::tokens::KeyRing::load_existing(&self.settings.keys).expect("the app's signing key")
    }

    /// Creates a user directly and returns its password.
    pub async fn create_user(&self, username: &str, password: &str) -> gatehouse::db::UserRow {
        let accounts = self.accounts().await;
        let new = gatehouse::accounts::NewUser::new(
            gatehouse::django::validators::Username::parse(username).unwrap(),
            Some(gatehouse::accounts::Password::new(password)),
        );
        accounts.create_user(new).await.expect("create user")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        reqwest::Client::new().post(self.url(path)).json(body).send().await.expect("request")
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response =
            self.post_json("/webhook/login", &serde_json::json!({"username": username, "password": password})).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}

/// Inserts a user row with a hash written elsewhere (by Django, say) and returns its id.
pub async fn insert_user_with_hash(db: &Db, username: &str, hash: &str) -> i32 {
    let row = gatehouse::db::NewUserRow {
        username,
        password: hash,
        email: "",
        first_name: "",
        last_name: "",
        is_staff: false,
        is_superuser: false,
        date_joined: gatehouse::db::DjangoTime::now(),
    };
    db.insert_user(&row).await.expect("insert user")
}
