//! Configuration: one [`Settings`] value, built once from command-line flags and environment
//! variables (every flag has one; see the README's table) and passed down from there.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;
use sha2::Digest;

use crate::accounts::{HashPriority, LimitSettings};
use crate::db::{DEFAULT_DATABASE_URL, DatabaseUrl, DbError};
use crate::django::hashers::HasherConfig;
use crate::django::validators::{self, PasswordPolicy};
use crate::http::client::TrustedProxies;
use crate::oidc::OidcSettings;
use crate::rbac::RbacSettings;
use crate::rbac::script::ScriptLimits;
use crate::sessions::SessionSettings;
use crate::tokens::stored::KeyVault;
use crate::tokens::{
    ClaimsFormat, ClaimsSettings, GroupRoles, KeySettings, RoleSettings, SessionVariables, SigningAlg,
};

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

    /// Longest a request waits for a PostgreSQL connection, in seconds; then it answers 503
    /// (an unreachable database fails requests this fast)
    #[arg(long, env = "GATEHOUSE_DB_ACQUIRE_TIMEOUT", global = true, default_value_t = 2, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub db_acquire_timeout: u64,

    /// PBKDF2-SHA256 iterations for new hashes; match your Django version (6.1: 1500000, 5.2: 1000000)
    #[arg(long, env = "GATEHOUSE_PBKDF2_ITERATIONS", global = true, default_value_t = 1_500_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000_000), value_name = "N")]
    pub pbkdf2_iterations: u32,

    /// Password hashes computed at once [default: the number of cores]
    #[arg(long, env = "GATEHOUSE_HASH_CONCURRENCY", global = true, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub hash_concurrency: Option<u16>,

    /// Requests that may wait for a hashing slot; more get 503 at once [default: 16 per slot]
    #[arg(long, env = "GATEHOUSE_HASH_QUEUE", global = true, value_name = "N", help_heading = "Limits")]
    pub hash_queue: Option<usize>,

    /// Seconds a request may wait for a hashing slot; a longer wait, foreseen or real, gets 503
    #[arg(long, env = "GATEHOUSE_HASH_QUEUE_TIMEOUT", global = true, default_value_t = 5, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=60), help_heading = "Limits")]
    pub hash_queue_timeout: u64,

    /// CPU priority of the password-hashing threads beside the server's other work
    #[arg(long, env = "GATEHOUSE_HASH_PRIORITY", global = true, value_enum, default_value_t = HashPriority::Low,
          help_heading = "Limits")]
    pub hash_priority: HashPriority,

    /// Failed sign-ins per account name within the window before sign-ins are refused (429)
    #[arg(long, env = "GATEHOUSE_LOGIN_MAX_FAILURES", global = true, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    pub login_max_failures: u32,

    /// Failed sign-ins per client IP within the window before sign-ins are refused (429)
    #[arg(long, env = "GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP", global = true, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    pub login_max_failures_per_ip: u32,

    /// The sliding window of the sign-in limits, in seconds
    #[arg(long, env = "GATEHOUSE_LOGIN_WINDOW", global = true, default_value_t = 300, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "Limits")]
    pub login_window: u64,

    /// Sign-ups per minute on one instance, all clients together
    #[arg(long, env = "GATEHOUSE_SIGNUPS_PER_MINUTE", global = true, default_value_t = 60, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    pub signups_per_minute: u32,

    /// Sign-ups per client IP per hour
    #[arg(long, env = "GATEHOUSE_SIGNUPS_PER_IP_PER_HOUR", global = true, default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Limits")]
    pub signups_per_ip_per_hour: u32,

    /// Proxies whose X-Forwarded-For gives the client IP: addresses or CIDR blocks, comma-separated
    #[arg(
        long,
        env = "GATEHOUSE_TRUSTED_PROXIES",
        global = true,
        default_value = "",
        value_name = "LIST",
        help_heading = "Limits"
    )]
    pub trusted_proxies: TrustedProxies,

    /// Days the audit log keeps an event; older events are deleted by `serve` (0 keeps them all)
    #[arg(long, env = "GATEHOUSE_AUDIT_RETENTION_DAYS", global = true, default_value_t = 365, value_name = "DAYS")]
    pub audit_retention_days: u32,

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

    /// Address to listen on
    #[arg(long, env = "HOST", global = true, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on
    #[arg(long, env = "PORT", global = true, default_value_t = 3000)]
    pub port: u16,

    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open
    #[arg(long, env = "GATEHOUSE_HEADER_TIMEOUT", global = true, default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3_600), help_heading = "HTTP server")]
    pub header_timeout: u64,

    /// Seconds a whole request may take, from its headers to the answer (503 after that)
    #[arg(long, env = "GATEHOUSE_REQUEST_TIMEOUT", global = true, default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3_600), help_heading = "HTTP server")]
    pub request_timeout: u64,

    /// Seconds a request body may stall between two reads (408 after that)
    #[arg(long, env = "GATEHOUSE_BODY_TIMEOUT", global = true, default_value_t = 10, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3_600), help_heading = "HTTP server")]
    pub body_timeout: u64,

    /// Open client connections at most; further clients wait in the listen backlog
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", global = true, default_value_t = 1_024, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), help_heading = "HTTP server")]
    pub max_connections: u32,

    /// Seconds `serve` waits for requests in flight at shutdown before closing their connections
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_TIMEOUT", global = true, default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=3_600), help_heading = "HTTP server")]
    pub shutdown_timeout: u64,

    #[command(flatten)]
    pub tokens: TokenArgs,
}

