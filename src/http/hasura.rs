//! The Hasura surface, on the original server's paths: `/webhook/login`, `/webhook/signup`,
//! `/webhook/webhook` (Hasura's auth hook, GET and POST modes) and `/webhook/jwks`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppState;
use super::body::{AUTH_BODY_LIMIT, Fields, json_object};
use super::client::{client_info, client_ip};
use super::error::{ApiError, field_error};
use crate::accounts::{AccountError, NewUser, Password};
use crate::db::{AuditEvent, UserRow};
use crate::django::validators::{UserAttributes, Username};
use crate::rbac::TokenRequest;
use crate::sessions::{IssuedRefresh, RefreshBy, SessionError, SessionKind};
use crate::tokens::{HasuraSession, unix_now};

/// The login, signup and refresh answer: the original's `{id, username, token}`, the access
/// token's `expires_in`, and the session's refresh token with its (absolute) lifetime.
///
/// With `GATEHOUSE_REFRESH_COOKIE`, the refresh token goes into a cookie instead, and
/// `csrf_token` is what the page must send back as `X-CSRF-Token` to refresh with that cookie.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub id: i32,
    pub username: String,
    pub token: String,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub refresh_expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// The scopes granted on the requested (or default) API resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

pub const REFRESH_COOKIE: &str = "gatehouse_refresh";
/// The cookie goes back only to the refresh endpoint, under the public URL's path prefix.
fn refresh_cookie(state: &AppState, value: &str, max_age: u64) -> Option<HeaderValue> {
    let path = format!("{}/webhook/refresh", state.hasura.public_path);
    let cookie = format!("{REFRESH_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path={path}; Max-Age={max_age}");
    HeaderValue::from_str(&cookie).ok()
}

pub(super) fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

struct Credentials {
    username: String,
    password: Password,
    target: Target,
}

impl Credentials {
    fn parse(object: &Map<String, Value>) -> Result<Credentials, ApiError> {
        let mut fields = Fields::default();
        let username = fields.required(object, "username");
        let password = fields.required(object, "password");
        let target = Target::read(&mut fields, object);
        fields.finish()?;
        Ok(Credentials { username, password: Password::new(password), target })
    }
}

/// The optional `resource` (an API resource indicator) and `scope` (space-separated) that a
/// token is asked for.
#[derive(Default)]
struct Target {
    resource: Option<String>,
    scope: Option<String>,
}

impl Target {
    fn read(fields: &mut Fields, object: &Map<String, Value>) -> Target {
        let present = |name: &str| !matches!(object.get(name), None | Some(Value::Null));
        let resource = fields.optional(object, "resource");
        let scope = fields.optional(object, "scope");
        Target { resource: present("resource").then_some(resource), scope: present("scope").then_some(scope) }
    }

    fn request<'a>(&'a self, grant_type: &'a str) -> TokenRequest<'a> {
        TokenRequest { resource: self.resource.as_deref(), scope: self.scope.as_deref(), grant_type, client_id: None }
    }
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let credentials = Credentials::parse(&json_object(&headers, body, AUTH_BODY_LIMIT).await?)?;
    let ip = client_ip(&state.trusted_proxies, peer.ip(), &headers);
    let user = state
        .accounts
        .sign_in(&credentials.username, &credentials.password, ip)
        .await?
        .ok_or_else(ApiError::authentication_failed)?;
    // An unknown resource is refused before a session exists (and only after the password
    // check, so that it tells nothing to someone without the password).
    state.rbac.resolve_resource(credentials.target.resource.as_deref()).await?;
    let session = state
        .sessions
        .start(&user, &client_info(&state, peer, &headers), SessionKind::Api)
        .await
        .map_err(AccountError::from)?;
    token_response(&state, &user, session, credentials.target.request("password")).await
}

/// `POST /webhook/refresh {"refresh_token"}`: rotation, with claims recomputed from the
/// database (a group added in Django shows up in the next access token).
pub async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Oversized, malformed or mistyped: the same 401 as an unknown token.
    let object = match headers.contains_key(header::CONTENT_TYPE) {
        true => json_object(&headers, body, AUTH_BODY_LIMIT).await.map_err(|_| invalid_refresh_token())?,
        false => Map::new(),
    };
    let mut fields = Fields::default();
    let target = Target::read(&mut fields, &object);
    fields.finish()?;
    let token = match cookie_value(&headers, REFRESH_COOKIE).filter(|_| state.hasura.refresh_cookie) {
        // A cookie arrives with any request the browser makes, so it needs proof that our own
        // page sent this one.
        Some(cookie) => {
            let csrf = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !state.sessions.csrf_matches(cookie, csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "CsrfFailed",
                    "Refreshing with the cookie needs the X-CSRF-Token header from the login answer.",
                ));
            }
            cookie.to_owned()
        }
        None => match object.get("refresh_token") {
            Some(Value::String(token)) => token.clone(),
            _ => return Err(invalid_refresh_token()),
        },
    };
    let refreshed = state
        .sessions
        .refresh(&token, &client_info(&state, peer, &headers), RefreshBy::Api)
        .await
        .map_err(refresh_error)?;
    let user = state.accounts.db().user_by_id(refreshed.user_id).await.map_err(AccountError::from)?;
    let user = user.ok_or_else(invalid_refresh_token)?;
    token_response(&state, &user, refreshed, target.request("refresh_token")).await
}

