//! Django-compatible password hashing (`django.contrib.auth.hashers`, Django 6.1).
//!
//! [`verify`] follows Django's `verify_password`: unusable (`"!"`-prefixed) passwords and unknown
//! hashers cost one default-hasher run ([`fake_runtime`]) and never verify; `must_update` is
//! computed against the default hasher (`pbkdf2_sha256` with [`HasherConfig::pbkdf2_iterations`]
//! and a 22-character salt); a wrong password on an outdated default-hasher hash runs
//! `harden_runtime`. [`make_password`] writes exactly what Django 6.1 writes.
//!
//! # Resource caps
//!
//! A corrupt or hostile `auth_user.password` value must not make one verification arbitrarily
//! expensive or panic. Values outside these bounds are [`HashError::Malformed`]:
//!
//! | hasher | accepted | Django 6.1 default |
//! |---|---|---|
//! | PBKDF2 | 1 ..= 100 000 000 iterations (≈ 13 s) | 1 500 000 |
//! | argon2 | `m` ≤ 1 GiB, `t` ≤ 64, `p` ≤ 255, `m·t` ≤ 4 GiB, hash 4 ..= 1024 bytes, salt ≥ 8 bytes | 100 MiB, 2, 8 |
//! | scrypt | `N` a power of two > 1, `128·N·r` ≤ 1 GiB, `p` ≤ 255, `128·N·r·p` ≤ 4 GiB, key exactly 64 bytes | 2¹⁴, 8, 5 |
//! | bcrypt | cost 4 ..= 20 (≈ 70 s; bcrypt itself accepts up to 31) | 12 |
//!
//! Numbers must be written canonically (ASCII digits, no sign, no leading zero), as Django and
//! argon2-cffi write them; neither verifies other spellings. Where Django would return `False`
//! for a corrupt hash (bad base64, wrong length), gatehouse returns [`HashError::Malformed`]; no
//! input verifies here that Django rejects, or the reverse (checked against Django 5.2.19 on the
//! test corpus of this module).
//!
//! A default-cost hash costs 0.15–0.3 s of CPU (argon2 also 100 MiB of memory): call these
//! functions from a blocking thread behind a semaphore, never on an async executor.

mod argon2;
mod bcrypt;
mod digest;
mod pbkdf2;
mod scrypt;

use rand::{Rng, distributions::Alphanumeric, rngs::OsRng};
use subtle::ConstantTimeEq;

pub use self::pbkdf2::{MAX_ITERATIONS as MAX_PBKDF2_ITERATIONS, encode_pbkdf2_sha256};

/// Django 6.1's `PBKDF2PasswordHasher.iterations`.
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 1_500_000;
/// Length of the salts Django writes: `ceil(128 / log2(62))`; shorter salts set `must_update`.
pub const SALT_LEN: usize = 22;
/// Django's `UNUSABLE_PASSWORD_PREFIX`.
pub const UNUSABLE_PASSWORD_PREFIX: &str = "!";
const UNUSABLE_PASSWORD_SUFFIX_LEN: usize = 40;

/// The hashers gatehouse verifies. Django 6.1 ships all but `Sha1`, `UnsaltedMd5` and
/// `UnsaltedSha1` (removed in 5.1) and enables `pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`,
/// `bcrypt_sha256` and `scrypt` by default; gatehouse accepts all ten, like a Django project
/// that lists them all in `PASSWORD_HASHERS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Pbkdf2Sha256,
    Pbkdf2Sha1,
    Argon2,
    BcryptSha256,
    Bcrypt,
    Scrypt,
    Md5,
    Sha1,
    UnsaltedMd5,
    UnsaltedSha1,
}

impl Algorithm {
    /// The default hasher (first entry of Django's `PASSWORD_HASHERS`).
    pub const DEFAULT: Self = Self::Pbkdf2Sha256;
    pub const ALL: [Self; 10] = [
        Self::Pbkdf2Sha256,
        Self::Pbkdf2Sha1,
        Self::Argon2,
        Self::BcryptSha256,
        Self::Bcrypt,
        Self::Scrypt,
        Self::Md5,
        Self::Sha1,
        Self::UnsaltedMd5,
        Self::UnsaltedSha1,
    ];

