//! The `gatehouse` binary, as a user runs it.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestDb;

fn run_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DBURL")
        .env("GATEHOUSE_PBKDF2_ITERATIONS", common::TEST_ITERATIONS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start gatehouse");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn run(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    run_in(&std::env::temp_dir(), &[("DATABASE_URL", &db.url)], args, stdin)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn user_and_group_commands_work_end_to_end(db: TestDb) {
    let out = run(&db, &["migrate"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Created Django's contenttypes and auth tables."), "{}", stdout(&out));
    let out = run(&db, &["migrate"], None);
    assert!(stdout(&out).contains("left as they are"), "{}", stdout(&out));

    let out = run(
        &db,
        &["user", "create", "alice", "--email", "alice@example.com", "--staff", "--password-stdin"],
        Some("a long passphrase\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&db, &["user", "create", "alice", "--password-stdin"], Some("a long passphrase\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("A user with that username already exists."), "{}", stderr(&out));

    let out = run(&db, &["user", "create", "bob", "--password-stdin"], Some("password\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("This password is too common."), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one line: {}", stderr(&out));

    let out = run(&db, &["user", "create", "bad name!", "--password-stdin"], Some("a long passphrase\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Enter a valid username."), "{}", stderr(&out));

    let out = run(&db, &["user", "create", "carol", "--no-password"], None);
    assert!(out.status.success(), "{}", stderr(&out));

    let accounts = db.accounts().await;
    let pw = gatehouse::accounts::Password::new("a long passphrase");
    assert!(accounts.authenticate("alice", &pw).await.unwrap().is_some());

    let out = run(&db, &["user", "set-password", "alice", "--password-stdin"], Some("another long passphrase\r\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(accounts.authenticate("alice", &pw).await.unwrap().is_none());
    let new_pw = gatehouse::accounts::Password::new("another long passphrase");
    assert!(accounts.authenticate("alice", &new_pw).await.unwrap().is_some(), "CRLF is not part of the password");

    let out = run(&db, &["user", "deactivate", "alice"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(accounts.authenticate("alice", &new_pw).await.unwrap().is_none());
    let out = run(&db, &["user", "deactivate", "nobody"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no user named \"nobody\""), "{}", stderr(&out));

    let out = run(&db, &["user", "list"], None);
    let listing = stdout(&out);
    assert!(listing.contains("alice") && listing.contains("carol") && !listing.contains("bob"), "{listing}");

    assert!(run(&db, &["group", "create", "editors"], None).status.success());
    let out = run(&db, &["group", "add-user", "editors", "carol"], None);
    assert!(stdout(&out).contains("is now in"), "{}", stdout(&out));
    let out = run(&db, &["group", "list"], None);
    assert!(stdout(&out).lines().any(|l| l.contains("editors") && l.trim_end().ends_with('1')), "{}", stdout(&out));
    let out = run(&db, &["group", "remove-user", "editors", "carol"], None);
    assert!(stdout(&out).contains("is no longer in"), "{}", stdout(&out));
    let out = run(&db, &["group", "add-user", "nope", "carol"], None);
    assert_eq!(out.status.code(), Some(1));
}
on_both_backends!(user_and_group_commands_work_end_to_end, super::user_and_group_commands_work_end_to_end);

#[test]
fn passwords_never_come_from_argv_or_a_missing_terminal() {
    let db = TestDb::sqlite();
    let out = run(&db, &["user", "create", "dave"], None);
    assert_eq!(out.status.code(), Some(2), "no terminal and no --password-stdin");
    assert!(stderr(&out).contains("--password-stdin"), "{}", stderr(&out));
    let out = run(&db, &["user", "create", "dave", "--password", "x"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    for (url, expected) in [
        ("mysql://u:secret@db/app", "must start with sqlite:// or postgres://"),
        ("postgres://root@127.0.0.1:notaport/app", "not a valid PostgreSQL URL"),
    ] {
        let out = run_in(dir.path(), &[("DATABASE_URL", url)], &["migrate"], None);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let out = run_in(dir.path(), &[], &["serve", "--no-such-option"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = run_in(dir.path(), &[("GATEHOUSE_PASSWORD_MAX_SIMILARITY", "0.01")], &["migrate"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unreachable_postgres_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", "postgres://root@127.0.0.1:1/app"), ("GATEHOUSE_DB_CONNECT_TIMEOUT", "1")];
    let out = run_in(dir.path(), &env, &["migrate"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the database"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn help_is_there_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["serve", "--help"], &["user", "create", "--help"], &["group", "--help"]] {
        let out = run_in(dir.path(), &[], args, None);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    let out = run_in(dir.path(), &[], &["serve", "--help"], None);
    assert!(stdout(&out).contains("[env: PORT="), "{}", stdout(&out));
}

/// `serve` with no configuration at all: the embedded SQLite default in the working
/// directory, Django's schema in it, health answered, and a clean exit on SIGTERM.
#[test]
fn serve_works_with_zero_configuration_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("DBURL")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(body) = http_get(port, "/healthz") {
            break body;
        }
        assert!(Instant::now() < deadline, "gatehouse did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("200 OK") && body.contains("\"status\":\"ok\""), "{body}");
    assert!(dir.path().join("gatehouse.sqlite3").exists());

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");

    let db = gatehouse::db::DatabaseUrl::Sqlite(
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("gatehouse.sqlite3")),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = gatehouse::db::Db::connect(&db, Duration::from_secs(5)).await.unwrap();
        assert_eq!(common::count(&db, "SELECT COUNT(*) FROM django_migrations").await, 14);
        assert_eq!(common::count(&db, "SELECT COUNT(*) FROM auth_user").await, 0);
    });
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}
