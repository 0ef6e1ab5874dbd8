//! Signing keys: loaded from the environment (the original server's `AUTH_PRIVATE_KEY`,
//! `AUTH_PUBLIC_KEY`, `AUTH_KEY_ID`), else from the data directory, else generated once and
//! persisted there. Never regenerated silently: a key file that exists but cannot be read is an
//! error, because a new key would invalidate every token already issued.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

/// The signing algorithms gatehouse issues: RS256 (every Hasura version), ES256, EdDSA
/// (Hasura's `Ed25519` type).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlg {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl SigningAlg {
    pub fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The `type` Hasura's `HASURA_GRAPHQL_JWT_SECRET` calls it.
    pub fn hasura_type(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "Ed25519",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{source_name}: {reason}")]
    Invalid { source_name: String, reason: String },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("cannot sign a token: {0}")]
    Signing(String),
}

/// Where keys come from; built once in [`crate::settings::Settings`].
#[derive(Clone)]
pub struct KeySettings {
    /// `AUTH_PRIVATE_KEY`: PEM text (literal `\n` accepted).
    pub private_key_pem: Option<String>,
    /// `AUTH_PUBLIC_KEY`: checked against the private key when given.
    pub public_key_pem: Option<String>,
    /// `AUTH_KEY_ID`: the `kid`; default the RFC 7638 thumbprint.
    pub key_id: Option<String>,
    /// Extra public keys (PEM) published and accepted during a rotation.
    pub extra_public_pems: Option<String>,
    pub data_dir: PathBuf,
    /// The algorithm of a key generated on first start.
    pub generate_alg: SigningAlg,
    /// `GATEHOUSE_KEY_ENCRYPTION_KEY`: when set, the keys live in the database.
    pub vault: Option<std::sync::Arc<super::stored::KeyVault>>,
    /// How often the stored keys are re-read.
    pub reload_interval: std::time::Duration,
}

impl std::fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySettings")
            .field("private_key_pem", &self.private_key_pem.as_ref().map(|_| "[redacted]"))
            .field("key_id", &self.key_id)
            .field("data_dir", &self.data_dir)
            .field("generate_alg", &self.generate_alg)
            .field("stored", &self.vault.is_some())
            .finish_non_exhaustive()
    }
}

/// A public key that verifies tokens and appears in the JWKS until it is retired.
#[derive(Clone)]
pub struct VerifyingKey {
    pub alg: SigningAlg,
    pub kid: String,
    pub jwk: Jwk,
    decoding: DecodingKey,
    /// Unix seconds from which the key is neither published nor accepted.
    retire_at: Option<i64>,
}

/// A private key and the moment it starts signing.
#[derive(Clone)]
pub struct Signer {
    alg: SigningAlg,
    kid: String,
    encoding: EncodingKey,
    /// Unix seconds; a key configured in the environment or a file signs from the start.
    active_from: i64,
}

/// The signing keys and every key that verifies. Which key signs is decided at each signature
/// from the keys' schedules, so that every instance holding the same keys switches at the same
/// moment during a rotation (see [`crate::tokens::stored`]).
#[derive(Clone)]
pub struct KeyRing {
    /// Oldest schedule first; never empty.
    signers: Vec<Signer>,
    verifying: Vec<VerifyingKey>,
    /// What [`KeyRing::derive_secret`] derives from: stable across rotations.
    secret_root: Vec<u8>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signer = self.signer();
        f.debug_struct("KeyRing").field("alg", &signer.alg).field("kid", &signer.kid).finish_non_exhaustive()
    }
}

pub const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// A private key with its schedule, as stored in the database.
pub struct ScheduledKey {
    pub private_pem: String,
    pub kid: String,
    pub active_from: i64,
    pub retire_at: Option<i64>,
}

impl KeyRing {
    /// The configured keys; on the very first start (no key anywhere), a new key is generated
    /// and persisted.
    pub fn load(settings: &KeySettings) -> Result<KeyRing, KeyError> {
        Self::load_with(settings, true)
    }

    /// The configured keys, never generating one (for tools that only inspect).
    pub fn load_existing(settings: &KeySettings) -> Result<KeyRing, KeyError> {
        Self::load_with(settings, false)
    }

