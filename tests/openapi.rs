//! The OpenAPI document (`GET /openapi.json`, the same at `/api/openapi.json`): it is served,
//! it describes exactly the routes of the router, every documented operation is really routed,
//! the errors every operation can produce are declared; and Swagger UI (`/docs`) loads.

mod common;

use std::collections::BTreeSet;

use common::{TestApp, TestDb, spawn_app_with_settings};
use serde_json::Value;
use sha2::Digest;

const SECRET: &str = "openapi-test-admin-secret-0123456789abcdef";

/// Every route of the router (`src/http/mod.rs` and the modules it nests), as declared there
/// (method, full path with OpenAPI parameter names). A route added there must be added here and
/// to the document.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/swagger-ui-bundle.js"),
    ("GET", "/docs/swagger-ui.css"),
    ("GET", "/docs/swagger-initializer.js"),
    ("GET", "/docs/favicon.png"),
    ("POST", "/webhook/login"),
    ("POST", "/webhook/signup"),
    ("POST", "/webhook/refresh"),
    ("POST", "/webhook/logout"),
    ("GET", "/webhook/sessions"),
    ("DELETE", "/webhook/sessions/{id}"),
    ("GET", "/webhook/webhook"),
    ("POST", "/webhook/webhook"),
    ("GET", "/webhook/jwks"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/oidc/.well-known/openid-configuration"),
    ("GET", "/oidc/jwks"),
    ("GET", "/oidc/auth"),
    ("POST", "/oidc/auth/sign-in"),
    ("GET", "/oidc/auth/sign-up"),
    ("POST", "/oidc/auth/sign-up"),
    ("POST", "/oidc/auth/consent"),
    ("POST", "/oidc/token"),
    ("GET", "/oidc/me"),
    ("POST", "/oidc/me"),
    ("POST", "/oidc/token/introspection"),
    ("POST", "/oidc/token/revocation"),
    ("GET", "/oidc/session/end"),
    ("POST", "/oidc/session/end"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/audit-events"),
    ("GET", "/api/resources"),
    ("POST", "/api/resources"),
    ("GET", "/api/resources/{id}"),
    ("PATCH", "/api/resources/{id}"),
    ("DELETE", "/api/resources/{id}"),
    ("PATCH", "/api/resources/{id}/is-default"),
    ("GET", "/api/resources/{id}/scopes"),
    ("POST", "/api/resources/{id}/scopes"),
    ("PATCH", "/api/resources/{id}/scopes/{scopeId}"),
    ("DELETE", "/api/resources/{id}/scopes/{scopeId}"),
    ("GET", "/api/roles"),
    ("POST", "/api/roles"),
    ("GET", "/api/roles/{id}"),
    ("PATCH", "/api/roles/{id}"),
    ("DELETE", "/api/roles/{id}"),
    ("GET", "/api/roles/{id}/scopes"),
    ("POST", "/api/roles/{id}/scopes"),
    ("DELETE", "/api/roles/{id}/scopes/{scopeId}"),
    ("GET", "/api/roles/{id}/users"),
    ("POST", "/api/roles/{id}/users"),
    ("DELETE", "/api/roles/{id}/users/{userId}"),
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("GET", "/api/users/{id}"),
    ("PATCH", "/api/users/{id}/is-suspended"),
    ("PATCH", "/api/users/{id}/password"),
    ("GET", "/api/users/{id}/roles"),
    ("POST", "/api/users/{id}/roles"),
    ("PUT", "/api/users/{id}/roles"),
    ("DELETE", "/api/users/{id}/roles/{roleId}"),
    ("GET", "/api/applications"),
    ("POST", "/api/applications"),
    ("GET", "/api/applications/{id}"),
    ("PATCH", "/api/applications/{id}"),
    ("DELETE", "/api/applications/{id}"),
    ("POST", "/api/applications/{id}/secret"),
    ("GET", "/api/applications/{id}/roles"),
    ("POST", "/api/applications/{id}/roles"),
    ("DELETE", "/api/applications/{id}/roles/{roleId}"),
    ("GET", "/api/configs/jwt-customizer"),
    ("POST", "/api/configs/jwt-customizer/test"),
    ("GET", "/api/configs/jwt-customizer/{tokenType}"),
    ("PUT", "/api/configs/jwt-customizer/{tokenType}"),
    ("PATCH", "/api/configs/jwt-customizer/{tokenType}"),
    ("DELETE", "/api/configs/jwt-customizer/{tokenType}"),
];

/// The lists that take `page` / `page_size` and answer a `Total-Number` header.
const PAGINATED: &[&str] = &["/api/resources", "/api/roles", "/api/roles/{id}/users", "/api/users"];

/// The methods the router routes; any other key of a path item is not an operation.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// What the admin router's fallback answers: a request that reached no route at all.
const FALLBACK_MESSAGE: &str = "There is no such admin API endpoint.";

async fn spawn() -> TestApp {
    let db = TestDb::sqlite();
    let mut settings = db.settings(&[]);
    settings.admin.secret_digest = Some(sha2::Sha256::digest(SECRET).into());
    spawn_app_with_settings(db, settings).await
}

async fn fetch_document(app: &TestApp, path: &str) -> Value {
    let response = reqwest::get(app.url(path)).await.expect("request");
    assert_eq!(response.status(), 200, "{path}");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/json"), "content type {content_type:?}");
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).expect("the document is JSON")
}