/// Options for tokens, keys and the Hasura endpoints.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Tokens and Hasura")]
pub struct TokenArgs {
    /// The URL clients and Hasura reach gatehouse at [default: http://HOST:PORT]
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL", global = true, value_name = "URL")]
    pub public_url: Option<String>,

    /// `iss` of issued tokens [default: the public URL]
    #[arg(long, env = "GATEHOUSE_JWT_ISSUER", global = true, value_name = "ISSUER")]
    pub jwt_issuer: Option<String>,

    /// `aud` of issued tokens, checked by the webhook; none by default
    #[arg(long, env = "GATEHOUSE_JWT_AUDIENCE", global = true, value_name = "AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Algorithm of a signing key generated on first start
    #[arg(long, env = "GATEHOUSE_JWT_ALG", global = true, value_enum, default_value_t = SigningAlg::Rs256)]
    pub jwt_alg: SigningAlg,

    /// Access token lifetime in seconds
    #[arg(long, env = "GATEHOUSE_ACCESS_TOKEN_TTL", global = true, default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400), value_name = "SECONDS")]
    pub access_token_ttl: u64,

    /// Directory for the generated signing key (signing-key.pem, mode 0600)
    #[arg(long, env = "GATEHOUSE_DATA_DIR", global = true, default_value = "gatehouse-data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// `Cache-Control: max-age` of the JWKS, in seconds: how soon Hasura sees a rotated key
    #[arg(long, env = "GATEHOUSE_JWKS_MAX_AGE", global = true, default_value_t = 300, value_name = "SECONDS")]
    pub jwks_max_age: u32,

    /// With the keys in the database (GATEHOUSE_KEY_ENCRYPTION_KEY): how often each instance
    /// re-reads them, in seconds (PostgreSQL also tells instances at once)
    #[arg(long, env = "GATEHOUSE_KEY_RELOAD_INTERVAL", global = true, default_value_t = 60, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub key_reload_interval: u64,

    /// How long the webhook trusts its answer that a session is live, in seconds. Revocations
    /// made by gatehouse reach every instance at once on PostgreSQL; changes made by Django
    /// (a password or is_active) are seen after at most this long
    #[arg(long, env = "GATEHOUSE_SESSION_CACHE_TTL", global = true, default_value_t = 1, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub session_cache_ttl: u64,

    /// Where the Hasura claims go in the token (Hasura v3/DDN: claims.jwt.hasura.io)
    #[arg(long, env = "GATEHOUSE_CLAIMS_NAMESPACE", global = true, default_value = "https://hasura.io/jwt/claims")]
    pub claims_namespace: String,

    /// Hasura's claims_format
    #[arg(long, env = "GATEHOUSE_CLAIMS_FORMAT", global = true, value_enum, default_value_t = ClaimsFormat::Json)]
    pub claims_format: ClaimsFormat,

    /// The role every active user has, and the default role
    #[arg(long, env = "GATEHOUSE_DEFAULT_ROLE", global = true, default_value = "user")]
    pub default_role: String,

    /// The extra role of is_staff users
    #[arg(long, env = "GATEHOUSE_STAFF_ROLE", global = true, default_value = "staff")]
    pub staff_role: String,

    /// The extra role of is_superuser users. Hasura's `admin` bypasses every permission
    #[arg(long, env = "GATEHOUSE_SUPERUSER_ROLE", global = true, default_value = "admin")]
    pub superuser_role: String,

