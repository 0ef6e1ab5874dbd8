//! Building and running the application: the one path that `serve` and the tests share.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use std::sync::Arc;

use crate::accounts::{Accounts, Hashing};
use crate::db::{Db, DbError};
use crate::http::{self, AppState};
use crate::oidc::Applications;
use crate::oidc::flow::Provider;
use crate::rbac::Rbac;
use crate::sessions::Sessions;
use crate::settings::Settings;
use crate::tokens::{self, KeyRing, Tokens};

/// Connects to the database and builds the account service from the settings.
pub async fn accounts(settings: &Settings) -> Result<Accounts, DbError> {
    let database = &settings.database;
    let db = Db::connect_with(&database.url, database.connect_timeout, database.acquire_timeout).await?;
    let hashing = Hashing::new(settings.hashing.hasher.clone(), settings.hashing.max_concurrent)
        .with_queue(settings.hashing.max_waiting);
    Ok(Accounts::new(db, hashing, settings.password_policy.clone()).with_limits(settings.limits.clone()))
}

/// Loads (or, on first start, generates) the signing key and builds the token service.
pub fn tokens(settings: &Settings) -> Result<Tokens, tokens::KeyError> {
    tokens::install_crypto_provider();
    let keys = KeyRing::load(&settings.keys)?;
    Ok(Tokens::new(keys, settings.claims.clone()))
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    audit_retention: Option<std::time::Duration>,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind((settings.http.host, settings.http.port)).await?;
        Self::build_on(settings, listener).await
    }

    /// [`Application::build`] on a listener bound already (so that the public URL can name
    /// its port before the settings are made).
    pub async fn build_on(settings: &Settings, listener: TcpListener) -> anyhow::Result<Application> {
        let tokens = self::tokens(settings)?;
        let accounts = accounts(settings).await?;
        if settings.http.migrate_on_start {
            accounts.db().migrate().await?;
        }
        let successor_key = tokens.keys().derive_secret("gatehouse refresh-token successor v1");
        let sessions = Sessions::new(accounts.db().clone(), settings.sessions.clone(), successor_key);
        let rbac = Rbac::new(accounts.db().clone(), settings.rbac.clone()).sharing_outage(sessions.outage());
        let applications = Applications::new(accounts.db().clone());
        let oidc = Provider::new(
            accounts.db().clone(),
            sessions.clone(),
            rbac.clone(),
            tokens.clone(),
            applications.clone(),
            settings.oidc.clone(),
        );
        let state = AppState {
            oidc,
            accounts,
            tokens,
            sessions,
            rbac,
            applications,
            hasura: Arc::new(settings.hasura.clone()),
            admin: Arc::new(settings.admin.clone()),
            trusted_proxies: Arc::new(settings.http.trusted_proxies.clone()),
        };
        Ok(Application { listener, state, audit_retention: settings.http.audit_retention })
    }

    /// What the handlers will share (tests read the hashing counters through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let db = self.state.accounts.db().clone();
        if let Some(retention) = self.audit_retention {
            tokio::spawn(purge_audit_log(db.clone(), retention));
        }
        let app = http::router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await?;
        db.close().await;
        Ok(())
    }
}

/// Deletes audit events older than `retention` now and every six hours.
async fn purge_audit_log(db: Db, retention: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
    loop {
        every.tick().await;
        let horizon = crate::db::DjangoTime(crate::db::DjangoTime::now().0 - retention);
        match db.purge_audit(horizon).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted audit events past their retention"),
            Err(err) => tracing::warn!(error = %err, "could not purge the audit log"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
