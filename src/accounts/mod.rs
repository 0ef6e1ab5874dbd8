//! Accounts: Django's user model semantics over [`Db`] — `authenticate`, `create_user`,
//! `set_password` and groups — with the password rules of `django.contrib.auth`.

mod hashing;
pub mod limits;
mod password;

use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::db::{AuditEvent, Db, DbError, DjangoTime, GroupSummary, NewUserRow, UserRow, is_unique_violation};
use crate::django::hashers;
use crate::django::validators::{PasswordPolicy, PasswordViolation, UserAttributes, Username};

pub use self::hashing::{DEFAULT_QUEUE_PER_SLOT, HashPriority, HashSlot, Hashing, HashingError, HashingMetrics};
pub use self::limits::{LimitSettings, Limits, RetryAfter};
pub use self::password::Password;

/// Django model limits on the free-text user fields.
const MAX_NAME_CHARS: usize = 150;
const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("A user with that username already exists.")]
    UsernameTaken,
    #[error("no user named {0:?}")]
    UnknownUser(String),
    #[error("no group named {0:?}")]
    UnknownGroup(String),
    #[error("A group with that name already exists.")]
    GroupExists,
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    #[error("{}", .0.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join(" "))]
    WeakPassword(Vec<PasswordViolation>),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Hashing(#[from] HashingError),
    /// A brute-force limit: try again after the given number of seconds.
    #[error("too many attempts; try again in {} seconds", .0.0)]
    RateLimited(RetryAfter),
}

/// What `create_user` needs; the username is already a valid, normalised [`Username`].
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    /// `None` stores an unusable password, as Django's `create_user(password=None)` does.
    pub password: Option<Password>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

