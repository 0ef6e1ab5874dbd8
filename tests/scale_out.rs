//! Several instances on one PostgreSQL: signing keys stored in the database (encrypted) and
//! shared, a key rotation under continuous requests, and revocations that reach every instance.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestApp, TestDb, count, spawn_app_with_settings};
use gatehouse::settings::Settings;
use gatehouse::tokens::hasura_v2::{self, HasuraJwtConfig};
use gatehouse::tokens::stored::{self, KeyVault, RotationTimes};
use gatehouse::tokens::{ClaimsFormat, SigningAlg};
use serde_json::Value;

const ENCRYPTION_KEY: &str = "a-test-key-encryption-key-of-44-characters==";

fn stored_key_settings(db: &TestDb, flags: &[&str]) -> Settings {
    let mut settings = db.settings(flags);
    settings.keys.vault = Some(Arc::new(KeyVault::new(ENCRYPTION_KEY).unwrap()));
    settings
}

/// Three instances started together on one fresh database (the first owns it).
async fn three_instances(db: TestDb, flags: &[&str]) -> [TestApp; 3] {
    let (second, third) = (db.another_instance(), db.another_instance());
    let settings =
        [stored_key_settings(&db, flags), stored_key_settings(&second, flags), stored_key_settings(&third, flags)];
    let [s1, s2, s3] = settings;
    let (a, b, c) = tokio::join!(
        spawn_app_with_settings(db, s1),
        spawn_app_with_settings(second, s2),
        spawn_app_with_settings(third, s3)
    );
    [a, b, c]
}

