//! gatehouse over Django's tables, on a real SQLite file and a real PostgreSQL database.

mod common;

use common::{TestDb, count, execute};
use gatehouse::accounts::{AccountError, NewUser, Password};
use gatehouse::db::migrate::{DjangoSchema, Migration};
use gatehouse::django::hashers::HasherConfig;
use gatehouse::django::validators::Username;

fn new_user(name: &str, password: &str) -> NewUser {
    NewUser::new(Username::parse(name).unwrap(), Some(Password::new(password)))
}

async fn fresh_database_gets_djangos_schema_and_rows(test: TestDb) {
    let db = test.connect().await;
    let report = db.migrate().await.unwrap();
    assert_eq!(report.django, DjangoSchema::Created);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM django_content_type").await, 4);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_permission").await, 16);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM django_migrations WHERE app = 'auth'").await, 12);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM django_migrations WHERE app = 'contenttypes'").await, 2);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id \
                    WHERE ct.app_label = 'auth' AND ct.model = 'user' AND p.codename = 'view_user' AND p.id = 16"
        )
        .await,
        1
    );
    // A later insert by Django must not collide with the seeded ids.
    execute(&db, "INSERT INTO django_content_type (app_label, model) VALUES ('blog', 'post')").await;
    assert_eq!(count(&db, "SELECT CAST(MAX(id) AS BIGINT) FROM django_content_type").await, 5);

    let again = db.migrate().await.unwrap();
    assert_eq!(again.django, DjangoSchema::AlreadyPresent);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_permission").await, 16);
    let own = gatehouse::db::migrate::MIGRATIONS.len() as i64;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gatehouse_migration").await, own, "applied once, not twice");
}
on_both_backends!(fresh_database_gets_djangos_schema_and_rows, super::fresh_database_gets_djangos_schema_and_rows);

async fn existing_django_tables_are_left_as_they_are(test: TestDb) {
    let db = test.connect().await;
    db.migrate().await.unwrap();
    // What a Django project would have: its own rows, with other ids.
    execute(&db, "DELETE FROM auth_permission WHERE id > 4").await;
    execute(&db, "INSERT INTO auth_group (name) VALUES ('editors')").await;
    let report = db.migrate().await.unwrap();
    assert_eq!(report.django, DjangoSchema::AlreadyPresent);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_permission").await, 4);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM auth_group").await, 1);
}
on_both_backends!(existing_django_tables_are_left_as_they_are, super::existing_django_tables_are_left_as_they_are);

async fn a_partial_django_schema_is_refused_untouched(test: TestDb) {
    let db = test.connect().await;
    execute(&db, "CREATE TABLE django_migrations (id integer PRIMARY KEY, app varchar(255) NOT NULL)").await;
    let err = db.migrate().await.unwrap_err();
    assert!(err.to_string().contains("manage.py migrate"), "{err}");
    assert!(err.to_string().contains("auth_user"), "{err}");
    // Nothing was created: the transaction rolled back.
    let tables = match &db {
        gatehouse::db::Db::Sqlite(_) => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'auth_%'"
        }
        gatehouse::db::Db::Postgres(_) => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'auth_%'"
        }
    };
    assert_eq!(count(&db, tables).await, 0);
}
on_both_backends!(a_partial_django_schema_is_refused_untouched, super::a_partial_django_schema_is_refused_untouched);

const TEST_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_probe",
        sqlite: "CREATE TABLE gatehouse_probe (id integer PRIMARY KEY, note text NOT NULL)",
        postgres: "CREATE TABLE gatehouse_probe (id bigint PRIMARY KEY, note text NOT NULL)",
    },
    Migration {
        version: 2,
        name: "0002_probe_index",
        sqlite: "CREATE INDEX gatehouse_probe_note ON gatehouse_probe (note)",
        postgres: "CREATE INDEX gatehouse_probe_note ON gatehouse_probe (note)",
    },
];

async fn own_migrations_apply_once_in_order(test: TestDb) {
    let db = test.connect().await;
    let first = db.migrate_with(&TEST_MIGRATIONS[..1]).await.unwrap();
    assert_eq!(first.applied, vec!["0001_probe"]);
    let second = db.migrate_with(TEST_MIGRATIONS).await.unwrap();
    assert_eq!(second.applied, vec!["0002_probe_index"]);
    let third = db.migrate_with(TEST_MIGRATIONS).await.unwrap();
    assert!(third.applied.is_empty());
    assert_eq!(db.applied_migrations().await.unwrap(), vec![1, 2]);
    execute(&db, "INSERT INTO gatehouse_probe (id, note) VALUES (1, 'ok')").await;
}
on_both_backends!(own_migrations_apply_once_in_order, super::own_migrations_apply_once_in_order);

