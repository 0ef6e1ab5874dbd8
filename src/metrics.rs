//! Prometheus metrics. Each service keeps its own counters (the hashing queue, sign-in
//! outcomes, the session cache, issued tokens); [`Metrics`] registers those handles, adds the
//! HTTP request families, and renders the lot in the OpenMetrics text format for `/metrics`.
//!
//! Label values are bounded: routes are axum's matched path templates (never raw paths),
//! methods outside the standard set are `OTHER`.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::accounts::Accounts;
use crate::sessions::Sessions;
use crate::tokens::Tokens;

/// What `Content-Type` the rendered metrics have.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of requests no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

type HistogramFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    durations: HistogramFamily,
}

fn request_duration_histogram() -> Histogram {
    // 1 ms to ~16 s: a JWKS answer is under a millisecond, a login a few hundred.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// Registers the services' own counters next to the HTTP families.
    pub fn new(accounts: &Accounts, sessions: &Sessions, tokens: &Tokens) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        let durations: HistogramFamily = Family::new_with_constructor(request_duration_histogram);
        registry.register(
            "gatehouse_http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "gatehouse_http_request_duration",
            "Time from the request's headers to its answer, by method, matched route and status",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "gatehouse_sign_ins",
            "Password sign-ins (/webhook/login, OIDC sign-in page) by outcome: success, failure, \
             rate_limited, busy, error",
            accounts.sign_in_outcomes().clone(),
        );
        let hashing = accounts.hashing().metrics();
        registry.register(
            "gatehouse_password_hash_queue_waiting",
            "Requests waiting for a password-hashing slot now",
            hashing.waiting.clone(),
        );
        registry.register(
            "gatehouse_password_hashes_in_progress",
            "Password hashes being computed now",
            hashing.in_progress.clone(),
        );
        registry.register(
            "gatehouse_password_hashes",
            "Password hashes computed (verifications, new hashes, timing-equalising fakes)",
            hashing.computed.clone(),
        );
        registry.register(
            "gatehouse_password_hash_refused",
            "Requests refused a password-hashing slot: the queue was full, or the wait (foreseen or reached) passed \
             the deadline",
            hashing.refused.clone(),
        );
        registry.register_with_unit(
            "gatehouse_password_hash_wait",
            "Time a hash waited for a hashing slot",
            Unit::Seconds,
            hashing.wait_seconds.clone(),
        );
        registry.register(
            "gatehouse_session_cache_lookups",
            "Session-liveness cache lookups by the webhook and the admin API, by result: hit or miss",
            sessions.live_cache_lookups().clone(),
        );
        registry.register(
            "gatehouse_tokens_issued",
            "Tokens issued by kind (access, id, refresh) and signing algorithm (opaque for refresh tokens)",
            tokens.issued().clone(),
        );
        Metrics { registry, requests, durations }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
        let labels = HttpLabels { method: method_label(method), route: route.to_owned(), status: status.as_u16() };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Every family in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The method as a label value; anything non-standard is one value, so clients cannot create
/// label values at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
