//! The Hasura surface over real HTTP: login, signup, the webhook in both modes, the JWKS.

mod common;

use common::{TestApp, TestDb, count, spawn_app, spawn_app_with, spawn_app_with_settings};
use gatehouse::tokens::hasura_v2::{self, HasuraJwtConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "a long passphrase";

async fn body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Checks a token with the Hasura v2 rules, against the JWKS the server publishes.
async fn hasura_accepts(app: &TestApp, token: &str) -> hasura_v2::Report {
    let jwks = reqwest::get(app.url("/webhook/jwks")).await.unwrap().bytes().await.unwrap();
    let jwks = hasura_v2::parse_jwks(&jwks).unwrap();
    let config = HasuraJwtConfig {
        claims_namespace: app.settings.claims.namespace.clone(),
        claims_format: app.settings.claims.format,
        issuer: Some(app.settings.claims.issuer.clone()),
        audience: app.settings.claims.audience.iter().cloned().collect(),
        allowed_skew_secs: 0.0,
    };
    hasura_v2::check_now(token, &jwks, &config)
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn login_returns_a_token_hasura_accepts(db: TestDb) {
    let app = spawn_app(db).await;
    let user = app.create_user("alice", PASSWORD).await;
    let accounts = app.accounts().await;
    accounts.create_group("editors").await.unwrap();
    accounts.create_group("admin").await.unwrap();
    accounts.set_membership("alice", "editors", true).await.unwrap();
    accounts.set_membership("alice", "admin", true).await.unwrap();

    let (status, json) =
        body(app.post_json("/webhook/login", &json!({"username": "alice", "password": PASSWORD})).await).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["id"], user.id);
    assert_eq!(json["username"], "alice");
    assert_eq!(json["expires_in"], 900);
    let token = json["token"].as_str().unwrap();
    let report = hasura_accepts(&app, token).await;
    assert!(report.accepted(), "{report}");

    let claims = claims_of(token);
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["iss"], "http://gatehouse.test");
    assert_eq!(claims["username"], "alice");
    let hasura = &claims["https://hasura.io/jwt/claims"];
    assert_eq!(hasura["x-hasura-allowed-roles"], json!(["user", "editors"]), "a group called admin grants nothing");
    assert_eq!(hasura["x-hasura-default-role"], "user");
    assert_eq!(hasura["x-hasura-user-id"], user.id.to_string());
    assert!(accounts.db().user_by_id(user.id).await.unwrap().unwrap().last_login.is_some());
}
on_both_backends!(login_returns_a_token_hasura_accepts, super::login_returns_a_token_hasura_accepts);

async fn every_failed_login_looks_the_same(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("bob", PASSWORD).await;
    app.create_user("inactive", PASSWORD).await;
    app.accounts().await.set_active("inactive", false).await.unwrap();
    let unusable =
        gatehouse::accounts::NewUser::new(gatehouse::django::validators::Username::parse("nopass").unwrap(), None);
    app.accounts().await.create_user(unusable).await.unwrap();

    let mut answers = Vec::new();
    for (username, password) in
        [("bob", "wrong password"), ("nobody", PASSWORD), ("inactive", PASSWORD), ("nopass", PASSWORD)]
    {
        let response = app.post_json("/webhook/login", &json!({"username": username, "password": password})).await;
        answers.push(body(response).await);
    }
    for (status, json) in &answers {
        assert_eq!(*status, 401);
        assert_eq!(json, &answers[0].1);
    }
    assert_eq!(answers[0].1["errors"][0]["type"], "AuthenticationFailed");
}
on_both_backends!(every_failed_login_looks_the_same, super::every_failed_login_looks_the_same);

