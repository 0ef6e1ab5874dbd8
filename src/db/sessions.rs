//! Queries on `gatehouse_session`, `gatehouse_refresh_token` and `gatehouse_audit_event`.

use sqlx::FromRow;

use super::oidc::{GrantRow, INSERT_GRANT};
use super::{Db, DbError, DjangoTime, on_pool};

#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: i32,
    pub password_fingerprint: String,
    pub created_at: DjangoTime,
    pub last_used_at: DjangoTime,
    pub expires_at: DjangoTime,
    pub revoked_at: Option<DjangoTime>,
    pub revoked_reason: Option<String>,
    pub ip: String,
    pub user_agent: String,
    /// `api` (login at `/webhook/login`), `browser` (the OIDC sign-in page's SSO session) or
    /// `oidc` (an OIDC grant: one application's tokens for one user).
    pub kind: String,
    /// The application of an `oidc` session.
    pub client_id: Option<String>,
}

/// A session with the state of its user now (`None` when the user row is gone).
#[derive(Clone, Debug, FromRow)]
pub struct SessionState {
    #[sqlx(flatten)]
    pub session: SessionRow,
    pub user_is_active: Option<bool>,
    pub user_password: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct RefreshRow {
    pub digest: String,
    pub session_id: String,
    pub rotated_at: Option<DjangoTime>,
}

/// How a rotation attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// This call rotated the token and recorded its successor.
    Rotated,
    /// Someone else rotated it first (a concurrent refresh, or an earlier one), or the session
    /// was revoked meanwhile.
    AlreadyRotated,
}

const SESSION_COLUMNS: &str = "s.id, s.user_id, s.password_fingerprint, s.created_at, s.last_used_at, s.expires_at, \
                               s.revoked_at, s.revoked_reason, s.ip, s.user_agent, s.kind, s.client_id";

impl Db {
    /// Inserts a session with its first refresh token and, for an OIDC grant, the grant's row,
    /// in one transaction.
    pub async fn insert_session(
        &self,
        session: &SessionRow,
        refresh_digest: &str,
        grant: Option<&GrantRow>,
    ) -> Result<(), DbError> {
        let insert_session = "INSERT INTO gatehouse_session (id, user_id, password_fingerprint, created_at, last_used_at, \
                              expires_at, revoked_at, revoked_reason, ip, user_agent, kind, client_id) \
                              VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8, $9, $10)";
        let insert_token = "INSERT INTO gatehouse_refresh_token (digest, session_id, created_at, rotated_at) VALUES ($1, $2, $3, NULL)";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(insert_session)
                .bind(&session.id)
                .bind(session.user_id)
                .bind(&session.password_fingerprint)
                .bind(session.created_at)
                .bind(session.last_used_at)
                .bind(session.expires_at)
                .bind(&session.ip)
                .bind(&session.user_agent)
                .bind(&session.kind)
                .bind(&session.client_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(insert_token).bind(refresh_digest).bind(&session.id).bind(session.created_at).execute(&mut *tx).await?;
            if let Some(grant) = grant {
                sqlx::query(INSERT_GRANT)
                    .bind(&session.id)
                    .bind(&grant.application_id)
                    .bind(&grant.browser_session_id)
                    .bind(&grant.scope)
                    .bind(&grant.resources)
                    .bind(grant.auth_time)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn refresh_token(&self, digest: &str) -> Result<Option<RefreshRow>, DbError> {
        let sql = "SELECT digest, session_id, rotated_at FROM gatehouse_refresh_token WHERE digest = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(digest).fetch_optional(pool).await?))
    }

    /// The session and its user's current state, in one round trip.
    pub async fn session_state(&self, id: &str) -> Result<Option<SessionState>, DbError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, u.is_active AS user_is_active, u.password AS user_password \
             FROM gatehouse_session s LEFT JOIN auth_user u ON u.id = s.user_id WHERE s.id = $1"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// Marks `digest` rotated and records `successor`, atomically: of any number of concurrent
    /// calls for one token, exactly one gets [`Rotation::Rotated`].
    pub async fn rotate_refresh_token(
        &self,
        digest: &str,
        successor: &str,
        session_id: &str,
        now: DjangoTime,
    ) -> Result<Rotation, DbError> {
        let mark = "UPDATE gatehouse_refresh_token SET rotated_at = $1 WHERE digest = $2 AND rotated_at IS NULL \
                    AND EXISTS (SELECT 1 FROM gatehouse_session WHERE id = $3 AND revoked_at IS NULL)";
        let insert = "INSERT INTO gatehouse_refresh_token (digest, session_id, created_at, rotated_at) VALUES ($1, $2, $3, NULL)";
        let touch = "UPDATE gatehouse_session SET last_used_at = $1 WHERE id = $2";
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The conditional write comes first, so on SQLite this transaction takes the write
            // lock (waiting its turn) before it reads anything.
            let won =
                sqlx::query(mark).bind(now).bind(digest).bind(session_id).execute(&mut *tx).await?.rows_affected() == 1;
            if won {
                sqlx::query(insert).bind(successor).bind(session_id).bind(now).execute(&mut *tx).await?;
                sqlx::query(touch).bind(now).bind(session_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            if won { Rotation::Rotated } else { Rotation::AlreadyRotated }
        }))
    }

    /// Revokes one session; false when it was already revoked or does not exist.
    pub async fn revoke_session(&self, id: &str, now: DjangoTime, reason: &str) -> Result<bool, DbError> {
        let sql =
            "UPDATE gatehouse_session SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL";
        let n = on_pool!(self, pool => sqlx::query(sql).bind(now).bind(reason).bind(id).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    /// Revokes every live session of a user; returns the ids revoked.
    pub async fn revoke_user_sessions(
        &self,
        user_id: i32,
        now: DjangoTime,
        reason: &str,
    ) -> Result<Vec<String>, DbError> {
        let sql = "UPDATE gatehouse_session SET revoked_at = $1, revoked_reason = $2 \
                   WHERE user_id = $3 AND revoked_at IS NULL RETURNING id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(now).bind(reason).bind(user_id).fetch_all(pool).await?))
    }

    /// The user's sessions that are not revoked, newest first (expiry is judged by the caller).
    pub async fn unrevoked_sessions(&self, user_id: i32) -> Result<Vec<SessionRow>, DbError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM gatehouse_session s WHERE s.user_id = $1 AND s.revoked_at IS NULL \
             ORDER BY s.created_at DESC"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?))
    }
}
