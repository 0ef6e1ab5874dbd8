//! Sessions: refresh tokens with rotation and reuse detection, and the liveness check the
//! webhook runs on every request.
//!
//! A session is a token family. Its refresh tokens are 256 random bits, stored only as SHA-256
//! digests. Each refresh rotates the token; presenting an already rotated token again within
//! the grace window returns the same successor (browser tabs refreshing together), later it is
//! taken as theft and the whole family is revoked. A session also ends when its user is
//! deactivated, deleted or changes password — in gatehouse or directly in Django — detected from
//! the data: the session keeps a fingerprint of the password hash it started with.

mod cache;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{AuditEvent, Db, DbError, DjangoTime, GrantRow, Outage, Rotation, SessionRow, SessionState, UserRow};

pub use self::cache::CacheLookup;
use self::cache::LiveCache;

#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// Absolute lifetime of a session: no refresh extends it.
    pub absolute_ttl_secs: u64,
    /// A session unused for this long ends.
    pub idle_ttl_secs: u64,
    /// How long a rotated refresh token still returns its successor.
    pub reuse_grace_secs: u64,
    /// How long the webhook trusts a liveness answer.
    pub cache_ttl: Duration,
    /// While the database is unreachable, a session seen live at most this long ago is still
    /// taken as live (0: never). Revocations made meanwhile could not be seen anyway: they
    /// need the database too, unless another instance reaches it while this one cannot.
    pub stale_if_error_secs: u64,
}

/// Where a session was started from, for the user's session list and the audit log.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// What a session is for.
#[derive(Clone, Copy, Debug)]
pub enum SessionKind<'a> {
    /// A login at `/webhook/login` or `/webhook/signup`.
    Api,
    /// A sign-in on the OIDC provider's page: the SSO cookie. Its refresh token never leaves
    /// the server.
    Browser,
    /// An OIDC grant: one application's tokens, made in an SSO session.
    Grant(&'a GrantRow),
}

impl SessionKind<'_> {
    fn name(self) -> &'static str {
        match self {
            SessionKind::Api => "api",
            SessionKind::Browser => "browser",
            SessionKind::Grant(_) => "oidc",
        }
    }
}

/// Who may rotate a refresh token: `/webhook/refresh`, or the OIDC application it was issued to.
#[derive(Clone, Copy, Debug)]
pub enum RefreshBy<'a> {
    Api,
    Client(&'a str),
}

/// A refresh token handed to a client, and the session it belongs to.
#[derive(Clone, Debug)]
pub struct IssuedRefresh {
    pub session_id: String,
    pub user_id: i32,
    pub refresh_token: String,
    /// Seconds until the session's absolute expiry.
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown, expired, revoked, reused or malformed: one answer for all.
    #[error("the refresh token is not valid")]
    Invalid,
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Clone)]
pub struct Sessions {
    db: Db,
    settings: Arc<SessionSettings>,
    successor_key: Arc<[u8; 32]>,
    cache: Arc<LiveCache>,
    refresh_tokens_issued: Counter,
    /// Whether liveness reads fail: then cached answers stand at once (see [`Sessions::is_live`]).
    outage: Arc<Outage>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Refresh tokens are 32 bytes, base64url without padding.
const TOKEN_LEN: usize = 43;

impl Sessions {
    /// `successor_key` is a server secret: successors are `HMAC(key, token)`, so a repeated
    /// refresh can return the same successor without the plaintext ever being stored.
    pub fn new(db: Db, settings: SessionSettings, successor_key: [u8; 32]) -> Self {
        let stale_if_error = Duration::from_secs(settings.stale_if_error_secs);
        let cache = Arc::new(LiveCache::new(settings.cache_ttl, stale_if_error));
        Sessions {
            db,
            settings: Arc::new(settings),
            successor_key: Arc::new(successor_key),
            cache,
            refresh_tokens_issued: Counter::default(),
            outage: Arc::default(),
        }
    }

    /// Counts the refresh tokens handed out (new sessions and rotations) on `counter`.
    pub fn counting_refresh_tokens(mut self, counter: Counter) -> Self {
        self.refresh_tokens_issued = counter;
        self
    }

