//! `scrypt`: `scrypt$<N>$<salt>$<r>$<p>$<base64(64-byte key)>` (standard padded base64).

use super::{Algorithm, HashError, ct_eq, fields, parse_u32};
use base64::{Engine, engine::general_purpose::STANDARD};

/// Cap on `128·N·r`, the memory of one scrypt run (1 GiB).
pub const MAX_MEMORY_BYTES: u128 = 1 << 30;
/// Cap on `128·N·r·p`, the memory swept in total (4 GiB, ≈ 50× Django's default).
pub const MAX_MEMORY_WORK_BYTES: u128 = 4 << 30;
/// Cap on `p`.
pub const MAX_PARALLELISM: u32 = 255;
/// Django always derives 64 bytes. A shorter stored key must not be accepted: scrypt's output
/// ends in PBKDF2, whose shorter outputs are prefixes of longer ones, so a truncated hash would
/// still match (with less security) where Django, re-encoding at 64 bytes, rejects it.
const KEY_LEN: usize = 64;

pub(super) fn verify(password: &str, encoded: &str) -> Result<bool, HashError> {
    let malformed = || Algorithm::Scrypt.malformed();
    let [_, n, salt, r, p, hash] = fields(encoded).ok_or_else(malformed)?;
    let (Some(n), Some(r), Some(p)) = (parse_u32(n), parse_u32(r), parse_u32(p)) else {
        return Err(malformed());
    };
    let memory = 128 * u128::from(n) * u128::from(r); // < 2^71: cannot overflow
    let within_caps = n > 1
        && n.is_power_of_two()
        && (1..=MAX_PARALLELISM).contains(&p)
        && memory <= MAX_MEMORY_BYTES
        && memory * u128::from(p) <= MAX_MEMORY_WORK_BYTES;
    if !within_caps || salt.is_empty() {
        return Err(malformed());
    }
    let expected = STANDARD.decode(hash).ok().filter(|h| h.len() == KEY_LEN).ok_or_else(malformed)?;
    // log2(N) fits in u8; Params::new checks r ≥ 1 and N < 2^(16·r).
    let log_n = n.trailing_zeros() as u8;
    let params = ::scrypt::Params::new(log_n, r, p, KEY_LEN).map_err(|_| malformed())?;
    let mut out = [0u8; KEY_LEN];
    ::scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).map_err(|_| malformed())?;
    Ok(ct_eq(&out, &expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_test_suite_vector() {
        // tests/auth_tests/test_hashers.py, test_scrypt (N=2^14, r=8, p=1).
        let encoded = "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==";
        assert!(verify("lètmein", encoded).unwrap());
        assert!(!verify("lètmeinz", encoded).unwrap());
    }

    #[test]
    fn small_n_vector() {
        // Django 5.2.19 ScryptPasswordHasher().encode("lètmein", "abcdefghijklmnopqrstuv",
        // n=1024, r=8, p=2).
        let encoded = "scrypt$1024$abcdefghijklmnopqrstuv$8$2$veDcn8lvLCozYInjwRgwa/7jLpUHeuX1JPLVPIyD2LOnw0zzQVEItW1a+M72aRSSSfSZPd2L8YAvz/hkcoLVSw==";
        assert!(verify("lètmein", encoded).unwrap());
        assert!(!verify("", encoded).unwrap());
        // Each parameter is part of the hash.
        for changed in ["scrypt$2048$", "$8$1$", "$4$2$"] {
            let other = match changed {
                "scrypt$2048$" => encoded.replace("scrypt$1024$", changed),
                _ => encoded.replace("$8$2$", changed),
            };
            assert!(!verify("lètmein", &other).unwrap(), "{changed}");
        }
    }

    #[test]
    fn rejects_out_of_range_parameters() {
        let key = "A".repeat(86) + "==";
        for (n, r, p) in [
            ("0", "8", "1"),
            ("1", "8", "1"),
            ("3", "8", "1"),
            ("16383", "8", "1"),
            ("1048576", "16", "1"), // 2 GiB
            ("1048576", "8", "5"),  // 1 GiB × 5
            ("16384", "8", "256"),
            ("16384", "0", "1"),
            ("16384", "8", "0"),
            ("2", "4294967295", "1"),
            ("2147483648", "4294967295", "4294967295"),
            ("16384", "08", "1"),
            ("4294967296", "8", "1"),
        ] {
            let encoded = format!("scrypt${n}$salt${r}${p}${key}");
            assert!(verify("x", &encoded).is_err(), "{n} {r} {p}");
        }
        for bad in [
            format!("scrypt$1024$$8$1${key}"),
            format!("scrypt$1024$salt$8$1${}", &key[..86]),
            "scrypt$1024$salt$8$1$AAAA".to_owned(),
            format!("scrypt$1024$salt$8$1${}", "A".repeat(96)),
            format!("scrypt$1024$salt$8$1${key}$"),
            "scrypt$1024$salt$8$1".to_owned(),
            // Django's test_scrypt vector with its key truncated to 60 bytes.
            "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQw"
                .to_owned(),
        ] {
            assert!(verify("x", &bad).is_err(), "{bad}");
        }
    }
}
