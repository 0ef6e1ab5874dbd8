//! Facts about the tables Django 6.1's `migrate` creates for `contenttypes` and `auth`.
//!
//! The DDL files are Django's own output (`sqlite_master` and `pg_dump` after `migrate`), kept
//! verbatim so a database gatehouse creates is the one Django would have created.

/// Every table `contenttypes` and `auth` own. Django owns them: gatehouse never alters them.
pub const DJANGO_TABLES: [&str; 8] = [
    "django_migrations",
    "django_content_type",
    "auth_permission",
    "auth_group",
    "auth_group_permissions",
    "auth_user",
    "auth_user_groups",
    "auth_user_user_permissions",
];

const SQLITE_DDL: &str = include_str!("schema/django-6.1-schema-sqlite.sql");

/// Django 6.1's PostgreSQL DDL (`pg_dump` form: tables, identity columns, constraints, indexes).
pub const POSTGRES_DDL: &str = include_str!("schema/django-6.1-schema-postgres.sql");

/// The rows Django's `migrate` inserts on a fresh database (content types, permissions and the
/// migration history), so a Django project pointed at the database later has nothing to apply.
pub const SEED_ROWS: &str = include_str!("schema/django-6.1-seed-rows.sql");

/// Identity sequences to move past the explicit ids in [`SEED_ROWS`] (PostgreSQL only; SQLite's
/// AUTOINCREMENT bookkeeping follows explicit ids by itself).
pub const POSTGRES_SEEDED_SEQUENCES: [(&str, i64); 2] = [("django_content_type", 4), ("auth_permission", 16)];

/// Django 6.1's SQLite DDL, minus `sqlite_sequence`: SQLite creates that table itself with the
/// first AUTOINCREMENT table and refuses to let anyone else create it.
pub fn sqlite_ddl() -> String {
    SQLITE_DDL.lines().filter(|line| !line.starts_with("CREATE TABLE sqlite_sequence")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_django_table_is_in_both_ddls() {
        for table in DJANGO_TABLES {
            assert!(SQLITE_DDL.contains(&format!("CREATE TABLE \"{table}\"")), "{table}");
            assert!(POSTGRES_DDL.contains(&format!("CREATE TABLE public.{table} ")), "{table}");
        }
        assert!(!sqlite_ddl().contains("sqlite_sequence"));
    }

    #[test]
    fn seed_rows_match_djangos_migrate() {
        assert_eq!(SEED_ROWS.matches("INSERT INTO django_content_type").count(), 4);
        assert_eq!(SEED_ROWS.matches("INSERT INTO auth_permission").count(), 16);
        assert_eq!(SEED_ROWS.matches("INSERT INTO django_migrations").count(), 14);
    }
}
