use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// The process is up and serving HTTP.
pub async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers; a load balancer should send traffic here.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.accounts.db().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": "database" })))
        }
    }
}