async fn concurrent_first_starts_create_the_schema_once(test: TestDb) {
    let (a, b, c) = (test.connect().await, test.connect().await, test.connect().await);
    let (ra, rb, rc) = tokio::join!(a.migrate(), b.migrate(), c.migrate());
    let created = [ra.unwrap(), rb.unwrap(), rc.unwrap()].iter().filter(|r| r.django == DjangoSchema::Created).count();
    assert_eq!(created, 1);
    assert_eq!(count(&a, "SELECT COUNT(*) FROM auth_permission").await, 16);
}
on_both_backends!(
    concurrent_first_starts_create_the_schema_once,
    super::concurrent_first_starts_create_the_schema_once
);

async fn create_user_writes_what_django_writes(test: TestDb) {
    let accounts = test.accounts().await;
    let mut new = new_user("Ａlice", "a long passphrase");
    new.email = "Alice.Smith@Example.COM".into();
    new.first_name = "Alice".into();
    let user = accounts.create_user(new).await.unwrap();
    assert_eq!(user.username, "Alice", "NFKC-normalised on create");
    assert_eq!(user.email, "Alice.Smith@example.com");
    assert_eq!(user.last_name, "");
    assert!(user.is_active && !user.is_staff && !user.is_superuser);
    assert!(user.last_login.is_none());
    let parts: Vec<&str> = user.password.split('$').collect();
    assert_eq!(parts[0], "pbkdf2_sha256");
    assert_eq!(parts[1], common::TEST_ITERATIONS.to_string());
    assert_eq!(parts[2].len(), 22);

    let db = accounts.db();
    if let gatehouse::db::Db::Sqlite(pool) = db {
        // Django's own text format and 0/1 booleans, so Django's filters keep working.
        let (joined, active, login_type): (String, i64, String) =
            sqlx::query_as("SELECT date_joined, is_active, typeof(last_login) FROM auth_user WHERE id = $1")
                .bind(user.id)
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(
            joined.len() >= 19 && joined.as_bytes()[10] == b' ' && !joined.contains('T') && !joined.contains('+'),
            "{joined}"
        );
        assert_eq!(active, 1);
        assert_eq!(login_type, "null");
    } else {
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'auth_user' \
                       AND column_name = 'id' AND data_type = 'integer'"
            )
            .await,
            1
        );
    }
}
on_both_backends!(create_user_writes_what_django_writes, super::create_user_writes_what_django_writes);

async fn create_user_refuses_duplicates_and_weak_passwords(test: TestDb) {
    let accounts = test.accounts().await;
    accounts.create_user(new_user("bob", "a long passphrase")).await.unwrap();
    assert!(matches!(
        accounts.create_user(new_user("bob", "another passphrase")).await,
        Err(AccountError::UsernameTaken)
    ));
    // Lookups are exact: "Bob" is another user, as in Django.
    accounts.create_user(new_user("Bob", "another passphrase")).await.unwrap();
    match accounts.create_user(new_user("carol", "1234")).await {
        Err(AccountError::WeakPassword(violations)) => {
            let codes: Vec<_> = violations.iter().map(|v| v.code).collect();
            assert_eq!(codes, ["password_too_short", "password_too_common", "password_entirely_numeric"]);
        }
        other => panic!("expected a weak-password error, got {other:?}"),
    }
    let mut long_name = new_user("dave", "a long passphrase");
    long_name.first_name = "x".repeat(151);
    assert!(matches!(
        accounts.create_user(long_name).await,
        Err(AccountError::InvalidField { field: "first_name", .. })
    ));
    assert_eq!(count(accounts.db(), "SELECT COUNT(*) FROM auth_user").await, 2);
}
on_both_backends!(
    create_user_refuses_duplicates_and_weak_passwords,
    super::create_user_refuses_duplicates_and_weak_passwords
);

async fn authenticate_follows_djangos_model_backend(test: TestDb) {
    let accounts = test.accounts().await;
    let pw = Password::new("a long passphrase");
    let created = accounts.create_user(new_user("erin", "a long passphrase")).await.unwrap();

    let user = accounts.authenticate("erin", &pw).await.unwrap().expect("correct password logs in");
    assert_eq!(user.id, created.id);
    let stored = accounts.db().user_by_id(created.id).await.unwrap().unwrap();
    assert!(stored.last_login.is_some(), "last_login set on success");

    assert!(accounts.authenticate("erin", &Password::new("wrong passphrase")).await.unwrap().is_none());
    assert!(accounts.authenticate("ERIN", &pw).await.unwrap().is_none(), "exact, case-sensitive lookup");
    assert!(accounts.authenticate("nobody", &pw).await.unwrap().is_none());

    accounts.set_active("erin", false).await.unwrap();
    assert!(accounts.authenticate("erin", &pw).await.unwrap().is_none(), "inactive users cannot log in");
    accounts.set_active("erin", true).await.unwrap();

    let unusable = accounts.create_user(NewUser::new(Username::parse("frank").unwrap(), None)).await.unwrap();
    assert!(unusable.password.starts_with('!'));
    assert!(accounts.authenticate("frank", &Password::new("")).await.unwrap().is_none());
    assert!(accounts.authenticate("frank", &Password::new(&unusable.password)).await.unwrap().is_none());

    accounts.set_password("erin", &Password::new("a new long passphrase")).await.unwrap();
    assert!(accounts.authenticate("erin", &pw).await.unwrap().is_none());
    assert!(accounts.authenticate("erin", &Password::new("a new long passphrase")).await.unwrap().is_some());
}
on_both_backends!(authenticate_follows_djangos_model_backend, super::authenticate_follows_djangos_model_backend);

