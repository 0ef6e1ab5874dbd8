//! `bcrypt_sha256` and `bcrypt`: `<algorithm>$` + the bcrypt string (`$2b$12$<salt><hash>`).
//!
//! `bcrypt_sha256` feeds bcrypt the 64 hex characters of SHA-256(password); plain `bcrypt` feeds
//! the raw password, and a password over 72 bytes never verifies (Python's bcrypt 5 raises).

use super::{Algorithm, HashError};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Django's `BCryptSHA256PasswordHasher.rounds`.
pub const DEFAULT_COST: u32 = 12;
/// bcrypt's own limit on the key length.
const MAX_PASSWORD_BYTES: usize = 72;

pub(super) struct Bcrypt<'a> {
    algorithm: Algorithm,
    hash: &'a str,
    cost: u32,
}

/// Cost 20 is already ~70 s per hash on one core (Django writes 12); a corrupt row asking for
/// more would hold a hashing slot for hours.
const MAX_COST: u32 = 20;

impl<'a> Bcrypt<'a> {
    pub(super) fn parse(algorithm: Algorithm, encoded: &'a str) -> Result<Self, HashError> {
        let hash = encoded.split_once('$').map_or("", |(_, hash)| hash);
        // 60 ASCII bytes: `$2?$` (a, b, x, y as Python's bcrypt accepts), two cost digits, `$`.
        let cost = Some(hash)
            .filter(|h| h.len() == 60 && h.is_ascii())
            .filter(|h| matches!(h.get(..4), Some("$2a$" | "$2b$" | "$2x$" | "$2y$")))
            .filter(|h| h.get(6..7) == Some("$"))
            .and_then(|h| h.get(4..6))
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse().ok())
            .filter(|c| (4..=MAX_COST).contains(c))
            .ok_or_else(|| algorithm.malformed())?;
        Ok(Self { algorithm, hash, cost })
    }

    fn secret<'p>(&self, password: &'p str) -> Cow<'p, [u8]> {
        match self.algorithm {
            Algorithm::BcryptSha256 => hex::encode(Sha256::digest(password)).into_bytes().into(),
            _ => password.as_bytes().into(),
        }
    }

    pub(super) fn verify(&self, password: &str) -> Result<bool, HashError> {
        let secret = self.secret(password);
        // Hash even an over-long password (truncated) so the time does not tell it apart.
        let matches = ::bcrypt::verify(&secret, self.hash).map_err(|_| self.algorithm.malformed())?;
        Ok(matches && secret.len() <= MAX_PASSWORD_BYTES)
    }

    /// `BCryptPasswordHasher.must_update` when this hasher is the default.
    pub(super) fn must_update(&self) -> bool {
        self.cost != DEFAULT_COST
    }

    /// `BCryptPasswordHasher.harden_runtime`: `2^(12 − cost) − 1` extra hashes with the stored
    /// salt. Django calls it only when bcrypt is the default hasher.
    pub(super) fn harden_runtime(&self, password: &str) -> u32 {
        let extra = DEFAULT_COST.checked_sub(self.cost).map_or(0, |diff| (1u32 << diff) - 1);
        let secret = self.secret(password);
        for _ in 0..extra {
            std::hint::black_box(::bcrypt::verify(&secret, self.hash).ok());
        }
        extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Django 5.2.19 (BCryptPasswordHasher / BCryptSHA256PasswordHasher with rounds = 4)
    // and Python bcrypt 5.0.0 (hashpw, gensalt(4, prefix=b"2a"); the $2y$ one is a $2b$ hash with
    // its prefix replaced); password "lètmein" unless noted. Django's check_password accepted all.
    const BCRYPT: &str = "bcrypt$$2b$04$uSqAGNZkXH4oMxV3cB9tH.Fndq6Tfy.m3Gj5YZ8.knXnvnjQgaveO";
    const BCRYPT_SHA256: &str = "bcrypt_sha256$$2b$04$E59wwTK5m6Mi9TigMrLywe9qRCXAO.wzgo7kN7I6LY4l4G1i25tZK";
    const BCRYPT_2A: &str = "bcrypt$$2a$04$YZVe0qCoBQeOVDXHcOSU4uzWAiw3GdHTb/oV0BzHcN.UkfTypIcKW";
    const BCRYPT_2Y: &str = "bcrypt$$2y$04$bW33CApVyLJkCkHJ1l.fYOsYU5bm5ZQwqFI.P4n4JR6ockwREE5ry";
    /// Password "let\0me".
    const BCRYPT_NUL: &str = "bcrypt$$2b$04$5bnKk3VfOZA.Wl/xIQLRFeY74mRdttOiuDM/k8eZCRuvFtz31jfI6";
    /// Password "x" × 72; Django raises ValueError for "x" × 73.
    const BCRYPT_72: &str = "bcrypt$$2b$04$JjaUFtmnbqyHc9bJJLVny.G3RGLCQ.Fw5yXfOsFHVu/qhONO.LSLq";
    /// Password "y" × 100.
    const BCRYPT_SHA256_LONG: &str = "bcrypt_sha256$$2b$04$yK8FunPYA1C61r4beV2d8erGwp1ZhmyfMblgKOx6isOExSfX5XcZS";

    fn check(password: &str, encoded: &str) -> bool {
        let algorithm = super::super::identify(encoded).unwrap();
        Bcrypt::parse(algorithm, encoded).unwrap().verify(password).unwrap()
    }

    #[test]
    fn python_bcrypt_vectors() {
        for encoded in [BCRYPT, BCRYPT_SHA256, BCRYPT_2A, BCRYPT_2Y] {
            assert!(check("lètmein", encoded), "{encoded}");
            assert!(!check("lètmeinz", encoded), "{encoded}");
            assert!(!check("", encoded), "{encoded}");
        }
        // bcrypt_sha256 is not plain bcrypt under another name.
        assert!(!check("lètmein", &BCRYPT_SHA256.replace("bcrypt_sha256$", "bcrypt$")));
        assert!(!check("lètmein", &BCRYPT.replace("bcrypt$", "bcrypt_sha256$")));
    }

    #[test]
    fn nul_bytes_are_part_of_the_password() {
        assert!(check("let\0me", BCRYPT_NUL));
        assert!(!check("let", BCRYPT_NUL));
        assert!(!check("let\0mf", BCRYPT_NUL));
    }

    #[test]
    fn plain_bcrypt_rejects_passwords_over_72_bytes() {
        let x72 = "x".repeat(72);
        assert!(check(&x72, BCRYPT_72));
        assert!(!check(&"x".repeat(71), BCRYPT_72));
        assert!(!check(&"x".repeat(73), BCRYPT_72), "would verify if truncated");
    }

    #[test]
    fn bcrypt_sha256_does_not_truncate() {
        let y100 = "y".repeat(100);
        assert!(check(&y100, BCRYPT_SHA256_LONG));
        assert!(!check(&y100[..72], BCRYPT_SHA256_LONG));
    }

    #[test]
    fn must_update_and_harden_runtime() {
        let hash = Bcrypt::parse(Algorithm::Bcrypt, BCRYPT).unwrap();
        assert!(hash.must_update());
        // Django's test_bcrypt_harden_runtime: 4 → 6 rounds means 3 extra hashes; 4 → 12, 255.
        assert_eq!(hash.harden_runtime("wrong"), 255);
        let cost_12 = "bcrypt$$2b$12$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.";
        let hash = Bcrypt::parse(Algorithm::Bcrypt, cost_12).unwrap();
        assert!(!hash.must_update());
        assert_eq!(hash.harden_runtime("wrong"), 0);
        let cost_13 = cost_12.replace("$12$", "$13$");
        assert_eq!(Bcrypt::parse(Algorithm::Bcrypt, &cost_13).unwrap().harden_runtime("x"), 0);
    }

    #[test]
    fn rejects_malformed() {
        let body = &BCRYPT["bcrypt$$2b$04$".len()..];
        for bad in [
            format!("bcrypt$$2b$03${body}"),
            format!("bcrypt$$2b$32${body}"),
            format!("bcrypt$$2b$+4${body}"),
            format!("bcrypt$$2b$ 4${body}"),
            format!("bcrypt$$2c$04${body}"),
            format!("bcrypt$$2b$04${}", &body[1..]),
            format!("bcrypt$$2b$04${body}x"),
            format!("bcrypt$$2b$04${}é", &body[..body.len() - 2]),
            format!("bcrypt$2b$04${body}"),
            "bcrypt".to_owned(),
        ] {
            assert!(Bcrypt::parse(Algorithm::Bcrypt, &bad).and_then(|h| h.verify("x")).is_err(), "{bad}");
        }
    }
}
