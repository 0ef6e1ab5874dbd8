//! Legacy digests: `md5$<salt>$<hex>`, `sha1$<salt>$<hex>` (hex digest of salt + password), and
//! the unsalted `<32 hex>` / `md5$$<32 hex>` (MD5) and `sha1$$<40 hex>` (SHA-1) forms.
//! Django compares whole hex strings, so a non-hex or upper-case value simply never matches.

use super::{Algorithm, HashError, ct_eq, fields};
use ::md5::Md5;
use sha1::{Digest, Sha1};

/// `MD5PasswordHasher` / `SHA1PasswordHasher`: an empty salt is an error, as in Django.
pub(super) fn salted<D: Digest>(algorithm: Algorithm, password: &str, encoded: &str) -> Result<bool, HashError> {
    let [_, salt, hash] =
        fields(encoded).filter(|[_, salt, _]| !salt.is_empty()).ok_or_else(|| algorithm.malformed())?;
    let computed = hex::encode(D::new().chain_update(salt).chain_update(password).finalize());
    Ok(ct_eq(computed.as_bytes(), hash.as_bytes()))
}

/// `UnsaltedMD5PasswordHasher.verify`.
pub(super) fn unsalted_md5(password: &str, encoded: &str) -> bool {
    let hash = match encoded.chars().count() {
        37 => encoded.strip_prefix("md5$$").unwrap_or(encoded),
        _ => encoded,
    };
    ct_eq(hex::encode(Md5::digest(password)).as_bytes(), hash.as_bytes())
}

/// `UnsaltedSHA1PasswordHasher.verify`.
pub(super) fn unsalted_sha1(password: &str, encoded: &str) -> bool {
    let computed = format!("sha1$${}", hex::encode(Sha1::digest(password)));
    ct_eq(computed.as_bytes(), encoded.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_test_suite_vectors() {
        // tests/auth_tests/test_hashers.py (test_md5, test_sha1), password "lètmein".
        let md5 = "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3";
        let sha1 = "sha1$seasalt$cff36ea83f5706ce9aa7454e63e431fc726b2dc8";
        assert!(salted::<Md5>(Algorithm::Md5, "lètmein", md5).unwrap());
        assert!(!salted::<Md5>(Algorithm::Md5, "lètmeinz", md5).unwrap());
        assert!(salted::<Sha1>(Algorithm::Sha1, "lètmein", sha1).unwrap());
        assert!(!salted::<Sha1>(Algorithm::Sha1, "lètmeinz", sha1).unwrap());
        // test_unsalted_md5, test_unsalted_sha1.
        for md5 in ["88a434c88cca4e900f7874cd98123f43", "md5$$88a434c88cca4e900f7874cd98123f43"] {
            assert!(unsalted_md5("lètmein", md5));
            assert!(!unsalted_md5("lètmeinz", md5));
        }
        let sha1 = "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b";
        assert!(unsalted_sha1("lètmein", sha1));
        assert!(!unsalted_sha1("lètmeinz", sha1));
    }

    #[test]
    fn python_hashlib_vectors() {
        // Django 5.2.19 MD5PasswordHasher().encode("lètmein", "abcdefghijklmnopqrstuv") and
        // "sha1$<salt>$" + hashlib.sha1((salt + "lètmein").encode()).hexdigest().
        let md5 = "md5$abcdefghijklmnopqrstuv$1bbd48610b26095c29bc4284f4bb0c52";
        let sha1 = "sha1$abcdefghijklmnopqrstuv$03d1a5cfe4e385023d5b4be748a9e7a669448253";
        assert!(salted::<Md5>(Algorithm::Md5, "lètmein", md5).unwrap());
        assert!(salted::<Sha1>(Algorithm::Sha1, "lètmein", sha1).unwrap());
    }

    #[test]
    fn exact_string_comparison() {
        let upper = "md5$seasalt$3F86D0D3D465B7B458C231BF3555C0E3";
        assert!(!salted::<Md5>(Algorithm::Md5, "lètmein", upper).unwrap());
        let extra = "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3$";
        assert!(!salted::<Md5>(Algorithm::Md5, "lètmein", extra).unwrap());
        assert!(!unsalted_md5("lètmein", "unsalted_md5$88a434c88cca4e900f7874cd98123f43"));
        assert!(!unsalted_sha1("lètmein", "unsalted_sha1$6d138ca3ae545631b3abd71a4f076ce759c5700b"));
        assert!(salted::<Md5>(Algorithm::Md5, "x", "md5$$abc").is_err());
        assert!(salted::<Sha1>(Algorithm::Sha1, "x", "sha1$salt").is_err());
    }
}
