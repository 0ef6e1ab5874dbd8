//! `argon2`: `"argon2"` + argon2-cffi's PHC string,
//! `argon2$argon2id$v=19$m=102400,t=2,p=8$<salt>$<hash>` (unpadded standard base64).
//!
//! Parsed by hand: hashes written before argon2-cffi 16 lack `v=`, which means version 0x10,
//! where the `argon2` crate's PHC parser would assume 0x13.

use super::{Algorithm, HashError, ct_eq, parse_u32};
use ::argon2::{Algorithm as Variant, Argon2, Params, Version};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};

/// Memory cap in KiB (1 GiB).
pub const MAX_MEMORY_KIB: u32 = 1 << 20;
/// Cap on `t`.
pub const MAX_TIME_COST: u32 = 64;
/// Cap on `m·t` in KiB (4 GiB swept in total, ≈ 20× Django's default).
pub const MAX_MEMORY_TIME_KIB: u64 = 4 << 20;
/// Cap on `p` (lanes).
pub const MAX_PARALLELISM: u32 = 255;
/// Cap on the stored hash length in bytes (argon2-cffi's default is 32).
pub const MAX_HASH_LEN: usize = 1024;

pub(super) fn verify(password: &str, encoded: &str) -> Result<bool, HashError> {
    let malformed = || Algorithm::Argon2.malformed();
    let parts: Vec<&str> = encoded.split('$').collect();
    let (variant, version, params, salt, hash) = match parts.as_slice() {
        [_, variant, params, salt, hash] => (*variant, Version::V0x10, *params, *salt, *hash),
        [_, variant, version, params, salt, hash] => {
            let version = match *version {
                "v=16" => Version::V0x10,
                "v=19" => Version::V0x13,
                _ => return Err(malformed()),
            };
            (*variant, version, *params, *salt, *hash)
        }
        _ => return Err(malformed()),
    };
    let variant = match variant {
        "argon2id" => Variant::Argon2id,
        "argon2i" => Variant::Argon2i,
        "argon2d" => Variant::Argon2d,
        _ => return Err(malformed()),
    };
    let [m, t, p] = parse_params(params).ok_or_else(malformed)?;
    let within_caps = m <= MAX_MEMORY_KIB
        && t <= MAX_TIME_COST
        && u64::from(m) * u64::from(t) <= MAX_MEMORY_TIME_KIB
        && p <= MAX_PARALLELISM;
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| malformed())?;
    let expected = STANDARD_NO_PAD.decode(hash).map_err(|_| malformed())?;
    if !within_caps || expected.len() > MAX_HASH_LEN {
        return Err(malformed());
    }
    // Params::new checks m ≥ 8·p, t ≥ 1, p ≥ 1 and hash length ≥ 4; hashing checks salt ≥ 8.
    let params = Params::new(m, t, p, Some(expected.len())).map_err(|_| malformed())?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(variant, version, params)
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|_| malformed())?;
    Ok(ct_eq(&out, &expected))
}

/// `m=<u32>,t=<u32>,p=<u32>`, in that order, as libargon2 requires.
fn parse_params(params: &str) -> Option<[u32; 3]> {
    let mut values = params.split(',');
    let mut next = |key: &str| values.next()?.strip_prefix(key).and_then(parse_u32);
    let parsed = [next("m=")?, next("t=")?, next("p=")?];
    values.next().is_none().then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str, encoded: &str) -> bool {
        verify(password, encoded).unwrap()
    }

    #[test]
    fn django_test_suite_vectors() {
        // tests/auth_tests/test_hashers.py, test_argon2: "Old hashes without version attribute"
        // (argon2i, no v= means version 0x10, 64-byte hash, 8-byte salt) and "with version".
        for encoded in [
            "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg",
            "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            // test_argon2_version_upgrade (argon2id, Django's default m/t/p, 16-byte hash).
            "argon2$argon2id$v=19$m=102400,t=2,p=8$Y041dExhNkljRUUy$TMa6A8fPJhCAUXRhJXCXdw",
        ] {
            assert!(check("secret", encoded), "{encoded}");
            assert!(!check("wrong", encoded), "{encoded}");
        }
    }

    #[test]
    fn argon2_cffi_vectors() {
        // Made with argon2-cffi 25.1.0 (argon2.low_level.hash_secret) for "lètmein", salt
        // b"abcdefghijklmnopqrstuv", t=1, m=64, p=2, hash_len=32, each prefixed with "argon2";
        // Django 5.2.19 check_password accepted all four. The first is the version=0x10 output
        // with its "v=16$" segment removed, as pre-1.3 argon2-cffi wrote it.
        let id_no_v =
            "argon2$argon2id$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$6cQ8hwDATc/f5Eio0soa6MaS9O6DygvukOUVhvqusYc";
        let id_v16 = "argon2$argon2id$v=16$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$6cQ8hwDATc/f5Eio0soa6MaS9O6DygvukOUVhvqusYc";
        let i_v19 = "argon2$argon2i$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$11e5wNDdndCRRMlY0Bz3ku6GOAaVOfU/QYKiPZp5v6Q";
        let d_v19 = "argon2$argon2d$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$arfsPYkXxot6l5rx1OF1ZoZlyAkFI9sQ/I11aYssGJs";
        for encoded in [id_no_v, id_v16, i_v19, d_v19] {
            assert!(check("lètmein", encoded), "{encoded}");
            assert!(!check("lètmeinz", encoded), "{encoded}");
        }
        // The version and the variant are part of the hash.
        assert!(!check("lètmein", &id_no_v.replace("$m=", "$v=19$m=")));
        assert!(!check("lètmein", &i_v19.replace("argon2i$", "argon2id$")));
    }

    #[test]
    fn rejects_out_of_range_parameters() {
        let salt = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg";
        let hash = "6cQ8hwDATc/f5Eio0soa6MaS9O6DygvukOUVhvqusYc";
        for params in [
            "m=1048577,t=1,p=1",
            "m=1048576,t=5,p=1",
            "m=65536,t=65,p=1",
            "m=4096,t=1,p=256",
            "m=8,t=1,p=2",
            "m=64,t=0,p=1",
            "m=64,t=1,p=0",
            "m=64,t=1",
            "m=64,t=1,p=1,keyid=1",
            "t=1,m=64,p=1",
            "m=064,t=1,p=1",
            "m=99999999999,t=1,p=1",
        ] {
            let encoded = format!("argon2$argon2id$v=19${params}${salt}${hash}");
            assert!(verify("x", &encoded).is_err(), "{params}");
        }
        for bad in [
            format!("argon2$argon2id$v=18$m=64,t=1,p=2${salt}${hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=2$c2FsdA${hash}"), // 4-byte salt
            format!("argon2$argon2id$v=19$m=64,t=1,p=2${salt}$AAAA"),   // 3-byte hash
            format!("argon2$argon2id$v=19$m=64,t=1,p=2${salt}=${hash}"), // padded
            format!("argon2$argon2id$v=19$m=64,t=1,p=2${salt}${}", "A".repeat(1400)),
            format!("argon2$Argon2id$v=19$m=64,t=1,p=2${salt}${hash}"),
            format!("argon2$argon2id$v=19$m=64,t=1,p=2${salt}${hash}$"),
        ] {
            assert!(verify("x", &bad).is_err(), "{bad}");
        }
    }
}
