//! Configuration: one [`Settings`] value, built once from command-line flags and environment
//! variables (every flag has one; see the README's table) and passed down from there.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;

use crate::db::{DEFAULT_DATABASE_URL, DatabaseUrl, DbError};
use crate::django::hashers::HasherConfig;
use crate::django::validators::{self, PasswordPolicy};

/// Options shared by every command.
#[derive(Args, Clone, Debug)]
pub struct GlobalArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. DBURL is accepted as an alias
    /// [default: sqlite://gatehouse.sqlite3]
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// How long to keep retrying an unreachable database at start, in seconds
    #[arg(long, env = "GATEHOUSE_DB_CONNECT_TIMEOUT", global = true, default_value_t = 30, value_name = "SECONDS")]
    pub db_connect_timeout: u64,

    /// PBKDF2-SHA256 iterations for new hashes; match your Django version (6.1: 1500000, 5.2: 1000000)
    #[arg(long, env = "GATEHOUSE_PBKDF2_ITERATIONS", global = true, default_value_t = 1_500_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000_000), value_name = "N")]
    pub pbkdf2_iterations: u32,

    /// Password hashes computed at once [default: the number of cores]
    #[arg(long, env = "GATEHOUSE_HASH_CONCURRENCY", global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub hash_concurrency: Option<u16>,

    /// MinimumLengthValidator: shortest accepted password in characters; 0 turns it off
    #[arg(long, env = "GATEHOUSE_PASSWORD_MIN_LENGTH", global = true, default_value_t = 8, value_name = "N")]
    pub password_min_length: usize,

    /// CommonPasswordValidator: reject Django's list of 19,640 common passwords
    #[arg(long, env = "GATEHOUSE_PASSWORD_REJECT_COMMON", global = true, default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub password_reject_common: bool,

    /// NumericPasswordValidator: reject entirely numeric passwords
    #[arg(long, env = "GATEHOUSE_PASSWORD_REJECT_NUMERIC", global = true, default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub password_reject_numeric: bool,

    /// UserAttributeSimilarityValidator: maximum similarity to username, names and email
    /// (at least 0.1); 0 turns it off
    #[arg(long, env = "GATEHOUSE_PASSWORD_MAX_SIMILARITY", global = true, default_value_t = 0.7, value_name = "RATIO")]
    pub password_max_similarity: f64,

    /// Log format on stderr
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Options of `gatehouse serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Do not create or upgrade the schema at start (run `gatehouse migrate` yourself)
    #[arg(long, env = "GATEHOUSE_NO_MIGRATE")]
    pub no_migrate: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub hashing: HashingSettings,
    pub password_policy: PasswordPolicy,
    pub log_format: LogFormat,
}

#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub connect_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct HashingSettings {
    pub hasher: HasherConfig,
    pub max_concurrent: usize,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    pub migrate_on_start: bool,
}

/// A configuration mistake: reported in one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<DbError> for ConfigError {
    fn from(err: DbError) -> Self {
        ConfigError(err.to_string())
    }
}

impl Settings {
    pub fn from_args(args: &GlobalArgs) -> Result<Settings, ConfigError> {
        Self::from_args_and_env(args, |name| std::env::var(name).ok())
    }

    fn from_args_and_env(args: &GlobalArgs, env: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let url = args
            .database_url
            .clone()
            .or_else(|| env("DBURL"))
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let max_similarity = match args.password_max_similarity {
            0.0 => None,
            x if (0.1..=1.0).contains(&x) => Some(x),
            _ => {
                return Err(ConfigError(
                    "GATEHOUSE_PASSWORD_MAX_SIMILARITY must be 0 (off) or between 0.1 and 1".into(),
                ));
            }
        };
        if args.password_reject_common {
            // Fail at start, not at the first signup, if the embedded list cannot be read.
            validators::common_passwords().map_err(|e| ConfigError(e.to_string()))?;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Settings {
            database: DatabaseSettings {
                url: url.trim().parse()?,
                connect_timeout: Duration::from_secs(args.db_connect_timeout),
            },
            hashing: HashingSettings {
                hasher: HasherConfig { pbkdf2_iterations: args.pbkdf2_iterations },
                max_concurrent: args.hash_concurrency.map_or(cores, usize::from),
            },
            password_policy: PasswordPolicy {
                min_length: (args.password_min_length > 0).then_some(args.password_min_length),
                reject_common: args.password_reject_common,
                reject_numeric: args.password_reject_numeric,
                max_similarity,
            },
            log_format: args.log_format,
        })
    }
}

impl From<&ServeArgs> for HttpSettings {
    fn from(args: &ServeArgs) -> Self {
        HttpSettings { host: args.host, port: args.port, migrate_on_start: !args.no_migrate }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        global: GlobalArgs,
    }

    fn settings(argv: &[&str], env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let args = Probe::try_parse_from(std::iter::once("gatehouse").chain(argv.iter().copied())).unwrap().global;
        Settings::from_args_and_env(&args, |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_to_the_embedded_sqlite_file_and_djangos_rules() {
        let s = settings(&[], &[]).unwrap();
        assert!(matches!(s.database.url, DatabaseUrl::Sqlite(_)));
        assert_eq!(s.hashing.hasher.pbkdf2_iterations, 1_500_000);
        assert_eq!(s.password_policy.min_length, Some(8));
        assert_eq!(s.password_policy.max_similarity, Some(0.7));
    }

    #[test]
    fn dburl_is_an_alias_that_the_flag_overrides() {
        let s = settings(&[], &[("DBURL", "postgres://root@127.0.0.1/app")]).unwrap();
        assert!(matches!(s.database.url, DatabaseUrl::Postgres(_)));
        let s = settings(&["--database-url", "sqlite://x.db"], &[("DBURL", "postgres://root@127.0.0.1/app")]).unwrap();
        assert!(matches!(s.database.url, DatabaseUrl::Sqlite(_)));
    }

    #[test]
    fn validators_can_be_turned_off() {
        let s = settings(
            &["--password-min-length", "0", "--password-max-similarity", "0", "--password-reject-common", "no"],
            &[],
        )
        .unwrap();
        assert_eq!(s.password_policy.min_length, None);
        assert_eq!(s.password_policy.max_similarity, None);
        assert!(!s.password_policy.reject_common);
    }

    #[test]
    fn rejects_bad_values_in_one_line() {
        let err = settings(&["--database-url", "mysql://u:secret@h/db"], &[]).unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert!(settings(&["--password-max-similarity", "0.05"], &[]).is_err());
    }
}