    /// Django's `algorithm` string, e.g. `"pbkdf2_sha256"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pbkdf2Sha256 => "pbkdf2_sha256",
            Self::Pbkdf2Sha1 => "pbkdf2_sha1",
            Self::Argon2 => "argon2",
            Self::BcryptSha256 => "bcrypt_sha256",
            Self::Bcrypt => "bcrypt",
            Self::Scrypt => "scrypt",
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::UnsaltedMd5 => "unsalted_md5",
            Self::UnsaltedSha1 => "unsalted_sha1",
        }
    }

    /// The algorithm whose [`name`](Self::name) is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    fn malformed(self) -> HashError {
        HashError::Malformed { algorithm: self.name() }
    }
}

#[derive(Clone, Debug)]
pub struct HasherConfig {
    /// Iterations for new `pbkdf2_sha256` hashes; stored hashes with another count get
    /// `must_update`. Follow the Django version in use (1 500 000 for 6.1, 1 000 000 for 5.2).
    /// Clamped to `1..=`[`MAX_PBKDF2_ITERATIONS`], so that what is written can be verified.
    pub pbkdf2_iterations: u32,
}

impl HasherConfig {
    fn iterations(&self) -> u32 {
        self.pbkdf2_iterations.clamp(1, MAX_PBKDF2_ITERATIONS)
    }
}

impl Default for HasherConfig {
    fn default() -> Self {
        Self { pbkdf2_iterations: DEFAULT_PBKDF2_ITERATIONS }
    }
}

/// Outcome of [`verify`], Django's `(is_correct, must_update)`. `must_update` is reported even for
/// a wrong password (as Django does); rehash only when both are true.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    pub must_update: bool,
}

const INVALID: Verification = Verification { valid: false, must_update: false };

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The stored hash names a known hasher but cannot be parsed or exceeds the resource caps.
    /// Never carries the hash itself.
    #[error("malformed {algorithm} password hash")]
    Malformed { algorithm: &'static str },
}

/// Django's `identify_hasher`; `None` for an unknown hasher (including unusable `"!…"` values).
pub fn identify(encoded: &str) -> Option<Algorithm> {
    let len = encoded.chars().count();
    if (len == 32 && !encoded.contains('$')) || (len == 37 && encoded.starts_with("md5$$")) {
        Some(Algorithm::UnsaltedMd5)
    } else if len == 46 && encoded.starts_with("sha1$$") {
        Some(Algorithm::UnsaltedSha1)
    } else {
        encoded.split('$').next().and_then(Algorithm::from_name)
    }
}

/// Django's `is_password_usable`: only values starting with `"!"` are unusable.
pub fn is_usable(encoded: &str) -> bool {
    !encoded.starts_with(UNUSABLE_PASSWORD_PREFIX)
}

/// Hashes `password` the way Django 6.1's `make_password` does: `pbkdf2_sha256`, the configured
/// iterations and a fresh 22-character `[a-zA-Z0-9]` salt from the OS RNG.
pub fn make_password(password: &str, cfg: &HasherConfig) -> String {
    encode_pbkdf2_sha256(password, &random_string(SALT_LEN), cfg.iterations())
}

/// Django's `make_password(None)`: `"!"` followed by 40 random `[a-zA-Z0-9]`.
pub fn make_unusable_password() -> String {
    UNUSABLE_PASSWORD_PREFIX.to_owned() + &random_string(UNUSABLE_PASSWORD_SUFFIX_LEN)
}

/// Hashes a random password once with the default hasher, so that a missing user, an unusable
/// password or an unknown hasher take as long as a real check (Django ticket #20760).
pub fn fake_runtime(cfg: &HasherConfig) {
    std::hint::black_box(make_password(&random_string(UNUSABLE_PASSWORD_SUFFIX_LEN), cfg));
}

/// Django's `verify_password`. Unusable passwords and unknown hashers give
/// `Ok(valid: false, must_update: false)` after [`fake_runtime`]; a hash that names a known hasher
/// but cannot be checked gives [`HashError::Malformed`], also after [`fake_runtime`].
pub fn verify(password: &str, encoded: &str, cfg: &HasherConfig) -> Result<Verification, HashError> {
    let Some(algorithm) = identify(encoded).filter(|_| is_usable(encoded)) else {
        fake_runtime(cfg);
        return Ok(INVALID);
    };
    check(algorithm, password, encoded, cfg).inspect_err(|_| {
        tracing::warn!(algorithm = algorithm.name(), "malformed password hash");
        fake_runtime(cfg);
    })
}

