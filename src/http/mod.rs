//! The HTTP surface: one router, a module per API surface, one error type ([`error::ApiError`]).

mod admin;
mod body;
pub mod client;
pub mod error;
pub mod hasura;
mod health;
pub mod observe;
mod oidc;
mod swagger;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::accounts::Accounts;
use crate::db::DbError;
use crate::oidc::Applications;
use crate::oidc::flow::Provider;
use crate::rbac::Rbac;
use crate::sessions::Sessions;
use crate::settings::{AdminSettings, HasuraSettings};
use crate::tokens::{HasuraSession, TokenError, Tokens};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub accounts: Accounts,
    pub tokens: Tokens,
    pub sessions: Sessions,
    pub rbac: Rbac,
    pub applications: Applications,
    pub oidc: Provider,
    pub hasura: Arc<HasuraSettings>,
    pub admin: Arc<AdminSettings>,
    pub trusted_proxies: Arc<client::TrustedProxies>,
}

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AppState {
    /// Verifies an access token; its `aud` may also be any API resource's indicator.
    pub async fn verify(&self, token: &str) -> Result<HasuraSession, VerifyError> {
        let audiences = self.rbac.audiences().await?;
        Ok(self.tokens.verify_for(token, &audiences)?)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/webhook/login", post(hasura::login).fallback(hasura::method_not_allowed))
        .route("/webhook/signup", post(hasura::signup).fallback(hasura::method_not_allowed))
        .route("/webhook/refresh", post(hasura::refresh).fallback(hasura::method_not_allowed))
        .route("/webhook/logout", post(hasura::logout).fallback(hasura::method_not_allowed))
        .route("/webhook/sessions", get(hasura::list_sessions))
        .route("/webhook/sessions/{id}", delete(hasura::delete_session))
        .route("/webhook/webhook", get(hasura::webhook_get).post(hasura::webhook_post))
        .route("/webhook/jwks", get(hasura::jwks))
        .route("/.well-known/jwks.json", get(hasura::jwks))
        .route("/metrics", get(observe::metrics))
        .nest("/api", admin::router())
        .nest("/oidc", oidc::router())
        .merge(swagger::router())
        .with_state(state)
}
