//! Sessions over real HTTP: refresh-token rotation, the grace window, theft detection, logout,
//! and sessions that end when the account changes — seen by refresh and by the webhook.

mod common;

use common::{TestApp, TestDb, count, execute, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "a long passphrase";

async fn login(app: &TestApp, username: &str) -> Value {
    let response = app.post_json("/webhook/login", &json!({"username": username, "password": PASSWORD})).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response = app.post_json("/webhook/refresh", &json!({"refresh_token": token})).await;
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn webhook(app: &TestApp, access: &str) -> StatusCode {
    let client = reqwest::Client::new();
    client.get(app.url("/webhook/webhook")).bearer_auth(access).send().await.unwrap().status()
}

fn str_of<'a>(json: &'a Value, key: &str) -> &'a str {
    json[key].as_str().unwrap_or_else(|| panic!("{key} in {json}"))
}

async fn refresh_rotates_and_recomputes_claims(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("alice", PASSWORD).await;
    let first = login(&app, "alice").await;
    let refresh_token = str_of(&first, "refresh_token");
    assert_eq!(refresh_token.len(), 43);
    assert_eq!(first["refresh_expires_in"], 30 * 86_400);
    let stored = count(app.accounts().await.db(), "SELECT COUNT(*) FROM gatehouse_refresh_token").await;
    assert_eq!(stored, 1);
    let digests: i64 = count(
        app.accounts().await.db(),
        &format!("SELECT COUNT(*) FROM gatehouse_refresh_token WHERE digest = '{refresh_token}'"),
    )
    .await;
    assert_eq!(digests, 0, "only a digest is stored, never the token");

    let accounts = app.accounts().await;
    accounts.create_group("editors").await.unwrap();
    accounts.set_membership("alice", "editors", true).await.unwrap();
    let (status, second) = refresh(&app, refresh_token).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(str_of(&second, "refresh_token"), refresh_token, "rotated");
    assert!(second["refresh_expires_in"].as_u64().unwrap() <= 30 * 86_400, "never extended");
    let claims = claims_of(str_of(&second, "token"));
    assert_eq!(claims["https://hasura.io/jwt/claims"]["x-hasura-allowed-roles"], json!(["user", "editors"]));
    assert_eq!(claims["sid"], claims_of(str_of(&first, "token"))["sid"], "same session");
    assert_eq!(webhook(&app, str_of(&second, "token")).await, 200);

    let (status, third) = refresh(&app, str_of(&second, "refresh_token")).await;
    assert_eq!(status, 200, "{third}");
}
on_both_backends!(refresh_rotates_and_recomputes_claims, super::refresh_rotates_and_recomputes_claims);

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn reuse_within_the_grace_window_returns_the_same_successor(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("bob", PASSWORD).await;
    let start = login(&app, "bob").await;
    let token = str_of(&start, "refresh_token");
    let (_, a) = refresh(&app, token).await;
    let (status, b) = refresh(&app, token).await;
    assert_eq!(status, 200, "a second tab within the grace window: {b}");
    assert_eq!(str_of(&a, "refresh_token"), str_of(&b, "refresh_token"));
    assert_eq!(refresh(&app, str_of(&b, "refresh_token")).await.0, 200);
}
on_both_backends!(
    reuse_within_the_grace_window_returns_the_same_successor,
    super::reuse_within_the_grace_window_returns_the_same_successor
);

async fn reuse_after_the_grace_window_revokes_the_family(db: TestDb) {
    let app = spawn_app_with(db, &["--refresh-reuse-grace", "1"]).await;
    app.create_user("carol", PASSWORD).await;
    let start = login(&app, "carol").await;
    let stolen = str_of(&start, "refresh_token").to_owned();
    let (_, next) = refresh(&app, &stolen).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, json) = refresh(&app, &stolen).await;
    assert_eq!(status, 401);
    assert_eq!(json["errors"][0]["type"], "InvalidRefreshToken");
    let (status, _) = refresh(&app, str_of(&next, "refresh_token")).await;
    assert_eq!(status, 401, "the whole family is revoked, the legitimate successor too");
    assert_eq!(webhook(&app, str_of(&next, "token")).await, 401, "and its access tokens at once");
    let db = app.accounts().await;
    assert_eq!(
        count(db.db(), "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind = 'refresh_token_reuse'").await,
        1
    );
    assert_eq!(
        count(db.db(), "SELECT COUNT(*) FROM gatehouse_audit_event WHERE detail LIKE '%' || (SELECT password FROM auth_user LIMIT 1) || '%'").await,
        0
    );
}
on_both_backends!(
    reuse_after_the_grace_window_revokes_the_family,
    super::reuse_after_the_grace_window_revokes_the_family
);

