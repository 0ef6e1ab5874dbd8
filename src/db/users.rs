//! Queries on `auth_user`. Columns are always named: Django's table rebuilds scramble their order.

use sqlx::FromRow;

use super::{Db, DbError, DjangoTime, on_pool};

/// One `auth_user` row as Django stores it.
#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    pub id: i32,
    pub password: String,
    pub last_login: Option<DjangoTime>,
    pub is_superuser: bool,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: DjangoTime,
}

/// What `create_user` writes; the remaining columns take Django's defaults.
#[derive(Debug)]
pub struct NewUserRow<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DjangoTime,
}

const USER_COLUMNS: &str = "id, password, last_login, is_superuser, username, first_name, last_name, \
                            email, is_staff, is_active, date_joined";

impl Db {
    /// The user with exactly this username (case-sensitive, no normalisation: Django's lookup).
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user WHERE username = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(username).fetch_optional(pool).await?))
    }

    pub async fn user_by_id(&self, id: i32) -> Result<Option<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user WHERE id = $1");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?))
    }

    /// Every user, by id. A row that cannot be decoded is skipped with a warning rather than
    /// hiding every other user.
    pub async fn users(&self) -> Result<Vec<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user ORDER BY id");
        let rows = on_pool!(self, pool => {
            let raw = sqlx::query(&sql).fetch_all(pool).await?;
            raw.iter().map(UserRow::from_row).collect::<Vec<_>>()
        });
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                row.map_err(|err| tracing::warn!(error = %err, "skipping an unreadable auth_user row")).ok()
            })
            .collect())
    }

    /// One page of users, by id.
    pub async fn users_page(&self, page: super::PageRequest) -> Result<super::Page<UserRow>, DbError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user ORDER BY id LIMIT $1 OFFSET $2");
        let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM auth_user";
        Ok(on_pool!(self, pool => super::Page {
            items: sqlx::query_as(&sql).bind(page.limit).bind(page.offset).fetch_all(pool).await?,
            total: sqlx::query_scalar(count).fetch_one(pool).await?,
        }))
    }

    /// Inserts a user and returns its id.
    pub async fn insert_user(&self, user: &NewUserRow<'_>) -> Result<i32, DbError> {
        let sql = "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, \
                   email, is_staff, is_active, date_joined) \
                   VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
        Ok(on_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(user.password)
            .bind(user.is_superuser)
            .bind(user.username)
            .bind(user.first_name)
            .bind(user.last_name)
            .bind(user.email)
            .bind(user.is_staff)
            .bind(true)
            .bind(user.date_joined)
            .fetch_one(pool)
            .await?))
    }

    /// Replaces the hash only if it is still `expected`, so an upgrade on login never overwrites
    /// a password that was changed meanwhile (in the Django admin, say). True when it was written.
    pub async fn replace_password_hash(&self, id: i32, expected: &str, new_hash: &str) -> Result<bool, DbError> {
        let sql = "UPDATE auth_user SET password = $1 WHERE id = $2 AND password = $3";
        let result = on_pool!(self, pool => sqlx::query(sql).bind(new_hash).bind(id).bind(expected).execute(pool).await?.rows_affected());
        Ok(result == 1)
    }

    /// Sets the hash unconditionally. False when no such user exists.
    pub async fn set_password_hash(&self, username: &str, new_hash: &str) -> Result<bool, DbError> {
        let sql = "UPDATE auth_user SET password = $1 WHERE username = $2";
        let result =
            on_pool!(self, pool => sqlx::query(sql).bind(new_hash).bind(username).execute(pool).await?.rows_affected());
        Ok(result == 1)
    }

    pub async fn set_last_login(&self, id: i32, at: DjangoTime) -> Result<(), DbError> {
        let sql = "UPDATE auth_user SET last_login = $1 WHERE id = $2";
        on_pool!(self, pool => sqlx::query(sql).bind(at).bind(id).execute(pool).await.map(drop)?);
        Ok(())
    }

    /// False when no such user exists.
    pub async fn set_active(&self, username: &str, active: bool) -> Result<bool, DbError> {
        let sql = "UPDATE auth_user SET is_active = $1 WHERE username = $2";
        let result =
            on_pool!(self, pool => sqlx::query(sql).bind(active).bind(username).execute(pool).await?.rows_affected());
        Ok(result == 1)
    }
}
