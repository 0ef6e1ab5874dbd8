//! gatehouse: an authentication server for the Hasura GraphQL engine over a Django project's
//! own `auth_user`, `auth_group` and password hashes.
//!
//! - [`django`]: what Django does, exactly — password hashers, validators, schema facts.
//! - [`db`]: the [`db::Db`] handle over SQLite or PostgreSQL, migrations, queries.
//! - [`accounts`]: Django's user semantics (authenticate, create_user, groups) as a service.
//! - [`http`]: the routers; [`startup`] builds and runs the server; [`cli`] the commands.

pub mod accounts;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod django;
pub mod http;
pub mod metrics;
pub mod oidc;
pub mod rbac;
pub mod sessions;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod tokens;
