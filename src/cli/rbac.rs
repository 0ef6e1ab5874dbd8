//! `gatehouse resource | scope | role | claims`: RBAC set-up from a shell script, with the same
//! rules (and audit records) as the admin API.

use std::path::PathBuf;

use clap::Subcommand;

use super::Failure;
use crate::accounts::{AccountError, Accounts};
use crate::db::{AuditEvent, PageRequest};
use crate::rbac::custom_claims::{CustomClaimsConfig, PutError, TokenType};
use crate::rbac::{DEFAULT_RESOURCE_TTL, Indicator, Rbac, RbacError, RoleName, RoleType, ScopeName, TokenRequest};
use crate::settings::Settings;
use crate::tokens::keys::{self, KeyRing};
use crate::tokens::{self, Tokens};

#[derive(Subcommand, Debug)]
pub enum ResourceCommand {
    /// Create an API resource: its indicator is the `aud` of its tokens
    Create {
        indicator: String,
        #[arg(long)]
        name: String,
        /// Access-token lifetime in seconds
        #[arg(long, default_value_t = DEFAULT_RESOURCE_TTL)]
        ttl: i32,
        /// Make it the default resource (used when a token request names none)
        #[arg(long)]
        default: bool,
    },
    /// List API resources
    List,
    /// Delete an API resource with its scopes
    Delete { indicator: String },
    /// Make a resource the default one (or, with --unset, no longer the default)
    SetDefault {
        indicator: String,
        #[arg(long)]
        unset: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScopeCommand {
    /// Add a scope to an API resource
    Create {
        indicator: String,
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the scopes of an API resource
    List { indicator: String },
    /// Delete a scope
    Delete { indicator: String, name: String },
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Create a role (a Django group with gatehouse metadata)
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// user (assigned to users) or machine (assigned to applications)
        #[arg(long = "type", default_value = "user", value_parser = ["user", "machine"])]
        role_type: String,
        /// Give this role to every new user
        #[arg(long)]
        default: bool,
    },
    /// List roles (every Django group is one)
    List,
    /// Delete a role and its Django group
    Delete { name: String },
    /// Let a role grant scopes of an API resource
    AddScope { role: String, indicator: String, scopes: Vec<String> },
    /// Stop a role granting a scope
    RemoveScope { role: String, indicator: String, scope: String },
    /// Give a role to users (adds them to the Django group)
    Assign { role: String, usernames: Vec<String> },
    /// Take a role from a user
    Unassign { role: String, username: String },
}

#[derive(Subcommand, Debug)]
pub enum ClaimsCommand {
    /// Store a getCustomJwtClaims script
    Set {
        /// The JavaScript file
        #[arg(long)]
        script: PathBuf,
        /// The machine (client-credentials) script instead of the user access-token one
        #[arg(long)]
        machine: bool,
        /// environmentVariables for the script, NAME=VALUE (repeatable)
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Refuse tokens when the script fails, instead of issuing them without custom claims
        #[arg(long)]
        block_on_error: bool,
    },
    /// Print the stored configuration as JSON
    Show {
        #[arg(long)]
        machine: bool,
    },
    /// Remove a script
    Delete {
        #[arg(long)]
        machine: bool,
    },
    /// Run the access-token script for a real user and print the token's claims, or the error
    Test {
        #[arg(long)]
        user: String,
        /// The API resource the token is for
        #[arg(long)]
        resource: Option<String>,
        /// Requested scopes, space-separated
        #[arg(long)]
        scope: Option<String>,
    },
}

impl From<RbacError> for Failure {
    fn from(err: RbacError) -> Self {
        match err {
            RbacError::Db(db) => AccountError::Db(db).into(),
            RbacError::Invalid { message, .. } => Failure::Usage(message),
            other => Failure::Runtime(other.to_string()),
        }
    }
}

fn usage<T>(result: Result<T, String>) -> Result<T, Failure> {
    result.map_err(Failure::Usage)
}

/// Records an operator's change, as the admin API does for its callers.
pub(super) async fn audit(rbac: &Rbac, kind: &str, detail: String) -> Result<(), Failure> {
    let event = AuditEvent::new(kind, &detail).by("cli");
    rbac.db().audit_event(&event).await.map_err(|e| Failure::from(AccountError::from(e)))
}

pub async fn resource(rbac: &Rbac, command: ResourceCommand) -> Result<(), Failure> {
    match command {
        ResourceCommand::Create { indicator, name, ttl, default } => {
            let indicator = usage(Indicator::parse(&indicator))?;
            let ttl = usage(crate::rbac::parse_ttl(i64::from(ttl)))?;
            let mut row = rbac.create_resource(&indicator, &name, ttl).await?;
            if default {
                row = rbac.set_default_resource(row.id, true).await?;
            }
            audit(rbac, "admin.resource.create", format!("resource {} {}", row.id, row.indicator)).await?;
            println!("Created API resource {} (id {}).", row.indicator, row.id);
        }
        ResourceCommand::List => {
            let page = rbac.db().resources(PageRequest::ALL).await.map_err(RbacError::from)?;
            println!("{:>6}  {:<48} {:<8} {:<7} name", "id", "indicator", "ttl", "default");
            for r in page.items {
                println!("{:>6}  {:<48} {:<8} {:<7} {}", r.id, r.indicator, r.access_token_ttl, r.is_default, r.name);
            }
        }
        ResourceCommand::Delete { indicator } => {
            let row = rbac.resource_by_indicator(&indicator).await?;
            rbac.delete_resource(row.id).await?;
            audit(rbac, "admin.resource.delete", format!("resource {}", row.id)).await?;
            println!("Deleted API resource {indicator}.");
        }
        ResourceCommand::SetDefault { indicator, unset } => {
            let row = rbac.resource_by_indicator(&indicator).await?;
            rbac.set_default_resource(row.id, !unset).await?;
            audit(rbac, "admin.resource.default", format!("resource {} is_default={}", row.id, !unset)).await?;
            println!("{indicator} is {} the default resource.", if unset { "no longer" } else { "now" });
        }
    }
    Ok(())
}

pub async fn scope(rbac: &Rbac, command: ScopeCommand) -> Result<(), Failure> {
    match command {
        ScopeCommand::Create { indicator, name, description } => {
            let name = usage(ScopeName::parse(&name))?;
            let resource = rbac.resource_by_indicator(&indicator).await?;
            let row = rbac.create_scope(resource.id, &name, &description).await?;
            audit(rbac, "admin.scope.create", format!("scope {} {} of resource {}", row.id, row.name, resource.id))
                .await?;
            println!("Created scope {} of {indicator} (id {}).", row.name, row.id);
        }
        ScopeCommand::List { indicator } => {
            let resource = rbac.resource_by_indicator(&indicator).await?;
            println!("{:>6}  {:<32} description", "id", "name");
            for s in rbac.scopes(resource.id).await? {
                println!("{:>6}  {:<32} {}", s.id, s.name, s.description);
            }
        }
        ScopeCommand::Delete { indicator, name } => {
            let scope = rbac.scope_by_name(&indicator, &name).await?;
            rbac.delete_scope(scope.resource_id, scope.id).await?;
            audit(rbac, "admin.scope.delete", format!("scope {} of resource {}", scope.id, scope.resource_id)).await?;
            println!("Deleted scope {name} of {indicator}.");
        }
    }
    Ok(())
}

pub async fn role(rbac: &Rbac, command: RoleCommand) -> Result<(), Failure> {
    match command {
        RoleCommand::Create { name, description, role_type, default } => {
            let name = usage(RoleName::parse(&name))?;
            let role_type = usage(RoleType::parse(&role_type))?;
            let row = rbac.create_role(&name, &description, role_type, default, &[]).await?;
            audit(rbac, "admin.role.create", format!("role {} {}", row.id, row.name)).await?;
            println!("Created role {:?} (id {}).", row.name, row.id);
        }
        RoleCommand::List => {
            println!("{:>6}  {:<32} {:<8} {:<7} description", "id", "name", "type", "default");
            for r in rbac.roles(PageRequest::ALL).await?.items {
                println!("{:>6}  {:<32} {:<8} {:<7} {}", r.id, r.name, r.role_type, r.is_default, r.description);
            }
        }
        RoleCommand::Delete { name } => {
            let row = rbac.role_by_name(&name).await?;
            rbac.delete_role(row.id).await?;
            audit(rbac, "admin.role.delete", format!("role {}", row.id)).await?;
            println!("Deleted role {name:?}.");
        }
        RoleCommand::AddScope { role, indicator, scopes } => {
            let row = rbac.role_by_name(&role).await?;
            let mut ids = Vec::new();
            for name in &scopes {
                ids.push(rbac.scope_by_name(&indicator, name).await?.id);
            }
            rbac.add_role_scopes(row.id, &ids).await?;
            audit(rbac, "admin.role.scopes.add", format!("role {} scopes {ids:?}", row.id)).await?;
            println!("Role {role:?} grants {} of {indicator}.", scopes.join(", "));
        }
        RoleCommand::RemoveScope { role, indicator, scope } => {
            let row = rbac.role_by_name(&role).await?;
            let scope_row = rbac.scope_by_name(&indicator, &scope).await?;
            rbac.remove_role_scope(row.id, scope_row.id).await?;
            audit(rbac, "admin.role.scopes.remove", format!("role {} scope {}", row.id, scope_row.id)).await?;
            println!("Role {role:?} no longer grants {scope} of {indicator}.");
        }
        RoleCommand::Assign { role, usernames } => {
            let row = rbac.role_by_name(&role).await?;
            let mut ids = Vec::new();
            for username in usernames {
                let user = rbac.db().user_by_username(&username).await.map_err(RbacError::from)?;
                ids.push(user.ok_or_else(|| Failure::from(AccountError::UnknownUser(username)))?.id);
            }
            rbac.add_role_users(row.id, &ids).await?;
            audit(rbac, "admin.role.users.add", format!("role {} users {ids:?}", row.id)).await?;
            println!("{} user(s) hold role {role:?}.", ids.len());
        }
        RoleCommand::Unassign { role, username } => {
            let row = rbac.role_by_name(&role).await?;
            let user = rbac.db().user_by_username(&username).await.map_err(RbacError::from)?;
            let user = user.ok_or_else(|| Failure::from(AccountError::UnknownUser(username.clone())))?;
            rbac.remove_role_user(row.id, user.id).await?;
            audit(rbac, "admin.role.users.remove", format!("role {} user {}", row.id, user.id)).await?;
            println!("{username:?} no longer holds role {role:?}.");
        }
    }
    Ok(())
}

fn token_type(machine: bool) -> TokenType {
    if machine { TokenType::ClientCredentials } else { TokenType::AccessToken }
}

pub async fn claims(
    rbac: &Rbac,
    accounts: &Accounts,
    settings: &Settings,
    command: ClaimsCommand,
) -> Result<(), Failure> {
    match command {
        ClaimsCommand::Set { script, machine, env, block_on_error } => {
            let source = std::fs::read_to_string(&script)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", script.display())))?;
            let mut environment_variables = std::collections::BTreeMap::new();
            for pair in env {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| Failure::Usage(format!("--env needs NAME=VALUE, got {pair:?}")))?;
                environment_variables.insert(name.to_owned(), value.to_owned());
            }
            let config =
                CustomClaimsConfig { script: source, environment_variables, block_issuance_on_error: block_on_error };
            let kind = token_type(machine);
            match rbac.custom_claims().put(kind, &config).await {
                Ok(()) => {}
                Err(PutError::Invalid { field, message }) => return Err(Failure::Usage(format!("{field}: {message}"))),
                Err(PutError::Db(db)) => return Err(RbacError::from(db).into()),
            }
            audit(rbac, "admin.custom_claims.put", format!("{} script", kind.as_str())).await?;
            println!("Stored the {} script.", kind.as_str());
        }
        ClaimsCommand::Show { machine } => {
            let config = rbac.custom_claims().config(token_type(machine)).await.map_err(RbacError::from)?;
            let config = config.ok_or_else(|| Failure::Runtime("no script is configured".into()))?;
            println!("{}", serde_json::to_string_pretty(&config).expect("a config serializes"));
        }
        ClaimsCommand::Delete { machine } => {
            let kind = token_type(machine);
            if !rbac.custom_claims().delete(kind).await.map_err(RbacError::from)? {
                return Err(Failure::Runtime("no script is configured".into()));
            }
            audit(rbac, "admin.custom_claims.delete", format!("{} script", kind.as_str())).await?;
            println!("Removed the {} script.", kind.as_str());
        }
        ClaimsCommand::Test { user, resource, scope } => {
            let row = accounts.db().user_by_username(&user).await.map_err(AccountError::from)?;
            let row = row.ok_or_else(|| Failure::from(AccountError::UnknownUser(user)))?;
            let tokens = claims_only_tokens(settings)?;
            let request = TokenRequest {
                resource: resource.as_deref(),
                scope: scope.as_deref(),
                grant_type: "password",
                client_id: None,
            };
            let ttl = settings.sessions.absolute_ttl_secs;
            let draft = rbac.access_claims(&tokens, &row, "claims-test", ttl, &request, true).await?;
            println!("{}", serde_json::to_string_pretty(&draft.claims).expect("claims serialize"));
        }
    }
    Ok(())
}

/// A token service for building claims without signing anything: the configured key when there
/// is one, else a throwaway key (never written, so a test run cannot create the server's key).
fn claims_only_tokens(settings: &Settings) -> Result<Tokens, Failure> {
    tokens::install_crypto_provider();
    let keys = match KeyRing::load_existing(&settings.keys) {
        Ok(keys) => keys,
        Err(_) => {
            let (private, _) = keys::generate_key_pair(settings.keys.generate_alg).map_err(Failure::Runtime)?;
            KeyRing::from_private_pem(&private, None, "throwaway key").map_err(|e| Failure::Runtime(e.to_string()))?
        }
    };
    Ok(Tokens::new(keys, settings.claims.clone()))
}