async fn document(app: &TestApp) -> Value {
    fetch_document(app, "/openapi.json").await
}

/// Every documented operation: (upper-case method, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths object");
    let mut list = Vec::new();
    for (path, item) in paths {
        for (key, operation) in item.as_object().expect("path item object") {
            if METHODS.contains(&key.as_str()) {
                list.push((key.to_uppercase(), path.clone(), operation.clone()));
            } else {
                assert!(
                    ["parameters", "summary", "description"].contains(&key.as_str()),
                    "{path}: unexpected key {key} (a method the router does not route?)"
                );
            }
        }
    }
    list
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
            doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        None => value,
    }
}

/// Every `$ref` anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => found.push(reference.clone()),
                    _ => references(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// The names of the `{parameters}` in a path template.
fn template_parameters(path: &str) -> Vec<String> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

/// The admin API proper: everything under `/api` but the document.
fn is_admin(path: &str) -> bool {
    path.starts_with("/api/") && path != "/api/openapi.json"
}

/// The JSON Schema type of a path parameter: strings for the token type, for the client id of
/// an application and for a session id, integers (database ids) for everything else.
fn parameter_type(path: &str, name: &str) -> &'static str {
    let application_id = name == "id" && path.starts_with("/api/applications/");
    let session_id = path.starts_with("/webhook/sessions/");
    if name == "tokenType" || application_id || session_id { "string" } else { "integer" }
}

/// The path with every parameter filled: an id that names nothing (for a string client id too,
/// where it is an unknown client id), or a real token type.
fn concrete(path: &str) -> String {
    let mut out = path.to_owned();
    for name in template_parameters(path) {
        let value = if name == "tokenType" { "access-token" } else { "999999" };
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The schemes an operation accepts: its own `security`, else the document's (the admin bearer).
fn security<'a>(doc: &'a Value, operation: &'a Value) -> &'a Vec<Value> {
    operation.get("security").unwrap_or(&doc["security"]).as_array().expect("security array")
}

/// No credential needed: no requirement, or an empty one among the alternatives.
fn is_public(doc: &Value, operation: &Value) -> bool {
    let requirements = security(doc, operation);
    requirements.is_empty() || requirements.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()))
}

fn declares(operation: &Value, status: u16) -> bool {
    operation["responses"].get(status.to_string()).is_some()
}