async fn every_django_hasher_logs_in_and_is_upgraded(test: TestDb) {
    // Django 6.1's default iteration count, so the pbkdf2_sha256 vector needs no upgrade.
    let accounts = test.accounts_with(HasherConfig { pbkdf2_iterations: 1_500_000 }).await;
    let db = accounts.db();
    for (alg, encoded, must_update) in common::django_vectors() {
        let username = format!("user_{alg}");
        let id = common::insert_user_with_hash(db, &username, &encoded).await;
        assert!(
            accounts.authenticate(&username, &Password::new("wrong")).await.unwrap().is_none(),
            "{alg}: wrong password refused"
        );
        assert_eq!(db.user_by_id(id).await.unwrap().unwrap().password, encoded, "{alg}: untouched on failure");
        let user = accounts.authenticate(&username, &Password::new(common::VECTOR_PASSWORD)).await.unwrap();
        assert!(user.is_some(), "{alg}: Django's hash verifies");
        let stored = db.user_by_id(id).await.unwrap().unwrap().password;
        if must_update {
            assert!(stored.starts_with("pbkdf2_sha256$1500000$"), "{alg}: upgraded to the default, got {stored}");
            assert!(accounts.authenticate(&username, &Password::new(common::VECTOR_PASSWORD)).await.unwrap().is_some());
        } else {
            assert_eq!(stored, encoded, "{alg}: current hashes are left alone");
        }
    }
}
on_both_backends!(every_django_hasher_logs_in_and_is_upgraded, super::every_django_hasher_logs_in_and_is_upgraded);

async fn a_corrupt_row_locks_out_only_its_own_user(test: TestDb) {
    let accounts = test.accounts().await;
    accounts.create_user(new_user("grace", "a long passphrase")).await.unwrap();
    accounts.create_user(new_user("heidi", "a long passphrase")).await.unwrap();
    let corrupt = match test.backend {
        common::Backend::Sqlite => {
            "UPDATE auth_user SET date_joined = 'not a date', is_active = 'maybe' WHERE username = 'grace'"
        }
        common::Backend::Postgres => "UPDATE auth_user SET password = 'pbkdf2_sha256$abc$$' WHERE username = 'grace'",
    };
    execute(accounts.db(), corrupt).await;
    let pw = Password::new("a long passphrase");
    assert!(accounts.authenticate("grace", &pw).await.unwrap().is_none());
    assert!(accounts.authenticate("heidi", &pw).await.unwrap().is_some());
    let listed: Vec<String> = accounts.users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert!(listed.contains(&"heidi".to_owned()), "{listed:?}");
}
on_both_backends!(a_corrupt_row_locks_out_only_its_own_user, super::a_corrupt_row_locks_out_only_its_own_user);

async fn groups_are_djangos_groups(test: TestDb) {
    let accounts = test.accounts().await;
    accounts.create_user(new_user("ivan", "a long passphrase")).await.unwrap();
    accounts.create_group("editors").await.unwrap();
    assert!(matches!(accounts.create_group("editors").await, Err(AccountError::GroupExists)));
    assert!(matches!(accounts.create_group("  ").await, Err(AccountError::InvalidField { .. })));
    assert!(accounts.set_membership("ivan", "editors", true).await.unwrap());
    assert!(!accounts.set_membership("ivan", "editors", true).await.unwrap(), "adding twice is a no-op");
    assert!(matches!(accounts.set_membership("ivan", "nope", true).await, Err(AccountError::UnknownGroup(_))));
    assert!(matches!(accounts.set_membership("nobody", "editors", true).await, Err(AccountError::UnknownUser(_))));
    let ivan = accounts.db().user_by_username("ivan").await.unwrap().unwrap();
    assert_eq!(accounts.db().group_names_of_user(ivan.id).await.unwrap(), vec!["editors"]);
    let groups = accounts.groups().await.unwrap();
    assert_eq!((groups[0].name.as_str(), groups[0].members), ("editors", 1));
    assert!(accounts.set_membership("ivan", "editors", false).await.unwrap());
    assert!(!accounts.set_membership("ivan", "editors", false).await.unwrap());
    assert_eq!(accounts.groups().await.unwrap()[0].members, 0);
}
on_both_backends!(groups_are_djangos_groups, super::groups_are_djangos_groups);

#[tokio::test]
async fn an_unreachable_postgres_is_retried_then_reported() {
    let url: gatehouse::db::DatabaseUrl = "postgres://root@127.0.0.1:1/nothing".parse().unwrap();
    let started = std::time::Instant::now();
    let err = gatehouse::db::Db::connect(&url, std::time::Duration::from_millis(800)).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach the database"), "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "it retried before giving up");
}
