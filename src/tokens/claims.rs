//! Hasura claims: which roles a Django user gets, and the claim set of an access token.

use serde_json::{Map, Value, json};

use crate::db::UserRow;

/// Hasura's `claims_format`: the claims object as JSON, or as a string holding that JSON.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimsFormat {
    #[value(name = "json")]
    Json,
    #[value(name = "stringified_json")]
    StringifiedJson,
}

impl ClaimsFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimsFormat::Json => "json",
            ClaimsFormat::StringifiedJson => "stringified_json",
        }
    }
}

/// Which Django groups become Hasura roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRoles {
    All,
    None,
    /// Only groups whose name starts with this prefix (the role keeps the full group name).
    Prefix(String),
}

impl std::str::FromStr for GroupRoles {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(GroupRoles::All),
            "none" => Ok(GroupRoles::None),
            _ => match text.strip_prefix("prefix:") {
                Some(prefix) if !prefix.is_empty() => Ok(GroupRoles::Prefix(prefix.to_owned())),
                _ => Err(format!("expected all, none or prefix:<text>, got {text:?}")),
            },
        }
    }
}

/// Hasura's built-in role that bypasses every permission.
pub const HASURA_ADMIN_ROLE: &str = "admin";

#[derive(Clone, Debug)]
pub struct RoleSettings {
    /// Every active user's role, and the default role.
    pub default_role: String,
    pub staff_role: String,
    pub superuser_role: String,
    pub anonymous_role: String,
    pub groups: GroupRoles,
}

impl RoleSettings {
    /// The user's Hasura roles: the default role, then staff, superuser, then groups (sorted).
    /// A group never grants Hasura's built-in `admin`, the superuser role or the anonymous role
    /// by its name (the original server let a group called `admin` do exactly that).
    pub fn roles_for(&self, user: &UserRow, groups: &[String]) -> Vec<String> {
        let mut roles = vec![self.default_role.clone()];
        if user.is_staff {
            roles.push(self.staff_role.clone());
        }
        if user.is_superuser {
            roles.push(self.superuser_role.clone());
        }
        let mut from_groups: Vec<&String> = groups
            .iter()
            .filter(|g| match &self.groups {
                GroupRoles::All => true,
                GroupRoles::None => false,
                GroupRoles::Prefix(prefix) => g.starts_with(prefix.as_str()),
            })
            .filter(|g| {
                !g.trim().is_empty()
                    && *g != HASURA_ADMIN_ROLE
                    && **g != self.superuser_role
                    && **g != self.anonymous_role
            })
            .collect();
        from_groups.sort();
        for group in from_groups {
            if !roles.contains(group) {
                roles.push(group.clone());
            }
        }
        roles
    }
}

/// Everything that shapes an access token.
#[derive(Clone, Debug)]
pub struct ClaimsSettings {
    pub issuer: String,
    pub audience: Option<String>,
    pub namespace: String,
    pub format: ClaimsFormat,
    pub access_ttl_secs: u64,
    pub roles: RoleSettings,
}

