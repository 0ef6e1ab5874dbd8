//! Queries on `gatehouse_application` (OIDC clients) and their machine roles.

use sqlx::FromRow;

use super::rbac::ROLE_SELECT;
use super::{Db, DbError, DjangoTime, RoleRow, on_pool};

/// One application. Redirect URI lists are JSON arrays of strings.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct ApplicationRow {
    pub id: String,
    pub name: String,
    #[sqlx(rename = "type")]
    pub app_type: String,
    pub secret_digest: Option<String>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub is_third_party: bool,
    pub created_at: DjangoTime,
}

const COLUMNS: &str =
    "id, name, type, secret_digest, redirect_uris, post_logout_redirect_uris, is_third_party, created_at";

impl Db {
    pub async fn applications(&self) -> Result<Vec<ApplicationRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM gatehouse_application ORDER BY created_at, id");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await?))
    }

    pub async fn application(&self, id: &str) -> Result<Option<ApplicationRow>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM gatehouse_application WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn insert_application(&self, app: &ApplicationRow) -> Result<(), DbError> {
        let sql = format!("INSERT INTO gatehouse_application ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        on_pool!(self, pool => sqlx::query(&sql)
            .bind(&app.id)
            .bind(&app.name)
            .bind(&app.app_type)
            .bind(&app.secret_digest)
            .bind(&app.redirect_uris)
            .bind(&app.post_logout_redirect_uris)
            .bind(app.is_third_party)
            .bind(app.created_at)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Updates the changeable fields (name and redirect URIs); false when there is no such app.
    pub async fn update_application(&self, app: &ApplicationRow) -> Result<bool, DbError> {
        let sql = "UPDATE gatehouse_application SET name = $2, redirect_uris = $3, post_logout_redirect_uris = $4 \
                   WHERE id = $1";
        let updated = on_pool!(self, pool => sqlx::query(sql)
            .bind(&app.id)
            .bind(&app.name)
            .bind(&app.redirect_uris)
            .bind(&app.post_logout_redirect_uris)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated == 1)
    }

    pub async fn set_application_secret(&self, id: &str, digest: &str) -> Result<bool, DbError> {
        let sql = "UPDATE gatehouse_application SET secret_digest = $2 WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(id).bind(digest).execute(pool).await?.rows_affected()) == 1)
    }

    pub async fn delete_application(&self, id: &str) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_application WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected()) == 1)
    }

    /// The roles an application holds (machine roles).
    pub async fn application_roles(&self, id: &str) -> Result<Vec<RoleRow>, DbError> {
        let sql = format!(
            "{ROLE_SELECT} JOIN gatehouse_application_role ar ON ar.group_id = g.id \
             WHERE ar.application_id = $1 ORDER BY g.name"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_all(pool).await?))
    }

    pub async fn add_application_roles(&self, id: &str, role_ids: &[i32]) -> Result<(), DbError> {
        let sql = "INSERT INTO gatehouse_application_role (application_id, group_id) VALUES ($1, $2) \
                   ON CONFLICT (application_id, group_id) DO NOTHING";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for role_id in role_ids {
                sqlx::query(sql).bind(id).bind(role_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn remove_application_role(&self, id: &str, role_id: i32) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_application_role WHERE application_id = $1 AND group_id = $2";
        let removed =
            on_pool!(self, pool => sqlx::query(sql).bind(id).bind(role_id).execute(pool).await?.rows_affected());
        Ok(removed == 1)
    }

    /// The scopes an application holds on a resource through its machine roles.
    pub async fn application_scope_names(&self, id: &str, resource_id: i32) -> Result<Vec<String>, DbError> {
        let sql = "SELECT DISTINCT s.name FROM gatehouse_scope s \
                   JOIN gatehouse_role_scope rs ON rs.scope_id = s.id \
                   JOIN gatehouse_application_role ar ON ar.group_id = rs.group_id \
                   JOIN gatehouse_role r ON r.group_id = rs.group_id \
                   WHERE ar.application_id = $1 AND s.resource_id = $2 AND r.type = 'machine' ORDER BY s.name";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(id).bind(resource_id).fetch_all(pool).await?))
    }
}
