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
    /// Only the groups named here.
    List(Vec<String>),
}

impl std::str::FromStr for GroupRoles {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(GroupRoles::All),
            "none" => Ok(GroupRoles::None),
            _ => match (text.strip_prefix("prefix:"), text.strip_prefix("list:")) {
                (Some(prefix), _) if !prefix.is_empty() => Ok(GroupRoles::Prefix(prefix.to_owned())),
                (_, Some(list)) => {
                    let names: Vec<String> =
                        list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
                    if names.is_empty() {
                        return Err("list: needs at least one group name".into());
                    }
                    Ok(GroupRoles::List(names))
                }
                _ => Err(format!("expected all, none, prefix:<text> or list:<a,b,...>, got {text:?}")),
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
                GroupRoles::List(names) => names.contains(g),
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

/// A user field that configuration can copy into a Hasura session variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserField {
    Id,
    Username,
    Email,
    FirstName,
    LastName,
    FullName,
    IsStaff,
    IsSuperuser,
    /// The user's Django groups, as a Postgres array literal.
    Groups,
    /// The token's Hasura roles, as a Postgres array literal.
    Roles,
    /// The token's scopes, as a Postgres array literal.
    Scopes,
}

impl std::str::FromStr for UserField {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "id" => UserField::Id,
            "username" => UserField::Username,
            "email" => UserField::Email,
            "first_name" => UserField::FirstName,
            "last_name" => UserField::LastName,
            "full_name" => UserField::FullName,
            "is_staff" => UserField::IsStaff,
            "is_superuser" => UserField::IsSuperuser,
            "groups" => UserField::Groups,
            "roles" => UserField::Roles,
            "scopes" => UserField::Scopes,
            _ => {
                return Err(format!(
                    "unknown user field {text:?} (id, username, email, first_name, last_name, full_name, \
                     is_staff, is_superuser, groups, roles, scopes)"
                ));
            }
        })
    }
}

/// Session variables gatehouse itself sets; configuration cannot redefine them.
pub const RESERVED_VARIABLES: [&str; 4] =
    ["x-hasura-allowed-roles", "x-hasura-default-role", "x-hasura-role", "x-hasura-user-id"];

/// Extra session variables: `x-hasura-<name>=<field>` pairs, from `GATEHOUSE_CLAIMS_VARIABLES`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionVariables(pub Vec<(String, UserField)>);

impl std::str::FromStr for SessionVariables {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut pairs: Vec<(String, UserField)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((name, field)) = item.split_once('=') else {
                return Err(format!("expected x-hasura-<name>=<field>, got {item:?}"));
            };
            let name = name.trim().to_ascii_lowercase();
            let valid_name = name.len() > "x-hasura-".len()
                && name.starts_with("x-hasura-")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(format!(
                    "{name:?} is not a Hasura session variable name (x-hasura-<letters, digits, -, _>)"
                ));
            }
            if RESERVED_VARIABLES.contains(&name.as_str()) {
                return Err(format!("{name} is set by gatehouse and cannot be configured"));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(format!("{name} is configured twice"));
            }
            pairs.push((name, field.trim().parse()?));
        }
        Ok(SessionVariables(pairs))
    }
}

/// A list as a Postgres array literal, the form Hasura expects for list-valued session
/// variables: `{"a","b"}`, every element quoted and `"` and `\` escaped.
pub fn postgres_array(items: &[String]) -> String {
    let quoted: Vec<String> =
        items.iter().map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", quoted.join(","))
}

/// Everything that shapes an access token.
#[derive(Clone, Debug)]
pub struct ClaimsSettings {
    pub issuer: String,
    /// The OIDC provider's issuer (`<public URL>/oidc`): the `iss` of tokens it issues, which
    /// the webhook accepts too.
    pub oidc_issuer: String,
    pub audience: Option<String>,
    pub namespace: String,
    pub format: ClaimsFormat,
    pub access_ttl_secs: u64,
    pub roles: RoleSettings,
    pub variables: SessionVariables,
}

/// The access a token is for: an API resource (`aud`) and the scopes granted on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub audience: String,
    pub scopes: Vec<String>,
    pub ttl_secs: u64,
}

/// Who a token is for, and in which session.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub user: &'a UserRow,
    /// The user's Django groups that are user roles.
    pub groups: &'a [String],
    pub session_id: &'a str,
    /// Seconds until the session ends: no token outlives it.
    pub session_expires_in: u64,
}

/// Claims a custom-claims script may never set: the JWT's own (as Logto and node-oidc-provider
/// keep them) plus `sid`, which ties the token to its session.
pub const RESERVED_CLAIMS: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "scope",
    "client_id",
    "sid",
    "organization_id",
    "act",
    "authorization_details",
    "cnf",
];

