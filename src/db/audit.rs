//! The audit log (`gatehouse_audit_event`): who did what to whom, from where, and how it ended.
//! Never a password or a token.

use sqlx::FromRow;

use super::{Db, DbError, DjangoTime, Page, PageRequest, on_pool};

/// One audit-log record.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: DjangoTime,
    pub kind: String,
    /// Who acted: `user:ID`, `admin:ID`, `admin-secret`, `client:ID`, `cli`, `system`; none
    /// when anonymous (a failed sign-in).
    pub actor: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The user the event is about.
    pub user_id: Option<i32>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

const AUDIT_COLUMNS: &str = "id, at, kind, actor, outcome, user_id, session_id, ip, detail";

/// An event to record, built with the methods below.
#[derive(Clone, Debug)]
pub struct AuditEvent<'a> {
    kind: &'a str,
    actor: Option<String>,
    failed: bool,
    user_id: Option<i32>,
    session_id: Option<&'a str>,
    ip: Option<&'a str>,
    detail: &'a str,
}

impl<'a> AuditEvent<'a> {
    pub fn new(kind: &'a str, detail: &'a str) -> Self {
        AuditEvent { kind, actor: None, failed: false, user_id: None, session_id: None, ip: None, detail }
    }

    /// An event gatehouse itself caused (a schedule, a start-up step).
    pub fn system(kind: &'a str, detail: &'a str) -> Self {
        Self::new(kind, detail).by("system")
    }

    /// An event the user caused about themselves.
    pub fn by_user(kind: &'a str, user_id: i32, detail: &'a str) -> Self {
        Self::new(kind, detail).by(format!("user:{user_id}")).about(Some(user_id))
    }

    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn about(mut self, user_id: Option<i32>) -> Self {
        self.user_id = user_id;
        self
    }

    pub fn session(mut self, session_id: Option<&'a str>) -> Self {
        self.session_id = session_id;
        self
    }

    pub fn from_ip(mut self, ip: Option<&'a str>) -> Self {
        self.ip = ip;
        self
    }

    pub fn failed(mut self) -> Self {
        self.failed = true;
        self
    }
}

impl Db {
    /// Appends to the audit log.
    pub async fn audit_event(&self, event: &AuditEvent<'_>) -> Result<(), DbError> {
        let sql = "INSERT INTO gatehouse_audit_event (at, kind, actor, outcome, user_id, session_id, ip, detail) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let outcome = if event.failed { "failure" } else { "success" };
        on_pool!(self, pool => sqlx::query(sql)
            .bind(DjangoTime::now())
            .bind(event.kind)
            .bind(event.actor.as_deref())
            .bind(outcome)
            .bind(event.user_id)
            .bind(event.session_id)
            .bind(event.ip)
            .bind(event.detail)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// The audit log, newest first, optionally of one kind.
    pub async fn audit_events(&self, page: PageRequest, kind: Option<&str>) -> Result<Page<AuditRow>, DbError> {
        let (filter, count) = match kind {
            Some(_) => {
                ("WHERE kind = $3", "SELECT CAST(COUNT(*) AS BIGINT) FROM gatehouse_audit_event WHERE kind = $1")
            }
            None => ("", "SELECT CAST(COUNT(*) AS BIGINT) FROM gatehouse_audit_event"),
        };
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM gatehouse_audit_event {filter} ORDER BY id DESC LIMIT $1 OFFSET $2");
        Ok(on_pool!(self, pool => {
            let mut items = sqlx::query_as::<_, AuditRow>(&sql).bind(page.limit).bind(page.offset);
            let mut total = sqlx::query_scalar::<_, i64>(count);
            if let Some(kind) = kind {
                items = items.bind(kind);
                total = total.bind(kind);
            }
            Page { items: items.fetch_all(pool).await?, total: total.fetch_one(pool).await? }
        }))
    }

    /// Audit records after `id`, oldest first (for following the log).
    pub async fn audit_events_after(&self, id: i64, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM gatehouse_audit_event WHERE id > $1 ORDER BY id LIMIT $2");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).bind(limit).fetch_all(pool).await?))
    }

    /// Deletes audit records older than `before`; returns how many.
    pub async fn purge_audit(&self, before: DjangoTime) -> Result<u64, DbError> {
        let sql = "DELETE FROM gatehouse_audit_event WHERE at < $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(before).execute(pool).await?.rows_affected()))
    }
}