    fn load_with(settings: &KeySettings, generate: bool) -> Result<KeyRing, KeyError> {
        let (pem, source_name) = match configured_private_key(settings)? {
            Some(found) => found,
            None if generate => {
                let path = settings.data_dir.join(SIGNING_KEY_FILE);
                (load_or_generate(&path, settings.generate_alg)?, path.display().to_string())
            }
            None => {
                let path = settings.data_dir.join(SIGNING_KEY_FILE);
                return Err(file_error(&path, std::io::Error::from(std::io::ErrorKind::NotFound)));
            }
        };
        let mut ring = KeyRing::from_private_pem(&pem, settings.key_id.clone(), &source_name)?;
        if let Some(public) = &settings.public_key_pem {
            let given = public_key_from_pem(&unescape_newlines(public), None, "AUTH_PUBLIC_KEY")?;
            if !same_public_key(&given.jwk, &ring.verifying[0].jwk) {
                return Err(invalid("AUTH_PUBLIC_KEY", "does not match AUTH_PRIVATE_KEY"));
            }
        }
        ring.add_extra_public_keys(settings)?;
        Ok(ring)
    }

    /// `GATEHOUSE_EXTRA_PUBLIC_KEYS`: published and accepted, never signing.
    fn add_extra_public_keys(&mut self, settings: &KeySettings) -> Result<(), KeyError> {
        if let Some(extra) = &settings.extra_public_pems {
            for block in pem_blocks(&unescape_newlines(extra)) {
                let key = public_key_from_pem(&block, None, "GATEHOUSE_EXTRA_PUBLIC_KEYS")?;
                if !self.verifying.iter().any(|k| k.kid == key.kid) {
                    self.verifying.push(key);
                }
            }
        }
        Ok(())
    }

    /// A ring from one private key in PEM (PKCS#1 RSA or PKCS#8 RSA, P-256 or Ed25519).
    pub fn from_private_pem(pem: &str, key_id: Option<String>, source_name: &str) -> Result<KeyRing, KeyError> {
        let (signer, public) = parse_private_pem(pem, key_id, source_name, i64::MIN)?;
        let secret_root = signer.encoding.as_bytes().to_vec();
        Ok(KeyRing { signers: vec![signer], verifying: vec![public], secret_root })
    }

    /// A ring from the keys stored in the database (see [`crate::tokens::stored`]); `None`
    /// when there are none. Secrets derive from `secret_root`, not from any one key, so that
    /// they survive rotations.
    pub fn from_schedule(
        keys: &[ScheduledKey],
        secret_root: &[u8],
        settings: &KeySettings,
    ) -> Result<Option<KeyRing>, KeyError> {
        let mut signers = Vec::new();
        let mut verifying = Vec::new();
        for key in keys {
            let source_name = format!("stored signing key {}", key.kid);
            let (signer, mut public) =
                parse_private_pem(&key.private_pem, Some(key.kid.clone()), &source_name, key.active_from)?;
            public.retire_at = key.retire_at;
            signers.push(signer);
            verifying.push(public);
        }
        if signers.is_empty() {
            return Ok(None);
        }
        signers.sort_by_key(|s| s.active_from);
        let mut ring = KeyRing { signers, verifying, secret_root: secret_root.to_vec() };
        ring.add_extra_public_keys(settings)?;
        Ok(Some(ring))
    }

