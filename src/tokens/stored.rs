//! Signing keys kept in the database, so that every instance behind a load balancer signs with
//! the same key and publishes the same JWKS. Enabled by `GATEHOUSE_KEY_ENCRYPTION_KEY`: private
//! keys are stored sealed with AES-256-GCM under a key derived from it.
//!
//! A rotation never makes a request fail: the next key is published at once but signs only
//! from `active_from`, later than any JWKS cache (Hasura's, other instances') can be stale;
//! the previous keys keep verifying until every token they signed has expired (`retire_at`).

use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use super::keys::{self, KeyError, KeyRing, KeySettings, ScheduledKey, SigningAlg};
use crate::db::{Db, DbError, DjangoTime, SigningKeyRow};

/// Seals and opens stored private keys; built once from `GATEHOUSE_KEY_ENCRYPTION_KEY`.
pub struct KeyVault {
    aead: RandomizedNonceKey,
    secret_root: [u8; 32],
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyVault([redacted])")
    }
}

/// Shortest accepted `GATEHOUSE_KEY_ENCRYPTION_KEY`: 32 characters (`openssl rand -base64 32`
/// gives 44).
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoredKeyError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl KeyVault {
    pub fn new(secret: &str) -> Result<KeyVault, String> {
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(format!("must be at least {MIN_SECRET_LEN} characters (try `openssl rand -base64 32`)"));
        }
        let secret = secret.as_bytes();
        let aead =
            RandomizedNonceKey::new(&AES_256_GCM, &keys::derive_secret(secret, "gatehouse signing-key encryption v1"))
                .map_err(|_| "cannot build the encryption key".to_owned())?;
        Ok(KeyVault { aead, secret_root: keys::derive_secret(secret, "gatehouse derived secrets v1") })
    }

    /// base64(nonce ‖ ciphertext ‖ tag); the kid is authenticated, so a sealed key cannot be
    /// moved to another row.
    fn seal(&self, kid: &str, private_pem: &str) -> Result<String, KeyError> {
        let mut in_out = private_pem.as_bytes().to_vec();
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| KeyError::Signing("cannot encrypt the signing key".into()))?;
        let mut sealed = nonce.as_ref().to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(STANDARD.encode(sealed))
    }

    fn open(&self, kid: &str, sealed: &str) -> Result<String, KeyError> {
        let undecryptable = || KeyError::Invalid {
            source_name: format!("stored signing key {kid}"),
            reason: "cannot be decrypted: GATEHOUSE_KEY_ENCRYPTION_KEY is not the key it was stored with".into(),
        };
        let bytes = STANDARD.decode(sealed).map_err(|_| undecryptable())?;
        if bytes.len() < NONCE_LEN {
            return Err(undecryptable());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
        let mut in_out = ciphertext.to_vec();
        let plain =
            self.aead.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out).map_err(|_| undecryptable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())
    }
}

/// The ring of stored keys; `None` while the table is empty.
pub async fn load(db: &Db, vault: &KeyVault, settings: &KeySettings) -> Result<Option<KeyRing>, StoredKeyError> {
    let rows = db.signing_keys().await?;
    let mut scheduled = Vec::with_capacity(rows.len());
    for row in rows {
        scheduled.push(ScheduledKey {
            private_pem: vault.open(&row.kid, &row.private_key)?,
            kid: row.kid,
            active_from: whole_seconds_after(row.active_from),
            retire_at: row.retire_at.map(whole_seconds_after),
        });
    }
    Ok(KeyRing::from_schedule(&scheduled, &vault.secret_root, settings)?)
}

/// Rounded up: a key signs, and retires, no earlier than scheduled.
fn whole_seconds_after(at: DjangoTime) -> i64 {
    at.0.unix_timestamp() + i64::from(at.0.nanosecond() > 0)
}

/// The stored keys; on the first start, the key configured so far (`AUTH_PRIVATE_KEY` or the
/// key file, so that tokens already issued keep verifying) or else a new one is stored first.
pub async fn load_or_create(db: &Db, vault: &KeyVault, settings: &KeySettings) -> Result<KeyRing, StoredKeyError> {
    if let Some(ring) = load(db, vault, settings).await? {
        warn_if_configured_key_ignored(&ring, settings);
        return Ok(ring);
    }
    let (pem, origin) = match keys::configured_private_key(settings)? {
        Some((pem, source)) => (pem, format!("imported from {source}")),
        None => {
            let (pem, _) = keys::generate_key_pair(settings.generate_alg)
                .map_err(|reason| KeyError::Invalid { source_name: "new signing key".into(), reason })?;
            (pem, "generated".to_owned())
        }
    };
    let ring = KeyRing::from_private_pem(&pem, settings.key_id.clone(), "the first stored signing key")?;
    let now = DjangoTime::now();
    let row = sealed_row(vault, &ring, &pem, now, now)?;
    db.insert_first_signing_key(&row).await?;
    let ring = load(db, vault, settings).await?.ok_or(DbError::Schema("the signing key table is empty".into()))?;
    if ring.verifying_keys().iter().any(|k| k.kid == row.kid) {
        tracing::info!(kid = %row.kid, origin, "stored the first signing key in the database");
        db.audit_event(&crate::db::AuditEvent::system("key_stored", &format!("{} {origin}", row.kid))).await?;
    }
    Ok(ring)
}