    /// Hits and misses of the session-liveness cache.
    pub fn live_cache_lookups(&self) -> &Family<CacheLookup, Counter> {
        self.cache.lookups()
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// What the liveness checks know of a database outage, to share with other hot paths.
    pub fn outage(&self) -> Arc<Outage> {
        self.outage.clone()
    }

    /// Starts a session for a user who just logged in or signed up.
    pub async fn start(
        &self,
        user: &UserRow,
        client: &ClientInfo,
        kind: SessionKind<'_>,
    ) -> Result<IssuedRefresh, DbError> {
        let now = DjangoTime::now();
        let refresh_token = random_token(32);
        let session = SessionRow {
            id: random_token(16),
            user_id: user.id,
            password_fingerprint: fingerprint(&user.password),
            created_at: now,
            last_used_at: now,
            expires_at: now.plus_secs(self.settings.absolute_ttl_secs),
            revoked_at: None,
            revoked_reason: None,
            ip: truncate(&client.ip, 64),
            user_agent: truncate(&client.user_agent, 512),
            kind: kind.name().to_owned(),
            client_id: match kind {
                SessionKind::Grant(grant) => Some(grant.application_id.clone()),
                SessionKind::Api | SessionKind::Browser => None,
            },
        };
        let grant = match kind {
            SessionKind::Grant(grant) => Some(grant),
            SessionKind::Api | SessionKind::Browser => None,
        };
        self.db.insert_session(&session, &digest(&refresh_token), grant).await?;
        if !matches!(kind, SessionKind::Browser) {
            self.refresh_tokens_issued.inc();
        }
        Ok(IssuedRefresh {
            session_id: session.id,
            user_id: user.id,
            refresh_token,
            expires_in: self.settings.absolute_ttl_secs,
        })
    }

    /// Rotates a refresh token. See the module documentation for the rules.
    pub async fn refresh(
        &self,
        token: &str,
        client: &ClientInfo,
        by: RefreshBy<'_>,
    ) -> Result<IssuedRefresh, SessionError> {
        if !is_token_shaped(token) {
            return Err(SessionError::Invalid);
        }
        let token_digest = digest(token);
        let row = self.db.refresh_token(&token_digest).await?.ok_or(SessionError::Invalid)?;
        let state = self.db.session_state(&row.session_id).await?.ok_or(SessionError::Invalid)?;
        let owned = match by {
            RefreshBy::Api => state.session.kind == "api",
            RefreshBy::Client(id) => state.session.kind == "oidc" && state.session.client_id.as_deref() == Some(id),
        };
        if !owned {
            return Err(SessionError::Invalid);
        }
        let now = DjangoTime::now();
        self.require_live(&state, now).await?;
        let successor = self.successor(token);
        let rotated_at = match row.rotated_at {
            Some(at) => Some(at),
            None => match self.db.rotate_refresh_token(&token_digest, &digest(&successor), &row.session_id, now).await?
            {
                Rotation::Rotated => None,
                // A concurrent refresh of the same token won, or the session ended meanwhile.
                Rotation::AlreadyRotated => {
                    let again = self.db.refresh_token(&token_digest).await?.ok_or(SessionError::Invalid)?;
                    Some(again.rotated_at.ok_or(SessionError::Invalid)?)
                }
            },
        };
        if rotated_at.is_some_and(|at| !self.within_grace(at, now)) {
            self.revoke(&row.session_id, "refresh_token_reuse").await?;
            let detail = "a rotated refresh token was presented after the grace window; the session was revoked";
            let (user_id, ip) = (Some(state.session.user_id), Some(client.ip.as_str()));
            let event = AuditEvent::new("refresh_token_reuse", detail)
                .about(user_id)
                .session(Some(&row.session_id))
                .from_ip(ip)
                .failed();
            if let Err(err) = self.db.audit_event(&event).await {
                tracing::error!(error = %err, "could not write the audit record of a refresh-token reuse");
            }
            tracing::warn!(session_id = %row.session_id, user_id = state.session.user_id, "refresh token reuse: session revoked");
            return Err(SessionError::Invalid);
        }
        let left = (state.session.expires_at.0 - now.0).whole_seconds().max(0) as u64;
        self.refresh_tokens_issued.inc();
        Ok(IssuedRefresh {
            session_id: row.session_id,
            user_id: state.session.user_id,
            refresh_token: successor,
            expires_in: left,
        })
    }

    /// The session a refresh token belongs to, if the token is known, and whether the token is
    /// current (not rotated, or rotated within the grace window).
    pub async fn session_of_refresh_token(&self, token: &str) -> Result<Option<(SessionRow, bool)>, DbError> {
        if !is_token_shaped(token) {
            return Ok(None);
        }
        let Some(row) = self.db.refresh_token(&digest(token)).await? else { return Ok(None) };
        let now = DjangoTime::now();
        let current = row.rotated_at.is_none_or(|at| self.within_grace(at, now));
        Ok(self.db.session_state(&row.session_id).await?.map(|s| (s.session, current)))
    }

    fn within_grace(&self, rotated_at: DjangoTime, now: DjangoTime) -> bool {
        let grace = time::Duration::seconds(i64::try_from(self.settings.reuse_grace_secs).unwrap_or(i64::MAX));
        now.0 - rotated_at.0 <= grace
    }

    /// Whether the session behind an access token is still live. Answers from a cache whose
    /// entries live at most one second, and are dropped at once when this instance revokes.
    ///
    /// Stale-if-error: when the database cannot be read, the last answer stands for
    /// `stale_if_error_secs` more. While reads keep failing, such an answer is given at once
    /// (the webhook is on the path of every Hasura request and must not wait for the pool's
    /// acquire timeout each time) and one background read at a time watches for the database
    /// to come back. A session never seen, or seen too long ago, gets the error (503).
    pub async fn is_live(&self, session_id: &str) -> Result<bool, DbError> {
        if let Some(live) = self.cache.get(session_id) {
            return Ok(live);
        }
        if self.outage.failing()
            && let Some(live) = self.cache.get_stale(session_id)
        {
            let (sessions, session_id) = (self.clone(), session_id.to_owned());
            self.outage.probe(async move {
                let _ = sessions.read_liveness(&session_id).await;
            });
            return Ok(live);
        }
        match self.read_liveness(session_id).await {
            Err(err) => self.cache.get_stale(session_id).ok_or(err),
            live => live,
        }
    }

    /// Reads whether a session is live from the database, and caches the answer.
    async fn read_liveness(&self, session_id: &str) -> Result<bool, DbError> {
        let state = self.db.session_state(session_id).await;
        self.outage.record("session liveness", &state);
        let live = match state? {
            Some(state) => self.require_live(&state, DjangoTime::now()).await.is_ok(),
            None => false,
        };
        // A revocation that landed while we read wins over what we read.
        Ok(self.cache.put(session_id, live))
    }

    /// Ends the session if it is dead for a reason only the data shows (the account changed),
    /// so later checks need not work it out again.
    async fn require_live(&self, state: &SessionState, now: DjangoTime) -> Result<(), SessionError> {
        let session = &state.session;
        if session.revoked_at.is_some() || !within_lifetime(session, now, &self.settings) {
            return Err(SessionError::Invalid);
        }
        let account_change = match (state.user_is_active, &state.user_password) {
            (Some(true), Some(password)) if fingerprint(password) == session.password_fingerprint => None,
            (Some(true), Some(_)) => Some("password_changed"),
            (Some(false), _) => Some("user_deactivated"),
            _ => Some("user_deleted"),
        };
        if let Some(reason) = account_change {
            self.revoke(&session.id, reason).await?;
            return Err(SessionError::Invalid);
        }
        Ok(())
    }

    /// The user's sessions that are neither revoked nor expired, newest first.
    pub async fn live_sessions(&self, user_id: i32) -> Result<Vec<SessionRow>, DbError> {
        live_sessions(&self.db, user_id, &self.settings).await
    }

    /// Drops what this instance remembers about a session that another instance ended.
    pub fn forget_cached(&self, session_id: &str) {
        self.cache.forget(session_id);
    }

    /// Drops every remembered liveness answer (notifications may have been missed).
    pub fn forget_all_cached(&self) {
        self.cache.clear();
    }

    /// Revokes one session; true when it was live.
    pub async fn revoke(&self, session_id: &str, reason: &str) -> Result<bool, DbError> {
        let revoked = self.db.revoke_session(session_id, DjangoTime::now(), reason).await?;
        self.cache.forget(session_id);
        Ok(revoked)
    }

    /// Revokes every session of a user; returns how many were live.
    pub async fn revoke_all(&self, user_id: i32, reason: &str) -> Result<usize, DbError> {
        let ids = self.db.revoke_user_sessions(user_id, DjangoTime::now(), reason).await?;
        for id in &ids {
            self.cache.forget(id);
        }
        Ok(ids.len())
    }

    fn successor(&self, token: &str) -> String {
        self.mac("successor", token)
    }

    /// The CSRF token that goes with a refresh token delivered as a cookie: a page of ours can
    /// read it from the login answer and send it back in a header; another site cannot.
    pub fn csrf_token(&self, refresh_token: &str) -> String {
        self.mac("csrf", refresh_token)
    }

    /// Constant-time check of a CSRF token against the refresh token it must belong to.
    pub fn csrf_matches(&self, refresh_token: &str, csrf_token: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.csrf_token(refresh_token).as_bytes().ct_eq(csrf_token.as_bytes()).into()
    }

    /// The SSO cookie's value for a browser session: its id and a MAC, so that the cookie is
    /// unforgeable without storing anything more.
    pub fn browser_cookie(&self, session_id: &str) -> String {
        format!("{session_id}.{}", self.mac("browser", session_id))
    }

    /// The live browser session an SSO cookie names, if any.
    pub async fn browser_session(&self, cookie: &str) -> Result<Option<SessionRow>, DbError> {
        use subtle::ConstantTimeEq;
        let Some((session_id, mac)) = cookie.split_once('.') else { return Ok(None) };
        if session_id.len() > 32 || !bool::from(self.mac("browser", session_id).as_bytes().ct_eq(mac.as_bytes())) {
            return Ok(None);
        }
        let Some(state) = self.db.session_state(session_id).await? else { return Ok(None) };
        if state.session.kind != "browser" {
            return Ok(None);
        }
        match self.require_live(&state, DjangoTime::now()).await {
            Ok(()) => Ok(Some(state.session)),
            Err(SessionError::Invalid) => Ok(None),
            Err(SessionError::Db(err)) => Err(err),
        }
    }

    fn mac(&self, purpose: &str, token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.successor_key.as_slice()).expect("HMAC takes any key");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(token.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// Neither past its absolute expiry nor idle for too long.
pub fn within_lifetime(session: &SessionRow, now: DjangoTime, settings: &SessionSettings) -> bool {
    now < session.expires_at && now < session.last_used_at.plus_secs(settings.idle_ttl_secs)
}

/// The user's sessions that are neither revoked nor expired, newest first.
pub async fn live_sessions(db: &Db, user_id: i32, settings: &SessionSettings) -> Result<Vec<SessionRow>, DbError> {
    let now = DjangoTime::now();
    let sessions = db.unrevoked_sessions(user_id).await?;
    Ok(sessions.into_iter().filter(|s| within_lifetime(s, now, settings)).collect())
}

fn is_token_shaped(token: &str) -> bool {
    token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256, hex: how refresh tokens are stored.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a session remembers of the password hash it started with: enough to notice a change,
/// useless to an attacker who reads the table.
fn fingerprint(password_hash: &str) -> String {
    hex::encode(Sha256::digest(format!("gatehouse-session-fingerprint:{password_hash}").as_bytes()))
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_one_shape() {
        let token = random_token(32);
        assert!(is_token_shaped(&token), "{token}");
        assert!(!is_token_shaped(&token[1..]));
        assert!(!is_token_shaped(&format!("{}=", &token[1..])));
        assert!(!is_token_shaped(&"é".repeat(22)));
        assert_ne!(random_token(32), token);
    }

    #[test]
    fn digests_and_fingerprints_never_contain_their_input() {
        let token = random_token(32);
        assert_eq!(digest(&token).len(), 64);
        assert_ne!(fingerprint("pbkdf2_sha256$1$a$b"), fingerprint("pbkdf2_sha256$1$a$c"));
    }
}
