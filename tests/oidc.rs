//! The OIDC provider at `/oidc`, driven by real clients: the `@logto/node` SDK as Logto's Hasura
//! guide configures it, `openid-client` (an independent standard library), and headless
//! Chromium on the hosted sign-in page; then every endpoint's refusals, over raw HTTP.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{ADMIN_SECRET, TestApp, TestDb, count, execute, spawn_app_at_own_url};
use gatehouse::tokens::hasura_v2::{self, HasuraJwtConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long passphrase";
const HASURA_API: &str = "https://example.hasura.app/api";
const REDIRECT: &str = "http://app.test/callback";
const SIGNED_OUT: &str = "http://app.test/signed-out";
const GUIDE_SCRIPT: &str = include_str!("../examples/custom-claims/logto-hasura-guide.js");

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, app.url(path)).bearer_auth(ADMIN_SECRET);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A client registered for the tests: its id and, for confidential ones, its secret.
struct Client {
    id: String,
    secret: String,
}

async fn application(app: &TestApp, body: Value) -> Client {
    let (status, created) = admin(app, Method::POST, "/api/applications", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    Client {
        id: created["id"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap_or("").to_owned(),
    }
}

/// Logto's Hasura guide on Django groups: the resource with `read:user` and `maintain:user`,
/// roles `user:reader` and `user:maintainer`, alice holding both and bob only the reader role,
/// the guide's script; plus a web, a SPA, a machine and a third-party application.
struct World {
    app: TestApp,
    web: Client,
    spa: Client,
    machine: Client,
    third_party: Client,
    alice_id: i32,
}

async fn world(db: TestDb, flags: &[&str]) -> World {
    let app = spawn_app_at_own_url(db, flags, true).await;
    let (status, resource) =
        admin(&app, Method::POST, "/api/resources", Some(json!({"name": "Hasura", "indicator": HASURA_API}))).await;
    assert_eq!(status, 201, "{resource}");
    let scopes = format!("/api/resources/{}/scopes", resource["id"]);
    let (_, read) = admin(&app, Method::POST, &scopes, Some(json!({"name": "read:user"}))).await;
    let (_, maintain) = admin(&app, Method::POST, &scopes, Some(json!({"name": "maintain:user"}))).await;
    let role = |name: &'static str, scope: Value, kind: &'static str| {
        let app = &app;
        async move {
            let body = json!({"name": name, "type": kind, "scopeIds": [scope["id"]]});
            let (status, role) = admin(app, Method::POST, "/api/roles", Some(body)).await;
            assert_eq!(status, 201, "{role}");
            role["id"].as_i64().unwrap()
        }
    };
    let reader = role("user:reader", read.clone(), "user").await;
    let maintainer = role("user:maintainer", maintain, "user").await;
    let robots = role("robots", read, "machine").await;
    let alice = app.create_user("alice", PASSWORD).await;
    let bob = app.create_user("bob", PASSWORD).await;
    let db = app.db.connect().await;
    for (user, group) in [(alice.id, reader), (alice.id, maintainer), (bob.id, reader)] {
        execute(&db, &format!("INSERT INTO auth_user_groups (user_id, group_id) VALUES ({user}, {group})")).await;
    }
    let config = json!({"script": GUIDE_SCRIPT, "environmentVariables": {"USER_DEFAULT_ROLE_NAMES": "user"}});
    let (status, body) = admin(&app, Method::PUT, "/api/configs/jwt-customizer/access-token", Some(config)).await;
    assert_eq!(status, 200, "{body}");
    let uris = json!({"redirectUris": [REDIRECT], "postLogoutRedirectUris": [SIGNED_OUT]});
    let with = |name: &str, kind: &str, third_party: bool| {
        let mut body = uris.clone();
        body["name"] = name.into();
        body["type"] = kind.into();
        body["isThirdParty"] = third_party.into();
        body
    };
    let web = application(&app, with("Portal", "web", false)).await;
    let spa = application(&app, with("Dashboard", "spa", false)).await;
    let third_party = application(&app, with("<b>Partner</b>", "web", true)).await;
    let machine = application(&app, json!({"name": "Cron", "type": "machine"})).await;
    let (status, body) = admin(
        &app,
        Method::POST,
        &format!("/api/applications/{}/roles", machine.id),
        Some(json!({"roleIds": [robots]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    World { app, web, spa, machine, third_party, alice_id: alice.id }
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let part = |i: usize| {
        let segment = token.split('.').nth(i).unwrap();
        serde_json::from_slice::<Value>(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).unwrap())
            .unwrap()
    };
    let mut claims = part(1);
    claims["__header"] = part(0);
    claims
}

/// Hasura v2's rules, with the provider's JWKS and `audience` = the resource.
async fn hasura_accepts(app: &TestApp, token: &str) -> hasura_v2::Report {
    let jwks = reqwest::get(app.url("/oidc/jwks")).await.unwrap().bytes().await.unwrap();
    let config = HasuraJwtConfig {
        claims_namespace: app.settings.claims.namespace.clone(),
        claims_format: app.settings.claims.format,
        issuer: Some(format!("{}/oidc", app.settings.public_url)),
        audience: vec![HASURA_API.to_owned()],
        allowed_skew_secs: 0.0,
    };
    hasura_v2::check_now(token, &hasura_v2::parse_jwks(&jwks).unwrap(), &config)
}

async fn webhook(app: &TestApp, token: &str, role: &str) -> StatusCode {
    let request = reqwest::Client::new().get(app.url("/webhook/webhook")).bearer_auth(token);
    request.header("X-Hasura-Role", role).send().await.unwrap().status()
}

// ---- real client libraries ------------------------------------------------------------------

/// The Node clients' directory, once `setup.sh` has installed them; `None` (skip) otherwise,
/// except under `CI=true`, where they must be there.
fn node_clients() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-clients");
    if dir.join("node_modules").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "tests/oidc-clients is not set up: under CI=true run tests/oidc-clients/setup.sh first"
    );
    eprintln!("notice: tests/oidc-clients/setup.sh has not run; skipping a real-client test");
    None
}

/// Runs a client script with `env` and returns the JSON line it prints.
async fn run_client(dir: PathBuf, script: &'static str, env: Vec<(&'static str, String)>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node").arg(script).current_dir(&dir).envs(env).output().expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stderr}\n{stdout}");
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{script}: {e}: {stdout}"))
}

fn base_env(world: &World) -> Vec<(&'static str, String)> {
    vec![
        ("GATEHOUSE_URL", world.app.settings.public_url.clone()),
        ("REDIRECT_URI", REDIRECT.to_owned()),
        ("POST_LOGOUT_REDIRECT_URI", SIGNED_OUT.to_owned()),
        ("USERNAME", "alice".to_owned()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("RESOURCE", HASURA_API.to_owned()),
        ("SCOPES", "read:user maintain:user".to_owned()),
    ]
}

async fn the_logto_sdk_signs_in_gets_a_hasura_token_and_signs_out(db: TestDb) {
    let Some(dir) = node_clients() else { return };
    let world = world(db, &[]).await;
    let mut env = base_env(&world);
    env.extend([("APP_ID", world.web.id.clone()), ("APP_SECRET", world.web.secret.clone())]);
    let result = run_client(dir, "logto.mjs", env).await;

    let token = result["accessToken"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["__header"]["typ"], "at+jwt");
    assert_eq!(claims["aud"], HASURA_API);
    assert_eq!(claims["client_id"], world.web.id);
    assert_eq!(claims["iss"], format!("{}/oidc", world.app.settings.public_url));
    let mut scopes: Vec<&str> = claims["scope"].as_str().unwrap().split(' ').collect();
    scopes.sort();
    assert_eq!(scopes, ["maintain:user", "read:user"]);
    let hasura = &claims["https://hasura.io/jwt/claims"];
    assert_eq!(hasura["x-hasura-user-id"], world.alice_id.to_string());
    assert_eq!(hasura["x-hasura-allowed-roles"], json!(["user", "user:maintainer", "user:reader"]));
    let report = hasura_accepts(&world.app, token).await;
    assert!(report.accepted(), "{report}");
    assert_eq!(result["accessTokenClaims"]["aud"], HASURA_API);
    assert_eq!(result["userInfo"]["sub"], world.alice_id.to_string());
    assert_eq!(result["userInfo"]["username"], "alice");
    assert_eq!(result["idTokenClaims"]["aud"], world.web.id);
    assert!(result["signOutLocation"].as_str().unwrap().starts_with(SIGNED_OUT), "{result}");
    assert_eq!(result["refreshAfterSignOut"]["error"], "invalid_grant", "{result}");
    // Signed out: the grant is over, so Hasura's webhook refuses the access token at once.
    assert_eq!(webhook(&world.app, token, "user:maintainer").await, 401);
}
on_both_backends!(logto_sdk, super::the_logto_sdk_signs_in_gets_a_hasura_token_and_signs_out);

async fn openid_client_does_code_pkce_refresh_and_client_credentials(db: TestDb) {
    let Some(dir) = node_clients() else { return };
    let world = world(db, &[]).await;
    let mut env = base_env(&world);
    env.extend([
        ("CLIENT_ID", world.web.id.clone()),
        ("CLIENT_SECRET", world.web.secret.clone()),
        ("MACHINE_ID", world.machine.id.clone()),
        ("MACHINE_SECRET", world.machine.secret.clone()),
        ("MACHINE_SCOPES", "read:user maintain:user".to_owned()),
    ]);
    let result = run_client(dir, "openid-client.mjs", env).await;

    assert_eq!(result["idTokenClaims"]["sub"], world.alice_id.to_string());
    assert_eq!(result["idTokenClaims"]["email_verified"], false);
    assert_eq!(result["userInfo"]["roles"], json!(["user:maintainer", "user:reader"]));
    assert_eq!(result["codeGrant"]["hasRefreshToken"], true);
    assert_eq!(result["codeGrant"]["accessTokenIsOpaque"], true);
    let refreshed = result["refreshed"]["accessToken"].as_str().unwrap();
    assert!(hasura_accepts(&world.app, refreshed).await.accepted());
    // The script revoked the refresh token last: that ended the grant, and its access tokens.
    assert_eq!(webhook(&world.app, refreshed, "user:maintainer").await, 401);
    assert_eq!(result["introspection"]["active"], true);
    assert_eq!(result["introspection"]["aud"], HASURA_API);
    let machine = claims_of(result["clientCredentials"]["accessToken"].as_str().unwrap());
    assert_eq!(machine["sub"], world.machine.id);
    assert_eq!(machine["aud"], HASURA_API);
    assert_eq!(machine["scope"], "read:user", "only the machine role's scope, not maintain:user");
    assert_eq!(result["afterRevocation"]["error"], "invalid_grant");
}
on_both_backends!(openid_client, super::openid_client_does_code_pkce_refresh_and_client_credentials);

async fn chromium_signs_in_on_the_hosted_page(db: TestDb) {
    let Some(dir) = node_clients() else { return };
    let world = world(db, &[]).await;
    let mut env = base_env(&world);
    env.push(("CLIENT_ID", world.spa.id.clone()));
    if let Ok(path) = std::env::var("GATEHOUSE_SCREENSHOT") {
        env.push(("SCREENSHOT", path));
    }
    let result = run_client(dir, "browser.mjs", env).await;
    assert_eq!(result["errorShown"], true, "{result}");
    assert_eq!(result["fitsPhoneWidth"], true, "{result}");
    assert!(result["landedOn"].as_str().unwrap().starts_with(REDIRECT), "{result}");
    assert_eq!(result["iss"], format!("{}/oidc", world.app.settings.public_url));
    assert!(result["tokenResponseKeys"].as_array().unwrap().contains(&json!("id_token")), "{result}");
}
on_both_backends!(chromium, super::chromium_signs_in_on_the_hosted_page);

// ---- the protocol over raw HTTP -------------------------------------------------------------

/// A PKCE verifier and its S256 challenge, computed with Python's hashlib and base64.
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

/// A browser without JavaScript: follows nothing by itself, keeps cookies.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Page {
    fn query(&self, name: &str) -> Option<String> {
        let location = url::Url::parse(self.location.as_deref()?).ok()?;
        location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    /// The first form's action and hidden fields, as a browser would read them.
    fn form(&self) -> (String, Vec<(String, String)>) {
        let decode = |text: &str| {
            text.replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        let action = regex::Regex::new(r#"<form method="post" action="([^"]*)""#).unwrap();
        let action = decode(&action.captures(&self.body).expect("a form")[1]);
        let hidden = regex::Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)">"#).unwrap();
        let fields = hidden.captures_iter(&self.body).map(|c| (c[1].to_owned(), decode(&c[2]))).collect();
        (action, fields)
    }
}

impl Browser {
    fn new() -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, cookies: HashMap::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let response = request.header("Cookie", jar.join("; ")).send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.to_str().unwrap().contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (location, retry_after) = (header("location"), header("retry-after"));
        Page { status, location, retry_after, body: response.text().await.unwrap() }
    }

    async fn get(&mut self, url: &str) -> Page {
        let request = self.http.get(url);
        self.send(request).await
    }

    /// Submits the page's first form with `fields` filled in.
    async fn submit(&mut self, app: &TestApp, page: &Page, fields: &[(&str, &str)]) -> Page {
        let (action, mut form) = page.form();
        form.extend(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let request = self.http.post(app.url(&action)).form(&form);
        self.send(request).await
    }
}

fn auth_url(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid offline_access profile email roles read:user maintain:user"),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("prompt", "consent"),
        ("resource", HASURA_API),
    ];
    for (name, value) in extra {
        params.retain(|(k, _)| k != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    app.url(&format!("/oidc/auth?{query}"))
}

/// Signs alice in on the hosted page (unless the browser is signed in) and returns the code.
async fn sign_in(browser: &mut Browser, app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let page = browser.get(&auth_url(app, client_id, extra)).await;
    if page.status == 303 {
        return page.query("code").expect("signed in already: a code");
    }
    assert_eq!(page.status, 200, "{}", page.body);
    let done = browser.submit(app, &page, &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location.as_deref().unwrap().starts_with(REDIRECT));
    done.query("code").expect("a code")
}

async fn token(app: &TestApp, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(app.url("/oidc/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn introspect(app: &TestApp, client: Option<(&str, &str)>, form: &[(&str, String)]) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(app.url("/oidc/token/introspection")).form(form);
    if let Some((id, secret)) = client {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
}

async fn revoke(app: &TestApp, client: Option<(&str, &str)>, token: String) -> StatusCode {
    let mut request = reqwest::Client::new().post(app.url("/oidc/token/revocation")).form(&[("token", token)]);
    if let Some((id, secret)) = client {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap().status()
}

fn exchange<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT), ("code_verifier", verifier)]
}

async fn the_discovery_document_names_every_endpoint(db: TestDb) {
    let world = world(db, &[]).await;
    let response = reqwest::get(world.app.url("/oidc/.well-known/openid-configuration")).await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    let issuer = format!("{}/oidc", world.app.settings.public_url);
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert!(doc["scopes_supported"].as_array().unwrap().contains(&json!("maintain:user")));
    let oidc_jwks: Value = reqwest::get(format!("{issuer}/jwks")).await.unwrap().json().await.unwrap();
    let hook_jwks: Value = reqwest::get(world.app.url("/webhook/jwks")).await.unwrap().json().await.unwrap();
    assert_eq!(oidc_jwks, hook_jwks);
}
on_both_backends!(discovery, super::the_discovery_document_names_every_endpoint);

async fn authorization_errors_go_to_a_page_or_back_to_the_client(db: TestDb) {
    let world = world(db, &[]).await;
    let (app, spa) = (&world.app, world.spa.id.as_str());
    let mut browser = Browser::new();
    let issuer = format!("{}/oidc", app.settings.public_url);

    // Nothing trustworthy to redirect to: an error page, never a redirect.
    for url in [auth_url(app, "nope", &[]), auth_url(app, spa, &[("redirect_uri", "http://evil.test/callback")])] {
        let page = browser.get(&url).await;
        assert_eq!(page.status, 400, "{url}");
        assert!(page.location.is_none());
        assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    }
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("resource", "https://unknown.example/api")], "invalid_target"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("prompt", "none")], "login_required"),
        (&[("prompt", "none login")], "invalid_request"),
        (&[("scope", "openid \"bad")], "invalid_scope"),
    ];
    for (extra, error) in cases {
        let page = browser.get(&auth_url(app, spa, extra)).await;
        assert_eq!(page.status, 303, "{extra:?}: {}", page.body);
        assert_eq!(page.query("error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(page.query("state").as_deref(), Some("xyz"));
        assert_eq!(page.query("iss").as_deref(), Some(issuer.as_str()));
    }
    let repeated = format!("{}&state=again", auth_url(app, spa, &[]));
    assert_eq!(browser.get(&repeated).await.query("error").as_deref(), Some("invalid_request"));
    let machine = browser.get(&auth_url(app, &world.machine.id, &[])).await;
    assert_eq!(machine.status, 400, "a machine application has no redirect URI");
}
on_both_backends!(authorization_errors, super::authorization_errors_go_to_a_page_or_back_to_the_client);

async fn the_hosted_page_signs_in_once_for_every_application(db: TestDb) {
    let world = world(db, &[]).await;
    let app = &world.app;
    let mut browser = Browser::new();
    let page = browser.get(&auth_url(app, &world.third_party.id, &[])).await;
    assert!(page.body.contains("&lt;b&gt;Partner&lt;/b&gt;"), "the application's name is escaped");
    assert!(page.body.contains("<label for=\"username\">Username</label>"));
    let wrong = browser.submit(app, &page, &[("username", "alice"), ("password", "wrong")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("role=\"alert\">Please enter a correct username and password"), "{}", wrong.body);
    assert!(!browser.cookies.contains_key("gatehouse_sso"));
    // A form posted from elsewhere has no CSRF cookie to match.
    let mut forger = Browser::new();
    let forged = forger.submit(app, &page, &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, 403);
    assert!(!forger.cookies.contains_key("gatehouse_sso"));

    // A third-party application asks for consent; denying it goes back with access_denied.
    let consent = browser.submit(app, &wrong, &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Allow &lt;b&gt;Partner&lt;/b&gt;?"));
    let denied = browser.submit(app, &consent, &[("decision", "deny")]).await;
    assert_eq!(denied.query("error").as_deref(), Some("access_denied"));
    let page = browser.get(&auth_url(app, &world.third_party.id, &[("prompt", "none")])).await;
    assert_eq!(page.query("error").as_deref(), Some("consent_required"));

    // Signed in: another application gets its code without the form (SSO)…
    let page = browser.get(&auth_url(app, &world.spa.id, &[])).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.query("code").is_some());
    let page = browser.get(&auth_url(app, &world.spa.id, &[("prompt", "none")])).await;
    assert!(page.query("code").is_some());
    // …unless it asks for a fresh login.
    let page = browser.get(&auth_url(app, &world.spa.id, &[("prompt", "login")])).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"password\""));
}
on_both_backends!(hosted_page, super::the_hosted_page_signs_in_once_for_every_application);

async fn the_token_endpoint_refuses_what_it_must(db: TestDb) {
    let world = world(db, &[]).await;
    let app = &world.app;
    let web = Some((world.web.id.as_str(), world.web.secret.as_str()));
    let mut browser = Browser::new();
    let code = sign_in(&mut browser, app, &world.web.id, &[]).await;

    let mut wrong_redirect = exchange(&code, VERIFIER);
    wrong_redirect[2] = ("redirect_uri", "http://app.test/other");
    let mut no_verifier = exchange(&code, VERIFIER);
    no_verifier.pop();
    let wrong_verifier = exchange(&code, "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXj");
    for form in [wrong_redirect, no_verifier, wrong_verifier] {
        let (status, body) = token(app, web, &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{form:?}");
    }
    let (status, body) = token(app, Some((&world.web.id, "not-the-secret")), &exchange(&code, VERIFIER)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, _) = token(app, Some((&world.spa.id, "")), &exchange(&code, VERIFIER)).await;
    assert_eq!(status, 401, "a public client has no secret to send");
    let mut spa = exchange(&code, VERIFIER);
    spa.push(("client_id", &world.spa.id));
    assert_eq!(token(app, None, &spa).await.1["error"], "invalid_grant", "a code is its client's alone");

    let (status, first) = token(app, web, &exchange(&code, VERIFIER)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    let id_token = claims_of(first["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], world.web.id);
    assert!(id_token["auth_time"].is_u64() && id_token["sid"].is_string() && id_token["at_hash"].is_string());
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let refresh = |resource: &'static str, scope: &'static str| {
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("resource", resource),
            ("scope", scope),
        ]
    };
    assert_eq!(token(app, web, &refresh("https://unknown.example/api", "openid")).await.1["error"], "invalid_target");
    let escalation = refresh(HASURA_API, "openid read:user admin:all");
    assert_eq!(token(app, web, &escalation).await.1["error"], "invalid_scope");
    let (status, narrowed) = token(app, web, &refresh(HASURA_API, "openid read:user")).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(claims_of(narrowed["access_token"].as_str().unwrap())["scope"], "read:user");
    let hasura_token = narrowed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(webhook(app, &hasura_token, "user:maintainer").await, 200);
    // The ID token is no access token: no Hasura claims, so the webhook refuses it.
    assert_eq!(webhook(app, first["id_token"].as_str().unwrap(), "user").await, 401);

    // The code again: refused, and the grant made from it is revoked.
    let (status, replay) = token(app, web, &exchange(&code, VERIFIER)).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(webhook(app, &hasura_token, "user:maintainer").await, 401);
    let next = narrowed["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", next)];
    assert_eq!(token(app, web, &form).await.1["error"], "invalid_grant");
    let db = app.db.connect().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_audit_event WHERE kind = 'oidc_code_replay'").await, 1);

    // Grants a client may not use, and malformed requests.
    let credentials = [("grant_type", "client_credentials"), ("resource", HASURA_API)];
    assert_eq!(token(app, web, &credentials).await.1["error"], "unauthorized_client");
    let public = [("grant_type", "client_credentials"), ("client_id", world.spa.id.as_str())];
    assert_eq!(token(app, None, &public).await.1["error"], "unauthorized_client");
    let machine = Some((world.machine.id.as_str(), world.machine.secret.as_str()));
    let as_machine = [("grant_type", "authorization_code"), ("code", "x")];
    assert_eq!(token(app, machine, &as_machine).await.1["error"], "unauthorized_client");
    let unknown = [("grant_type", "client_credentials"), ("resource", "https://unknown.example/api")];
    assert_eq!(token(app, machine, &unknown).await.1["error"], "invalid_target");
    assert_eq!(token(app, machine, &[("grant_type", "client_credentials")]).await.1["error"], "invalid_target");
    let (status, body) = token(app, Some((&world.machine.id, "wrong")), &credentials).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, body) = token(app, machine, &[("grant_type", "client_credentials"), ("resource", HASURA_API)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("scope").is_none(), "no scope asked, none given (Logto's rule)");
    assert_eq!(token(app, web, &[("grant_type", "password")]).await.1["error"], "unsupported_grant_type");
    let twice = [("grant_type", "refresh_token"), ("grant_type", "refresh_token")];
    assert_eq!(token(app, web, &twice).await.1["error"], "invalid_request");
    let json = reqwest::Client::new().post(app.url("/oidc/token")).json(&json!({"grant_type": "refresh_token"}));
    let response = json.basic_auth(&world.web.id, Some(&world.web.secret)).send().await.unwrap();
    assert_eq!(response.status(), 400);

    // offline_access needs prompt=consent: without it there is no refresh token.
    let code = sign_in(&mut Browser::new(), app, &world.web.id, &[("prompt", "")]).await;
    let (status, body) = token(app, web, &exchange(&code, VERIFIER)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
}
on_both_backends!(token_endpoint, super::the_token_endpoint_refuses_what_it_must);

async fn userinfo_introspection_revocation_and_sign_out(db: TestDb) {
    let world = world(db, &[]).await;
    let app = &world.app;
    let web = Some((world.web.id.as_str(), world.web.secret.as_str()));
    let mut browser = Browser::new();
    let code = sign_in(&mut browser, app, &world.web.id, &[]).await;
    let (_, tokens) = token(app, web, &exchange(&code, VERIFIER)).await;
    let opaque = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let me = |bearer: String| async move {
        let response = reqwest::Client::new().get(app.url("/oidc/me")).bearer_auth(bearer).send().await.unwrap();
        let status = response.status();
        let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        (status, challenge, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, _, info) = me(opaque.to_owned()).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info,
        json!({"sub": world.alice_id.to_string(), "name": null, "username": "alice", "picture": null,
        "email": null, "email_verified": false, "roles": ["user:maintainer", "user:reader"]})
    );
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("resource", HASURA_API)];
    let (_, refreshed) = token(app, web, &form).await;
    let jwt = refreshed["access_token"].as_str().unwrap();
    let refresh_token = refreshed["refresh_token"].as_str().unwrap();
    for bearer in [jwt, "garbage"] {
        let (status, challenge, body) = me(bearer.to_owned()).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
        assert!(challenge.unwrap().starts_with("Bearer error=\"invalid_token\""));
    }

    let (status, body) = introspect(app, web, &[("token", jwt.to_owned())]).await;
    assert_eq!((status, &body["active"], &body["aud"]), (StatusCode::OK, &json!(true), &json!(HASURA_API)));
    let (_, body) = introspect(app, web, &[("token", refresh_token.to_owned())]).await;
    assert_eq!((&body["active"], &body["token_type"]), (&json!(true), &json!("refresh_token")));
    let partner = Some((world.third_party.id.as_str(), world.third_party.secret.as_str()));
    let (_, body) = introspect(app, partner, &[("token", refresh_token.to_owned())]).await;
    assert_eq!(body, json!({"active": false}), "another client's refresh token");
    assert_eq!(introspect(app, web, &[("token", "garbage".into())]).await.1, json!({"active": false}));
    let spa = [("token", jwt.to_owned()), ("client_id", world.spa.id.clone())];
    assert_eq!(introspect(app, None, &spa).await.0, 401, "introspection needs a confidential client");
    assert_eq!(introspect(app, web, &[]).await.1["error"], "invalid_request");

    // Revocation by another client changes nothing; by the owner it ends the grant.
    assert_eq!(revoke(app, partner, refresh_token.to_owned()).await, 200);
    assert_eq!(introspect(app, web, &[("token", refresh_token.to_owned())]).await.1["active"], true);
    assert_eq!(revoke(app, web, "unknown".to_owned()).await, 200);
    assert_eq!(revoke(app, Some((&world.web.id, "wrong")), refresh_token.to_owned()).await, 401);
    assert_eq!(revoke(app, web, refresh_token.to_owned()).await, 200);
    assert_eq!(introspect(app, web, &[("token", refresh_token.to_owned())]).await.1["active"], false);
    assert_eq!(webhook(app, jwt, "user").await, 401);
    assert_eq!(me(opaque.to_owned()).await.0, 401, "the grant's userinfo token died with it");

    // Sign-out: only to registered URIs, confirmed by a form, and it ends the SSO session.
    let code = sign_in(&mut browser, app, &world.web.id, &[]).await;
    let (_, tokens) = token(app, web, &exchange(&code, VERIFIER)).await;
    let end = |uri: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", world.web.id.as_str()), ("post_logout_redirect_uri", uri), ("state", "s1")])
            .finish();
        app.url(&format!("/oidc/session/end?{query}"))
    };
    let refused = browser.get(&end("http://evil.test/")).await;
    assert_eq!((refused.status, refused.location.is_none()), (StatusCode::BAD_REQUEST, true));
    let confirm = browser.get(&end(SIGNED_OUT)).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains(">Sign out</button>"));
    let done = browser.submit(app, &confirm, &[]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(format!("{SIGNED_OUT}?state=s1").as_str()));
    assert!(!browser.cookies.contains_key("gatehouse_sso"));
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())];
    assert_eq!(token(app, web, &form).await.1["error"], "invalid_grant", "sign-out ends the grants made in it");
    let page = browser.get(&auth_url(app, &world.web.id, &[])).await;
    assert_eq!(page.status, 200, "signed out: the form again");
}
on_both_backends!(other_endpoints, super::userinfo_introspection_revocation_and_sign_out);

