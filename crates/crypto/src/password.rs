//! Password hashing with Argon2id (RFC 9106), stored as PHC strings.
//!
//! Verification reports when a stored hash was made with other parameters than the
//! configured ones, so the caller can re-hash at the next successful login. A dummy
//! verification of the same cost serves unknown persons and locked accounts, so response
//! time does not tell whether an account exists.
//!
//! Each thread keeps its Argon2 working memory (19 MiB at the default parameters) and
//! reuses it for the next hash: a fresh allocation per hash costs page faults and zeroing
//! (about a third fewer logins per second on two cores), and glibc's arenas kept the freed
//! blocks anyway. Callers hash on a fixed pool of threads, which bounds the total. The
//! buffer holds derived state, never the password itself; anyone who can read it can read
//! the request too.

use std::cell::RefCell;

use argon2::{Algorithm, Argon2, Block, PasswordHash, Version};
use subtle::ConstantTimeEq;

use crate::random::random_bytes;

/// Most memory a hash may use, KiB (1 GiB): more is a configuration mistake on a login
/// server, and from a stored hash a denial of service.
pub const MAX_M_KIB: u32 = 1024 * 1024;
/// Most passes a hash may use.
pub const MAX_T: u32 = 64;
/// Most lanes a hash may use.
pub const MAX_P: u32 = 64;
/// Salt length of new hashes, bytes.
const SALT_LEN: usize = 16;
/// Output length of new hashes, bytes.
const OUTPUT_LEN: usize = 32;

/// Errors of this module. None carries a password or a hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// The configured parameters are out of range.
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(String),
    /// The stored hash is not a PHC string this module can read.
    #[error("stored password hash is malformed")]
    Malformed,
    /// The stored hash uses an algorithm other than Argon2.
    #[error("stored password hash uses unsupported algorithm '{0}'")]
    Unsupported(String),
    /// The stored hash has parameters beyond this module's limits.
    #[error("stored password hash has out-of-range parameters")]
    OutOfRange,
    /// Argon2 itself failed.
    #[error("Argon2 failed: {0}")]
    Hash(String),
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes (parallelism).
    pub p: u32,
}

impl Default for Argon2Params {
    /// The OWASP Password Storage Cheat Sheet's Argon2id minimum: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Argon2Params {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        }
    }
}

impl Argon2Params {
    fn to_argon2(self) -> Result<argon2::Params, PasswordError> {
        if self.m_kib > MAX_M_KIB || self.t > MAX_T || self.p > MAX_P {
            return Err(PasswordError::InvalidParams(format!(
                "m_kib must be at most {MAX_M_KIB}, t at most {MAX_T}, p at most {MAX_P}"
            )));
        }
        argon2::Params::new(self.m_kib, self.t, self.p, Some(OUTPUT_LEN)).map_err(|e| {
            PasswordError::InvalidParams(format!(
                "{e} (t and p must be at least 1, m_kib at least 8 * p)"
            ))
        })
    }
}

/// The result of a password check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password is right.
    Valid {
        /// The stored hash should be replaced by a fresh [`PasswordHasher::hash`].
        needs_rehash: bool,
    },
    /// The password is wrong.
    Invalid,
}

