//! The HTTP surface. One router; each API surface gets its own module as it arrives.

mod health;

use axum::Router;
use axum::routing::get;

use crate::accounts::Accounts;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub accounts: Accounts,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(health::alive)).route("/readyz", get(health::ready)).with_state(state)
}