/// The claim set of an access token for `user` at `now` (Unix seconds).
pub fn access_claims(
    settings: &ClaimsSettings,
    user: &UserRow,
    groups: &[String],
    session_id: &str,
    now: u64,
    ttl_secs: u64,
    jti: &str,
) -> Value {
    let roles = settings.roles.roles_for(user, groups);
    let hasura = json!({
        "x-hasura-allowed-roles": roles,
        "x-hasura-default-role": settings.roles.default_role,
        "x-hasura-user-id": user.id.to_string(),
    });
    let mut claims = Map::new();
    claims.insert("iss".into(), settings.issuer.clone().into());
    if let Some(aud) = &settings.audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    claims.insert("sub".into(), user.id.to_string().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl_secs).into());
    claims.insert("jti".into(), jti.into());
    claims.insert("sid".into(), session_id.into());
    claims.insert("username".into(), user.username.clone().into());
    let hasura = match settings.format {
        ClaimsFormat::Json => hasura,
        ClaimsFormat::StringifiedJson => Value::String(hasura.to_string()),
    };
    claims.insert(settings.namespace.clone(), hasura);
    Value::Object(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DjangoTime;

    fn user(is_staff: bool, is_superuser: bool) -> UserRow {
        UserRow {
            id: 42,
            password: String::new(),
            last_login: None,
            is_superuser,
            username: "alice".into(),
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
            is_staff,
            is_active: true,
            date_joined: DjangoTime::now(),
        }
    }

    fn roles(groups: GroupRoles) -> RoleSettings {
        RoleSettings {
            default_role: "user".into(),
            staff_role: "staff".into(),
            superuser_role: "admin".into(),
            anonymous_role: "anonymous".into(),
            groups,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn staff_and_superusers_get_both_roles() {
        assert_eq!(roles(GroupRoles::All).roles_for(&user(false, false), &[]), ["user"]);
        assert_eq!(roles(GroupRoles::All).roles_for(&user(true, true), &[]), ["user", "staff", "admin"]);
    }

    #[test]
    fn groups_become_roles_but_never_admin_or_anonymous() {
        let groups = names(&["editors", "admin", "anonymous", "user", "app:readers", ""]);
        assert_eq!(roles(GroupRoles::All).roles_for(&user(false, false), &groups), ["user", "app:readers", "editors"]);
        assert_eq!(roles(GroupRoles::None).roles_for(&user(false, false), &groups), ["user"]);
        assert_eq!(
            roles(GroupRoles::Prefix("app:".into())).roles_for(&user(false, false), &groups),
            ["user", "app:readers"]
        );
    }

    #[test]
    fn a_group_named_admin_never_grants_hasura_admin() {
        let renamed = RoleSettings { superuser_role: "superuser".into(), ..roles(GroupRoles::All) };
        let groups = names(&["admin", "superuser", "editors"]);
        assert_eq!(renamed.roles_for(&user(false, false), &groups), ["user", "editors"]);
        assert_eq!(renamed.roles_for(&user(false, true), &groups), ["user", "superuser", "editors"]);
    }

    #[test]
    fn group_role_setting_parses() {
        assert_eq!("all".parse(), Ok(GroupRoles::All));
        assert_eq!("prefix:hasura-".parse(), Ok(GroupRoles::Prefix("hasura-".into())));
        assert!("prefix:".parse::<GroupRoles>().is_err());
        assert!("some".parse::<GroupRoles>().is_err());
    }

    #[test]
    fn claims_follow_hasuras_contract() {
        let settings = ClaimsSettings {
            issuer: "https://auth.example".into(),
            audience: Some("https://api.example".into()),
            namespace: "https://hasura.io/jwt/claims".into(),
            format: ClaimsFormat::Json,
            access_ttl_secs: 900,
            roles: roles(GroupRoles::All),
        };
        let claims =
            access_claims(&settings, &user(true, false), &names(&["editors"]), "s1", 1_700_000_000, 900, "abc");
        assert_eq!(claims["sub"], "42");
        assert_eq!(claims["sid"], "s1");
        assert_eq!(claims["exp"], 1_700_000_900);
        assert_eq!(claims["aud"], "https://api.example");
        let hasura = &claims["https://hasura.io/jwt/claims"];
        assert_eq!(hasura["x-hasura-allowed-roles"], json!(["user", "staff", "editors"]));
        assert_eq!(hasura["x-hasura-default-role"], "user");
        assert_eq!(hasura["x-hasura-user-id"], "42");

        let stringified = ClaimsSettings { format: ClaimsFormat::StringifiedJson, audience: None, ..settings };
        let claims = access_claims(&stringified, &user(false, false), &[], "s1", 1_700_000_000, 900, "abc");
        let inner: Value = serde_json::from_str(claims["https://hasura.io/jwt/claims"].as_str().unwrap()).unwrap();
        assert_eq!(inner["x-hasura-user-id"], "42");
        assert!(claims.get("aud").is_none());
    }
}
