//! The command line: `gatehouse serve | migrate | user … | group … | resource … | role …`.

mod apps;
mod rbac;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;

use clap::{Parser, Subcommand};

use crate::accounts::{AccountError, Accounts, NewUser, Password};
use crate::db::migrate::DjangoSchema;
use crate::db::{AuditEvent, DjangoTime};
use crate::django::validators::Username;
use crate::sessions;
use crate::settings::{ConfigError, GlobalArgs, ServeArgs, Settings};
use crate::startup::{self, Application};
use crate::telemetry;
use crate::tokens::keys::{self, KeyRing, SigningAlg};
use crate::tokens::stored;
use crate::tokens::{self, hasura_v2};

/// Authentication for Hasura over a Django project's own users, groups and password hashes.
#[derive(Parser, Debug)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (creates Django's auth tables first when they are missing)
    Serve(ServeArgs),
    /// Create Django's contenttypes + auth tables when absent, and gatehouse's own tables
    Migrate,
    /// Manage users in auth_user
    #[command(subcommand)]
    User(UserCommand),
    /// Manage Django groups (auth_group)
    #[command(subcommand)]
    Group(GroupCommand),
    /// Write a new signing key pair (private.pem, mode 0600, and public.pem)
    Keygen {
        /// Key algorithm
        #[arg(long, value_enum, default_value_t = SigningAlg::Rs256)]
        alg: SigningAlg,
        /// Directory to write the files to
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Rotate and list the signing keys kept in the database (GATEHOUSE_KEY_ENCRYPTION_KEY)
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the environment Hasura needs to trust gatehouse
    HasuraConfig {
        /// JWT mode (Hasura verifies tokens with gatehouse's JWKS) or webhook mode
        #[arg(long, value_enum, default_value_t = HasuraMode::Jwt)]
        mode: HasuraMode,
        /// Hasura's HASURA_GRAPHQL_AUTH_HOOK_MODE in webhook mode
        #[arg(long, value_enum, default_value_t = HookMode::Get)]
        hook_mode: HookMode,
    },
    /// Work with tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// List and end users' sessions (their refresh tokens and access tokens)
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage API resources (the `aud` of tokens)
    #[command(subcommand)]
    Resource(rbac::ResourceCommand),
    /// Manage the scopes of API resources
    #[command(subcommand)]
    Scope(rbac::ScopeCommand),
    /// Manage roles: Django groups that bundle scopes
    #[command(subcommand)]
    Role(rbac::RoleCommand),
    /// Manage and test the custom claims scripts (getCustomJwtClaims)
    #[command(subcommand)]
    Claims(rbac::ClaimsCommand),
    /// Manage the OIDC provider's applications (clients)
    #[command(subcommand)]
    App(apps::AppCommand),
    /// Read the audit log
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the latest events, oldest first; with --follow, keep printing new ones
    Tail {
        /// How many of the latest events to print
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Only events of this kind (sign_in_failed, admin.role.create, ...)
        #[arg(long)]
        kind: Option<String>,
        /// Keep running and print events as they are written
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// List a user's live sessions
    List { username: String },
    /// End one session, by id
    Revoke { id: String },
    /// End every session of a user
    RevokeAll { username: String },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum HasuraMode {
    Jwt,
    Webhook,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum HookMode {
    #[value(name = "GET")]
    Get,
    #[value(name = "POST")]
    Post,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Introduce the next signing key: published at once, signing after the JWKS caches have
    /// seen it; the keys in use retire once every token they signed has expired
    Rotate {
        /// Algorithm of the next key [default: GATEHOUSE_JWT_ALG]
        #[arg(long, value_enum)]
        alg: Option<SigningAlg>,
        /// Seconds between publishing and signing [default: JWKS max-age + key reload
        /// interval + 30]
        #[arg(long, value_name = "SECONDS")]
        publish_for: Option<u64>,
        /// Seconds the keys in use keep verifying after the next key signs [default: the
        /// longest token lifetime + 30]
        #[arg(long, value_name = "SECONDS")]
        retire_after: Option<u64>,
    },
    /// List the stored keys and their schedule
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Check a JWT the way Hasura v2 would (JWT mode with gatehouse's JWKS) and explain each
    /// failure; exit code 0 when Hasura would accept it
    Inspect {
        /// The token; `-` reads it from standard input
        token: String,
        /// Check against this JWKS file instead of gatehouse's own keys
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
        /// Hasura's allowed_skew in seconds
        #[arg(long, default_value_t = 0.0)]
        allowed_skew: f64,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, as Django's create_user does
    Create {
        username: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        /// Set is_staff (may log in to the Django admin)
        #[arg(long)]
        staff: bool,
        /// Set is_superuser and is_staff
        #[arg(long)]
        superuser: bool,
        #[command(flatten)]
        password: PasswordSource,
        /// Store an unusable password: the user cannot log in with a password
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// Set a user's password
    SetPassword {
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Mark a user inactive: it can no longer log in
    Deactivate { username: String },
    /// Mark a user active again
    Activate { username: String },
    /// List users
    List,
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create a group
    Create { name: String },
    /// Add a user to a group
    AddUser { group: String, username: String },
    /// Remove a user from a group
    RemoveUser { group: String, username: String },
    /// List groups with their member counts
    List,
}

/// Where a password comes from: a no-echo prompt, or one line on stdin. Never argv.
#[derive(clap::Args, Debug)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input instead of prompting
    #[arg(long)]
    password_stdin: bool,
}

/// A failure, with the exit code it deserves.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Runtime(String),
    /// A check said no and already printed why (`token inspect`): exit 1, nothing more to say.
    Rejected,
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Runtime(_) | Failure::Rejected => ExitCode::from(1),
        }
    }

    /// The one line to print on stderr, if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            Failure::Usage(m) | Failure::Runtime(m) => Some(m),
            Failure::Rejected => None,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::Usage(err.0)
    }
}

impl From<AccountError> for Failure {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Db(db) if db.is_configuration() => Failure::Usage(db.to_string()),
            other => Failure::Runtime(one_line(&other)),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::Runtime(format!("{err:#}"))
    }
}

fn one_line(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let mut settings = Settings::from_args(&cli.global)?;
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    telemetry::init(settings.log_format, default_level);

    match cli.command {
        Command::Serve(args) => {
            settings.http.migrate_on_start = !args.no_migrate;
            serve(&settings).await
        }
        Command::Migrate => {
            let accounts = connect(&settings).await?;
            let report = accounts.db().migrate().await.map_err(AccountError::from)?;
            match report.django {
                DjangoSchema::Created => println!("Created Django's contenttypes and auth tables."),
                DjangoSchema::AlreadyPresent => {
                    println!("Django's contenttypes and auth tables are present; left as they are.")
                }
            }
            for name in &report.applied {
                println!("Applied gatehouse migration {name}.");
            }
            Ok(())
        }
        Command::User(command) => user(&connect(&settings).await?, command).await,
        Command::Group(command) => group(&connect(&settings).await?, command).await,
        Command::Keygen { alg, out } => keygen(alg, &out),
        Command::HasuraConfig { mode, hook_mode } => {
            print!("{}", hasura_config(&settings, mode, hook_mode));
            Ok(())
        }
        Command::Session(command) => session(&connect(&settings).await?, &settings, command).await,
        Command::Token(TokenCommand::Inspect { token, jwks, allowed_skew, json }) => {
            let jwks = match jwks {
                Some(path) => {
                    let bytes = std::fs::read(&path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
                    hasura_v2::parse_jwks(&bytes).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
                }
                None => own_keys(&settings)
                    .await
                    .map_err(|e| Failure::Runtime(format!("{e}; pass --jwks FILE to check against another JWKS")))?
                    .jwks(),
            };
            inspect(&settings, &token, &jwks, allowed_skew, json)
        }
        Command::Keys(command) => keys_command(&settings, command).await,
        Command::Resource(command) => rbac::resource(&rbac_service(&settings).await?, command).await,
        Command::Scope(command) => rbac::scope(&rbac_service(&settings).await?, command).await,
        Command::Role(command) => rbac::role(&rbac_service(&settings).await?, command).await,
        Command::App(command) => apps::app(&rbac_service(&settings).await?, command).await,
        Command::Audit(command) => audit(&connect(&settings).await?, command).await,
        Command::Claims(command) => {
            let accounts = connect(&settings).await?;
            let rbac = crate::rbac::Rbac::new(accounts.db().clone(), settings.rbac.clone());
            rbac::claims(&rbac, &accounts, &settings, command).await
        }
    }
}

async fn rbac_service(settings: &Settings) -> Result<crate::rbac::Rbac, Failure> {
    Ok(crate::rbac::Rbac::new(connect(settings).await?.db().clone(), settings.rbac.clone()))
}

async fn session(accounts: &Accounts, settings: &Settings, command: SessionCommand) -> Result<(), Failure> {
    let db = accounts.db();
    let user_id = |username: String| async move {
        match db.user_by_username(&username).await.map_err(AccountError::from)? {
            Some(user) => Ok(user.id),
            None => Err(Failure::from(AccountError::UnknownUser(username))),
        }
    };
    let now = DjangoTime::now();
    match command {
        SessionCommand::List { username } => {
            let sessions = sessions::live_sessions(db, user_id(username).await?, &settings.sessions)
                .await
                .map_err(AccountError::from)?;
            println!("{:<24} {:<26} {:<26} {:<16} user_agent", "id", "created", "last_used", "ip");
            for s in sessions {
                let (created, used) = (s.created_at.to_django_text(), s.last_used_at.to_django_text());
                println!("{:<24} {:<26} {:<26} {:<16} {}", s.id, created, used, s.ip, s.user_agent);
            }
        }
        SessionCommand::Revoke { id } => {
            let revoked = db.revoke_session(&id, now, "revoked_by_operator").await.map_err(AccountError::from)?;
            if !revoked {
                return Err(Failure::Runtime(format!("no live session with id {id:?}")));
            }
            db.audit_event(&AuditEvent::new("session_revoked", "ended by an operator").by("cli").session(Some(&id)))
                .await
                .map_err(AccountError::from)?;
            println!("Ended session {id}.");
        }
        SessionCommand::RevokeAll { username } => {
            let id = user_id(username.clone()).await?;
            let ended = db.revoke_user_sessions(id, now, "revoked_by_operator").await.map_err(AccountError::from)?;
            db.audit_event(
                &AuditEvent::new("session_revoked", &format!("{} session(s) ended by an operator", ended.len()))
                    .by("cli")
                    .about(Some(id)),
            )
            .await
            .map_err(AccountError::from)?;
            println!("Ended {} session(s) of {username:?}.", ended.len());
        }
    }
    Ok(())
}

fn keygen(alg: SigningAlg, out: &Path) -> Result<(), Failure> {
    let (private, public) = keys::generate_key_pair(alg).map_err(Failure::Runtime)?;
    let ring =
        KeyRing::from_private_pem(&private, None, "generated key").map_err(|e| Failure::Runtime(e.to_string()))?;
    let write = |name: &str, text: &str, private: bool| -> Result<PathBuf, Failure> {
        let path = out.join(name);
        let file = if private {
            keys::create_private_file(&path)
        } else {
            std::fs::OpenOptions::new().write(true).create_new(true).open(&path)
        };
        let mut file =
            file.map_err(|e| Failure::Runtime(format!("{}: {e} (gatehouse never overwrites a key)", path.display())))?;
        file.write_all(text.as_bytes()).map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
        Ok(path)
    };
    let private_path = write("private.pem", &private, true)?;
    let public_path = write("public.pem", &public, false)?;
    println!("Wrote {} (keep it secret) and {}.", private_path.display(), public_path.display());
    println!("alg: {}  kid: {}", ring.alg().hasura_type(), ring.kid());
    println!(
        "Use it with AUTH_PRIVATE_KEY=\"$(cat {})\", or copy it to GATEHOUSE_DATA_DIR/signing-key.pem.",
        private_path.display()
    );
    Ok(())
}

/// The environment for Hasura, one `NAME=value` per line, values quoted for a shell.
pub fn hasura_config(settings: &Settings, mode: HasuraMode, hook_mode: HookMode) -> String {
    let base = &settings.public_url;
    let mut out = String::from(
        "# Hasura needs an admin secret in either mode: HASURA_GRAPHQL_ADMIN_SECRET=<a long random value>\n",
    );
    match mode {
        HasuraMode::Jwt => {
            let claims = &settings.claims;
            let mut secret = serde_json::json!({
                "jwk_url": format!("{base}/webhook/jwks"),
                "claims_namespace": claims.namespace,
                "claims_format": claims.format.as_str(),
                "issuer": claims.issuer,
            });
            if let Some(audience) = &claims.audience {
                secret["audience"] = audience.clone().into();
            }
            out.push_str(&format!("HASURA_GRAPHQL_JWT_SECRET='{secret}'\n"));
            if settings.hasura.allow_anonymous {
                out.push_str(&format!("HASURA_GRAPHQL_UNAUTHORIZED_ROLE={}\n", claims.roles.anonymous_role));
            }
        }
        HasuraMode::Webhook => {
            let method = match hook_mode {
                HookMode::Get => "GET",
                HookMode::Post => "POST",
            };
            out.push_str(&format!("HASURA_GRAPHQL_AUTH_HOOK={base}/webhook/webhook\n"));
            out.push_str(&format!("HASURA_GRAPHQL_AUTH_HOOK_MODE={method}\n"));
            if matches!(hook_mode, HookMode::Post) {
                out.push_str("# gatehouse reads only the forwarded headers; spare Hasura sending the query:\n");
                out.push_str("HASURA_GRAPHQL_AUTH_HOOK_SEND_REQUEST_BODY=false\n");
            }
        }
    }
    out
}

/// The keys the server verifies with: stored ones when GATEHOUSE_KEY_ENCRYPTION_KEY is set.
async fn own_keys(settings: &Settings) -> Result<KeyRing, String> {
    tokens::install_crypto_provider();
    match &settings.keys.vault {
        Some(vault) => {
            let accounts = startup::accounts(settings).await.map_err(|e| e.to_string())?;
            stored::load(accounts.db(), vault, &settings.keys)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "no signing key is stored yet (start `gatehouse serve` once)".to_owned())
        }
        None => KeyRing::load_existing(&settings.keys).map_err(|e| e.to_string()),
    }
}

async fn keys_command(settings: &Settings, command: KeysCommand) -> Result<(), Failure> {
    tokens::install_crypto_provider();
    let Some(vault) = &settings.keys.vault else {
        return Err(Failure::Usage(
            "the signing keys are not in the database: set GATEHOUSE_KEY_ENCRYPTION_KEY \
             (see docs/operations.md, \"Key rotation\")"
                .into(),
        ));
    };
    let accounts = connect(settings).await?;
    let db = accounts.db();
    match command {
        KeysCommand::Rotate { alg, publish_for, retire_after } => {
            // The key table must hold the current key before the next one retires it.
            stored::load_or_create(db, vault, &settings.keys).await.map_err(|e| Failure::Runtime(e.to_string()))?;
            let safe = stored::safe_rotation_times(
                db,
                Duration::from_secs(u64::from(settings.hasura.jwks_max_age)),
                settings.keys.reload_interval,
                Duration::from_secs(settings.claims.access_ttl_secs),
            )
            .await
            .map_err(AccountError::from)?;
            let times = stored::RotationTimes {
                publish_for: publish_for.map_or(safe.publish_for, Duration::from_secs),
                retire_after: retire_after.map_or(safe.retire_after, Duration::from_secs),
            };
            let alg = alg.unwrap_or(settings.keys.generate_alg);
            let rotation =
                stored::rotate(db, vault, alg, times, "cli").await.map_err(|e| Failure::Runtime(e.to_string()))?;
            println!(
                "Next key {} ({}) is published now and signs from {}.",
                rotation.kid,
                rotation.alg.hasura_type(),
                rotation.active_from
            );
            if !rotation.retiring.is_empty() {
                println!("Retiring {} at {}.", rotation.retiring.join(", "), rotation.retire_at);
            }
        }
        KeysCommand::List => {
            let now = DjangoTime::now();
            for key in db.signing_keys().await.map_err(AccountError::from)? {
                let state = match key.retire_at {
                    Some(at) if at <= now => "retired",
                    _ if key.active_from > now => "published",
                    Some(_) => "retiring",
                    None => "signing",
                };
                let retire = key.retire_at.map_or("-".to_owned(), |at| at.to_django_text());
                println!(
                    "{:<45} {:<8} {:<9} signs from {}  retires {retire}",
                    key.kid,
                    key.alg,
                    state,
                    key.active_from.to_django_text()
                );
            }
        }
    }
    Ok(())
}

fn inspect(settings: &Settings, token: &str, jwks: &JwkSet, allowed_skew: f64, json: bool) -> Result<(), Failure> {
    tokens::install_crypto_provider();
    let token = if token == "-" {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::Runtime(format!("reading stdin: {e}")))?;
        line.trim().to_owned()
    } else {
        token.trim().to_owned()
    };
    let config = hasura_v2::HasuraJwtConfig {
        claims_namespace: settings.claims.namespace.clone(),
        claims_format: settings.claims.format,
        issuer: Some(settings.claims.issuer.clone()),
        audience: settings.claims.audience.iter().cloned().collect(),
        allowed_skew_secs: allowed_skew,
    };
    let report = hasura_v2::check_now(&token, jwks, &config);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{report}");
    }
    if report.accepted() { Ok(()) } else { Err(Failure::Rejected) }
}

