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

#[test]
fn keygen_writes_a_key_pair_it_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ["RS256", "ES256", "EdDSA"] {
        let out_dir = dir.path().join(alg);
        std::fs::create_dir(&out_dir).unwrap();
        let out = run_in(dir.path(), &[], &["keygen", "--alg", alg, "--out", out_dir.to_str().unwrap()], None);
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        assert!(stdout(&out).contains("kid: "), "{}", stdout(&out));
        let private = std::fs::read_to_string(out_dir.join("private.pem")).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(std::fs::read_to_string(out_dir.join("public.pem")).unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out_dir.join("private.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{alg}");
        }
        let again = run_in(dir.path(), &[], &["keygen", "--alg", alg, "--out", out_dir.to_str().unwrap()], None);
        assert_eq!(again.status.code(), Some(1), "{alg}: refuses to overwrite");
        assert_eq!(std::fs::read_to_string(out_dir.join("private.pem")).unwrap(), private);
    }
}

#[test]
fn hasura_config_prints_what_hasura_needs() {
    let dir = tempfile::tempdir().unwrap();
    let env =
        [("GATEHOUSE_PUBLIC_URL", "https://auth.example.com/"), ("GATEHOUSE_JWT_AUDIENCE", "https://api.example.com")];
    let out = run_in(dir.path(), &env, &["hasura-config"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secret_line = text.lines().find(|l| l.starts_with("HASURA_GRAPHQL_JWT_SECRET='")).expect(&text);
    let json = secret_line.trim_start_matches("HASURA_GRAPHQL_JWT_SECRET='").trim_end_matches('\'');
    let secret: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(secret["jwk_url"], "https://auth.example.com/webhook/jwks");
    assert_eq!(secret["issuer"], "https://auth.example.com");
    assert_eq!(secret["audience"], "https://api.example.com");
    assert_eq!(secret["claims_namespace"], "https://hasura.io/jwt/claims");
    assert_eq!(secret["claims_format"], "json");
    assert!(text.contains("HASURA_GRAPHQL_UNAUTHORIZED_ROLE=anonymous"), "{text}");

    let out = run_in(dir.path(), &env, &["hasura-config", "--mode", "webhook", "--hook-mode", "POST"], None);
    let text = stdout(&out);
    assert!(text.contains("HASURA_GRAPHQL_AUTH_HOOK=https://auth.example.com/webhook/webhook"), "{text}");
    assert!(text.contains("HASURA_GRAPHQL_AUTH_HOOK_MODE=POST"), "{text}");
    assert!(!text.contains("UNAUTHORIZED_ROLE"), "webhook mode cannot have an unauthorized role: {text}");
}

/// The original server's variables: a PEM with literal `\n`, a chosen `kid`, and a public key
/// that must match. Tokens gatehouse issues then pass `token inspect`; a broken one does not.
#[test]
fn auth_private_key_from_the_environment_signs_and_inspect_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &[], &["keygen", "--out", dir.path().to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let escaped = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap().replace('\n', "\\n");
    let (private, public) = (escaped("private.pem"), escaped("public.pem"));
    let db = TestDb::sqlite();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("AUTH_PRIVATE_KEY", private.as_str()),
        ("AUTH_PUBLIC_KEY", public.as_str()),
        ("AUTH_KEY_ID", "key-2026"),
    ];
    let out = run_in(dir.path(), &env, &["user", "create", "kate", "--password-stdin"], Some("a long passphrase\n"));
    assert_eq!(out.status.code(), Some(1), "no schema yet");
    assert!(stderr(&out).contains("run `gatehouse migrate`"), "{}", stderr(&out));
    assert!(run_in(dir.path(), &env, &["migrate"], None).status.success());
    let out = run_in(dir.path(), &env, &["user", "create", "kate", "--password-stdin"], Some("a long passphrase\n"));
    assert!(out.status.success(), "{}", stderr(&out));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = runtime.block_on(async {
        let mut settings = db.settings(&[]);
        settings.keys.private_key_pem = Some(private.clone());
        settings.keys.key_id = Some("key-2026".into());
        let tokens = gatehouse::startup::tokens(&settings, &db.connect().await).await.unwrap();
        assert_eq!(tokens.keys().kid(), "key-2026");
        let accounts = db.accounts().await;
        let user = accounts.db().user_by_username("kate").await.unwrap().unwrap();
        tokens.issue(&user, &[], "a-session-id", 900).unwrap().token
    });
    let inspect_env = [
        ("AUTH_PRIVATE_KEY", private.as_str()),
        ("AUTH_KEY_ID", "key-2026"),
        ("GATEHOUSE_PUBLIC_URL", "http://gatehouse.test"),
    ];
    let out = run_in(dir.path(), &inspect_env, &["token", "inspect", &token], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = run_in(dir.path(), &inspect_env, &["token", "inspect", "-", "--json"], Some(&format!("{token}\n")));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["findings"].as_array().unwrap().iter().all(|f| f["verdict"] != "Fail"), "{report}");

    let other_issuer = [inspect_env[0], inspect_env[1], ("GATEHOUSE_PUBLIC_URL", "https://elsewhere.example")];
    let out = run_in(dir.path(), &other_issuer, &["token", "inspect", &token], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("JWTNotInIssuer"), "{}", stdout(&out));

    let wrong_public = [
        ("AUTH_PRIVATE_KEY", private.as_str()),
        (
            "AUTH_PUBLIC_KEY",
            "-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\\n-----END PUBLIC KEY-----",
        ),
    ];
    let out = run_in(dir.path(), &wrong_public, &["token", "inspect", &token], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("AUTH_PUBLIC_KEY: does not match AUTH_PRIVATE_KEY"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("PRIVATE KEY"), "never echo the key: {}", stderr(&out));
}

#[test]
fn an_openssh_key_is_explained_not_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "AUTH_PRIVATE_KEY",
        "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n-----END OPENSSH PRIVATE KEY-----",
    )];
    let out = run_in(dir.path(), &env, &["token", "inspect", "a.b.c"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ssh-keygen -p -m PEM"), "{}", stderr(&out));
}

/// The Logto–Hasura set-up from a shell script, then `claims test` against a real user.
async fn rbac_commands_set_up_the_guide_from_a_shell(db: TestDb) {
    let ok = |args: &[&str], stdin: Option<&str>| {
        let out = run(&db, args, stdin);
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let api = "https://example.hasura.app/api";
    ok(&["migrate"], None);
    ok(&["resource", "create", api, "--name", "Hasura", "--ttl", "600"], None);
    ok(&["scope", "create", api, "read:user", "--description", "Read users"], None);
    ok(&["scope", "create", api, "maintain:user"], None);
    ok(&["role", "create", "user:reader"], None);
    ok(&["role", "create", "user:maintainer", "--description", "Maintains users"], None);
    ok(&["role", "add-scope", "user:reader", api, "read:user"], None);
    ok(&["role", "add-scope", "user:maintainer", api, "maintain:user"], None);
    ok(&["user", "create", "alice", "--password-stdin"], Some("a long passphrase\n"));
    ok(&["role", "assign", "user:reader", "alice"], None);
    ok(&["role", "assign", "user:maintainer", "alice"], None);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/custom-claims/logto-hasura-guide.js");
    ok(&["claims", "set", "--script", script.to_str().unwrap(), "--env", "USER_DEFAULT_ROLE_NAMES=user"], None);
    assert!(ok(&["resource", "list"], None).contains(api));
    assert!(ok(&["scope", "list", api], None).contains("Read users"));
    assert!(ok(&["role", "list"], None).contains("Maintains users"));
    assert!(ok(&["claims", "show"], None).contains("USER_DEFAULT_ROLE_NAMES"));

    let claims: serde_json::Value =
        serde_json::from_str(&ok(&["claims", "test", "--user", "alice", "--resource", api], None)).unwrap();
    assert_eq!(claims["aud"], api);
    assert_eq!(claims["scope"], "maintain:user read:user");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 600);
    let hasura = &claims["https://hasura.io/jwt/claims"];
    assert_eq!(hasura["x-hasura-allowed-roles"], serde_json::json!(["user", "user:maintainer", "user:reader"]));

    let out = run(&db, &["claims", "test", "--user", "alice", "--resource", "https://unknown.example"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a known API resource"), "{}", stderr(&out));
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "const getCustomJwtClaims = ({ api }) => api.denyAccess('closed');").unwrap();
    ok(&["claims", "set", "--script", bad.path().to_str().unwrap()], None);
    let out = run(&db, &["claims", "test", "--user", "alice"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("closed"), "{}", stderr(&out));

    let out = run(&db, &["resource", "create", "not-a-uri", "--name", "x"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&db, &["role", "create", "user:reader"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    ok(&["role", "unassign", "user:maintainer", "alice"], None);
    ok(&["role", "remove-scope", "user:reader", api, "read:user"], None);
    ok(&["scope", "delete", api, "maintain:user"], None);
    ok(&["role", "delete", "user:maintainer"], None);
    ok(&["claims", "delete"], None);
    ok(&["resource", "delete", api], None);
    assert!(!ok(&["resource", "list"], None).contains(api));
}
on_both_backends!(rbac_commands, super::rbac_commands_set_up_the_guide_from_a_shell);

async fn app_commands_register_clients(db: TestDb) {
    assert!(run(&db, &["migrate"], None).status.success());
    let out = run(
        &db,
        &["app", "create", "--name", "Portal", "--type", "web", "--redirect-uri", "https://portal.example/cb"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::to_owned).unwrap_or_default()
    };
    let (id, secret) = (field("client_id"), field("client_secret"));
    assert_eq!(id.len(), 21, "{text}");
    assert_eq!(secret.len(), 43, "{text}");
    let out = run(&db, &["app", "list"], None);
    assert!(stdout(&out).contains(&id) && !stdout(&out).contains(&secret), "{}", stdout(&out));
    let out = run(&db, &["app", "rotate-secret", &id], None);
    assert!(out.status.success() && !stdout(&out).contains(&secret), "{}", stderr(&out));
    let out = run(&db, &["app", "create", "--name", "Bad", "--type", "spa", "--redirect-uri", "/relative"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&db, &["app", "create", "--name", "Cron", "--type", "machine"], None);
    assert!(out.status.success());
    let cron = stdout(&out).lines().find_map(|l| l.strip_prefix("client_id: ")).unwrap().to_owned();
    assert!(run(&db, &["role", "create", "bots", "--type", "machine"], None).status.success());
    assert!(run(&db, &["role", "create", "people"], None).status.success());
    let out = run(&db, &["app", "add-role", &cron, "bots"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&db, &["app", "add-role", &cron, "people"], None);
    assert_eq!(out.status.code(), Some(2), "a user role: {}", stderr(&out));
    assert!(run(&db, &["app", "delete", &id], None).status.success());
    assert_eq!(run(&db, &["app", "delete", &id], None).status.code(), Some(1));
}
on_both_backends!(app_commands, super::app_commands_register_clients);

#[test]
fn audit_tail_prints_the_latest_events() {
    let db = TestDb::sqlite();
    assert!(run(&db, &["migrate"], None).status.success());
    assert!(run(&db, &["user", "create", "alice", "--no-password"], None).status.success());
    assert!(run(&db, &["session", "revoke-all", "alice"], None).status.success());
    let out = run(&db, &["audit", "tail", "-n", "5", "--kind", "session_revoked"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("session_revoked") && text.contains("0 session(s) ended by an operator"), "{text}");
    let out = run(&db, &["audit", "tail", "--kind", "sign_in"], None);
    assert!(out.status.success() && stdout(&out).is_empty());
}

#[test]
fn keys_rotate_publishes_the_next_key_and_lists_the_schedule() {
    let db = TestDb::sqlite();
    assert!(run(&db, &["migrate"], None).status.success());
    let dir = db.dir().unwrap();
    let without = run_in(dir, &[("DATABASE_URL", &db.url)], &["keys", "list"], None);
    assert_eq!(without.status.code(), Some(2), "no stored keys without the encryption key");
    assert!(stderr(&without).contains("GATEHOUSE_KEY_ENCRYPTION_KEY"), "{}", stderr(&without));

    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("GATEHOUSE_KEY_ENCRYPTION_KEY", "a-cli-test-encryption-key-of-32-chars-or-more"),
    ];
    let out =
        run_in(dir, &env, &["keys", "rotate", "--alg", "EdDSA", "--publish-for", "600", "--retire-after", "60"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("(Ed25519) is published now and signs from"), "{text}");
    assert!(text.contains("Retiring "), "the first key was stored, then scheduled to retire: {text}");

    let out = run_in(dir, &env, &["keys", "list"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let states: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert_eq!(states, ["retiring", "published"], "{text}");
    let out = run_in(dir, &env, &["audit", "tail", "--kind", "key_rotated"], None);
    assert!(stdout(&out).contains("actor=cli"), "{}", stdout(&out));
}