fn invalid_refresh_token() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "InvalidRefreshToken", "The refresh token is not valid. Log in again.")
}

fn refresh_error(err: SessionError) -> ApiError {
    match err {
        SessionError::Invalid => invalid_refresh_token(),
        SessionError::Db(db) => AccountError::from(db).into(),
    }
}

/// `POST /webhook/logout`: ends the session named by `{"refresh_token"}` or by the
/// `Authorization: Bearer` access token; `{"all": true}` ends every session of its user.
/// Idempotent: ending an ended session answers 200 too.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let has_body = headers.contains_key(header::CONTENT_TYPE);
    let object = if has_body { json_object(&headers, body, AUTH_BODY_LIMIT).await? } else { Map::new() };
    let mut fields = Fields::default();
    let refresh_token = fields.optional(&object, "refresh_token");
    let all = match object.get("all") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(all)) => *all,
        Some(_) => {
            fields.push(field_error("all", "invalid_type", "This field must be true or false."));
            false
        }
    };
    fields.finish()?;
    // Any credential the session ever had may end that session (it is dead or should be);
    // ending *every* session of the user takes a current one.
    let (session_id, user_id, current) = if !refresh_token.is_empty() {
        let found = state.sessions.session_of_refresh_token(&refresh_token).await.map_err(AccountError::from)?;
        let (session, current) = found.ok_or_else(invalid_refresh_token)?;
        (session.id, session.user_id, current)
    } else {
        let verified = bearer_session(&state, &headers).await?.ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "InvalidToken", "Send a refresh token or a valid access token.")
        })?;
        let user_id = verified.subject.parse().map_err(|_| invalid_refresh_token())?;
        (verified.session_id, user_id, true)
    };
    let live = state.sessions.is_live(&session_id).await.map_err(AccountError::from)?;
    if all && !(current && live) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidToken",
            "Ending every session takes the credentials of a live one.",
        ));
    }
    let (kind, revoked) = if all {
        ("logout_all", state.sessions.revoke_all(user_id, "logout_all").await)
    } else {
        ("logout", state.sessions.revoke(&session_id, "logout").await.map(usize::from))
    };
    let revoked = revoked.map_err(AccountError::from)?;
    let detail = format!("{revoked} session(s) ended");
    audit(&state, kind, user_id, &session_id, &detail).await;
    let mut response = Json(serde_json::json!({ "revoked": revoked })).into_response();
    if let Some(expired) = refresh_cookie(&state, "", 0).filter(|_| state.hasura.refresh_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, expired);
    }
    Ok(response)
}

/// Signup input that has passed every rule: a valid username, a password the validators
/// accept, and Django's field limits.
pub(super) struct Signup {
    pub new_user: NewUser,
    target: Target,
}

impl Signup {
    /// With `password_required` false (the admin API), no password makes an unusable one.
    pub fn parse(object: &Map<String, Value>, state: &AppState, password_required: bool) -> Result<Signup, ApiError> {
        let mut fields = Fields::default();
        let raw_username = fields.required(object, "username");
        let password =
            if password_required { fields.required(object, "password") } else { fields.optional(object, "password") };
        let target = Target::read(&mut fields, object);
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
        let password = (!password.is_empty()).then(|| Password::new(password));
        let mut new_user = NewUser::new(username, password);
        new_user.email = email;
        new_user.first_name = first_name;
        new_user.last_name = last_name;
        Ok(Signup { new_user, target })
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !state.hasura.signup {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "SignupDisabled", "Sign-up is turned off on this server."));
    }
    let signup = Signup::parse(&json_object(&headers, body, AUTH_BODY_LIMIT).await?, &state, true)?;
    // An unknown resource fails before the user exists, not after.
    state.rbac.resolve_resource(signup.target.resource.as_deref()).await?;
    let ip = client_ip(&state.trusted_proxies, peer.ip(), &headers);
    let user = state.accounts.sign_up(signup.new_user, ip).await?;
    state.rbac.assign_default_roles(user.id).await.map_err(AccountError::from)?;
    let session = state
        .sessions
        .start(&user, &client_info(&state, peer, &headers), SessionKind::Api)
        .await
        .map_err(AccountError::from)?;
    token_response(&state, &user, session, signup.target.request("password")).await
}

