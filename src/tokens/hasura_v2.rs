//! Checks a JWT exactly the way the Hasura GraphQL engine v2 does in JWT mode with `jwk_url`, and explains every
//! problem in plain words: what Hasura would answer and how to fix it.
//!
//! Backs `gatehouse token inspect <jwt>` and the integration tests (verifier of every token gatehouse issues).
//! Rule numbers refer to `hasura.md` (sections B, C, D, E, F, G, K). Hasura v2 verifies with the Haskell `jose`
//! library; behaviour marked "jose" below follows its source (`Crypto.JWT`, `Crypto.JOSE.JWS`, `Crypto.JOSE.JWK`).
//!
//! Callers install the crypto provider once (`jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default()`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;

use aws_lc_rs::signature::{ECDSA_P256K1_SHA256_FIXED, ECDSA_P521_SHA512_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, crypto};
use serde::Serialize;
use serde_json::{Map, Value};

/// Hasura's default `claims_namespace` (rule 10).
pub const DEFAULT_CLAIMS_NAMESPACE: &str = "https://hasura.io/jwt/claims";

const PREFIX: &str = "x-hasura-";
const ALLOWED_ROLES: &str = "x-hasura-allowed-roles";
const DEFAULT_ROLE: &str = "x-hasura-default-role";
/// Registered claims; jose keeps them out of the "unregistered" map that Hasura searches for the namespace.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// `claims_format` of `HASURA_GRAPHQL_JWT_SECRET` (rule 11).
pub use super::claims::ClaimsFormat;

/// The parts of `HASURA_GRAPHQL_JWT_SECRET` that matter for a `jwk_url` setup (section B).
#[derive(Clone, Debug)]
pub struct HasuraJwtConfig {
    /// Exact, case-sensitive key of the claims object (default `https://hasura.io/jwt/claims`).
    pub claims_namespace: String,
    pub claims_format: ClaimsFormat,
    pub issuer: Option<String>,
    /// Empty = `audience` not configured.
    pub audience: Vec<String>,
    /// `allowed_skew` in seconds; applies to `exp`, `nbf` and `iat` (rule 12). jose uses its absolute value.
    pub allowed_skew_secs: f64,
}

impl Default for HasuraJwtConfig {
    fn default() -> Self {
        Self {
            claims_namespace: DEFAULT_CLAIMS_NAMESPACE.to_owned(),
            claims_format: ClaimsFormat::Json,
            issuer: None,
            audience: Vec::new(),
            allowed_skew_secs: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Pass,
    Fail,
    Warn,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Stable id: "format", "header", "jwks", "signature", "exp", "nbf", "iat", "iss", "sub", "aud", "jti",
    /// "claims", "allowed-roles", "default-role", "session-variables".
    pub check: &'static str,
    pub verdict: Verdict,
    /// Plain words: what Hasura would say (its error text) and how to fix it.
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Decoded JOSE header, when it is a JSON object.
    pub header: Option<Value>,
    /// Decoded payload (whole claim set), when it is a JSON object.
    pub claims: Option<Value>,
}

impl Report {
    /// True when Hasura v2 would accept the token (no `Fail` finding).
    pub fn accepted(&self) -> bool {
        !self.findings.iter().any(|f| f.verdict == Verdict::Fail)
    }

    /// The findings of one check id.
    pub fn findings_for<'a>(&'a self, check: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.check == check)
    }

    fn push(&mut self, check: &'static str, verdict: Verdict, message: impl Into<String>) {
        self.findings.push(Finding { check, verdict, message: message.into() });
    }
    fn pass(&mut self, check: &'static str, message: impl Into<String>) {
        self.push(check, Verdict::Pass, message);
    }
    fn warn(&mut self, check: &'static str, message: impl Into<String>) {
        self.push(check, Verdict::Warn, message);
    }
    fn fail(&mut self, check: &'static str, message: impl Into<String>) {
        self.push(check, Verdict::Fail, message);
    }
    /// A summary `Pass` placed before the warnings this check emitted since `start`.
    fn pass_at(&mut self, start: usize, check: &'static str, message: impl Into<String>) {
        let at = start.min(self.findings.len());
        self.findings.insert(at, Finding { check, verdict: Verdict::Pass, message: message.into() });
    }
    fn failed_since(&self, start: usize, check: &str) -> bool {
        self.findings.get(start..).unwrap_or_default().iter().any(|f| f.check == check && f.verdict == Verdict::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let tag = match x.verdict {
                Verdict::Pass => "PASS",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            writeln!(f, "{tag} {:<17} {}", x.check, x.message)?;
        }
        if self.accepted() {
            write!(f, "Hasura v2 would accept this token.")
        } else {
            write!(f, "Hasura v2 would reject this token (see the FAIL lines).")
        }
    }
}

/// A JWKS document that does not even parse as `{"keys": [...]}`.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Hasura refuses to start with such an endpoint (rule 25).
    #[error("Error parsing JWK from url: {0}")]
    Json(#[from] serde_json::Error),
}

/// Parses a JWKS document (the body of `jwk_url`) for [`check`].
pub fn parse_jwks(json: &[u8]) -> Result<JwkSet, JwksError> {
    Ok(serde_json::from_slice(json)?)
}

/// [`check`] at the current system time.
pub fn check_now(token: &str, jwks: &JwkSet, config: &HasuraJwtConfig) -> Report {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    check(token, jwks, config, now)
}

/// Checks `token` as Hasura v2 would with `jwk_url` serving `jwks`, at time `now_unix` (seconds since the epoch).
/// Never panics; reports every problem it can find, not only the first one Hasura would hit.
pub fn check(token: &str, jwks: &JwkSet, config: &HasuraJwtConfig, now_unix: f64) -> Report {
    let mut r = Report { findings: Vec::new(), header: None, claims: None };
    let compact = decode_compact(token, &mut r);
    let alg = compact.as_ref().and_then(|c| c.header.as_ref()).and_then(|h| check_header(h, jwks, &mut r));
    check_jwks(jwks, &mut r);
    let Some(c) = compact else { return r };
    if let (Some(alg), Some(sig)) = (alg, c.signature) {
        let kid = c.header.as_ref().and_then(|h| h.get("kid")).and_then(Value::as_str);
        check_signature(alg, kid, c.signing_input, sig, jwks, &mut r);
    }
    if let Some(p) = &c.payload {
        check_registered(p, config, now_unix, &mut r);
        if let Some(claims) = hasura_claims(p, config, &mut r) {
            check_session(&claims, &mut r);
        }
    }
    r.header = c.header.map(Value::Object);
    r.claims = c.payload.map(Value::Object);
    r
}

// ---------------------------------------------------------------------------------------------------------------
// format (rule 18)

struct Compact<'a> {
    /// `BASE64URL(header) "." BASE64URL(payload)`, the bytes the signature covers.
    signing_input: &'a str,
    /// The raw third segment, when it is valid base64url.
    signature: Option<&'a str>,
    header: Option<Map<String, Value>>,
    payload: Option<Map<String, Value>>,
}

fn decode_compact<'a>(token: &'a str, r: &mut Report) -> Option<Compact<'a>> {
    const CHECK: &str = "format";
    let start = r.findings.len();
    let mut t = token.trim();
    if t.len() != token.len() {
        r.warn(
            CHECK,
            "the token has leading/trailing whitespace, ignored here. Hasura strips it only from the Authorization \
             header; in a Cookie or CustomHeader it breaks the token.",
        );
    }
    if let Some(rest) = t.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).and(t.get(7..)) {
        r.fail(
            CHECK,
            "the value starts with 'Bearer ': that is the Authorization header syntax, not part of the token. \
             Hasura strips it only in the Authorization header (exactly `Bearer <jwt>`, rule 15); in a CustomHeader it \
             gives 'Could not verify JWT: JWSError (JSONDecodeError \"Not valid base64url\")' (rule 17). \
             Pass the bare token; the rest of this report checks the token after the prefix.",
        );
        t = rest.trim_start();
    }
    if t.is_empty() {
        r.fail(CHECK, "the token is empty. Hasura expects a compact JWS: header.payload.signature (rule 18).");
        return None;
    }
    let segs: Vec<&str> = t.split('.').collect();
    let [h, p, s] = segs[..] else {
        let n = segs.len();
        if n == 5 {
            r.fail(
                CHECK,
                "5 segments: this is an encrypted JWT (JWE). Hasura only accepts a signed compact JWS with 3 \
                 segments (rule 18). Issue signed, unencrypted tokens.",
            );
        } else {
            r.fail(
                CHECK,
                format!(
                    "{n} segment(s) where a compact JWS has 3 (header.payload.signature). Hasura answers 'Could not \
                     verify JWT: JWSError (CompactDecodeError Invalid number of parts: expected 3, got {n})' \
                     (rule 18, 23). Check that the whole token was copied."
                ),
            );
        }
        return None;
    };
    let header = segment(CHECK, "header", h, r).and_then(|b| match serde_json::from_slice::<Value>(&b) {
        Ok(Value::Object(o)) => Some(o),
        Ok(v) => {
            r.fail(
                CHECK,
                format!(
                    "the header is a JSON {} but must be a JSON object like {{\"alg\":\"RS256\",\"kid\":\"…\"}}. \
                     Hasura answers 'Could not verify JWT: JWSError (JSONDecodeError …)'.",
                    json_type(&v)
                ),
            );
            None
        }
        Err(e) => {
            r.fail(
                CHECK,
                format!(
                    "the header segment does not decode to JSON ({e}). Hasura answers 'Could not verify JWT: JWSError \
                     (JSONDecodeError \"protected header contains invalid JSON\")'."
                ),
            );
            None
        }
    });
    let payload = segment(CHECK, "payload", p, r).and_then(|b| match serde_json::from_slice::<Value>(&b) {
        Ok(Value::Object(o)) => Some(o),
        Ok(v) => {
            r.fail(
                CHECK,
                format!(
                    "the payload is a JSON {0} but must be a JSON object (the claim set). Hasura answers 'Could not \
                     verify JWT: JWTClaimsSetDecodeError \"Error in $: parsing JWT Claims Set failed, expected \
                     Object, but encountered {0}\"'.",
                    json_type(&v)
                ),
            );
            None
        }
        Err(e) => {
            r.fail(
                CHECK,
                format!(
                    "the payload segment does not decode to JSON ({e}). Hasura answers 'Could not verify JWT: \
                     JWTClaimsSetDecodeError …'. (Numbers beyond the f64 range are also reported here; Hasura would \
                     parse them.)"
                ),
            );
            None
        }
    });
    let signature = segment(CHECK, "signature", s, r).map(|_| s);
    if !r.failed_since(start, CHECK) {
        r.pass_at(
            start,
            CHECK,
            "compact JWS: 3 unpadded base64url segments; header and payload are JSON objects (rule 18).",
        );
    }
    let signing_input = t.get(..h.len() + 1 + p.len()).unwrap_or_default();
    Some(Compact { signing_input, signature, header, payload })
}

