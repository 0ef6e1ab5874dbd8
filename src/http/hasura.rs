//! The Hasura surface, on the original server's paths: `/webhook/login`, `/webhook/signup`,
//! `/webhook/webhook` (Hasura's auth hook, GET and POST modes) and `/webhook/jwks`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::body::{AUTH_BODY_LIMIT, Fields, json_object};
use super::error::{ApiError, field_error};
use crate::accounts::{NewUser, Password};
use crate::db::UserRow;
use crate::django::validators::{UserAttributes, Username};
use crate::tokens::unix_now;

/// The login and signup answer: the original's `{id, username, token}` plus `expires_in`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub id: i32,
    pub username: String,
    pub token: String,
    pub expires_in: u64,
}

struct Credentials {
    username: String,
    password: Password,
}

impl Credentials {
    fn parse(object: &Map<String, Value>) -> Result<Credentials, ApiError> {
        let mut fields = Fields::default();
        let username = fields.required(object, "username");
        let password = fields.required(object, "password");
        fields.finish()?;
        Ok(Credentials { username, password: Password::new(password) })
    }
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TokenResponse>, ApiError> {
    let credentials = Credentials::parse(&json_object(&headers, body, AUTH_BODY_LIMIT).await?)?;
    let user = state
        .accounts
        .authenticate(&credentials.username, &credentials.password)
        .await?
        .ok_or_else(ApiError::authentication_failed)?;
    token_response(&state, &user).await
}

/// Signup input that has passed every rule: a valid username, a password the validators
/// accept, and Django's field limits.
struct Signup {
    new_user: NewUser,
}

impl Signup {
    fn parse(object: &Map<String, Value>, state: &AppState) -> Result<Signup, ApiError> {
        let mut fields = Fields::default();
        let raw_username = fields.required(object, "username");
        let password = fields.required(object, "password");
        let email = fields.optional(object, "email");
        let first_name = fields.optional(object, "first_name");
        let last_name = fields.optional(object, "last_name");
        let username = match Username::parse(&raw_username) {
            Ok(username) => Some(username),
            Err(err) if !raw_username.is_empty() => {
                fields.push(field_error("username", err.code(), err.to_string()));
                None
            }
            Err(_) => None,
        };
        if !email.is_empty() && !looks_like_email(&email) {
            fields.push(field_error("email", "invalid", "Enter a valid email address."));
        }
        if !password.is_empty() {
            let attributes = UserAttributes {
                username: username.as_ref().map_or(raw_username.as_str(), Username::as_str),
                first_name: &first_name,
                last_name: &last_name,
                email: &email,
            };
            if let Err(violations) = state.accounts.policy().validate(&password, Some(&attributes)) {
                for v in violations {
                    fields.push(field_error("password", v.code, v.message));
                }
            }
        }
        fields.finish()?;
        let Some(username) = username else { return Err(ApiError::invalid_body("username is invalid")) };
        let mut new_user = NewUser::new(username, Some(Password::new(password)));
        new_user.email = email;
        new_user.first_name = first_name;
        new_user.last_name = last_name;
        Ok(Signup { new_user })
    }
}

/// Django's `EmailValidator` in spirit: one `@`, something on each side, no spaces.
fn looks_like_email(email: &str) -> bool {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

pub async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TokenResponse>, ApiError> {
    if !state.hasura.signup {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "SignupDisabled", "Sign-up is turned off on this server."));
    }
    let signup = Signup::parse(&json_object(&headers, body, AUTH_BODY_LIMIT).await?, &state)?;
    let user = state.accounts.create_user(signup.new_user).await?;
    token_response(&state, &user).await
}

async fn token_response(state: &AppState, user: &UserRow) -> Result<Json<TokenResponse>, ApiError> {
    let groups = state.accounts.group_names(user.id).await?;
    let issued = state.tokens.issue(user, &groups).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(TokenResponse {
        id: user.id,
        username: user.username.clone(),
        token: issued.token,
        expires_in: issued.expires_in,
    }))
}

