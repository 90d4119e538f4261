//! Small primitives the rest of segl builds on: random bytes, tokens and digits from a
//! CSPRNG, SHA-256, constant-time comparison, and the PKCE S256 check (RFC 7636).

use data_encoding::BASE64URL_NOPAD;
use rand::{Rng, RngExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `N` random bytes from the thread-local CSPRNG (ChaCha, seeded and reseeded by the OS).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A random token of `bytes` random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; bytes]);
    rand::rng().fill_bytes(&mut buf);
    BASE64URL_NOPAD.encode(&buf)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of `data`, base64url without padding.
pub fn sha256_b64url(data: &[u8]) -> String {
    BASE64URL_NOPAD.encode(&sha256(data))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// RFC 7636 S256: does `BASE64URL(SHA256(verifier)) == challenge`?
///
/// A verifier that is not 43 to 128 characters of the unreserved set
/// (`A-Z a-z 0-9 - . _ ~`) never matches, as section 4.1 requires.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && ct_eq(
            sha256_b64url(verifier.as_bytes()).as_bytes(),
            challenge.as_bytes(),
        )
}

/// `n` characters drawn uniformly (no modulo bias) from an ASCII `alphabet`.
pub fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// `n` uniformly random decimal digits (e.g. a one-time code sent by mail).
pub fn random_digits(n: usize) -> String {
    random_from(b"0123456789", n)
}

/// A new app activation code, as printed (`ABCD-EFGH-JKMN-PQRS`; see
/// `segl_core::app::normalize_activation_code` for the form that is hashed).
pub fn activation_code() -> String {
    use segl_core::app::{ACTIVATION_CODE_ALPHABET, ACTIVATION_CODE_LEN, group_activation_code};
    group_activation_code(&random_from(ACTIVATION_CODE_ALPHABET, ACTIVATION_CODE_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_codes_are_valid_and_differ() {
        let codes: Vec<String> = (0..200).map(|_| activation_code()).collect();
        for c in &codes {
            assert_eq!(c.len(), 19, "{c}");
            assert!(
                segl_core::app::normalize_activation_code(c).is_some(),
                "{c}"
            );
        }
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_s256_matches(verifier, ""));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
    }

    #[test]
    fn pkce_refuses_malformed_verifiers() {
        // Short, long, and characters outside the unreserved set never match,
        // even when the challenge is computed from them.
        for v in [
            "a".repeat(42),
            "a".repeat(129),
            format!("{}+", "a".repeat(42)),
            format!("{} ", "a".repeat(42)),
        ] {
            let c = sha256_b64url(v.as_bytes());
            assert!(!pkce_s256_matches(&v, &c), "{v:?}");
        }
        for v in ["a".repeat(43), "~._-".repeat(32)] {
            let c = sha256_b64url(v.as_bytes());
            assert!(pkce_s256_matches(&v, &c), "{v:?}");
        }
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        assert_eq!(
            data_encoding::HEXLOWER.encode(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_b64url(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn tokens_and_bytes_are_random_and_sized() {
        let a = random_token(32);
        let b = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(random_token(0), "");
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }

    #[test]
    fn digits_are_digits_and_roughly_uniform() {
        assert_eq!(random_digits(0), "");
        let d = random_digits(10_000);
        assert_eq!(d.len(), 10_000);
        let mut counts = [0usize; 10];
        for b in d.bytes() {
            assert!(b.is_ascii_digit());
            counts[usize::from(b - b'0')] += 1;
        }
        // Expected 1000 each; 800 is more than six standard deviations away.
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
