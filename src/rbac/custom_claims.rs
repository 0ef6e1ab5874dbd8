//! Logto's custom JWT claims: a `getCustomJwtClaims({ token, context, environmentVariables,
//! api })` script per token type, stored in `gatehouse_config`, compiled once and run in the
//! sandbox of [`super::script`], with Logto's `context.user` built from Django's tables.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::script::{ClaimsScript, ScriptError, ScriptLimits};
use crate::db::{Db, DbError, RoleRow, ScopeGrantRow, UserRow};

/// Logto's two scripts: user access tokens and machine (client-credentials) tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    AccessToken,
    ClientCredentials,
}

impl TokenType {
    /// The name in Logto's Management API paths.
    pub fn parse(text: &str) -> Option<TokenType> {
        match text {
            "access-token" => Some(TokenType::AccessToken),
            "client-credentials" => Some(TokenType::ClientCredentials),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::AccessToken => "access-token",
            TokenType::ClientCredentials => "client-credentials",
        }
    }

    /// The `gatehouse_config` key, Logto's `logto_configs` key.
    pub fn config_key(self) -> &'static str {
        match self {
            TokenType::AccessToken => "jwt.accessToken",
            TokenType::ClientCredentials => "jwt.clientCredentials",
        }
    }
}

/// Logto's stored configuration of a script.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomClaimsConfig {
    pub script: String,
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    /// When the script fails (other than `denyAccess`): refuse the token (true) or issue it
    /// without custom claims (false, the default, as Logto does).
    #[serde(default)]
    pub block_issuance_on_error: bool,
}

/// Limits on what an operator can store, so a config row stays small.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
pub const MAX_ENVIRONMENT_VARIABLES: usize = 64;

impl CustomClaimsConfig {
    /// Checks the sizes and compiles the script; the error names the field at fault.
    pub async fn validate(&self, limits: ScriptLimits) -> Result<ClaimsScript, (&'static str, String)> {
        if self.script.len() > MAX_SCRIPT_BYTES {
            return Err(("script", format!("The script is larger than {MAX_SCRIPT_BYTES} bytes.")));
        }
        if self.script.contains('\0') {
            return Err(("script", "Null characters are not allowed.".into()));
        }
        let oversized = self.environment_variables.iter().any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 4096);
        if self.environment_variables.len() > MAX_ENVIRONMENT_VARIABLES || oversized {
            return Err((
                "environmentVariables",
                format!(
                    "At most {MAX_ENVIRONMENT_VARIABLES} variables, names of 1 to 128 bytes, values of at most 4096."
                ),
            ));
        }
        compile(self.script.clone(), limits).await.map_err(|err| ("script", err.to_string()))
    }
}

/// Compiling starts the script's threads and runs its top level (bounded by the time limit):
/// blocking work, kept off the async runtime.
async fn compile(source: String, limits: ScriptLimits) -> Result<ClaimsScript, ScriptError> {
    tokio::task::spawn_blocking(move || ClaimsScript::compile(&source, limits)).await.unwrap_or(Err(ScriptError::Busy))
}

/// The stored scripts, compiled on first use and recompiled when their text changes (also when
/// another instance changed it: the row is read at every issuance).
#[derive(Clone)]
pub struct CustomClaims {
    db: Db,
    limits: ScriptLimits,
    compiled: Arc<Mutex<HashMap<TokenType, (String, ClaimsScript)>>>,
}

impl CustomClaims {
    pub fn new(db: Db, limits: ScriptLimits) -> CustomClaims {
        CustomClaims { db, limits, compiled: Arc::new(Mutex::new(HashMap::new())) }
    }

    pub fn limits(&self) -> ScriptLimits {
        self.limits
    }

    pub async fn config(&self, kind: TokenType) -> Result<Option<CustomClaimsConfig>, DbError> {
        let Some(text) = self.db.config(kind.config_key()).await? else { return Ok(None) };
        match serde_json::from_str(&text) {
            Ok(config) => Ok(Some(config)),
            Err(err) => {
                tracing::error!(error = %err, kind = kind.as_str(), "the stored custom claims configuration is unreadable");
                Ok(None)
            }
        }
    }

    /// Stores a configuration whose script compiles.
    pub async fn put(&self, kind: TokenType, config: &CustomClaimsConfig) -> Result<(), PutError> {
        let script =
            config.validate(self.limits).await.map_err(|(field, message)| PutError::Invalid { field, message })?;
        let text = serde_json::to_string(config).expect("a config serializes");
        self.db.put_config(kind.config_key(), &text).await?;
        self.compiled.lock().expect("script cache").insert(kind, (config.script.clone(), script));
        Ok(())
    }

    pub async fn delete(&self, kind: TokenType) -> Result<bool, DbError> {
        self.compiled.lock().expect("script cache").remove(&kind);
        self.db.delete_config(kind.config_key()).await
    }

    /// Runs the configured script of `kind` for a token.
    pub async fn run(
        &self,
        kind: TokenType,
        config: &CustomClaimsConfig,
        token: Value,
        context: Value,
    ) -> Result<Map<String, Value>, ScriptError> {
        let cached = self.compiled.lock().expect("script cache").get(&kind).cloned();
        let script = match cached {
            Some((source, script)) if source == config.script => script,
            _ => {
                let script = compile(config.script.clone(), self.limits).await?;
                self.compiled.lock().expect("script cache").insert(kind, (config.script.clone(), script.clone()));
                script
            }
        };
        script.run(script_input(config, token, context)).await
    }
}

