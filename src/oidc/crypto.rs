//! The small pieces of cryptography the authorization-code flow needs: PKCE (RFC 7636, `S256`
//! only) and the ID token's `at_hash` (OpenID Connect Core §3.1.3.6).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::tokens::SigningAlg;

/// A PKCE `code_challenge` sent with `code_challenge_method=S256`: the base64url SHA-256 of the
/// verifier, 43 characters. `plain` is refused: it protects nothing if the request leaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<CodeChallenge, &'static str> {
        match method {
            Some("S256") => {}
            Some("plain") => return Err("code_challenge_method plain is not supported; use S256"),
            None => return Err("code_challenge_method is required (S256)"),
            Some(_) => return Err("code_challenge_method must be S256"),
        }
        let valid =
            challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err("code_challenge must be the base64url SHA-256 of the verifier (43 characters)");
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A challenge read back from storage, where only parsed challenges are written.
    pub fn from_stored(challenge: &str) -> CodeChallenge {
        CodeChallenge(challenge.to_owned())
    }

    /// True when `verifier` (43–128 unreserved characters) hashes to this challenge; the
    /// comparison is constant-time.
    pub fn verify(&self, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed {
            return false;
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        bool::from(computed.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// `at_hash` (and `c_hash`): the left half of the token's hash, with the hash function of the ID
/// token's algorithm (SHA-256 for RS256 and ES256, SHA-512 for Ed25519), base64url.
pub fn left_half_hash(alg: SigningAlg, token: &str) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => Sha256::digest(token.as_bytes()).to_vec(),
        SigningAlg::EdDsa => Sha512::digest(token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_verifies_the_verifier() {
        // Challenge computed with Python's hashlib and base64, an independent implementation.
        let challenge = CodeChallenge::parse("ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc", Some("S256")).unwrap();
        assert!(challenge.verify("dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!challenge.verify("dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXj"));
        assert!(!challenge.verify("short"));
        assert!(!challenge.verify(&"a".repeat(129)));
        assert!(!challenge.verify("dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk+"));
    }

    #[test]
    fn plain_and_malformed_challenges_are_refused() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(CodeChallenge::parse(challenge, Some("plain")).unwrap_err().contains("plain"));
        assert!(CodeChallenge::parse(challenge, None).is_err());
        assert!(CodeChallenge::parse(challenge, Some("s256")).is_err());
        assert!(CodeChallenge::parse("too-short", Some("S256")).is_err());
        assert!(CodeChallenge::parse(&format!("{}=", &challenge[..42]), Some("S256")).is_err());
    }

    #[test]
    fn at_hash_uses_the_algorithms_hash() {
        // OpenID Connect Core, Appendix A.3 (RS256): at_hash of this access token.
        assert_eq!(
            left_half_hash(SigningAlg::Rs256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(left_half_hash(SigningAlg::Es256, "x"), left_half_hash(SigningAlg::Rs256, "x"));
        assert_eq!(left_half_hash(SigningAlg::EdDsa, "x").len(), 43, "half of SHA-512, base64url");
    }
}