/// Decodes one unpadded base64url segment or reports why Hasura (jose `decodeUnpadded`) would not.
fn segment(check: &'static str, name: &str, seg: &str, r: &mut Report) -> Option<Vec<u8>> {
    match b64url(seg) {
        Ok(bytes) => Some(bytes),
        Err(why) => {
            r.fail(
                check,
                format!(
                    "the {name} segment is not valid base64url: {why}. Hasura answers 'Could not verify JWT: JWSError \
                     (JSONDecodeError \"Not valid base64url\")' (rule 18)."
                ),
            );
            None
        }
    }
}

/// Strict unpadded base64url, as jose decodes JWS segments and JWK members (rule 18, 26).
fn b64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(s).map_err(|e| {
        if s.contains('=') {
            "it has '=' padding; JOSE requires unpadded base64url (RFC 7515 §2), strip the trailing '='".to_owned()
        } else if s.contains(['+', '/']) {
            "it uses the standard base64 alphabet ('+', '/'); base64url uses '-' and '_'".to_owned()
        } else if s.contains(char::is_whitespace) {
            "it contains whitespace".to_owned()
        } else {
            e.to_string()
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// header (rules 9, 22, 81, 84)

/// A JWS `alg` Hasura v2 (jose) verifies. ES512 and ES256K are checked with aws-lc-rs directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenAlg {
    Lib(Algorithm),
    Es512,
    Es256k,
}

impl TokenAlg {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ES512" => Self::Es512,
            "ES256K" => Self::Es256k,
            _ => Self::Lib(s.parse().ok()?),
        })
    }
    fn name(self) -> String {
        match self {
            Self::Lib(a) => format!("{a:?}"),
            Self::Es512 => "ES512".to_owned(),
            Self::Es256k => "ES256K".to_owned(),
        }
    }
}

fn check_header(h: &Map<String, Value>, jwks: &JwkSet, r: &mut Report) -> Option<TokenAlg> {
    const CHECK: &str = "header";
    let start = r.findings.len();
    let alg = match h.get("alg") {
        None | Some(Value::Null) => {
            r.fail(CHECK, "the header has no \"alg\"; jose requires it, so Hasura cannot decode the token.");
            None
        }
        Some(Value::String(s)) if s == "none" => {
            r.fail(
                CHECK,
                "alg \"none\": the token is unsigned. Hasura v2 never accepts it: jose ignores \"none\" signatures \
                 and answers 'Could not verify JWT: JWSError JWSNoSignatures' (rule 9). Sign the token \
                 (RS256, ES256 or EdDSA with a key published in the JWKS).",
            );
            None
        }
        Some(Value::String(s)) => {
            let alg = TokenAlg::parse(s);
            if alg.is_none() {
                r.fail(
                    CHECK,
                    format!(
                        "unknown alg \"{}\". Hasura (jose) knows HS256/384/512, RS256/384/512, PS256/384/512, \
                         ES256/384/512 and EdDSA (exact, case-sensitive), and answers 'Could not verify JWT: \
                         JWSError (JSONDecodeError …)'.",
                        short(s)
                    ),
                );
            } else if alg == Some(TokenAlg::Es256k) {
                r.warn(
                    CHECK,
                    "alg ES256K is only known to Hasura builds whose jose is ≥ 0.10, and v3/DDN does not accept it \
                     (rule 9, 83). Prefer ES256.",
                );
            }
            alg
        }
        Some(v) => {
            r.fail(CHECK, format!("\"alg\" is a JSON {} but must be a string such as \"RS256\".", json_type(v)));
            None
        }
    };
    match h.get("kid") {
        None | Some(Value::Null) => r.warn(
            CHECK,
            "no \"kid\" in the header: Hasura v2 accepts it (it tries every JWKS key, rule 22) but v3/DDN rejects \
             it with KidHeaderNotFound (rule 81, 84). Put the signing key's kid in the header.",
        ),
        Some(Value::String(kid)) if jwks.find(kid).is_none() => r.warn(
            CHECK,
            format!(
                "kid \"{}\" is not in the JWKS. Hasura v2 ignores kid and tries every key (rule 22), so this alone is \
                 not an error in v2; v3/DDN fails with 'No matching JWK found for the given kid' (rule 84). Publish \
                 the key before signing with it (rule 29).",
                short(kid)
            ),
        ),
        Some(Value::String(_)) => {}
        Some(v) => r.fail(CHECK, format!("\"kid\" is a JSON {}; jose requires a string.", json_type(v))),
    }
    if h.contains_key("crit") {
        r.fail(
            CHECK,
            "the header has \"crit\": jose understands no extension header parameters, so Hasura rejects the token. \
             Remove \"crit\".",
        );
    }
    for name in ["typ", "cty"] {
        if let Some(v) = h.get(name).filter(|v| !v.is_string() && !v.is_null()) {
            r.fail(CHECK, format!("\"{name}\" is a JSON {}; jose requires a string.", json_type(v)));
        }
    }
    let embedded: Vec<&str> = ["jku", "jwk", "x5u", "x5c"].into_iter().filter(|k| h.contains_key(*k)).collect();
    if !embedded.is_empty() {
        r.warn(
            CHECK,
            format!(
                "header parameter(s) {} are ignored for verification: Hasura only uses the keys from jwk_url.",
                embedded.join(", ")
            ),
        );
    }
    if !r.failed_since(start, CHECK) {
        let kid = h.get("kid").and_then(Value::as_str).map_or(String::new(), |k| format!(", kid \"{}\"", short(k)));
        r.pass_at(start, CHECK, format!("alg {}{kid}.", alg.map_or_else(String::new, TokenAlg::name)));
    }
    alg
}

// ---------------------------------------------------------------------------------------------------------------
// signature (rule 22, 23)

fn check_signature(alg: TokenAlg, kid: Option<&str>, input: &str, sig: &str, jwks: &JwkSet, r: &mut Report) {
    const CHECK: &str = "signature";
    let name = alg.name();
    if jwks.keys.is_empty() {
        r.fail(
            CHECK,
            "the JWKS is empty. Hasura answers 'Could not verify JWT: JWSError NoUsableKeys' (rule 22). This also \
             happens for a moment after Hasura starts (rule 30). Publish the signing key in the JWKS.",
        );
        return;
    }
    let mut fitting = 0;
    let mut verified = None;
    for (i, key) in jwks.keys.iter().enumerate() {
        if fits(key, alg) {
            fitting += 1;
            if verify(key, alg, input.as_bytes(), sig) {
                verified = Some((i, key));
                break;
            }
        }
    }
    let invalid = "Hasura answers 'Could not verify JWT: JWSError JWSInvalidSignature' (invalid-jwt, rule 23)";
    match verified {
        Some((i, key)) => {
            let label = key_label(i, key);
            match (kid, key.common.key_id.as_deref()) {
                (Some(want), Some(got)) if want != got => r.warn(
                    CHECK,
                    format!(
                        "{name} signature verified by {label}, not by the key the header's kid \"{}\" names. Hasura \
                         v2 accepts this (it tries every key, rule 22); v3/DDN picks the key by kid and would fail \
                         (rule 84).",
                        short(want)
                    ),
                ),
                _ => r.pass(CHECK, format!("{name} signature verified by {label} (Hasura v2 tries every key, rule 22).")),
            }
        }
        None if matches!(alg, TokenAlg::Lib(a) if a.family() == AlgorithmFamily::Hmac) && fitting == 0 => r.fail(
            CHECK,
            format!(
                "{name} is an HMAC algorithm, and an HMAC token cannot be verified against public keys: the JWKS holds \
                 only public RSA/EC/OKP keys, so every key gives an algorithm mismatch and {invalid}. A token \"signed\" \
                 with the RSA public key (PEM) as HMAC secret is the classic key-confusion forgery; Hasura refuses it. \
                 Sign with the private key using RS256, ES256 or EdDSA."
            ),
        ),
        None if fitting == 0 => r.fail(
            CHECK,
            format!(
                "the JWKS has no key that can verify {name} ({}), so {invalid}. Publish the signing key, or sign with \
                 an algorithm that matches the published keys.",
                family_hint(alg)
            ),
        ),
        None => {
            let by_kid = kid.and_then(|k| jwks.find(k)).filter(|k| fits(k, alg));
            let why = if by_kid.is_some() {
                "the key named by the header's kid does not verify it: the token was signed with a different private \
                 key under the same kid, or it was altered after signing"
            } else {
                "the signing key is probably not in the JWKS (publish new keys before signing with them and keep old \
                 ones until their tokens expire, rule 29), or the token was altered after signing"
            };
            r.fail(CHECK, format!("no key in the JWKS verifies the {name} signature ({fitting} key(s) tried): {why}. {invalid}."));
        }
    }
}

fn family_hint(alg: TokenAlg) -> &'static str {
    match alg {
        TokenAlg::Lib(Algorithm::ES256) => "needs an EC P-256 key",
        TokenAlg::Lib(Algorithm::ES384) => "needs an EC P-384 key",
        TokenAlg::Es512 => "needs an EC P-521 key",
        TokenAlg::Es256k => "needs an EC secp256k1 key",
        TokenAlg::Lib(Algorithm::EdDSA) => "needs an OKP Ed25519 key",
        TokenAlg::Lib(a) if a.family() == AlgorithmFamily::Hmac => "needs an oct key",
        TokenAlg::Lib(_) => "needs an RSA key",
    }
}

/// Whether jose would try `key` with `alg` without an algorithm mismatch.
fn fits(key: &Jwk, alg: TokenAlg) -> bool {
    match (alg, &key.algorithm) {
        (TokenAlg::Lib(a), AlgorithmParameters::RSA(_)) => a.family() == AlgorithmFamily::Rsa,
        (TokenAlg::Lib(a), AlgorithmParameters::OctetKey(_)) => a.family() == AlgorithmFamily::Hmac,
        (TokenAlg::Lib(Algorithm::ES256), AlgorithmParameters::EllipticCurve(p)) => p.curve == EllipticCurve::P256,
        (TokenAlg::Lib(Algorithm::ES384), AlgorithmParameters::EllipticCurve(p)) => p.curve == EllipticCurve::P384,
        (TokenAlg::Es512, AlgorithmParameters::EllipticCurve(p)) => p.curve == EllipticCurve::P521,
        (TokenAlg::Lib(Algorithm::EdDSA), AlgorithmParameters::OctetKeyPair(p)) => p.curve == EllipticCurve::Ed25519,
        (TokenAlg::Es256k, AlgorithmParameters::Other(o)) => {
            o.fields.get("kty").and_then(Value::as_str) == Some("EC")
                && o.fields.get("crv").and_then(Value::as_str) == Some("secp256k1")
        }
        _ => false,
    }
}

