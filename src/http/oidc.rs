//! The OpenID Connect provider's HTTP surface under `/oidc`, on Logto's paths: discovery, JWKS,
//! the authorization endpoint with its hosted sign-in, sign-up and consent pages, the token,
//! userinfo, introspection and revocation endpoints, and RP-initiated logout.
//!
//! The protocol lives in [`crate::oidc::flow`]; this module reads forms and cookies and renders
//! pages and OAuth errors.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, body};
use base64::Engine;
use serde_json::{Map, Value};

use super::AppState;
use super::client::{client_info, client_ip};
use super::error::{DATABASE_RETRY_AFTER_SECS, LOGIN_FAILED};
use super::hasura::{Signup, bearer_token, cookie_value, jwks};
use crate::accounts::{AccountError, HashingError, Password, RetryAfter};
use crate::db::{DbError, SessionRow};
use crate::oidc::flow::{AuthorizationRequest, AuthorizeError, OAuthError, TokenForm, with_query};
use crate::sessions::SessionKind;

const SSO_COOKIE: &str = "gatehouse_sso";
const CSRF_COOKIE: &str = "gatehouse_csrf";
/// Forms and token requests are small; anything bigger is not a client of ours.
const FORM_LIMIT: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/auth", get(authorize))
        .route("/auth/sign-in", post(sign_in))
        .route("/auth/sign-up", get(sign_up_page).post(sign_up))
        .route("/auth/consent", post(consent))
        .route("/token", post(token))
        .route("/me", get(userinfo).post(userinfo))
        .route("/token/introspection", post(introspect))
        .route("/token/revocation", post(revoke))
        .route("/session/end", get(end_session).post(confirm_end_session))
}

async fn discovery(State(state): State<AppState>) -> Response {
    match state.oidc.discovery().await {
        Ok(document) => Json(document).into_response(),
        Err(err) => oauth_error(OAuthError::from(err)),
    }
}

// ---- pages -----------------------------------------------------------------------------------

/// A rendered page: HTML that is never cached, framed or given a script to run.
fn html(status: StatusCode, body: String, cookies: Vec<String>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

fn error_page(state: &AppState, status: StatusCode, error: &str, description: &str) -> Response {
    let body = state.oidc.settings().templates.render("error.html", &[("error", error), ("description", description)]);
    html(status, body, Vec::new())
}

fn see_other(location: &str, cookies: Vec<String>) -> Response {
    let mut response = html(StatusCode::SEE_OTHER, String::new(), cookies);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn authorize_error(state: &AppState, err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page { error, description } => error_page(state, StatusCode::BAD_REQUEST, error, &description),
        AuthorizeError::Redirect { location } => see_other(&location, Vec::new()),
        AuthorizeError::Db(err) => unavailable_page(state, &err),
    }
}

fn unavailable_page(state: &AppState, err: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %err, "oidc: database error");
    let description = "The service is temporarily unavailable. Try again in a moment.";
    let mut page = error_page(state, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", description);
    page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(DATABASE_RETRY_AFTER_SECS));
    page
}

fn cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> String {
    let settings = state.oidc.settings();
    let secure = if settings.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Lax; Path={}/oidc; Max-Age={max_age}{secure}", settings.public_path)
}

/// The CSRF cookie for a page's forms (kept when the browser has one) and the form's token.
fn csrf(state: &AppState, headers: &HeaderMap) -> (Option<String>, String) {
    match cookie_value(headers, CSRF_COOKIE).filter(|v| v.len() == 43) {
        Some(existing) => (None, state.sessions.csrf_token(existing)),
        None => {
            let value = crate::oidc::flow::random_token();
            let token = state.sessions.csrf_token(&value);
            (Some(cookie(state, CSRF_COOKIE, &value, 86_400)), token)
        }
    }
}

fn csrf_ok(state: &AppState, headers: &HeaderMap, form: &Form) -> bool {
    cookie_value(headers, CSRF_COOKIE).is_some_and(|cookie| state.sessions.csrf_matches(cookie, form.get("csrf")))
}

fn action(state: &AppState, path: &str) -> String {
    format!("{}/oidc{path}", state.oidc.settings().public_path)
}

/// What a sign-in or sign-up page shows besides its form.
#[derive(Default)]
struct PageInput<'a> {
    username: &'a str,
    email: &'a str,
    error: &'a str,
}

