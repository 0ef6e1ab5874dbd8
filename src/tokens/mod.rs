//! Tokens: signing keys and the JWKS ([`keys`]), Hasura claims ([`claims`]), and the
//! [`Tokens`] service that issues access tokens and verifies them for the webhook.

pub mod claims;
pub mod hasura_v2;
pub mod keys;
pub mod stored;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rand::RngCore;
use serde_json::{Map, Value};

use crate::db::UserRow;

pub use self::claims::{ClaimsFormat, ClaimsSettings, Grant, GroupRoles, RoleSettings, SessionVariables, Subject};
pub use self::keys::{KeyError, KeyRing, KeySettings, Signer, SigningAlg};

/// Installs aws-lc-rs as jsonwebtoken's crypto provider, once per process.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[derive(Clone, Debug)]
pub struct Tokens {
    /// Replaced as a whole when the stored keys change (see [`stored`]).
    keys: Arc<RwLock<Arc<KeyRing>>>,
    settings: Arc<ClaimsSettings>,
    issued: Family<IssuedKind, Counter>,
    verified: Arc<VerifiedCache>,
}

/// What was issued: `kind` is `access`, `id` or `refresh`; `alg` the JWS algorithm, or
/// `opaque` for refresh tokens (random strings, not JWTs).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuedKind {
    pub kind: &'static str,
    pub alg: &'static str,
}

/// Tokens that passed [`Tokens::verify_for`] recently, by the SHA-256 of the token.
///
/// Hasura calls the webhook with the same token on every request of a client, and checking an
/// RS256 or EdDSA signature costs several times the rest of the webhook's work. What a check
/// decides about one exact token cannot change while the process lives (a rotation retires a
/// key only after every token it signed has expired), except through time and the API resources, so a hit re-checks `exp` and, when
/// audiences are checked, the audience against the current resources. Only tokens signed by
/// our keys get in, so the cache holds at most the live tokens of real sessions; it is still
/// capped. Session liveness is not cached here ([`crate::sessions::Sessions::is_live`]).
#[derive(Debug, Default)]
struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], (HasuraSession, Instant)>>,
}

/// How long a verified token is remembered (bounds memory, not correctness).
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Past this many entries, stale ones are swept before an insert, and all dropped if none is.
const VERIFIED_MAX: usize = 50_000;

impl VerifiedCache {
    fn get(&self, digest: &[u8; 32]) -> Option<HasuraSession> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(digest).filter(|(_, at)| at.elapsed() < VERIFIED_TTL).map(|(session, _)| session.clone())
    }

    fn put(&self, digest: [u8; 32], session: &HasuraSession) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= VERIFIED_MAX {
            let now = unix_now();
            entries.retain(|_, (s, at)| at.elapsed() < VERIFIED_TTL && s.expires_at >= now);
            if entries.len() >= VERIFIED_MAX {
                entries.clear();
            }
        }
        entries.insert(digest, (session.clone(), Instant::now()));
    }
}

/// An access token and its lifetime in seconds.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// The claims of an access token before signing, so that a custom-claims script can see them.
#[derive(Clone, Debug)]
pub struct DraftToken {
    pub claims: Map<String, Value>,
    pub expires_in: u64,
}

/// Why a token was refused. The webhook answers every one with 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature is not valid or its key is unknown")]
    BadSignature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token's Hasura claims are missing or invalid")]
    InvalidClaims,
}

/// What a verified token says about its bearer, in Hasura's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HasuraSession {
    pub allowed_roles: Vec<String>,
    pub default_role: String,
    /// Every other `x-hasura-*` claim, names lower-cased, values strings.
    pub variables: BTreeMap<String, String>,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// `sid`: the session the token belongs to.
    pub session_id: String,
    /// `sub`: the Django user id.
    pub subject: String,
    /// `aud`, when the token has one (a resource indicator or the configured audience).
    pub audience: Option<String>,
    /// `scope`, split on spaces.
    pub scopes: Vec<String>,
}

