//! The HTTP server, started for real on an ephemeral port.

mod common;

use common::{TestDb, spawn_app};

async fn health_and_readiness_answer(db: TestDb) {
    let app = spawn_app(db).await;
    let client = reqwest::Client::new();
    let alive = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);
    assert_eq!(alive.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let missing = client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
on_both_backends!(health_and_readiness_answer, super::health_and_readiness_answer);