/// A page whose form carries the authorization request and a CSRF token, with `extra` values.
fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    status: StatusCode,
    (template, path): (&str, &str),
    extra: &[(&str, &str)],
) -> Response {
    let (set_cookie, token) = csrf(state, headers);
    let action = action(state, path);
    let mut values = vec![
        ("app_name", request.client.name.as_str()),
        ("action", action.as_str()),
        ("request", request.raw.as_str()),
        ("csrf", token.as_str()),
    ];
    values.extend_from_slice(extra);
    html(status, state.oidc.settings().templates.render(template, &values), set_cookie.into_iter().collect())
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    status: StatusCode,
    input: PageInput<'_>,
) -> Response {
    let signup_href = match state.hasura.signup {
        true => {
            let query =
                url::form_urlencoded::Serializer::new(String::new()).append_pair("request", &request.raw).finish();
            format!("{}?{query}", action(state, "/auth/sign-up"))
        }
        false => String::new(),
    };
    let username = if input.username.is_empty() { request.login_hint.as_deref().unwrap_or("") } else { input.username };
    let extra = [("username", username), ("error", input.error), ("signup_href", signup_href.as_str())];
    form_page(state, headers, request, status, ("sign-in.html", "/auth/sign-in"), &extra)
}

fn sign_up_form(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    status: StatusCode,
    input: PageInput<'_>,
) -> Response {
    let signin_href = format!("{}?{}", action(state, "/auth"), request.raw);
    let extra =
        [("username", input.username), ("email", input.email), ("error", input.error), ("signin_href", &signin_href)];
    form_page(state, headers, request, status, ("sign-up.html", "/auth/sign-up"), &extra)
}

/// The live SSO session the browser's cookie names.
async fn browser_session(state: &AppState, headers: &HeaderMap) -> Result<Option<SessionRow>, DbError> {
    match cookie_value(headers, SSO_COOKIE) {
        Some(cookie) => state.sessions.browser_session(cookie).await,
        None => Ok(None),
    }
}

/// With the user signed in: the consent page for a third-party application, else the code.
async fn finish_authorization(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    browser: &SessionRow,
    cookies: Vec<String>,
) -> Response {
    if request.client.is_third_party {
        let user = match state.accounts.db().user_by_id(browser.user_id).await {
            Ok(Some(user)) => user,
            Ok(None) => return sign_in_page(state, headers, request, StatusCode::OK, PageInput::default()),
            Err(err) => return unavailable_page(state, &err),
        };
        let extra = [("username", user.username.as_str()), ("scope", &request.scope())];
        let mut page = form_page(state, headers, request, StatusCode::OK, ("consent.html", "/auth/consent"), &extra);
        for cookie in cookies.iter().filter_map(|c| HeaderValue::from_str(c).ok()) {
            page.headers_mut().append(header::SET_COOKIE, cookie);
        }
        return page;
    }
    match state.oidc.issue_code(request, browser.user_id, browser).await {
        Ok(location) => see_other(&location, cookies),
        Err(err) => unavailable_page(state, &err),
    }
}

/// `GET /oidc/auth`.
async fn authorize(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let request = match state.oidc.authorization_request(uri.query().unwrap_or("")).await {
        Ok(request) => request,
        Err(err) => return authorize_error(&state, err),
    };
    let browser = match browser_session(&state, &headers).await {
        Ok(browser) => browser,
        Err(err) => return unavailable_page(&state, &err),
    };
    match browser {
        None if request.prompt.none => {
            see_other(&state.oidc.error_redirect(&request, "login_required", "The user is not signed in."), Vec::new())
        }
        Some(_) if request.prompt.none && request.client.is_third_party => see_other(
            &state.oidc.error_redirect(&request, "consent_required", "This application needs the user's consent."),
            Vec::new(),
        ),
        Some(browser) if !request.prompt.login => {
            finish_authorization(&state, &headers, &request, &browser, Vec::new()).await
        }
        _ => sign_in_page(&state, &headers, &request, StatusCode::OK, PageInput::default()),
    }
}

/// The form fields of a page or token request.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    fn optional(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    fn repeated(&self) -> Option<&str> {
        let mut names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

async fn read_form(headers: &HeaderMap, body: Body) -> Result<Form, &'static str> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err("The body must be application/x-www-form-urlencoded.");
    }
    let bytes = body::to_bytes(body, FORM_LIMIT).await.map_err(|_| "The body is too large.")?;
    Ok(Form(url::form_urlencoded::parse(&bytes).into_owned().collect()))
}

/// A hosted page's form and the authorization request it carries, checked again (the form is
/// the browser's to alter). Rejected with the page to answer.
struct PageForm {
    form: Form,
    request: AuthorizationRequest,
}

