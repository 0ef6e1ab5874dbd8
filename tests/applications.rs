//! The OIDC provider's applications through the admin API: types, exact redirect URIs, secrets
//! shown once and stored hashed, machine roles.

mod common;

use common::{TestApp, TestDb, count, spawn_app_with_settings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

const SECRET: &str = "an-admin-secret-that-is-long-enough-to-pass";

async fn spawn(db: TestDb) -> TestApp {
    let mut settings = db.settings(&[]);
    settings.admin.secret_digest = Some(sha2::Sha256::digest(SECRET).into());
    spawn_app_with_settings(db, settings).await
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, app.url(path)).bearer_auth(SECRET);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn applications_are_registered_with_hashed_secrets(db: TestDb) {
    let app = spawn(db).await;
    let web = json!({"name": "Portal", "type": "Traditional", "redirectUris": ["https://portal.example/callback"],
                     "postLogoutRedirectUris": ["https://portal.example/"]});
    let (status, created) = admin(&app, Method::POST, "/api/applications", Some(web)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["type"], "web");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "256 bits");
    let db = app.db.connect().await;
    let stored = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM gatehouse_application WHERE secret_digest = '{}'",
            hex::encode(sha2::Sha256::digest(&secret))
        ),
    )
    .await;
    assert_eq!(stored, 1, "only the digest is stored");
    let (_, shown) = admin(&app, Method::GET, &format!("/api/applications/{id}"), None).await;
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    assert_eq!(shown["redirectUris"], json!(["https://portal.example/callback"]));

    let (status, rotated) = admin(&app, Method::POST, &format!("/api/applications/{id}/secret"), None).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], secret.as_str());
    let accounts = gatehouse::oidc::Applications::new(db.clone());
    assert!(accounts.authenticate(&id, &secret).await.unwrap().is_none(), "the old secret stops working");
    assert!(accounts.authenticate(&id, rotated["secret"].as_str().unwrap()).await.unwrap().is_some());

    let (status, spa) = admin(
        &app,
        Method::POST,
        "/api/applications",
        Some(json!({"name": "SPA", "type": "spa", "redirectUris": ["http://localhost:5173/callback"]})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(spa.get("secret").is_none(), "public clients have no secret");
    let spa_id = spa["id"].as_str().unwrap();
    assert_eq!(admin(&app, Method::POST, &format!("/api/applications/{spa_id}/secret"), None).await.0, 409);

    let patch = json!({"redirectUris": ["http://localhost:5173/callback", "http://localhost:5173/cb2"]});
    let (status, patched) = admin(&app, Method::PATCH, &format!("/api/applications/{spa_id}"), Some(patch)).await;
    assert_eq!(status, 200);
    assert_eq!(patched["redirectUris"].as_array().unwrap().len(), 2);

    // Machine applications hold machine roles, and nothing else.
    let (_, machine) =
        admin(&app, Method::POST, "/api/applications", Some(json!({"name": "Cron", "type": "machine"}))).await;
    let machine_id = machine["id"].as_str().unwrap();
    let (_, bots) = admin(&app, Method::POST, "/api/roles", Some(json!({"name": "bots", "type": "machine"}))).await;
    let (_, people) = admin(&app, Method::POST, "/api/roles", Some(json!({"name": "people"}))).await;
    let roles = format!("/api/applications/{machine_id}/roles");
    let (status, held) = admin(&app, Method::POST, &roles, Some(json!({"roleIds": [bots["id"]]}))).await;
    assert_eq!(status, 201, "{held}");
    assert_eq!(held[0]["name"], "bots");
    assert_eq!(admin(&app, Method::POST, &roles, Some(json!({"roleIds": [people["id"]]}))).await.0, 400);
    let spa_roles = format!("/api/applications/{spa_id}/roles");
    assert_eq!(admin(&app, Method::POST, &spa_roles, Some(json!({"roleIds": [bots["id"]]}))).await.0, 400);
    let path = format!("{roles}/{}", bots["id"]);
    assert_eq!(admin(&app, Method::DELETE, &path, None).await.0, 204);
    assert_eq!(admin(&app, Method::DELETE, &path, None).await.0, 404);

    let before = count(&db, "SELECT COUNT(*) FROM gatehouse_application").await;
    let bad: Vec<(Method, String, Value, u16)> = vec![
        (Method::POST, "/api/applications".into(), json!({"name": "x"}), 400),
        (Method::POST, "/api/applications".into(), json!({"name": "x", "type": "desktop"}), 400),
        (Method::POST, "/api/applications".into(), json!({"type": "spa"}), 400),
        (
            Method::POST,
            "/api/applications".into(),
            json!({"name": "x", "type": "spa", "redirectUris": ["/relative"]}),
            400,
        ),
        (
            Method::POST,
            "/api/applications".into(),
            json!({"name": "x", "type": "spa", "redirectUris": ["https://a.example/#f"]}),
            400,
        ),
        (
            Method::POST,
            "/api/applications".into(),
            json!({"name": "x", "type": "spa", "redirectUris": "https://a.example/"}),
            400,
        ),
        (
            Method::POST,
            "/api/applications".into(),
            json!({"name": "x", "type": "machine", "redirectUris": ["https://a.example/"]}),
            400,
        ),
        (Method::PATCH, format!("/api/applications/{spa_id}"), json!({"type": "web"}), 400),
        (
            Method::PATCH,
            format!("/api/applications/{machine_id}"),
            json!({"redirectUris": ["https://a.example/"]}),
            400,
        ),
        (Method::PATCH, "/api/applications/nope".into(), json!({"name": "x"}), 404),
        (Method::GET, "/api/applications/nope".into(), Value::Null, 404),
        (Method::DELETE, "/api/applications/nope".into(), Value::Null, 404),
        (Method::POST, "/api/applications/nope/secret".into(), Value::Null, 404),
        (Method::POST, roles.clone(), json!({"roleIds": [999999]}), 400),
    ];
    for (method, path, body, status) in bad {
        let body = if body.is_null() { None } else { Some(body) };
        let (got, answer) = admin(&app, method.clone(), &path, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{method} {path} {body:?}: {answer}");
        assert!(answer["errors"][0]["type"].is_string(), "{answer}");
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_application").await, before);
    let unauthenticated = reqwest::get(app.url("/api/applications")).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    assert_eq!(admin(&app, Method::DELETE, &format!("/api/applications/{machine_id}"), None).await.0, 204);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_application_role").await, 0);
    let (_, list) = admin(&app, Method::GET, "/api/applications", None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}
on_both_backends!(applications, super::applications_are_registered_with_hashed_secrets);
