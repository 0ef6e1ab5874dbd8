//! The Hasura example in `examples/hasura`. CI cannot run Docker, so these tests check that the
//! files parse and keep the properties that matter: Hasura can start against gatehouse, and no
//! role can read what it must not.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

const COMPOSE: &str = include_str!("../examples/hasura/docker-compose.yml");
const METADATA: &str = include_str!("../examples/hasura/metadata.json");

fn compose() -> Yaml {
    serde_norway::from_str(COMPOSE).expect("docker-compose.yml is valid YAML")
}

fn metadata() -> Json {
    serde_json::from_str(METADATA).expect("metadata.json is valid JSON")
}

fn service<'a>(compose: &'a Yaml, name: &str) -> &'a Yaml {
    compose
        .get("services")
        .and_then(|services| services.get(name))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Null => String::new(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// A service's environment, written either as a mapping or as a list of `KEY=VALUE`.
fn environment(compose: &Yaml, name: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match service(compose, name).get("environment") {
        None => {}
        Some(Yaml::Mapping(map)) => {
            for (key, value) in map {
                env.insert(scalar(key), scalar(value));
            }
        }
        Some(Yaml::Sequence(items)) => {
            for item in items {
                let item = scalar(item);
                let (key, value) = item.split_once('=').unwrap_or((&item, ""));
                env.insert(key.to_owned(), value.to_owned());
            }
        }
        Some(other) => panic!("environment of {name:?} is neither a mapping nor a list: {other:?}"),
    }
    env
}

fn jwt_secret(env: &BTreeMap<String, String>) -> Json {
    let text = env.get("HASURA_GRAPHQL_JWT_SECRET").expect("hasura has HASURA_GRAPHQL_JWT_SECRET");
    serde_json::from_str(text).expect("HASURA_GRAPHQL_JWT_SECRET is JSON")
}

/// A commented-out `KEY: value` line of the compose file, uncommented and parsed.
fn commented_setting(key: &str) -> String {
    let prefix = format!("{key}:");
    let line = COMPOSE
        .lines()
        .map(|line| line.trim_start())
        .filter_map(|line| line.strip_prefix('#'))
        .map(str::trim_start)
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no commented-out {key} line in docker-compose.yml"));
    let parsed: Yaml = serde_norway::from_str(line).expect("the commented line is valid YAML once uncommented");
    scalar(parsed.get(key).expect("the line sets its key"))
}

#[test]
fn compose_has_the_three_services() {
    let compose = compose();
    for name in ["postgres", "gatehouse", "hasura"] {
        service(&compose, name);
    }
}

#[test]
fn hasura_starts_in_jwt_mode_against_gatehouse() {
    let compose = compose();
    let hasura = environment(&compose, "hasura");
    let gatehouse = environment(&compose, "gatehouse");

    // JWT and webhook modes need an admin secret, or Hasura exits at start.
    let secret = hasura.get("HASURA_GRAPHQL_ADMIN_SECRET").expect("hasura has HASURA_GRAPHQL_ADMIN_SECRET");
    assert!(!secret.trim().is_empty(), "the admin secret is empty");

    let jwt = jwt_secret(&hasura);
    let jwk_url = jwt["jwk_url"].as_str().expect("the JWT secret has a jwk_url string");
    assert!(jwk_url.ends_with("/webhook/jwks"), "jwk_url {jwk_url:?} is not gatehouse's JWKS");
    assert!(jwk_url.starts_with("http://gatehouse:"), "jwk_url {jwk_url:?} does not name the gatehouse service");
    assert!(jwt.get("key").is_none(), "key and jwk_url cannot both be set");
    assert_eq!(jwt["claims_namespace"], "https://hasura.io/jwt/claims");
    assert_eq!(jwt["claims_format"], "json");

    // The issuer is gatehouse's public URL (the default `iss`), the audience its audience.
    let public_url = gatehouse.get("GATEHOUSE_PUBLIC_URL").expect("gatehouse sets GATEHOUSE_PUBLIC_URL");
    assert_eq!(jwt["issuer"].as_str(), Some(public_url.as_str()));
    assert!(jwk_url.starts_with(public_url.as_str()), "jwk_url {jwk_url:?} is not under {public_url:?}");
    assert_eq!(jwt["audience"].as_str(), gatehouse.get("GATEHOUSE_JWT_AUDIENCE").map(String::as_str));

    assert_eq!(hasura.get("HASURA_GRAPHQL_UNAUTHORIZED_ROLE").map(String::as_str), Some("anonymous"));
    // Webhook mode is only offered in comments: both modes at once is a fatal error.
    assert!(!hasura.contains_key("HASURA_GRAPHQL_AUTH_HOOK"), "JWT and webhook mode cannot be combined");
}

#[test]
fn webhook_mode_alternative_is_valid_once_uncommented() {
    let hook = commented_setting("HASURA_GRAPHQL_AUTH_HOOK");
    assert_eq!(hook, "http://gatehouse:3000/webhook/webhook");
    let mode = commented_setting("HASURA_GRAPHQL_AUTH_HOOK_MODE");
    assert!(mode == "GET" || mode == "POST", "hook mode {mode:?} is neither GET nor POST");
}

#[test]
fn gatehouse_shares_the_database_and_listens_on_all_interfaces() {
    let compose = compose();
    let gatehouse = environment(&compose, "gatehouse");
    let hasura = environment(&compose, "hasura");
    assert_eq!(gatehouse.get("HOST").map(String::as_str), Some("0.0.0.0"));
    let url = gatehouse.get("DATABASE_URL").expect("gatehouse sets DATABASE_URL");
    assert!(url.starts_with("postgres://") && url.contains("@postgres:"), "{url:?} is not the postgres service");
    assert_eq!(hasura.get("HASURA_GRAPHQL_DATABASE_URL"), Some(url), "gatehouse and Hasura use one database");
    assert!(gatehouse.contains_key("GATEHOUSE_DATA_DIR"), "the signing key must live in a volume");
}

fn tables(metadata: &Json) -> Vec<&Json> {
    assert_eq!(metadata["version"], 3, "metadata export format version 3");
    let sources = metadata["sources"].as_array().expect("metadata has sources");
    sources.iter().flat_map(|source| source["tables"].as_array().expect("a source has tables")).collect()
}

fn table<'a>(metadata: &'a Json, name: &str) -> &'a Json {
    tables(metadata)
        .into_iter()
        .find(|t| t["table"]["schema"] == "public" && t["table"]["name"] == name)
        .unwrap_or_else(|| panic!("metadata does not track public.{name}"))
}