impl Tokens {
    pub fn new(keys: KeyRing, settings: ClaimsSettings) -> Self {
        Tokens {
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            settings: Arc::new(settings),
            issued: Family::default(),
            verified: Arc::default(),
        }
    }

    /// Tokens issued, by [`IssuedKind`].
    pub fn issued(&self) -> &Family<IssuedKind, Counter> {
        &self.issued
    }

    /// The counter of refresh tokens, for the session service that makes them.
    pub fn refresh_token_counter(&self) -> Counter {
        self.issued.get_or_create_owned(&IssuedKind { kind: "refresh", alg: "opaque" })
    }

    fn count(&self, kind: &'static str, alg: SigningAlg) {
        let alg = match alg {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        };
        self.issued.get_or_create(&IssuedKind { kind, alg }).inc();
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Every later signature and verification uses `keys`.
    pub fn replace_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }

    pub fn settings(&self) -> &ClaimsSettings {
        &self.settings
    }

    /// The claims of an access token for `subject`, for `grant` when it is for an API resource.
    pub fn draft(&self, subject: &Subject<'_>, grant: Option<&Grant>) -> DraftToken {
        let (claims, expires_in) = claims::access_claims(&self.settings, subject, grant, unix_now(), &new_jti());
        DraftToken { claims, expires_in }
    }

    /// Merges `custom` claims under the reserved ones and checks that Hasura can still use
    /// the result; on error the draft is unchanged.
    pub fn merge_custom(&self, draft: &mut DraftToken, custom: Map<String, Value>) -> Result<(), TokenError> {
        if custom.is_empty() {
            return Ok(());
        }
        let mut merged = draft.claims.clone();
        claims::merge_custom(&self.settings, &mut merged, custom);
        self.session(merged.clone())?;
        draft.claims = merged;
        Ok(())
    }

    pub fn sign(&self, draft: DraftToken) -> Result<IssuedToken, KeyError> {
        self.sign_as(draft, "JWT")
    }

    /// Signs with the header `typ` given (`at+jwt` for the OIDC provider's access tokens).
    pub fn sign_as(&self, draft: DraftToken, typ: &str) -> Result<IssuedToken, KeyError> {
        let keys = self.keys();
        let signer = keys.signer();
        let token = signer.sign_as(&Value::Object(draft.claims), typ)?;
        self.count("access", signer.alg());
        Ok(IssuedToken { token, expires_in: draft.expires_in })
    }

    /// Signs an OpenID Connect ID token.
    pub fn sign_id_token(&self, signer: &Signer, claims: Map<String, Value>) -> Result<String, KeyError> {
        let token = signer.sign_as(&Value::Object(claims), "JWT")?;
        self.count("id", signer.alg());
        Ok(token)
    }

    /// A signed access token without a resource or custom claims.
    pub fn issue(
        &self,
        user: &UserRow,
        groups: &[String],
        session_id: &str,
        session_expires_in: u64,
    ) -> Result<IssuedToken, KeyError> {
        self.sign(self.draft(&Subject { user, groups, session_id, session_expires_in }, None))
    }

    /// [`Tokens::verify_for`] accepting only the configured audience.
    pub fn verify(&self, token: &str) -> Result<HasuraSession, TokenError> {
        self.verify_for(token, &[])
    }