/// `GET /webhook/webhook`: Hasura forwards the client's headers (and adds
/// `Content-Type: application/json` to a request without a body, which is fine here).
pub async fn webhook_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(UNREADABLE));
    let role = headers.get("x-hasura-role").and_then(|v| v.to_str().ok());
    decide(&state, authorization, role)
}

/// Stands in for a header value that is present but not text: never a valid credential, and
/// never mistaken for an absent one (a bad token must not fall back to the anonymous role).
const UNREADABLE: &str = "\u{0}";

#[derive(Deserialize)]
struct HookRequest {
    #[serde(default)]
    headers: BTreeMap<String, Value>,
}

/// `POST /webhook/webhook`: `{"headers": {...}, "request": ...}`; header names are matched
/// case-insensitively and `request` (object, array or null) is not needed.
pub async fn webhook_post(State(state): State<AppState>, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, state.hasura.webhook_max_body).await else {
        return deny("The webhook request body is too large.");
    };
    // serde would also accept a JSON array for a struct; Hasura always sends an object.
    let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let Some(hook) = is_object.then(|| serde_json::from_slice::<HookRequest>(&bytes).ok()).flatten() else {
        return deny("The webhook request body is not the JSON Hasura sends.");
    };
    let header = |name: &str| {
        hook.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str().unwrap_or(UNREADABLE))
    };
    decide(&state, header("authorization"), header("x-hasura-role"))
}

/// Hasura's contract: 200 with string session variables (allow) or 401 (deny), nothing else.
fn decide(state: &AppState, authorization: Option<&str>, requested_role: Option<&str>) -> Response {
    let requested_role = requested_role.map(str::trim).filter(|r| !r.is_empty());
    let Some(authorization) = authorization.map(str::trim).filter(|a| !a.is_empty()) else {
        if !state.hasura.allow_anonymous {
            return deny("A token is required.");
        }
        let role = &state.tokens.settings().roles.anonymous_role;
        if requested_role.is_some_and(|r| r != role) {
            return deny("The requested role needs a token.");
        }
        return allow(BTreeMap::from([("X-Hasura-Role".to_owned(), role.clone())]));
    };
    let Some(token) = bearer_token(authorization) else {
        return deny("The Authorization header must be `Bearer <token>`.");
    };
    let session = match state.tokens.verify(token) {
        Ok(session) => session,
        Err(err) => return deny(&err.to_string()),
    };
    let role = match requested_role {
        Some(role) if session.allowed_roles.iter().any(|r| r == role) => role.to_owned(),
        Some(_) => return deny("The requested role is not one of the token's allowed roles."),
        None => session.default_role.clone(),
    };
    let mut body = BTreeMap::new();
    for (name, value) in session.variables {
        let name = if name == "x-hasura-user-id" { "X-Hasura-User-Id".to_owned() } else { name };
        body.insert(name, value);
    }
    body.insert("X-Hasura-Role".to_owned(), role);
    let left = session.expires_at.saturating_sub(unix_now());
    body.insert("Cache-Control".to_owned(), format!("max-age={left}"));
    allow(body)
}

/// `Bearer <token>`: exactly two words, the scheme case-insensitive (RFC 6750).
fn bearer_token(authorization: &str) -> Option<&str> {
    let mut words = authorization.split_ascii_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => Some(token),
        _ => None,
    }
}

fn allow(variables: BTreeMap<String, String>) -> Response {
    (StatusCode::OK, Json(variables)).into_response()
}

fn deny(reason: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "InvalidToken", reason).into_response()
}

/// The JWKS Hasura polls, with a `Cache-Control` so it refreshes after a rotation.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.tokens.keys().jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={}", state.hasura.jwks_max_age)) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_two_words() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }

    #[test]
    fn email_check_is_lenient_but_not_empty_headed() {
        assert!(looks_like_email("alice@example.com"));
        assert!(!looks_like_email("alice"));
        assert!(!looks_like_email("@example.com"));
        assert!(!looks_like_email("alice@localhost"));
        assert!(!looks_like_email("al ice@example.com"));
    }
}
