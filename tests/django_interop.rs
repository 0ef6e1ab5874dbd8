//! gatehouse and real Django (from PyPI) on one database, both ways round.
//!
//! Needs `GATEHOUSE_DJANGO_PYTHON`: a Python with `tests/django/requirements.txt` installed
//! (`.ci/run` makes one). Unset, the tests skip with a notice; under `CI=true` that fails.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Backend, TestDb};
use gatehouse::accounts::Password;
use gatehouse::db::migrate::DjangoSchema;
use gatehouse::django::hashers::HasherConfig;
use serde_json::Value;

const PYTHON_VAR: &str = "GATEHOUSE_DJANGO_PYTHON";

fn python() -> Option<PathBuf> {
    match std::env::var(PYTHON_VAR) {
        Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{PYTHON_VAR} is not set: under CI=true Django must run"
            );
            eprintln!("notice: {PYTHON_VAR} is not set; skipping a Django interoperability test");
            None
        }
    }
}

/// Runs one command of `tests/django/interop.py` against the test database.
fn django(python: &PathBuf, db: &TestDb, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/django/interop.py");
    let out =
        Command::new(python).arg(script).args(args).env("DJANGO_DATABASE_URL", &db.url).output().expect("run Django");
    assert!(out.status.success(), "Django {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("Django printed JSON")
}

/// Runs the gatehouse binary against the test database.
fn gatehouse(db: &TestDb, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("GATEHOUSE_PBKDF2_ITERATIONS", common::TEST_ITERATIONS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gatehouse {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

async fn django_finds_a_gatehouse_database_already_migrated(db: TestDb) {
    let Some(python) = python() else { return };
    gatehouse(&db, &["migrate"], "");
    gatehouse(
        &db,
        &["user", "create", "alice", "--email", "alice@Example.com", "--password-stdin"],
        "a long passphrase\n",
    );
    gatehouse(&db, &["group", "create", "editors"], "");
    gatehouse(&db, &["group", "add-user", "editors", "alice"], "");

    let migrate = django(&python, &db, &["migrate"]);
    assert_eq!(migrate["plan"], Value::Array(vec![]), "Django wants to apply: {}", migrate["plan"]);
    assert!(migrate["output"].as_str().unwrap().contains("No migrations to apply."), "{}", migrate["output"]);

    let login = django(&python, &db, &["authenticate", "alice", "a long passphrase"]);
    assert_eq!(login["ok"], Value::Bool(true), "Django's authenticate() accepts a gatehouse user");
    let wrong = django(&python, &db, &["authenticate", "alice", "wrong passphrase"]);
    assert_eq!(wrong["ok"], Value::Bool(false));

    // gatehouse sets last_login in Django's own format: Django's date filters see it.
    let accounts = db.accounts().await;
    accounts.authenticate("alice", &Password::new("a long passphrase")).await.unwrap().unwrap();
    let filters = django(&python, &db, &["date-filters", "alice"]);
    assert_eq!(filters["date_joined_lte_now"], 1, "{filters}");
    assert_eq!(filters["last_login_lte_now"], 1, "{filters}");
    assert_eq!(filters["groups"], serde_json::json!(["editors"]));
}
on_both_backends!(
    django_finds_a_gatehouse_database_already_migrated,
    super::django_finds_a_gatehouse_database_already_migrated
);

async fn users_django_created_log_in_through_gatehouse(db: TestDb) {
    let Some(python) = python() else { return };
    let migrate = django(&python, &db, &["migrate"]);
    assert!(!migrate["plan"].as_array().unwrap().is_empty(), "Django created the schema itself");

    // Django made the tables: gatehouse leaves them as they are.
    let accounts = db.accounts_with(HasherConfig { pbkdf2_iterations: 1_000_000 }).await;
    assert_eq!(accounts.db().migrate().await.unwrap().django, DjangoSchema::AlreadyPresent);

    let users = django(&python, &db, &["create-users"]);
    for user in users.as_array().unwrap() {
        let (username, alg) = (user["username"].as_str().unwrap(), user["algorithm"].as_str().unwrap());
        let password = Password::new(user["password"].as_str().unwrap());
        assert!(accounts.authenticate(username, &Password::new("wrong")).await.unwrap().is_none(), "{alg}");
        let logged_in = accounts.authenticate(username, &password).await.unwrap();
        assert!(logged_in.is_some(), "{alg}: a hash Django wrote verifies in gatehouse");
        let stored = accounts.db().user_by_username(username).await.unwrap().unwrap().password;
        assert!(stored.starts_with("pbkdf2_sha256$1000000$"), "{alg}: upgraded on login, got {stored}");
        // And Django still accepts the hash gatehouse wrote in its place.
        let again = django(&python, &db, &["authenticate", username, user["password"].as_str().unwrap()]);
        assert_eq!(again["ok"], Value::Bool(true), "{alg}: Django verifies gatehouse's upgrade");
    }
}
on_both_backends!(users_django_created_log_in_through_gatehouse, super::users_django_created_log_in_through_gatehouse);

async fn django_users_log_in_over_http_and_http_signups_satisfy_django(db: TestDb) {
    let Some(python) = python() else { return };
    django(&python, &db, &["migrate"]);
    let users = django(&python, &db, &["create-users"]);
    let app = common::spawn_app(db).await;
    for user in users.as_array().unwrap() {
        let (username, alg) = (user["username"].as_str().unwrap(), user["algorithm"].as_str().unwrap());
        let login = serde_json::json!({"username": username, "password": user["password"]});
        let response = app.post_json("/webhook/login", &login).await;
        assert_eq!(response.status(), 200, "{alg}: a Django user logs in over HTTP");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], user["id"], "{alg}");
    }
    let signup =
        serde_json::json!({"username": "signed_up", "password": "a long passphrase", "email": "s@Example.org"});
    assert_eq!(app.post_json("/webhook/signup", &signup).await.status(), 200);
    let login = django(&python, &app.db, &["authenticate", "signed_up", "a long passphrase"]);
    assert_eq!(login["ok"], Value::Bool(true), "Django's authenticate() accepts an HTTP signup");
    let filters = django(&python, &app.db, &["date-filters", "signed_up"]);
    assert_eq!(filters["last_login_isnull"], 1, "Django leaves last_login NULL at signup: {filters}");
    assert_eq!(filters["date_joined_lte_now"], 1, "{filters}");
}
on_both_backends!(
    django_users_log_in_over_http_and_http_signups_satisfy_django,
    super::django_users_log_in_over_http_and_http_signups_satisfy_django
);

#[tokio::test]
async fn the_sqlite_schema_is_the_one_django_creates() {
    let Some(python) = python() else { return };
    let (by_gatehouse, by_django) =
        (TestDb::new(Backend::Sqlite).await.unwrap(), TestDb::new(Backend::Sqlite).await.unwrap());
    by_gatehouse.connect().await.migrate().await.unwrap();
    django(&python, &by_django, &["migrate"]);
    let ddl = |db: gatehouse::db::Db| async move {
        let gatehouse::db::Db::Sqlite(pool) = db else { unreachable!() };
        let mut rows: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'gatehouse_%' AND name != 'sqlite_sequence'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows.sort();
        rows
    };
    assert_eq!(ddl(by_gatehouse.connect().await).await, ddl(by_django.connect().await).await);
}