    /// Which Django groups become roles: all, none, prefix:<text> or list:<a,b,...>
    #[arg(long, env = "GATEHOUSE_GROUP_ROLES", global = true, default_value = "all", value_name = "RULE")]
    pub group_roles: GroupRoles,

    /// Extra Hasura session variables from user fields, e.g. x-hasura-email=email,x-hasura-groups=groups
    /// (lists become Postgres array literals)
    #[arg(long, env = "GATEHOUSE_CLAIMS_VARIABLES", global = true, default_value = "", value_name = "LIST")]
    pub claims_variables: SessionVariables,

    /// The API resource whose scopes also include the user's Django permissions (app_label.codename)
    #[arg(long, env = "GATEHOUSE_PERMISSIONS_RESOURCE", global = true, value_name = "INDICATOR")]
    pub permissions_resource: Option<String>,

    /// Time limit of one custom-claims script run, in milliseconds
    #[arg(long, env = "GATEHOUSE_CLAIMS_SCRIPT_TIMEOUT_MS", global = true, default_value_t = 50, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=5_000))]
    pub claims_script_timeout_ms: u64,

    /// Memory limit of the custom-claims script engine, in MiB
    #[arg(long, env = "GATEHOUSE_CLAIMS_SCRIPT_MEMORY_MB", global = true, default_value_t = 16, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(2..=1_024))]
    pub claims_script_memory_mb: u64,

    /// The role the webhook answers for requests without a token
    #[arg(long, env = "GATEHOUSE_ANONYMOUS_ROLE", global = true, default_value = "anonymous")]
    pub anonymous_role: String,

    /// Let requests without a token through the webhook as the anonymous role (else 401)
    #[arg(long, env = "GATEHOUSE_ALLOW_ANONYMOUS", global = true, default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub allow_anonymous: bool,

    /// Allow POST /webhook/signup (else 403)
    #[arg(long, env = "GATEHOUSE_SIGNUP", global = true, default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub signup: bool,

    /// Deliver refresh tokens as an HttpOnly, Secure, SameSite=Strict cookie scoped to
    /// /webhook/refresh instead of in the JSON body (browser clients); refreshing by cookie then
    /// needs the X-CSRF-Token header from the login answer
    #[arg(long, env = "GATEHOUSE_REFRESH_COOKIE", global = true, default_value = "false",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, value_name = "BOOL")]
    pub refresh_cookie: bool,

    /// Absolute lifetime of a session (its refresh tokens), in seconds; no refresh extends it
    #[arg(long, env = "GATEHOUSE_SESSION_TTL", global = true, default_value_t = 30 * 86_400, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(60..=10 * 365 * 86_400))]
    pub session_ttl: u64,

    /// A session unused for this many seconds ends
    #[arg(long, env = "GATEHOUSE_SESSION_IDLE_TTL", global = true, default_value_t = 7 * 86_400, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(60..=10 * 365 * 86_400))]
    pub session_idle_ttl: u64,

    /// Seconds during which a rotated refresh token still returns its successor (tabs that
    /// refresh together); after that, reuse revokes the session
    #[arg(long, env = "GATEHOUSE_REFRESH_REUSE_GRACE", global = true, default_value_t = 10, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub refresh_reuse_grace: u64,

    /// While the database is unreachable, the webhook still accepts a session it saw live at
    /// most this many seconds ago (0: refuse with 503 at once)
    #[arg(long, env = "GATEHOUSE_SESSION_STALE_IF_ERROR", global = true, default_value_t = 120,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub session_stale_if_error: u64,

    /// A directory of templates (sign-in.html, sign-up.html, sign-out.html, signed-out.html,
    /// error.html, style.css) that replace the OIDC provider's built-in pages, file by file
    #[arg(long, env = "GATEHOUSE_OIDC_TEMPLATES", global = true, value_name = "DIR")]
    pub oidc_templates: Option<PathBuf>,

    /// Largest webhook POST body in bytes (Hasura sends the GraphQL request in it)
    #[arg(long, env = "GATEHOUSE_WEBHOOK_MAX_BODY", global = true, default_value_t = 1_048_576, value_name = "BYTES")]
    pub webhook_max_body: usize,
}