fn check(algorithm: Algorithm, password: &str, encoded: &str, cfg: &HasherConfig) -> Result<Verification, HashError> {
    // Django: must_update = hasher_changed || default.must_update(encoded), and harden_runtime
    // runs on a wrong password only when the hasher did not change and must_update is true.
    // Only `pbkdf2_sha256` can be the default here, so every other hasher is must_update.
    let is_default = algorithm == Algorithm::DEFAULT;
    let (valid, must_update) = match algorithm {
        Algorithm::Pbkdf2Sha256 | Algorithm::Pbkdf2Sha1 => {
            let hash = pbkdf2::Pbkdf2::parse(algorithm, encoded)?;
            let valid = hash.verify(password);
            let must_update = !is_default || hash.must_update(cfg.iterations());
            if !valid && is_default && must_update {
                hash.harden_runtime(password, cfg.iterations());
            }
            (valid, must_update)
        }
        Algorithm::BcryptSha256 | Algorithm::Bcrypt => {
            let hash = bcrypt::Bcrypt::parse(algorithm, encoded)?;
            let valid = hash.verify(password)?;
            let must_update = !is_default || hash.must_update();
            if !valid && is_default && must_update {
                hash.harden_runtime(password);
            }
            (valid, must_update)
        }
        Algorithm::Argon2 => (argon2::verify(password, encoded)?, true),
        Algorithm::Scrypt => (scrypt::verify(password, encoded)?, true),
        Algorithm::Md5 => (digest::salted::<::md5::Md5>(algorithm, password, encoded)?, true),
        Algorithm::Sha1 => (digest::salted::<::sha1::Sha1>(algorithm, password, encoded)?, true),
        Algorithm::UnsaltedMd5 => (digest::unsalted_md5(password, encoded), true),
        Algorithm::UnsaltedSha1 => (digest::unsalted_sha1(password, encoded), true),
    };
    Ok(Verification { valid, must_update })
}

fn random_string(len: usize) -> String {
    OsRng.sample_iter(Alphanumeric).take(len).map(char::from).collect()
}

/// Constant-time equality (length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Splits into exactly `N` `$`-separated fields, the last one taking the rest (Python's
/// `a, b, c = s.split("$", N - 1)`).
fn fields<const N: usize>(encoded: &str) -> Option<[&str; N]> {
    encoded.splitn(N, '$').collect::<Vec<_>>().try_into().ok()
}

