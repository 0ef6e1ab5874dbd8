//! Reading JSON request bodies: a size limit, the content type, and field-by-field checks that
//! report every bad field at once instead of the first serde error.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorItem, field_error};

/// Auth request bodies are a few hundred bytes; anything near this is not a login.
pub const AUTH_BODY_LIMIT: usize = 16 * 1024;

/// The body as a JSON object, or a 400/415 that says what is wrong with it.
pub async fn json_object(headers: &HeaderMap, body: Body, limit: usize) -> Result<Map<String, Value>, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Send the request body as JSON with Content-Type: application/json.",
        ));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| unreadable_body(&err, limit))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid_body("The request body must be a JSON object.")),
        Err(_) => Err(ApiError::invalid_body("The request body is not valid JSON.")),
    }
}

/// Why a body could not be read: too large (400, as before), stalled (408), or cut off (400).
pub fn unreadable_body(err: &axum::Error, limit: usize) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeout",
                "The request body stalled; send it at once.",
            );
        }
        if error.is::<http_body_util::LengthLimitError>() {
            return ApiError::invalid_body(format!("The request body is larger than {limit} bytes."));
        }
        cause = error.source();
    }
    ApiError::invalid_body("The request body could not be read.")
}

/// Collects field errors while fields are read, then fails once with all of them.
#[derive(Default)]
pub struct Fields {
    pub errors: Vec<ErrorItem>,
}

impl Fields {
    /// A required string field.
    pub fn required(&mut self, object: &Map<String, Value>, name: &'static str) -> String {
        match object.get(name) {
            Some(Value::String(text)) if text.contains('\0') => self.null_character(name),
            Some(Value::String(text)) if !text.is_empty() => text.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                self.errors.push(field_error(name, "required", "This field is required."));
                String::new()
            }
            Some(_) => {
                self.errors.push(field_error(name, "invalid_type", "This field must be a string."));
                String::new()
            }
        }
    }

    /// An optional string field; absent or null is empty.
    pub fn optional(&mut self, object: &Map<String, Value>, name: &'static str) -> String {
        match object.get(name) {
            Some(Value::String(text)) if text.contains('\0') => self.null_character(name),
            Some(Value::String(text)) => text.clone(),
            None | Some(Value::Null) => String::new(),
            Some(_) => {
                self.errors.push(field_error(name, "invalid_type", "This field must be a string."));
                String::new()
            }
        }
    }

    /// Django's `ProhibitNullCharactersValidator`; PostgreSQL could not store them anyway.
    fn null_character(&mut self, name: &'static str) -> String {
        self.errors.push(field_error(name, "null_characters_not_allowed", "Null characters are not allowed."));
        String::new()
    }

    /// An optional boolean field.
    pub fn optional_bool(&mut self, object: &Map<String, Value>, name: &'static str) -> Option<bool> {
        match object.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(value)) => Some(*value),
            Some(_) => {
                self.errors.push(field_error(name, "invalid_type", "This field must be true or false."));
                None
            }
        }
    }

    /// An optional integer field.
    pub fn optional_integer(&mut self, object: &Map<String, Value>, name: &'static str) -> Option<i64> {
        match object.get(name) {
            None | Some(Value::Null) => None,
            Some(value) => value.as_i64().or_else(|| {
                self.errors.push(field_error(name, "invalid_type", "This field must be an integer."));
                None
            }),
        }
    }

    /// A required list of ids (at most 1,000).
    pub fn id_list(&mut self, object: &Map<String, Value>, name: &'static str) -> Vec<i32> {
        let ids = match object.get(name) {
            Some(Value::Array(items)) if items.len() <= 1000 => {
                items.iter().map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok())).collect::<Option<Vec<_>>>()
            }
            Some(Value::Array(_)) => {
                self.errors.push(field_error(name, "too_long", "At most 1000 ids at once."));
                return Vec::new();
            }
            None | Some(Value::Null) => {
                self.errors.push(field_error(name, "required", "This field is required."));
                return Vec::new();
            }
            Some(_) => None,
        };
        ids.unwrap_or_else(|| {
            self.errors.push(field_error(name, "invalid_type", "This field must be a list of integer ids."));
            Vec::new()
        })
    }

    pub fn push(&mut self, item: ErrorItem) {
        self.errors.push(item);
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::fields(self.errors)) }
    }
}