/// Options of `gatehouse serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
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
    pub limits: LimitSettings,
    pub password_policy: PasswordPolicy,
    pub log_format: LogFormat,
    pub http: HttpSettings,
    pub public_url: String,
    pub keys: KeySettings,
    pub claims: ClaimsSettings,
    pub hasura: HasuraSettings,
    pub sessions: SessionSettings,
    pub rbac: RbacSettings,
    pub admin: AdminSettings,
    pub oidc: OidcSettings,
}

/// How the admin API at `/api` authenticates callers.
#[derive(Clone, Default)]
pub struct AdminSettings {
    /// SHA-256 of `GATEHOUSE_ADMIN_SECRET`; only the digest is kept in memory.
    pub secret_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings").field("secret", &self.secret_digest.map(|_| "<set>")).finish()
    }
}

/// The shortest admin secret accepted: 128 bits of base64 or hex.
pub const MIN_ADMIN_SECRET_CHARS: usize = 32;

/// How the Hasura-facing endpoints behave.
#[derive(Clone, Debug)]
pub struct HasuraSettings {
    /// The path of the public URL (`""` at the root), the prefix of cookie paths.
    pub public_path: String,
    pub signup: bool,
    /// Refresh tokens travel in a cookie, not in the JSON body.
    pub refresh_cookie: bool,
    pub allow_anonymous: bool,
    pub jwks_max_age: u32,
    pub webhook_max_body: usize,
}

#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub connect_timeout: Duration,
    /// How long a request waits for a PostgreSQL connection before it answers 503.
    pub acquire_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct HashingSettings {
    pub hasher: HasherConfig,
    pub max_concurrent: usize,
    pub max_waiting: usize,
    pub max_wait: Duration,
    pub priority: HashPriority,
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Create or upgrade the schema when `serve` starts.
    pub migrate_on_start: bool,
    pub trusted_proxies: TrustedProxies,
    /// How long audit events are kept; `None` keeps them all.
    pub audit_retention: Option<Duration>,
    pub server: ServerSettings,
}

/// How the HTTP server treats slow and numerous clients.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Time to receive a request's headers, and to wait for the next request on an idle
    /// keep-alive connection (hyper runs one timer for both).
    pub header_timeout: Duration,
    /// Time for a whole request, body read and answer included.
    pub request_timeout: Duration,
    /// Longest stall between two reads of a request body.
    pub body_timeout: Duration,
    /// The largest request body any route accepts; each route has its own smaller limit too.
    pub max_body: usize,
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// SHA-256 of `GATEHOUSE_METRICS_TOKEN`: when set, `/metrics` wants it as a bearer token.
    pub metrics_token_digest: Option<[u8; 32]>,
}