    /// Verifies a token the way the webhook must: signature by one of our keys with the
    /// algorithm that key was made for (so `alg: none` and HMAC forgeries fail), `exp` and `nbf`
    /// without leeway, our issuer, and well-formed Hasura claims. With an audience configured,
    /// `aud` must be it or one of `resources` (the API resource indicators).
    pub fn verify_for(&self, token: &str, resources: &[String]) -> Result<HasuraSession, TokenError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(session) = self.verified.get(&digest) {
            if session.expires_at < unix_now() {
                return Err(TokenError::Expired);
            }
            let audience_ok = match (&self.settings.audience, &session.audience) {
                (None, _) => true,
                (Some(configured), Some(aud)) => aud == configured || resources.contains(aud),
                (Some(_), None) => false,
            };
            if audience_ok {
                return Ok(session);
            }
        }
        let session = self.verify_for_uncached(token, resources)?;
        self.verified.put(digest, &session);
        Ok(session)
    }

    /// [`Tokens::verify_for`] without its cache: the signature, issuer, times and claims checked.
    pub fn verify_for_uncached(&self, token: &str, resources: &[String]) -> Result<HasuraSession, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer, &self.settings.oidc_issuer]);
        match &self.settings.audience {
            Some(audience) => {
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
                let mut accepted: Vec<&str> = vec![audience];
                accepted.extend(resources.iter().map(String::as_str));
                validation.set_audience(&accepted);
            }
            None => {
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
                validation.validate_aud = false;
            }
        }
        let mut outcome = Err(TokenError::BadSignature);
        let keys = self.keys();
        for (key, alg) in keys.candidates(&header) {
            validation.algorithms = vec![alg];
            outcome = decode::<Map<String, Value>>(token, key, &validation).map_err(|e| classify(e.kind()));
            if !matches!(outcome, Err(TokenError::BadSignature)) {
                break;
            }
        }
        self.session(outcome?.claims)
    }

    /// The claims of a token signed by one of our keys, issued by gatehouse (either issuer) and
    /// not expired; nothing else is required of it. For introspection.
    pub fn decode_own(&self, token: &str) -> Option<Map<String, Value>> {
        self.decode_checked(token, true)
    }

    /// [`Tokens::decode_own`] accepting expired tokens: an ID token hint may have expired.
    pub fn decode_own_ignoring_expiry(&self, token: &str) -> Option<Map<String, Value>> {
        self.decode_checked(token, false)
    }

    fn decode_checked(&self, token: &str, check_expiry: bool) -> Option<Map<String, Value>> {
        let header = decode_header(token).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_exp = check_expiry;
        validation.validate_aud = false;
        validation.set_required_spec_claims(if check_expiry { &["exp", "iss"][..] } else { &["iss"][..] });
        validation.set_issuer(&[&self.settings.issuer, &self.settings.oidc_issuer]);
        self.keys().candidates(&header).find_map(|(key, alg)| {
            validation.algorithms = vec![alg];
            decode::<Map<String, Value>>(token, key, &validation).ok().map(|data| data.claims)
        })
    }

    fn session(&self, claims: Map<String, Value>) -> Result<HasuraSession, TokenError> {
        let expires_at = claims.get("exp").and_then(Value::as_u64).ok_or(TokenError::InvalidClaims)?;
        let session_id = claims.get("sid").and_then(Value::as_str).ok_or(TokenError::InvalidClaims)?.to_owned();
        let subject = claims.get("sub").and_then(Value::as_str).ok_or(TokenError::InvalidClaims)?.to_owned();
        let audience = claims.get("aud").and_then(Value::as_str).map(str::to_owned);
        let scopes = claims
            .get("scope")
            .and_then(Value::as_str)
            .map_or(Vec::new(), |s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect());
        let hasura = match (self.settings.format, claims.get(&self.settings.namespace)) {
            (ClaimsFormat::Json, Some(Value::Object(object))) => object.clone(),
            (ClaimsFormat::StringifiedJson, Some(Value::String(text))) => {
                serde_json::from_str(text).map_err(|_| TokenError::InvalidClaims)?
            }
            _ => return Err(TokenError::InvalidClaims),
        };
        let mut allowed_roles = None;
        let mut default_role = None;
        let mut variables = BTreeMap::new();
        for (name, value) in hasura {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "x-hasura-allowed-roles" => {
                    let roles: Vec<String> = serde_json::from_value(value).map_err(|_| TokenError::InvalidClaims)?;
                    allowed_roles = Some(roles);
                }
                "x-hasura-default-role" => default_role = value.as_str().map(str::to_owned),
                _ if name.starts_with("x-hasura-") => {
                    let Value::String(text) = value else { return Err(TokenError::InvalidClaims) };
                    variables.insert(name, text);
                }
                _ => {}
            }
        }
        let (Some(allowed_roles), Some(default_role)) = (allowed_roles, default_role) else {
            return Err(TokenError::InvalidClaims);
        };
        if allowed_roles.iter().any(String::is_empty) || !allowed_roles.contains(&default_role) {
            return Err(TokenError::InvalidClaims);
        }
        Ok(HasuraSession { allowed_roles, default_role, variables, expires_at, session_id, subject, audience, scopes })
    }
}