fn verify(key: &Jwk, alg: TokenAlg, input: &[u8], sig: &str) -> bool {
    let ec_point = |x: &str, y: &str| -> Option<Vec<u8>> {
        let mut point = vec![4];
        point.extend(b64url(x).ok()?);
        point.extend(b64url(y).ok()?);
        Some(point)
    };
    match (alg, &key.algorithm) {
        (TokenAlg::Lib(a), _) => {
            DecodingKey::from_jwk(key).is_ok_and(|k| crypto::verify(sig, input, &k, a).unwrap_or(false))
        }
        (TokenAlg::Es512, AlgorithmParameters::EllipticCurve(p)) => ec_point(&p.x, &p.y).is_some_and(|pk| {
            b64url(sig).is_ok_and(|s| UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, pk).verify(input, &s).is_ok())
        }),
        (TokenAlg::Es256k, AlgorithmParameters::Other(o)) => {
            let coord = |c: &str| o.fields.get(c).and_then(Value::as_str).unwrap_or_default();
            ec_point(coord("x"), coord("y")).is_some_and(|pk| {
                b64url(sig)
                    .is_ok_and(|s| UnparsedPublicKey::new(&ECDSA_P256K1_SHA256_FIXED, pk).verify(input, &s).is_ok())
            })
        }
        _ => false,
    }
}

