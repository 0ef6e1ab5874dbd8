//! Schema set-up: Django's `contenttypes` + `auth` tables when they are absent, then
//! gatehouse's own `gatehouse_*` tables, tracked in `gatehouse_migration`.
//!
//! Runs under an exclusive lock (SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock) in one
//! transaction, so instances starting together neither race nor leave half a schema behind.

use sqlx::Executor;

use super::{Db, DbError, DjangoTime, on_pool};
use crate::django::schema;

/// One step of gatehouse's own schema, written once per backend.
#[derive(Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// gatehouse's own tables. Append only: a released migration never changes.
pub const MIGRATIONS: &[Migration] = &[];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DjangoSchema {
    /// gatehouse created the tables and the rows Django's `migrate` would have inserted.
    Created,
    /// The tables were there (made by Django or an earlier run) and were left as they are.
    AlreadyPresent,
}

#[derive(Debug)]
pub struct MigrationReport {
    pub django: DjangoSchema,
    pub applied: Vec<&'static str>,
}

/// An arbitrary constant that names gatehouse's schema lock among PostgreSQL advisory locks.
const PG_LOCK_KEY: i64 = 0x6761_7465_686f_7573;

const SQLITE_TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS gatehouse_migration (\
    version integer NOT NULL PRIMARY KEY, name varchar(255) NOT NULL, applied datetime NOT NULL)";
const POSTGRES_TRACKING_TABLE: &str = "CREATE TABLE IF NOT EXISTS gatehouse_migration (\
    version bigint NOT NULL PRIMARY KEY, name varchar(255) NOT NULL, applied timestamptz NOT NULL)";

/// The part of a migration that is the same on both backends, given an open, locked
/// transaction `$tx` and the backend's Django DDL and tracking-table SQL.
macro_rules! migrate_in {
    ($tx:ident, $present:expr, $ddl:expr, $sequences:expr, $tracking:expr, $migrations:expr, $sql:ident) => {{
        let present = $present;
        let django = if present.len() == schema::DJANGO_TABLES.len() {
            DjangoSchema::AlreadyPresent
        } else if present.is_empty() {
            sqlx::raw_sql($ddl).execute(&mut *$tx).await?;
            sqlx::raw_sql(schema::SEED_ROWS).execute(&mut *$tx).await?;
            for (table, last_id) in $sequences {
                sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)")
                    .bind(table)
                    .bind(last_id)
                    .execute(&mut *$tx)
                    .await?;
            }
            DjangoSchema::Created
        } else {
            return Err(partial_schema(&present));
        };
        $tx.execute($tracking).await?;
        let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM gatehouse_migration").fetch_all(&mut *$tx).await?;
        warn_about_unknown(&done, $migrations);
        let mut applied = Vec::new();
        for migration in $migrations.iter().filter(|m| !done.contains(&m.version)) {
            sqlx::raw_sql(migration.$sql).execute(&mut *$tx).await?;
            sqlx::query("INSERT INTO gatehouse_migration (version, name, applied) VALUES ($1, $2, $3)")
                .bind(migration.version)
                .bind(migration.name)
                .bind(DjangoTime::now())
                .execute(&mut *$tx)
                .await?;
            tracing::info!(version = migration.version, name = migration.name, "applied gatehouse migration");
            applied.push(migration.name);
        }
        $tx.commit().await?;
        Ok(MigrationReport { django, applied })
    }};
}

impl Db {
    /// Brings the database up to date. See the module documentation.
    pub async fn migrate(&self) -> Result<MigrationReport, DbError> {
        self.migrate_with(MIGRATIONS).await
    }

    /// [`Db::migrate`] with an explicit list of gatehouse migrations.
    pub async fn migrate_with(&self, migrations: &[Migration]) -> Result<MigrationReport, DbError> {
        match self {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let present = sqlite_tables_present(&mut tx).await?;
                let no_sequences: [(&str, i64); 0] = [];
                migrate_in!(tx, present, &schema::sqlite_ddl(), no_sequences, SQLITE_TRACKING_TABLE, migrations, sqlite)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK_KEY).execute(&mut *tx).await?;
                let present = postgres_tables_present(&mut tx).await?;
                migrate_in!(
                    tx,
                    present,
                    schema::POSTGRES_DDL,
                    schema::POSTGRES_SEEDED_SEQUENCES,
                    POSTGRES_TRACKING_TABLE,
                    migrations,
                    postgres
                )
            }
        }
    }

    /// Versions recorded in `gatehouse_migration`, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, DbError> {
        let sql = "SELECT version FROM gatehouse_migration ORDER BY version";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
    }
}

fn partial_schema(present: &[&str]) -> DbError {
    let missing: Vec<_> = schema::DJANGO_TABLES.iter().filter(|t| !present.contains(t)).collect();
    DbError::Schema(format!(
        "the database has part of Django's auth schema (missing: {missing:?}); \
         run Django's `manage.py migrate` first, then start gatehouse again"
    ))
}

fn warn_about_unknown(done: &[i64], migrations: &[Migration]) {
    if let Some(unknown) = done.iter().find(|v| !migrations.iter().any(|m| m.version == **v)) {
        tracing::warn!(
            version = unknown,
            "the database has a gatehouse migration this binary does not know (a newer release?)"
        );
    }
}

async fn sqlite_tables_present(conn: &mut sqlx::SqliteConnection) -> Result<Vec<&'static str>, DbError> {
    let mut present = Vec::new();
    for table in schema::DJANGO_TABLES {
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
        if found > 0 {
            present.push(table);
        }
    }
    Ok(present)
}

async fn postgres_tables_present(conn: &mut sqlx::PgConnection) -> Result<Vec<&'static str>, DbError> {
    let mut present = Vec::new();
    for table in schema::DJANGO_TABLES {
        // to_regclass follows search_path, exactly as Django's own queries do.
        let found: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(&mut *conn).await?;
        if found {
            present.push(table);
        }
    }
    Ok(present)
}
