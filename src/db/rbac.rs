//! Queries for RBAC: API resources and their scopes, roles (Django groups plus gatehouse's
//! metadata), role–scope links, assignments (`auth_user_groups`), Django permissions, and the
//! small key–value `gatehouse_config` table.
//!
//! A Django group without a `gatehouse_role` row is a plain user role: Django and the Django
//! admin keep creating groups without knowing about gatehouse.

use serde::Serialize;
use sqlx::FromRow;

use super::{Db, DbError, DjangoTime, UserRow, on_pool};

#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct ResourceRow {
    pub id: i32,
    pub indicator: String,
    pub name: String,
    pub access_token_ttl: i32,
    pub is_default: bool,
}

#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct ScopeRow {
    pub id: i32,
    pub resource_id: i32,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, FromRow, Serialize, PartialEq, Eq)]
pub struct RoleRow {
    pub id: i32,
    pub name: String,
    pub description: String,
    /// `user` or `machine`.
    #[sqlx(rename = "role_type")]
    #[serde(rename = "type")]
    pub role_type: String,
    pub is_default: bool,
}

/// A scope with the resource it belongs to, as the custom-claims context shows it.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct ScopeGrantRow {
    pub role_id: i32,
    pub scope_id: i32,
    pub scope_name: String,
    pub scope_description: String,
    pub resource_id: i32,
    pub resource_name: String,
    pub indicator: String,
    pub resource_is_default: bool,
    pub access_token_ttl: i32,
}

/// One page of a listing, and how many rows there are in all.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// `LIMIT` and `OFFSET` of a page.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
}

impl PageRequest {
    pub const ALL: PageRequest = PageRequest { limit: i64::MAX, offset: 0 };
}

/// The fields of a resource that can change.
#[derive(Clone, Debug, Default)]
pub struct ResourcePatch {
    pub name: Option<String>,
    pub access_token_ttl: Option<i32>,
}

/// The fields of a role that can change.
#[derive(Clone, Debug, Default)]
pub struct RolePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_default: Option<bool>,
}

const RESOURCE_COLUMNS: &str = "id, indicator, name, access_token_ttl, is_default";
/// Roles: every Django group, with gatehouse's metadata or its defaults.
pub(super) const ROLE_SELECT: &str = "SELECT g.id, g.name, COALESCE(r.description, '') AS description, \
    COALESCE(r.type, 'user') AS role_type, COALESCE(r.is_default, FALSE) AS is_default \
    FROM auth_group g LEFT JOIN gatehouse_role r ON r.group_id = g.id";
const USER_COLUMNS: &str = "u.id, u.password, u.last_login, u.is_superuser, u.username, u.first_name, \
    u.last_name, u.email, u.is_staff, u.is_active, u.date_joined";

