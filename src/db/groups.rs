//! Queries on `auth_group` and `auth_user_groups`.

use sqlx::FromRow;

use super::{Db, DbError, on_pool};

#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct GroupSummary {
    pub id: i32,
    pub name: String,
    pub members: i64,
}

impl Db {
    /// Creates a group and returns its id.
    pub async fn insert_group(&self, name: &str) -> Result<i32, DbError> {
        let sql = "INSERT INTO auth_group (name) VALUES ($1) RETURNING id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(name).fetch_one(pool).await?))
    }

    pub async fn group_id(&self, name: &str) -> Result<Option<i32>, DbError> {
        let sql = "SELECT id FROM auth_group WHERE name = $1";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(name).fetch_optional(pool).await?))
    }

    /// Adds the membership; true when it is new, false when it already existed.
    pub async fn add_user_to_group(&self, user_id: i32, group_id: i32) -> Result<bool, DbError> {
        let sql = "INSERT INTO auth_user_groups (user_id, group_id) VALUES ($1, $2) \
                   ON CONFLICT (user_id, group_id) DO NOTHING";
        let added =
            on_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(group_id).execute(pool).await?.rows_affected());
        Ok(added == 1)
    }

    /// Removes the membership; true when there was one.
    pub async fn remove_user_from_group(&self, user_id: i32, group_id: i32) -> Result<bool, DbError> {
        let sql = "DELETE FROM auth_user_groups WHERE user_id = $1 AND group_id = $2";
        let removed =
            on_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(group_id).execute(pool).await?.rows_affected());
        Ok(removed == 1)
    }

    /// Every group with its member count, by name.
    pub async fn groups(&self) -> Result<Vec<GroupSummary>, DbError> {
        let sql = "SELECT g.id, g.name, CAST(COUNT(ug.user_id) AS BIGINT) AS members FROM auth_group g \
                   LEFT JOIN auth_user_groups ug ON ug.group_id = g.id GROUP BY g.id, g.name ORDER BY g.name";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }

    /// The names of the user's groups, sorted.
    pub async fn group_names_of_user(&self, user_id: i32) -> Result<Vec<String>, DbError> {
        let sql = "SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id \
                   WHERE ug.user_id = $1 ORDER BY g.name";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql).bind(user_id).fetch_all(pool).await?))
    }
}