async fn serve(settings: &Settings) -> Result<(), Failure> {
    let app = Application::build(settings).await?;
    let addr = app.local_addr().map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::info!(%addr, "gatehouse is listening");
    app.run_until(startup::shutdown_signal()).await.map_err(|e| Failure::Runtime(e.to_string()))
}

async fn audit(accounts: &Accounts, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Tail { lines, kind, follow } = command;
    let db = accounts.db();
    let page = crate::db::PageRequest { limit: i64::from(lines), offset: 0 };
    let latest = db.audit_events(page, kind.as_deref()).await.map_err(AccountError::from)?;
    let mut last_id = latest.items.first().map_or(0, |e| e.id);
    for event in latest.items.iter().rev() {
        print_audit_event(event);
    }
    if !follow {
        return Ok(());
    }
    if last_id == 0 {
        // Nothing of this kind yet: start after whatever the log holds now.
        let newest = db.audit_events(crate::db::PageRequest { limit: 1, offset: 0 }, None).await;
        last_id = newest.map_err(AccountError::from)?.items.first().map_or(0, |e| e.id);
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        for event in db.audit_events_after(last_id, 1000).await.map_err(AccountError::from)? {
            last_id = event.id;
            if kind.as_deref().is_none_or(|k| k == event.kind) {
                print_audit_event(&event);
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn print_audit_event(event: &crate::db::AuditRow) {
    let user = event.user_id.map_or("-".to_owned(), |id| id.to_string());
    let ip = event.ip.as_deref().unwrap_or("-");
    let session = event.session_id.as_deref().unwrap_or("-");
    let actor = event.actor.as_deref().unwrap_or("-");
    println!(
        "{} {:<24} {:<7} actor={actor} user={user} ip={ip} session={session} {}",
        event.at.to_django_text(),
        event.kind,
        event.outcome,
        event.detail
    );
}

async fn connect(settings: &Settings) -> Result<Accounts, Failure> {
    // An operator's command may wait for a busy database as long as it may wait to reach it;
    // failing fast is for the server's requests.
    let mut settings = settings.clone();
    settings.database.acquire_timeout = settings.database.acquire_timeout.max(settings.database.connect_timeout);
    Ok(startup::accounts(&settings).await?)
}

async fn user(accounts: &Accounts, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Create { username, email, first_name, last_name, staff, superuser, password, no_password } => {
            let username = Username::parse(&username).map_err(|e| Failure::Usage(format!("username: {e}")))?;
            let password = if no_password { None } else { Some(password.read(true)?) };
            let mut new = NewUser::new(username, password);
            new.email = email;
            new.first_name = first_name;
            new.last_name = last_name;
            new.is_staff = staff || superuser;
            new.is_superuser = superuser;
            let user = accounts.create_user(new).await?;
            println!("Created user {:?} (id {}).", user.username, user.id);
        }
        UserCommand::SetPassword { username, password } => {
            accounts.set_password(&username, &password.read(true)?).await?;
            println!("Password changed for {username:?}.");
        }
        UserCommand::Deactivate { username } => {
            accounts.set_active(&username, false).await?;
            println!("Deactivated {username:?}.");
        }
        UserCommand::Activate { username } => {
            accounts.set_active(&username, true).await?;
            println!("Activated {username:?}.");
        }
        UserCommand::List => {
            let users = accounts.users().await?;
            println!(
                "{:>6}  {:<24} {:<32} {:<6} {:<5} {:<9} last_login",
                "id", "username", "email", "active", "staff", "superuser"
            );
            for u in users {
                let last_login = u.last_login.map_or_else(|| "never".to_owned(), DjangoTime::to_django_text);
                println!(
                    "{:>6}  {:<24} {:<32} {:<6} {:<5} {:<9} {}",
                    u.id, u.username, u.email, u.is_active, u.is_staff, u.is_superuser, last_login
                );
            }
        }
    }
    Ok(())
}

async fn group(accounts: &Accounts, command: GroupCommand) -> Result<(), Failure> {
    match command {
        GroupCommand::Create { name } => {
            let id = accounts.create_group(&name).await?;
            println!("Created group {name:?} (id {id}).");
        }
        GroupCommand::AddUser { group, username } => {
            let changed = accounts.set_membership(&username, &group, true).await?;
            println!("{username:?} {} in {group:?}.", if changed { "is now" } else { "was already" });
        }
        GroupCommand::RemoveUser { group, username } => {
            let changed = accounts.set_membership(&username, &group, false).await?;
            println!("{username:?} {} in {group:?}.", if changed { "is no longer" } else { "was not" });
        }
        GroupCommand::List => {
            let groups = accounts.groups().await?;
            println!("{:>6}  {:<32} members", "id", "name");
            for g in groups {
                println!("{:>6}  {:<32} {}", g.id, g.name, g.members);
            }
        }
    }
    Ok(())
}

impl PasswordSource {
    /// Reads the password: from stdin with `--password-stdin`, else from a no-echo prompt
    /// (typed twice). Without a terminal and without the flag, it refuses rather than guess.
    fn read(&self, confirm: bool) -> Result<Password, Failure> {
        let password = if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::Runtime(format!("reading stdin: {e}")))?;
            line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_owned()
        } else if std::io::stdin().is_terminal() {
            let first = rpassword::prompt_password("Password: ").map_err(|e| Failure::Runtime(e.to_string()))?;
            if confirm {
                let second =
                    rpassword::prompt_password("Password (again): ").map_err(|e| Failure::Runtime(e.to_string()))?;
                if first != second {
                    return Err(Failure::Usage("the passwords did not match".into()));
                }
            }
            first
        } else {
            return Err(Failure::Usage(
                "no password given: pass --password-stdin, or run in a terminal to be prompted".into(),
            ));
        };
        if password.is_empty() {
            return Err(Failure::Usage("the password is empty".into()));
        }
        Ok(Password::new(password))
    }
}
