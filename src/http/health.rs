use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::DATABASE_RETRY_AFTER_SECS;

/// The process is up and serving HTTP.
pub async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and a published key signs; a load balancer should send traffic here.
pub async fn ready(State(state): State<AppState>) -> Response {
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
    Json(json!({ "status": "ok" })).into_response()
}

fn unavailable(reason: &str) -> Response {
    let body = Json(json!({ "status": "unavailable", "reason": reason }));
    let retry_after = [(header::RETRY_AFTER, HeaderValue::from(DATABASE_RETRY_AFTER_SECS))];
    (StatusCode::SERVICE_UNAVAILABLE, retry_after, body).into_response()
}