    /// A 256-bit secret for `purpose`: every instance with the same keys derives the same one.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        derive_secret(&self.secret_root, purpose)
    }

    /// The key that signs now: the one whose schedule started last.
    pub fn signer(&self) -> &Signer {
        self.signer_at(unix_now())
    }

    pub fn signer_at(&self, now: i64) -> &Signer {
        self.signers.iter().rev().find(|s| s.active_from <= now).unwrap_or(&self.signers[0])
    }

    pub fn alg(&self) -> SigningAlg {
        self.signer().alg
    }

    pub fn kid(&self) -> &str {
        &self.signer().kid
    }

    /// The keys published and accepted now.
    pub fn verifying_keys(&self) -> Vec<&VerifyingKey> {
        let now = unix_now();
        self.verifying.iter().filter(|k| k.retire_at.is_none_or(|at| now < at)).collect()
    }

    /// The JWKS: every published key with `kid`, `alg` and `use: "sig"`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.verifying_keys().into_iter().map(|k| k.jwk.clone()).collect() }
    }

    /// A compact JWS with header `{alg, typ: "JWT", kid}`.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        self.signer().sign_as(claims, "JWT")
    }

    /// A compact JWS with header `{alg, typ, kid}`.
    pub fn sign_as(&self, claims: &serde_json::Value, typ: &str) -> Result<String, KeyError> {
        self.signer().sign_as(claims, typ)
    }

    /// The keys that may have signed a token with this header: published, same algorithm, and
    /// the same `kid` when the token names one. An `alg` gatehouse does not issue (`none`,
    /// `HS256` made with a public key) matches nothing.
    pub fn candidates(&self, header: &Header) -> impl Iterator<Item = (&DecodingKey, Algorithm)> {
        self.verifying_keys()
            .into_iter()
            .filter(move |k| k.alg.algorithm() == header.alg)
            .filter(move |k| header.kid.as_deref().is_none_or(|kid| kid == k.kid))
            .map(|k| (&k.decoding, k.alg.algorithm()))
    }
}

impl Signer {
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWS with header `{alg, typ, kid}`.
    pub fn sign_as(&self, claims: &serde_json::Value, typ: &str) -> Result<String, KeyError> {
        let mut header = Header::new(self.alg.algorithm());
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| KeyError::Signing(e.to_string()))
    }
}

/// `AUTH_PRIVATE_KEY`, else the key file when it exists: (PEM, where it came from).
pub fn configured_private_key(settings: &KeySettings) -> Result<Option<(String, String)>, KeyError> {
    if let Some(pem) = &settings.private_key_pem {
        return Ok(Some((unescape_newlines(pem), "AUTH_PRIVATE_KEY".to_owned())));
    }
    let path = settings.data_dir.join(SIGNING_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(Some((pem, path.display().to_string()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(file_error(&path, err)),
    }
}

fn parse_private_pem(
    pem: &str,
    key_id: Option<String>,
    source_name: &str,
    active_from: i64,
) -> Result<(Signer, VerifyingKey), KeyError> {
    if pem.contains("OPENSSH PRIVATE KEY") {
        return Err(invalid(
            source_name,
            "OpenSSH key format is not supported; convert it with `ssh-keygen -p -m PEM -f FILE` \
             or make a new key with `gatehouse keygen`",
        ));
    }
    let bytes = pem.as_bytes();
    let (alg, encoding) = if let Ok(key) = EncodingKey::from_rsa_pem(bytes) {
        (SigningAlg::Rs256, key)
    } else if let Ok(key) = EncodingKey::from_ec_pem(bytes) {
        (SigningAlg::Es256, key)
    } else if let Ok(key) = EncodingKey::from_ed_pem(bytes) {
        (SigningAlg::EdDsa, key)
    } else {
        return Err(invalid(source_name, "not a PEM private key (RSA, EC P-256 or Ed25519) gatehouse can use"));
    };
    let jwk = Jwk::from_encoding_key(&encoding, alg.algorithm())
        .map_err(|e| invalid(source_name, &format!("unusable key: {e}")))?;
    let public = VerifyingKey::new(jwk, alg, key_id, source_name)?;
    let signer = Signer { alg, kid: public.kid.clone(), encoding, active_from };
    // A key that parses but cannot sign (a truncated or mismatched PEM) fails now, not at login.
    let probe = signer
        .sign_as(&serde_json::json!({ "probe": true }), "JWT")
        .map_err(|e| invalid(source_name, &e.to_string()))?;
    let mut validation = jsonwebtoken::Validation::new(alg.algorithm());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(&probe, &public.decoding, &validation)
        .map_err(|_| invalid(source_name, "signature self-check failed"))?;
    Ok((signer, public))
}

/// HMAC-SHA256(`root`, `purpose`): independent 256-bit secrets from one root.
pub fn derive_secret(root: &[u8], purpose: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(root).expect("HMAC takes any key");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

fn unix_now() -> i64 {
    i64::try_from(super::unix_now()).unwrap_or(i64::MAX)
}

fn thumbprint(jwk: &Jwk) -> Result<String, String> {
    jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| format!("cannot compute the key thumbprint: {e}"))
}

fn same_public_key(a: &Jwk, b: &Jwk) -> bool {
    a.algorithm == b.algorithm
}

/// A public key from PEM (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`).
pub fn public_key_from_pem(pem: &str, key_id: Option<String>, source_name: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = pem.as_bytes();
    let (alg, decoding) = if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        (SigningAlg::Rs256, key)
    } else if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        (SigningAlg::Es256, key)
    } else if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
        (SigningAlg::EdDsa, key)
    } else {
        return Err(invalid(source_name, "not a PEM public key (RSA, EC P-256 or Ed25519)"));
    };
    let jwk = Jwk::from_decoding_key(&decoding, Some(alg.algorithm()))
        .map_err(|e| invalid(source_name, &format!("unusable public key: {e}")))?;
    VerifyingKey::new(jwk, alg, key_id, source_name)
}

