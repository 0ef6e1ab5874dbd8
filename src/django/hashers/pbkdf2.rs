//! `pbkdf2_sha256` / `pbkdf2_sha1`: `<algorithm>$<iterations>$<salt>$<base64(hash)>`.

use super::{Algorithm, HashError, SALT_LEN, ct_eq, fields, parse_u32};
use ::pbkdf2::pbkdf2_hmac;
use base64::{Engine, engine::general_purpose::STANDARD};
use sha1::Sha1;
use sha2::Sha256;

/// Upper bound on stored iterations (≈ 13 s of PBKDF2-SHA256 on one core).
pub const MAX_ITERATIONS: u32 = 100_000_000;

/// Django's `PBKDF2PasswordHasher.encode`: PBKDF2-HMAC-SHA256 over the UTF-8 bytes of password
/// and salt, 32 bytes, standard padded base64. The salt must not contain `$`.
pub fn encode_pbkdf2_sha256(password: &str, salt: &str, iterations: u32) -> String {
    let mut hash = [0u8; 32];
    pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut hash);
    format!("pbkdf2_sha256${iterations}${salt}${}", STANDARD.encode(hash))
}

pub(super) struct Pbkdf2<'a> {
    algorithm: Algorithm,
    iterations: u32,
    salt: &'a str,
    hash: Vec<u8>,
}

impl<'a> Pbkdf2<'a> {
    pub(super) fn parse(algorithm: Algorithm, encoded: &'a str) -> Result<Self, HashError> {
        let hash_len = if algorithm == Algorithm::Pbkdf2Sha1 { 20 } else { 32 };
        let parsed = fields(encoded).and_then(|[_, iterations, salt, hash]| {
            Some(Self {
                algorithm,
                iterations: parse_u32(iterations).filter(|n| (1..=MAX_ITERATIONS).contains(n))?,
                salt: Some(salt).filter(|s| !s.is_empty())?,
                hash: STANDARD.decode(hash).ok().filter(|h| h.len() == hash_len)?,
            })
        });
        parsed.ok_or_else(|| algorithm.malformed())
    }

    fn derive(&self, password: &str, iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash.len()];
        let (password, salt) = (password.as_bytes(), self.salt.as_bytes());
        match self.algorithm {
            Algorithm::Pbkdf2Sha1 => pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            _ => pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        }
        out
    }

    pub(super) fn verify(&self, password: &str) -> bool {
        ct_eq(&self.derive(password, self.iterations), &self.hash)
    }

    /// `PBKDF2PasswordHasher.must_update` when this hasher is the default.
    pub(super) fn must_update(&self, default_iterations: u32) -> bool {
        self.iterations != default_iterations || self.salt.chars().count() < SALT_LEN
    }

    /// `PBKDF2PasswordHasher.harden_runtime`: run the missing `default − stored` iterations.
    pub(super) fn harden_runtime(&self, password: &str, default_iterations: u32) {
        if let Some(extra) = default_iterations.checked_sub(self.iterations).filter(|&n| n > 0) {
            std::hint::black_box(self.derive(password, extra));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_reproduces_django_61_vector() {
        assert_eq!(
            encode_pbkdf2_sha256("correct horse ☃", "UMApFUAEo6kk7cQlaK1bJm", 1_500_000),
            "pbkdf2_sha256$1500000$UMApFUAEo6kk7cQlaK1bJm$qL1fFcI3qcDOuH0Hs2RQ8s/kyVtFakuuPCFYH7g6qv8="
        );
    }

    #[test]
    fn encode_reproduces_django_test_suite_vectors() {
        // tests/auth_tests/test_hashers.py: test_pbkdf2, test_low_level_pbkdf2.
        assert_eq!(
            encode_pbkdf2_sha256("lètmein", "seasalt", 390_000),
            "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
        );
        assert_eq!(
            encode_pbkdf2_sha256("lètmein", "seasalt2", 390_000),
            "pbkdf2_sha256$390000$seasalt2$geC/uZ92nRXDSjSxeoiBqYyRcrLzMm8xK3ro1QS1uo8="
        );
    }

    #[test]
    fn pbkdf2_sha1_vector() {
        // test_low_level_pbkdf2_sha1.
        let encoded = "pbkdf2_sha1$390000$seasalt2$aDapRanzW8aHTz97v2TcfHzWD+I=";
        let hash = Pbkdf2::parse(Algorithm::Pbkdf2Sha1, encoded).unwrap();
        assert!(hash.verify("lètmein"));
        assert!(!hash.verify("lètmeinz"));
    }

    #[test]
    fn must_update_rules() {
        let make = |iterations, salt: &str| encode_pbkdf2_sha256("pw", salt, iterations);
        let strong = make(10, "abcdefghijklmnopqrstuv");
        let weak = make(10, "iodizedsalt");
        let unicode = make(10, "ääääääääääääääääääääää");
        let parse = |e: &str| Pbkdf2::parse(Algorithm::Pbkdf2Sha256, e).unwrap().must_update(10);
        assert!(!parse(&strong));
        assert!(parse(&weak));
        assert!(!parse(&unicode), "salt length counts characters, like Python's len()");
        assert!(Pbkdf2::parse(Algorithm::Pbkdf2Sha256, &strong).unwrap().must_update(11));
    }
}
