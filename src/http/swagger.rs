//! The OpenAPI document of every endpoint (`/openapi.json`, also at `/api/openapi.json`) and
//! Swagger UI for it (`/docs`), served from the binary: the UI's assets are `swagger-ui-dist`
//! 5.35.0 from npm, committed under `swagger/` (Apache-2.0, see `swagger/LICENSE`), so the page
//! needs no CDN and no network at build time.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// Swagger UI sets inline styles and draws data: images; it fetches only this server.
const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                      connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
                      form-action 'none'";

/// The assets change only with a new binary; the page itself is revalidated.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/docs", get(page))
        .route("/docs/swagger-ui-bundle.js", get(|| asset("text/javascript; charset=utf-8", BUNDLE)))
        .route("/docs/swagger-initializer.js", get(|| asset("text/javascript; charset=utf-8", INITIALIZER)))
        .route("/docs/swagger-ui.css", get(|| asset("text/css; charset=utf-8", CSS)))
        .route("/docs/favicon.png", get(|| asset("image/png", FAVICON)))
}

const BUNDLE: &[u8] = include_bytes!("swagger/swagger-ui-bundle.js");
const INITIALIZER: &[u8] = include_bytes!("swagger/swagger-initializer.js");
const CSS: &[u8] = include_bytes!("swagger/swagger-ui.css");
const FAVICON: &[u8] = include_bytes!("swagger/favicon-32x32.png");

/// The OpenAPI 3.1 description of every endpoint.
pub async fn openapi() -> Response {
    let mut response = include_str!("openapi.json").into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn page() -> Response {
    let mut response = include_str!("swagger/index.html").into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(UI_CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn asset(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