async fn jwks(app: &TestApp) -> Value {
    reqwest::get(app.url("/webhook/jwks")).await.unwrap().json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn webhook_status(app: &TestApp, token: &str) -> u16 {
    let client = reqwest::Client::new();
    let response = client.get(app.url("/webhook/webhook")).bearer_auth(token).send().await.unwrap();
    response.status().as_u16()
}

fn header_kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_one_stored_key_and_publish_the_same_jwks() {
    let Some(db) = TestDb::postgres().await else { return };
    let apps = three_instances(db, &[]).await;
    let conn = apps[0].db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM gatehouse_signing_key").await, 1, "one key, whoever started first");
    let sealed: String = with_pool!(&conn, pool => sqlx::query_scalar("SELECT private_key FROM gatehouse_signing_key").fetch_one(pool).await.unwrap());
    assert!(!sealed.contains("PRIVATE KEY") && !sealed.contains("MII"), "the private key is stored encrypted");

    let published = jwks(&apps[0]).await;
    assert_eq!(kids(&published).len(), 1);
    for app in &apps[1..] {
        assert_eq!(jwks(app).await, published, "every instance publishes the same JWKS");
    }
    apps[0].create_user("ada", "a long passphrase").await;
    let token = apps[1].login("ada", "a long passphrase").await;
    assert_eq!(header_kid(&token), kids(&published)[0]);
    for app in &apps {
        assert_eq!(webhook_status(app, &token).await, 200, "a token of one instance is good on every one");
    }
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind = 'key_stored'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_on_one_instance_is_refused_by_every_other_within_a_second() {
    let Some(db) = TestDb::postgres().await else { return };
    // A long cache: only the notification can make the other instances see the revocation.
    let apps = three_instances(db, &["--session-cache-ttl", "60"]).await;
    apps[0].create_user("grace", "a long passphrase").await;
    let token = apps[0].login("grace", "a long passphrase").await;
    for app in &apps {
        assert_eq!(webhook_status(app, &token).await, 200);
    }
    let client = reqwest::Client::new();
    let logout = client.post(apps[0].url("/webhook/logout")).bearer_auth(&token).send().await.unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    let ended = Instant::now();
    for app in &apps[1..] {
        loop {
            let status = webhook_status(app, &token).await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(ended.elapsed() < Duration::from_secs(1), "instance {} still accepts the session", app.address);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A revocation made beneath gatehouse (an operator in psql) reaches them as well.
    let other = apps[1].login("grace", "a long passphrase").await;
    for app in &apps {
        assert_eq!(webhook_status(app, &other).await, 200);
    }
    let conn = apps[0].db.connect().await;
    common::execute(&conn, "DELETE FROM gatehouse_session WHERE revoked_at IS NULL").await;
    let deleted = Instant::now();
    for app in &apps {
        while webhook_status(app, &other).await != 401 {
            assert!(
                deleted.elapsed() < Duration::from_secs(1),
                "instance {} still accepts a deleted session",
                app.address
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What Hasura does in JWT mode: fetch the JWKS, keep it for its max-age, verify with it.
struct HasuraLike {
    jwks_url: String,
    cached: Option<(jsonwebtoken::jwk::JwkSet, Instant)>,
    max_age: Duration,
}

impl HasuraLike {
    async fn accepts(&mut self, token: &str) -> Result<(), String> {
        let stale = self.cached.as_ref().is_none_or(|(_, at)| at.elapsed() >= self.max_age);
        if stale {
            let bytes = reqwest::get(&self.jwks_url).await.map_err(|e| e.to_string())?.bytes().await.unwrap();
            self.cached = Some((hasura_v2::parse_jwks(&bytes).unwrap(), Instant::now()));
        }
        let config = HasuraJwtConfig {
            claims_namespace: "https://hasura.io/jwt/claims".into(),
            claims_format: ClaimsFormat::Json,
            issuer: None,
            audience: Vec::new(),
            allowed_skew_secs: 0.0,
        };
        let report = hasura_v2::check_now(token, &self.cached.as_ref().unwrap().0, &config);
        if report.accepted() { Ok(()) } else { Err(report.to_string()) }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_under_continuous_requests_fails_nothing() {
    let Some(db) = TestDb::postgres().await else { return };
    let flags = ["--jwks-max-age", "1", "--key-reload-interval", "1", "--access-token-ttl", "3"];
    let apps = Arc::new(three_instances(db, &flags).await);
    for i in 0..4 {
        apps[0].create_user(&format!("worker{i}"), "a long passphrase").await;
    }
    let old_kid = kids(&jwks(&apps[0]).await)[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for i in 0..4usize {
        let (apps, stop, requests) = (apps.clone(), stop.clone(), requests.clone());
        workers.push(tokio::spawn(async move {
            let mut hasura = HasuraLike {
                jwks_url: apps[(i + 2) % 3].url("/webhook/jwks"),
                cached: None,
                max_age: Duration::from_secs(1),
            };
            let mut kids_seen = Vec::new();
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                let token = apps[n % 3].login(&format!("worker{i}"), "a long passphrase").await;
                let status = webhook_status(&apps[(n + 1) % 3], &token).await;
                if status != 200 {
                    return Err(format!("webhook answered {status} for a fresh token"));
                }
                hasura.accepts(&token).await.map_err(|e| format!("Hasura would refuse a fresh token: {e}"))?;
                let kid = header_kid(&token);
                if !kids_seen.contains(&kid) {
                    kids_seen.push(kid);
                }
                requests.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok(kids_seen)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let conn = apps[0].db.connect().await;
    let vault = KeyVault::new(ENCRYPTION_KEY).unwrap();
    // Published for longer than the JWKS max-age (1 s) plus the reload interval (1 s); the old
    // key verifies for longer than the access-token lifetime (3 s).
    let times = RotationTimes { publish_for: Duration::from_secs(3), retire_after: Duration::from_secs(4) };
    let rotation = stored::rotate(&conn, &vault, SigningAlg::EdDsa, times, "cli").await.unwrap();
    assert_eq!(rotation.retiring, vec![old_kid.clone()]);
    // Until the old key retires, and a little after.
    tokio::time::sleep(Duration::from_secs(9)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all_kids = Vec::new();
    for worker in workers {
        let kids_seen = worker.await.unwrap().unwrap_or_else(|e| panic!("a request failed during the rotation: {e}"));
        all_kids.extend(kids_seen);
    }
    assert!(requests.load(Ordering::Relaxed) > 20, "the load kept going");
    assert!(all_kids.contains(&old_kid) && all_kids.contains(&rotation.kid), "tokens of both keys: {all_kids:?}");
    for app in apps.iter() {
        assert_eq!(kids(&jwks(app).await), vec![rotation.kid.clone()], "the old key is retired everywhere");
        let token = app.login("worker0", "a long passphrase").await;
        assert_eq!(header_kid(&token), rotation.kid);
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().alg, jsonwebtoken::Algorithm::EdDSA);
    }
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind = 'key_rotated' AND actor = 'cli'").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_keys_import_the_configured_key_and_never_open_with_another_secret() {
    let db = TestDb::sqlite();
    // A key the deployment used before its keys moved to the database.
    let file_mode = db.settings(&[]);
    let file_key = gatehouse::startup::tokens(&file_mode, &db.connect().await).await.unwrap().keys().kid().to_owned();
    let mut settings = stored_key_settings(&db, &[]);
    settings.keys.data_dir = file_mode.keys.data_dir.clone();
    let app = spawn_app_with_settings(db, settings.clone()).await;
    assert_eq!(kids(&jwks(&app).await), vec![file_key.clone()], "the file key was imported, not replaced");
    let conn = app.db.connect().await;
    drop(conn);

    let mut wrong = settings.clone();
    wrong.keys.vault = Some(Arc::new(KeyVault::new("another-encryption-key-of-at-least-32-chars").unwrap()));
    let err = gatehouse::startup::tokens(&wrong, &app.db.connect().await).await.unwrap_err().to_string();
    assert!(err.contains("cannot be decrypted"), "{err}");
    let conn = app.db.connect().await;
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM gatehouse_signing_key").await, 1, "nothing was replaced");
    let again = gatehouse::startup::tokens(&settings, &conn).await.unwrap();
    assert_eq!(again.keys().kid(), file_key, "a restart with the right secret finds the same key");
}
