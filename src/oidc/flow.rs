//! The provider's protocol logic, free of HTTP: authorization requests (RFC 6749 §4.1 with PKCE,
//! RFC 8707 resources, RFC 9207 `iss`), codes, grants, the token endpoint's three grants, ID
//! tokens, userinfo, introspection (RFC 7662), revocation (RFC 7009) and sign-out.
//!
//! A grant is a gatehouse session of kind `oidc`: its refresh tokens rotate under the session
//! rules, and every access token carries its id as `sid`, so revoking the grant stops the
//! webhook accepting them. The SSO cookie names a session of kind `browser`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::OidcSettings;
use super::applications::{AppType, Application, Applications};
use super::crypto::{CodeChallenge, left_half_hash};
use crate::db::{
    AuditEvent, CodeRow, Consumed, Db, DbError, DjangoTime, GrantRow, OpaqueTokenRow, SessionRow, UserRow,
};
use crate::rbac::{Rbac, RbacError, TokenRequest};
use crate::sessions::{ClientInfo, IssuedRefresh, RefreshBy, SessionError, SessionKind, Sessions};
use crate::tokens::{Tokens, unix_now};

/// Authorization codes live one minute (Logto's value).
const CODE_TTL_SECS: u64 = 60;
/// ID tokens and opaque (userinfo) access tokens live an hour, as in Logto.
pub const ID_TOKEN_TTL_SECS: u64 = 3600;
const OPAQUE_TOKEN_TTL_SECS: u64 = 3600;

/// The scopes that are about the user rather than an API resource.
pub const OIDC_SCOPES: [&str; 5] = ["openid", "offline_access", "profile", "email", "roles"];

/// An OAuth error for the token, introspection, revocation and userinfo endpoints.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        let status = match error {
            "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        OAuthError { status, error, description: description.into() }
    }

    fn invalid_grant() -> OAuthError {
        OAuthError::new("invalid_grant", "The grant is invalid, expired, used or was issued to another client.")
    }
}

impl From<DbError> for OAuthError {
    fn from(err: DbError) -> Self {
        tracing::error!(error = %err, "oidc: database error");
        OAuthError::new("temporarily_unavailable", "The service is temporarily unavailable; try again shortly.")
    }
}

impl From<RbacError> for OAuthError {
    fn from(err: RbacError) -> Self {
        match err {
            RbacError::InvalidTarget(message) => OAuthError::new("invalid_target", message),
            RbacError::Denied(message) => OAuthError::new("access_denied", message),
            RbacError::Db(db) => db.into(),
            other => {
                tracing::error!(error = %other, "oidc: token issuance failed");
                OAuthError::new("server_error", "The token could not be issued.")
            }
        }
    }
}

impl From<SessionError> for OAuthError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Invalid => OAuthError::invalid_grant(),
            SessionError::Db(db) => db.into(),
        }
    }
}

/// Why an authorization request cannot go on.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: shown on an error page, never redirected.
    Page {
        error: &'static str,
        description: String,
    },
    /// Sent back to the client at its (verified) redirect URI.
    Redirect {
        location: String,
    },
    Db(DbError),
}

impl From<DbError> for AuthorizeError {
    fn from(err: DbError) -> Self {
        AuthorizeError::Db(err)
    }
}

/// `prompt` (OIDC Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// An authorization request that passed every check.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The query string as received: the hosted pages carry it through their forms.
    pub raw: String,
    pub client: Application,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// Requested scopes, in order, without repeats; `offline_access` only with `prompt=consent`.
    pub scopes: Vec<String>,
    /// The API resources authorized (the default resource when none was named).
    pub resources: Vec<String>,
    pub challenge: Option<CodeChallenge>,
    pub prompt: Prompt,
    pub login_hint: Option<String>,
}