fn request_media_type(operation: &Value) -> Option<&str> {
    operation["requestBody"]["content"].as_object()?.keys().next().map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_and_well_formed() {
    let app = spawn().await;
    let doc = document(&app).await;
    assert_eq!(fetch_document(&app, "/api/openapi.json").await, doc, "one document at both paths");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // The admin bearer by default; the user bearer and client basic schemes where declared.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("securitySchemes");
    let kinds: BTreeSet<(&str, &str, &str)> = schemes
        .iter()
        .map(|(name, s)| (name.as_str(), s["type"].as_str().unwrap(), s["scheme"].as_str().unwrap()))
        .collect();
    let expected = BTreeSet::from([
        ("adminBearer", "http", "bearer"),
        ("bearerJwt", "http", "bearer"),
        ("clientBasic", "http", "basic"),
    ]);
    assert_eq!(kinds, expected);
    assert_eq!(doc["security"], serde_json::json!([{ "adminBearer": [] }]));
    for (method, path, operation) in operations(&doc) {
        // Outside the admin API, every operation says what it takes rather than inheriting.
        assert_eq!(operation.get("security").is_none(), is_admin(&path), "{method} {path}: explicit security");
        for requirement in security(&doc, &operation) {
            for name in requirement.as_object().expect("requirement").keys() {
                assert!(schemes.contains_key(name), "{method} {path}: unknown scheme {name}");
            }
        }
    }

    // Every reference resolves; errors share one schema per surface.
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        resolve(&doc, &serde_json::json!({ "$ref": reference }));
    }
    assert!(doc["components"]["schemas"]["Error"].is_object());
    assert!(doc["components"]["schemas"]["OAuthError"].is_object());
    let ids: Vec<String> =
        operations(&doc).iter().map(|(_, _, o)| o["operationId"].as_str().unwrap_or("").to_owned()).collect();
    let unique: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(!unique.contains("") && unique.len() == ids.len(), "operationIds are missing or repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_exactly_the_routes() {
    let app = spawn().await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let routed: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(ROUTES.len(), routed.len(), "ROUTES lists a route twice");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty() && unrouted.is_empty(), "undocumented: {undocumented:?}; unknown: {unrouted:?}");

    // Path parameters are declared, and are integers but for the token type and string ids.
    for (method, path, operation) in operations(&doc) {
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .map(|list| list.iter().map(|p| resolve(&doc, p)).filter(|p| p["in"] == "path").collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                assert_eq!(p["required"], true, "{method} {path}: path parameter {}", p["name"]);
                let expected = parameter_type(&path, p["name"].as_str().unwrap_or_default());
                assert_eq!(p["schema"]["type"], expected, "{method} {path}: {}", p["name"]);
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        let in_template: BTreeSet<String> = template_parameters(&path).into_iter().collect();
        assert_eq!(declared, in_template, "{method} {path}: path parameters");
    }
}

/// The error body an error response of `path` must have: the hosted pages answer HTML, the
/// OAuth endpoints RFC 6749 errors, readiness its own status, everything else `Error`.
fn expected_error_body(path: &str, status: &str) -> (&'static str, Option<&'static str>) {
    const OAUTH: &[&str] = &[
        "/oidc/token",
        "/oidc/me",
        "/oidc/token/introspection",
        "/oidc/token/revocation",
        "/oidc/.well-known/openid-configuration",
    ];
    if OAUTH.contains(&path) {
        ("application/json", Some("#/components/schemas/OAuthError"))
    } else if path.starts_with("/oidc/") {
        ("text/html", None)
    } else if path == "/readyz" && status == "503" {
        ("application/json", Some("#/components/schemas/Unready"))
    } else {
        ("application/json", Some("#/components/schemas/Error"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_its_errors() {
    let app = spawn().await;
    let doc = document(&app).await;
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success response");
        if is_admin(&path) {
            for status in [401, 403, 503] {
                assert!(declares(&operation, status), "{method} {path}: no {status} response");
            }
        } else if !is_public(&doc, &operation) {
            assert!(declares(&operation, 401), "{method} {path}: no 401 response");
        }
        match request_media_type(&operation) {
            Some("application/json") => {
                let schema = resolve(&doc, &operation["requestBody"]["content"]["application/json"]["schema"]);
                assert_eq!(schema["type"], "object", "{method} {path}: request body schema");
                // The webhook answers Hasura's contract (200 or 401) to any body.
                if path != "/webhook/webhook" {
                    assert!(declares(&operation, 400), "{method} {path}: no 400 response");
                }
            }
            Some("application/x-www-form-urlencoded") => {
                assert!(declares(&operation, 400), "{method} {path}: no 400 response");
            }
            Some(other) => panic!("{method} {path}: request body as {other}"),
            None => {}
        }
        if is_admin(&path) && operation.get("requestBody").is_some() {
            assert!(declares(&operation, 415), "{method} {path}: no 415 response");
        }
        if template_parameters(&path).iter().any(|name| name != "tokenType") {
            assert!(declares(&operation, 404), "{method} {path}: no 404 response");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let response = resolve(&doc, response);
                let (media_type, schema) = expected_error_body(&path, status);
                let content = &response["content"][media_type];
                assert!(content.is_object(), "{method} {path}: {status} is not {media_type}");
                if let Some(schema) = schema {
                    assert_eq!(content["schema"]["$ref"], schema, "{method} {path}: {status} body");
                }
            }
        }
    }

    // The paginated lists: page, page_size, Total-Number and a 400 for bad paging.
    for path in PAGINATED {
        let operation = &doc["paths"][path]["get"];
        let names: BTreeSet<String> = operation["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| resolve(&doc, p))
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, BTreeSet::from(["page".to_owned(), "page_size".to_owned()]), "GET {path}");
        assert!(operation["responses"]["200"]["headers"].get("Total-Number").is_some(), "GET {path}: Total-Number");
        assert!(declares(operation, 400), "GET {path}: no 400 response");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let app = spawn().await;
    let doc = document(&app).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut misses = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let url = app.url(&concrete(&path));
        let admin = is_admin(&path);
        let send = |authorized: bool| {
            let mut request = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), &url);
            if authorized && admin {
                request = request.bearer_auth(SECRET);
            }
            match request_media_type(&operation) {
                Some(media_type @ "application/json") => {
                    request = request.header("content-type", media_type).body("{}")
                }
                Some(media_type) => request = request.header("content-type", media_type).body(""),
                None => {}
            }
            request.send()
        };
        let response = send(true).await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body: Option<Value> = serde_json::from_str(&text).ok();
        let error_type = body.as_ref().and_then(|b| b["errors"][0]["type"].as_str());
        let message = body.as_ref().and_then(|b| b["errors"][0]["message"].as_str());
        let miss = match status {
            405 => Some("405: the path has no such method"),
            404 if error_type.is_none() && text.is_empty() => Some("404 with an empty body: no route"),
            404 if message == Some(FALLBACK_MESSAGE) => Some("404 from the admin router's fallback: no route"),
            500.. => Some("server error"),
            _ => None,
        };
        if let Some(why) = miss {
            misses.push(format!("{method} {path} -> {status} {text:?}: {why}"));
            continue;
        }
        assert!(declares(&operation, status), "{method} {path}: answered undocumented {status} {text:?}");
        if admin {
            let anonymous = send(false).await.expect("request");
            assert_eq!(anonymous.status(), 401, "{method} {path} without a credential");
        }
    }
    assert!(misses.is_empty(), "documented but not routed:\n{}", misses.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undocumented_methods_are_refused() {
    let app = spawn().await;
    let doc = document(&app).await;
    let client = reqwest::Client::new();
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = client
                .request(method.clone(), app.url(&concrete(path)))
                .bearer_auth(SECRET)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("request");
            if response.status() != 405 {
                wrong.push(format!("{method} {path} -> {} (an undocumented route?)", response.status()));
            }
        }
    }
    assert!(wrong.is_empty(), "expected 405:\n{}", wrong.join("\n"));
}

/// The attribute values `name="…"` in an HTML text.
fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!("{name}=\"");
    html.split(marker.as_str()).skip(1).filter_map(|rest| rest.split('"').next()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_loads_from_the_binary() {
    let app = spawn().await;
    let page = reqwest::get(app.url("/docs")).await.expect("request");
    assert_eq!(page.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "CSP {csp:?} lacks {directive}");
    }
    assert!(!csp.contains("unsafe-eval") && !csp.contains("http"), "CSP {csp:?} allows too much");
    let html = page.text().await.expect("body");
    assert!(!html.contains("<script>"), "an inline script would need 'unsafe-inline'");

    // Every asset the page names is served, relative to the page, with its content type.
    let base = reqwest::Url::parse(&app.url("/docs")).expect("url");
    let mut assets: Vec<&str> = attributes(&html, "src");
    assets.extend(attributes(&html, "href"));
    assert_eq!(assets.len(), 4, "the script, the initializer, the style sheet and the icon: {assets:?}");
    let mut initializer = String::new();
    for asset in assets {
        let url = base.join(asset).expect("asset url");
        assert!(url.as_str().starts_with(&app.url("/docs/")), "{asset} is not served from here");
        let response = reqwest::get(url.clone()).await.expect("asset");
        assert_eq!(response.status(), 200, "{url}");
        let expected = match asset.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("png") => "image/png",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert!(header(&response, "content-type").starts_with(expected), "{url}");
        assert!(header(&response, "cache-control").contains("max-age=31536000"), "{url}: long cache");
        let body = response.bytes().await.expect("asset body");
        assert!(body.len() > 100, "{url}: {} bytes", body.len());
        if asset.ends_with("swagger-initializer.js") {
            initializer = String::from_utf8(body.to_vec()).expect("text");
        }
    }
    // The initializer points Swagger UI at the document, which is there.
    assert!(initializer.contains("\"openapi.json\""), "the initializer does not load openapi.json");
    document(&app).await;
}