async fn bad_login_input_is_a_clear_400_and_changes_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    app.create_user("carol", PASSWORD).await;
    let client = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "missing fields",
            client.post(app.url("/webhook/login")).json(&json!({})),
            StatusCode::BAD_REQUEST,
            "InvalidField",
        ),
        (
            "wrong types",
            client.post(app.url("/webhook/login")).json(&json!({"username": 1, "password": ["x"]})),
            StatusCode::BAD_REQUEST,
            "InvalidField",
        ),
        (
            "empty password",
            client.post(app.url("/webhook/login")).json(&json!({"username": "carol", "password": ""})),
            StatusCode::BAD_REQUEST,
            "InvalidField",
        ),
        (
            "not JSON",
            client.post(app.url("/webhook/login")).header("content-type", "application/json").body("{username:"),
            StatusCode::BAD_REQUEST,
            "InvalidBody",
        ),
        (
            "an array",
            client.post(app.url("/webhook/login")).json(&json!(["carol", PASSWORD])),
            StatusCode::BAD_REQUEST,
            "InvalidBody",
        ),
        (
            "oversized",
            client.post(app.url("/webhook/login")).json(&json!({"username": "x".repeat(20_000), "password": "x"})),
            StatusCode::BAD_REQUEST,
            "InvalidBody",
        ),
        (
            "a form",
            client.post(app.url("/webhook/login")).form(&[("username", "carol"), ("password", PASSWORD)]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
        ),
        ("GET", client.get(app.url("/webhook/login")), StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        (
            "PUT on signup",
            client.put(app.url("/webhook/signup")).json(&json!({})),
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
    ];
    for (name, request, status, kind) in cases {
        let (got, json) = body(request.send().await.unwrap()).await;
        assert_eq!(got, status, "{name}: {json}");
        assert_eq!(json["errors"][0]["type"], kind, "{name}: {json}");
        assert!(json["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    let (_, json) = body(client.post(app.url("/webhook/login")).json(&json!({})).send().await.unwrap()).await;
    let fields: Vec<&str> = json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["username", "password"], "every missing field is reported");
    let db = app.accounts().await;
    assert!(db.db().user_by_username("carol").await.unwrap().unwrap().last_login.is_none());
}
on_both_backends!(
    bad_login_input_is_a_clear_400_and_changes_nothing,
    super::bad_login_input_is_a_clear_400_and_changes_nothing
);

async fn signup_writes_a_django_user_and_logs_it_in(db: TestDb) {
    let app = spawn_app(db).await;
    let request = json!({"username": "dave", "password": PASSWORD, "email": "Dave@Example.COM", "first_name": "Dave"});
    let (status, json) = body(app.post_json("/webhook/signup", &request).await).await;
    assert_eq!(status, 200, "{json}");
    assert!(hasura_accepts(&app, json["token"].as_str().unwrap()).await.accepted());
    let stored = app.accounts().await.db().user_by_username("dave").await.unwrap().unwrap();
    assert_eq!(stored.id, json["id"].as_i64().unwrap() as i32);
    assert_eq!(stored.email, "Dave@example.com");
    assert_eq!(stored.first_name, "Dave");
    assert!(stored.is_active && !stored.is_staff && !stored.is_superuser);
    assert!(stored.last_login.is_none(), "Django leaves last_login NULL at signup");
    assert!(stored.password.starts_with("pbkdf2_sha256$"));

    let (status, json) = body(app.post_json("/webhook/signup", &request).await).await;
    assert_eq!(status, 409);
    assert_eq!(json["errors"][0]["type"], "UsernameTaken");

    let (status, json) = body(
        app.post_json("/webhook/signup", &json!({"username": "bad name", "password": "1234", "email": "nope"})).await,
    )
    .await;
    assert_eq!(status, 400);
    let codes: Vec<(&str, &str)> = json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("username", "invalid"),
            ("email", "invalid"),
            ("password", "password_too_short"),
            ("password", "password_too_common"),
            ("password", "password_entirely_numeric"),
        ]
    );
    assert_eq!(count(app.accounts().await.db(), "SELECT COUNT(*) FROM auth_user").await, 1);
}
on_both_backends!(signup_writes_a_django_user_and_logs_it_in, super::signup_writes_a_django_user_and_logs_it_in);

#[tokio::test]
async fn signup_can_be_turned_off() {
    let app = spawn_app_with(TestDb::sqlite(), &["--signup", "false"]).await;
    let (status, json) =
        body(app.post_json("/webhook/signup", &json!({"username": "erin", "password": PASSWORD})).await).await;
    assert_eq!(status, 403);
    assert_eq!(json["errors"][0]["type"], "SignupDisabled");
}

async fn webhook_get(app: &TestApp, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request =
        reqwest::Client::new().get(app.url("/webhook/webhook")).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    body(request.send().await.unwrap()).await
}

async fn webhook_post(app: &TestApp, payload: Value) -> (StatusCode, Value) {
    body(reqwest::Client::new().post(app.url("/webhook/webhook")).json(&payload).send().await.unwrap()).await
}

fn all_strings(json: &Value) -> bool {
    json.as_object().is_some_and(|o| o.values().all(Value::is_string))
}

async fn the_webhook_answers_hasura_in_both_modes(db: TestDb) {
    let app = spawn_app(db).await;
    let user = app.create_user("frank", PASSWORD).await;
    let accounts = app.accounts().await;
    accounts.create_group("editors").await.unwrap();
    accounts.set_membership("frank", "editors", true).await.unwrap();
    let token = app.login("frank", PASSWORD).await;
    let bearer = format!("Bearer {token}");

    let (status, json) = webhook_get(&app, &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{json}");
    assert!(all_strings(&json), "{json}");
    assert_eq!(json["X-Hasura-User-Id"], user.id.to_string());
    assert_eq!(json["X-Hasura-Role"], "user");
    let max_age: u64 = json["Cache-Control"].as_str().unwrap().strip_prefix("max-age=").unwrap().parse().unwrap();
    assert!((890..=900).contains(&max_age), "{max_age}");

    let (status, json) = webhook_get(&app, &[("authorization", &bearer), ("x-hasura-role", "editors")]).await;
    assert_eq!((status, json["X-Hasura-Role"].as_str()), (StatusCode::OK, Some("editors")));
    let (status, _) = webhook_get(&app, &[("authorization", &bearer), ("x-hasura-role", "admin")]).await;
    assert_eq!(status, 401, "a role the token does not allow");
    let (status, _) = webhook_get(&app, &[("authorization", &bearer), ("x-hasura-role", "Editors")]).await;
    assert_eq!(status, 401, "role names are case-sensitive");

    for request in [json!({"q": 1}), json!([{"query": "{a}"}, {"query": "{b}"}]), Value::Null] {
        let payload = json!({"headers": {"AUTHORIZATION": bearer, "X-Hasura-ROLE": "editors"}, "request": request});
        let (status, json) = webhook_post(&app, payload).await;
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["X-Hasura-Role"], "editors");
        assert_eq!(json["X-Hasura-User-Id"], user.id.to_string());
    }
    let (status, json) = webhook_post(&app, json!({"headers": {}})).await;
    assert_eq!((status, json), (StatusCode::OK, json!({"X-Hasura-Role": "anonymous"})));
    let (status, json) = webhook_get(&app, &[]).await;
    assert_eq!((status, json), (StatusCode::OK, json!({"X-Hasura-Role": "anonymous"})));
    let (status, _) = webhook_get(&app, &[("x-hasura-role", "user")]).await;
    assert_eq!(status, 401, "no token cannot ask for a user role");
}
on_both_backends!(the_webhook_answers_hasura_in_both_modes, super::the_webhook_answers_hasura_in_both_modes);

async fn the_webhook_refuses_every_bad_token_with_401_only(db: TestDb) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let app = spawn_app_with(db, &["--jwt-audience", "https://api.example"]).await;
    let user = app.create_user("grace", PASSWORD).await;
    let good = app.login("grace", PASSWORD).await;
    let keys = app.keys();
    let now = gatehouse::tokens::unix_now();
    let claims = claims_of(&good);
    let signed = |change: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        change(&mut c);
        keys.sign(&c).unwrap()
    };
    let other_key = gatehouse::tokens::KeyRing::from_private_pem(
        &gatehouse::tokens::keys::generate_key_pair(gatehouse::tokens::SigningAlg::Rs256).unwrap().0,
        Some(keys.kid().to_owned()),
        "test",
    )
    .unwrap();
    let public_pem = {
        let jwk = &keys.verifying_keys()[0].jwk;
        serde_json::to_string(jwk).unwrap()
    };
    let hmac_forgery = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap()
    };
    let alg_none = {
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))
    };
    let cases = [
        ("malformed", "not.a.jwt".to_owned()),
        ("garbage", "x".repeat(5000)),
        ("expired", signed(&|c| c["exp"] = json!(now - 1))),
        ("not yet valid", signed(&|c| c["nbf"] = json!(now + 600))),
        ("wrong issuer", signed(&|c| c["iss"] = json!("https://evil.example"))),
        ("wrong audience", signed(&|c| c["aud"] = json!("https://other.example"))),
        (
            "no audience",
            signed(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        ("other key, same kid", other_key.sign(&claims).unwrap()),
        ("alg none", alg_none),
        ("HMAC forged with the public key", hmac_forgery),
        (
            "numeric session variable",
            signed(&|c| c["https://hasura.io/jwt/claims"]["x-hasura-user-id"] = json!(user.id)),
        ),
        (
            "default role not allowed",
            signed(&|c| c["https://hasura.io/jwt/claims"]["x-hasura-default-role"] = json!("boss")),
        ),
        ("tampered", format!("{}x", &good[..good.len() - 1])),
    ];
    assert_eq!(webhook_get(&app, &[("authorization", &format!("Bearer {good}"))]).await.0, 200);
    for (name, token) in cases {
        let (status, json) = webhook_get(&app, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(status, 401, "{name}: {json}");
        let (status, _) = webhook_post(&app, json!({"headers": {"Authorization": format!("Bearer {token}")}})).await;
        assert_eq!(status, 401, "{name} (POST)");
    }
    for authorization in ["Basic Z3JhY2U6eA==", "Bearer", "Bearer a b", &good] {
        assert_eq!(webhook_get(&app, &[("authorization", authorization)]).await.0, 401, "{authorization}");
    }
    let client = reqwest::Client::new();
    for raw in ["{", "[]", "\"headers\"", "{\"headers\": 5}"] {
        let response = client
            .post(app.url("/webhook/webhook"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{raw}");
    }
    let huge = format!("{{\"headers\":{{}},\"request\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let response = client
        .post(app.url("/webhook/webhook"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
on_both_backends!(
    the_webhook_refuses_every_bad_token_with_401_only,
    super::the_webhook_refuses_every_bad_token_with_401_only
);

#[tokio::test]
async fn anonymous_access_can_be_turned_off() {
    let app = spawn_app_with(TestDb::sqlite(), &["--allow-anonymous", "false", "--anonymous-role", "guest"]).await;
    assert_eq!(webhook_get(&app, &[]).await.0, 401);
    let app = spawn_app_with(TestDb::sqlite(), &["--anonymous-role", "guest"]).await;
    assert_eq!(webhook_get(&app, &[]).await.1, json!({"X-Hasura-Role": "guest"}));
}

#[tokio::test]
async fn the_jwks_is_what_hasura_needs() {
    use base64::Engine;
    let app = spawn_app(TestDb::sqlite()).await;
    app.create_user("heidi", PASSWORD).await;
    let token = app.login("heidi", PASSWORD).await;
    for path in ["/webhook/jwks", "/.well-known/jwks.json"] {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let jwks: Value = response.json().await.unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
        assert_ne!(n[0], 0, "minimal big-endian modulus");
        assert_eq!(n.len(), 256);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), key["kid"].as_str(), "the token names the published key");
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }
}

#[tokio::test]
async fn es256_and_eddsa_tokens_verify_too() {
    for alg in ["ES256", "EdDSA"] {
        let app = spawn_app_with(TestDb::sqlite(), &["--jwt-alg", alg]).await;
        app.create_user("ivan", PASSWORD).await;
        let token = app.login("ivan", PASSWORD).await;
        assert_eq!(format!("{:?}", jsonwebtoken::decode_header(&token).unwrap().alg), alg);
        let report = hasura_accepts(&app, &token).await;
        assert!(report.accepted(), "{alg}: {report}");
        assert_eq!(webhook_get(&app, &[("authorization", &format!("Bearer {token}"))]).await.0, 200, "{alg}");
    }
}

#[tokio::test]
async fn the_signing_key_is_generated_once_and_never_replaced() {
    let db = TestDb::sqlite();
    let settings = db.settings(&[]);
    let conn = db.connect().await;
    let first = gatehouse::startup::tokens(&settings, &conn).await.unwrap();
    let path = settings.keys.data_dir.join("signing-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = gatehouse::startup::tokens(&settings, &conn).await.unwrap();
    assert_eq!(first.keys().kid(), again.keys().kid(), "a restart keeps the key");
    std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n").unwrap();
    let err = gatehouse::startup::tokens(&settings, &conn).await.unwrap_err().to_string();
    assert!(err.contains("signing-key.pem"), "{err}");
    assert!(std::fs::read_to_string(&path).unwrap().contains("garbage"), "a broken key is reported, not replaced");
}

#[tokio::test]
async fn stringified_claims_and_the_v3_namespace_work() {
    let app = spawn_app_with(
        TestDb::sqlite(),
        &["--claims-format", "stringified_json", "--claims-namespace", "claims.jwt.hasura.io"],
    )
    .await;
    app.create_user("judy", PASSWORD).await;
    let token = app.login("judy", PASSWORD).await;
    assert!(claims_of(&token)["claims.jwt.hasura.io"].is_string());
    assert!(hasura_accepts(&app, &token).await.accepted());
    assert_eq!(webhook_get(&app, &[("authorization", &format!("Bearer {token}"))]).await.0, 200);
}

/// Rotation: the next key is published (JWKS) and accepted (webhook) before it signs anything.
#[tokio::test]
async fn extra_public_keys_are_published_and_accepted() {
    use gatehouse::tokens::{KeyRing, SigningAlg, keys};
    gatehouse::tokens::install_crypto_provider();
    let (next_private, next_public) = keys::generate_key_pair(SigningAlg::Es256).unwrap();
    let db = TestDb::sqlite();
    let mut settings = db.settings(&[]);
    settings.keys.extra_public_pems = Some(next_public.replace('\n', "\\n"));
    let app = spawn_app_with_settings(db, settings).await;
    app.create_user("mallory", PASSWORD).await;
    let current = app.login("mallory", PASSWORD).await;

    let jwks: Value = reqwest::get(app.url("/webhook/jwks")).await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0]["alg"].as_str(), keys[1]["alg"].as_str()), (Some("RS256"), Some("ES256")));

    let next = KeyRing::from_private_pem(&next_private, None, "next key").unwrap();
    assert_eq!(keys[1]["kid"].as_str(), Some(next.kid()));
    let signed_by_next = next.sign(&claims_of(&current)).unwrap();
    for token in [&current, &signed_by_next] {
        assert_eq!(webhook_get(&app, &[("authorization", &format!("Bearer {token}"))]).await.0, 200);
        assert!(hasura_accepts(&app, token).await.accepted());
    }
}