/// The largest body a route without its own larger limit may get (the admin API's).
const DEFAULT_MAX_BODY: usize = 256 * 1024;

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
        let t = &args.tokens;
        let public_url = match &t.public_url {
            Some(url) => absolute_http_url("GATEHOUSE_PUBLIC_URL", url)?,
            None => format!("http://{}", std::net::SocketAddr::new(args.host, args.port)),
        };
        let issuer = t.jwt_issuer.clone().unwrap_or_else(|| public_url.clone());
        string_or_uri("GATEHOUSE_JWT_ISSUER", &issuer)?;
        if let Some(audience) = &t.jwt_audience {
            string_or_uri("GATEHOUSE_JWT_AUDIENCE", audience)?;
        }
        let roles = RoleSettings {
            default_role: role_name("GATEHOUSE_DEFAULT_ROLE", &t.default_role)?,
            staff_role: role_name("GATEHOUSE_STAFF_ROLE", &t.staff_role)?,
            superuser_role: role_name("GATEHOUSE_SUPERUSER_ROLE", &t.superuser_role)?,
            anonymous_role: role_name("GATEHOUSE_ANONYMOUS_ROLE", &t.anonymous_role)?,
            groups: t.group_roles.clone(),
        };
        let distinct = [&roles.default_role, &roles.staff_role, &roles.superuser_role, &roles.anonymous_role];
        if distinct.iter().enumerate().any(|(i, a)| distinct[i + 1..].contains(a)) {
            return Err(ConfigError("the default, staff, superuser and anonymous role names must all differ".into()));
        }
        if t.session_idle_ttl < t.access_token_ttl {
            // Only a refresh counts as use, so a shorter idle time would end sessions in use.
            return Err(ConfigError("GATEHOUSE_SESSION_IDLE_TTL must be at least GATEHOUSE_ACCESS_TOKEN_TTL".into()));
        }
        if let Some(indicator) = &t.permissions_resource {
            crate::rbac::Indicator::parse(indicator)
                .map_err(|e| ConfigError(format!("GATEHOUSE_PERMISSIONS_RESOURCE: {e}")))?;
        }
        let secret_digest = match env("GATEHOUSE_ADMIN_SECRET").filter(|v| !v.is_empty()) {
            Some(secret) if secret.chars().count() < MIN_ADMIN_SECRET_CHARS => {
                return Err(ConfigError(format!(
                    "GATEHOUSE_ADMIN_SECRET must be at least {MIN_ADMIN_SECRET_CHARS} characters \
                     (try `openssl rand -base64 32`)"
                )));
            }
            Some(secret) if !secret.chars().all(|c| c.is_ascii_graphic()) => {
                return Err(ConfigError(
                    "GATEHOUSE_ADMIN_SECRET must be printable ASCII without spaces: it is sent as a bearer token"
                        .into(),
                ));
            }
            Some(secret) => Some(sha2::Sha256::digest(secret.as_bytes()).into()),
            None => None,
        };
        let vault = match env("GATEHOUSE_KEY_ENCRYPTION_KEY").filter(|v| !v.is_empty()) {
            Some(secret) => Some(std::sync::Arc::new(
                KeyVault::new(&secret).map_err(|e| ConfigError(format!("GATEHOUSE_KEY_ENCRYPTION_KEY {e}")))?,
            )),
            None => None,
        };
        let metrics_token_digest = match env("GATEHOUSE_METRICS_TOKEN").filter(|v| !v.is_empty()) {
            Some(token) if token.chars().count() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) => {
                return Err(ConfigError(
                    "GATEHOUSE_METRICS_TOKEN must be at least 16 printable ASCII characters without spaces".into(),
                ));
            }
            Some(token) => Some(sha2::Sha256::digest(token.as_bytes()).into()),
            None => None,
        };
        if t.claims_namespace.trim().is_empty() {
            return Err(ConfigError("GATEHOUSE_CLAIMS_NAMESPACE must not be empty".into()));
        }
        Ok(Settings {
            database: DatabaseSettings {
                url: url.trim().parse()?,
                connect_timeout: Duration::from_secs(args.db_connect_timeout),
                acquire_timeout: Duration::from_secs(args.db_acquire_timeout),
            },
            hashing: HashingSettings {
                hasher: HasherConfig { pbkdf2_iterations: args.pbkdf2_iterations },
                max_concurrent: args.hash_concurrency.map_or(cores, usize::from),
                max_waiting: args.hash_queue.unwrap_or(
                    args.hash_concurrency.map_or(cores, usize::from) * crate::accounts::DEFAULT_QUEUE_PER_SLOT,
                ),
                max_wait: Duration::from_secs(args.hash_queue_timeout),
                priority: args.hash_priority,
            },
            limits: LimitSettings {
                failures_per_account: args.login_max_failures as usize,
                failures_per_ip: args.login_max_failures_per_ip as usize,
                window: Duration::from_secs(args.login_window),
                signups_per_ip_per_hour: args.signups_per_ip_per_hour as usize,
                signups_per_minute: args.signups_per_minute as usize,
            },
            password_policy: PasswordPolicy {
                min_length: (args.password_min_length > 0).then_some(args.password_min_length),
                reject_common: args.password_reject_common,
                reject_numeric: args.password_reject_numeric,
                max_similarity,
            },
            log_format: args.log_format,
            http: HttpSettings {
                host: args.host,
                port: args.port,
                migrate_on_start: true,
                trusted_proxies: args.trusted_proxies.clone(),
                audit_retention: (args.audit_retention_days > 0)
                    .then(|| Duration::from_secs(u64::from(args.audit_retention_days) * 86_400)),
                server: ServerSettings {
                    header_timeout: Duration::from_secs(args.header_timeout),
                    request_timeout: Duration::from_secs(args.request_timeout),
                    body_timeout: Duration::from_secs(args.body_timeout),
                    max_body: DEFAULT_MAX_BODY.max(t.webhook_max_body),
                    max_connections: args.max_connections as usize,
                    shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
                    metrics_token_digest,
                },
            },
            keys: KeySettings {
                private_key_pem: env("AUTH_PRIVATE_KEY").filter(|v| !v.trim().is_empty()),
                public_key_pem: env("AUTH_PUBLIC_KEY").filter(|v| !v.trim().is_empty()),
                key_id: env("AUTH_KEY_ID").filter(|v| !v.trim().is_empty()),
                extra_public_pems: env("GATEHOUSE_EXTRA_PUBLIC_KEYS").filter(|v| !v.trim().is_empty()),
                data_dir: t.data_dir.clone(),
                generate_alg: t.jwt_alg,
                vault,
                reload_interval: Duration::from_secs(t.key_reload_interval),
            },
            claims: ClaimsSettings {
                issuer,
                oidc_issuer: format!("{public_url}/oidc"),
                audience: t.jwt_audience.clone(),
                namespace: t.claims_namespace.clone(),
                format: t.claims_format,
                access_ttl_secs: t.access_token_ttl,
                roles,
                variables: t.claims_variables.clone(),
            },
            hasura: HasuraSettings {
                public_path: url::Url::parse(&public_url)
                    .map_or(String::new(), |u| u.path().trim_end_matches('/').to_owned()),
                signup: t.signup,
                refresh_cookie: t.refresh_cookie,
                allow_anonymous: t.allow_anonymous,
                jwks_max_age: t.jwks_max_age,
                webhook_max_body: t.webhook_max_body,
            },
            sessions: SessionSettings {
                absolute_ttl_secs: t.session_ttl,
                idle_ttl_secs: t.session_idle_ttl,
                reuse_grace_secs: t.refresh_reuse_grace,
                cache_ttl: Duration::from_secs(t.session_cache_ttl),
                stale_if_error_secs: t.session_stale_if_error,
            },
            rbac: RbacSettings {
                audiences_stale_if_error: Duration::from_secs(t.session_stale_if_error),
                management_indicator: format!("{public_url}/api"),
                permissions_resource: t.permissions_resource.clone(),
                script_limits: ScriptLimits {
                    time: Duration::from_millis(t.claims_script_timeout_ms),
                    memory_bytes: usize::try_from(t.claims_script_memory_mb << 20).unwrap_or(usize::MAX),
                },
            },
            admin: AdminSettings { secret_digest },
            oidc: OidcSettings {
                issuer: format!("{public_url}/oidc"),
                public_path: url::Url::parse(&public_url)
                    .map_or(String::new(), |u| u.path().trim_end_matches('/').to_owned()),
                secure_cookies: public_url.starts_with("https:"),
                templates: crate::oidc::Templates::load(t.oidc_templates.as_deref())
                    .map_err(|e| ConfigError(format!("GATEHOUSE_OIDC_TEMPLATES: {e}")))?,
            },
            public_url,
        })
    }
}