async fn fifty_concurrent_refreshes_leave_one_live_successor(db: TestDb) {
    let app = std::sync::Arc::new(spawn_app(db).await);
    app.create_user("dave", PASSWORD).await;
    let start = login(&app, "dave").await;
    let token = str_of(&start, "refresh_token").to_owned();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { refresh(&app, &token).await })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for task in tasks {
        let (status, json) = task.await.unwrap();
        assert_eq!(status, 200, "{json}");
        successors.insert(str_of(&json, "refresh_token").to_owned());
    }
    assert_eq!(successors.len(), 1, "every caller got the same successor");
    let db = app.accounts().await;
    assert_eq!(count(db.db(), "SELECT COUNT(*) FROM gatehouse_refresh_token WHERE rotated_at IS NULL").await, 1);
    assert_eq!(count(db.db(), "SELECT COUNT(*) FROM gatehouse_refresh_token").await, 2);
}
on_both_backends!(
    fifty_concurrent_refreshes_leave_one_live_successor,
    super::fifty_concurrent_refreshes_leave_one_live_successor
);

async fn logout_ends_one_session_and_logout_all_ends_every_one(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("erin", PASSWORD).await;
    let (one, two, three) = (login(&app, "erin").await, login(&app, "erin").await, login(&app, "erin").await);
    let client = reqwest::Client::new();

    let response = app.post_json("/webhook/logout", &json!({"refresh_token": str_of(&one, "refresh_token")})).await;
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"revoked": 1}));
    let again = app.post_json("/webhook/logout", &json!({"refresh_token": str_of(&one, "refresh_token")})).await;
    assert_eq!(
        (again.status(), again.json::<Value>().await.unwrap()),
        (StatusCode::OK, json!({"revoked": 0})),
        "idempotent"
    );
    assert_eq!(refresh(&app, str_of(&one, "refresh_token")).await.0, 401);
    assert_eq!(webhook(&app, str_of(&one, "token")).await, 401);
    assert_eq!(webhook(&app, str_of(&two, "token")).await, 200, "other sessions live on");

    let by_access = client.post(app.url("/webhook/logout")).bearer_auth(str_of(&two, "token")).send().await.unwrap();
    assert_eq!(by_access.json::<Value>().await.unwrap(), json!({"revoked": 1}));
    assert_eq!(webhook(&app, str_of(&two, "token")).await, 401);

    let four = login(&app, "erin").await;
    let all = client
        .post(app.url("/webhook/logout"))
        .bearer_auth(str_of(&three, "token"))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(all.json::<Value>().await.unwrap(), json!({"revoked": 2}));
    for session in [&three, &four] {
        assert_eq!(webhook(&app, str_of(session, "token")).await, 401);
        assert_eq!(refresh(&app, str_of(session, "refresh_token")).await.0, 401);
    }
    let nothing = client.post(app.url("/webhook/logout")).send().await.unwrap();
    assert_eq!(nothing.status(), 401);
    let bad = app.post_json("/webhook/logout", &json!({"all": "yes"})).await;
    assert_eq!(bad.status(), 400);
}
on_both_backends!(
    logout_ends_one_session_and_logout_all_ends_every_one,
    super::logout_ends_one_session_and_logout_all_ends_every_one
);

async fn account_changes_in_django_end_sessions(db: TestDb) {
    let app = spawn_app(db).await;
    for name in ["frank", "grace", "heidi", "ivan"] {
        app.create_user(name, PASSWORD).await;
    }
    let sessions: Vec<Value> = futures_join(&app, &["frank", "grace", "heidi", "ivan"]).await;
    let db = app.accounts().await;
    // What Django's set_password + save() writes, straight into the table.
    let new_hash =
        gatehouse::django::hashers::encode_pbkdf2_sha256("another passphrase", "abcdefghijklmnopqrstuv", 1000);
    execute(db.db(), &format!("UPDATE auth_user SET password = '{new_hash}' WHERE username = 'frank'")).await;
    // The Django admin unticking "active", and deleting a user.
    execute(db.db(), "UPDATE auth_user SET is_active = false WHERE username = 'grace'").await;
    execute(db.db(), "DELETE FROM auth_user WHERE username = 'heidi'").await;
    // The webhook's cache may answer for up to a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for session in &sessions[..3] {
        assert_eq!(
            webhook(&app, str_of(session, "token")).await,
            401,
            "{}",
            claims_of(str_of(session, "token"))["username"]
        );
        assert_eq!(refresh(&app, str_of(session, "refresh_token")).await.0, 401);
    }
    assert_eq!(webhook(&app, str_of(&sessions[3], "token")).await, 200, "untouched users keep their sessions");
    assert_eq!(refresh(&app, str_of(&sessions[3], "refresh_token")).await.0, 200);
    let reasons = count(
        db.db(),
        "SELECT COUNT(*) FROM gatehouse_session WHERE revoked_reason IN ('password_changed', 'user_deactivated', 'user_deleted')",
    )
    .await;
    assert_eq!(reasons, 3);
}
on_both_backends!(account_changes_in_django_end_sessions, super::account_changes_in_django_end_sessions);

