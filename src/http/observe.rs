//! What every route runs under: a request id (taken from a sane `X-Request-Id` or made, and
//! echoed on every answer), a tracing span carrying it so that each log line of the request
//! names it, one log line per request, the HTTP metrics, and the time and size limits.
//!
//! The layers go on the [`Router`] itself (not around it), so that axum's `MatchedPath` is
//! known to the span and the metrics: routes are labelled by template, never by raw path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutBody;
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::error::ApiError;
use crate::metrics::{CONTENT_TYPE, Metrics, UNMATCHED_ROUTE};
use crate::settings::ServerSettings;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id kept; a longer one is replaced (it would bloat every log line).
const MAX_REQUEST_ID_LEN: usize = 128;

/// The time and size limits of one request.
#[derive(Clone, Debug)]
struct RequestLimits {
    request_timeout: Duration,
    body_timeout: Duration,
    max_body: usize,
}

/// Who may read `/metrics`, and what it shows.
#[derive(Debug)]
pub struct MetricsEndpoint {
    metrics: Arc<Metrics>,
    token_digest: Option<[u8; 32]>,
}

/// The router with every cross-cutting layer on (outermost first): drop an insane incoming
/// request id, set one, echo it, trace, count, then enforce the limits.
pub fn layered(router: Router, metrics: Arc<Metrics>, server: &ServerSettings) -> Router {
    let limits = RequestLimits {
        request_timeout: server.request_timeout,
        body_timeout: server.body_timeout,
        max_body: server.max_body,
    };
    let endpoint =
        Arc::new(MetricsEndpoint { metrics: Arc::clone(&metrics), token_digest: server.metrics_token_digest });
    router.layer(
        ServiceBuilder::new()
            .layer(middleware::map_request(drop_insane_request_id))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_response(log_response)
                    .on_failure(()),
            )
            .layer(Extension(endpoint))
            .layer(middleware::from_fn_with_state(metrics, count_request))
            .layer(middleware::from_fn_with_state(limits, enforce_limits)),
    )
}

/// Keeps an incoming `X-Request-Id` only if it is 1 to 128 visible ASCII characters, so that
/// a client cannot forge log lines or flood them.
async fn drop_insane_request_id(mut request: Request) -> Request {
    let sane = request.headers().get_all(&REQUEST_ID).iter().count() == 1
        && request.headers().get(&REQUEST_ID).is_some_and(|value| {
            let bytes = value.as_bytes();
            (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
        });
    if !sane {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The span every log line of the request is emitted in. No query string (it may carry an
/// authorization code or a token) and no header but the request id.
fn request_span(request: &Request) -> Span {
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info_span!("request", request_id, method = %request.method(), route)
}

fn log_response(response: &Response, latency: Duration, _span: &Span) {
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(status = response.status().as_u16(), latency_ms, "answered");
}

async fn count_request(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let (method, route) = (request.method().clone(), route.to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(&method, &route, response.status(), started.elapsed());
    response
}

/// The global body limit, a backstop under each handler's own smaller one (the handler still
/// answers in its own way: the webhook must say 401 to anything it refuses), the stall limit
/// between two reads of the body, and the deadline of the whole request.
async fn enforce_limits(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let request = request.map(|body| {
        Body::new(http_body_util::Limited::new(TimeoutBody::new(limits.body_timeout, body), limits.max_body))
    });
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_secs = limits.request_timeout.as_secs(), "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Timeout",
                "The request took too long and was abandoned; try again.",
            )
            .into_response()
        }
    }
}

/// `GET /metrics`: the Prometheus metrics, behind a bearer token when one is configured.
pub async fn metrics(Extension(endpoint): Extension<Arc<MetricsEndpoint>>, headers: HeaderMap) -> Response {
    if let Some(expected) = &endpoint.token_digest {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(super::hasura::bearer_token);
        let accepted = given.is_some_and(|token| {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            bool::from(digest.ct_eq(expected))
        });
        if !accepted {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Send `Authorization: Bearer <metrics token>`.",
            )
            .into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], endpoint.metrics.render()).into_response()
}