async fn token_response(
    state: &AppState,
    user: &UserRow,
    session: IssuedRefresh,
    request: TokenRequest<'_>,
) -> Result<Response, ApiError> {
    let issued = match state
        .rbac
        .issue_access_token(&state.tokens, user, &session.session_id, session.expires_in, &request)
        .await
    {
        Ok(issued) => issued,
        Err(err) => {
            // A session whose first token was refused (denyAccess, say) must not live on. (When
            // the database failed, the revocation would too; the session's refresh token was
            // never sent, so nobody can use it.)
            if request.grant_type == "password" && !matches!(err, crate::rbac::RbacError::Db(_)) {
                let _ = state.sessions.revoke(&session.session_id, "token_refused").await;
            }
            return Err(err.into());
        }
    };
    let mut body = TokenResponse {
        id: user.id,
        username: user.username.clone(),
        token: issued.token,
        expires_in: issued.expires_in,
        refresh_token: None,
        refresh_expires_in: session.expires_in,
        csrf_token: None,
        scope: issued.scope,
    };
    if !state.hasura.refresh_cookie {
        body.refresh_token = Some(session.refresh_token);
        return Ok(Json(body).into_response());
    }
    body.csrf_token = Some(state.sessions.csrf_token(&session.refresh_token));
    let mut response = Json(body).into_response();
    if let Some(cookie) = refresh_cookie(state, &session.refresh_token, session.expires_in) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Records what happened; the request's outcome does not depend on the audit log being writable.
async fn audit(state: &AppState, kind: &str, user_id: i32, session_id: &str, detail: &str) {
    let event = AuditEvent::by_user(kind, user_id, detail).session(Some(session_id));
    if let Err(err) = state.accounts.db().audit_event(&event).await {
        tracing::error!(error = %err, kind, "could not write an audit record");
    }
}

/// The access token in `Authorization: Bearer`, verified; `None` when it is missing or not
/// valid, an error (503) only when the database cannot tell.
async fn bearer_session(state: &AppState, headers: &HeaderMap) -> Result<Option<HasuraSession>, ApiError> {
    let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token) else {
        return Ok(None);
    };
    match state.verify(token).await {
        Ok(session) => Ok(Some(session)),
        Err(super::VerifyError::Token(_)) => Ok(None),
        Err(super::VerifyError::Db(err)) => Err(err.into()),
    }
}

/// The caller of a self-service endpoint: a valid access token of a live session.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<(HasuraSession, i32), ApiError> {
    let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, "InvalidToken", "Send a valid access token.");
    let session = bearer_session(state, headers).await?.ok_or_else(unauthorized)?;
    let user_id = session.subject.parse().map_err(|_| unauthorized())?;
    if !state.sessions.is_live(&session.session_id).await.map_err(AccountError::from)? {
        return Err(unauthorized());
    }
    Ok((session, user_id))
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    ip: String,
    user_agent: String,
    current: bool,
}

/// `GET /webhook/sessions`: the caller's live sessions.
pub async fn list_sessions(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let (current, user_id) = caller(&state, &headers).await?;
    let sessions = state.sessions.live_sessions(user_id).await.map_err(AccountError::from)?;
    let rfc3339 =
        |t: crate::db::DjangoTime| t.0.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let views: Vec<SessionView> = sessions
        .into_iter()
        .map(|s| SessionView {
            current: s.id == current.session_id,
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(Json(serde_json::json!({ "sessions": views })))
}

/// `DELETE /webhook/sessions/{id}`: ends one of the caller's sessions.
pub async fn delete_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, user_id) = caller(&state, &headers).await?;
    let owned = state.sessions.live_sessions(user_id).await.map_err(AccountError::from)?.iter().any(|s| s.id == id);
    if !owned {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "SessionNotFound", "You have no live session with that id."));
    }
    let revoked = state.sessions.revoke(&id, "revoked_by_user").await.map_err(AccountError::from)?;
    audit(&state, "session_revoked", user_id, &id, "ended by its user").await;
    Ok(Json(serde_json::json!({ "revoked": usize::from(revoked) })))
}

/// `GET /webhook/webhook`: Hasura forwards the client's headers (and adds
/// `Content-Type: application/json` to a request without a body, which is fine here).
pub async fn webhook_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(UNREADABLE));
    let role = headers.get("x-hasura-role").and_then(|v| v.to_str().ok());
    decide(&state, authorization, role).await
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
    decide(&state, header("authorization"), header("x-hasura-role")).await
}

/// Hasura's contract: 200 with string session variables (allow) or 401 (deny); and 503 when
/// the database cannot tell (a session seen live shortly before still gets its 200, see
/// `Sessions::is_live`).
async fn decide(state: &AppState, authorization: Option<&str>, requested_role: Option<&str>) -> Response {
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
    let session = match state.verify(token).await {
        Ok(session) => session,
        Err(super::VerifyError::Token(err)) => return deny(&err.to_string()),
        // Not a 401: that would tell the client its token is bad. Hasura answers its client
        // 500 for a 503 from the hook, as for a hook it cannot reach: try again later.
        Err(super::VerifyError::Db(err)) => return ApiError::from(err).into_response(),
    };
    // A revoked session, or one whose user was deactivated, deleted or changed password.
    match state.sessions.is_live(&session.session_id).await {
        Ok(true) => {}
        Ok(false) => return deny("The session has ended."),
        Err(err) => return ApiError::from(err).into_response(),
    }
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
pub(super) fn bearer_token(authorization: &str) -> Option<&str> {
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