fn role_name(var: &str, name: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ConfigError(format!("{var} must not be empty")));
    }
    Ok(name.to_owned())
}

/// An absolute http(s) URL, without a trailing slash.
fn absolute_http_url(var: &str, text: &str) -> Result<String, ConfigError> {
    match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(url.as_str().trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError(format!("{var} must be an absolute http(s) URL, got {text:?}"))),
    }
}

/// JWT's StringOrURI, as Hasura checks it: a value with a `:` must be an absolute URI.
fn string_or_uri(var: &str, value: &str) -> Result<(), ConfigError> {
    let valid = !value.is_empty()
        && (!value.contains(':') || url::Url::parse(value).is_ok_and(|_| !value.contains(char::is_whitespace)));
    if valid {
        Ok(())
    } else {
        Err(ConfigError(format!("{var} must be a plain string or an absolute URI, got {value:?}")))
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
    fn the_admin_secret_is_kept_as_a_digest_and_must_be_strong() {
        let secret = "0123456789abcdef0123456789abcdef";
        let s = settings(&[], &[("GATEHOUSE_ADMIN_SECRET", secret)]).unwrap();
        assert_eq!(s.admin.secret_digest, Some(sha2::Sha256::digest(secret).into()));
        assert!(!format!("{:?}", s.admin).contains("0123"));
        assert!(settings(&[], &[("GATEHOUSE_ADMIN_SECRET", "short")]).is_err());
        assert!(settings(&[], &[("GATEHOUSE_ADMIN_SECRET", "0123456789abcdef 0123456789abcdef")]).is_err());
        assert_eq!(settings(&[], &[]).unwrap().admin.secret_digest, None);
        assert_eq!(s.rbac.management_indicator, "http://127.0.0.1:3000/api");
    }

    #[test]
    fn rejects_bad_values_in_one_line() {
        let err = settings(&["--database-url", "mysql://u:secret@h/db"], &[]).unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert!(settings(&["--password-max-similarity", "0.05"], &[]).is_err());
    }
}