/// A canonical decimal `u32`: ASCII digits only, no sign, no leading zero.
fn parse_u32(s: &str) -> Option<u32> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const PASSWORD: &str = "correct horse ☃";
    const VECTORS_JSON: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/django-6.1-hash-vectors.json"));
    /// Cheap config for tests that do not depend on the default work factor.
    const CHEAP: HasherConfig = HasherConfig { pbkdf2_iterations: 1000 };

    /// (algorithm, encoded, must_update_vs_default) of the real Django 6.1.3 vectors.
    fn django_61_vectors() -> Vec<(String, String, bool)> {
        let json: serde_json::Value = serde_json::from_str(VECTORS_JSON).unwrap();
        assert_eq!(json["django"], "6.1.3");
        let vectors: Vec<_> = (json["vectors"].as_array().unwrap().iter())
            .map(|v| {
                assert_eq!(v["password"], PASSWORD);
                let text = |key: &str| v[key].as_str().unwrap().to_owned();
                (text("alg"), text("encoded"), v["must_update_vs_default"].as_bool().unwrap())
            })
            .collect();
        assert_eq!(vectors.len(), 7);
        vectors
    }

    const fn outcome(valid: bool, must_update: bool) -> Verification {
        Verification { valid, must_update }
    }

    fn ok(password: &str, encoded: &str, cfg: &HasherConfig) -> Verification {
        verify(password, encoded, cfg).unwrap()
    }

    #[test]
    fn django_61_vectors_verify_with_must_update() {
        let cfg = HasherConfig::default();
        for (alg, encoded, must_update) in django_61_vectors() {
            assert_eq!(identify(&encoded).map(Algorithm::name), Some(alg.as_str()));
            assert_eq!(ok(PASSWORD, &encoded, &cfg), outcome(true, must_update), "{alg}");
        }
    }

    #[test]
    fn django_61_vectors_reject_wrong_passwords() {
        let cfg = HasherConfig::default();
        for (alg, encoded, must_update) in django_61_vectors() {
            for wrong in ["correct horse ☂", "correct horse", "", "CORRECT HORSE ☃"] {
                assert_eq!(ok(wrong, &encoded, &cfg), outcome(false, must_update), "{alg}");
            }
        }
    }

    #[test]
    fn pbkdf2_iterations_are_configurable() {
        let (alg, encoded, _) = &django_61_vectors()[0];
        assert_eq!(alg, "pbkdf2_sha256");
        let django_52 = HasherConfig { pbkdf2_iterations: 1_000_000 };
        assert_eq!(ok(PASSWORD, encoded, &django_52), outcome(true, true));
        // Stored count above the default: harden_runtime has nothing to add.
        assert_eq!(ok("wrong", encoded, &django_52), outcome(false, true));
    }

    #[test]
    fn make_password_matches_django_format() {
        let cfg = HasherConfig::default();
        let encoded = make_password(PASSWORD, &cfg);
        assert_eq!(encoded.len(), 89);
        let [alg, iterations, salt, hash] = fields(&encoded).unwrap();
        assert_eq!((alg, iterations), ("pbkdf2_sha256", "1500000"));
        assert_eq!(salt.len(), SALT_LEN);
        assert!(salt.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(hash.len(), 44);
        assert_eq!(encoded, encode_pbkdf2_sha256(PASSWORD, salt, 1_500_000));
        assert_eq!(ok(PASSWORD, &encoded, &cfg), outcome(true, false));
        assert_eq!(ok("correct horse", &encoded, &cfg), outcome(false, false));
        assert_ne!(make_password(PASSWORD, &cfg), encoded, "salt must be random");
    }

    #[test]
    fn make_password_uses_configured_iterations_and_roundtrips() {
        for password in ["", " ", "lètmein", "a\0b", &"x".repeat(500)] {
            let encoded = make_password(password, &CHEAP);
            assert!(encoded.starts_with("pbkdf2_sha256$1000$"));
            assert_eq!(ok(password, &encoded, &CHEAP), outcome(true, false));
            assert_eq!(ok(&format!("{password}!"), &encoded, &CHEAP), outcome(false, false));
        }
        let zero = HasherConfig { pbkdf2_iterations: 0 };
        let encoded = make_password("x", &zero);
        assert!(encoded.starts_with("pbkdf2_sha256$1$"));
        assert_eq!(ok("x", &encoded, &zero), outcome(true, false));
        let huge = HasherConfig { pbkdf2_iterations: u32::MAX };
        assert_eq!(huge.iterations(), MAX_PBKDF2_ITERATIONS);
    }

    #[test]
    fn unusable_passwords_never_verify() {
        let unusable = make_unusable_password();
        assert_eq!(unusable.len(), 41);
        assert!(unusable.starts_with('!'));
        assert!(unusable[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(unusable, make_unusable_password());
        assert!(!is_usable(&unusable));
        assert_eq!(identify(&unusable), None);
        // "!" + a valid hash (Django's set_unusable_password never does this, but a DB might).
        let hidden = format!("!{}", encode_pbkdf2_sha256("pw", "abcdefghijklmnopqrstuv", 1000));
        for (password, encoded) in [
            ("pw", hidden.as_str()),
            (&unusable, &unusable),
            ("", &unusable),
            ("!", &unusable),
            ("", "!"),
            // 32 characters without "$" would otherwise be unsalted_md5.
            ("", "!a8f5f167f44f4964e6c998dee827110"),
        ] {
            assert_eq!(ok(password, encoded, &CHEAP), INVALID);
        }
    }

    #[test]
    fn is_usable_follows_django() {
        for usable in ["lètmein_badencoded", "", "foo$bar", "pbkdf2_sha256$1$a$b"] {
            assert!(is_usable(usable));
        }
        for unusable in ["!", "!x", "!pbkdf2_sha256$1$a$b"] {
            assert!(!is_usable(unusable));
        }
    }

    #[test]
    fn unknown_hashers_are_invalid_not_errors() {
        for encoded in [
            "foo$bar",
            "lolcat$salt$hash",
            "",
            "$",
            "$$$",
            "PBKDF2_SHA256$1$a$b",
            "crypt$$ab1Hv2Lg7ltQo",
            "argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaA",
            // Raw hex SHA-1 (40 characters, no "$") is not unsalted_sha1 (test_unsalted_sha1).
            "6d138ca3ae545631b3abd71a4f076ce759c5700b",
        ] {
            assert_eq!(identify(encoded), None, "{encoded}");
            assert_eq!(ok("lètmein", encoded, &CHEAP), INVALID, "{encoded}");
        }
    }

    #[test]
    fn identify_follows_django_rules() {
        use Algorithm::*;
        let md5 = "88a434c88cca4e900f7874cd98123f43";
        let sha1 = "6d138ca3ae545631b3abd71a4f076ce759c5700b";
        for (encoded, expected) in [
            (md5.to_owned(), UnsaltedMd5),
            (format!("md5${md5}"), Md5),
            (format!("md5$${md5}"), UnsaltedMd5),
            ("ä".repeat(32), UnsaltedMd5),
            (format!("sha1$${sha1}"), UnsaltedSha1),
            (format!("sha1$${}", &sha1[1..]), Sha1),
            (format!("sha1$seasalt${sha1}"), Sha1),
            ("unsalted_md5$x".into(), UnsaltedMd5),
            ("unsalted_sha1$x".into(), UnsaltedSha1),
            ("pbkdf2_sha256".into(), Pbkdf2Sha256),
            ("pbkdf2_sha1$1$a$b".into(), Pbkdf2Sha1),
            ("argon2$argon2id$x".into(), Argon2),
            ("bcrypt_sha256$$2b$12$x".into(), BcryptSha256),
            ("bcrypt$$2b$12$x".into(), Bcrypt),
            ("scrypt$x".into(), Scrypt),
        ] {
            assert_eq!(identify(&encoded), Some(expected), "{encoded}");
        }
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
    }

    #[test]
    fn old_default_hash_hardens_runtime_on_wrong_password() {
        // Django 5.2.19 PBKDF2PasswordHasher().encode("lètmein", "abcdefghijkl", 100000): old
        // iteration count and a 12-character salt, so must_update on both counts.
        let old = "pbkdf2_sha256$100000$abcdefghijkl$2/G/WJ2FVGbiz1Zp7rnWh/jiZOxmhQlyONKwOIVmU2o=";
        let cfg = HasherConfig { pbkdf2_iterations: 1_100_000 };
        // Fastest of three runs, to stay robust on a loaded machine.
        let timed = |password| {
            let runs = (0..3).map(|_| {
                let start = Instant::now();
                (ok(password, old, &cfg), start.elapsed())
            });
            runs.min_by_key(|&(_, elapsed)| elapsed).unwrap()
        };
        let (right, right_time) = timed("lètmein");
        let (wrong, wrong_time) = timed("lètmeinz");
        assert_eq!((right, wrong), (outcome(true, true), outcome(false, true)));
        // The wrong password ran 1 000 000 extra iterations on top of the 100 000 (11×).
        assert!(wrong_time > right_time * 3, "{wrong_time:?} vs {right_time:?}");
        // Same iterations, short salt only: must_update, nothing extra to run.
        let cfg = HasherConfig { pbkdf2_iterations: 100_000 };
        assert_eq!(ok("x", old, &cfg), outcome(false, true));
    }

    #[test]
    fn django_test_suite_vectors() {
        // tests/auth_tests/test_hashers.py (Django main), password "lètmein".
        for encoded in [
            "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            "pbkdf2_sha256$390000$seasalt2$geC/uZ92nRXDSjSxeoiBqYyRcrLzMm8xK3ro1QS1uo8=",
            "pbkdf2_sha1$390000$seasalt2$aDapRanzW8aHTz97v2TcfHzWD+I=",
            "sha1$seasalt$cff36ea83f5706ce9aa7454e63e431fc726b2dc8",
            "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3",
            "88a434c88cca4e900f7874cd98123f43",
            "md5$$88a434c88cca4e900f7874cd98123f43",
            "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b",
            "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==",
            "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg",
        ] {
            let password = if encoded.starts_with("argon2") { "secret" } else { "lètmein" };
            assert_eq!(ok(password, encoded, &CHEAP), outcome(true, true), "{encoded}");
            assert_eq!(ok("lètmeinz", encoded, &CHEAP), outcome(false, true), "{encoded}");
        }
    }

    #[test]
    fn malformed_hashes_are_errors_without_secrets() {
        let secret_salt = "SECRETSALTsecretsalt42";
        let b64_32 = "qL1fFcI3qcDOuH0Hs2RQ8s/kyVtFakuuPCFYH7g6qv8=";
        for encoded in [
            "pbkdf2_sha256".to_owned(),
            "pbkdf2_sha256$1000$salt".to_owned(),
            "pbkdf2_sha256$0$salt$AAAA".to_owned(),
            format!("pbkdf2_sha256$abc$salt${b64_32}"),
            format!("pbkdf2_sha256$01500000$UMApFUAEo6kk7cQlaK1bJm${b64_32}"),
            format!("pbkdf2_sha256$100000001$s${b64_32}"),
            format!("pbkdf2_sha256$1000${secret_salt}$not base64!"),
            format!("pbkdf2_sha256$1000$${b64_32}"),
            format!("pbkdf2_sha256$1000$salt${}", b64_32.trim_end_matches('=')),
            format!("pbkdf2_sha1$1000$salt${b64_32}"),
            "md5$salt".to_owned(),
            "md5$$abc".to_owned(),
            "sha1$$abc".to_owned(),
            "scrypt$abc$salt$8$1$AAAA".to_owned(),
            "argon2$argon2id$v=19$m=1$c2FsdHNhbHQ$AAAAAAAA".to_owned(),
            "bcrypt$$2b$99$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.".to_owned(),
            "bcrypt_sha256$".to_owned(),
        ] {
            let err = verify("lètmein", &encoded, &CHEAP).unwrap_err();
            let HashError::Malformed { algorithm } = err;
            assert_eq!(Some(algorithm), identify(&encoded).map(Algorithm::name));
            let message = err.to_string();
            assert_eq!(message, format!("malformed {algorithm} password hash"));
            assert!(!format!("{err:?}{message}").contains(secret_salt));
        }
    }

    /// Hand-written garbage, then every prefix of real hashes and every one-character deletion
    /// of the cheap ones.
    fn garbage_corpus() -> Vec<String> {
        let mut corpus: Vec<String> = [
            "",
            "$",
            "$$",
            "$$$$$$$$$$",
            "!",
            "!!",
            "\0",
            "☃",
            "☃$☃$☃$☃",
            "md5$$",
            "sha1$$",
            "pbkdf2_sha256$",
            "pbkdf2_sha256$$$",
            "pbkdf2_sha256$-1$salt$AAAA",
            "pbkdf2_sha256$+5$salt$AAAA",
            "pbkdf2_sha256$ 5$salt$AAAA",
            "pbkdf2_sha256$99999999999999999999999999$salt$AAAA",
            "pbkdf2_sha256$4294967296$salt$AAAA",
            "pbkdf2_sha256$1$☃$☃",
            "pbkdf2_sha256$1$s$====",
            "pbkdf2_sha1$1$s$AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "argon2$",
            "argon2$$$$$",
            "argon2$argon2id",
            "argon2$argon2id$v=19",
            "argon2$argon2id$v=19$m=8,t=1,p=1",
            "argon2$argon2id$v=19$m=8,t=1,p=1$$",
            "argon2$argon2id$v=20$m=8,t=1,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=0,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=1,p=0$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=1,p=2$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=1048577,t=1,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=4294967295,t=4294967295,p=16777215$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=1048576,t=8,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=64,t=65,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=2048,t=1,p=256$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$t=1,m=8,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=1,p=1,x=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=1,p=1$c2FsdA$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ=$AAAAAAAA",
            "argon2$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$AAA",
            "argon2$argon2x$v=19$m=8,t=1,p=1$c29tZXNhbHQ$AAAAAAAA",
            "argon2$argon2id$v=19$m=☃,t=1,p=1$c29tZXNhbHQ$AAAAAAAA",
            "bcrypt$",
            "bcrypt$$",
            "bcrypt$$2b$",
            "bcrypt$$2b$03$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.",
            "bcrypt$$2b$32$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.",
            "bcrypt$$2b$+4$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.",
            "bcrypt$$2c$04$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.",
            "bcrypt$$2b$04$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZ☃",
            "bcrypt$$2b$04$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZU☃",
            "bcrypt$$2b$04$xWncj1AgJhcwsHx93PdcL.iKlV8JXaBW5GdTh4B4h7CkptjmZUZS.$",
            "bcrypt$$2b$04$!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "scrypt$",
            "scrypt$$$$$",
            "scrypt$0$salt$8$1$AAAA",
            "scrypt$1$salt$8$1$AAAA",
            "scrypt$3$salt$8$1$AAAA",
            "scrypt$2147483648$salt$8$1$AAAA",
            "scrypt$1048576$salt$8$1$AAAAAAAAAAAAAAAA",
            "scrypt$16384$salt$0$1$AAAAAAAAAAAAAAAA",
            "scrypt$16384$salt$8$0$AAAAAAAAAAAAAAAA",
            "scrypt$16384$salt$8$256$AAAAAAAAAAAAAAAA",
            "scrypt$16384$salt$4294967295$4294967295$AAAAAAAAAAAAAAAA",
            "scrypt$2$salt$1$1$AAAA",
            "scrypt$2$salt$1$1$",
            "scrypt$2$$1$1$AAAAAAAAAAAAAAAA",
            "scrypt$2$salt$1$1$AAAAAAAAAAAAAAAA$",
            "md5$☃$☃",
            "md5$s$",
            "sha1$s$ZZ",
            "unsalted_md5$",
            "unsalted_sha1$$$",
        ]
        .map(String::from)
        .into();
        corpus.push("scrypt$2147483648$salt$4294967295$4294967295$AAAA".into());
        corpus.push("a".repeat(100_000));
        corpus.push(format!("pbkdf2_sha256$1${}$AAAA", "s".repeat(100_000)));
        corpus.push(format!("argon2$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ${}", "A".repeat(2000)));
        corpus.push(format!("scrypt$2$salt$1$1${}", "A".repeat(100)));
        let expensive = django_61_vectors().into_iter().map(|(_, encoded, _)| (encoded, false));
        let cheap = [
            "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg",
            "scrypt$1024$abcdefghijklmnopqrstuv$8$2$veDcn8lvLCozYInjwRgwa/7jLpUHeuX1JPLVPIyD2LOnw0zzQVEItW1a+M72aRSSSfSZPd2L8YAvz/hkcoLVSw==",
            "bcrypt$$2b$04$uSqAGNZkXH4oMxV3cB9tH.Fndq6Tfy.m3Gj5YZ8.knXnvnjQgaveO",
            "bcrypt_sha256$$2b$04$E59wwTK5m6Mi9TigMrLywe9qRCXAO.wzgo7kN7I6LY4l4G1i25tZK",
            "pbkdf2_sha256$1000$abcdefghijklmnopqrstuv$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b",
            "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3",
            "88a434c88cca4e900f7874cd98123f43",
        ]
        .map(|encoded| (encoded.to_owned(), true));
        for (encoded, deletions) in expensive.chain(cheap) {
            let chars: Vec<char> = encoded.chars().collect();
            for i in 0..chars.len() {
                corpus.push(chars[..i].iter().collect());
                if deletions {
                    let mut deleted = chars.clone();
                    deleted.remove(i);
                    corpus.push(deleted.into_iter().collect());
                }
            }
        }
        corpus.sort();
        corpus.dedup();
        corpus
    }

    /// Every input must give `Ok(valid: false)` or `Err`: never a panic, never `valid: true`.
    #[test]
    fn garbage_never_panics_or_verifies() {
        let start = Instant::now();
        let corpus = garbage_corpus();
        for encoded in &corpus {
            for password in [PASSWORD, "lètmein", ""] {
                if let Ok(v) = verify(password, encoded, &CHEAP) {
                    assert!(!v.valid, "{encoded:?} verified {password:?}");
                }
            }
        }
        eprintln!("{} garbage inputs in {:?}", corpus.len(), start.elapsed());
    }
}