impl axum::extract::FromRequest<AppState> for PageForm {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let form = read_form(&parts.headers, body)
            .await
            .map_err(|message| error_page(state, StatusCode::BAD_REQUEST, "invalid_request", message))?;
        let request =
            state.oidc.authorization_request(form.get("request")).await.map_err(|e| authorize_error(state, e))?;
        Ok(PageForm { form, request })
    }
}

/// A sign-in or sign-up that a limit refused (429, or 503 when hashing is at capacity), shown
/// on the sign-in page with `Retry-After`; any other failure is the unavailable page.
fn refused_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    username: &str,
    err: AccountError,
) -> Response {
    let (status, secs, error) = match err {
        AccountError::RateLimited(RetryAfter(secs)) => {
            (StatusCode::TOO_MANY_REQUESTS, secs, format!("Too many attempts. Try again in {secs} seconds."))
        }
        AccountError::Hashing(HashingError::Busy) => {
            (StatusCode::SERVICE_UNAVAILABLE, 1, "The server is busy. Try again in a moment.".to_owned())
        }
        other => return unavailable_page(state, &other),
    };
    let input = PageInput { username, error: &error, ..PageInput::default() };
    let mut response = sign_in_page(state, headers, request, status, input);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

const CSRF_FAILED: &str = "This form expired or your browser refused our cookie. Please try again.";

/// `POST /oidc/auth/sign-in`: the hosted page's username and password.
async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    PageForm { form, request }: PageForm,
) -> Response {
    let username = form.get("username");
    if !csrf_ok(&state, &headers, &form) {
        let input = PageInput { username, error: CSRF_FAILED, ..PageInput::default() };
        return sign_in_page(&state, &headers, &request, StatusCode::FORBIDDEN, input);
    }
    // The same check as /webhook/login: one code path, the same protections.
    let ip = client_ip(&state.trusted_proxies, peer.ip(), &headers);
    let user = match state.accounts.sign_in(username, &Password::new(form.get("password").to_owned()), ip).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            let input = PageInput { username, error: LOGIN_FAILED, ..PageInput::default() };
            return sign_in_page(&state, &headers, &request, StatusCode::UNAUTHORIZED, input);
        }
        Err(err) => return refused_page(&state, &headers, &request, username, err),
    };
    signed_in(&state, &headers, &request, &user, client_info(&state, peer, &headers)).await
}

/// Starts the SSO session (replacing any earlier one) and goes on with the authorization.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    user: &crate::db::UserRow,
    client: crate::sessions::ClientInfo,
) -> Response {
    if let Ok(Some(previous)) = browser_session(state, headers).await {
        let _ = state.sessions.revoke(&previous.id, "replaced").await;
    }
    let started = match state.sessions.start(user, &client, SessionKind::Browser).await {
        Ok(started) => started,
        Err(err) => return unavailable_page(state, &err),
    };
    let browser = match state.accounts.db().session_state(&started.session_id).await {
        Ok(Some(found)) => found.session,
        Ok(None) => return unavailable_page(state, &"the new browser session vanished"),
        Err(err) => return unavailable_page(state, &err),
    };
    let max_age = state.sessions.settings().absolute_ttl_secs;
    let sso = cookie(state, SSO_COOKIE, &state.sessions.browser_cookie(&browser.id), max_age);
    finish_authorization(state, headers, request, &browser, vec![sso]).await
}

/// `GET /oidc/auth/sign-up?request=…`.
async fn sign_up_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let raw = query.iter().find(|(k, _)| k == "request").map_or("", |(_, v)| v.as_str());
    let request = match state.oidc.authorization_request(raw).await {
        Ok(request) => request,
        Err(err) => return authorize_error(&state, err),
    };
    if !state.hasura.signup {
        return error_page(&state, StatusCode::FORBIDDEN, "signup_disabled", "Sign-up is turned off on this server.");
    }
    sign_up_form(&state, &headers, &request, StatusCode::OK, PageInput::default())
}

