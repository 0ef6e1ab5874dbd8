//! RBAC the Logto way on Django groups: API resources with scopes, roles that bundle scopes
//! (roles *are* Django groups, so the Django admin assigns them), the scopes a token gets for a
//! resource, and custom claims ([`custom_claims`], run by the sandbox in [`script`]).

pub mod custom_claims;
mod manage;
pub mod script;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::db::{Db, DbError, Outage, ResourceRow, UserRow, is_unique_violation};
use crate::tokens::{DraftToken, Grant, KeyError, Subject, Tokens};

use self::custom_claims::{CustomClaims, TokenType};
use self::script::{ScriptError, ScriptLimits};

/// An API resource indicator (RFC 8707): an absolute URI without a fragment. It is the `aud` of
/// the resource's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indicator(String);

impl Indicator {
    pub fn parse(text: &str) -> Result<Indicator, String> {
        let absolute = url::Url::parse(text).is_ok_and(|url| url.fragment().is_none());
        if text.len() > 255 || text.chars().any(|c| c.is_whitespace() || c.is_control()) || !absolute {
            return Err("An API resource indicator must be an absolute URI without a fragment, \
                        at most 255 characters, such as https://example.hasura.app/api."
                .into());
        }
        Ok(Indicator(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A scope name: RFC 6749's scope-token (printable ASCII except space, `"` and `\`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeName(String);

impl ScopeName {
    pub fn parse(text: &str) -> Result<ScopeName, String> {
        let valid =
            (1..=255).contains(&text.len()) && text.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e));
        if !valid {
            return Err("A scope name is 1 to 255 printable ASCII characters without spaces, quotes or \
                        backslashes, such as read:user."
                .into());
        }
        Ok(ScopeName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role name, which is a Django group name (`auth_group.name`, at most 150 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(text: &str) -> Result<RoleName, String> {
        let name = text.trim();
        if name.is_empty() || name.chars().count() > 150 || name.chars().any(char::is_control) {
            return Err("A role name is 1 to 150 characters, without control characters.".into());
        }
        Ok(RoleName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who holds a role: users (through `auth_user_groups`) or machine applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleType {
    User,
    Machine,
}

impl RoleType {
    /// Also accepts Logto's names, `User` and `MachineToMachine`.
    pub fn parse(text: &str) -> Result<RoleType, String> {
        match text {
            "user" | "User" => Ok(RoleType::User),
            "machine" | "MachineToMachine" => Ok(RoleType::Machine),
            _ => Err("A role type is user or machine.".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::User => "user",
            RoleType::Machine => "machine",
        }
    }
}

/// An access-token lifetime for a resource, in seconds.
pub fn parse_ttl(value: i64) -> Result<i32, String> {
    match i32::try_from(value) {
        Ok(ttl) if (60..=86_400).contains(&ttl) => Ok(ttl),
        _ => Err("An access-token lifetime is between 60 and 86400 seconds.".into()),
    }
}

/// Logto's default access-token lifetime for a resource.
pub const DEFAULT_RESOURCE_TTL: i32 = 3600;

/// The scope that grants the admin API.
pub const ADMIN_SCOPE: &str = "all";

#[derive(Clone, Debug)]
pub struct RbacSettings {
    /// The admin API's own resource indicator (`<public URL>/api`): its one scope, `all`, is
    /// held by active superusers.
    pub management_indicator: String,
    /// The resource whose scopes also include the user's Django permissions (`app.codename`).
    pub permissions_resource: Option<String>,
    pub script_limits: ScriptLimits,
    /// While the database is unreachable, the last list of resource indicators read stands for
    /// this long past its cache time (`GATEHOUSE_SESSION_STALE_IF_ERROR`), so that the webhook
    /// can still check tokens.
    pub audiences_stale_if_error: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("{0}")]
    InvalidTarget(String),
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The custom-claims script called `api.denyAccess`.
    #[error("{0}")]
    Denied(String),
    /// The custom-claims script failed and its configuration blocks issuance on errors.
    #[error("the custom claims script failed: {0}")]
    CustomClaims(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl RbacError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> RbacError {
        RbacError::Invalid { field, message: message.into() }
    }

    /// Maps a unique-constraint failure to a conflict with `message`.
    pub fn conflict_on_unique(err: DbError, message: &str) -> RbacError {
        match err {
            DbError::Sql(sql) if is_unique_violation(&sql) => RbacError::Conflict(message.to_owned()),
            other => RbacError::Db(other),
        }
    }
}

/// What a client asks a token for: a resource and scopes (space-separated).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenRequest<'a> {
    pub resource: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// `password` at login and signup, `refresh_token` on refresh: the script's `token.gty`.
    pub grant_type: &'a str,
    /// The OIDC application the token is issued to: the token then carries `client_id`, the
    /// provider's issuer and the header `typ: at+jwt` (RFC 9068).
    pub client_id: Option<&'a str>,
}

/// A signed access token and what it was granted.
#[derive(Clone, Debug)]
pub struct IssuedAccess {
    pub token: String,
    pub expires_in: u64,
    pub audience: Option<String>,
    pub scope: Option<String>,
}

#[derive(Clone)]
pub struct Rbac {
    db: Db,
    settings: Arc<RbacSettings>,
    claims: CustomClaims,
    audiences: Arc<Mutex<Option<CachedAudiences>>>,
    outage: Arc<Outage>,
}

impl std::fmt::Debug for Rbac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rbac").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The resource indicators, and when they were read.
type CachedAudiences = (Instant, Arc<Vec<String>>);

/// How long the list of resource indicators that the webhook accepts as `aud` is cached.
const AUDIENCE_CACHE: Duration = Duration::from_secs(5);

impl Rbac {
    pub fn new(db: Db, settings: RbacSettings) -> Rbac {
        let claims = CustomClaims::new(db.clone(), settings.script_limits);
        Rbac { db, settings: Arc::new(settings), claims, audiences: Arc::new(Mutex::new(None)), outage: Arc::default() }
    }

    /// Shares what the sessions know of a database outage: the webhook reads both, and the
    /// second need not wait for the acquire timeout once the first did.
    pub fn sharing_outage(mut self, outage: Arc<Outage>) -> Rbac {
        self.outage = outage;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn settings(&self) -> &RbacSettings {
        &self.settings
    }

    pub fn custom_claims(&self) -> &CustomClaims {
        &self.claims
    }

    /// The admin API's resource, which lives in configuration rather than in the database.
    fn management_resource(&self) -> ResourceRow {
        ResourceRow {
            id: 0,
            indicator: self.settings.management_indicator.clone(),
            name: "gatehouse admin API".into(),
            access_token_ttl: 900,
            is_default: false,
        }
    }

    /// The resource a token is for: the requested one, else the default one, else none.
    /// An unknown or malformed indicator is `invalid_target`.
    pub async fn resolve_resource(&self, requested: Option<&str>) -> Result<Option<ResourceRow>, RbacError> {
        let Some(requested) = requested else { return Ok(self.db.default_resource().await?) };
        let unknown = || RbacError::InvalidTarget(format!("{requested:?} is not a known API resource."));
        if requested == self.settings.management_indicator {
            return Ok(Some(self.management_resource()));
        }
        let indicator = Indicator::parse(requested).map_err(|_| unknown())?;
        self.db.resource_by_indicator(indicator.as_str()).await?.map(Some).ok_or_else(unknown)
    }

    /// Every scope the user holds on `resource`: from their user roles, plus Django permissions
    /// on the permissions resource, plus `all` on the admin API for active superusers.
    pub async fn user_scopes(&self, user: &UserRow, resource: &ResourceRow) -> Result<Vec<String>, RbacError> {
        if resource.indicator == self.settings.management_indicator {
            let admin = user.is_active && user.is_superuser;
            return Ok(if admin { vec![ADMIN_SCOPE.to_owned()] } else { Vec::new() });
        }
        let mut scopes = self.db.user_scope_names(user.id, resource.id).await?;
        if self.settings.permissions_resource.as_deref() == Some(resource.indicator.as_str()) {
            scopes.extend(self.db.user_permissions(user).await?);
        }
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }

    /// The grant for a token request: requested scopes ∩ the user's scopes on the resource
    /// (scopes the user lacks are dropped, as Logto does); no `scope` means all of them.
    pub async fn grant(&self, user: &UserRow, request: &TokenRequest<'_>) -> Result<Option<Grant>, RbacError> {
        let Some(resource) = self.resolve_resource(request.resource).await? else { return Ok(None) };
        let held = self.user_scopes(user, &resource).await?;
        let scopes = match request.scope {
            None => held,
            Some(requested) => {
                let requested: Vec<&str> = requested.split_ascii_whitespace().collect();
                held.into_iter().filter(|s| requested.contains(&s.as_str())).collect()
            }
        };
        let ttl_secs = u64::try_from(resource.access_token_ttl).unwrap_or(900);
        Ok(Some(Grant { audience: resource.indicator, scopes, ttl_secs }))
    }

    /// The resource indicators the webhook accepts as `aud`, refreshed every few seconds so
    /// that a resource made on another instance is known soon. While the database cannot be
    /// read, the last list stands for `audiences_stale_if_error` more, given at once (one
    /// background read at a time watches for the database to come back).
    pub async fn audiences(&self) -> Result<Arc<Vec<String>>, DbError> {
        let cached = self.audiences.lock().expect("audience cache").clone();
        let stale = match cached {
            Some((at, list)) if at.elapsed() < AUDIENCE_CACHE => return Ok(list),
            Some((at, list)) if at.elapsed() < AUDIENCE_CACHE + self.settings.audiences_stale_if_error => Some(list),
            _ => None,
        };
        if let Some(list) = &stale
            && self.outage.failing()
        {
            let rbac = self.clone();
            self.outage.probe(async move {
                let _ = rbac.read_audiences().await;
            });
            return Ok(list.clone());
        }
        match self.read_audiences().await {
            Err(err) => stale.ok_or(err),
            list => list,
        }
    }

    async fn read_audiences(&self) -> Result<Arc<Vec<String>>, DbError> {
        let read = self.db.resource_indicators().await;
        self.outage.record("resource indicators", &read);
        let mut list = read?;
        list.push(self.settings.management_indicator.clone());
        let list = Arc::new(list);
        *self.audiences.lock().expect("audience cache") = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// Forgets the cached indicators after a change made here.
    pub fn resources_changed(&self) {
        *self.audiences.lock().expect("audience cache") = None;
    }

    /// Gives a new user the default roles, as Logto does at user creation.
    pub async fn assign_default_roles(&self, user_id: i32) -> Result<(), DbError> {
        for role_id in self.db.default_role_ids().await? {
            self.db.add_user_to_group(user_id, role_id).await?;
        }
        Ok(())
    }

    /// The user's Django groups that are user roles (machine roles never reach user tokens).
    pub async fn user_role_names(&self, user_id: i32) -> Result<Vec<String>, DbError> {
        let roles = self.db.user_roles(user_id).await?;
        Ok(roles.into_iter().filter(|r| r.role_type == RoleType::User.as_str()).map(|r| r.name).collect())
    }

    /// An access token for `user` in a session: the grant, the Hasura claims, and the custom
    /// claims script's claims merged under the reserved ones.
    pub async fn issue_access_token(
        &self,
        tokens: &Tokens,
        user: &UserRow,
        session_id: &str,
        session_expires_in: u64,
        request: &TokenRequest<'_>,
    ) -> Result<IssuedAccess, RbacError> {
        let draft = self.access_claims(tokens, user, session_id, session_expires_in, request, false).await?;
        let audience = draft.claims.get("aud").and_then(Value::as_str).map(str::to_owned);
        let scope = draft.claims.get("scope").and_then(Value::as_str).map(str::to_owned);
        let typ = if request.client_id.is_some() { "at+jwt" } else { "JWT" };
        let issued = tokens.sign_as(draft, typ)?;
        Ok(IssuedAccess { token: issued.token, expires_in: issued.expires_in, audience, scope })
    }

    /// The final claims of an access token, unsigned. With `strict` (`gatehouse claims test`),
    /// any script failure is an error whatever the configuration says.
    pub async fn access_claims(
        &self,
        tokens: &Tokens,
        user: &UserRow,
        session_id: &str,
        session_expires_in: u64,
        request: &TokenRequest<'_>,
        strict: bool,
    ) -> Result<DraftToken, RbacError> {
        let grant = self.grant(user, request).await?;
        let groups = self.user_role_names(user.id).await?;
        let subject = Subject { user, groups: &groups, session_id, session_expires_in };
        let mut draft = tokens.draft(&subject, grant.as_ref());
        if let Some(client_id) = request.client_id {
            draft.claims.insert("iss".into(), tokens.settings().oidc_issuer.clone().into());
            draft.claims.insert("client_id".into(), client_id.into());
        }
        let Some(config) = self.claims.config(TokenType::AccessToken).await? else { return Ok(draft) };
        let token_view = json!({
            "clientId": request.client_id,
            "jti": draft.claims.get("jti"),
            "aud": draft.claims.get("aud"),
            "scope": draft.claims.get("scope"),
            "accountId": user.id.to_string(),
            "sid": session_id,
            "sessionUid": session_id,
            "grantId": session_id,
            "expiresWithSession": true,
            "gty": request.grant_type,
            "kind": "AccessToken",
        });
        let mut context = json!({ "user": self.user_context(user).await? });
        if let Some(client_id) = request.client_id {
            context["application"] = self.application_context(client_id).await?;
        }
        let block = strict || config.block_issuance_on_error;
        let outcome = match self.claims.run(TokenType::AccessToken, &config, token_view, context).await {
            Ok(custom) => tokens.merge_custom(&mut draft, custom).map_err(|e| format!("the Hasura claims: {e}")),
            Err(ScriptError::Denied(message)) => return Err(RbacError::Denied(message)),
            Err(err) => Err(err.to_string()),
        };
        match outcome {
            Ok(()) => Ok(draft),
            Err(reason) if block => Err(RbacError::CustomClaims(reason)),
            Err(reason) => {
                tracing::warn!(user_id = user.id, reason, "custom claims failed; the token has none");
                Ok(draft)
            }
        }
    }

    /// A client-credentials access token for a machine application: `sub` and `client_id` are
    /// the application, `scope` is the requested scopes ∩ its machine roles' scopes on the
    /// resource (none when none are asked for, as in Logto), and the client-credentials script
    /// adds its claims.
    pub async fn issue_machine_token(
        &self,
        tokens: &Tokens,
        client_id: &str,
        resource: &ResourceRow,
        requested: Option<&str>,
    ) -> Result<IssuedAccess, RbacError> {
        let held = self.db.application_scope_names(client_id, resource.id).await?;
        let requested: Vec<&str> = requested.map_or(Vec::new(), |s| s.split_ascii_whitespace().collect());
        let scopes: Vec<String> = held.into_iter().filter(|s| requested.contains(&s.as_str())).collect();
        let ttl = u64::try_from(resource.access_token_ttl).unwrap_or(600);
        let now = crate::tokens::unix_now();
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), tokens.settings().oidc_issuer.clone().into());
        claims.insert("sub".into(), client_id.into());
        claims.insert("aud".into(), resource.indicator.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ttl).into());
        claims.insert("jti".into(), crate::tokens::new_jti().into());
        claims.insert("client_id".into(), client_id.into());
        let scope = (!scopes.is_empty()).then(|| scopes.join(" "));
        if let Some(scope) = &scope {
            claims.insert("scope".into(), scope.clone().into());
        }
        if let Some(config) = self.claims.config(TokenType::ClientCredentials).await? {
            let token_view = json!({
                "jti": claims["jti"], "aud": claims["aud"], "scope": scope, "clientId": client_id,
                "kind": "ClientCredentials",
            });
            let context = json!({ "application": self.application_context(client_id).await? });
            match self.claims.run(TokenType::ClientCredentials, &config, token_view, context).await {
                Ok(custom) => crate::tokens::claims::merge_custom(tokens.settings(), &mut claims, custom),
                Err(ScriptError::Denied(message)) => return Err(RbacError::Denied(message)),
                Err(err) if config.block_issuance_on_error => return Err(RbacError::CustomClaims(err.to_string())),
                Err(err) => tracing::warn!(client_id, reason = %err, "custom claims failed; the token has none"),
            }
        }
        let draft = DraftToken { claims, expires_in: ttl };
        let issued = tokens.sign_as(draft, "at+jwt")?;
        Ok(IssuedAccess {
            token: issued.token,
            expires_in: issued.expires_in,
            audience: Some(resource.indicator.clone()),
            scope,
        })
    }

    /// `context.application` for the custom-claims script: Logto's application fields, never
    /// the secret.
    async fn application_context(&self, client_id: &str) -> Result<Value, DbError> {
        Ok(match self.db.application(client_id).await? {
            Some(app) => json!({
                "id": app.id, "name": app.name, "type": app.app_type, "isThirdParty": app.is_third_party,
            }),
            None => Value::Null,
        })
    }

    /// `context.user` for the custom-claims script, Logto's shape filled from Django's tables.
    pub async fn user_context(&self, user: &UserRow) -> Result<Value, DbError> {
        let roles = self.db.user_roles(user.id).await?;
        let grants = self.db.user_scope_grants(user.id).await?;
        Ok(custom_claims::user_context(user, &roles, &grants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicators_are_absolute_uris_without_fragments() {
        assert!(Indicator::parse("https://example.hasura.app/api").is_ok());
        assert!(Indicator::parse("https://*.hasura.app/api").is_ok());
        assert!(Indicator::parse("urn:example:api").is_ok());
        for bad in ["", "/api", "example.com/api", "https://x/api#frag", "https://x/a b", &"h".repeat(300)] {
            assert!(Indicator::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_names_are_oauth_scope_tokens() {
        assert!(ScopeName::parse("read:user").is_ok());
        assert!(ScopeName::parse("auth.view_user").is_ok());
        for bad in ["", "read user", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(ScopeName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn role_names_fit_djangos_group_name() {
        assert_eq!(RoleName::parse("  user:reader ").unwrap().as_str(), "user:reader");
        assert!(RoleName::parse(&"r".repeat(150)).is_ok());
        assert!(RoleName::parse(&"r".repeat(151)).is_err());
        assert!(RoleName::parse("   ").is_err());
        assert!(RoleName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn role_types_and_lifetimes() {
        assert_eq!(RoleType::parse("MachineToMachine"), Ok(RoleType::Machine));
        assert!(RoleType::parse("admin").is_err());
        assert_eq!(parse_ttl(3600), Ok(3600));
        assert!(parse_ttl(59).is_err() && parse_ttl(86_401).is_err() && parse_ttl(i64::MAX).is_err());
    }
}