/// Hashes and verifies passwords at configured Argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    /// The configured parameters, as given.
    config: Argon2Params,
    /// The same, as argon2 wants them.
    params: argon2::Params,
    /// A hash of a random password at `params`, for [`PasswordHasher::dummy_verify`].
    dummy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.config)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Validates `params` and makes the dummy hash: a PHC string at `params` with a random
    /// salt and a random output. Verifying against it costs exactly one hash, like a real
    /// one, and making it costs none (no 19 MiB allocation at start-up).
    pub fn new(params: Argon2Params) -> Result<Self, PasswordError> {
        let dummy = phc(
            params,
            &random_bytes::<SALT_LEN>(),
            &random_bytes::<OUTPUT_LEN>(),
        );
        Ok(PasswordHasher {
            config: params,
            params: params.to_argon2()?,
            dummy,
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> Argon2Params {
        self.config
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes `password` with Argon2id and a random 16-byte salt; returns the PHC string.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = random_bytes::<SALT_LEN>();
        let mut out = [0u8; OUTPUT_LEN];
        hash_into(&self.argon2(), password.as_bytes(), &salt, &mut out)?;
        Ok(phc(self.config, &salt, &out))
    }

    /// Checks `password` against the stored PHC string `phc`.
    ///
    /// `needs_rehash` is set when the stored hash is not Argon2id v19 at the configured
    /// parameters. A stored hash that cannot be read is an error, after a dummy
    /// verification so that it takes as long as a real one.
    pub fn verify(&self, password: &str, phc: &str) -> Result<Verification, PasswordError> {
        match self.check(password, phc) {
            Err(e) => {
                self.dummy_verify(password);
                Err(e)
            }
            ok => ok,
        }
    }

    fn check(&self, password: &str, phc: &str) -> Result<Verification, PasswordError> {
        let hash = PasswordHash::new(phc).map_err(|_| PasswordError::Malformed)?;
        let alg = hash.algorithm.as_str();
        if !matches!(alg, "argon2id" | "argon2i" | "argon2d") {
            return Err(PasswordError::Unsupported(alg.chars().take(32).collect()));
        }
        let stored = argon2::Params::try_from(&hash).map_err(|_| PasswordError::Malformed)?;
        if stored.m_cost() > MAX_M_KIB || stored.t_cost() > MAX_T || stored.p_cost() > MAX_P {
            return Err(PasswordError::OutOfRange);
        }
        // The stored hash's own algorithm, version and parameters are used to verify.
        if !matches_stored(password, &hash, &stored)? {
            return Ok(Verification::Invalid);
        }
        let needs_rehash = alg != "argon2id"
            || hash.version != Some(Version::V0x13.into())
            || stored.m_cost() != self.config.m_kib
            || stored.t_cost() != self.config.t
            || stored.p_cost() != self.config.p
            || hash.hash.as_ref().map(|o| o.len()) != Some(OUTPUT_LEN);
        Ok(Verification::Valid { needs_rehash })
    }

    /// Spends the time of a [`PasswordHasher::verify`] against a real hash at the current
    /// parameters, and checks nothing: for unknown persons and locked accounts.
    pub fn dummy_verify(&self, password: &str) {
        if let Ok(hash) = PasswordHash::new(&self.dummy) {
            let _ = matches_stored(password, &hash, &self.params);
        }
    }
}

/// The PHC string of an Argon2id v19 hash (salt and output in unpadded standard base64).
fn phc(params: Argon2Params, salt: &[u8], output: &[u8]) -> String {
    let b64 = data_encoding::BASE64_NOPAD;
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_kib,
        params.t,
        params.p,
        b64.encode(salt),
        b64.encode(output),
    )
}

/// Recomputes a stored hash from `password` with the hash's own algorithm, version, salt
/// and parameters, and compares the outputs in constant time.
fn matches_stored(
    password: &str,
    hash: &PasswordHash,
    params: &argon2::Params,
) -> Result<bool, PasswordError> {
    let alg = Algorithm::try_from(hash.algorithm.as_str()).map_err(|_| PasswordError::Malformed)?;
    let version =
        Version::try_from(hash.version.unwrap_or(0x13)).map_err(|_| PasswordError::Malformed)?;
    let salt = hash.salt.as_ref().ok_or(PasswordError::Malformed)?;
    let expected = hash.hash.as_ref().ok_or(PasswordError::Malformed)?;
    let expected = expected.as_bytes();
    // A PHC output is 4 to 64 bytes; the parameters' own output length must not disagree.
    let params = argon2::ParamsBuilder::new()
        .m_cost(params.m_cost())
        .t_cost(params.t_cost())
        .p_cost(params.p_cost())
        .output_len(expected.len())
        .build()
        .map_err(|_| PasswordError::Malformed)?;
    let mut out = vec![0u8; expected.len()];
    hash_into(
        &Argon2::new(alg, version, params),
        password.as_bytes(),
        salt.as_ref(),
        &mut out,
    )?;
    Ok(bool::from(out.ct_eq(expected)))
}

thread_local! {
    /// This thread's Argon2 working memory, kept between hashes (see the module docs).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Most working memory a thread keeps between hashes, in 1-KiB blocks (256 MiB).
const KEEP_MAX_BLOCKS: usize = 256 * 1024;

/// Argon2 into `out`, in this thread's kept memory, which grows to the largest hash seen
/// up to [`KEEP_MAX_BLOCKS`]; a larger one gets memory of its own for this once.
fn hash_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), PasswordError> {
    let blocks = argon2.params().block_count();
    let mut run = |memory: &mut [Block]| {
        argon2
            .hash_password_into_with_memory(password, salt, out, memory)
            .map_err(|e| PasswordError::Hash(e.to_string()))
    };
    MEMORY.with(|kept| match kept.try_borrow_mut() {
        Ok(mut kept) if blocks <= KEEP_MAX_BLOCKS => {
            if kept.len() < blocks {
                kept.resize(blocks, Block::default());
            }
            run(&mut kept[..blocks])
        }
        _ => run(&mut vec![Block::default(); blocks]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    #[test]
    fn interoperates_with_the_argon2_crates_own_phc_code() {
        let h = PasswordHasher::new(SMALL).unwrap();
        // Ours, checked by the argon2 crate's verifier.
        let ours = h.hash("ours").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"ours", &parsed).is_ok());
        assert!(
            Argon2::default()
                .verify_password(b"theirs", &parsed)
                .is_err()
        );
        // Theirs, with a 16-byte output, checked by ours; then a larger hash on the same
        // thread (the kept memory grows) and the small one again.
        let params = argon2::ParamsBuilder::new()
            .m_cost(64)
            .t_cost(1)
            .p_cost(1)
            .output_len(16)
            .build()
            .unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"theirs", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify("theirs", &theirs),
            Ok(Verification::Valid { needs_rehash: true })
        );
        let big = PasswordHasher::new(Argon2Params {
            m_kib: 512,
            t: 1,
            p: 2,
        })
        .unwrap();
        let big_phc = big.hash("big").unwrap();
        assert_eq!(
            h.verify("big", &big_phc),
            Ok(Verification::Valid { needs_rehash: true })
        );
        assert_eq!(h.verify("big?", &big_phc), Ok(Verification::Invalid));
        assert_eq!(h.verify("theirs!", &theirs), Ok(Verification::Invalid));
        assert_eq!(
            h.verify("ours", &ours),
            Ok(Verification::Valid {
                needs_rehash: false
            })
        );
    }

    const SMALL: Argon2Params = Argon2Params {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn hash_and_verify() {
        let h = PasswordHasher::new(SMALL).unwrap();
        let phc = h.hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(
            h.verify("correct horse battery staple", &phc),
            Ok(Verification::Valid {
                needs_rehash: false
            })
        );
        assert_eq!(
            h.verify("correct horse battery stapler", &phc),
            Ok(Verification::Invalid)
        );
        assert_eq!(h.verify("", &phc), Ok(Verification::Invalid));
        // Random salt: the same password hashes differently.
        assert_ne!(h.hash("x").unwrap(), h.hash("x").unwrap());
    }

    #[test]
    fn rehash_when_parameters_or_algorithm_differ() {
        let old = PasswordHasher::new(Argon2Params {
            m_kib: 32,
            t: 1,
            p: 1,
        })
        .unwrap();
        let phc = old.hash("pw").unwrap();
        let h = PasswordHasher::new(SMALL).unwrap();
        assert_eq!(
            h.verify("pw", &phc),
            Ok(Verification::Valid { needs_rehash: true })
        );
        assert_eq!(h.verify("wrong", &phc), Ok(Verification::Invalid));
        // Argon2i with the configured parameters still wants Argon2id.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            SMALL.to_argon2().unwrap(),
        )
        .hash_password_with_salt(b"pw", b"saltsaltsaltsalt")
        .unwrap()
        .to_string();
        assert!(argon2i.starts_with("$argon2i$"));
        assert_eq!(
            h.verify("pw", &argon2i),
            Ok(Verification::Valid { needs_rehash: true })
        );
    }

    #[test]
    fn known_answer_reference_implementation() {
        // Output of the reference argon2 CLI (phc-winner-argon2):
        // echo -n password | argon2 somesalt -id -t 2 -m 8 -p 1 -l 32 -e
        let phc =
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
        let h = PasswordHasher::new(SMALL).unwrap();
        assert_eq!(
            h.verify("password", phc),
            Ok(Verification::Valid { needs_rehash: true })
        );
        assert_eq!(h.verify("Password", phc), Ok(Verification::Invalid));
    }

    #[test]
    fn bad_stored_hashes_are_errors() {
        let h = PasswordHasher::new(SMALL).unwrap();
        assert_eq!(h.verify("pw", ""), Err(PasswordError::Malformed));
        assert_eq!(h.verify("pw", "not a hash"), Err(PasswordError::Malformed));
        assert_eq!(
            h.verify(
                "pw",
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
            ),
            Err(PasswordError::Malformed)
        );
        assert_eq!(
            h.verify(
                "pw",
                "$pbkdf2-sha256$i=1000$c29tZXNhbHQ$dGVzdGhhc2h0ZXN0aGFzaA"
            ),
            Err(PasswordError::Unsupported("pbkdf2-sha256".into()))
        );
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert_eq!(h.verify("pw", huge), Err(PasswordError::OutOfRange));
        let err = h.verify("secret-password", "garbage").unwrap_err();
        assert!(!err.to_string().contains("secret-password"));
    }

    #[test]
    fn params_are_validated() {
        for bad in [
            Argon2Params {
                m_kib: 7,
                t: 1,
                p: 1,
            },
            Argon2Params {
                m_kib: 64,
                t: 0,
                p: 1,
            },
            Argon2Params {
                m_kib: 64,
                t: 1,
                p: 0,
            },
            Argon2Params {
                m_kib: 64,
                t: 1,
                p: 9,
            },
            Argon2Params {
                m_kib: MAX_M_KIB + 1,
                t: 1,
                p: 1,
            },
            Argon2Params {
                m_kib: 64,
                t: MAX_T + 1,
                p: 1,
            },
        ] {
            assert!(
                matches!(
                    PasswordHasher::new(bad),
                    Err(PasswordError::InvalidParams(_))
                ),
                "{bad:?}"
            );
        }
        assert!(
            PasswordHasher::new(Argon2Params {
                m_kib: 8,
                t: 1,
                p: 1
            })
            .is_ok()
        );
    }

    #[test]
    fn params_serde_and_default() {
        assert_eq!(
            Argon2Params::default(),
            Argon2Params {
                m_kib: 19456,
                t: 2,
                p: 1
            }
        );
        let p: Argon2Params = serde_json::from_str(r#"{"m_kib": 65536}"#).unwrap();
        assert_eq!(
            p,
            Argon2Params {
                m_kib: 65536,
                t: 2,
                p: 1
            }
        );
        assert!(serde_json::from_str::<Argon2Params>(r#"{"m": 1}"#).is_err());
    }

    #[test]
    fn debug_shows_no_hash() {
        let h = PasswordHasher::new(SMALL).unwrap();
        let dbg = format!("{h:?}");
        assert!(!dbg.contains("argon2id"), "{dbg}");
        assert!(dbg.contains("m_kib: 64"), "{dbg}");
    }

    #[test]
    fn default_params_and_dummy_has_the_same_work_factor() {
        // Equal cost is shown structurally (no timing in tests): the dummy is a PHC string
        // at exactly the configured parameters and output length, and it verifies nothing.
        let h = PasswordHasher::new(Argon2Params::default()).unwrap();
        let phc = h.hash("pw").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            h.dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            h.dummy
        );
        let real = PasswordHash::new(&phc).unwrap();
        let dummy = PasswordHash::new(&h.dummy).unwrap();
        assert_eq!(real.hash.map(|o| o.len()), dummy.hash.map(|o| o.len()));
        assert_eq!(real.salt.map(|s| s.len()), dummy.salt.map(|s| s.len()));
        assert_eq!(h.verify("pw", &h.dummy), Ok(Verification::Invalid));
        assert_eq!(
            h.verify("pw", &phc),
            Ok(Verification::Valid {
                needs_rehash: false
            })
        );
        h.dummy_verify("pw");
    }
}