fn warn_if_configured_key_ignored(ring: &KeyRing, settings: &KeySettings) {
    if settings.private_key_pem.is_some()
        && let Ok(configured) = KeyRing::from_private_pem(
            &settings.private_key_pem.clone().unwrap_or_default(),
            settings.key_id.clone(),
            "AUTH_PRIVATE_KEY",
        )
        && !ring.verifying_keys().iter().any(|k| k.kid == configured.kid())
    {
        tracing::warn!("AUTH_PRIVATE_KEY is ignored: the signing keys live in the database (see `gatehouse keys`)");
    }
}

fn sealed_row(
    vault: &KeyVault,
    ring: &KeyRing,
    pem: &str,
    now: DjangoTime,
    active_from: DjangoTime,
) -> Result<SigningKeyRow, KeyError> {
    let kid = ring.kid().to_owned();
    Ok(SigningKeyRow {
        private_key: vault.seal(&kid, pem)?,
        alg: ring.alg().hasura_type().to_owned(),
        kid,
        created_at: now,
        active_from,
        retire_at: None,
    })
}

/// When a rotation happens: how long the next key is published before it signs, and how long
/// the previous keys keep verifying after that.
#[derive(Clone, Copy, Debug)]
pub struct RotationTimes {
    pub publish_for: Duration,
    pub retire_after: Duration,
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub kid: String,
    pub alg: SigningAlg,
    pub active_from: OffsetDateTime,
    pub retiring: Vec<String>,
    pub retire_at: OffsetDateTime,
}

/// Clock differences between instances tolerated around the schedule.
const SKEW: Duration = Duration::from_secs(30);

/// The safe [`RotationTimes`] for these settings: publish for longer than the JWKS may be
/// cached and instances take to reload; retire after the longest token lifetime.
pub async fn safe_rotation_times(
    db: &Db,
    jwks_max_age: Duration,
    reload_interval: Duration,
    access_token_ttl: Duration,
) -> Result<RotationTimes, DbError> {
    let resources = db.longest_resource_token_ttl().await?.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    let longest = access_token_ttl
        .max(Duration::from_secs(resources))
        .max(Duration::from_secs(crate::oidc::flow::ID_TOKEN_TTL_SECS));
    Ok(RotationTimes { publish_for: jwks_max_age + reload_interval + SKEW, retire_after: longest + SKEW })
}

/// Stores a new key of `alg` that signs after `times.publish_for`; the keys in use retire
/// `times.retire_after` later. Keys retired for a week are deleted. `actor` is audited.
pub async fn rotate(
    db: &Db,
    vault: &KeyVault,
    alg: SigningAlg,
    times: RotationTimes,
    actor: &str,
) -> Result<Rotation, StoredKeyError> {
    let (pem, _) = keys::generate_key_pair(alg)
        .map_err(|reason| KeyError::Invalid { source_name: "new signing key".into(), reason })?;
    let ring = KeyRing::from_private_pem(&pem, None, "new signing key")?;
    let now = DjangoTime::now();
    let active_from = DjangoTime(now.0 + times.publish_for);
    let retire_at = DjangoTime(active_from.0 + times.retire_after);
    let forget_before = DjangoTime(now.0 - Duration::from_secs(7 * 86_400));
    let row = sealed_row(vault, &ring, &pem, now, active_from)?;
    let retiring = db.rotate_signing_keys(&row, retire_at, forget_before).await?;
    let detail = format!(
        "next key {} ({}) signs from {}; retiring {} at {}",
        row.kid,
        row.alg,
        active_from.to_django_text(),
        retiring.join(", "),
        retire_at.to_django_text()
    );
    db.audit_event(&crate::db::AuditEvent::new("key_rotated", &detail).by(actor)).await?;
    Ok(Rotation { kid: row.kid, alg, active_from: active_from.0, retiring, retire_at: retire_at.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_secret_and_kid() {
        let vault = KeyVault::new("an encryption secret of at least 32 characters").unwrap();
        let sealed = vault.seal("kid-1", "-----BEGIN PRIVATE KEY-----").unwrap();
        assert_eq!(vault.open("kid-1", &sealed).unwrap(), "-----BEGIN PRIVATE KEY-----");
        assert!(vault.open("kid-2", &sealed).is_err(), "the kid is authenticated");
        let other = KeyVault::new("another encryption secret, also 32+ characters").unwrap();
        assert!(other.open("kid-1", &sealed).is_err());
        assert!(vault.open("kid-1", "not base64!").is_err());
        assert!(vault.open("kid-1", "AAAA").is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(KeyVault::new("too short").is_err());
    }
}
