//! The signing keys shared by every instance (`gatehouse_signing_key`): private keys encrypted
//! by [`crate::tokens::stored`], with the schedule that says when each one signs and retires.

use sqlx::FromRow;

use super::{Db, DbError, DjangoTime, on_pool};

/// A stored key; `private_key` is ciphertext.
#[derive(Clone, Debug, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    pub created_at: DjangoTime,
    pub active_from: DjangoTime,
    pub retire_at: Option<DjangoTime>,
}

/// Channel on which a rotation tells the other instances to reload their keys.
pub const KEYS_CHANGED_CHANNEL: &str = "gatehouse_keys_changed";

/// An arbitrary constant naming the key table's lock among PostgreSQL advisory locks.
const PG_KEYS_LOCK: i64 = 0x6761_7465_6b65_7973;

const COLUMNS: &str = "kid, alg, private_key, created_at, active_from, retire_at";

/// Runs `$body` in a transaction that holds the key table's lock (SQLite `BEGIN IMMEDIATE`, a
/// PostgreSQL advisory lock), then commits.
macro_rules! locked {
    ($db:expr, $tx:ident => $body:expr) => {
        match $db {
            Db::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_KEYS_LOCK).execute(&mut *$tx).await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

impl Db {
    /// Every stored key, oldest schedule first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM gatehouse_signing_key ORDER BY active_from, kid");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?))
    }

    /// Stores `key` only when there is no key at all: of several instances starting together
    /// on an empty table, exactly one key wins. Returns the keys stored after.
    pub async fn insert_first_signing_key(&self, key: &SigningKeyRow) -> Result<Vec<SigningKeyRow>, DbError> {
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM gatehouse_signing_key";
        locked!(self, tx => {
            if sqlx::query_scalar::<_, i64>(count).fetch_one(&mut *tx).await? == 0 {
                insert_key(key).execute(&mut *tx).await?;
            }
        });
        self.signing_keys().await
    }

    /// A rotation, in one transaction: every key not yet retiring retires at `retire_others_at`,
    /// `next` is stored, keys retired before `forget_before` are deleted, and (PostgreSQL) the
    /// other instances are told to reload. Returns the kids that now retire.
    pub async fn rotate_signing_keys(
        &self,
        next: &SigningKeyRow,
        retire_others_at: DjangoTime,
        forget_before: DjangoTime,
    ) -> Result<Vec<String>, DbError> {
        let retire = "UPDATE gatehouse_signing_key SET retire_at = $1 WHERE retire_at IS NULL RETURNING kid";
        let forget = "DELETE FROM gatehouse_signing_key WHERE retire_at < $1";
        let retiring: Vec<String> = locked!(self, tx => {
            let retiring = sqlx::query_scalar(retire).bind(retire_others_at).fetch_all(&mut *tx).await?;
            sqlx::query(forget).bind(forget_before).execute(&mut *tx).await?;
            insert_key(next).execute(&mut *tx).await?;
            retiring
        });
        if let Db::Postgres(pool) = self {
            sqlx::query("SELECT pg_notify($1, $2)").bind(KEYS_CHANGED_CHANNEL).bind(&next.kid).execute(pool).await?;
        }
        Ok(retiring)
    }
}

fn insert_key<'q, DB>(key: &'q SigningKeyRow) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DjangoTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<DjangoTime>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO gatehouse_signing_key (kid, alg, private_key, created_at, active_from, retire_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.kid.as_str())
    .bind(key.alg.as_str())
    .bind(key.private_key.as_str())
    .bind(key.created_at)
    .bind(key.active_from)
    .bind(key.retire_at)
}

impl Db {
    /// The longest access-token lifetime any API resource sets, in seconds.
    pub async fn longest_resource_token_ttl(&self) -> Result<Option<i64>, DbError> {
        let sql = "SELECT CAST(MAX(access_token_ttl) AS BIGINT) FROM gatehouse_resource";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
    }
}
