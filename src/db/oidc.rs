//! Queries on the OIDC provider's tables: grants (`gatehouse_oidc_grant`, one per `oidc`
//! session), authorization codes and opaque access tokens. Codes and tokens are stored as
//! SHA-256 digests only.

use sqlx::FromRow;

use super::{Db, DbError, DjangoTime, on_pool};

/// What a user granted an application: the scopes and API resources authorized at `/oidc/auth`.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct GrantRow {
    pub application_id: String,
    /// The SSO session the grant was made in (ended together with it).
    pub browser_session_id: Option<String>,
    /// Space-separated.
    pub scope: String,
    /// A JSON array of resource indicators.
    pub resources: String,
    /// When the user last typed their password, Unix seconds.
    pub auth_time: i64,
}

pub(super) const INSERT_GRANT: &str = "INSERT INTO gatehouse_oidc_grant \
    (session_id, application_id, browser_session_id, scope, resources, auth_time) VALUES ($1, $2, $3, $4, $5, $6)";

/// An authorization code: everything the token endpoint needs to turn it into a grant.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct CodeRow {
    pub digest: String,
    pub application_id: String,
    pub user_id: i32,
    pub browser_session_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub resources: String,
    pub auth_time: i64,
    pub expires_at: DjangoTime,
    pub consumed_at: Option<DjangoTime>,
    /// The grant the code was exchanged for.
    pub session_id: Option<String>,
}

const CODE_COLUMNS: &str = "digest, application_id, user_id, browser_session_id, redirect_uri, code_challenge, nonce, \
                            scope, resources, auth_time, expires_at, consumed_at, session_id";

/// How an attempt to exchange a code ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Consumed {
    /// This exchange used the code and recorded its grant.
    Won,
    /// The code was used before: the grant made from it (if any) must be revoked.
    AlreadyUsed { session_id: Option<String> },
}

/// An access token good only at `/oidc/me` (issued when no API resource was asked for).
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct OpaqueTokenRow {
    pub digest: String,
    pub session_id: String,
    pub scope: String,
    pub created_at: DjangoTime,
    pub expires_at: DjangoTime,
}

/// How long a used or expired code is kept, so that a replay can still be recognised.
const CODE_KEPT_SECS: i64 = 600;

impl Db {
    pub async fn oidc_grant(&self, session_id: &str) -> Result<Option<GrantRow>, DbError> {
        let sql = "SELECT application_id, browser_session_id, scope, resources, auth_time \
                   FROM gatehouse_oidc_grant WHERE session_id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(session_id).fetch_optional(pool).await?))
    }

    /// The unrevoked grant sessions made in an SSO session.
    pub async fn grants_of_browser_session(&self, browser_session_id: &str) -> Result<Vec<String>, DbError> {
        let sql = "SELECT g.session_id FROM gatehouse_oidc_grant g JOIN gatehouse_session s ON s.id = g.session_id \
                   WHERE g.browser_session_id = $1 AND s.revoked_at IS NULL";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(browser_session_id).fetch_all(pool).await?))
    }

    /// Stores a new code, and forgets codes that expired long enough ago.
    pub async fn insert_code(&self, code: &CodeRow) -> Result<(), DbError> {
        let insert = format!(
            "INSERT INTO gatehouse_oidc_code ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)"
        );
        let purge = "DELETE FROM gatehouse_oidc_code WHERE expires_at < $1";
        let horizon = DjangoTime(DjangoTime::now().0 - time::Duration::seconds(CODE_KEPT_SECS));
        on_pool!(self, pool => {
            sqlx::query(purge).bind(horizon).execute(pool).await?;
            sqlx::query(&insert)
                .bind(&code.digest)
                .bind(&code.application_id)
                .bind(code.user_id)
                .bind(&code.browser_session_id)
                .bind(&code.redirect_uri)
                .bind(&code.code_challenge)
                .bind(&code.nonce)
                .bind(&code.scope)
                .bind(&code.resources)
                .bind(code.auth_time)
                .bind(code.expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn code(&self, digest: &str) -> Result<Option<CodeRow>, DbError> {
        let sql = format!("SELECT {CODE_COLUMNS} FROM gatehouse_oidc_code WHERE digest = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(digest).fetch_optional(pool).await?))
    }

    /// Marks the code used by the grant `session_id`, atomically: of any number of concurrent
    /// exchanges, exactly one wins.
    pub async fn consume_code(&self, digest: &str, session_id: &str, now: DjangoTime) -> Result<Consumed, DbError> {
        let mark = "UPDATE gatehouse_oidc_code SET consumed_at = $1, session_id = $2 \
                    WHERE digest = $3 AND consumed_at IS NULL";
        let previous = "SELECT session_id FROM gatehouse_oidc_code WHERE digest = $1";
        Ok(on_pool!(self, pool => {
            let won = sqlx::query(mark).bind(now).bind(session_id).bind(digest).execute(pool).await?.rows_affected() == 1;
            if won {
                Consumed::Won
            } else {
                let session_id: Option<Option<String>> =
                    sqlx::query_scalar(previous).bind(digest).fetch_optional(pool).await?;
                Consumed::AlreadyUsed { session_id: session_id.flatten() }
            }
        }))
    }

    pub async fn insert_opaque_token(&self, token: &OpaqueTokenRow) -> Result<(), DbError> {
        let insert = "INSERT INTO gatehouse_oidc_access_token (digest, session_id, scope, created_at, expires_at) \
                      VALUES ($1, $2, $3, $4, $5)";
        let purge = "DELETE FROM gatehouse_oidc_access_token WHERE expires_at < $1";
        on_pool!(self, pool => {
            sqlx::query(purge).bind(token.created_at).execute(pool).await?;
            sqlx::query(insert)
                .bind(&token.digest)
                .bind(&token.session_id)
                .bind(&token.scope)
                .bind(token.created_at)
                .bind(token.expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn opaque_token(&self, digest: &str) -> Result<Option<OpaqueTokenRow>, DbError> {
        let sql = "SELECT digest, session_id, scope, created_at, expires_at FROM gatehouse_oidc_access_token \
                   WHERE digest = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(digest).fetch_optional(pool).await?))
    }

    pub async fn delete_opaque_token(&self, digest: &str) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_oidc_access_token WHERE digest = $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(digest).execute(pool).await?.rows_affected() == 1))
    }
}