/// `POST /oidc/auth/sign-up`: Django's rules for the username and the password validators.
async fn sign_up(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    PageForm { form, request }: PageForm,
) -> Response {
    if !state.hasura.signup {
        return error_page(&state, StatusCode::FORBIDDEN, "signup_disabled", "Sign-up is turned off on this server.");
    }
    let (username, email) = (form.get("username"), form.get("email"));
    let again = |status: StatusCode, error: &str| {
        let input = PageInput { username, email, error };
        sign_up_form(&state, &headers, &request, status, input)
    };
    if !csrf_ok(&state, &headers, &form) {
        return again(StatusCode::FORBIDDEN, CSRF_FAILED);
    }
    let mut fields = Map::new();
    for name in ["username", "password", "email"] {
        fields.insert(name.into(), Value::String(form.get(name).to_owned()));
    }
    let signup = match Signup::parse(&fields, &state, true) {
        Ok(signup) => signup,
        Err(err) => {
            let messages: Vec<String> = err.errors.iter().map(|e| e.message.clone()).collect();
            return again(StatusCode::BAD_REQUEST, &messages.join(" "));
        }
    };
    let ip = client_ip(&state.trusted_proxies, peer.ip(), &headers);
    let user = match state.accounts.sign_up(signup.new_user, ip).await {
        Ok(user) => user,
        Err(AccountError::UsernameTaken) => {
            return again(StatusCode::CONFLICT, &AccountError::UsernameTaken.to_string());
        }
        Err(AccountError::WeakPassword(violations)) => {
            let messages: Vec<String> = violations.into_iter().map(|v| v.message).collect();
            return again(StatusCode::BAD_REQUEST, &messages.join(" "));
        }
        Err(err) => return refused_page(&state, &headers, &request, username, err),
    };
    if let Err(err) = state.rbac.assign_default_roles(user.id).await {
        return unavailable_page(&state, &err);
    }
    signed_in(&state, &headers, &request, &user, client_info(&state, peer, &headers)).await
}

/// `POST /oidc/auth/consent`: a third-party application allowed or denied.
async fn consent(State(state): State<AppState>, headers: HeaderMap, PageForm { form, request }: PageForm) -> Response {
    let browser = match browser_session(&state, &headers).await {
        Ok(Some(browser)) => browser,
        Ok(None) => return sign_in_page(&state, &headers, &request, StatusCode::OK, PageInput::default()),
        Err(err) => return unavailable_page(&state, &err),
    };
    if !csrf_ok(&state, &headers, &form) {
        return error_page(&state, StatusCode::FORBIDDEN, "invalid_request", CSRF_FAILED);
    }
    if form.get("decision") != "allow" {
        let location = state.oidc.error_redirect(&request, "access_denied", "The user denied the request.");
        return see_other(&location, Vec::new());
    }
    match state.oidc.issue_code(&request, browser.user_id, &browser).await {
        Ok(location) => see_other(&location, Vec::new()),
        Err(err) => unavailable_page(&state, &err),
    }
}

// ---- token, userinfo, introspection, revocation ---------------------------------------------

fn oauth_error(err: OAuthError) -> Response {
    let body = serde_json::json!({ "error": err.error, "error_description": err.description });
    let mut response = (err.status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match err.error {
        "invalid_client" => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gatehouse\""));
        }
        "invalid_token" => {
            let value = format!("Bearer error=\"invalid_token\", error_description=\"{}\"", err.description);
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        "temporarily_unavailable" => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(DATABASE_RETRY_AFTER_SECS));
        }
        _ => {}
    }
    response
}

fn no_store(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `Authorization: Basic`, with the id and secret form-urlencoded inside (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let malformed = || OAuthError::new("invalid_client", "The Authorization header is not valid Basic credentials.");
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.trim().split_once(' ') else { return Err(malformed()) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// The form of a client's request, and the client, authenticated.
async fn client_request(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Form, crate::oidc::Application), OAuthError> {
    let form = read_form(headers, body).await.map_err(|message| OAuthError::new("invalid_request", message))?;
    if let Some(name) = form.repeated() {
        return Err(OAuthError::new("invalid_request", format!("{name} is repeated.")));
    }
    let basic = basic_credentials(headers)?;
    let app = state.oidc.authenticate_client(basic, form.optional("client_id"), form.optional("client_secret")).await?;
    Ok((form, app))
}

/// `POST /oidc/token`.
async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (form, app) = match client_request(&state, &headers, body).await {
        Ok(parsed) => parsed,
        Err(err) => return oauth_error(err),
    };
    let request = TokenForm {
        grant_type: form.get("grant_type").to_owned(),
        code: form.optional("code").map(str::to_owned),
        redirect_uri: form.optional("redirect_uri").map(str::to_owned),
        code_verifier: form.optional("code_verifier").map(str::to_owned),
        refresh_token: form.optional("refresh_token").map(str::to_owned),
        resource: form.optional("resource").map(str::to_owned),
        scope: form.optional("scope").map(str::to_owned),
    };
    match state.oidc.token(&app, &request, &client_info(&state, peer, &headers)).await {
        Ok(body) => no_store(Value::Object(body)),
        Err(err) => oauth_error(err),
    }
}

/// `GET|POST /oidc/me`: the bearer token in the Authorization header.
async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let Some(token) = token else {
        return oauth_error(OAuthError::new("invalid_token", "Send the access token as a Bearer token."));
    };
    match state.oidc.userinfo(token).await {
        Ok(claims) => no_store(Value::Object(claims)),
        Err(err) => oauth_error(err),
    }
}

/// `POST /oidc/token/introspection`: confidential clients only.
async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (form, app) = match client_request(&state, &headers, body).await {
        Ok(parsed) => parsed,
        Err(err) => return oauth_error(err),
    };
    if !app.app_type.has_secret() {
        return oauth_error(OAuthError::new("invalid_client", "Introspection needs a confidential client."));
    }
    let Some(token) = form.optional("token") else {
        return oauth_error(OAuthError::new("invalid_request", "token is missing."));
    };
    match state.oidc.introspect(&app, token).await {
        Ok(body) => no_store(body),
        Err(err) => oauth_error(err),
    }
}