/// The claim set of an access token at `now` (Unix seconds), and its lifetime.
pub fn access_claims(
    settings: &ClaimsSettings,
    subject: &Subject<'_>,
    grant: Option<&Grant>,
    now: u64,
    jti: &str,
) -> (Map<String, Value>, u64) {
    let user = subject.user;
    let ttl = grant.map_or(settings.access_ttl_secs, |g| g.ttl_secs).min(subject.session_expires_in);
    let roles = settings.roles.roles_for(user, subject.groups);
    let scopes = grant.map_or(&[][..], |g| g.scopes.as_slice());
    let mut hasura = Map::new();
    for (name, field) in &settings.variables.0 {
        let value = match field {
            UserField::Id => user.id.to_string(),
            UserField::Username => user.username.clone(),
            UserField::Email => user.email.clone(),
            UserField::FirstName => user.first_name.clone(),
            UserField::LastName => user.last_name.clone(),
            UserField::FullName => format!("{} {}", user.first_name, user.last_name).trim().to_owned(),
            UserField::IsStaff => user.is_staff.to_string(),
            UserField::IsSuperuser => user.is_superuser.to_string(),
            UserField::Groups => postgres_array(subject.groups),
            UserField::Roles => postgres_array(&roles),
            UserField::Scopes => postgres_array(scopes),
        };
        hasura.insert(name.clone(), value.into());
    }
    hasura.insert("x-hasura-allowed-roles".into(), json!(roles));
    hasura.insert("x-hasura-default-role".into(), settings.roles.default_role.clone().into());
    hasura.insert("x-hasura-user-id".into(), user.id.to_string().into());

    let mut claims = Map::new();
    claims.insert("iss".into(), settings.issuer.clone().into());
    match (grant, &settings.audience) {
        (Some(grant), _) => {
            claims.insert("aud".into(), grant.audience.clone().into());
        }
        (None, Some(aud)) => {
            claims.insert("aud".into(), aud.clone().into());
        }
        (None, None) => {}
    }
    claims.insert("sub".into(), user.id.to_string().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl).into());
    claims.insert("jti".into(), jti.into());
    claims.insert("sid".into(), subject.session_id.into());
    if !scopes.is_empty() {
        claims.insert("scope".into(), scopes.join(" ").into());
    }
    claims.insert("username".into(), user.username.clone().into());
    claims.insert(settings.namespace.clone(), settings.format.encode(Value::Object(hasura)));
    (claims, ttl)
}

/// Puts a script's claims under the reserved ones: reserved names are dropped, everything else
/// (the Hasura namespace included) is set as returned, in the configured claims format.
pub fn merge_custom(settings: &ClaimsSettings, claims: &mut Map<String, Value>, custom: Map<String, Value>) {
    for (name, value) in custom {
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        let value = if name == settings.namespace { settings.format.encode(value) } else { value };
        claims.insert(name, value);
    }
}

impl ClaimsFormat {
    /// The Hasura claims object in this format (a string holding JSON stays as it is).
    pub fn encode(self, hasura: Value) -> Value {
        match (self, hasura) {
            (ClaimsFormat::StringifiedJson, Value::Object(object)) => Value::String(Value::Object(object).to_string()),
            (_, value) => value,
        }
    }
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

    fn settings() -> ClaimsSettings {
        ClaimsSettings {
            issuer: "https://auth.example".into(),
            oidc_issuer: "https://auth.example/oidc".into(),
            audience: Some("https://api.example".into()),
            namespace: "https://hasura.io/jwt/claims".into(),
            format: ClaimsFormat::Json,
            access_ttl_secs: 900,
            roles: roles(GroupRoles::All),
            variables: SessionVariables::default(),
        }
    }

    fn subject<'a>(user: &'a UserRow, groups: &'a [String]) -> Subject<'a> {
        Subject { user, groups, session_id: "s1", session_expires_in: 86_400 }
    }

    #[test]
    fn claims_follow_hasuras_contract() {
        let settings = settings();
        let (staff, editors) = (user(true, false), names(&["editors"]));
        let (claims, ttl) = access_claims(&settings, &subject(&staff, &editors), None, 1_700_000_000, "abc");
        assert_eq!(ttl, 900);
        assert_eq!(claims["sub"], "42");
        assert_eq!(claims["sid"], "s1");
        assert_eq!(claims["exp"], 1_700_000_900);
        assert_eq!(claims["aud"], "https://api.example");
        assert!(claims.get("scope").is_none());
        let hasura = &claims["https://hasura.io/jwt/claims"];
        assert_eq!(hasura["x-hasura-allowed-roles"], json!(["user", "staff", "editors"]));
        assert_eq!(hasura["x-hasura-default-role"], "user");
        assert_eq!(hasura["x-hasura-user-id"], "42");

        let stringified = ClaimsSettings { format: ClaimsFormat::StringifiedJson, audience: None, ..settings };
        let plain = user(false, false);
        let (claims, _) = access_claims(&stringified, &subject(&plain, &[]), None, 1_700_000_000, "abc");
        let inner: Value = serde_json::from_str(claims["https://hasura.io/jwt/claims"].as_str().unwrap()).unwrap();
        assert_eq!(inner["x-hasura-user-id"], "42");
        assert!(claims.get("aud").is_none());
    }

