//! RBAC the Logto way over real HTTP: API resources, scopes, roles that are Django groups,
//! tokens for a resource, custom claims scripts and the admin API.

mod common;

use common::{TestApp, TestDb, count, execute, spawn_app_with_settings};
use gatehouse::tokens::hasura_v2::{self, HasuraJwtConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

const PASSWORD: &str = "a long passphrase";
const SECRET: &str = "an-admin-secret-that-is-long-enough-to-pass";
const HASURA_API: &str = "https://example.hasura.app/api";
const GUIDE_SCRIPT: &str = include_str!("../examples/custom-claims/logto-hasura-guide.js");

async fn spawn(db: TestDb, flags: &[&str]) -> TestApp {
    let mut settings = db.settings(flags);
    settings.admin.secret_digest = Some(sha2::Sha256::digest(SECRET).into());
    spawn_app_with_settings(db, settings).await
}

/// Calls the admin API with `credential` as the bearer token.
async fn call_as(
    app: &TestApp,
    credential: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, app.url(path)).bearer_auth(credential);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    call_as(app, SECRET, method, path, body).await
}

async fn login(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app.post_json("/webhook/login", &body).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn scopes_of(claims: &Value) -> Vec<String> {
    let mut scopes: Vec<String> =
        claims["scope"].as_str().unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    scopes.sort();
    scopes
}

async fn webhook(app: &TestApp, token: &str, role: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(app.url("/webhook/webhook"))
        .bearer_auth(token)
        .header("X-Hasura-Role", role)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The Hasura resource with scopes `read:user` and `maintain:user`; returns (resource, read, maintain) ids.
async fn hasura_resource(app: &TestApp) -> (i64, i64, i64) {
    let (status, resource) =
        admin(app, Method::POST, "/api/resources", Some(json!({"name": "Hasura", "indicator": HASURA_API}))).await;
    assert_eq!(status, 201, "{resource}");
    let id = resource["id"].as_i64().unwrap();
    let scope = |name: &'static str| async move {
        let path = format!("/api/resources/{id}/scopes");
        let (status, scope) = admin(app, Method::POST, &path, Some(json!({"name": name}))).await;
        assert_eq!(status, 201, "{scope}");
        scope["id"].as_i64().unwrap()
    };
    let read = scope("read:user").await;
    let maintain = scope("maintain:user").await;
    (id, read, maintain)
}

async fn role_id(app: &TestApp, name: &str) -> i64 {
    let (status, roles) = admin(app, Method::GET, "/api/roles?page_size=100", None).await;
    assert_eq!(status, 200);
    roles.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["id"].as_i64().unwrap()
}

/// The Logto–Hasura guide, end to end, with the roles made in Django's own `auth_group`.
async fn the_logto_hasura_guide_works_on_django_groups(db: TestDb) {
    let app = spawn(db, &[]).await;
    let (_, read, maintain) = hasura_resource(&app).await;
    let db = app.db.connect().await;
    execute(&db, "INSERT INTO auth_group (name) VALUES ('user:reader'), ('user:maintainer')").await;
    let (reader, maintainer) = (role_id(&app, "user:reader").await, role_id(&app, "user:maintainer").await);
    for (role, scope) in [(reader, read), (maintainer, maintain)] {
        let path = format!("/api/roles/{role}/scopes");
        let (status, body) = admin(&app, Method::POST, &path, Some(json!({"scopeIds": [scope]}))).await;
        assert_eq!(status, 201, "{body}");
    }
    let alice = app.create_user("alice", PASSWORD).await;
    let bob = app.create_user("bob", PASSWORD).await;
    // Assignments as the Django admin makes them.
    execute(&db, &format!("INSERT INTO auth_user_groups (user_id, group_id) VALUES ({}, {reader})", alice.id)).await;
    execute(&db, &format!("INSERT INTO auth_user_groups (user_id, group_id) VALUES ({}, {maintainer})", alice.id))
        .await;
    execute(&db, &format!("INSERT INTO auth_user_groups (user_id, group_id) VALUES ({}, {reader})", bob.id)).await;
    let config = json!({"script": GUIDE_SCRIPT, "environmentVariables": {"USER_DEFAULT_ROLE_NAMES": "user"}});
    let (status, body) = admin(&app, Method::PUT, "/api/configs/jwt-customizer/access-token", Some(config)).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = login(
        &app,
        json!({"username": "alice", "password": PASSWORD, "resource": HASURA_API, "scope": "read:user maintain:user"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 3600, "the resource's lifetime");
    let token = body["token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["aud"], HASURA_API);
    assert_eq!(scopes_of(&claims), ["maintain:user", "read:user"]);
    let hasura = &claims["https://hasura.io/jwt/claims"];
    assert_eq!(hasura["x-hasura-allowed-roles"], json!(["user", "user:maintainer", "user:reader"]));
    assert_eq!(hasura["x-hasura-default-role"], "user");
    assert_eq!(hasura["x-hasura-user-id"], alice.id.to_string());

    let jwks = reqwest::get(app.url("/webhook/jwks")).await.unwrap().bytes().await.unwrap();
    let config = HasuraJwtConfig {
        claims_namespace: app.settings.claims.namespace.clone(),
        claims_format: app.settings.claims.format,
        issuer: Some(app.settings.claims.issuer.clone()),
        audience: vec![HASURA_API.to_owned()],
        allowed_skew_secs: 0.0,
    };
    let report = hasura_v2::check_now(token, &hasura_v2::parse_jwks(&jwks).unwrap(), &config);
    assert!(report.accepted(), "{report}");

    let (status, session) = webhook(&app, token, "user:maintainer").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["X-Hasura-Role"], "user:maintainer");
    assert_eq!(session["X-Hasura-User-Id"], alice.id.to_string());

    let (status, body) = login(&app, json!({"username": "bob", "password": PASSWORD, "resource": HASURA_API})).await;
    assert_eq!(status, 200, "{body}");
    let bob_token = body["token"].as_str().unwrap();
    assert_eq!(scopes_of(&claims_of(bob_token)), ["read:user"], "scopes bob lacks are dropped");
    assert_eq!(webhook(&app, bob_token, "user:maintainer").await.0, 401);
    assert_eq!(webhook(&app, bob_token, "user:reader").await.0, 200);
}
on_both_backends!(the_logto_hasura_guide, super::the_logto_hasura_guide_works_on_django_groups);

async fn tokens_for_a_resource_follow_logtos_scope_rules(db: TestDb) {
    let app = spawn(db, &[]).await;
    let (resource, read, _) = hasura_resource(&app).await;
    let (status, role) =
        admin(&app, Method::POST, "/api/roles", Some(json!({"name": "readers", "scopeIds": [read]}))).await;
    assert_eq!(status, 201, "{role}");
    let role = role["id"].as_i64().unwrap();
    let alice = app.create_user("alice", PASSWORD).await;
    let (status, _) =
        admin(&app, Method::POST, &format!("/api/roles/{role}/users"), Some(json!({"userIds": [alice.id]}))).await;
    assert_eq!(status, 201);

    // No resource and no default: the plain Hasura token, without aud or scope.
    let (_, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
    let claims = claims_of(body["token"].as_str().unwrap());
    assert!(claims.get("aud").is_none() && claims.get("scope").is_none(), "{claims}");
    assert_eq!(claims["https://hasura.io/jwt/claims"]["x-hasura-allowed-roles"], json!(["user", "readers"]));

    // Requested scopes the user lacks are dropped silently; an unknown resource is invalid_target.
    let (_, body) = login(
        &app,
        json!({"username": "alice", "password": PASSWORD, "resource": HASURA_API, "scope": "maintain:user openid"}),
    )
    .await;
    assert!(claims_of(body["token"].as_str().unwrap()).get("scope").is_none());
    assert!(body.get("scope").is_none());
    let sessions_before = count(&app.db.connect().await, "SELECT COUNT(*) FROM gatehouse_session").await;
    for bad in ["https://unknown.example/api", "not a uri", ""] {
        let (status, body) = login(&app, json!({"username": "alice", "password": PASSWORD, "resource": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["errors"][0]["code"], "invalid_target");
    }
    let (status, _) =
        login(&app, json!({"username": "alice", "password": "wrong", "resource": "https://x.example"})).await;
    assert_eq!(status, 401, "a wrong password is told before anything about the resource");
    assert_eq!(count(&app.db.connect().await, "SELECT COUNT(*) FROM gatehouse_session").await, sessions_before);

    // The default resource applies when none is named; its lifetime applies too.
    let path = format!("/api/resources/{resource}");
    assert_eq!(admin(&app, Method::PATCH, &path, Some(json!({"accessTokenTtl": 120}))).await.0, 200);
    let path = format!("/api/resources/{resource}/is-default");
    assert_eq!(admin(&app, Method::PATCH, &path, Some(json!({"isDefault": true}))).await.0, 200);
    let (_, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["scope"], "read:user");
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["aud"], HASURA_API);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 120);

    // Refresh recomputes from the database: a role taken away in Django is gone at once.
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    execute(&app.db.connect().await, &format!("DELETE FROM auth_user_groups WHERE user_id = {}", alice.id)).await;
    let response =
        app.post_json("/webhook/refresh", &json!({"refresh_token": refresh_token, "resource": HASURA_API})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = claims_of(body["token"].as_str().unwrap());
    assert!(claims.get("scope").is_none(), "{claims}");
    assert_eq!(claims["https://hasura.io/jwt/claims"]["x-hasura-allowed-roles"], json!(["user"]));
    let response = app
        .post_json(
            "/webhook/refresh",
            &json!({"refresh_token": body["refresh_token"], "resource": "https://nope.example"}),
        )
        .await;
    assert_eq!(response.status(), 400);

    let (status, _) = webhook(&app, body["token"].as_str().unwrap(), "user").await;
    assert_eq!(status, 200);
}
on_both_backends!(resource_tokens, super::tokens_for_a_resource_follow_logtos_scope_rules);

/// With an audience configured for plain tokens, the webhook also takes tokens for any API resource.
#[tokio::test]
async fn the_webhook_accepts_resource_audiences_beside_the_configured_one() {
    let app = spawn(TestDb::sqlite(), &["--jwt-audience", "https://hasura.example"]).await;
    hasura_resource(&app).await;
    app.create_user("alice", PASSWORD).await;
    let plain = app.login("alice", PASSWORD).await;
    assert_eq!(claims_of(&plain)["aud"], "https://hasura.example");
    assert_eq!(webhook(&app, &plain, "user").await.0, 200);
    let (_, body) = login(&app, json!({"username": "alice", "password": PASSWORD, "resource": HASURA_API})).await;
    assert_eq!(webhook(&app, body["token"].as_str().unwrap(), "user").await.0, 200);
}

async fn default_roles_permissions_and_variables(db: TestDb) {
    let app = spawn(
        db,
        &[
            "--permissions-resource",
            "https://django.example/perms",
            "--claims-variables",
            "x-hasura-email=email,x-hasura-groups=groups",
        ],
    )
    .await;
    let (status, _) = admin(
        &app,
        Method::POST,
        "/api/resources",
        Some(json!({"name": "Django permissions", "indicator": "https://django.example/perms"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, role) =
        admin(&app, Method::POST, "/api/roles", Some(json!({"name": "members", "isDefault": true}))).await;
    assert_eq!(status, 201, "{role}");
    let (status, _) =
        admin(&app, Method::POST, "/api/roles", Some(json!({"name": "robots", "type": "machine", "isDefault": true})))
            .await;
    assert_eq!(status, 201);
    let db = app.db.connect().await;
    // Django's own way to grant a permission: through the group.
    execute(
        &db,
        &format!(
            "INSERT INTO auth_group_permissions (group_id, permission_id) \
             SELECT {}, id FROM auth_permission WHERE codename = 'view_user'",
            role["id"]
        ),
    )
    .await;

    let response = app
        .post_json(
            "/webhook/signup",
            &json!({"username": "carol", "password": PASSWORD, "email": "carol@example.com",
                    "resource": "https://django.example/perms"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["scope"], "auth.view_user", "the default role's Django permission");
    let hasura = &claims["https://hasura.io/jwt/claims"];
    assert_eq!(hasura["x-hasura-allowed-roles"], json!(["user", "members"]), "machine roles never reach users");
    assert_eq!(hasura["x-hasura-email"], "carol@example.com");
    assert_eq!(hasura["x-hasura-groups"], r#"{"members"}"#);

    let (status, body) =
        login(&app, json!({"username": "carol", "password": PASSWORD, "resource": "https://x.example/y"})).await;
    assert_eq!((status, &body["errors"][0]["type"]), (StatusCode::BAD_REQUEST, &json!("InvalidTarget")));
    let response = app
        .post_json(
            "/webhook/signup",
            &json!({"username": "dave", "password": PASSWORD, "resource": "https://x.example/y"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_user WHERE username = 'dave'").await, 0);
}
on_both_backends!(defaults_and_permissions, super::default_roles_permissions_and_variables);

/// Scripts are bounded: a runaway loop or a memory bomb is stopped, the token is issued without
/// custom claims (the default) or refused (blockIssuanceOnError), and the server stays healthy.
async fn script_limits_hold_and_deny_access_is_403(db: TestDb) {
    let app = spawn(db, &[]).await;
    app.create_user("alice", PASSWORD).await;
    let put = |script: &str, block: bool| {
        let config = json!({"script": script, "blockIssuanceOnError": block});
        let app = &app;
        async move { admin(app, Method::PUT, "/api/configs/jwt-customizer/access-token", Some(config)).await }
    };
    let scripts = [
        ("timeout", "const getCustomJwtClaims = () => { while (true) {} };"),
        ("oom", "const getCustomJwtClaims = () => ({ s: 'x'.repeat(2 ** 28) });"),
        ("oom", "const getCustomJwtClaims = async () => { await null; return { b: new ArrayBuffer(2 ** 26) }; };"),
        ("timeout", "const getCustomJwtClaims = async () => { for (;;) await null; };"),
    ];
    for (kind, script) in scripts {
        let (status, body) = put(script, false).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
        assert_eq!(status, 200, "fail-open by default: {body}");
        let claims = claims_of(body["token"].as_str().unwrap());
        assert_eq!(claims["https://hasura.io/jwt/claims"]["x-hasura-default-role"], "user");

        let (status, _) = put(script, true).await;
        assert_eq!(status, 200);
        let (status, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["errors"][0]["type"], "InternalError");

        let test = json!({"script": script, "token": {}, "context": {}});
        let (status, body) = admin(&app, Method::POST, "/api/configs/jwt-customizer/test", Some(test)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["errors"][0]["code"], kind, "{script}");
        assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
    }

    let deny = "getCustomJwtClaims = async ({ api, context }) => { api.denyAccess('no entry for ' + context.user.username); };";
    let (status, _) = put(deny, false).await;
    assert_eq!(status, 200);
    let live_before =
        count(&app.db.connect().await, "SELECT COUNT(*) FROM gatehouse_session WHERE revoked_at IS NULL").await;
    let (status, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["code"], "access_denied");
    assert_eq!(body["errors"][0]["message"], "no entry for alice");
    let live_after =
        count(&app.db.connect().await, "SELECT COUNT(*) FROM gatehouse_session WHERE revoked_at IS NULL").await;
    assert_eq!(live_before, live_after, "a refused login leaves no live session");

    // Claims that would break Hasura's contract are not merged.
    let (status, _) = put(
        "const getCustomJwtClaims = () => ({ 'https://hasura.io/jwt/claims': { 'x-hasura-default-role': 'x', 'x-hasura-allowed-roles': ['y'] }, sub: 'root', tenant: 'acme' });",
        false,
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["https://hasura.io/jwt/claims"]["x-hasura-default-role"], "user");
    assert!(claims.get("tenant").is_none(), "all or nothing");
    assert_ne!(claims["sub"], "root");

    // Reserved claims are dropped, the rest merged.
    let (status, _) = put("const getCustomJwtClaims = () => ({ sub: 'root', sid: 'x', tenant: 'acme' });", false).await;
    assert_eq!(status, 200);
    let (_, body) = login(&app, json!({"username": "alice", "password": PASSWORD})).await;
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["tenant"], "acme");
    assert_ne!(claims["sub"], "root");
    assert_ne!(claims["sid"], "x");
}
on_both_backends!(script_limits, super::script_limits_hold_and_deny_access_is_403);

async fn the_admin_api_needs_an_admin(db: TestDb) {
    let app = spawn(db, &[]).await;
    let management = "http://gatehouse.test/api";
    let client = reqwest::Client::new();
    let status = client.get(app.url("/api/resources")).send().await.unwrap().status();
    assert_eq!(status, 401, "no credential");
    for wrong in ["nope", &format!("{SECRET}x"), &SECRET[1..]] {
        assert_eq!(call_as(&app, wrong, Method::GET, "/api/resources", None).await.0, 401, "{wrong}");
    }
    let basic = client.get(app.url("/api/resources")).basic_auth("admin", Some(SECRET)).send().await.unwrap();
    assert_eq!(basic.status(), 401);

    app.create_user("alice", PASSWORD).await;
    let accounts = app.accounts().await;
    let mut root = gatehouse::accounts::NewUser::new(
        gatehouse::django::validators::Username::parse("root").unwrap(),
        Some(gatehouse::accounts::Password::new(PASSWORD)),
    );
    root.is_superuser = true;
    root.is_staff = true;
    accounts.create_user(root).await.unwrap();

    let (_, body) = login(&app, json!({"username": "alice", "password": PASSWORD, "resource": management})).await;
    let alice_token = body["token"].as_str().unwrap().to_owned();
    assert!(claims_of(&alice_token).get("scope").is_none(), "only superusers hold `all`");
    let (status, body) = call_as(&app, &alice_token, Method::GET, "/api/resources", None).await;
    assert_eq!(status, 403, "{body}");
    let (_, body) = login(&app, json!({"username": "root", "password": PASSWORD})).await;
    let plain = body["token"].as_str().unwrap().to_owned();
    assert_eq!(call_as(&app, &plain, Method::GET, "/api/resources", None).await.0, 403, "not for the admin API");

    let (_, body) = login(&app, json!({"username": "root", "password": PASSWORD, "resource": management})).await;
    let root_token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&root_token)["scope"], "all");
    let (status, _) = call_as(
        &app,
        &root_token,
        Method::POST,
        "/api/resources",
        Some(json!({"name": "Hasura", "indicator": HASURA_API})),
    )
    .await;
    assert_eq!(status, 201);
    let audit = count(
        &app.db.connect().await,
        "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind = 'admin.resource.create'",
    )
    .await;
    assert_eq!(audit, 1, "every change is audited");

    let response = client.post(app.url("/webhook/logout")).bearer_auth(&root_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(call_as(&app, &root_token, Method::GET, "/api/resources", None).await.0, 401, "ended session");
}
on_both_backends!(admin_authorization, super::the_admin_api_needs_an_admin);

const TABLES: [&str; 8] = [
    "gatehouse_resource",
    "gatehouse_scope",
    "auth_group",
    "gatehouse_role",
    "gatehouse_role_scope",
    "auth_user_groups",
    "auth_user",
    "gatehouse_config",
];

async fn snapshot(app: &TestApp) -> Vec<i64> {
    let db = app.db.connect().await;
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push(count(&db, &format!("SELECT COUNT(*) FROM {table}")).await);
    }
    counts
}

/// Every bad input gets a JSON error with a stable type and the right status, and changes nothing.
async fn bad_admin_input_is_refused_and_changes_nothing(db: TestDb) {
    let app = spawn(db, &[]).await;
    let (resource, read, _) = hasura_resource(&app).await;
    let (_, role) = admin(&app, Method::POST, "/api/roles", Some(json!({"name": "readers"}))).await;
    let role = role["id"].as_i64().unwrap();
    let (_, machine) = admin(&app, Method::POST, "/api/roles", Some(json!({"name": "bots", "type": "machine"}))).await;
    let machine = machine["id"].as_i64().unwrap();
    let alice = app.create_user("alice", PASSWORD).await.id;
    let before = snapshot(&app).await;

    let r = format!("/api/resources/{resource}");
    let rs = format!("/api/resources/{resource}/scopes");
    let ro = format!("/api/roles/{role}");
    let u = format!("/api/users/{alice}");
    let long = "x".repeat(300);
    let cases: Vec<(Method, String, Value, u16, &str)> = vec![
        (Method::POST, "/api/resources".into(), json!({}), 400, "InvalidField"),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": "x", "indicator": "relative/path"}),
            400,
            "InvalidField",
        ),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": "x", "indicator": "https://a.example/#f"}),
            400,
            "InvalidField",
        ),
        (Method::POST, "/api/resources".into(), json!({"name": 5, "indicator": HASURA_API}), 400, "InvalidField"),
        (Method::POST, "/api/resources".into(), json!({"name": "x", "indicator": HASURA_API}), 409, "Conflict"),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": "x", "indicator": "http://gatehouse.test/api"}),
            409,
            "Conflict",
        ),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": "x", "indicator": "https://b.example", "accessTokenTtl": 0}),
            400,
            "InvalidField",
        ),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": "x", "indicator": "https://b.example", "accessTokenTtl": "1h"}),
            400,
            "InvalidField",
        ),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": long, "indicator": "https://b.example"}),
            400,
            "InvalidField",
        ),
        (
            Method::POST,
            "/api/resources".into(),
            json!({"name": "a\u{0}b", "indicator": "https://b.example"}),
            400,
            "InvalidField",
        ),
        (Method::POST, "/api/resources".into(), json!([1, 2]), 400, "InvalidBody"),
        (Method::PATCH, r.clone(), json!({"accessTokenTtl": 999_999_999_999i64}), 400, "InvalidField"),
        (Method::PATCH, r.clone(), json!({"name": ""}), 400, "InvalidField"),
        (Method::PATCH, "/api/resources/999999".into(), json!({"name": "x"}), 404, "NotFound"),
        (Method::PATCH, "/api/resources/abc".into(), json!({"name": "x"}), 404, "NotFound"),
        (Method::PATCH, format!("{r}/is-default"), json!({}), 400, "InvalidField"),
        (Method::PATCH, format!("{r}/is-default"), json!({"isDefault": "yes"}), 400, "InvalidField"),
        (Method::DELETE, "/api/resources/99999999999".into(), Value::Null, 404, "NotFound"),
        (Method::POST, rs.clone(), json!({"name": "read:user"}), 409, "Conflict"),
        (Method::POST, rs.clone(), json!({"name": "has space"}), 400, "InvalidField"),
        (Method::POST, rs.clone(), json!({"name": ""}), 400, "InvalidField"),
        (Method::POST, "/api/resources/999999/scopes".into(), json!({"name": "x"}), 404, "NotFound"),
        (Method::PATCH, format!("{rs}/999999"), json!({"name": "x"}), 404, "NotFound"),
        (Method::DELETE, format!("/api/resources/999999/scopes/{read}"), Value::Null, 404, "NotFound"),
        (Method::POST, "/api/roles".into(), json!({"name": "readers"}), 409, "Conflict"),
        (Method::POST, "/api/roles".into(), json!({"name": "  "}), 400, "InvalidField"),
        (Method::POST, "/api/roles".into(), json!({"name": "x", "type": "admin"}), 400, "InvalidField"),
        (Method::POST, "/api/roles".into(), json!({"name": "x", "scopeIds": [999999]}), 400, "InvalidField"),
        (Method::POST, "/api/roles".into(), json!({"name": "x", "scopeIds": "1"}), 400, "InvalidField"),
        (Method::POST, "/api/roles".into(), json!({"name": "x", "isDefault": 1}), 400, "InvalidField"),
        (Method::PATCH, ro.clone(), json!({"type": "machine"}), 400, "InvalidField"),
        (Method::PATCH, ro.clone(), json!({"name": "bots"}), 409, "Conflict"),
        (Method::POST, format!("{ro}/scopes"), json!({"scopeIds": [read, 999999]}), 400, "InvalidField"),
        (Method::POST, format!("{ro}/scopes"), json!({"scopeIds": [1.5]}), 400, "InvalidField"),
        (Method::POST, format!("{ro}/scopes"), json!({}), 400, "InvalidField"),
        (Method::DELETE, format!("{ro}/scopes/{read}"), Value::Null, 404, "NotFound"),
        (Method::POST, format!("{ro}/users"), json!({"userIds": [alice, 999999]}), 400, "InvalidField"),
        (Method::POST, format!("/api/roles/{machine}/users"), json!({"userIds": [alice]}), 400, "InvalidField"),
        (Method::DELETE, format!("{ro}/users/{alice}"), Value::Null, 404, "NotFound"),
        (Method::GET, "/api/roles?page=0".into(), Value::Null, 400, "InvalidField"),
        (Method::GET, "/api/users?page_size=101".into(), Value::Null, 400, "InvalidField"),
        (Method::GET, "/api/users?page_size=%ZZ".into(), Value::Null, 400, "InvalidField"),
        (Method::POST, "/api/users".into(), json!({"username": "alice"}), 409, "UsernameTaken"),
        (Method::POST, "/api/users".into(), json!({"username": "bad name!"}), 400, "InvalidField"),
        (Method::POST, "/api/users".into(), json!({"username": "eve", "password": "123"}), 400, "InvalidField"),
        (Method::POST, "/api/users".into(), json!({"username": "eve", "email": "nope"}), 400, "InvalidField"),
        (Method::PATCH, format!("{u}/is-suspended"), json!({"isSuspended": null}), 400, "InvalidField"),
        (Method::PATCH, format!("{u}/password"), json!({"password": "password"}), 400, "InvalidField"),
        (Method::PATCH, format!("{u}/password"), json!({}), 400, "InvalidField"),
        (Method::PATCH, "/api/users/999999/password".into(), json!({"password": PASSWORD}), 404, "NotFound"),
        (Method::POST, format!("{u}/roles"), json!({"roleIds": [machine]}), 400, "InvalidField"),
        (Method::PUT, format!("{u}/roles"), json!({"roleIds": [999999]}), 400, "InvalidField"),
        (Method::DELETE, format!("{u}/roles/{role}"), Value::Null, 404, "NotFound"),
        (Method::GET, "/api/users/999999/roles".into(), Value::Null, 404, "NotFound"),
        (Method::PUT, "/api/configs/jwt-customizer/id-token".into(), json!({"script": "x"}), 404, "NotFound"),
        (
            Method::PUT,
            "/api/configs/jwt-customizer/access-token".into(),
            json!({"script": "const x = ;"}),
            400,
            "InvalidField",
        ),
        (
            Method::PUT,
            "/api/configs/jwt-customizer/access-token".into(),
            json!({"script": "const f = 1;"}),
            400,
            "InvalidField",
        ),
        (Method::PUT, "/api/configs/jwt-customizer/access-token".into(), json!({}), 400, "InvalidField"),
        (
            Method::PUT,
            "/api/configs/jwt-customizer/access-token".into(),
            json!({"script": "while (true) {}"}),
            400,
            "InvalidField",
        ),
        (
            Method::PUT,
            "/api/configs/jwt-customizer/access-token".into(),
            json!({"script": GUIDE_SCRIPT, "environmentVariables": {"A": 1}}),
            400,
            "InvalidField",
        ),
        (
            Method::PATCH,
            "/api/configs/jwt-customizer/access-token".into(),
            json!({"blockIssuanceOnError": true}),
            404,
            "NotFound",
        ),
        (Method::DELETE, "/api/configs/jwt-customizer/access-token".into(), Value::Null, 404, "NotFound"),
        (Method::GET, "/api/configs/jwt-customizer/access-token".into(), Value::Null, 404, "NotFound"),
        (
            Method::POST,
            "/api/configs/jwt-customizer/test".into(),
            json!({"script": "const x = ;"}),
            422,
            "ScriptFailed",
        ),
        (
            Method::POST,
            "/api/configs/jwt-customizer/test".into(),
            json!({"script": GUIDE_SCRIPT, "context": []}),
            400,
            "InvalidField",
        ),
        (
            Method::POST,
            "/api/configs/jwt-customizer/test".into(),
            json!({"script": GUIDE_SCRIPT, "userId": 999999}),
            404,
            "NotFound",
        ),
        (Method::GET, "/api/nothing-here".into(), Value::Null, 404, "NotFound"),
    ];
    for (method, path, body, status, kind) in cases {
        let body = if body.is_null() { None } else { Some(body) };
        let (got, answer) = admin(&app, method.clone(), &path, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{method} {path} {body:?}: {answer}");
        assert_eq!(answer["errors"][0]["type"], kind, "{method} {path} {body:?}: {answer}");
        assert!(answer["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let client = reqwest::Client::new();
    let wrong_type = client.post(app.url("/api/resources")).bearer_auth(SECRET).body("{}").send().await.unwrap();
    assert_eq!(wrong_type.status(), 415);
    let broken = client
        .post(app.url("/api/resources"))
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let huge = client
        .post(app.url("/api/resources"))
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(300 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 400);
    assert_eq!(before, snapshot(&app).await, "bad input changed nothing");
}
on_both_backends!(admin_bad_input, super::bad_admin_input_is_refused_and_changes_nothing);

async fn the_admin_api_manages_everything(db: TestDb) {
    let app = spawn(db, &[]).await;
    let (resource, read, maintain) = hasura_resource(&app).await;
    let (status, list) = admin(&app, Method::GET, "/api/resources?page=1&page_size=1", None).await;
    assert_eq!((status, list.as_array().unwrap().len()), (StatusCode::OK, 1));
    let response =
        reqwest::Client::new().get(app.url("/api/users?page_size=1")).bearer_auth(SECRET).send().await.unwrap();
    assert!(response.headers().get("total-number").is_some());

    let (status, scope) = admin(
        &app,
        Method::PATCH,
        &format!("/api/resources/{resource}/scopes/{read}"),
        Some(json!({"description": "Read users"})),
    )
    .await;
    assert_eq!((status, &scope["description"]), (StatusCode::OK, &json!("Read users")));

    let (status, user) =
        admin(&app, Method::POST, "/api/users", Some(json!({"username": "erin", "email": "erin@example.com"}))).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["hasPassword"], false);
    let erin = user["id"].as_i64().unwrap();
    let (status, _) =
        admin(&app, Method::PATCH, &format!("/api/users/{erin}/password"), Some(json!({"password": PASSWORD}))).await;
    assert_eq!(status, 200);
    assert_eq!(login(&app, json!({"username": "erin", "password": PASSWORD})).await.0, 200);

    let (_, role) =
        admin(&app, Method::POST, "/api/roles", Some(json!({"name": "maintainers", "scopeIds": [read, maintain]})))
            .await;
    let role = role["id"].as_i64().unwrap();
    let (status, roles) =
        admin(&app, Method::PUT, &format!("/api/users/{erin}/roles"), Some(json!({"roleIds": [role]}))).await;
    assert_eq!((status, roles.as_array().unwrap().len()), (StatusCode::OK, 1));
    let (_, members) = admin(&app, Method::GET, &format!("/api/roles/{role}/users"), None).await;
    assert_eq!(members[0]["username"], "erin");
    let (_, scopes) = admin(&app, Method::GET, &format!("/api/roles/{role}/scopes"), None).await;
    assert_eq!(scopes.as_array().unwrap().len(), 2);
    assert_eq!(scopes[0]["resource"]["indicator"], HASURA_API);

    let test =
        json!({"script": GUIDE_SCRIPT, "environmentVariables": {"USER_DEFAULT_ROLE_NAMES": "user"}, "userId": erin});
    let (status, claims) = admin(&app, Method::POST, "/api/configs/jwt-customizer/test", Some(test)).await;
    assert_eq!(status, 200, "{claims}");
    assert_eq!(claims["https://hasura.io/jwt/claims"]["x-hasura-allowed-roles"], json!(["user", "maintainers"]));

    let (status, _) =
        admin(&app, Method::PATCH, &format!("/api/users/{erin}/is-suspended"), Some(json!({"isSuspended": true})))
            .await;
    assert_eq!(status, 200);
    assert_eq!(login(&app, json!({"username": "erin", "password": PASSWORD})).await.0, 401);

    // A role deleted here is gone from Django's tables too, memberships included.
    assert_eq!(admin(&app, Method::DELETE, &format!("/api/roles/{role}"), None).await.0, 204);
    let db = app.db.connect().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_user_groups").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_role_scope").await, 0);
    // And a group deleted by Django takes its gatehouse metadata along.
    let (_, role) = admin(&app, Method::POST, "/api/roles", Some(json!({"name": "temp", "scopeIds": [read]}))).await;
    execute(&db, &format!("DELETE FROM auth_group WHERE id = {}", role["id"])).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_role").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_role_scope").await, 0);

    assert_eq!(admin(&app, Method::DELETE, &format!("/api/resources/{resource}"), None).await.0, 204);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_scope").await, 0);
    let audited = count(&db, "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind LIKE 'admin.%'").await;
    assert!(audited >= 9, "{audited}");
}
on_both_backends!(admin_manages, super::the_admin_api_manages_everything);