/// The one argument of `getCustomJwtClaims`, without `api` (the sandbox adds it).
pub fn script_input(config: &CustomClaimsConfig, token: Value, context: Value) -> Value {
    json!({ "token": token, "context": context, "environmentVariables": config.environment_variables })
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

fn unix_millis(time: &crate::db::DjangoTime) -> i64 {
    i64::try_from(time.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Logto's `context.user`, filled from Django: ids are strings (Hasura session variables must
/// be), `roles` are the user roles with every scope and its resource, and Django's own
/// `is_staff`, `is_superuser` and `groups` (every group, whatever its role type) come along.
pub fn user_context(user: &UserRow, roles: &[RoleRow], grants: &[ScopeGrantRow]) -> Value {
    let full_name = format!("{} {}", user.first_name, user.last_name).trim().to_owned();
    let non_empty = |text: &str| if text.is_empty() { Value::Null } else { Value::String(text.to_owned()) };
    let user_roles: Vec<Value> = roles
        .iter()
        .filter(|role| role.role_type == "user")
        .map(|role| {
            let scopes: Vec<Value> = grants
                .iter()
                .filter(|g| g.role_id == role.id)
                .map(|g| {
                    json!({
                        "id": g.scope_id.to_string(),
                        "name": g.scope_name,
                        "description": g.scope_description,
                        "resourceId": g.resource_id.to_string(),
                        "resource": {
                            "id": g.resource_id.to_string(),
                            "name": g.resource_name,
                            "indicator": g.indicator,
                            "isDefault": g.resource_is_default,
                            "accessTokenTtl": g.access_token_ttl,
                        },
                    })
                })
                .collect();
            json!({ "id": role.id.to_string(), "name": role.name, "description": role.description, "scopes": scopes })
        })
        .collect();
    let has_password = crate::django::hashers::is_usable(&user.password);
    json!({
        "id": user.id.to_string(),
        "username": user.username,
        "primaryEmail": non_empty(&user.email),
        "primaryPhone": null,
        "name": non_empty(&full_name),
        "avatar": null,
        "customData": {},
        "identities": {},
        "profile": { "givenName": non_empty(&user.first_name), "familyName": non_empty(&user.last_name) },
        "lastSignInAt": user.last_login.as_ref().map(unix_millis),
        "createdAt": unix_millis(&user.date_joined),
        "updatedAt": null,
        "applicationId": null,
        "isSuspended": !user.is_active,
        "hasPassword": has_password,
        "ssoIdentities": [],
        "mfaVerificationFactors": [],
        "roles": user_roles,
        "organizations": [],
        "organizationRoles": [],
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DjangoTime;

    #[test]
    fn the_context_has_logtos_shape_with_django_extras() {
        let user = UserRow {
            id: 7,
            password: "!unusable".into(),
            last_login: None,
            is_superuser: false,
            username: "alice".into(),
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            email: "alice@example.com".into(),
            is_staff: true,
            is_active: true,
            date_joined: DjangoTime::now(),
        };
        let role = |id: i32, name: &str, role_type: &str| RoleRow {
            id,
            name: name.into(),
            description: String::new(),
            role_type: role_type.into(),
            is_default: false,
        };
        let roles = [role(1, "user:reader", "user"), role(2, "robots", "machine")];
        let grants = [ScopeGrantRow {
            role_id: 1,
            scope_id: 5,
            scope_name: "read:user".into(),
            scope_description: String::new(),
            resource_id: 3,
            resource_name: "Hasura".into(),
            indicator: "https://example.hasura.app/api".into(),
            resource_is_default: false,
            access_token_ttl: 3600,
        }];
        let context = user_context(&user, &roles, &grants);
        assert_eq!(context["id"], "7");
        assert_eq!(context["primaryEmail"], "alice@example.com");
        assert_eq!(context["name"], "Alice Liddell");
        assert_eq!(context["hasPassword"], false);
        assert_eq!(context["is_staff"], true);
        assert_eq!(context["groups"], json!(["user:reader", "robots"]));
        assert_eq!(context["roles"].as_array().unwrap().len(), 1, "machine roles are not user roles");
        assert_eq!(context["roles"][0]["scopes"][0]["resource"]["indicator"], "https://example.hasura.app/api");
    }

    #[tokio::test]
    async fn configs_round_trip_in_logtos_names_and_are_bounded() {
        let config: CustomClaimsConfig = serde_json::from_value(json!({
            "script": "const getCustomJwtClaims = async () => ({});",
            "environmentVariables": { "USER_DEFAULT_ROLE_NAMES": "user" },
        }))
        .unwrap();
        assert!(!config.block_issuance_on_error);
        assert_eq!(serde_json::to_value(&config).unwrap()["environmentVariables"]["USER_DEFAULT_ROLE_NAMES"], "user");
        let huge = CustomClaimsConfig { script: "x".repeat(MAX_SCRIPT_BYTES + 1), ..config.clone() };
        assert_eq!(huge.validate(ScriptLimits::default()).await.unwrap_err().0, "script");
        let mut many = config;
        many.environment_variables = (0..100).map(|i| (format!("V{i}"), String::new())).collect();
        assert_eq!(many.validate(ScriptLimits::default()).await.unwrap_err().0, "environmentVariables");
    }
}