/// `POST /oidc/token/revocation`: 200 whether or not the token meant anything (RFC 7009 §2.2).
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (form, app) = match client_request(&state, &headers, body).await {
        Ok(parsed) => parsed,
        Err(err) => return oauth_error(err),
    };
    let Some(token) = form.optional("token") else {
        return oauth_error(OAuthError::new("invalid_request", "token is missing."));
    };
    match state.oidc.revoke(&app, token).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => oauth_error(err),
    }
}

// ---- sign-out -------------------------------------------------------------------------------

/// `GET /oidc/session/end`: with an ID token hint naming the current SSO session, signs out at
/// once; otherwise asks the user to confirm (a cross-site link must not sign anyone out).
async fn end_session(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let hint = get("id_token_hint");
    let (app, target) =
        match state.oidc.post_logout_target(get("client_id"), hint, get("post_logout_redirect_uri")).await {
            Ok(found) => found,
            Err(err) => return authorize_error(&state, err),
        };
    let browser = match browser_session(&state, &headers).await {
        Ok(browser) => browser,
        Err(err) => return unavailable_page(&state, &err),
    };
    let confirmed = browser.as_ref().is_none_or(|b| state.oidc.hinted_session(hint).as_deref() == Some(b.id.as_str()));
    if confirmed {
        return signed_out(&state, browser.as_ref(), target.as_deref(), get("state")).await;
    }
    let (set_cookie, token) = csrf(&state, &headers);
    let body = state.oidc.settings().templates.render(
        "sign-out.html",
        &[
            ("action", &action(&state, "/session/end")),
            ("csrf", &token),
            ("app_name", app.as_ref().map_or("", |a| a.name.as_str())),
            ("client_id", app.as_ref().map_or("", |a| a.id.as_str())),
            ("post_logout_redirect_uri", target.as_deref().unwrap_or("")),
            ("state", get("state").unwrap_or("")),
        ],
    );
    html(StatusCode::OK, body, set_cookie.into_iter().collect())
}

/// `POST /oidc/session/end`: the confirmation form.
async fn confirm_end_session(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(&headers, body).await {
        Ok(form) => form,
        Err(message) => return error_page(&state, StatusCode::BAD_REQUEST, "invalid_request", message),
    };
    if !csrf_ok(&state, &headers, &form) {
        return error_page(&state, StatusCode::FORBIDDEN, "invalid_request", CSRF_FAILED);
    }
    let target = state
        .oidc
        .post_logout_target(form.optional("client_id"), None, form.optional("post_logout_redirect_uri"))
        .await;
    let (_, target) = match target {
        Ok(found) => found,
        Err(err) => return authorize_error(&state, err),
    };
    let browser = match browser_session(&state, &headers).await {
        Ok(browser) => browser,
        Err(err) => return unavailable_page(&state, &err),
    };
    signed_out(&state, browser.as_ref(), target.as_deref(), form.optional("state")).await
}

async fn signed_out(
    state: &AppState,
    browser: Option<&SessionRow>,
    target: Option<&str>,
    client_state: Option<&str>,
) -> Response {
    if let Some(browser) = browser
        && let Err(err) = state.oidc.sign_out(browser).await
    {
        return unavailable_page(state, &err);
    }
    let cleared = vec![cookie(state, SSO_COOKIE, "", 0)];
    match target {
        Some(uri) => {
            let params: Vec<(&str, &str)> = client_state.map(|s| ("state", s)).into_iter().collect();
            see_other(&with_query(uri, &params), cleared)
        }
        None => html(StatusCode::OK, state.oidc.settings().templates.render("signed-out.html", &[]), cleared),
    }
}
