use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// The process is up and serving HTTP.
pub async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and a published key signs; a load balancer should send traffic here.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Err(err) = state.accounts.db().ping().await {
        tracing::warn!(error = %err, "readiness check: database unreachable");
        return unavailable("database");
    }
    let keys = state.tokens.keys();
    let signer = keys.signer();
    if !keys.verifying_keys().iter().any(|k| k.kid == signer.kid()) {
        tracing::warn!(kid = signer.kid(), "readiness check: the signing key is retired; are the keys being re-read?");
        return unavailable("keys");
    }
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}

fn unavailable(reason: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": reason })))
}
