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

/// The database answers; a load balancer should send traffic here.
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.accounts.db().ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check: database unreachable");
            let body = Json(json!({ "status": "unavailable", "reason": "database" }));
            let retry_after = [(header::RETRY_AFTER, HeaderValue::from(DATABASE_RETRY_AFTER_SECS))];
            (StatusCode::SERVICE_UNAVAILABLE, retry_after, body).into_response()
        }
    }
}