impl NewUser {
    pub fn new(username: Username, password: Option<Password>) -> Self {
        NewUser {
            username,
            password,
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            is_staff: false,
            is_superuser: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Accounts {
    db: Db,
    hashing: Hashing,
    policy: PasswordPolicy,
    limits: Arc<Limits>,
    sign_ins: Family<SignInOutcome, Counter>,
}

/// How a network sign-in ended: `success`, `failure` (wrong password, unknown or inactive
/// user), `rate_limited`, `busy` (hashing queue full) or `error` (database).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInOutcome {
    pub outcome: &'static str,
}

impl Accounts {
    pub fn new(db: Db, hashing: Hashing, policy: PasswordPolicy) -> Self {
        Accounts {
            db,
            hashing,
            policy,
            limits: Arc::new(Limits::new(LimitSettings::default())),
            sign_ins: Family::default(),
        }
    }

    /// The same accounts with these brute-force limits.
    pub fn with_limits(mut self, settings: LimitSettings) -> Self {
        self.limits = Arc::new(Limits::new(settings));
        self
    }

    pub fn hashing(&self) -> &Hashing {
        &self.hashing
    }

    /// Network sign-ins counted by [`SignInOutcome`].
    pub fn sign_in_outcomes(&self) -> &Family<SignInOutcome, Counter> {
        &self.sign_ins
    }

    /// A sign-in from the network (`/webhook/login`, the OIDC sign-in page): the brute-force
    /// limits are checked before any hash is computed, then [`Accounts::authenticate`].
    pub async fn sign_in(
        &self,
        username: &str,
        password: &Password,
        ip: IpAddr,
    ) -> Result<Option<UserRow>, AccountError> {
        let result = self.limited_sign_in(username, password, ip).await;
        let outcome = match &result {
            Ok(Some(_)) => "success",
            Ok(None) => "failure",
            Err(AccountError::RateLimited(_)) => "rate_limited",
            Err(AccountError::Hashing(HashingError::Busy)) => "busy",
            Err(_) => "error",
        };
        self.sign_ins.get_or_create(&SignInOutcome { outcome }).inc();
        result
    }

    async fn limited_sign_in(
        &self,
        username: &str,
        password: &Password,
        ip: IpAddr,
    ) -> Result<Option<UserRow>, AccountError> {
        self.limits.check_sign_in(username, ip).map_err(AccountError::RateLimited)?;
        let user = self.authenticate(username, password).await?;
        let ip_text = ip.to_string();
        let audited = match &user {
            Some(user) => {
                self.limits.sign_in_succeeded(username);
                let event = AuditEvent::by_user("sign_in", user.id, "password accepted").from_ip(Some(&ip_text));
                self.db.audit_event(&event).await
            }
            None => {
                self.limits.sign_in_failed(username, ip);
                let name: String = username.chars().take(150).collect();
                let detail = format!("for {name:?}");
                self.db.audit_event(&AuditEvent::new("sign_in_failed", &detail).from_ip(Some(&ip_text)).failed()).await
            }
        };
        match audited {
            // The session that follows would wait for the database as long again.
            Err(err) if err.is_unavailable() => return Err(err.into()),
            Err(err) => tracing::error!(error = %err, "could not write the audit record of a sign-in"),
            Ok(()) => {}
        }
        Ok(user)
    }

    /// A sign-up from the network: counted against the sign-up rates before any hash, then
    /// [`Accounts::create_user`], audited.
    pub async fn sign_up(&self, new: NewUser, ip: IpAddr) -> Result<UserRow, AccountError> {
        self.limits.sign_up(ip).map_err(AccountError::RateLimited)?;
        let user = self.create_user(new).await?;
        let ip = ip.to_string();
        let event = AuditEvent::by_user("signup", user.id, "new account").from_ip(Some(&ip));
        match self.db.audit_event(&event).await {
            // The session that follows would wait for the database as long again.
            Err(err) if err.is_unavailable() => return Err(err.into()),
            Err(err) => tracing::error!(error = %err, "could not write the audit record of a sign-up"),
            Ok(()) => {}
        }
        Ok(user)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The password validators in force.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// The names of the user's Django groups, sorted.
    pub async fn group_names(&self, user_id: i32) -> Result<Vec<String>, AccountError> {
        Ok(self.db.group_names_of_user(user_id).await?)
    }

    /// Django's `ModelBackend.authenticate`: exact username match; one default-hasher run for
    /// an unknown user, an unusable password or an unknown hasher; `is_active` checked only
    /// after the password so an inactive account answers in the same time; an outdated hash
    /// upgraded on a correct password; `last_login` set on success.
    ///
    /// `Ok(None)` is the one answer for every way a login can fail.
    pub async fn authenticate(&self, username: &str, password: &Password) -> Result<Option<UserRow>, AccountError> {
        // A login the hashing queue would refuse costs no query, and its refusal cannot depend on
        // whether the account exists. The slot itself is taken after the query: held across it,
        // it would keep the requests behind waiting on a slow or unreachable database.
        self.hashing.check_capacity()?;
        // No username with a NUL can exist, and PostgreSQL refuses to even compare one.
        let lookup = if username.contains('\0') { Ok(None) } else { self.db.user_by_username(username).await };
        let user = match lookup {
            Ok(user) => user,
            Err(DbError::Sql(err @ (sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)))) => {
                tracing::warn!(error = %err, "an auth_user row cannot be read; that user cannot log in");
                None
            }
            Err(err) => return Err(err.into()),
        };
        let slot = self.hashing.reserve().await?;
        let Some(user) = user else {
            slot.fake().await?;
            return Ok(None);
        };
        let (verification, upgraded) = match slot.verify(password, &user.password).await? {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(user_id = user.id, error = %err, "stored password hash cannot be used");
                return Ok(None);
            }
        };
        if !verification.valid {
            return Ok(None);
        }
        let mut user = user;
        if let Some(upgraded) = upgraded {
            if self.db.replace_password_hash(user.id, &user.password, &upgraded).await? {
                tracing::info!(user_id = user.id, "upgraded the stored password hash");
                user.password = upgraded;
            } else {
                // Changed meanwhile (in the Django admin, say): callers see the row as it is now.
                user =
                    self.db.user_by_id(user.id).await?.ok_or_else(|| AccountError::UnknownUser(username.to_owned()))?;
            }
        }
        if !user.is_active {
            return Ok(None);
        }
        let now = DjangoTime::now();
        self.db.set_last_login(user.id, now).await?;
        Ok(Some(UserRow { last_login: Some(now), ..user }))
    }

    /// Django's `UserManager.create_user`: NFKC username (done by [`Username`]), domain-lower-cased
    /// email, `make_password`, `is_active` true, `last_login` NULL, `date_joined` now. The password
    /// must pass the configured validators.
    pub async fn create_user(&self, new: NewUser) -> Result<UserRow, AccountError> {
        let email = normalize_email(new.email.trim());
        check_length("email", &email, MAX_EMAIL_CHARS)?;
        check_length("first_name", &new.first_name, MAX_NAME_CHARS)?;
        check_length("last_name", &new.last_name, MAX_NAME_CHARS)?;
        let attributes = UserAttributes {
            username: new.username.as_str(),
            first_name: &new.first_name,
            last_name: &new.last_name,
            email: &email,
        };
        if let Some(password) = &new.password {
            self.policy.validate(password.expose(), Some(&attributes)).map_err(AccountError::WeakPassword)?;
        }
        // Spare a 200 ms hash for the common case; the unique constraint still decides races.
        if self.db.user_by_username(new.username.as_str()).await?.is_some() {
            return Err(AccountError::UsernameTaken);
        }
        let hash = match &new.password {
            Some(password) => self.hashing.make(password).await?,
            None => hashers::make_unusable_password(),
        };
        let row = NewUserRow {
            username: new.username.as_str(),
            password: &hash,
            email: &email,
            first_name: &new.first_name,
            last_name: &new.last_name,
            is_staff: new.is_staff,
            is_superuser: new.is_superuser,
            date_joined: DjangoTime::now(),
        };
        let id = match self.db.insert_user(&row).await {
            Ok(id) => id,
            Err(DbError::Sql(err)) if is_unique_violation(&err) => return Err(AccountError::UsernameTaken),
            Err(err) => return Err(err.into()),
        };
        self.db.user_by_id(id).await?.ok_or_else(|| AccountError::UnknownUser(row.username.to_owned()))
    }

    /// Django's `set_password` + `save()`, after the configured validators.
    pub async fn set_password(&self, username: &str, password: &Password) -> Result<(), AccountError> {
        let user =
            self.db.user_by_username(username).await?.ok_or_else(|| AccountError::UnknownUser(username.to_owned()))?;
        let attributes = UserAttributes {
            username: &user.username,
            first_name: &user.first_name,
            last_name: &user.last_name,
            email: &user.email,
        };
        self.policy.validate(password.expose(), Some(&attributes)).map_err(AccountError::WeakPassword)?;
        let hash = self.hashing.make(password).await?;
        if !self.db.set_password_hash(username, &hash).await? {
            return Err(AccountError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }

    pub async fn set_active(&self, username: &str, active: bool) -> Result<(), AccountError> {
        if !self.db.set_active(username, active).await? {
            return Err(AccountError::UnknownUser(username.to_owned()));
        }
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, AccountError> {
        Ok(self.db.users().await?)
    }

    pub async fn create_group(&self, name: &str) -> Result<i32, AccountError> {
        if name.trim().is_empty() {
            return Err(AccountError::InvalidField { field: "name", message: "This field is required.".into() });
        }
        check_length("name", name, MAX_NAME_CHARS)?;
        match self.db.insert_group(name).await {
            Ok(id) => Ok(id),
            Err(DbError::Sql(err)) if is_unique_violation(&err) => Err(AccountError::GroupExists),
            Err(err) => Err(err.into()),
        }
    }

    /// Adds or removes a membership; true when it changed anything.
    pub async fn set_membership(&self, username: &str, group: &str, member: bool) -> Result<bool, AccountError> {
        let user =
            self.db.user_by_username(username).await?.ok_or_else(|| AccountError::UnknownUser(username.to_owned()))?;
        let group_id = self.db.group_id(group).await?.ok_or_else(|| AccountError::UnknownGroup(group.to_owned()))?;
        Ok(if member {
            self.db.add_user_to_group(user.id, group_id).await?
        } else {
            self.db.remove_user_from_group(user.id, group_id).await?
        })
    }

    pub async fn groups(&self) -> Result<Vec<GroupSummary>, AccountError> {
        Ok(self.db.groups().await?)
    }
}

fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), AccountError> {
    let count = value.chars().count();
    if count > max {
        return Err(AccountError::InvalidField {
            field,
            message: format!("Ensure this value has at most {max} characters (it has {count})."),
        });
    }
    Ok(())
}

/// Django's `BaseUserManager.normalize_email`: lower-case the domain part only.
pub fn normalize_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => email.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_email_lowercases_only_the_domain() {
        assert_eq!(normalize_email("Alice.Smith@Example.COM"), "Alice.Smith@example.com");
        assert_eq!(normalize_email("no-at-sign"), "no-at-sign");
        assert_eq!(normalize_email("a@b@EXAMPLE.org"), "a@b@example.org");
        assert_eq!(normalize_email(""), "");
    }
}