async fn futures_join(app: &TestApp, names: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for name in names {
        out.push(login(app, name).await);
    }
    out
}

#[tokio::test]
async fn bad_refresh_tokens_all_get_the_same_401() {
    let app = spawn_app(TestDb::sqlite()).await;
    app.create_user("judy", PASSWORD).await;
    let real = login(&app, "judy").await;
    let real_token = str_of(&real, "refresh_token");
    let unknown = "A".repeat(43);
    let accented = "é".repeat(22);
    let cases = [unknown.as_str(), "short", &"x".repeat(10_000), accented.as_str(), &format!("{real_token} ")];
    let mut answers = Vec::new();
    for token in cases {
        let (status, json) = refresh(&app, token).await;
        assert_eq!(status, 401, "{token:.20}");
        answers.push(json);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    for body in [json!({}), json!({"refresh_token": 5}), json!({"refresh_token": "x".repeat(20_000)}), json!([])] {
        let (status, json) = body_of(app.post_json("/webhook/refresh", &body).await).await;
        assert_eq!((status, &json), (StatusCode::UNAUTHORIZED, &answers[0]), "{body:.40}");
    }
    assert_eq!(refresh(&app, real_token).await.0, 200, "the real one still works after all that");
}

async fn users_and_operators_can_list_and_end_sessions(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("kate", PASSWORD).await;
    app.create_user("leo", PASSWORD).await;
    let (laptop, phone) = (login(&app, "kate").await, login(&app, "kate").await);
    let leo = login(&app, "leo").await;
    let client = reqwest::Client::new();

    let listed: Value = client
        .get(app.url("/webhook/sessions"))
        .bearer_auth(str_of(&laptop, "token"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| !s.to_string().contains(str_of(&laptop, "refresh_token"))));
    let phone_sid = claims_of(str_of(&phone, "token"))["sid"].as_str().unwrap().to_owned();
    let leo_sid = claims_of(str_of(&leo, "token"))["sid"].as_str().unwrap().to_owned();

    let other_users = client
        .delete(app.url(&format!("/webhook/sessions/{leo_sid}")))
        .bearer_auth(str_of(&laptop, "token"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_users.status(), 404, "nobody ends another user's session");
    let ended = client
        .delete(app.url(&format!("/webhook/sessions/{phone_sid}")))
        .bearer_auth(str_of(&laptop, "token"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.json::<Value>().await.unwrap(), json!({"revoked": 1}));
    assert_eq!(webhook(&app, str_of(&phone, "token")).await, 401);
    assert_eq!(client.get(app.url("/webhook/sessions")).send().await.unwrap().status(), 401);

    // The operator's side, through the binary against the same database.
    let gatehouse = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .output()
            .unwrap()
    };
    let out = gatehouse(&["session", "list", "leo"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&leo_sid), "{}", String::from_utf8_lossy(&out.stderr));
    let out = gatehouse(&["session", "revoke", &leo_sid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(gatehouse(&["session", "revoke", &leo_sid]).status.code(), Some(1), "already ended");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(webhook(&app, str_of(&leo, "token")).await, 401, "seen by the server within a second");
    let out = gatehouse(&["session", "revoke-all", "kate"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Ended 1 session(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(refresh(&app, str_of(&laptop, "refresh_token")).await.0, 401);
}
on_both_backends!(users_and_operators_can_list_and_end_sessions, super::users_and_operators_can_list_and_end_sessions);

#[tokio::test]
async fn browsers_can_keep_the_refresh_token_in_an_http_only_cookie() {
    let app = spawn_app_with(TestDb::sqlite(), &["--refresh-cookie", "true"]).await;
    app.create_user("mike", PASSWORD).await;
    let response = app.post_json("/webhook/login", &json!({"username": "mike", "password": PASSWORD})).await;
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/webhook/refresh", "Max-Age=2592000"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "not readable by scripts: {body}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let csrf = str_of(&body, "csrf_token").to_owned();
    let client = reqwest::Client::new();
    let with_cookie = |csrf: Option<&str>| {
        let mut request = client.post(app.url("/webhook/refresh")).header("cookie", format!("theme=dark; {cookie}"));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    assert_eq!(with_cookie(None).await.unwrap().status(), 403, "a cross-site request has no CSRF token");
    assert_eq!(with_cookie(Some("forged")).await.unwrap().status(), 403);
    let refreshed = with_cookie(Some(&csrf)).await.unwrap();
    assert_eq!(refreshed.status(), 200);
    assert!(refreshed.headers()["set-cookie"].to_str().unwrap().starts_with("gatehouse_refresh="), "rotated cookie");
    let next: Value = refreshed.json().await.unwrap();
    assert_ne!(str_of(&next, "csrf_token"), csrf, "the CSRF token follows the rotation");

    let logout = client.post(app.url("/webhook/logout")).bearer_auth(str_of(&next, "token")).send().await.unwrap();
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the cookie is cleared");
}

async fn body_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A login that upgrades an old hash must start a session on the new hash, not a dead one.
async fn a_login_that_upgrades_the_hash_keeps_its_session(db: TestDb) {
    let app = spawn_app(db).await;
    let accounts = app.accounts().await;
    let md5 = "md5$wmoD5qMUm9pNiOm8rbDBxB$38c55f706252661a7818dba552dee005"; // Django 6.1.3, "correct horse ☃"
    common::insert_user_with_hash(accounts.db(), "olga", md5).await;
    let response = app.post_json("/webhook/login", &json!({"username": "olga", "password": "correct horse ☃"})).await;
    let session: Value = response.json().await.unwrap();
    assert!(accounts.db().user_by_username("olga").await.unwrap().unwrap().password.starts_with("pbkdf2_sha256$"));
    assert_eq!(webhook(&app, str_of(&session, "token")).await, 200);
    assert_eq!(refresh(&app, str_of(&session, "refresh_token")).await.0, 200);
}
on_both_backends!(
    a_login_that_upgrades_the_hash_keeps_its_session,
    super::a_login_that_upgrades_the_hash_keeps_its_session
);

async fn stale_credentials_cannot_end_every_session(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("pete", PASSWORD).await;
    let old = login(&app, "pete").await;
    let stale = str_of(&old, "refresh_token").to_owned();
    refresh(&app, &stale).await;
    let revoked_session = login(&app, "pete").await;
    app.post_json("/webhook/logout", &json!({"refresh_token": str_of(&revoked_session, "refresh_token")})).await;
    let live = login(&app, "pete").await;
    // The stale token is past its grace window only after a while; a revoked session at once.
    let response = app
        .post_json("/webhook/logout", &json!({"refresh_token": str_of(&revoked_session, "refresh_token"), "all": true}))
        .await;
    assert_eq!(response.status(), 401);
    let client = reqwest::Client::new();
    let by_dead_access = client
        .post(app.url("/webhook/logout"))
        .bearer_auth(str_of(&revoked_session, "token"))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_dead_access.status(), 401);
    assert_eq!(webhook(&app, str_of(&live, "token")).await, 200, "the live session survives");
}
on_both_backends!(stale_credentials_cannot_end_every_session, super::stale_credentials_cannot_end_every_session);

#[tokio::test]
async fn no_access_token_outlives_its_session() {
    let app = spawn_app_with(TestDb::sqlite(), &["--session-ttl", "120"]).await;
    app.create_user("quinn", PASSWORD).await;
    let session = login(&app, "quinn").await;
    assert_eq!(session["expires_in"], 120);
    let claims = claims_of(str_of(&session, "token"));
    assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() <= 120);
}

#[tokio::test]
async fn nul_characters_are_refused_not_a_server_error() {
    for db in [Some(TestDb::sqlite()), TestDb::postgres().await].into_iter().flatten() {
        let app = spawn_app(db).await;
        for body in
            [json!({"username": "a\u{0}b", "password": PASSWORD}), json!({"username": "alice", "password": "x\u{0}"})]
        {
            let (status, json) = body_of(app.post_json("/webhook/login", &body).await).await;
            assert_eq!(status, 400, "{json}");
            assert_eq!(json["errors"][0]["code"], "null_characters_not_allowed");
        }
        let (status, _) = body_of(
            app.post_json(
                "/webhook/signup",
                &json!({"username": "rita", "password": PASSWORD, "email": "r\u{0}@x.org"}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn the_refresh_cookie_follows_the_public_path() {
    let flags = ["--refresh-cookie", "true", "--public-url", "https://example.com/auth/"];
    let app = spawn_app_with(TestDb::sqlite(), &flags).await;
    app.create_user("sam", PASSWORD).await;
    let response = app.post_json("/webhook/login", &json!({"username": "sam", "password": PASSWORD})).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Path=/auth/webhook/refresh;"), "{cookie}");
}