    #[test]
    fn a_grant_sets_audience_scope_and_a_lifetime_within_the_session() {
        let grant =
            Grant { audience: "https://example.hasura.app/api".into(), scopes: names(&["a", "b"]), ttl_secs: 3600 };
        let plain = user(false, false);
        let mut who = subject(&plain, &[]);
        who.session_expires_in = 100;
        let (claims, ttl) = access_claims(&settings(), &who, Some(&grant), 1_700_000_000, "abc");
        assert_eq!(claims["aud"], "https://example.hasura.app/api");
        assert_eq!(claims["scope"], "a b");
        assert_eq!(ttl, 100);
        assert_eq!(claims["exp"], 1_700_000_100);
    }

    #[test]
    fn configured_variables_copy_user_fields_and_lists_become_postgres_arrays() {
        let mut settings = settings();
        settings.variables = "x-hasura-email=email, X-Hasura-Groups=groups,x-hasura-staff=is_staff".parse().unwrap();
        let mut alice = user(true, false);
        alice.email = "alice@example.com".into();
        let groups = names(&["editors", "say \"hi\""]);
        let (claims, _) = access_claims(&settings, &subject(&alice, &groups), None, 1_700_000_000, "abc");
        let hasura = &claims["https://hasura.io/jwt/claims"];
        assert_eq!(hasura["x-hasura-email"], "alice@example.com");
        assert_eq!(hasura["x-hasura-staff"], "true");
        assert_eq!(hasura["x-hasura-groups"], r#"{"editors","say \"hi\""}"#);
        assert_eq!(postgres_array(&[]), "{}");
        assert_eq!(postgres_array(&names(&["a\\b"])), r#"{"a\\b"}"#);
    }

    #[test]
    fn configuration_cannot_touch_reserved_variables() {
        for bad in ["x-hasura-user-id=username", "x-hasura-allowed-roles=groups", "x-hasura-role=username"] {
            assert!(bad.parse::<SessionVariables>().unwrap_err().contains("cannot be configured"), "{bad}");
        }
        assert!("email=email".parse::<SessionVariables>().is_err());
        assert!("x-hasura-=email".parse::<SessionVariables>().is_err());
        assert!("x-hasura-a=password".parse::<SessionVariables>().is_err());
        assert!("x-hasura-a=email,x-hasura-a=username".parse::<SessionVariables>().is_err());
        assert_eq!("".parse::<SessionVariables>(), Ok(SessionVariables::default()));
    }

    #[test]
    fn custom_claims_never_replace_reserved_ones() {
        let settings = ClaimsSettings { format: ClaimsFormat::StringifiedJson, ..settings() };
        let plain = user(false, false);
        let (mut claims, _) = access_claims(&settings, &subject(&plain, &[]), None, 1_700_000_000, "abc");
        let custom = json!({
            "sub": "1", "exp": 9_999_999_999u64, "scope": "all", "sid": "other", "aud": "x", "act": {"sub": "1"},
            "tenant": "acme",
            "https://hasura.io/jwt/claims": {"x-hasura-allowed-roles": ["user"], "x-hasura-default-role": "user"}
        });
        let Value::Object(custom) = custom else { unreachable!() };
        merge_custom(&settings, &mut claims, custom);
        assert_eq!(claims["sub"], "42");
        assert_eq!(claims["sid"], "s1");
        assert_eq!(claims["exp"], 1_700_000_900);
        assert!(claims.get("scope").is_none() && claims.get("act").is_none());
        assert_eq!(claims["aud"], "https://api.example");
        assert_eq!(claims["tenant"], "acme");
        assert!(claims["https://hasura.io/jwt/claims"].is_string(), "kept in the configured format");
    }

    #[test]
    fn group_lists_pick_named_groups() {
        let list: GroupRoles = "list: editors , app:readers".parse().unwrap();
        let groups = names(&["editors", "admin", "viewers", "app:readers"]);
        assert_eq!(roles(list).roles_for(&user(false, false), &groups), ["user", "app:readers", "editors"]);
        assert!("list:".parse::<GroupRoles>().is_err());
    }
}