fn classify(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            TokenError::BadSignature
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::WrongAudience,
        _ => TokenError::Malformed,
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 128 random bits, base64url: unique per token.
pub fn new_jti() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tokens(audience: Option<&str>) -> Tokens {
        install_crypto_provider();
        let (private, _) = keys::generate_key_pair(SigningAlg::EdDsa).expect("key pair");
        let keys = KeyRing::from_private_pem(&private, None, "test key").expect("key ring");
        let settings = ClaimsSettings {
            issuer: "https://auth.example".into(),
            oidc_issuer: "https://auth.example/oidc".into(),
            audience: audience.map(str::to_owned),
            namespace: "https://hasura.io/jwt/claims".into(),
            format: ClaimsFormat::Json,
            access_ttl_secs: 900,
            roles: RoleSettings {
                default_role: "user".into(),
                staff_role: "staff".into(),
                superuser_role: "admin".into(),
                anonymous_role: "anonymous".into(),
                groups: GroupRoles::None,
            },
            variables: SessionVariables::default(),
        };
        Tokens::new(keys, settings)
    }

    fn signed(tokens: &Tokens, aud: &str, exp: u64) -> String {
        let claims = json!({
            "iss": "https://auth.example", "sub": "7", "sid": "s1", "aud": aud, "iat": unix_now(), "exp": exp,
            "https://hasura.io/jwt/claims": { "x-hasura-allowed-roles": ["user"], "x-hasura-default-role": "user",
                                             "x-hasura-user-id": "7" },
        });
        let Value::Object(claims) = claims else { unreachable!() };
        tokens.sign(DraftToken { claims, expires_in: 900 }).expect("sign").token
    }

    #[test]
    fn a_token_seen_before_is_still_held_to_its_audience_and_expiry() {
        let tokens = tokens(Some("https://api.example"));
        let resource = "https://resource.example".to_owned();
        let token = signed(&tokens, &resource, unix_now() + 900);
        let first = tokens.verify_for(&token, std::slice::from_ref(&resource)).expect("valid for the resource");
        assert_eq!(tokens.verify_for(&token, std::slice::from_ref(&resource)), Ok(first.clone()));
        // The resource was deleted meanwhile: the remembered answer does not stand.
        assert_eq!(tokens.verify_for(&token, &[]), Err(TokenError::WrongAudience));

        // Remembered, then expired: refused without another signature check.
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        tokens.verified.put(digest, &HasuraSession { expires_at: unix_now() - 1, ..first });
        assert_eq!(tokens.verify_for(&token, std::slice::from_ref(&resource)), Err(TokenError::Expired));
    }

    #[test]
    fn only_verified_tokens_are_remembered() {
        let tokens = tokens(None);
        let token = signed(&tokens, "https://api.example", unix_now() + 900);
        // Signed by another key: refused every time, never remembered.
        let forged = signed(&self::tokens(None), "https://api.example", unix_now() + 900);
        assert_eq!(tokens.verify(&forged), Err(TokenError::BadSignature));
        assert_eq!(tokens.verify(&forged), Err(TokenError::BadSignature));
        assert!(tokens.verify(&token).is_ok());
        assert_eq!(tokens.verified.entries.lock().unwrap().len(), 1);
    }
}