impl VerifyingKey {
    /// Names the key (`AUTH_KEY_ID`, else its RFC 7638 thumbprint) and completes its JWK with
    /// `kid`, `alg` and `use: "sig"`.
    fn new(mut jwk: Jwk, alg: SigningAlg, key_id: Option<String>, source_name: &str) -> Result<Self, KeyError> {
        let kid = match key_id {
            Some(kid) => kid,
            None => thumbprint(&jwk).map_err(|e| invalid(source_name, &e))?,
        };
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(alg.algorithm().into());
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(source_name, &format!("unusable key: {e}")))?;
        Ok(VerifyingKey { alg, kid, jwk, decoding, retire_at: None })
    }
}

/// The original server's env vars hold PEMs with literal `\n`; accept both forms.
fn unescape_newlines(pem: &str) -> String {
    pem.replace("\\n", "\n")
}

/// Splits concatenated PEM documents.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            blocks.push(std::mem::take(&mut current));
        }
    }
    blocks
}

fn invalid(source_name: &str, reason: &str) -> KeyError {
    KeyError::Invalid { source_name: source_name.to_owned(), reason: reason.to_owned() }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> KeyError {
    KeyError::File { path: path.to_owned(), reason: reason.to_string() }
}

/// Reads the key file, or creates it — exactly once, even with several processes starting at
/// the same time (`create_new`), readable by the owner only.
fn load_or_generate(path: &Path, alg: SigningAlg) -> Result<String, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => return Ok(pem),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(file_error(path, err)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(|e| file_error(dir, e))?;
    }
    let (pem, _) = generate_key_pair(alg).map_err(|e| file_error(path, e))?;
    match create_private_file(path) {
        Ok(mut file) => {
            file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| file_error(path, e))?;
            tracing::warn!(path = %path.display(), alg = ?alg, "generated a new signing key; back it up");
            Ok(pem)
        }
        // Another instance won the race: use its key.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map_err(|e| file_error(path, e))
        }
        Err(err) => Err(file_error(path, err)),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A new key pair: (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_key_pair(alg: SigningAlg) -> Result<(String, String), String> {
    fn pems(private: &[u8], public: &impl AsDer<PublicKeyX509Der<'static>>) -> Result<(String, String), String> {
        let public = public.as_der().map_err(|e| e.to_string())?;
        Ok((pem_encode("PRIVATE KEY", private), pem_encode("PUBLIC KEY", public.as_ref())))
    }
    let failed = |e: aws_lc_rs::error::Unspecified| format!("key generation failed: {e}");
    match alg {
        SigningAlg::Rs256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(failed)?;
            let private: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            pems(private.as_ref(), pair.public_key())
        }
        SigningAlg::Es256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?;
            pems(pair.to_pkcs8v1().map_err(failed)?.as_ref(), pair.public_key())
        }
        SigningAlg::EdDsa => {
            // PKCS#8 v1: the form jsonwebtoken reads back.
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            pems(pair.to_pkcs8v1().map_err(failed)?.as_ref(), pair.public_key())
        }
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}
