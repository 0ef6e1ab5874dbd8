//! The database handle: one [`Db`] over a native SQLite or PostgreSQL pool.
//!
//! Every query is one SQL text (`$1` placeholders work on both drivers) run through
//! [`on_pool!`], which expands the same code once per backend. The sqlx `Any` driver is not an
//! option: it cannot decode Django's `bool` and `datetime` columns.

mod applications;
mod audit;
mod groups;
mod keys;
pub mod migrate;
mod oidc;
mod outage;
mod rbac;
mod sessions;
mod time;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use self::applications::ApplicationRow;
pub use self::audit::{AuditEvent, AuditRow};
pub use self::groups::GroupSummary;
pub use self::keys::{KEYS_CHANGED_CHANNEL, SigningKeyRow};
pub use self::oidc::{CodeRow, Consumed, GrantRow, OpaqueTokenRow};
pub use self::outage::Outage;
pub use self::rbac::{Page, PageRequest, ResourcePatch, ResourceRow, RolePatch, RoleRow, ScopeGrantRow, ScopeRow};
pub use self::sessions::{RefreshRow, Rotation, SessionRow, SessionState};
pub use self::time::DjangoTime;
pub use self::users::{NewUserRow, UserRow};

/// Runs `$body` with `$pool` bound to whichever native pool `$db` holds.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A connection pool over Django's tables.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which database to use, parsed from `DATABASE_URL` (or its alias `DBURL`).
#[derive(Clone)]
pub enum DatabaseUrl {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

/// Never prints the PostgreSQL password.
impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(options) => write!(f, "Sqlite({:?})", options.get_filename()),
            DatabaseUrl::Postgres(options) => {
                write!(f, "Postgres({}:{}/{:?})", options.get_host(), options.get_port(), options.get_database())
            }
        }
    }
}

/// The default: an embedded SQLite file in the working directory, as Django's own default.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://gatehouse.sqlite3";

/// How long a request waits for a PostgreSQL connection before it answers 503: long enough for
/// a burst on a busy pool, short enough that an unreachable server fails requests fast.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got {0:?})")]
    UnknownScheme(String),
    #[error("DATABASE_URL is not a valid {kind} URL: {reason}")]
    InvalidUrl { kind: &'static str, reason: String },
    #[error("cannot reach the database after {waited:?}: {source}")]
    Unreachable {
        waited: Duration,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Sql(sqlx::Error),
    #[error("{0}")]
    Schema(String),
    #[error(
        "the database has no Django auth tables yet: run `gatehouse migrate` (or Django's `manage.py migrate`) first"
    )]
    MissingSchema,
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        let missing_table = matches!(&err, sqlx::Error::Database(db)
            if db.code().as_deref() == Some("42P01") || db.message().starts_with("no such table"));
        if missing_table { DbError::MissingSchema } else { DbError::Sql(err) }
    }
}

impl DbError {
    /// True for the configuration mistakes that the CLI reports with exit code 2.
    pub fn is_configuration(&self) -> bool {
        matches!(self, DbError::UnknownScheme(_) | DbError::InvalidUrl { .. })
    }

    /// True when the database could not be reached at all (no connection within the acquire
    /// timeout, a dropped connection, a server shutting down or starting up): the next query
    /// of the same request would only wait as long again.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unreachable { .. } => true,
            DbError::Sql(err) => {
                is_transient(err)
                    || matches!(err, sqlx::Error::PoolClosed)
                    // Class 08, connection exception; class 57, operator intervention (shutdown).
                    || matches!(err, sqlx::Error::Database(db)
                        if db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57")))
            }
            _ => false,
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = DbError;

    fn from_str(url: &str) -> Result<Self, DbError> {
        let invalid = |kind, err: sqlx::Error| DbError::InvalidUrl { kind, reason: redact(&err.to_string()) };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| invalid("SQLite", e))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            Ok(DatabaseUrl::Sqlite(options))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url).map(DatabaseUrl::Postgres).map_err(|e| invalid("PostgreSQL", e))
        } else {
            let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
            Err(DbError::UnknownScheme(redact(scheme)))
        }
    }
}

/// Never echo something that may hold a password back into a log or an error.
fn redact(text: &str) -> String {
    if text.contains('@') { "<redacted>".to_owned() } else { text.to_owned() }
}

impl Db {
    /// Connects, retrying with backoff for up to `wait` when the server is not reachable yet
    /// (a PostgreSQL container that starts after gatehouse, say).
    pub async fn connect(url: &DatabaseUrl, wait: Duration) -> Result<Db, DbError> {
        Self::connect_with(url, wait, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`Db::connect`] with the longest a request waits for a PostgreSQL connection.
    ///
    /// The pool is what makes gatehouse ride out a PostgreSQL restart without being restarted
    /// itself: every idle connection is pinged before it is handed out, so the dead ones a
    /// restart leaves behind are dropped and replaced lazily; and while no new connection can
    /// be made, a request gives up after `acquire_timeout` (sqlx keeps retrying a refused
    /// connection until then) and answers 503, instead of queueing for long.
    pub async fn connect_with(url: &DatabaseUrl, wait: Duration, acquire_timeout: Duration) -> Result<Db, DbError> {
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = match url {
                DatabaseUrl::Sqlite(options) => {
                    SqlitePoolOptions::new().max_connections(8).connect_with(options.clone()).await.map(Db::Sqlite)
                }
                DatabaseUrl::Postgres(options) => PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(acquire_timeout)
                    .test_before_acquire(true)
                    .connect_with(options.clone())
                    .await
                    .map(Db::Postgres),
            };
            match attempt {
                Ok(db) => return Ok(db),
                Err(err) if is_transient(&err) && started.elapsed() + delay < wait => {
                    tracing::warn!(retry_in = ?delay, error = %err, "database not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(source) => return Err(DbError::Unreachable { waited: started.elapsed(), source }),
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // "the database system is starting up" and "too many connections".
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// True when a write failed because a unique constraint already holds the value.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_schemes_and_the_default() {
        assert!(matches!(DEFAULT_DATABASE_URL.parse(), Ok(DatabaseUrl::Sqlite(_))));
        assert!(matches!("sqlite::memory:".parse(), Ok(DatabaseUrl::Sqlite(_))));
        assert!(matches!("postgres://root@127.0.0.1/db".parse(), Ok(DatabaseUrl::Postgres(_))));
        assert!(matches!("postgresql://root@127.0.0.1:5432/db".parse(), Ok(DatabaseUrl::Postgres(_))));
    }

    #[test]
    fn rejects_unknown_schemes_without_echoing_credentials() {
        let err = "mysql://user:secret@host/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.is_configuration());
        assert!(err.to_string().contains("\"mysql\""), "{err}");
        let err = "user:secret@host".parse::<DatabaseUrl>().unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!("".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn unreachable_is_told_apart_from_other_database_errors() {
        assert!(DbError::Sql(sqlx::Error::PoolTimedOut).is_unavailable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(DbError::Sql(sqlx::Error::Io(refused)).is_unavailable());
        assert!(!DbError::Sql(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!DbError::MissingSchema.is_unavailable());
    }

    #[test]
    fn rejects_malformed_postgres_urls() {
        let err = "postgres://root@127.0.0.1:notaport/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.is_configuration(), "{err}");
    }
}
