//! Building and running the application: the one path that `serve` and the tests share.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::accounts::{AccountError, Accounts, Hashing};
use crate::db::Db;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::oidc::Applications;
use crate::oidc::flow::Provider;
use crate::rbac::Rbac;
use crate::sessions::Sessions;
use crate::settings::{ServerSettings, Settings};
use crate::tokens::stored::{self, StoredKeyError};
use crate::tokens::{self, KeyRing, KeySettings, Tokens};

/// Connects to the database and builds the account service from the settings.
pub async fn accounts(settings: &Settings) -> Result<Accounts, AccountError> {
    let database = &settings.database;
    let db = Db::connect_with(&database.url, database.connect_timeout, database.acquire_timeout).await?;
    let hashing =
        Hashing::new(settings.hashing.hasher.clone(), settings.hashing.max_concurrent, settings.hashing.priority)?
            .with_queue(settings.hashing.max_waiting, settings.hashing.max_wait);
    Ok(Accounts::new(db, hashing, settings.password_policy.clone()).with_limits(settings.limits.clone()))
}

/// Loads (or, on first start, generates) the signing keys and builds the token service: from
/// the database when `GATEHOUSE_KEY_ENCRYPTION_KEY` is set, else from the environment or the
/// data directory.
pub async fn tokens(settings: &Settings, db: &Db) -> Result<Tokens, StoredKeyError> {
    tokens::install_crypto_provider();
    let keys = match &settings.keys.vault {
        Some(vault) => stored::load_or_create(db, vault, &settings.keys).await?,
        None => KeyRing::load(&settings.keys)?,
    };
    Ok(Tokens::new(keys, settings.claims.clone()))
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    metrics: Arc<Metrics>,
    server: ServerSettings,
    audit_retention: Option<std::time::Duration>,
    keys: KeySettings,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind((settings.http.host, settings.http.port)).await?;
        Self::build_on(settings, listener).await
    }

    /// [`Application::build`] on a listener bound already (so that the public URL can name
    /// its port before the settings are made).
    pub async fn build_on(settings: &Settings, listener: TcpListener) -> anyhow::Result<Application> {
        let accounts = accounts(settings).await?;
        if settings.http.migrate_on_start {
            accounts.db().migrate().await?;
        }
        let tokens = self::tokens(settings, accounts.db()).await?;
        let successor_key = tokens.keys().derive_secret("gatehouse refresh-token successor v1");
        let sessions = Sessions::new(accounts.db().clone(), settings.sessions.clone(), successor_key)
            .counting_refresh_tokens(tokens.refresh_token_counter());
        let metrics = Arc::new(Metrics::new(&accounts, &sessions, &tokens));
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
        Ok(Application {
            listener,
            state,
            metrics,
            server: settings.http.server.clone(),
            audit_retention: settings.http.audit_retention,
            keys: settings.keys.clone(),
        })
    }

    /// What the handlers will share (tests read the hashing counters through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets the requests in flight
    /// finish (for at most the shutdown timeout) and closes idle connections.
    ///
    /// hyper's own connection loop rather than `axum::serve`, which has no header read timeout:
    /// without one, a client trickling its headers holds a connection for ever (slowloris).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let db = self.state.accounts.db().clone();
        if let Some(retention) = self.audit_retention {
            tokio::spawn(purge_audit_log(db.clone(), retention));
        }
        crate::cluster::spawn(&db, &self.state.tokens, &self.state.sessions, &self.keys);
        let server = self.server;
        let app = http::observe::layered(http::router(self.state), self.metrics, &server);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(server.header_timeout);
        let connections = Arc::new(Semaphore::new(server.max_connections));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // At the cap, stop accepting: new clients wait in the kernel's backlog.
            let slot = tokio::select! {
                slot = Arc::clone(&connections).acquire_owned() => slot.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let service = app.clone().map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let connection = http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, %peer, "connection ended with an error");
                }
                drop(slot);
            });
        }
        drop(self.listener);
        if tokio::time::timeout(server.shutdown_timeout, graceful.shutdown()).await.is_err() {
            tracing::warn!(
                timeout_secs = server.shutdown_timeout.as_secs(),
                "requests still in flight at the end of the shutdown timeout; closing their connections"
            );
        }
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
