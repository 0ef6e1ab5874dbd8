//! The one error type every handler returns. It renders the original server's shape,
//! `{"errors":[{"type": "...", "message": "..."}]}`, with stable `type`s (and, for field
//! errors, the field and Django's validation code).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::accounts::{AccountError, HashingError, RetryAfter};
use crate::db::DbError;
use crate::rbac::RbacError;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ErrorItem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorItem>,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

/// Django's `AuthenticationForm` message: the same for every way a login fails.
pub const LOGIN_FAILED: &str =
    "Please enter a correct username and password. Note that both fields may be case-sensitive.";

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            retry_after: None,
            status,
            errors: vec![ErrorItem { kind, message: message.into(), field: None, code: None }],
        }
    }

    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidBody", message)
    }

    /// Several field errors at once (400 `InvalidField`).
    pub fn fields(errors: Vec<ErrorItem>) -> Self {
        ApiError { retry_after: None, status: StatusCode::BAD_REQUEST, errors }
    }

    pub fn authentication_failed() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthenticationFailed", LOGIN_FAILED)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "This endpoint does not accept that method.")
    }

    /// A fault on our side: logged in full, answered without details.
    pub fn internal(err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "Something went wrong on our side.")
    }
}

/// A field error in the `errors` list.
pub fn field_error(field: &'static str, code: &'static str, message: impl Into<String>) -> ErrorItem {
    ErrorItem { kind: "InvalidField", message: message.into(), field: Some(field), code: Some(code) }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::UsernameTaken => {
                ApiError::new(StatusCode::CONFLICT, "UsernameTaken", AccountError::UsernameTaken.to_string())
            }
            AccountError::InvalidField { field, message } => {
                ApiError::fields(vec![field_error(field, "invalid", message)])
            }
            AccountError::WeakPassword(violations) => {
                ApiError::fields(violations.into_iter().map(|v| field_error("password", v.code, v.message)).collect())
            }
            AccountError::UnknownUser(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", "There is no user with that id.")
            }
            AccountError::RateLimited(RetryAfter(secs)) => ApiError {
                retry_after: Some(secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    format!("Too many attempts. Try again in {secs} seconds."),
                )
            },
            AccountError::Hashing(HashingError::Busy) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceBusy",
                    "The server is busy checking passwords; try again in a moment.",
                )
            },
            AccountError::Db(db) => db.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<RbacError> for ApiError {
    fn from(err: RbacError) -> Self {
        match err {
            RbacError::InvalidTarget(message) => ApiError {
                retry_after: None,
                status: StatusCode::BAD_REQUEST,
                errors: vec![ErrorItem { kind: "InvalidTarget", message, field: None, code: Some("invalid_target") }],
            },
            RbacError::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("There is no {what} with that id."))
            }
            RbacError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "Conflict", message),
            RbacError::Invalid { field, message } => ApiError::fields(vec![field_error(field, "invalid", message)]),
            RbacError::Denied(message) => ApiError {
                retry_after: None,
                status: StatusCode::FORBIDDEN,
                errors: vec![ErrorItem { kind: "AccessDenied", message, field: None, code: Some("access_denied") }],
            },
            RbacError::Db(db) => db.into(),
            other @ (RbacError::CustomClaims(_) | RbacError::Key(_)) => ApiError::internal(&other),
        }
    }
}

/// Seconds a client should wait before retrying when the database cannot be reached: about
/// what a PostgreSQL restart or fail-over takes.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// Whatever went wrong with the database (unreachable, restarting, out of connections), the
/// request may succeed later: 503 with `Retry-After`, never a 500 or a hang.
impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        tracing::error!(error = %err, "database error");
        ApiError {
            retry_after: Some(DATABASE_RETRY_AFTER_SECS),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable; try again shortly.",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(serde_json::json!({ "errors": self.errors }))).into_response();
        let retry_after = match (self.retry_after, self.status) {
            (Some(secs), _) => Some(secs),
            (None, StatusCode::SERVICE_UNAVAILABLE) => Some(5),
            (None, _) => None,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