async fn new_users_sign_up_on_the_hosted_page(db: TestDb) {
    let world = world(db, &[]).await;
    let app = &world.app;
    let mut browser = Browser::new();
    let sign_in_page = browser.get(&auth_url(app, &world.spa.id, &[])).await;
    let link = regex::Regex::new(r#"<a href="([^"]+)">Create an account</a>"#).unwrap();
    let href = link.captures(&sign_in_page.body).expect("a sign-up link")[1].replace("&amp;", "&");
    let page = browser.get(&app.url(&href)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let weak = browser.submit(app, &page, &[("username", "carol"), ("password", "password")]).await;
    assert_eq!(weak.status, 400);
    assert!(weak.body.contains("This password is too common."), "{}", weak.body);
    let taken = browser.submit(app, &weak, &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    let done = browser
        .submit(app, &taken, &[("username", "carol"), ("password", PASSWORD), ("email", "carol@example.com")])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let code = done.query("code").unwrap();
    let form = [("client_id", world.spa.id.as_str())].into_iter().chain(exchange(&code, VERIFIER)).collect::<Vec<_>>();
    let (status, tokens) = token(app, None, &form).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(claims_of(tokens["id_token"].as_str().unwrap())["email"], "carol@example.com");
    let db = app.db.connect().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM auth_user WHERE username = 'carol' AND password LIKE 'pbkdf2_sha256$%'").await,
        1
    );

    let closed = crate::world(TestDb::sqlite(), &["--signup", "false"]).await;
    let page = Browser::new().get(&auth_url(&closed.app, &closed.spa.id, &[])).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Create an account"));
}
on_both_backends!(sign_up, super::new_users_sign_up_on_the_hosted_page);

async fn custom_claims_scripts_see_the_application(db: TestDb) {
    let world = world(db, &[]).await;
    let app = &world.app;
    let script = "const getCustomJwtClaims = async ({ token, context }) => \
        ({ app: context.application.name, kind: token.kind, client: token.clientId, scope: 'everything' });";
    let path = "/api/configs/jwt-customizer/client-credentials";
    let (status, body) = admin(app, Method::PUT, path, Some(json!({"script": script}))).await;
    assert_eq!(status, 200, "{body}");
    let machine = Some((world.machine.id.as_str(), world.machine.secret.as_str()));
    let form = [("grant_type", "client_credentials"), ("resource", HASURA_API), ("scope", "read:user")];
    let (status, body) = token(app, machine, &form).await;
    assert_eq!(status, 200, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(
        (&claims["app"], &claims["kind"], &claims["client"]),
        (&json!("Cron"), &json!("ClientCredentials"), &json!(world.machine.id))
    );
    assert_eq!(claims["scope"], "read:user", "scope is reserved");
    assert_eq!(claims["__header"]["typ"], "at+jwt");

    // A user-token script that refuses one application: access_denied at the token endpoint.
    let deny = "const getCustomJwtClaims = async ({ context, api }) => { \
        if (context.application?.name === 'Portal') api.denyAccess('Portal users must use the new app.'); return {}; };";
    let path = "/api/configs/jwt-customizer/access-token";
    assert_eq!(admin(app, Method::PUT, path, Some(json!({"script": deny}))).await.0, 200);
    let web = Some((world.web.id.as_str(), world.web.secret.as_str()));
    let code = sign_in(&mut Browser::new(), app, &world.web.id, &[]).await;
    let mut form = exchange(&code, VERIFIER);
    form.push(("resource", HASURA_API));
    let (status, body) = token(app, web, &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("access_denied")), "{body}");
    assert_eq!(body["error_description"], "Portal users must use the new app.");
}
on_both_backends!(custom_claims, super::custom_claims_scripts_see_the_application);

async fn the_sign_in_page_shares_the_login_limits(db: TestDb) {
    let world = world(db, &["--login-max-failures", "2"]).await;
    let app = &world.app;
    let mut browser = Browser::new();
    let mut page = browser.get(&auth_url(app, &world.spa.id, &[])).await;
    for _ in 0..2 {
        page = browser.submit(app, &page, &[("username", "alice"), ("password", "wrong")]).await;
        assert_eq!(page.status, 401);
    }
    let hashes = app.hashing.computed();
    let refused = browser.submit(app, &page, &[("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.retry_after.is_some());
    assert!(refused.body.contains("role=\"alert\">Too many attempts."), "{}", refused.body);
    assert_eq!(app.hashing.computed(), hashes, "refused before any hash");
    let api = app.post_json("/webhook/login", &json!({"username": "alice", "password": PASSWORD})).await;
    assert_eq!(api.status(), 429, "one count for the page and the API");
}
on_both_backends!(page_limits, super::the_sign_in_page_shares_the_login_limits);