fn key_label(i: usize, key: &Jwk) -> String {
    let kty = match &key.algorithm {
        AlgorithmParameters::RSA(_) => "RSA",
        AlgorithmParameters::EllipticCurve(_) => "EC",
        AlgorithmParameters::OctetKey(_) => "oct",
        AlgorithmParameters::OctetKeyPair(_) => "OKP",
        _ => "other",
    };
    match &key.common.key_id {
        Some(kid) => format!("key #{i} ({kty}, kid \"{}\")", short(kid)),
        None => format!("key #{i} ({kty}, no kid)"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// jwks (rules 26, 79, 80, 84)

fn check_jwks(jwks: &JwkSet, r: &mut Report) {
    const CHECK: &str = "jwks";
    let start = r.findings.len();
    if jwks.keys.is_empty() {
        r.warn(CHECK, "the JWKS has no keys: every token fails with 'JWSError NoUsableKeys' (rule 22, 30).");
        return;
    }
    let mut kids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, key) in jwks.keys.iter().enumerate() {
        let (fails, mut warns) = jwk_problems(i, key);
        if let Some(kid) = key.common.key_id.as_deref() {
            *kids.entry(kid).or_default() += 1;
        }
        if key.common.key_id.is_none() {
            warns.push("no kid (v3/DDN picks keys by kid and needs it, rule 84)".to_owned());
        }
        let label = key_label(i, key);
        if !fails.is_empty() {
            r.fail(
                CHECK,
                format!(
                    "{label}: {}. Hasura rejects the WHOLE JWKS when one key does not parse ('Error parsing JWK from \
                     url', fatal at startup, rule 25, 26, 72). Fix or remove this key.",
                    fails.join("; ")
                ),
            );
        }
        if !warns.is_empty() {
            r.warn(CHECK, format!("{label}: {}.", warns.join("; ")));
        }
    }
    let dup: Vec<&str> = kids.iter().filter(|(_, n)| **n > 1).map(|(k, _)| *k).collect();
    if !dup.is_empty() {
        r.warn(
            CHECK,
            format!(
                "duplicate kid(s) {}: v2 tries every key anyway; v3/DDN lookups by kid get ambiguous.",
                dup.join(", ")
            ),
        );
    }
    if !r.failed_since(start, CHECK) {
        let n = jwks.keys.len();
        r.pass_at(start, CHECK, format!("{n} key(s), each parses the way Hasura's jose library parses it (rule 26)."));
    }
}

/// (fatal problems, warnings) of one JWK.
fn jwk_problems(i: usize, key: &Jwk) -> (Vec<String>, Vec<String>) {
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let at = format!("$.keys[{i}]");
    let sized = |name: &str, value: &str, size: usize, fails: &mut Vec<String>| match b64url(value) {
        Ok(b) if b.len() == size => {}
        Ok(b) => fails.push(format!("{at}.{name} is {} bytes, the curve needs exactly {size}", b.len())),
        Err(why) => fails.push(format!("Error in {at}.{name}: Not valid base64url ({why})")),
    };
    match &key.algorithm {
        AlgorithmParameters::RSA(p) => {
            for (name, value) in [("n", &p.n), ("e", &p.e)] {
                match b64url(value) {
                    Ok(b) if b.first().is_none_or(|&b0| b0 == 0) => fails.push(format!(
                        "Error in {at}.{name}: leading null byte (RSA {name} must be minimal big-endian: drop leading \
                         zero octets; an empty value is invalid too)"
                    )),
                    Ok(b) if name == "n" => {
                        let bits = b.len() * 8 - b.first().map_or(0, |b0| b0.leading_zeros() as usize);
                        if bits < 2048 {
                            warns.push(format!(
                                "RSA modulus is {bits} bits; use ≥ 2048 (this checker cannot verify with it)"
                            ));
                        }
                    }
                    Ok(_) => {}
                    Err(why) => fails.push(format!("Error in {at}.{name}: Not valid base64url ({why})")),
                }
            }
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 | EllipticCurve::P384 | EllipticCurve::P521 => {
                let size = match p.curve {
                    EllipticCurve::P256 => 32,
                    EllipticCurve::P384 => 48,
                    _ => 66,
                };
                sized("x", &p.x, size, &mut fails);
                sized("y", &p.y, size, &mut fails);
            }
            _ => fails.push("kty \"EC\" needs crv P-256, P-384 or P-521 (Ed25519 keys are kty \"OKP\")".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => sized("x", &p.x, 32, &mut fails),
            _ => fails.push("kty \"OKP\" needs crv Ed25519, Ed448, X25519 or X448".to_owned()),
        },
        AlgorithmParameters::OctetKey(p) => match b64url(&p.value) {
            Ok(_) => warns.push(
                "a symmetric (oct) key is published: anyone who can read the JWKS can forge HMAC tokens that Hasura \
                 accepts. Remove it"
                    .to_owned(),
            ),
            Err(why) => fails.push(format!("Error in {at}.k: Not valid base64url ({why})")),
        },
        AlgorithmParameters::Other(o) => {
            let kty = o.fields.get("kty").and_then(Value::as_str);
            let crv = o.fields.get("crv").and_then(Value::as_str);
            match (kty, crv) {
                (Some("OKP"), Some("Ed448" | "X25519" | "X448")) => {
                    warns.push(format!(
                        "OKP {} key: Hasura parses it, this checker cannot verify with it",
                        crv.unwrap_or_default()
                    ));
                }
                (Some("EC"), Some("secp256k1")) => {
                    sized("x", o.fields.get("x").and_then(Value::as_str).unwrap_or_default(), 32, &mut fails);
                    sized("y", o.fields.get("y").and_then(Value::as_str).unwrap_or_default(), 32, &mut fails);
                    warns.push("secp256k1 keys only parse in Hasura builds with jose ≥ 0.10".to_owned());
                }
                (Some(k @ ("RSA" | "EC" | "OKP" | "oct")), _) => {
                    fails.push(format!(
                        "malformed {k} key (a required member is missing, has the wrong type or an unknown crv)"
                    ));
                }
                (Some(k), _) => fails.push(format!("unknown kty \"{}\"", short(k))),
                (None, _) => fails.push("no \"kty\"".to_owned()),
            }
        }
        _ => fails.push("unsupported key type".to_owned()),
    }
    match &key.common.public_key_use {
        Some(PublicKeyUse::Signature) => {}
        None => warns.push("no \"use\"; publish \"use\": \"sig\" (rule 80)".to_owned()),
        Some(PublicKeyUse::Encryption) => warns.push(
            "\"use\": \"enc\": v2 still tries it for signatures (rule 22) but it is marked as an encryption key; \
             publish \"use\": \"sig\" (rule 80)"
                .to_owned(),
        ),
        Some(PublicKeyUse::Other(u)) => {
            fails.push(format!("\"use\": \"{}\" — jose only accepts \"sig\" or \"enc\" (rule 80, #10733)", short(u)))
        }
    }
    if let Some(KeyOperations::Other(op)) =
        key.common.key_operations.iter().flatten().find(|o| matches!(o, KeyOperations::Other(_)))
    {
        fails.push(format!("unknown key_ops value \"{}\"", short(op)));
    }
    match key.common.key_algorithm {
        None => {
            warns.push("no \"alg\"; publish it (Hasura 2.48.4 answered NoUsableKeys for such keys, rule 79)".to_owned())
        }
        // jsonwebtoken cannot name ES512 or ES256K; those are the natural algs of P-521 / secp256k1 keys.
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM)
            if matches!(&key.algorithm, AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P521)
                || matches!(&key.algorithm, AlgorithmParameters::Other(_)) => {}
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => warns.push(
            "\"alg\" is not one this checker can read; Hasura rejects the whole JWKS unless it is a registered \
             JWS or JWE algorithm name (e.g. RS256, ES256, EdDSA)"
                .to_owned(),
        ),
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => {
            warns.push("\"alg\" names an encryption algorithm; a signing key should say e.g. RS256".to_owned());
        }
        Some(_) => {}
    }
    if let Some(t) = &key.common.x509_sha1_fingerprint {
        match b64url(t) {
            Ok(b) if b.len() == 20 => {}
            Ok(b) => fails.push(format!(
                "\"x5t\" is {} bytes; it must be a 20-byte SHA-1 thumbprint (old Auth0 tenants)",
                b.len()
            )),
            Err(why) => fails.push(format!("\"x5t\" is not valid base64url ({why})")),
        }
    }
    if let Some(t) = &key.common.x509_sha256_fingerprint {
        match b64url(t) {
            Ok(b) if b.len() == 32 => {}
            Ok(b) => fails.push(format!("\"x5t#S256\" is {} bytes; it must be a 32-byte SHA-256 thumbprint", b.len())),
            Err(why) => fails.push(format!("\"x5t#S256\" is not valid base64url ({why})")),
        }
    }
    if key.common.x509_url.as_deref().is_some_and(|u| !is_absolute_uri(u)) {
        fails.push("\"x5u\" is not an absolute URI".to_owned());
    }
    if let Some(why) = key.common.x509_chain.as_deref().and_then(|chain| x5c_problem(chain, key)) {
        fails.push(why);
    }
    (fails, warns)
}

/// `x5c`: standard base64 DER certificates; the first one must hold the JWK's public key (rule 26). The key match is
/// a byte search for the key material inside the certificate (no X.509 parser here).
fn x5c_problem(chain: &[String], key: &Jwk) -> Option<String> {
    let Some(first) = chain.first() else { return Some("\"x5c\" is an empty array".to_owned()) };
    let mut certs = Vec::new();
    for (i, c) in chain.iter().enumerate() {
        match STANDARD.decode(c) {
            Ok(der) if der.first() == Some(&0x30) => certs.push(der),
            _ => return Some(format!("\"x5c\"[{i}] is not a base64 (standard alphabet, padded) DER certificate")),
        }
    }
    let needle = match &key.algorithm {
        AlgorithmParameters::RSA(p) => b64url(&p.n).ok(),
        AlgorithmParameters::EllipticCurve(p) => {
            b64url(&p.x).ok().zip(b64url(&p.y).ok()).map(|(x, y)| [vec![4], x, y].concat())
        }
        AlgorithmParameters::OctetKeyPair(p) => b64url(&p.x).ok(),
        _ => None,
    }?;
    let found = !needle.is_empty() && certs.first().is_some_and(|c| c.windows(needle.len()).any(|w| w == needle));
    (!found).then(|| {
        format!(
            "X.509 cert in \"x5c\" param does not match key (the first certificate, {}…, does not hold this public key)",
            short(first)
        )
    })
}

// ---------------------------------------------------------------------------------------------------------------
// registered claims (section F)

fn check_registered(p: &Map<String, Value>, config: &HasuraJwtConfig, now: f64, r: &mut Report) {
    let skew = if config.allowed_skew_secs.is_finite() { config.allowed_skew_secs.abs() } else { 0.0 };
    let skew_note = format!("allowed_skew {skew} s");

    match numeric_date(p, "exp", r) {
        Some(exp) if now < exp + skew => {
            let mut msg = format!("expires at {}, in {} ({skew_note}).", fmt_time(exp), fmt_dur(exp - now));
            if exp > 1e11 {
                msg.push_str(" It looks like milliseconds: NumericDate is in seconds.");
                r.warn("exp", msg);
            } else {
                r.pass("exp", msg);
            }
        }
        Some(exp) => r.fail(
            "exp",
            format!(
                "expired at {}, {} ago ({skew_note}). Hasura answers 'Could not verify JWT: JWTExpired' (invalid-jwt, \
                 HTTP 200 on /v1/graphql, rule 31, 70). Get a fresh token; if it was just issued, the issuer's clock \
                 is behind: sync NTP or set allowed_skew (rule 71).",
                fmt_time(exp),
                fmt_dur(now - exp)
            ),
        ),
        None if p.get("exp").is_none_or(Value::is_null) => r.warn(
            "exp",
            "no exp: Hasura v2 accepts the token and it never expires (its WebSocket never times out either, rule 31); \
             v3/DDN rejects tokens without exp (rule 85). Always set exp.",
        ),
        None => {}
    }
    match numeric_date(p, "nbf", r) {
        Some(nbf) if now >= nbf - skew => r.pass("nbf", format!("valid since {} ({skew_note}).", fmt_time(nbf))),
        Some(nbf) => r.fail(
            "nbf",
            format!(
                "not valid before {}, in {} ({skew_note}). Hasura answers 'Could not verify JWT: JWTNotYetValid' \
                 (rule 32). Do not set nbf in the future; for clock skew set allowed_skew (rule 71).",
                fmt_time(nbf),
                fmt_dur(nbf - now)
            ),
        ),
        None => {}
    }
    match numeric_date(p, "iat", r) {
        Some(iat) if iat <= now + skew => r.pass("iat", format!("issued at {} ({skew_note}).", fmt_time(iat))),
        Some(iat) => {
            let ms = if iat > 1e11 { " It looks like milliseconds: NumericDate is in seconds." } else { "" };
            r.fail(
                "iat",
                format!(
                    "issued at {}, {} in the future ({skew_note}). Hasura answers 'Could not verify JWT: \
                     JWTIssuedAtFuture' (rule 33). The issuer's clock is ahead of Hasura's: sync NTP or set \
                     allowed_skew (rule 71, #2109).{ms}",
                    fmt_time(iat),
                    fmt_dur(iat - now)
                ),
            );
        }
        None => {}
    }

    if let Some(iss) = string_or_uri(p, "iss", r) {
        match config.issuer.as_deref() {
            Some(want) if want != iss => {
                let hint = if want.trim_end_matches('/') == iss.trim_end_matches('/') {
                    " They differ only by a trailing '/', which counts (https://x.com ≠ https://x.com/)."
                } else if want.eq_ignore_ascii_case(iss) {
                    " They differ only in letter case, which counts."
                } else {
                    ""
                };
                r.fail(
                    "iss",
                    format!(
                        "iss \"{}\" is not the configured issuer \"{}\". Hasura answers 'Could not verify JWT: \
                         JWTNotInIssuer' (rule 37). Make them exactly equal.{hint}",
                        short(iss),
                        short(want)
                    ),
                );
            }
            Some(_) => r.pass("iss", format!("iss \"{}\" equals the configured issuer (rule 37).", short(iss))),
            None => r.pass("iss", format!("iss \"{}\" (issuer not configured, so not compared; rule 37).", short(iss))),
        }
    } else if config.issuer.is_some() && !p.contains_key("iss") {
        r.warn("iss", "no iss although issuer is configured: Hasura v2 accepts tokens without iss (rule 37).");
    }

    if let Some(sub) = string_or_uri(p, "sub", r) {
        r.pass("sub", format!("sub \"{}\".", short(sub)));
    }

    check_aud(p, config, r);

    if let Some(v) = p.get("jti").filter(|v| !v.is_string() && !v.is_null()) {
        r.fail(
            "jti",
            format!(
                "jti is a JSON {0}. Hasura answers 'Could not verify JWT: JWTClaimsSetDecodeError \"Error in $.jti: \
                 parsing Text failed, expected String, but encountered {0}\"' (rule 34). Send jti as a string.",
                json_type(v)
            ),
        );
    }
}

/// A NumericDate claim: `None` when absent or null (aeson `.:?`), or when the type is wrong (reported).
fn numeric_date(p: &Map<String, Value>, name: &'static str, r: &mut Report) -> Option<f64> {
    match p.get(name)? {
        Value::Null => None,
        Value::Number(n) => n.as_f64(),
        v => {
            let hint = match v {
                Value::String(s) if s.trim().parse::<f64>().is_ok() => " Drop the quotes: it must be a JSON number.",
                Value::String(_) => " It must be seconds since the epoch as a JSON number, not a date string.",
                _ => "",
            };
            r.fail(
                name,
                format!(
                    "{name} is a JSON {0}. Hasura answers 'Could not verify JWT: JWTClaimsSetDecodeError \"Error in \
                     $.{name}: parsing NumericDate failed, expected Number, but encountered {0}\"' (rule 34).{hint}",
                    json_type(v)
                ),
            );
            None
        }
    }
}

/// A StringOrURI claim (rule 34, 35): `Some` when present and valid; failures are reported.
fn string_or_uri<'a>(p: &'a Map<String, Value>, name: &'static str, r: &mut Report) -> Option<&'a str> {
    match p.get(name)? {
        Value::Null => None,
        Value::String(s) => match stringoruri_problem(s) {
            None => Some(s),
            Some(why) => {
                r.fail(
                    name,
                    format!(
                        "{name} \"{}\" contains ':' but is not an absolute URI ({why}). Hasura answers 'Could not \
                         verify JWT: JWTClaimsSetDecodeError \"Error in $.{name}: failed to parse StringOrURI\"' \
                         (rule 35). Use a value without ':' (e.g. \"42\", \"auth0|abc\") or a valid URI.",
                        short(s)
                    ),
                );
                None
            }
        },
        v => {
            r.fail(
                name,
                format!(
                    "{name} is a JSON {0}. Hasura answers 'Could not verify JWT: JWTClaimsSetDecodeError \"Error in \
                     $.{name}: parsing StringOrURI failed, expected String, but encountered {0}\"' (rule 34, #5558). \
                     Send it as a string{1}.",
                    json_type(v),
                    if v.is_number() { format!(" (\"{v}\")") } else { String::new() }
                ),
            );
            None
        }
    }
}

fn stringoruri_problem(s: &str) -> Option<&'static str> {
    if !s.contains(':') || is_absolute_uri(s) {
        None
    } else if s.split(':').next().is_some_and(|scheme| !valid_scheme(scheme)) {
        Some("the part before the first ':' is not a URI scheme")
    } else {
        Some("it has characters a URI cannot contain unescaped, such as space, '|', '\"', '<', '>', '{', '}' or '^'")
    }
}

fn check_aud(p: &Map<String, Value>, config: &HasuraJwtConfig, r: &mut Report) {
    const CHECK: &str = "aud";
    let configured = || config.audience.iter().map(|a| format!("\"{}\"", short(a))).collect::<Vec<_>>().join(", ");
    let auds: Vec<&str> = match p.get("aud") {
        None | Some(Value::Null) => {
            if config.audience.is_empty() {
                r.pass(CHECK, "no aud (audience not configured).");
            } else {
                r.warn(
                    CHECK,
                    format!(
                        "no aud although audience {} is configured: Hasura v2 accepts tokens without aud (rule 36), \
                         so audience separation is not enforced. Always emit aud.",
                        configured()
                    ),
                );
            }
            return;
        }
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(Value::as_str).collect(),
        Some(v) => {
            // aeson tries a list, then a single string; the reported error is the single-string one.
            r.fail(
                CHECK,
                format!(
                    "aud must be a string or an array of strings. Hasura answers 'Could not verify JWT: \
                     JWTClaimsSetDecodeError \"Error in $.aud: parsing StringOrURI failed, expected String, but \
                     encountered {}\"' (rule 34).",
                    json_type(v)
                ),
            );
            return;
        }
    };
    let start = r.findings.len();
    for a in &auds {
        if let Some(why) = stringoruri_problem(a) {
            r.fail(
                CHECK,
                format!(
                    "aud value \"{}\" contains ':' but is not an absolute URI ({why}). Hasura answers 'Could not \
                     verify JWT: JWTClaimsSetDecodeError \"Error in $.aud: …StringOrURI…\"' (rule 35).",
                    short(a)
                ),
            );
        }
    }
    if r.failed_since(start, CHECK) {
        return;
    }
    if auds.is_empty() {
        r.fail(
            CHECK,
            "\"aud\": [] is always rejected: no value can match, so Hasura answers 'Could not verify JWT: \
             JWTNotInAudience' (rule 36). Emit the API's audience, or omit aud.",
        );
    } else if config.audience.is_empty() {
        r.pass(CHECK, "aud present; audience not configured, so any aud is accepted (rule 36).");
    } else if let Some(hit) = auds.iter().find(|a| config.audience.iter().any(|c| c == *a)) {
        r.pass(CHECK, format!("aud \"{}\" is a configured audience (rule 36).", short(hit)));
    } else {
        r.fail(
            CHECK,
            format!(
                "no aud value ({}) equals a configured audience ({}). Hasura answers 'Could not verify JWT: \
                 JWTNotInAudience' (rule 36). Comparison is exact (case and trailing '/').",
                auds.iter().map(|a| format!("\"{}\"", short(a))).collect::<Vec<_>>().join(", "),
                configured()
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Hasura claims (section G, K)

fn hasura_claims(p: &Map<String, Value>, config: &HasuraJwtConfig, r: &mut Report) -> Option<Map<String, Value>> {
    const CHECK: &str = "claims";
    let ns = config.claims_namespace.as_str();
    let Some(v) = p.get(ns).filter(|_| !REGISTERED.contains(&ns)) else {
        let mut msg = format!(
            "claims key: '{}' not found. Hasura answers that with code jwt-invalid-claims (rule 38).",
            short(ns)
        );
        if let Some(k) = p
            .keys()
            .find(|k| k.as_str() != ns && k.trim_end_matches('/').eq_ignore_ascii_case(ns.trim_end_matches('/')))
        {
            msg.push_str(&format!(" The token has \"{}\"; the key must match exactly (case-sensitive).", short(k)));
        } else if p.contains_key("claims.jwt.hasura.io") {
            msg.push_str(" The token uses \"claims.jwt.hasura.io\", the namespace of the v3/DDN docs; v2 defaults to https://hasura.io/jwt/claims.");
        } else if p.keys().any(|k| is_session_key(k)) {
            msg.push_str(" The x-hasura-* claims are at the top level; put them inside the namespace object (or configure claims_namespace_path: \"$\").");
        }
        r.fail(CHECK, msg);
        return None;
    };
    let parsed_string = |s: &str| match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(format!("it decodes to a JSON {}, not an object", json_type(&other))),
        Err(e) => Err(format!("it is not valid JSON ({e})")),
    };
    let claims = match (config.claims_format, v) {
        (ClaimsFormat::Json, Value::Object(o)) => o.clone(),
        (ClaimsFormat::Json, v) => {
            let hint = match v {
                Value::String(s) if parsed_string(s).is_ok() => {
                    " The value is a string holding a JSON object (stringified): emit the object itself, or configure \
                     claims_format: \"stringified_json\"."
                }
                _ => "",
            };
            r.fail(
                CHECK,
                format!(
                    "the claims at '{}' are a JSON {}: expecting a json object when claims_format is json \
                     (jwt-invalid-claims, rule 38).{hint}",
                    short(ns),
                    json_type(v)
                ),
            );
            return None;
        }
        (ClaimsFormat::StringifiedJson, Value::String(s)) => match parsed_string(s) {
            Ok(o) => o,
            Err(why) => {
                r.fail(
                    CHECK,
                    format!(
                        "claims_format is stringified_json and the claims at '{}' are a string, but {why}. It must be \
                         a string holding a JSON object (rule 38, #1176).",
                        short(ns)
                    ),
                );
                return None;
            }
        },
        (ClaimsFormat::StringifiedJson, v) => {
            let hint = if v.is_object() {
                " The token carries a plain JSON object: stringify it, or configure claims_format: \"json\" (the default)."
            } else {
                ""
            };
            r.fail(
                CHECK,
                format!(
                    "claims_format is stringified_json, so the claims at '{}' must be a JSON string holding an object; \
                     it is a JSON {} (jwt-invalid-claims, rule 38).{hint}",
                    short(ns),
                    json_type(v)
                ),
            );
            return None;
        }
    };
    r.pass(CHECK, format!("claims object found at '{}' ({} key(s)).", short(ns), claims.len()));
    let ignored: Vec<&str> = claims.keys().map(String::as_str).filter(|k| !is_session_key(k)).collect();
    if !ignored.is_empty() {
        let near: Vec<&str> = ignored
            .iter()
            .copied()
            .filter(|k| {
                let k = k.to_lowercase().replace('_', "-");
                k.starts_with("hasura-") || k.starts_with("x-hasura") || k.starts_with("xhasura")
            })
            .collect();
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(
                " {} look(s) like a misspelt x-hasura-* name.",
                near.iter().map(|k| short(k)).collect::<Vec<_>>().join(", ")
            )
        };
        r.warn(
            CHECK,
            format!(
                "ignored by Hasura, names do not start with x-hasura- (rule 39): {}.{hint}",
                ignored.iter().map(|k| short(k)).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    Some(claims)
}

fn is_session_key(k: &str) -> bool {
    k.get(..PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

fn check_session(claims: &Map<String, Value>, r: &mut Report) {
    // Session variable names are case-insensitive (rule 39, 63).
    let mut vars: BTreeMap<String, Vec<(&str, &Value)>> = BTreeMap::new();
    for (k, v) in claims.iter().filter(|(k, _)| is_session_key(k)) {
        vars.entry(k.to_lowercase()).or_default().push((k, v));
    }
    for entries in vars.values().filter(|e| e.len() > 1) {
        let names: Vec<String> = entries.iter().map(|(k, _)| format!("\"{}\"", short(k))).collect();
        let check = match entries.first().map(|(k, _)| k.to_lowercase()).as_deref() {
            Some(ALLOWED_ROLES) => "allowed-roles",
            Some(DEFAULT_ROLE) => "default-role",
            _ => "session-variables",
        };
        r.warn(
            check,
            format!(
                "{} are the same session variable (names are case-insensitive); which value Hasura keeps is \
                 unspecified. Keep one.",
                names.join(" and ")
            ),
        );
    }
    let get = |name: &str| vars.get(name).and_then(|e| e.first()).map(|(_, v)| *v);

    let allowed = check_allowed_roles(get(ALLOWED_ROLES), r);
    check_default_role(get(DEFAULT_ROLE), allowed.as_deref(), r);

    const CHECK: &str = "session-variables";
    let start = r.findings.len();
    let mut shown = Vec::new();
    for (name, entries) in vars.iter().filter(|(n, _)| *n != ALLOWED_ROLES && *n != DEFAULT_ROLE) {
        for (orig, v) in entries {
            match v {
                Value::String(s) => {
                    shown.push(format!("{} = \"{}\"", short(orig), short(s)));
                    if s.trim_start().starts_with('[') && serde_json::from_str::<Vec<Value>>(s).is_ok() {
                        r.warn(
                            CHECK,
                            format!(
                                "{} holds a JSON array as text; Hasura compares it as a Postgres literal, so use \
                                 an array literal such as \"{{1,2,3}}\" (rule 66, #10107).",
                                short(orig)
                            ),
                        );
                    }
                }
                v => r.fail(
                    CHECK,
                    format!(
                        "{} is a JSON {1}. Hasura answers 'x-hasura-* claims: parsing Text failed, expected String, \
                         but encountered {1}' (jwt-invalid-claims, rule 45, #5558). {2} (v3/DDN accepts any JSON, \
                         v2 does not.)",
                        short(orig),
                        json_type(v),
                        literal_hint(v)
                    ),
                ),
            }
        }
        let suffix = name.get(PREFIX.len()..).unwrap_or_default();
        if suffix.is_empty() || !suffix.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
            r.warn(
                CHECK,
                format!(
                    "\"{}\": use only letters, digits, '_' and '-' after x-hasura- (rule 64); some features turn the \
                     name into a GraphQL name and fail on other characters.",
                    short(name)
                ),
            );
        }
        match name.as_str() {
            "x-hasura-role" => r.warn(
                CHECK,
                "an x-hasura-role claim is overwritten by the role Hasura picks (X-Hasura-Role header or the default \
                 role, rule 44, 65). Drop it; use x-hasura-default-role.",
            ),
            "x-hasura-admin-secret" | "x-hasura-access-key" => r.warn(
                CHECK,
                format!("{name} is stripped from the session (rule 65), and a secret must never be put in a token."),
            ),
            "x-hasura-use-backend-only-permissions" => r.warn(
                CHECK,
                "x-hasura-use-backend-only-permissions is only honoured together with the admin secret (rule 65).",
            ),
            _ => {}
        }
    }
    if !r.failed_since(start, CHECK) {
        if shown.is_empty() {
            r.pass_at(start, CHECK, "no session variables besides the roles (Hasura adds x-hasura-role).");
        } else {
            r.pass_at(start, CHECK, format!("all values are strings (rule 45): {}.", shown.join(", ")));
        }
    }
}

fn check_allowed_roles(v: Option<&Value>, r: &mut Report) -> Option<Vec<String>> {
    const CHECK: &str = "allowed-roles";
    const INVALID: &str = "invalid x-hasura-allowed-roles; should be a list of roles";
    let Some(v) = v else {
        r.fail(
            CHECK,
            "JWT claim does not contain x-hasura-allowed-roles (jwt-missing-role-claims, rule 40). Add \
             \"x-hasura-allowed-roles\": [\"user\"] to the claims object.",
        );
        return None;
    };
    let Value::Array(items) = v else {
        let hint = match v {
            Value::String(s) if serde_json::from_str::<Vec<Value>>(s).is_ok() => {
                " The value is a string holding a JSON array: emit the array itself."
            }
            Value::String(s) if s.starts_with('{') => {
                " Postgres array literals are for session variables; allowed roles must be a JSON array."
            }
            _ => "",
        };
        r.fail(
            CHECK,
            format!(
                "{INVALID}: parsing [] failed, expected Array, but encountered {} (jwt-invalid-claims, rule 40).{hint}",
                json_type(v)
            ),
        );
        return None;
    };
    let mut roles = Vec::new();
    let mut bad = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if !s.is_empty() => roles.push(s.clone()),
            Value::String(_) => bad.push(format!("element {i} is an empty string")),
            other => bad.push(format!("element {i} is a JSON {}", json_type(other))),
        }
    }
    if !bad.is_empty() {
        r.fail(
            CHECK,
            format!(
                "{INVALID}: {} (jwt-invalid-claims, rule 40). Every role must be a non-empty string.",
                bad.join(", ")
            ),
        );
        return None;
    }
    let list = roles.iter().map(|s| format!("\"{}\"", short(s))).collect::<Vec<_>>().join(", ");
    if roles.is_empty() {
        r.warn(CHECK, "x-hasura-allowed-roles is empty: no role can be used, every request is denied (rule 42).");
    } else {
        r.pass(CHECK, format!("allowed roles: {list}."));
    }
    let mut seen = roles.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != roles.len() {
        r.warn(CHECK, "x-hasura-allowed-roles has duplicates: harmless in v2, an error in v3/DDN (rule 86).");
    }
    if roles.iter().any(|s| s == "admin") {
        r.warn(
            CHECK,
            "\"admin\" is an allowed role: selecting it gives full admin access (rule 46). Never issue admin to end \
             users.",
        );
    }
    Some(roles)
}

fn check_default_role(v: Option<&Value>, allowed: Option<&[String]>, r: &mut Report) {
    const CHECK: &str = "default-role";
    match v {
        None => r.fail(
            CHECK,
            "JWT claim does not contain x-hasura-default-role (jwt-missing-role-claims, rule 41). Add it, naming one \
             of the allowed roles.",
        ),
        Some(Value::String(role)) if !role.is_empty() => match allowed {
            Some(allowed) if allowed.iter().any(|a| a == role) => {
                r.pass(CHECK, format!("default role \"{}\" is an allowed role (rule 42).", short(role)));
            }
            Some(allowed) => {
                let hint = if allowed.iter().any(|a| a.eq_ignore_ascii_case(role)) {
                    " The comparison is exact and case-sensitive (rule 43)."
                } else {
                    ""
                };
                r.fail(
                    CHECK,
                    format!(
                        "default role \"{}\" is not in x-hasura-allowed-roles. Every request without an X-Hasura-Role \
                         header naming an allowed role fails with 'Your requested role is not in allowed roles' \
                         (access-denied, rule 42); v3/DDN rejects the token (DisallowedDefaultRole). Add it to the \
                         allowed roles or pick one of them.{hint}",
                        short(role)
                    ),
                );
            }
            None => r.warn(
                CHECK,
                format!(
                    "default role \"{}\" could not be compared: x-hasura-allowed-roles is missing or invalid.",
                    short(role)
                ),
            ),
        },
        Some(v) => r.fail(
            CHECK,
            format!(
                "invalid x-hasura-default-role; should be a single role name (it is {}; jwt-invalid-claims, rule 41). \
                 Send one non-empty string.",
                if v.as_str().is_some() { "an empty string".to_owned() } else { format!("a JSON {}", json_type(v)) }
            ),
        ),
    }
}

/// How to send a non-string session variable as the Postgres literal Hasura expects (rule 66).
fn literal_hint(v: &Value) -> String {
    let quote = |s: String| Value::String(s).to_string();
    match v {
        Value::Number(_) | Value::Bool(_) => format!("Send it as a string: {}.", quote(v.to_string())),
        Value::Null => "Drop the claim or send a string.".to_owned(),
        Value::Array(items) => {
            let elems: Option<Vec<String>> = items
                .iter()
                .map(|e| match e {
                    Value::Number(_) | Value::Bool(_) => Some(e.to_string()),
                    Value::String(s) => Some(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
                    _ => None,
                })
                .collect();
            match elems {
                Some(e) => {
                    format!("Send a Postgres array literal string instead: {}.", quote(format!("{{{}}}", e.join(","))))
                }
                None => "Send a string holding a Postgres array literal such as \"{1,2,3}\".".to_owned(),
            }
        }
        _ => "Send a string holding the Postgres literal of the value (e.g. serialised JSON for a json column)."
            .to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 3986 absolute URI (Network.URI.parseURI, used by jose for StringOrURI, rule 35)

/// True when `s` is an RFC 3986 `URI` (absolute, optional fragment): scheme ":" hier-part ["?" query] ["#" fragment].
/// ASCII only; '%' must start a two-hex-digit escape.
pub fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    if !valid_scheme(scheme) {
        return false;
    }
    let (rest, fragment) = rest.split_once('#').map_or((rest, None), |(a, f)| (a, Some(f)));
    let (hier, query) = rest.split_once('?').map_or((rest, None), |(h, q)| (h, Some(q)));
    if fragment.is_some_and(|f| !uri_chars(f, b":@/?")) || query.is_some_and(|q| !uri_chars(q, b":@/?")) {
        return false;
    }
    match hier.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            valid_authority(authority) && uri_chars(path, b":@/")
        }
        None => uri_chars(hier, b":@/"),
    }
}

/// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
fn valid_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic()) && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// Every char is unreserved, sub-delims, pct-encoded or one of `extra`.
fn uri_chars(s: &str, extra: &[u8]) -> bool {
    let mut b = s.bytes();
    while let Some(c) = b.next() {
        let ok = match c {
            b'%' => b.next().is_some_and(|h| h.is_ascii_hexdigit()) && b.next().is_some_and(|h| h.is_ascii_hexdigit()),
            c => c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c) || extra.contains(&c),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// authority = [ userinfo "@" ] host [ ":" port ]
fn valid_authority(a: &str) -> bool {
    let host_port = match a.split_once('@') {
        Some((userinfo, rest)) if uri_chars(userinfo, b":") => rest,
        Some(_) => return false,
        None => a,
    };
    let port_ok = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if let Some(literal) = host_port.strip_prefix('[') {
        let Some((inner, after)) = literal.split_once(']') else { return false };
        let ip_ok = inner.parse::<Ipv6Addr>().is_ok() || valid_ipvfuture(inner);
        return ip_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = host_port.split_once(':').map_or((host_port, None), |(h, p)| (h, Some(p)));
    uri_chars(host, b"") && port.is_none_or(port_ok)
}

/// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
fn valid_ipvfuture(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else { return false };
    let Some((ver, addr)) = rest.split_once('.') else { return false };
    !ver.is_empty()
        && ver.bytes().all(|c| c.is_ascii_hexdigit())
        && !addr.is_empty()
        && !addr.contains('%')
        && uri_chars(addr, b":")
}

// ---------------------------------------------------------------------------------------------------------------
// small helpers

/// aeson's name for a JSON type, as it appears in Hasura's messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

/// Caps user-controlled text quoted in messages.
fn short(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// `1700000000 (2023-11-14T22:13:20Z)`.
fn fmt_time(t: f64) -> String {
    // 0001-01-01 ..= 9999-12-31
    if !(-62_135_596_800.0..=253_402_300_799.0).contains(&t) {
        return format!("{t:e}");
    }
    let secs = t.floor() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{t} ({y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z)", sod / 3600, sod % 3600 / 60, sod % 60)
}

fn fmt_dur(secs: f64) -> String {
    let s = secs.abs();
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7_200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3_600.0)
    } else if s < 1e12 {
        format!("{:.0} days", s / 86_400.0)
    } else {
        format!("{s:e} s")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    const NOW: f64 = 1_700_000_000.0;
    const ISS: &str = "https://auth.example";
    const AUD: &str = "https://api.example";

    fn install_provider() {
        // Ignore "already installed" (tests share one process).
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }

    struct Keys {
        rsa: EncodingKey,
        rsa_pub_pem: String,
        rogue_rsa: EncodingKey,
        ec: EncodingKey,
        ed: EncodingKey,
        jwks: JwkSet,
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    /// (signing key, public key PEM). jsonwebtoken's RSA `EncodingKey` holds PKCS#1 DER and aws-lc-rs exports
    /// PKCS#8, so the key goes through a PKCS#8 PEM (`from_rsa_pem` extracts the PKCS#1 part).
    fn rsa_key() -> (EncodingKey, String) {
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let der: Pkcs8V1Der = kp.as_der().expect("pkcs8");
        let public: PublicKeyX509Der = kp.public_key().as_der().expect("spki");
        let key = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", der.as_ref()).as_bytes()).expect("rsa pem");
        (key, pem("PUBLIC KEY", public.as_ref()))
    }

    fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(key, alg).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            install_provider();
            let (rsa, rsa_pub_pem) = rsa_key();
            let (rogue_rsa, _) = rsa_key();
            let ec_kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
            let ec = EncodingKey::from_ec_der(ec_kp.to_pkcs8v1().expect("pkcs8").as_ref());
            // Jwk::from_encoding_key wants the 48-byte PKCS#8 v1 form of an Ed25519 key.
            let ed_kp = Ed25519KeyPair::generate().expect("ed keygen");
            let ed = EncodingKey::from_ed_der(ed_kp.to_pkcs8v1().expect("pkcs8").as_ref());
            let jwks = JwkSet {
                keys: vec![
                    jwk(&rsa, Algorithm::RS256, "rsa-1"),
                    jwk(&ec, Algorithm::ES256, "ec-1"),
                    jwk(&ed, Algorithm::EdDSA, "ed-1"),
                ],
            };
            Keys { rsa, rsa_pub_pem, rogue_rsa, ec, ed, jwks }
        })
    }

    fn config() -> HasuraJwtConfig {
        HasuraJwtConfig { issuer: Some(ISS.to_owned()), audience: vec![AUD.to_owned()], ..HasuraJwtConfig::default() }
    }

    fn hasura() -> Value {
        json!({
            "x-hasura-allowed-roles": ["user", "editor"],
            "x-hasura-default-role": "user",
            "x-hasura-user-id": "42",
            "x-hasura-group-ids": "{1,2,3}"
        })
    }

    fn claims() -> Value {
        json!({"sub": "42", "iat": NOW - 10.0, "exp": NOW + 900.0, "iss": ISS, "aud": AUD, DEFAULT_CLAIMS_NAMESPACE: hasura()})
    }

    fn b64(v: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    /// Signs `header.payload` exactly as given (so broken headers and payloads can be signed too).
    fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
        let input = format!("{header}.{payload}");
        let sig = crypto::sign(input.as_bytes(), key, alg).expect("sign");
        format!("{input}.{sig}")
    }

    fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
        sign_raw(&b64(header.to_string()), &b64(claims.to_string()), key, alg)
    }

    fn rs256(claims: &Value) -> String {
        sign(&json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}), claims, &keys().rsa, Algorithm::RS256)
    }

    fn run(token: &str) -> Report {
        run_with(token, &config())
    }

    fn run_with(token: &str, config: &HasuraJwtConfig) -> Report {
        check(token, &keys().jwks, config, NOW)
    }

    fn has(r: &Report, check: &str, verdict: Verdict) -> bool {
        r.findings_for(check).any(|f| f.verdict == verdict)
    }

    #[track_caller]
    fn assert_fails(r: &Report, check: &str, text: &str) {
        assert!(!r.accepted(), "expected rejection:\n{r}");
        assert!(
            r.findings_for(check).any(|f| f.verdict == Verdict::Fail && f.message.contains(text)),
            "expected FAIL {check} containing {text:?}:\n{r}"
        );
    }

    #[track_caller]
    fn assert_clean(r: &Report) {
        assert!(r.accepted(), "expected acceptance:\n{r}");
        assert!(r.findings.iter().all(|f| f.verdict == Verdict::Pass), "expected no warning:\n{r}");
    }

    fn with(mut base: Value, path: &[&str], value: Option<Value>) -> Value {
        let Some((last, parents)) = path.split_last() else { return base };
        let mut cur = &mut base;
        for p in parents {
            cur = &mut cur[*p];
        }
        if let Some(obj) = cur.as_object_mut() {
            match value {
                Some(v) => obj.insert((*last).to_owned(), v),
                None => obj.remove(*last),
            };
        }
        base
    }

    fn ns(key: &str, value: Option<Value>) -> Value {
        with(claims(), &[DEFAULT_CLAIMS_NAMESPACE, key], value)
    }

    #[test]
    fn good_token_passes_for_every_algorithm() {
        let k = keys();
        let rsa_algs = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ];
        let mut cases: Vec<(Algorithm, &EncodingKey, &str)> = rsa_algs.iter().map(|a| (*a, &k.rsa, "rsa-1")).collect();
        cases.push((Algorithm::ES256, &k.ec, "ec-1"));
        cases.push((Algorithm::EdDSA, &k.ed, "ed-1"));
        for (alg, key, kid) in cases {
            let token = sign(&json!({"alg": format!("{alg:?}"), "kid": kid}), &claims(), key, alg);
            let r = run(&token);
            assert_clean(&r);
            assert!(r.findings_for("signature").any(|f| f.message.contains(kid)), "{r}");
            assert!(r.header.is_some() && r.claims.is_some());
        }
    }

    #[test]
    fn issued_tokens_pass_with_default_config_too() {
        let r = run_with(&rs256(&claims()), &HasuraJwtConfig::default());
        assert_clean(&r);
    }

    #[test]
    fn default_role_not_in_allowed_roles() {
        let r = run(&rs256(&ns("x-hasura-default-role", Some(json!("admin")))));
        assert_fails(&r, "default-role", "Your requested role is not in allowed roles");
        let r = run(&rs256(&ns("x-hasura-default-role", Some(json!("User")))));
        assert_fails(&r, "default-role", "case-sensitive");
    }

    #[test]
    fn missing_or_invalid_roles() {
        let r = run(&rs256(&ns("x-hasura-allowed-roles", None)));
        assert_fails(&r, "allowed-roles", "JWT claim does not contain x-hasura-allowed-roles");
        let r = run(&rs256(&ns("x-hasura-allowed-roles", Some(json!("user")))));
        assert_fails(&r, "allowed-roles", "expected Array, but encountered String");
        let r = run(&rs256(&ns("x-hasura-allowed-roles", Some(json!(["user", ""])))));
        assert_fails(&r, "allowed-roles", "empty string");
        let r = run(&rs256(&ns("x-hasura-default-role", None)));
        assert_fails(&r, "default-role", "JWT claim does not contain x-hasura-default-role");
        let r = run(&rs256(&ns("x-hasura-default-role", Some(json!(["user"])))));
        assert_fails(&r, "default-role", "should be a single role name");
    }

    #[test]
    fn role_claim_names_are_case_insensitive() {
        let token = rs256(&with(
            claims(),
            &[DEFAULT_CLAIMS_NAMESPACE],
            Some(json!({"X-Hasura-Allowed-Roles": ["user"], "X-Hasura-Default-Role": "user", "X-HASURA-USER-ID": "7"})),
        ));
        assert_clean(&run(&token));
    }

    #[test]
    fn numeric_session_variable_fails() {
        let r = run(&rs256(&ns("x-hasura-user-id", Some(json!(42)))));
        assert_fails(
            &r,
            "session-variables",
            "x-hasura-* claims: parsing Text failed, expected String, but encountered Number",
        );
        assert!(r.findings_for("session-variables").any(|f| f.message.contains("\"42\"")), "{r}");
        let r = run(&rs256(&ns("x-hasura-group-ids", Some(json!([1, 2, 3])))));
        assert_fails(&r, "session-variables", "encountered Array");
        assert!(r.findings_for("session-variables").any(|f| f.message.contains("{1,2,3}")), "{r}");
    }

    #[test]
    fn session_variable_warnings() {
        let r = run(&rs256(&ns("x-hasura-user.id", Some(json!("1")))));
        assert!(r.accepted() && has(&r, "session-variables", Verdict::Warn), "{r}");
        let r = run(&rs256(&ns("x-hasura-allowed-roles", Some(json!(["user", "admin"])))));
        assert!(r.accepted() && has(&r, "allowed-roles", Verdict::Warn), "{r}");
        let r = run(&rs256(&ns("user-id", Some(json!("1")))));
        assert!(r.accepted() && has(&r, "claims", Verdict::Warn), "{r}");
        let r = run(&rs256(&ns("x-hasura-ids", Some(json!("[1,2]")))));
        assert!(r.accepted() && has(&r, "session-variables", Verdict::Warn), "{r}");
    }

    #[test]
    fn sub_string_or_uri() {
        let r = run(&rs256(&with(claims(), &["sub"], Some(json!("user:alice|x")))));
        assert_fails(&r, "sub", "failed to parse StringOrURI");
        for ok in ["user:42", "auth0|abc", "https://issuer.example/"] {
            assert_clean(&run(&rs256(&with(claims(), &["sub"], Some(json!(ok))))));
        }
        let r = run(&rs256(&with(claims(), &["sub"], Some(json!("a b:c")))));
        assert_fails(&r, "sub", "StringOrURI");
    }

    #[test]
    fn numeric_sub_fails_with_hasura_message() {
        let r = run(&rs256(&with(claims(), &["sub"], Some(json!(42)))));
        assert_fails(
            &r,
            "sub",
            "JWTClaimsSetDecodeError \"Error in $.sub: parsing StringOrURI failed, expected String, but encountered Number\"",
        );
    }

    #[test]
    fn token_signed_by_unknown_key_fails() {
        let token = sign(&json!({"alg": "RS256", "kid": "rsa-1"}), &claims(), &keys().rogue_rsa, Algorithm::RS256);
        let r = run(&token);
        assert_fails(&r, "signature", "JWSInvalidSignature");
        let token = sign(&json!({"alg": "RS256", "kid": "rotated"}), &claims(), &keys().rogue_rsa, Algorithm::RS256);
        assert_fails(&run(&token), "signature", "not in the JWKS");
    }

    #[test]
    fn tampered_payload_fails() {
        let token = rs256(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(ns("x-hasura-default-role", Some(json!("editor"))).to_string());
        assert_fails(&run(&parts.join(".")), "signature", "JWSInvalidSignature");
    }

    #[test]
    fn kid_not_in_jwks_only_warns() {
        let token = sign(&json!({"alg": "RS256", "kid": "unknown"}), &claims(), &keys().rsa, Algorithm::RS256);
        let r = run(&token);
        assert!(r.accepted(), "{r}");
        assert!(r.findings_for("header").any(|f| f.verdict == Verdict::Warn && f.message.contains("v3")), "{r}");
        let token = sign(&json!({"alg": "RS256"}), &claims(), &keys().rsa, Algorithm::RS256);
        let r = run(&token);
        assert!(r.accepted() && has(&r, "header", Verdict::Warn), "{r}");
        // kid names another key: v2 accepts, v3 would not.
        let token = sign(&json!({"alg": "RS256", "kid": "ec-1"}), &claims(), &keys().rsa, Algorithm::RS256);
        let r = run(&token);
        assert!(r.accepted() && has(&r, "signature", Verdict::Warn), "{r}");
    }

    #[test]
    fn alg_none_fails() {
        let token = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims().to_string()));
        let r = run(&token);
        assert_fails(&r, "header", "JWSNoSignatures");
        let token = format!("{}.{}.", b64(r#"{"alg":"None"}"#), b64(claims().to_string()));
        assert_fails(&run(&token), "header", "unknown alg");
    }

    #[test]
    fn hs256_key_confusion_fails() {
        let secret = EncodingKey::from_secret(keys().rsa_pub_pem.as_bytes());
        let token = sign(&json!({"alg": "HS256", "kid": "rsa-1"}), &claims(), &secret, Algorithm::HS256);
        let r = run(&token);
        assert_fails(&r, "signature", "an HMAC token cannot be verified against public keys");
    }

    #[test]
    fn exp_nbf_iat() {
        let r = run(&rs256(&with(claims(), &["exp"], Some(json!(NOW - 1.0)))));
        assert_fails(&r, "exp", "JWTExpired");
        assert_fails(&run(&rs256(&with(claims(), &["exp"], Some(json!(NOW))))), "exp", "JWTExpired");
        let skew = HasuraJwtConfig { allowed_skew_secs: 10.0, ..config() };
        assert!(run_with(&rs256(&with(claims(), &["exp"], Some(json!(NOW - 5.0)))), &skew).accepted());
        let r = run(&rs256(&with(claims(), &["exp"], Some(json!(NOW + 0.5)))));
        assert!(r.accepted(), "fractional exp: {r}");
        let r = run(&rs256(&with(claims(), &["exp"], None)));
        assert!(r.accepted() && has(&r, "exp", Verdict::Warn), "{r}");
        let r = run(&rs256(&with(claims(), &["exp"], Some(json!("1700000900")))));
        assert_fails(&r, "exp", "parsing NumericDate failed, expected Number, but encountered String");

        let r = run(&rs256(&with(claims(), &["nbf"], Some(json!(NOW + 60.0)))));
        assert_fails(&r, "nbf", "JWTNotYetValid");
        assert!(run(&rs256(&with(claims(), &["nbf"], Some(json!(NOW))))).accepted());
        assert!(run_with(&rs256(&with(claims(), &["nbf"], Some(json!(NOW + 5.0)))), &skew).accepted());

        let r = run(&rs256(&with(claims(), &["iat"], Some(json!(NOW + 60.0)))));
        assert_fails(&r, "iat", "JWTIssuedAtFuture");
        let r = run(&rs256(&with(claims(), &["iat"], Some(json!(NOW * 1000.0)))));
        assert_fails(&r, "iat", "milliseconds");
        assert!(run_with(&rs256(&with(claims(), &["iat"], Some(json!(NOW + 5.0)))), &skew).accepted());
        // jose uses |allowed_skew|.
        let neg = HasuraJwtConfig { allowed_skew_secs: -10.0, ..config() };
        assert!(run_with(&rs256(&with(claims(), &["iat"], Some(json!(NOW + 5.0)))), &neg).accepted());
    }

    #[test]
    fn issuer_checks() {
        let r = run(&rs256(&with(claims(), &["iss"], Some(json!("https://evil.example")))));
        assert_fails(&r, "iss", "JWTNotInIssuer");
        let r = run(&rs256(&with(claims(), &["iss"], Some(json!("https://auth.example/")))));
        assert_fails(&r, "iss", "trailing '/'");
        let r = run(&rs256(&with(claims(), &["iss"], None)));
        assert!(r.accepted() && has(&r, "iss", Verdict::Warn), "{r}");
    }

    #[test]
    fn audience_checks() {
        let r = run(&rs256(&with(claims(), &["aud"], Some(json!("https://other.example")))));
        assert_fails(&r, "aud", "JWTNotInAudience");
        let r = run(&rs256(&with(claims(), &["aud"], Some(json!([])))));
        assert_fails(&r, "aud", "\"aud\": [] is always rejected");
        let r = run_with(&rs256(&with(claims(), &["aud"], Some(json!([])))), &HasuraJwtConfig::default());
        assert_fails(&r, "aud", "JWTNotInAudience");
        assert!(run(&rs256(&with(claims(), &["aud"], Some(json!(["x", AUD]))))).accepted());
        let r = run(&rs256(&with(claims(), &["aud"], None)));
        assert!(r.accepted() && has(&r, "aud", Verdict::Warn), "{r}");
        let r = run(&rs256(&with(claims(), &["aud"], Some(json!([AUD, 1])))));
        assert_fails(&r, "aud", "expected String, but encountered Array");
    }

    #[test]
    fn claims_missing_or_misplaced() {
        let r = run(&rs256(&with(claims(), &[DEFAULT_CLAIMS_NAMESPACE], None)));
        assert_fails(&r, "claims", "claims key: 'https://hasura.io/jwt/claims' not found");
        let moved =
            with(with(claims(), &[DEFAULT_CLAIMS_NAMESPACE], None), &["https://hasura.io/jwt/claims/"], Some(hasura()));
        assert_fails(&run(&rs256(&moved)), "claims", "must match exactly");
        let v3 = with(with(claims(), &[DEFAULT_CLAIMS_NAMESPACE], None), &["claims.jwt.hasura.io"], Some(hasura()));
        assert_fails(&run(&rs256(&v3)), "claims", "v3");
        let custom = HasuraJwtConfig { claims_namespace: "claims.jwt.hasura.io".to_owned(), ..config() };
        assert_clean(&run_with(&rs256(&v3), &custom));
    }

    #[test]
    fn stringified_json_both_ways() {
        let stringified = with(claims(), &[DEFAULT_CLAIMS_NAMESPACE], Some(json!(hasura().to_string())));
        let sj = HasuraJwtConfig { claims_format: ClaimsFormat::StringifiedJson, ..config() };
        assert_clean(&run_with(&rs256(&stringified), &sj));
        let r = run(&rs256(&stringified));
        assert_fails(&r, "claims", "expecting a json object when claims_format is json");
        assert!(r.findings_for("claims").any(|f| f.message.contains("stringified_json")), "{r}");
        let r = run_with(&rs256(&claims()), &sj);
        assert_fails(&r, "claims", "must be a JSON string holding an object");
        let bad = with(claims(), &[DEFAULT_CLAIMS_NAMESPACE], Some(json!("{not json")));
        assert_fails(&run_with(&rs256(&bad), &sj), "claims", "not valid JSON");
    }

    #[test]
    fn padded_base64_segment_fails() {
        let mut header = r#"{"alg":"RS256","kid":"rsa-1"}"#.to_owned();
        while header.len().is_multiple_of(3) {
            header.push(' ');
        }
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&header);
        assert!(padded.ends_with('='));
        let token = sign_raw(&padded, &b64(claims().to_string()), &keys().rsa, Algorithm::RS256);
        let r = run(&token);
        assert_fails(&r, "format", "Not valid base64url");
        assert_fails(&r, "format", "padding");
    }

    #[test]
    fn jwe_and_wrong_segment_counts_fail() {
        assert_fails(&run("a.b.c.d.e"), "format", "JWE");
        assert_fails(&run("a.b"), "format", "expected 3, got 2");
        assert_fails(&run(""), "format", "empty");
    }

    #[test]
    fn bearer_prefix_is_explained() {
        let r = run(&format!("Bearer {}", rs256(&claims())));
        assert_fails(&r, "format", "Bearer");
        assert!(has(&r, "signature", Verdict::Pass), "rest still checked: {r}");
    }

    #[test]
    fn jwks_with_leading_zero_in_n_fails() {
        let mut jwks = keys().jwks.clone();
        if let Some(AlgorithmParameters::RSA(p)) = jwks.keys.first_mut().map(|k| &mut k.algorithm) {
            let n = b64url(&p.n).expect("n");
            p.n = b64([vec![0], n].concat());
        }
        let r = check(&rs256(&claims()), &jwks, &config(), NOW);
        assert_fails(&r, "jwks", "leading null byte");
    }

    #[test]
    fn jwks_warnings_and_errors() {
        let mut jwks = keys().jwks.clone();
        if let Some(k) = jwks.keys.first_mut() {
            k.common.key_algorithm = None;
            k.common.public_key_use = None;
        }
        let r = check(&rs256(&claims()), &jwks, &config(), NOW);
        assert!(r.accepted() && has(&r, "jwks", Verdict::Warn), "{r}");

        let mut jwks = keys().jwks.clone();
        if let Some(k) = jwks.keys.first_mut() {
            k.common.public_key_use = Some(PublicKeyUse::Other("signing".to_owned()));
            k.common.x509_sha1_fingerprint = Some(b64([7u8; 40]));
        }
        let r = check(&rs256(&claims()), &jwks, &config(), NOW);
        assert_fails(&r, "jwks", "20-byte");
        assert_fails(&r, "jwks", "\"use\"");

        let parsed = parse_jwks(br#"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#).expect("parses leniently");
        let r = check(&rs256(&claims()), &parsed, &config(), NOW);
        assert_fails(&r, "jwks", "malformed RSA key");
        assert!(parse_jwks(b"[]").is_err());
    }

    #[test]
    fn empty_jwks_fails() {
        let r = check(&rs256(&claims()), &JwkSet::default(), &config(), NOW);
        assert_fails(&r, "signature", "JWSError NoUsableKeys");
    }

    #[test]
    fn report_serializes_and_displays() {
        let r = run(&rs256(&claims()));
        let json = serde_json::to_value(&r).expect("serialize");
        assert_eq!(json["findings"][0]["check"], "format");
        assert!(r.to_string().ends_with("Hasura v2 would accept this token."));
    }

    #[test]
    fn garbage_never_panics() {
        let huge =
            format!("{{\"exp\":1e308,\"iat\":-1e308,\"nbf\":{},\"sub\":\"{}\"}}", "9".repeat(400), "ü".repeat(200));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let mut inputs: Vec<String> = [
            "",
            " ",
            ".",
            "..",
            "...",
            "a.b",
            "a.b.c",
            "!!.@@.##",
            "a.b.c.d",
            "a.b.c.d.e.f",
            "Bearer",
            "Bearer ",
            "bearer x.y.z",
            "=.=.=",
            "eyJ.eyJ.sig",
            "\u{0}.\u{0}.\u{0}",
            "é.é.é",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let payloads = [
            b64(&huge),
            b64(&deep),
            b64([0xff, 0xfe, 0x00, 0x80]),
            b64("[1,2]"),
            b64("null"),
            b64("\"str\""),
            b64("{\"https://hasura.io/jwt/claims\":{\"x-hasura-\":{},\"x-hasura-ALLOWED-roles\":[null]}}"),
            b64("{\"aud\":{},\"iss\":[],\"sub\":null,\"exp\":null,\"jti\":1}"),
            b64("{\"https://hasura.io/jwt/claims\":\"\\\"\"}"),
        ];
        let headers = [
            b64("[]"),
            b64("{}"),
            b64("{\"alg\":7,\"kid\":[],\"crit\":1,\"typ\":{}}"),
            b64("{\"alg\":\"ES512\"}"),
            b64("{\"alg\":\"ES256K\"}"),
            b64("{\"alg\":\"HS512\"}"),
            b64([0xc3, 0x28]),
        ];
        for h in &headers {
            for p in &payloads {
                for s in ["", "AA", "_-_-", "A"] {
                    inputs.push(format!("{h}.{p}.{s}"));
                }
            }
        }
        let configs = [
            config(),
            HasuraJwtConfig { claims_format: ClaimsFormat::StringifiedJson, allowed_skew_secs: f64::NAN, ..config() },
        ];
        let weird = parse_jwks(
            br#"{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"},{"kty":"OKP","crv":"X25519","x":"AA"},
                {"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"},{"kty":"zzz"},
                {"kty":"RSA","n":"","e":"AQAB","x5c":["!!"],"x5t#S256":"AA","x5u":"not a uri","key_ops":["fly"]},
                {"kty":"RSA","n":"AQAB","e":"AQAB","x5c":["MAA="]}]}"#,
        )
        .expect("jwks");
        for input in &inputs {
            for cfg in &configs {
                for jwks in [&keys().jwks, &weird, &JwkSet::default()] {
                    for now in [NOW, f64::NAN, f64::INFINITY, -1e300] {
                        let r = check(input, jwks, cfg, now);
                        let _ = r.to_string();
                    }
                }
            }
        }
    }

    #[test]
    fn absolute_uri_validator() {
        for ok in [
            "user:42",
            "https://issuer.example/",
            "https://u:p@h.example:8443/a/b?q=1&r=%20#frag",
            "urn:example:animal:ferret:nose",
            "mailto:a@b.example",
            "http://[::1]:80/",
            "http://[v1.fe]/",
            "file:///etc/hosts",
            "a+b-c.d:",
        ] {
            assert!(is_absolute_uri(ok), "{ok}");
        }
        for bad in [
            "user:alice|x",
            "a b:c",
            ":x",
            "1a:x",
            "https://h/%zz",
            "https://h/%2",
            "http://[::1/",
            "http://[zz]/",
            "http://h:8x/",
            "http://a@b@c/",
            "x:a#b#c",
            "x:ü",
            "x:<y>",
            "auth0|abc",
        ] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
    }

    #[test]
    fn time_formatting() {
        assert_eq!(fmt_time(1_700_000_000.0), "1700000000 (2023-11-14T22:13:20Z)");
        assert_eq!(fmt_time(0.0), "0 (1970-01-01T00:00:00Z)");
        assert_eq!(fmt_time(951_782_400.0), "951782400 (2000-02-29T00:00:00Z)");
        assert_eq!(fmt_time(1e300), "1e300");
        assert_eq!(fmt_time(f64::NAN), "NaN");
    }

    #[test]
    fn es512_and_oct_keys_are_verified_like_jose() {
        // An oct key in the JWKS verifies HS256 tokens (jose tries it), with a loud warning about the leak.
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = EncodingKey::from_secret(secret);
        let mut jwks = keys().jwks.clone();
        jwks.keys.push(jwk(&key, Algorithm::HS256, "oct-1"));
        let token = sign(&json!({"alg": "HS256", "kid": "oct-1"}), &claims(), &key, Algorithm::HS256);
        let r = check(&token, &jwks, &config(), NOW);
        assert!(r.accepted() && has(&r, "jwks", Verdict::Warn), "{r}");

        // ES512 with a P-521 key, signed with aws-lc-rs directly.
        let kp = EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED_SIGNING).expect("p521");
        let point = kp.public_key().as_ref();
        let (x, y) = point.get(1..).unwrap_or_default().split_at(66);
        let p521: Jwk = serde_json::from_value(json!({"kty": "EC", "crv": "P-521", "x": b64(x), "y": b64(y),
            "kid": "p521", "alg": "ES512", "use": "sig"}))
        .expect("jwk");
        let jwks = JwkSet { keys: vec![p521] };
        let input = format!("{}.{}", b64(r#"{"alg":"ES512","kid":"p521"}"#), b64(claims().to_string()));
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = kp.sign(&rng, input.as_bytes()).expect("sign");
        let r = check(&format!("{input}.{}", b64(sig.as_ref())), &jwks, &config(), NOW);
        assert_clean(&r);
    }
}
