//! Several instances on one database. Each one re-reads the stored signing keys on a timer;
//! on PostgreSQL each one also listens for the sessions any instance (or a person in psql) ends
//! and for key rotations, so that the webhook of every instance refuses a revoked session at
//! once and a new key is published everywhere within a moment.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::db::{Db, KEYS_CHANGED_CHANNEL};
use crate::sessions::Sessions;
use crate::tokens::stored::{self, KeyVault};
use crate::tokens::{KeySettings, Tokens};

/// The channel the `gatehouse_session_ended` trigger (migration 0005) notifies on.
const SESSION_ENDED_CHANNEL: &str = "gatehouse_session_ended";

/// Starts the background tasks; they end with the runtime.
pub fn spawn(db: &Db, tokens: &Tokens, sessions: &Sessions, keys: &KeySettings) {
    let stored_keys = keys.vault.clone().map(|vault| StoredKeys {
        db: db.clone(),
        tokens: tokens.clone(),
        vault,
        settings: keys.clone(),
    });
    if let Some(stored_keys) = &stored_keys {
        tokio::spawn(reload_every(stored_keys.clone(), keys.reload_interval));
    }
    if let Db::Postgres(pool) = db {
        tokio::spawn(listen(pool.clone(), sessions.clone(), stored_keys));
    }
}

#[derive(Clone)]
struct StoredKeys {
    db: Db,
    tokens: Tokens,
    vault: std::sync::Arc<KeyVault>,
    settings: KeySettings,
}

impl StoredKeys {
    /// Keeps the keys in use when the database cannot be read: they are still valid.
    async fn reload(&self) {
        match stored::load(&self.db, &self.vault, &self.settings).await {
            Ok(Some(ring)) => self.tokens.replace_keys(ring),
            Ok(None) => tracing::warn!("the signing key table is empty; keeping the keys in use"),
            Err(err) => tracing::warn!(error = %err, "could not re-read the signing keys; keeping the keys in use"),
        }
    }
}

async fn reload_every(keys: StoredKeys, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.tick().await;
    loop {
        every.tick().await;
        keys.reload().await;
    }
}

async fn listen(pool: sqlx::PgPool, sessions: Sessions, keys: Option<StoredKeys>) {
    let mut listener = loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen_all([SESSION_ENDED_CHANNEL, KEYS_CHANGED_CHANNEL]).await {
                Ok(()) => break listener,
                Err(err) => tracing::warn!(error = %err, "cannot LISTEN; retrying"),
            },
            Err(err) => tracing::warn!(error = %err, "cannot open the notification connection; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == SESSION_ENDED_CHANNEL => {
                sessions.forget_cached(notification.payload());
            }
            Ok(Some(_)) => {
                if let Some(keys) = &keys {
                    keys.reload().await;
                }
            }
            // The connection was lost: whatever was sent meanwhile is lost too. The next call
            // reconnects and listens again.
            Ok(None) => {
                tracing::warn!("the notification connection was lost; reconnecting");
                sessions.forget_all_cached();
                if let Some(keys) = &keys {
                    keys.reload().await;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "notification connection failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