impl AuthorizationRequest {
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// What the token endpoint was sent, besides client authentication.
#[derive(Clone, Debug, Default)]
pub struct TokenForm {
    pub grant_type: String,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
}

#[derive(Clone)]
pub struct Provider {
    db: Db,
    sessions: Sessions,
    rbac: Rbac,
    tokens: Tokens,
    applications: Applications,
    settings: Arc<OidcSettings>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

/// 256 random bits, base64url: codes, opaque tokens, CSRF cookies.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn split_scope(scope: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    scope.split_ascii_whitespace().filter(|s| seen.insert(*s)).map(str::to_owned).collect()
}

/// `uri` with `params` added to its query (an existing query is kept, as RFC 6749 §3.1.2 asks).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return uri.to_owned();
    }
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.into()
        }
        Err(_) => uri.to_owned(),
    }
}

fn all_values<'p>(pairs: &'p [(String, String)], name: &'p str) -> impl Iterator<Item = &'p str> {
    pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A parameter that may appear at most once; empty counts as absent (RFC 6749 §3.1).
fn single_value<'p>(pairs: &'p [(String, String)], name: &str) -> Result<Option<&'p str>, ()> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() { Err(()) } else { Ok(first.filter(|v| !v.is_empty())) }
}

fn resource_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Provider {
    pub fn new(
        db: Db,
        sessions: Sessions,
        rbac: Rbac,
        tokens: Tokens,
        applications: Applications,
        settings: OidcSettings,
    ) -> Provider {
        Provider { db, sessions, rbac, tokens, applications, settings: Arc::new(settings) }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    async fn application(&self, id: &str) -> Result<Option<Application>, DbError> {
        match self.applications.get(id).await {
            Ok(app) => Ok(Some(app)),
            Err(RbacError::Db(err)) => Err(err),
            Err(_) => Ok(None),
        }
    }

    /// The discovery document, with the scopes of every API resource.
    pub async fn discovery(&self) -> Result<Value, DbError> {
        let scopes = self.db.all_scope_names().await?;
        Ok(super::discovery::document(&self.settings.issuer, &[self.tokens.keys().alg()], &scopes))
    }

    /// Checks an authorization request in the order RFC 6749 §4.1.2.1 asks: until the client
    /// and redirect URI are known good, errors go to a page; after, back to the client.
    pub async fn authorization_request(&self, raw: &str) -> Result<AuthorizationRequest, AuthorizeError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
        let page =
            |error: &'static str, description: &str| AuthorizeError::Page { error, description: description.into() };
        let single = |name: &str| single_value(&pairs, name);
        let client_id = single("client_id")
            .map_err(|_| page("invalid_request", "client_id is repeated."))?
            .ok_or_else(|| page("invalid_request", "client_id is missing."))?;
        let Some(client) = self.application(client_id).await? else {
            return Err(page("invalid_client", "There is no application with this client_id."));
        };
        let redirect_uri = single("redirect_uri")
            .map_err(|_| page("invalid_request", "redirect_uri is repeated."))?
            .ok_or_else(|| page("invalid_request", "redirect_uri is missing."))?;
        if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
            return Err(page("invalid_redirect_uri", "The redirect_uri is not one registered for this application."));
        }
        let state = single("state").ok().flatten().map(str::to_owned);
        let back = |error: &'static str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(state) = &state {
                params.push(("state", state));
            }
            params.push(("iss", &self.settings.issuer));
            AuthorizeError::Redirect { location: with_query(redirect_uri, &params) }
        };
        const SINGLE: [&str; 10] = [
            "state",
            "response_type",
            "response_mode",
            "scope",
            "nonce",
            "prompt",
            "code_challenge",
            "code_challenge_method",
            "login_hint",
            "max_age",
        ];
        if let Some(name) = SINGLE.iter().find(|name| single(name).is_err()) {
            return Err(back("invalid_request", &format!("{name} is repeated.")));
        }
        let get = |name: &str| single(name).ok().flatten();
        if get("request").is_some() {
            return Err(back("request_not_supported", "Request objects are not supported."));
        }
        if get("request_uri").is_some() {
            return Err(back("request_uri_not_supported", "request_uri is not supported."));
        }
        match get("response_type") {
            Some("code") => {}
            None => return Err(back("invalid_request", "response_type is missing.")),
            Some(_) => return Err(back("unsupported_response_type", "Only response_type=code is supported.")),
        }
        if get("response_mode").is_some_and(|mode| mode != "query") {
            return Err(back("invalid_request", "Only response_mode=query is supported."));
        }
        if client.app_type == AppType::Machine {
            return Err(back("unauthorized_client", "A machine application uses client credentials only."));
        }
        let challenge = match get("code_challenge") {
            Some(challenge) => Some(
                CodeChallenge::parse(challenge, get("code_challenge_method"))
                    .map_err(|message| back("invalid_request", message))?,
            ),
            None if !client.app_type.has_secret() => {
                return Err(back(
                    "invalid_request",
                    "PKCE (code_challenge with S256) is required for this application.",
                ));
            }
            None => None,
        };
        let mut prompt = Prompt::default();
        for value in get("prompt").unwrap_or("").split_ascii_whitespace() {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err(back("invalid_request", "prompt is none, login, consent or select_account.")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(back("invalid_request", "prompt=none cannot be combined with other values."));
        }
        let raw_scope = get("scope").unwrap_or("");
        if !raw_scope.split_ascii_whitespace().all(|s| crate::rbac::ScopeName::parse(s).is_ok()) {
            return Err(back("invalid_scope", "A scope is malformed."));
        }
        let mut scopes = split_scope(raw_scope);
        // node-oidc-provider's rule, which Logto's SDKs rely on: offline access needs consent.
        if !prompt.consent {
            scopes.retain(|s| s != "offline_access");
        }
        let mut resources = Vec::new();
        for requested in all_values(&pairs, "resource") {
            match self.rbac.resolve_resource(Some(requested)).await {
                Ok(Some(resource)) if !resources.contains(&resource.indicator) => resources.push(resource.indicator),
                Ok(_) => {}
                Err(RbacError::InvalidTarget(message)) => return Err(back("invalid_target", &message)),
                Err(RbacError::Db(err)) => return Err(err.into()),
                Err(other) => return Err(back("server_error", &other.to_string())),
            }
        }
        if resources.is_empty()
            && let Some(default) = self.db.default_resource().await?
        {
            resources.push(default.indicator);
        }
        Ok(AuthorizationRequest {
            raw: raw.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            nonce: get("nonce").map(str::to_owned),
            login_hint: get("login_hint").map(str::to_owned),
            client,
            state,
            scopes,
            resources,
            challenge,
            prompt,
        })
    }

    /// The redirect that sends an error back to the client.
    pub fn error_redirect(&self, request: &AuthorizationRequest, error: &str, description: &str) -> String {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.settings.issuer));
        with_query(&request.redirect_uri, &params)
    }

    /// Issues a code for `user`, signed in in `browser`, and answers the redirect that carries it.
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        user_id: i32,
        browser: &SessionRow,
    ) -> Result<String, DbError> {
        let code = random_token();
        let row = CodeRow {
            digest: digest(&code),
            application_id: request.client.id.clone(),
            user_id,
            browser_session_id: browser.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.challenge.as_ref().map(|c| c.as_str().to_owned()),
            nonce: request.nonce.clone(),
            scope: request.scope(),
            resources: serde_json::to_string(&request.resources).expect("strings serialize"),
            auth_time: browser.created_at.0.unix_timestamp(),
            expires_at: DjangoTime::now().plus_secs(CODE_TTL_SECS),
            consumed_at: None,
            session_id: None,
        };
        self.db.insert_code(&row).await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.settings.issuer));
        Ok(with_query(&request.redirect_uri, &params))
    }

    /// Client authentication (RFC 6749 §2.3): HTTP Basic or `client_secret` in the body for
    /// confidential applications, `client_id` alone for public ones.
    pub async fn authenticate_client(
        &self,
        basic: Option<(String, String)>,
        form_id: Option<&str>,
        form_secret: Option<&str>,
    ) -> Result<Application, OAuthError> {
        let failed = || OAuthError::new("invalid_client", "Client authentication failed.");
        if basic.is_some() && form_secret.is_some() {
            return Err(OAuthError::new("invalid_request", "Use one client authentication method, not two."));
        }
        let (id, secret) = match (&basic, form_id) {
            (Some((id, _)), Some(form_id)) if id != form_id => {
                return Err(OAuthError::new("invalid_request", "client_id differs from the authenticated client."));
            }
            (Some((id, secret)), _) => (id.as_str(), Some(secret.as_str())),
            (None, Some(id)) => (id, form_secret),
            (None, None) => return Err(failed()),
        };
        let app = self.application(id).await?.ok_or_else(failed)?;
        match (app.app_type.has_secret(), secret) {
            (true, Some(secret)) => match self.applications.authenticate(id, secret).await {
                Ok(Some(app)) => Ok(app),
                Ok(None) => Err(failed()),
                Err(RbacError::Db(err)) => Err(err.into()),
                Err(_) => Err(failed()),
            },
            (false, None) => Ok(app),
            // A confidential client without its secret, or a public one claiming to have one.
            _ => Err(failed()),
        }
    }

    /// The token endpoint, after client authentication.
    pub async fn token(
        &self,
        app: &Application,
        form: &TokenForm,
        client: &ClientInfo,
    ) -> Result<Map<String, Value>, OAuthError> {
        let allowed = match app.app_type {
            AppType::Machine => form.grant_type == "client_credentials",
            _ => form.grant_type != "client_credentials",
        };
        match form.grant_type.as_str() {
            "authorization_code" | "refresh_token" | "client_credentials" if !allowed => Err(OAuthError::new(
                "unauthorized_client",
                format!("A {} application cannot use the {} grant.", app.app_type.as_str(), form.grant_type),
            )),
            "authorization_code" => self.exchange_code(app, form, client).await,
            "refresh_token" => self.refresh(app, form, client).await,
            "client_credentials" => self.client_credentials(app, form).await,
            "" => Err(OAuthError::new("invalid_request", "grant_type is missing.")),
            _ => Err(OAuthError::new("unsupported_grant_type", "The grant_type is not supported.")),
        }
    }

    async fn exchange_code(
        &self,
        app: &Application,
        form: &TokenForm,
        client: &ClientInfo,
    ) -> Result<Map<String, Value>, OAuthError> {
        let code = form.code.as_deref().ok_or_else(|| OAuthError::new("invalid_request", "code is missing."))?;
        let code_digest = digest(code);
        let row = self.db.code(&code_digest).await?.ok_or_else(OAuthError::invalid_grant)?;
        if row.application_id != app.id {
            return Err(OAuthError::invalid_grant());
        }
        let now = DjangoTime::now();
        if row.consumed_at.is_some() {
            self.replayed_code(&row, None).await;
            return Err(OAuthError::invalid_grant());
        }
        if row.expires_at <= now || form.redirect_uri.as_deref() != Some(row.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant());
        }
        let verified = match (&row.code_challenge, &form.code_verifier) {
            (Some(challenge), Some(verifier)) => CodeChallenge::from_stored(challenge).verify(verifier),
            (None, None) => true,
            _ => false,
        };
        if !verified {
            return Err(OAuthError::new("invalid_grant", "The PKCE code_verifier does not match the code_challenge."));
        }
        let resources = resource_list(&row.resources);
        let resource = self.requested_resource(form, &resources)?;
        let user =
            self.db.user_by_id(row.user_id).await?.filter(|u| u.is_active).ok_or_else(OAuthError::invalid_grant)?;
        if !self.sessions.is_live(&row.browser_session_id).await? {
            return Err(OAuthError::invalid_grant());
        }
        let grant = GrantRow {
            application_id: app.id.clone(),
            browser_session_id: Some(row.browser_session_id.clone()),
            scope: row.scope.clone(),
            resources: row.resources.clone(),
            auth_time: row.auth_time,
        };
        let session = self.sessions.start(&user, client, SessionKind::Grant(&grant)).await?;
        match self.db.consume_code(&code_digest, &session.session_id, now).await? {
            Consumed::Won => {}
            Consumed::AlreadyUsed { session_id } => {
                self.replayed_code(&CodeRow { session_id, ..row }, Some(&session.session_id)).await;
                return Err(OAuthError::invalid_grant());
            }
        }
        let scopes = split_scope(&row.scope);
        let issued = self
            .issue(app, &user, &session, &grant, resource, &scopes, row.nonce.as_deref(), "authorization_code")
            .await;
        if issued.is_err() {
            // A grant whose first tokens were refused (denyAccess, say) must not live on.
            let _ = self.sessions.revoke(&session.session_id, "token_refused").await;
        }
        issued
    }

    /// A code presented twice: whatever was issued from it is revoked (RFC 6749 §4.1.2).
    async fn replayed_code(&self, row: &CodeRow, also: Option<&str>) {
        for session_id in row.session_id.iter().map(String::as_str).chain(also) {
            if let Err(err) = self.sessions.revoke(session_id, "code_replay").await {
                tracing::error!(error = %err, "could not revoke the grant of a replayed code");
            }
        }
        let detail = "an authorization code was presented again; its grant was revoked";
        if let Err(err) = self
            .db
            .audit_event(
                &AuditEvent::new("oidc_code_replay", detail)
                    .by(format!("client:{}", row.application_id))
                    .about(Some(row.user_id))
                    .session(row.session_id.as_deref())
                    .failed(),
            )
            .await
        {
            tracing::error!(error = %err, "could not write the audit record of a code replay");
        }
        tracing::warn!(client_id = %row.application_id, user_id = row.user_id, "authorization code replayed");
    }

    /// The `resource` of a token request, which must be one the grant authorized.
    fn requested_resource<'f>(&self, form: &'f TokenForm, granted: &[String]) -> Result<Option<&'f str>, OAuthError> {
        match form.resource.as_deref() {
            Some(resource) if !granted.iter().any(|g| g == resource) => {
                Err(OAuthError::new("invalid_target", "The resource was not authorized for this grant."))
            }
            resource => Ok(resource),
        }
    }

    async fn refresh(
        &self,
        app: &Application,
        form: &TokenForm,
        client: &ClientInfo,
    ) -> Result<Map<String, Value>, OAuthError> {
        let token = form
            .refresh_token
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing."))?;
        let (session, _) =
            self.sessions.session_of_refresh_token(token).await?.ok_or_else(OAuthError::invalid_grant)?;
        if session.kind != "oidc" || session.client_id.as_deref() != Some(app.id.as_str()) {
            return Err(OAuthError::invalid_grant());
        }
        let grant = self.db.oidc_grant(&session.id).await?.ok_or_else(OAuthError::invalid_grant)?;
        let granted = split_scope(&grant.scope);
        let scopes = match form.scope.as_deref() {
            Some(requested) => {
                let requested = split_scope(requested);
                if let Some(extra) = requested.iter().find(|s| !granted.contains(s)) {
                    return Err(OAuthError::new("invalid_scope", format!("{extra:?} was not granted.")));
                }
                requested
            }
            None => granted,
        };
        let resource = self.requested_resource(form, &resource_list(&grant.resources))?;
        let rotated = self.sessions.refresh(token, client, RefreshBy::Client(&app.id)).await?;
        let user = self.db.user_by_id(rotated.user_id).await?.ok_or_else(OAuthError::invalid_grant)?;
        self.issue(app, &user, &rotated, &grant, resource, &scopes, None, "refresh_token").await
    }

    async fn client_credentials(&self, app: &Application, form: &TokenForm) -> Result<Map<String, Value>, OAuthError> {
        let resource =
            self.rbac.resolve_resource(form.resource.as_deref()).await?.ok_or_else(|| {
                OAuthError::new("invalid_target", "Name an API resource: there is no default resource.")
            })?;
        let issued = self.rbac.issue_machine_token(&self.tokens, &app.id, &resource, form.scope.as_deref()).await?;
        let mut body = Map::new();
        body.insert("access_token".into(), issued.token.into());
        body.insert("token_type".into(), "Bearer".into());
        body.insert("expires_in".into(), issued.expires_in.into());
        if let Some(scope) = issued.scope {
            body.insert("scope".into(), scope.into());
        }
        Ok(body)
    }

    /// The token response of a grant: a JWT access token for `resource` or an opaque one for
    /// userinfo, an ID token with `openid`, and the refresh token when the grant has
    /// `offline_access`.
    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &self,
        app: &Application,
        user: &UserRow,
        session: &IssuedRefresh,
        grant: &GrantRow,
        resource: Option<&str>,
        scopes: &[String],
        nonce: Option<&str>,
        grant_type: &str,
    ) -> Result<Map<String, Value>, OAuthError> {
        let identity_scopes: Vec<&str> =
            scopes.iter().map(String::as_str).filter(|s| OIDC_SCOPES.contains(s)).collect();
        let (access_token, expires_in, scope) = match resource {
            Some(resource) => {
                let scope = scopes.join(" ");
                let request = TokenRequest {
                    resource: Some(resource),
                    scope: Some(&scope),
                    grant_type,
                    client_id: Some(&app.id),
                };
                let issued = self
                    .rbac
                    .issue_access_token(&self.tokens, user, &session.session_id, session.expires_in, &request)
                    .await?;
                (issued.token, issued.expires_in, issued.scope.unwrap_or_default())
            }
            None => {
                let token = random_token();
                let expires_in = OPAQUE_TOKEN_TTL_SECS.min(session.expires_in);
                let now = DjangoTime::now();
                let row = OpaqueTokenRow {
                    digest: digest(&token),
                    session_id: session.session_id.clone(),
                    scope: identity_scopes.join(" "),
                    created_at: now,
                    expires_at: now.plus_secs(expires_in),
                };
                self.db.insert_opaque_token(&row).await?;
                (token, expires_in, row.scope)
            }
        };
        let mut body = Map::new();
        if identity_scopes.contains(&"openid") {
            let id_token = self.id_token(app, user, session, grant, &identity_scopes, nonce, &access_token).await?;
            body.insert("id_token".into(), id_token.into());
        }
        // The grant's scope decides, not this request's: a refresh that narrows its scope
        // still gets the rotated refresh token back.
        if split_scope(&grant.scope).iter().any(|s| s == "offline_access") {
            body.insert("refresh_token".into(), session.refresh_token.clone().into());
        }
        body.insert("access_token".into(), access_token.into());
        body.insert("token_type".into(), "Bearer".into());
        body.insert("expires_in".into(), expires_in.into());
        body.insert("scope".into(), scope.into());
        Ok(body)
    }

    #[allow(clippy::too_many_arguments)]
    async fn id_token(
        &self,
        app: &Application,
        user: &UserRow,
        session: &IssuedRefresh,
        grant: &GrantRow,
        scopes: &[&str],
        nonce: Option<&str>,
        access_token: &str,
    ) -> Result<String, OAuthError> {
        let now = unix_now();
        let mut claims = self.user_claims(user, scopes).await?;
        claims.insert("iss".into(), self.settings.issuer.clone().into());
        claims.insert("sub".into(), user.id.to_string().into());
        claims.insert("aud".into(), app.id.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ID_TOKEN_TTL_SECS).into());
        claims.insert("auth_time".into(), grant.auth_time.into());
        let sid = grant.browser_session_id.as_deref().unwrap_or(&session.session_id);
        claims.insert("sid".into(), sid.into());
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        // One signer for both: a rotation may switch keys between two calls.
        let keys = self.tokens.keys();
        let signer = keys.signer();
        claims.insert("at_hash".into(), left_half_hash(signer.alg(), access_token).into());
        self.tokens.sign_id_token(signer, claims).map_err(|err| RbacError::Key(err).into())
    }

    /// The claims each identity scope releases (Logto's mapping; Django has no verified-email
    /// flag, so `email_verified` is false).
    async fn user_claims(&self, user: &UserRow, scopes: &[&str]) -> Result<Map<String, Value>, DbError> {
        let mut claims = Map::new();
        let text_or_null = |text: &str| if text.is_empty() { Value::Null } else { text.into() };
        if scopes.contains(&"profile") {
            let name = format!("{} {}", user.first_name, user.last_name);
            claims.insert("name".into(), text_or_null(name.trim()));
            claims.insert("username".into(), user.username.clone().into());
            claims.insert("picture".into(), Value::Null);
        }
        if scopes.contains(&"email") {
            claims.insert("email".into(), text_or_null(&user.email));
            claims.insert("email_verified".into(), false.into());
        }
        if scopes.contains(&"roles") {
            claims.insert("roles".into(), self.rbac.user_role_names(user.id).await?.into());
        }
        Ok(claims)
    }

    /// `/oidc/me`: the user behind an opaque access token, by its scopes. Tokens for an API
    /// resource are refused, as in Logto: their audience is the resource, not userinfo.
    pub async fn userinfo(&self, token: &str) -> Result<Map<String, Value>, OAuthError> {
        if token.contains('.') {
            return Err(OAuthError::new(
                "invalid_token",
                "A token for an API resource (with an audience) cannot be used at the userinfo endpoint.",
            ));
        }
        let invalid = || OAuthError::new("invalid_token", "The access token is not valid.");
        let row = self.live_opaque_token(token).await?.ok_or_else(invalid)?;
        let state = self.db.session_state(&row.session_id).await?.ok_or_else(invalid)?;
        let user = self.db.user_by_id(state.session.user_id).await?.ok_or_else(invalid)?;
        let scopes: Vec<&str> = row.scope.split_ascii_whitespace().collect();
        let mut claims = self.user_claims(&user, &scopes).await?;
        claims.insert("sub".into(), user.id.to_string().into());
        Ok(claims)
    }

    async fn live_opaque_token(&self, token: &str) -> Result<Option<OpaqueTokenRow>, DbError> {
        if token.len() != 43 {
            return Ok(None);
        }
        let Some(row) = self.db.opaque_token(&digest(token)).await? else { return Ok(None) };
        if row.expires_at <= DjangoTime::now() || !self.sessions.is_live(&row.session_id).await? {
            return Ok(None);
        }
        Ok(Some(row))
    }

    /// RFC 7662. Access tokens (JWT or opaque) are described to any confidential client;
    /// refresh tokens only to the client they were issued to.
    pub async fn introspect(&self, app: &Application, token: &str) -> Result<Value, OAuthError> {
        let inactive = json!({ "active": false });
        if token.contains('.') {
            let Some(claims) = self.tokens.decode_own(token) else { return Ok(inactive) };
            if let Some(sid) = claims.get("sid").and_then(Value::as_str)
                && !self.sessions.is_live(sid).await?
            {
                return Ok(inactive);
            }
            let mut body = claims;
            body.insert("active".into(), true.into());
            body.insert("token_type".into(), "Bearer".into());
            return Ok(Value::Object(body));
        }
        if let Some(row) = self.live_opaque_token(token).await? {
            let Some(state) = self.db.session_state(&row.session_id).await? else { return Ok(inactive) };
            return Ok(json!({
                "active": true,
                "token_type": "Bearer",
                "sub": state.session.user_id.to_string(),
                "client_id": state.session.client_id,
                "scope": row.scope,
                "iat": row.created_at.0.unix_timestamp(),
                "exp": row.expires_at.0.unix_timestamp(),
                "sid": row.session_id,
                "iss": self.settings.issuer,
            }));
        }
        if let Some((session, current)) = self.sessions.session_of_refresh_token(token).await?
            && current
            && session.client_id.as_deref() == Some(app.id.as_str())
            && self.sessions.is_live(&session.id).await?
        {
            let scope = self.db.oidc_grant(&session.id).await?.map(|g| g.scope).unwrap_or_default();
            return Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "sub": session.user_id.to_string(),
                "client_id": app.id,
                "scope": scope,
                "iat": session.created_at.0.unix_timestamp(),
                "exp": session.expires_at.0.unix_timestamp(),
                "sid": session.id,
                "iss": self.settings.issuer,
            }));
        }
        Ok(inactive)
    }

    /// RFC 7009: a refresh token ends its grant; an opaque access token stops working. Tokens
    /// of other clients, unknown tokens and JWTs (which expire on their own, and die with their
    /// grant) are left as they are, and the answer is the same.
    pub async fn revoke(&self, app: &Application, token: &str) -> Result<(), OAuthError> {
        if let Some((session, _)) = self.sessions.session_of_refresh_token(token).await? {
            if session.client_id.as_deref() == Some(app.id.as_str()) {
                self.sessions.revoke(&session.id, "oidc_revoked").await?;
            }
            return Ok(());
        }
        if token.len() == 43
            && let Some(row) = self.db.opaque_token(&digest(token)).await?
        {
            let owner = self.db.session_state(&row.session_id).await?.and_then(|s| s.session.client_id);
            if owner.as_deref() == Some(app.id.as_str()) {
                self.db.delete_opaque_token(&row.digest).await?;
            }
        }
        Ok(())
    }

    /// Ends an SSO session and every grant made in it.
    pub async fn sign_out(&self, browser: &SessionRow) -> Result<usize, DbError> {
        let mut ended = usize::from(self.sessions.revoke(&browser.id, "logout").await?);
        for grant in self.db.grants_of_browser_session(&browser.id).await? {
            ended += usize::from(self.sessions.revoke(&grant, "logout").await?);
        }
        self.db
            .audit_event(
                &AuditEvent::by_user("oidc_sign_out", browser.user_id, &format!("{ended} session(s) ended"))
                    .session(Some(&browser.id)),
            )
            .await?;
        Ok(ended)
    }

    /// The application and post-logout redirect URI of an end-session request, checked: the
    /// URI must be registered for the application named by `client_id` or the ID token hint.
    pub async fn post_logout_target(
        &self,
        client_id: Option<&str>,
        id_token_hint: Option<&str>,
        uri: Option<&str>,
    ) -> Result<(Option<Application>, Option<String>), AuthorizeError> {
        let page =
            |description: &str| AuthorizeError::Page { error: "invalid_request", description: description.into() };
        let hinted = id_token_hint.and_then(|hint| self.tokens.decode_own_ignoring_expiry(hint));
        let hinted_client = hinted.as_ref().and_then(|c| c.get("aud")).and_then(Value::as_str).map(str::to_owned);
        if id_token_hint.is_some() && hinted_client.is_none() {
            return Err(page("The id_token_hint is not an ID token issued here."));
        }
        let client_id = match (client_id, hinted_client.as_deref()) {
            (Some(a), Some(b)) if a != b => {
                return Err(page("client_id and id_token_hint name different applications."));
            }
            (Some(id), _) | (None, Some(id)) => Some(id),
            (None, None) => None,
        };
        let app = match client_id {
            Some(id) => {
                Some(self.application(id).await?.ok_or_else(|| page("There is no application with this client_id."))?)
            }
            None => None,
        };
        let Some(uri) = uri.filter(|u| !u.is_empty()) else { return Ok((app, None)) };
        let registered = app.as_ref().is_some_and(|a| a.post_logout_redirect_uris.iter().any(|u| u == uri));
        if !registered {
            return Err(page("The post_logout_redirect_uri is not one registered for this application."));
        }
        Ok((app, Some(uri.to_owned())))
    }

    /// The SSO session that the ID token hint names, for a sign-out without a confirmation.
    pub fn hinted_session(&self, id_token_hint: Option<&str>) -> Option<String> {
        let claims = self.tokens.decode_own_ignoring_expiry(id_token_hint?)?;
        claims.get("sid").and_then(Value::as_str).map(str::to_owned)
    }
}