/// Every permission of every kind on every table: (table, kind, role, permission).
fn permissions(metadata: &Json) -> Vec<(String, &'static str, String, &Json)> {
    let mut all = Vec::new();
    for table in tables(metadata) {
        let name = table["table"]["name"].as_str().expect("a table name").to_owned();
        for kind in ["select_permissions", "insert_permissions", "update_permissions", "delete_permissions"] {
            for entry in table[kind].as_array().into_iter().flatten() {
                let role = entry["role"].as_str().expect("a permission names its role").to_owned();
                all.push((name.clone(), kind, role, &entry["permission"]));
            }
        }
    }
    all
}

fn columns(permission: &Json) -> Vec<&str> {
    match &permission["columns"] {
        Json::Null => Vec::new(),
        Json::String(s) if s == "*" => panic!("a permission grants every column (\"*\"), password included"),
        Json::Array(items) => items.iter().map(|c| c.as_str().expect("a column name")).collect(),
        other => panic!("unexpected columns value {other}"),
    }
}

#[test]
fn metadata_tracks_the_django_auth_tables_from_hasuras_database() {
    let metadata = metadata();
    for name in ["auth_user", "auth_group", "auth_user_groups"] {
        table(&metadata, name);
    }
    let source = &metadata["sources"][0];
    assert_eq!(source["kind"], "postgres");
    assert_eq!(source["configuration"]["connection_info"]["database_url"]["from_env"], "HASURA_GRAPHQL_DATABASE_URL");
}

#[test]
fn no_role_can_read_or_write_passwords() {
    let metadata = metadata();
    let all = permissions(&metadata);
    assert!(!all.is_empty());
    for (table, kind, role, permission) in all {
        assert!(!columns(permission).contains(&"password"), "{role} may use password in {kind} on {table}");
    }
}

#[test]
fn anonymous_sees_no_email_and_no_flags() {
    let metadata = metadata();
    let anonymous: Vec<_> = permissions(&metadata).into_iter().filter(|(_, _, role, _)| role == "anonymous").collect();
    assert!(
        anonymous.iter().any(|(table, kind, _, _)| table == "auth_user" && *kind == "select_permissions"),
        "the example has an anonymous select permission on auth_user"
    );
    for (table, kind, _, permission) in anonymous {
        let columns = columns(permission);
        for secret in ["email", "is_staff", "is_superuser", "password"] {
            assert!(!columns.contains(&secret), "anonymous may use {secret} in {kind} on {table}");
        }
    }
}

/// The `user` role's select filter on `table` compares `column` with X-Hasura-User-Id.
fn assert_user_filter(metadata: &Json, table_name: &str, path: &[&str]) {
    let table = table(metadata, table_name);
    let select = table["select_permissions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["role"] == "user"))
        .unwrap_or_else(|| panic!("no select permission for user on {table_name}"));
    let mut node = &select["permission"]["filter"];
    for key in path {
        node = &node[*key];
    }
    let variable = node["_eq"].as_str().unwrap_or_default();
    assert!(
        variable.eq_ignore_ascii_case("X-Hasura-User-Id"),
        "user's filter on {table_name} is {} instead of {path:?} _eq X-Hasura-User-Id",
        select["permission"]["filter"]
    );
}

#[test]
fn user_reads_only_its_own_rows() {
    let metadata = metadata();
    assert_user_filter(&metadata, "auth_user", &["id"]);
    assert_user_filter(&metadata, "auth_user_groups", &["user_id"]);
    assert_user_filter(&metadata, "auth_group", &["memberships", "user_id"]);
}
