//! Brute-force limits, the bounded hashing queue and the audit trail, over real HTTP. The limits
//! live in memory, not in the database, so those tests run on SQLite only; the audit log runs on
//! both backends.

mod common;

use common::{ADMIN_SECRET, TestApp, TestDb, count, execute, spawn_app_with, spawn_app_with_settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "a long passphrase";

async fn login_from(app: &TestApp, forwarded_for: Option<&str>, username: &str, password: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/webhook/login"))
        .json(&json!({"username": username, "password": password}));
    if let Some(ip) = forwarded_for {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.unwrap()
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    login_from(app, None, username, password).await
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_lock_the_account_name_before_any_hash() {
    let app = spawn_app_with(TestDb::sqlite(), &["--login-max-failures", "3"]).await;
    app.create_user("alice", PASSWORD).await;
    app.create_user("bob", PASSWORD).await;
    for name in ["alice", "mallory"] {
        for _ in 0..3 {
            assert_eq!(login(&app, name, "wrong").await.status(), 401);
        }
    }
    let hashes = app.hashing.computed();
    for name in ["alice", "mallory"] {
        // Refused even with the right password, and the same way for a name that does not exist.
        let refused = login(&app, name, PASSWORD).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert!((1..=300).contains(&retry_after(&refused)));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["type"], "TooManyRequests");
    }
    assert_eq!(app.hashing.computed(), hashes, "no hash ran for refused attempts");
    assert_eq!(login(&app, "bob", PASSWORD).await.status(), 200, "other accounts are not affected");
    let db = app.db.connect().await;
    let kinds = "SELECT COUNT(*) FROM gatehouse_audit_event WHERE ip = '127.0.0.1' AND kind = ";
    assert_eq!(count(&db, &format!("{kinds}'sign_in_failed'")).await, 6, "refused attempts are not written");
    assert_eq!(count(&db, &format!("{kinds}'sign_in'")).await, 1);
    let details =
        "SELECT COUNT(*) FROM gatehouse_audit_event WHERE detail LIKE '%wrong%' OR detail LIKE '%passphrase%'";
    assert_eq!(count(&db, details).await, 0, "no password in the audit log");

    // A success clears the account's failures.
    assert_eq!(login(&app, "bob", "wrong").await.status(), 401);
    assert_eq!(login(&app, "bob", "wrong").await.status(), 401);
    assert_eq!(login(&app, "bob", PASSWORD).await.status(), 200);
    assert_eq!(login(&app, "bob", "wrong").await.status(), 401);
    assert_eq!(login(&app, "bob", "wrong").await.status(), 401);
    assert_eq!(login(&app, "bob", PASSWORD).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_limits_believe_forwarded_addresses_only_from_trusted_proxies() {
    let flags = ["--login-max-failures-per-ip", "2", "--trusted-proxies", "127.0.0.1"];
    let app = spawn_app_with(TestDb::sqlite(), &flags).await;
    app.create_user("alice", PASSWORD).await;
    assert_eq!(login_from(&app, Some("203.0.113.1"), "a", "wrong").await.status(), 401);
    assert_eq!(login_from(&app, Some("203.0.113.1"), "b", "wrong").await.status(), 401);
    assert_eq!(login_from(&app, Some("203.0.113.1"), "alice", PASSWORD).await.status(), 429);
    assert_eq!(login_from(&app, Some("203.0.113.2"), "alice", PASSWORD).await.status(), 200);
    // The client cannot pick its address by prepending to the header.
    let spoofed = "203.0.113.9, 203.0.113.1";
    assert_eq!(login_from(&app, Some(spoofed), "alice", PASSWORD).await.status(), 429);

    let untrusting = spawn_app_with(TestDb::sqlite(), &["--login-max-failures-per-ip", "2"]).await;
    untrusting.create_user("alice", PASSWORD).await;
    assert_eq!(login_from(&untrusting, Some("203.0.113.1"), "a", "wrong").await.status(), 401);
    assert_eq!(login_from(&untrusting, Some("203.0.113.2"), "b", "wrong").await.status(), 401);
    let refused = login_from(&untrusting, Some("203.0.113.3"), "alice", PASSWORD).await;
    assert_eq!(refused.status(), 429, "without a trusted proxy the header is ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_are_rate_limited_before_hashing() {
    let app = spawn_app_with(TestDb::sqlite(), &["--signups-per-minute", "2"]).await;
    for name in ["carol", "dave"] {
        let response = app.post_json("/webhook/signup", &json!({"username": name, "password": PASSWORD})).await;
        assert_eq!(response.status(), 200);
    }
    let hashes = app.hashing.computed();
    let refused = app.post_json("/webhook/signup", &json!({"username": "erin", "password": PASSWORD})).await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) <= 60);
    assert_eq!(app.hashing.computed(), hashes);
    let db = app.db.connect().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_user WHERE username = 'erin'").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind = 'signup'").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_instead_of_waiting() {
    // One slot, one waiting place, and hashes slow enough that a burst finds both taken.
    let flags = ["--hash-concurrency", "1", "--hash-queue", "1", "--pbkdf2-iterations", "2000000"];
    let app = spawn_app_with(TestDb::sqlite(), &flags).await;
    let url = app.url("/webhook/login");
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let request =
                reqwest::Client::new().post(&url).json(&json!({"username": format!("nobody{i}"), "password": "x"}));
            tokio::spawn(request.send())
        })
        .collect();
    let mut responses = Vec::new();
    for attempt in attempts {
        responses.push(attempt.await.unwrap().unwrap());
    }
    let mut busy = 0;
    for response in &responses {
        match response.status().as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(retry_after(response), 1);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(busy >= 4, "{busy} of 8 were refused; the queue holds 2 at most");
    // Nothing else waits behind password hashing.
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(app.url("/webhook/jwks")).await.unwrap().status(), 200);
}

async fn the_audit_log_is_listed_and_kept_for_its_retention(db: TestDb) {
    // An event from two days ago, written before the server starts: a retention of one day
    // deletes it when `serve` starts.
    let accounts = db.accounts().await;
    execute(
        accounts.db(),
        "INSERT INTO gatehouse_audit_event (at, kind, user_id, session_id, ip, detail) \
         VALUES ('2000-01-01 00:00:00', 'sign_in', NULL, NULL, NULL, 'long ago')",
    )
    .await;
    let mut settings = db.settings(&["--audit-retention-days", "1"]);
    settings.admin.secret_digest = Some(<sha2::Sha256 as sha2::Digest>::digest(ADMIN_SECRET).into());
    let app = spawn_app_with_settings(db, settings).await;
    app.create_user("alice", PASSWORD).await;
    assert_eq!(login(&app, "alice", "wrong").await.status(), 401);
    assert_eq!(login(&app, "alice", PASSWORD).await.status(), 200);

    let list = |query: &'static str, credential: &'static str| {
        let request = reqwest::Client::new().get(app.url(&format!("/api/audit-events{query}"))).bearer_auth(credential);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(list("", "not-the-secret").await.status(), 401);
    let response = list("?kind=sign_in_failed", ADMIN_SECRET).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["total-number"], "1");
    let events: Value = response.json().await.unwrap();
    assert_eq!(events[0]["kind"], "sign_in_failed");
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert_eq!(events[0]["detail"], "for \"alice\"");
    assert_eq!(events[0]["outcome"], "failure");
    assert_eq!(events[0]["actor"], Value::Null, "an anonymous attempt");
    let all: Value = list("?page_size=100", ADMIN_SECRET).await.json().await.unwrap();
    assert_eq!(all[0]["kind"], "sign_in", "newest first");
    assert_eq!(all[0]["outcome"], "success");
    assert_eq!(all[0]["actor"], format!("user:{}", all[0]["userId"]));
    let db = app.db.connect().await;
    let mut gone = false;
    for _ in 0..50 {
        if count(&db, "SELECT COUNT(*) FROM gatehouse_audit_event WHERE detail = 'long ago'").await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the event past its retention was deleted");
}
on_both_backends!(audit_log, super::the_audit_log_is_listed_and_kept_for_its_retention);
