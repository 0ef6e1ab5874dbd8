//! The admin API's OpenAPI document (`GET /api/openapi.json`): it is served, it describes
//! exactly the routes of `src/http/admin.rs`, every documented operation is really routed, and
//! the errors every operation can produce are declared.

mod common;

use std::collections::BTreeSet;

use common::{TestApp, TestDb, spawn_app_with_settings};
use serde_json::Value;
use sha2::Digest;

const SECRET: &str = "openapi-test-admin-secret-0123456789abcdef";

/// The admin routes, as `src/http/admin.rs` declares them (method, full path with OpenAPI
/// parameter names). A route added there must be added here and to the document.
const ROUTES: &[(&str, &str)] = &[
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

/// The methods the admin API routes; any other key of a path item is not an operation.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// What the admin router's fallback answers: a request that reached no route at all.
const FALLBACK_MESSAGE: &str = "There is no such admin API endpoint.";

async fn spawn() -> TestApp {
    let db = TestDb::sqlite();
    let mut settings = db.settings(&[]);
    settings.admin.secret_digest = Some(sha2::Sha256::digest(SECRET).into());
    spawn_app_with_settings(db, settings).await
}

async fn document(app: &TestApp) -> Value {
    let response = reqwest::get(app.url("/api/openapi.json")).await.expect("request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/json"), "content type {content_type:?}");
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).expect("the document is JSON")
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
                    "{path}: unexpected key {key} (a method the admin API does not route?)"
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

/// The JSON Schema type of a path parameter: strings for the token type and for the client id of
/// an application, integers (database ids) for everything else.
fn parameter_type(path: &str, name: &str) -> &'static str {
    let application_id = name == "id" && path.starts_with("/api/applications/");
    if name == "tokenType" || application_id { "string" } else { "integer" }
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

fn is_public(operation: &Value) -> bool {
    operation.get("security").and_then(Value::as_array).is_some_and(|s| s.is_empty())
}

fn declares(operation: &Value, status: u16) -> bool {
    operation["responses"].get(status.to_string()).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_and_well_formed() {
    let app = spawn().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // One bearer scheme, required everywhere except on this document itself.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("securitySchemes");
    let (name, scheme) = schemes.iter().next().expect("a security scheme");
    assert_eq!(schemes.len(), 1);
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    assert_eq!(doc["security"], serde_json::json!([{ name.as_str(): [] }]));
    for (method, path, operation) in operations(&doc) {
        assert_eq!(is_public(&operation), path == "/api/openapi.json", "{method} {path}: security");
    }

    // Every reference resolves; errors share one schema.
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        resolve(&doc, &serde_json::json!({ "$ref": reference }));
    }
    assert!(doc["components"]["schemas"]["Error"].is_object());
    for (status, response) in doc["components"]["responses"].as_object().expect("shared responses") {
        let schema = &response["content"]["application/json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/Error", "response {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_exactly_the_admin_routes() {
    let app = spawn().await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let routed: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(ROUTES.len(), routed.len(), "ROUTES lists a route twice");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty() && unrouted.is_empty(), "undocumented: {undocumented:?}; unknown: {unrouted:?}");

    // Path parameters are declared, and are integers but for the token type and application ids.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_its_errors() {
    let app = spawn().await;
    let doc = document(&app).await;
    for (method, path, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success response");
        if !is_public(&operation) {
            for status in [401, 403, 503] {
                assert!(declares(&operation, status), "{method} {path}: no {status} response");
            }
        }
        if operation.get("requestBody").is_some() {
            let schema = resolve(&doc, &operation["requestBody"]["content"]["application/json"]["schema"]);
            assert_eq!(schema["type"], "object", "{method} {path}: request body schema");
            for status in [400, 415] {
                assert!(declares(&operation, status), "{method} {path}: no {status} response");
            }
        }
        if template_parameters(&path).iter().any(|name| name != "tokenType") {
            assert!(declares(&operation, 404), "{method} {path}: no 404 response");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &resolve(&doc, response)["content"]["application/json"]["schema"];
                assert_eq!(schema["$ref"], "#/components/schemas/Error", "{method} {path}: {status} body");
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
    let client = reqwest::Client::new();
    let mut misses = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let url = app.url(&concrete(&path));
        let send = |authorized: bool| {
            let mut request = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), &url);
            if authorized {
                request = request.bearer_auth(SECRET);
            }
            if operation.get("requestBody").is_some() {
                request = request.header("content-type", "application/json").body("{}");
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
            404 if error_type.is_none() => Some("404 without our JSON error: no route"),
            404 if message == Some(FALLBACK_MESSAGE) => Some("404 from the admin router's fallback: no route"),
            500.. => Some("server error"),
            _ => None,
        };
        if let Some(why) = miss {
            misses.push(format!("{method} {path} -> {status} {text:?}: {why}"));
            continue;
        }
        assert!(declares(&operation, status), "{method} {path}: answered undocumented {status} {text:?}");
        if !is_public(&operation) {
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