impl Db {
    pub async fn resources(&self, page: PageRequest) -> Result<Page<ResourceRow>, DbError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM gatehouse_resource ORDER BY id LIMIT $1 OFFSET $2");
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM gatehouse_resource";
        Ok(on_pool!(self, pool => Page {
            items: sqlx::query_as(&sql).bind(page.limit).bind(page.offset).fetch_all(pool).await?,
            total: sqlx::query_scalar(count).fetch_one(pool).await?,
        }))
    }

    pub async fn resource(&self, id: i32) -> Result<Option<ResourceRow>, DbError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM gatehouse_resource WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn resource_by_indicator(&self, indicator: &str) -> Result<Option<ResourceRow>, DbError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM gatehouse_resource WHERE indicator = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(indicator).fetch_optional(pool).await?))
    }

    pub async fn default_resource(&self) -> Result<Option<ResourceRow>, DbError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM gatehouse_resource WHERE is_default");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).fetch_optional(pool).await?))
    }

    /// Every resource indicator, for audience checks.
    pub async fn resource_indicators(&self) -> Result<Vec<String>, DbError> {
        let sql = "SELECT indicator FROM gatehouse_resource ORDER BY indicator";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    /// Fails with a unique violation when the indicator is taken.
    pub async fn insert_resource(&self, indicator: &str, name: &str, ttl: i32) -> Result<ResourceRow, DbError> {
        let sql = format!(
            "INSERT INTO gatehouse_resource (indicator, name, access_token_ttl, is_default) \
             VALUES ($1, $2, $3, FALSE) RETURNING {RESOURCE_COLUMNS}"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(indicator).bind(name).bind(ttl).fetch_one(pool).await?))
    }

    pub async fn update_resource(&self, id: i32, patch: &ResourcePatch) -> Result<Option<ResourceRow>, DbError> {
        let sql = format!(
            "UPDATE gatehouse_resource SET name = COALESCE($2, name), \
             access_token_ttl = COALESCE($3, access_token_ttl) WHERE id = $1 RETURNING {RESOURCE_COLUMNS}"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(patch.name.as_deref())
            .bind(patch.access_token_ttl)
            .fetch_optional(pool)
            .await?))
    }

    /// Makes this resource the default (clearing the previous one), or clears its flag.
    pub async fn set_default_resource(&self, id: i32, is_default: bool) -> Result<Option<ResourceRow>, DbError> {
        let sql = format!("UPDATE gatehouse_resource SET is_default = $2 WHERE id = $1 RETURNING {RESOURCE_COLUMNS}");
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if is_default {
                sqlx::query("UPDATE gatehouse_resource SET is_default = FALSE WHERE is_default AND id <> $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let row = sqlx::query_as(&sql).bind(id).bind(is_default).fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            row
        }))
    }

    /// Deletes the resource with its scopes and their role links; true when it existed.
    pub async fn delete_resource(&self, id: i32) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_resource WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected()) == 1)
    }

    /// Every scope name of every API resource, once each: the discovery document lists them.
    pub async fn all_scope_names(&self) -> Result<Vec<String>, DbError> {
        let sql = "SELECT DISTINCT name FROM gatehouse_scope ORDER BY name";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    pub async fn scopes_of_resource(&self, resource_id: i32) -> Result<Vec<ScopeRow>, DbError> {
        let sql = "SELECT id, resource_id, name, description FROM gatehouse_scope WHERE resource_id = $1 ORDER BY name";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(resource_id).fetch_all(pool).await?))
    }

    pub async fn scope(&self, scope_id: i32) -> Result<Option<ScopeRow>, DbError> {
        let sql = "SELECT id, resource_id, name, description FROM gatehouse_scope WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(scope_id).fetch_optional(pool).await?))
    }

    /// Fails with a unique violation when the resource already has a scope of that name.
    pub async fn insert_scope(&self, resource_id: i32, name: &str, description: &str) -> Result<ScopeRow, DbError> {
        let sql = "INSERT INTO gatehouse_scope (resource_id, name, description) VALUES ($1, $2, $3) \
                   RETURNING id, resource_id, name, description";
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(resource_id)
            .bind(name)
            .bind(description)
            .fetch_one(pool)
            .await?))
    }

    pub async fn update_scope(
        &self,
        scope_id: i32,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Option<ScopeRow>, DbError> {
        let sql = "UPDATE gatehouse_scope SET name = COALESCE($2, name), description = COALESCE($3, description) \
                   WHERE id = $1 RETURNING id, resource_id, name, description";
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(scope_id)
            .bind(name)
            .bind(description)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn delete_scope(&self, scope_id: i32) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_scope WHERE id = $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(scope_id).execute(pool).await?.rows_affected()) == 1)
    }

    pub async fn roles(&self, page: PageRequest) -> Result<Page<RoleRow>, DbError> {
        let sql = format!("{ROLE_SELECT} ORDER BY g.name LIMIT $1 OFFSET $2");
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM auth_group";
        Ok(on_pool!(self, pool => Page {
            items: sqlx::query_as(&sql).bind(page.limit).bind(page.offset).fetch_all(pool).await?,
            total: sqlx::query_scalar(count).fetch_one(pool).await?,
        }))
    }

    pub async fn role(&self, id: i32) -> Result<Option<RoleRow>, DbError> {
        let sql = format!("{ROLE_SELECT} WHERE g.id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    pub async fn role_by_name(&self, name: &str) -> Result<Option<RoleRow>, DbError> {
        let sql = format!("{ROLE_SELECT} WHERE g.name = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(name).fetch_optional(pool).await?))
    }

    /// Creates the Django group and its metadata in one transaction. Fails with a unique
    /// violation when a group of that name exists.
    pub async fn insert_role(&self, role: &RoleRow) -> Result<RoleRow, DbError> {
        let meta = "INSERT INTO gatehouse_role (group_id, description, type, is_default) VALUES ($1, $2, $3, $4)";
        let id: i32 = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id: i32 = sqlx::query_scalar("INSERT INTO auth_group (name) VALUES ($1) RETURNING id")
                .bind(&role.name)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(meta)
                .bind(id)
                .bind(&role.description)
                .bind(&role.role_type)
                .bind(role.is_default)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        Ok(RoleRow { id, ..role.clone() })
    }

    /// Renames the group and updates the metadata (creating the row for a plain Django group).
    pub async fn update_role(&self, id: i32, patch: &RolePatch) -> Result<Option<RoleRow>, DbError> {
        let Some(current) = self.role(id).await? else { return Ok(None) };
        let updated = RoleRow {
            id,
            name: patch.name.clone().unwrap_or(current.name),
            description: patch.description.clone().unwrap_or(current.description),
            role_type: current.role_type,
            is_default: patch.is_default.unwrap_or(current.is_default),
        };
        let upsert = "INSERT INTO gatehouse_role (group_id, description, type, is_default) VALUES ($1, $2, $3, $4) \
                      ON CONFLICT (group_id) DO UPDATE SET description = excluded.description, \
                      is_default = excluded.is_default";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE auth_group SET name = $2 WHERE id = $1")
                .bind(id)
                .bind(&updated.name)
                .execute(&mut *tx)
                .await?;
            sqlx::query(upsert)
                .bind(id)
                .bind(&updated.description)
                .bind(&updated.role_type)
                .bind(updated.is_default)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(Some(updated))
    }

    /// Deletes the group as Django's admin does: memberships and group permissions first
    /// (Django's own keys do not cascade), then the group; gatehouse's rows cascade.
    pub async fn delete_role(&self, id: i32) -> Result<bool, DbError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for sql in [
                "DELETE FROM auth_user_groups WHERE group_id = $1",
                "DELETE FROM auth_group_permissions WHERE group_id = $1",
                "DELETE FROM gatehouse_role_scope WHERE group_id = $1",
                "DELETE FROM gatehouse_role WHERE group_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query("DELETE FROM auth_group WHERE id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            deleted.rows_affected() == 1
        }))
    }

    /// The scopes a role grants, with their resources.
    pub async fn role_scopes(&self, role_id: i32) -> Result<Vec<ScopeGrantRow>, DbError> {
        let sql = format!("{SCOPE_GRANT_SELECT} WHERE rs.group_id = $1 ORDER BY res.indicator, s.name");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(role_id).fetch_all(pool).await?))
    }

    /// Links scopes to a role; links that exist stay. All or nothing.
    pub async fn add_role_scopes(&self, role_id: i32, scope_ids: &[i32]) -> Result<(), DbError> {
        let sql = "INSERT INTO gatehouse_role_scope (group_id, scope_id) VALUES ($1, $2) \
                   ON CONFLICT (group_id, scope_id) DO NOTHING";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for scope_id in scope_ids {
                sqlx::query(sql).bind(role_id).bind(scope_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn remove_role_scope(&self, role_id: i32, scope_id: i32) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_role_scope WHERE group_id = $1 AND scope_id = $2";
        let removed =
            on_pool!(self, pool => sqlx::query(sql).bind(role_id).bind(scope_id).execute(pool).await?.rows_affected());
        Ok(removed == 1)
    }

    /// The members of a role (group), by id.
    pub async fn role_users(&self, role_id: i32, page: PageRequest) -> Result<Page<UserRow>, DbError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM auth_user u JOIN auth_user_groups ug ON ug.user_id = u.id \
             WHERE ug.group_id = $1 ORDER BY u.id LIMIT $2 OFFSET $3"
        );
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM auth_user_groups WHERE group_id = $1";
        Ok(on_pool!(self, pool => Page {
            items: sqlx::query_as(&sql).bind(role_id).bind(page.limit).bind(page.offset).fetch_all(pool).await?,
            total: sqlx::query_scalar(count).bind(role_id).fetch_one(pool).await?,
        }))
    }

    /// Adds users to a role; memberships that exist stay. All or nothing.
    pub async fn add_role_users(&self, role_id: i32, user_ids: &[i32]) -> Result<(), DbError> {
        let sql = "INSERT INTO auth_user_groups (user_id, group_id) VALUES ($1, $2) \
                   ON CONFLICT (user_id, group_id) DO NOTHING";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for user_id in user_ids {
                sqlx::query(sql).bind(user_id).bind(role_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every role (group) the user is in, whatever its type.
    pub async fn user_roles(&self, user_id: i32) -> Result<Vec<RoleRow>, DbError> {
        let sql = format!(
            "{ROLE_SELECT} JOIN auth_user_groups ug ON ug.group_id = g.id WHERE ug.user_id = $1 ORDER BY g.name"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?))
    }

    /// Makes the user's roles exactly `role_ids`, in one transaction.
    pub async fn replace_user_roles(&self, user_id: i32, role_ids: &[i32]) -> Result<(), DbError> {
        let insert = "INSERT INTO auth_user_groups (user_id, group_id) VALUES ($1, $2) \
                      ON CONFLICT (user_id, group_id) DO NOTHING";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM auth_user_groups WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
            for role_id in role_ids {
                sqlx::query(insert).bind(user_id).bind(role_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The user roles flagged as default, which new users get at signup.
    pub async fn default_role_ids(&self) -> Result<Vec<i32>, DbError> {
        let sql = "SELECT group_id FROM gatehouse_role WHERE is_default AND type = 'user' ORDER BY group_id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await?))
    }

    /// The names of the scopes the user holds on a resource through their user roles.
    pub async fn user_scope_names(&self, user_id: i32, resource_id: i32) -> Result<Vec<String>, DbError> {
        let sql = "SELECT DISTINCT s.name FROM gatehouse_scope s \
                   JOIN gatehouse_role_scope rs ON rs.scope_id = s.id \
                   JOIN auth_user_groups ug ON ug.group_id = rs.group_id \
                   LEFT JOIN gatehouse_role r ON r.group_id = rs.group_id \
                   WHERE ug.user_id = $1 AND s.resource_id = $2 AND COALESCE(r.type, 'user') = 'user' \
                   ORDER BY s.name";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).bind(resource_id).fetch_all(pool).await?))
    }

    /// Every scope of every user role the user holds, with its resource.
    pub async fn user_scope_grants(&self, user_id: i32) -> Result<Vec<ScopeGrantRow>, DbError> {
        let sql = format!(
            "{SCOPE_GRANT_SELECT} JOIN auth_user_groups ug ON ug.group_id = rs.group_id \
             LEFT JOIN gatehouse_role r ON r.group_id = rs.group_id \
             WHERE ug.user_id = $1 AND COALESCE(r.type, 'user') = 'user' ORDER BY res.indicator, s.name"
        );
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await?))
    }

    /// The user's Django permissions as `app_label.codename`, from their groups and their own
    /// permissions; every permission for an active superuser (Django's `has_perm`).
    pub async fn user_permissions(&self, user: &UserRow) -> Result<Vec<String>, DbError> {
        let all = "SELECT DISTINCT ct.app_label || '.' || p.codename AS perm FROM auth_permission p \
                   JOIN django_content_type ct ON ct.id = p.content_type_id ORDER BY perm";
        let own = "SELECT DISTINCT ct.app_label || '.' || p.codename AS perm FROM auth_permission p \
                   JOIN django_content_type ct ON ct.id = p.content_type_id \
                   WHERE p.id IN (SELECT permission_id FROM auth_user_user_permissions WHERE user_id = $1) \
                   OR p.id IN (SELECT gp.permission_id FROM auth_group_permissions gp \
                               JOIN auth_user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = $1) \
                   ORDER BY perm";
        if !user.is_active {
            return Ok(Vec::new());
        }
        let sql = if user.is_superuser { all } else { own };
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(user.id).fetch_all(pool).await?))
    }

    pub async fn config(&self, key: &str) -> Result<Option<String>, DbError> {
        let sql = "SELECT value FROM gatehouse_config WHERE key = $1";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(key).fetch_optional(pool).await?))
    }

    pub async fn put_config(&self, key: &str, value: &str) -> Result<(), DbError> {
        let sql = "INSERT INTO gatehouse_config (key, value, updated_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
        on_pool!(self, pool => sqlx::query(sql).bind(key).bind(value).bind(DjangoTime::now()).execute(pool).await.map(drop)?);
        Ok(())
    }

    pub async fn delete_config(&self, key: &str) -> Result<bool, DbError> {
        let sql = "DELETE FROM gatehouse_config WHERE key = $1";
        Ok(on_pool!(self, pool => sqlx::query(sql).bind(key).execute(pool).await?.rows_affected()) == 1)
    }
}

const SCOPE_GRANT_SELECT: &str = "SELECT rs.group_id AS role_id, s.id AS scope_id, s.name AS scope_name, \
    s.description AS scope_description, res.id AS resource_id, res.name AS resource_name, res.indicator, \
    res.is_default AS resource_is_default, res.access_token_ttl \
    FROM gatehouse_role_scope rs JOIN gatehouse_scope s ON s.id = rs.scope_id \
    JOIN gatehouse_resource res ON res.id = s.resource_id";
