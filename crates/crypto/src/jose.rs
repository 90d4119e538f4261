//! Token-signing keys of the OpenID provider, and JWS verification.
//!
//! [`KeyRing`] keeps ES256 and RS256 keys as PKCS#8 files (mode 0600) in one directory,
//! named `<alg>-<unix-ts>-<kid>.pk8`; the newest key of each algorithm signs, all are
//! published in the JWKS so tokens issued before a rotation still verify. The kid is the
//! RFC 7638 JWK thumbprint. Signing and verification use aws-lc-rs.
//!
//! [`verify_client_assertion`] checks a `private_key_jwt` client assertion (RFC 7523,
//! OpenID Connect Core section 9) against the client's registered JWKS.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey,
};
use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::seal::{PrivateReadError, create_private_dir, read_private, write_new_private};

/// Longest compact JWS accepted, bytes.
pub const MAX_JWS_LEN: usize = 64 * 1024;
/// How far in the future a client assertion's `exp` may be, seconds (before leeway).
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// Allowance for clock differences with clients, seconds.
pub const CLOCK_LEEWAY_SECS: i64 = 60;
/// Longest `jti` accepted, characters (the caller stores it against replay).
pub const MAX_JTI_LEN: usize = 256;
/// Most keys of a client JWKS considered.
const MAX_CLIENT_KEYS: usize = 32;

/// Errors of this module. None carries key material or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Reading or writing the key directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A key file may be read or written by others than its owner.
    #[error("key file {} has mode {mode:o}; it must be private to its owner (chmod 600)", path.display())]
    InsecureMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file's content is not what its name says.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Generating a key failed.
    #[error("key generation failed")]
    KeyGen,
    /// There is no signing key for the algorithm.
    #[error("no {0} signing key")]
    NoKey(JwsAlg),
    /// The signature operation failed.
    #[error("signing failed")]
    Sign,
    /// Claims to sign are not a JSON object.
    #[error("JWT claims must be a JSON object")]
    ClaimsNotObject,
    /// The token is not a well-formed compact JWS.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// The token's `alg` is refused (`none`, HMAC) or unknown.
    #[error("JWS algorithm {0:?} is not accepted")]
    UnsupportedAlg(String),
    /// No key of the right type matches the token's `kid` and `alg`.
    #[error("no matching key for the JWS (kid/alg)")]
    UnknownKey,
    /// The signature does not verify.
    #[error("JWS signature does not verify")]
    BadSignature,
    /// `exp` is missing or in the past.
    #[error("token expired (or has no exp)")]
    Expired,
    /// `exp` is further in the future than a client assertion may be.
    #[error("client assertion exp is more than {MAX_ASSERTION_LIFETIME_SECS} s ahead")]
    ExpTooFar,
    /// `nbf` or `iat` is in the future.
    #[error("token is not valid yet (nbf/iat in the future)")]
    NotYetValid,
    /// A required claim is missing or wrong.
    #[error("claim check failed: {0}")]
    Claim(&'static str),
    /// The `aud` claim names none of the accepted audiences.
    #[error("aud does not contain this server")]
    Audience,
    /// The client's JWKS is not `{"keys": [...]}`.
    #[error("client JWKS is malformed: {0}")]
    Jwks(&'static str),
}

/// The algorithms our own tokens are signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JwsAlg {
    /// ECDSA P-256 with SHA-256 (the default).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (for relying parties that only do RSA).
    RS256,
}

impl JwsAlg {
    /// `ES256` or `RS256`.
    pub fn as_str(&self) -> &'static str {
        match self {
            JwsAlg::ES256 => "ES256",
            JwsAlg::RS256 => "RS256",
        }
    }

    /// File-name prefix of its keys.
    fn file_prefix(self) -> &'static str {
        match self {
            JwsAlg::ES256 => "es256",
            JwsAlg::RS256 => "rs256",
        }
    }

    const ALL: [JwsAlg; 2] = [JwsAlg::ES256, JwsAlg::RS256];
}

impl std::fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlg {
    type Err = JoseError;

    /// `ES256` or `RS256`, in any case.
    fn from_str(s: &str) -> Result<Self, JoseError> {
        match s.to_ascii_uppercase().as_str() {
            "ES256" => Ok(JwsAlg::ES256),
            "RS256" => Ok(JwsAlg::RS256),
            _ => Err(JoseError::UnsupportedAlg(s.chars().take(20).collect())),
        }
    }
}

/// A public key usable for JWS verification.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PublicKey {
    /// P-256 point, uncompressed (`04 || x || y`).
    P256(Vec<u8>),
    /// P-384 point, uncompressed.
    P384(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Ed25519 public key.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// Parses a public JWK; `None` for key types and curves not supported.
    fn from_jwk(jwk: &Map<String, Value>) -> Option<PublicKey> {
        let field = |name: &str| {
            jwk.get(name)?
                .as_str()
                .and_then(|s| BASE64URL_NOPAD.decode(s.as_bytes()).ok())
        };
        let point = |len: usize| {
            let (x, y) = (field("x")?, field("y")?);
            (x.len() == len && y.len() == len).then(|| [&[4u8][..], &x, &y].concat())
        };
        match (
            jwk.get("kty")?.as_str()?,
            jwk.get("crv").and_then(Value::as_str),
        ) {
            ("EC", Some("P-256")) => Some(PublicKey::P256(point(32)?)),
            ("EC", Some("P-384")) => Some(PublicKey::P384(point(48)?)),
            ("RSA", _) => Some(PublicKey::Rsa {
                n: field("n")?,
                e: field("e")?,
            }),
            ("OKP", Some("Ed25519")) => {
                field("x").filter(|x| x.len() == 32).map(PublicKey::Ed25519)
            }
            _ => None,
        }
    }

    /// Verifies `signature` over `msg` with the JWS algorithm `alg`. Returns `None` if the
    /// key cannot be used with `alg`.
    fn verify(&self, alg: &str, msg: &[u8], signature: &[u8]) -> Option<bool> {
        let rsa = |params: &'static sig::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, signature)
                .is_ok()
        };
        Some(match (alg, self) {
            ("ES256", PublicKey::P256(p)) => {
                UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, p)
                    .verify(msg, signature)
                    .is_ok()
            }
            ("ES384", PublicKey::P384(p)) => {
                UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, p)
                    .verify(msg, signature)
                    .is_ok()
            }
            ("RS256", PublicKey::Rsa { n, e }) => rsa(&sig::RSA_PKCS1_2048_8192_SHA256, n, e),
            ("RS384", PublicKey::Rsa { n, e }) => rsa(&sig::RSA_PKCS1_2048_8192_SHA384, n, e),
            ("RS512", PublicKey::Rsa { n, e }) => rsa(&sig::RSA_PKCS1_2048_8192_SHA512, n, e),
            ("PS256", PublicKey::Rsa { n, e }) => rsa(&sig::RSA_PSS_2048_8192_SHA256, n, e),
            ("PS384", PublicKey::Rsa { n, e }) => rsa(&sig::RSA_PSS_2048_8192_SHA384, n, e),
            ("PS512", PublicKey::Rsa { n, e }) => rsa(&sig::RSA_PSS_2048_8192_SHA512, n, e),
            ("EdDSA", PublicKey::Ed25519(x)) => UnparsedPublicKey::new(&sig::ED25519, x)
                .verify(msg, signature)
                .is_ok(),
            _ => return None,
        })
    }
}

/// Asymmetric JWS algorithms accepted from clients.
const CLIENT_ALGS: [&str; 9] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// One of our signing keys.
struct OwnKey {
    alg: JwsAlg,
    kid: String,
    /// Creation time from the file name; the newest key of an algorithm signs.
    created: i64,
    signer: Signer,
    public: PublicKey,
    /// The published JWK (with kid, use, alg).
    jwk: Value,
}

impl OwnKey {
    fn from_pkcs8(alg: JwsAlg, der: &[u8], created: i64) -> Option<OwnKey> {
        let b64 = |b: &[u8]| BASE64URL_NOPAD.encode(b);
        let (signer, public, members) = match alg {
            JwsAlg::ES256 => {
                let kp =
                    EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?;
                let point = kp.public_key().as_ref().to_vec();
                if point.len() != 65 || point[0] != 4 {
                    return None;
                }
                let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
                // RFC 7638: required members only, in lexicographic order, no whitespace.
                let thumb_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                (
                    Signer::Ec(kp),
                    PublicKey::P256(point),
                    (
                        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                        thumb_input,
                    ),
                )
            }
            JwsAlg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).ok()?;
                let n = kp
                    .public_key()
                    .modulus()
                    .big_endian_without_leading_zero()
                    .to_vec();
                let e = kp
                    .public_key()
                    .exponent()
                    .big_endian_without_leading_zero()
                    .to_vec();
                if n.len() < 256 {
                    return None; // under 2048 bits
                }
                let (bn, be) = (b64(&n), b64(&e));
                let thumb_input = format!(r#"{{"e":"{be}","kty":"RSA","n":"{bn}"}}"#);
                (
                    Signer::Rsa(kp),
                    PublicKey::Rsa { n, e },
                    (json!({"kty": "RSA", "n": bn, "e": be}), thumb_input),
                )
            }
        };
        let (mut jwk, thumb_input) = members;
        let kid = crate::random::sha256_b64url(thumb_input.as_bytes());
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), json!(kid));
            o.insert("use".into(), json!("sig"));
            o.insert("alg".into(), json!(alg.as_str()));
        }
        Some(OwnKey {
            alg,
            kid,
            created,
            signer,
            public,
            jwk,
        })
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ec(kp) => kp
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JoseError::Sign),
            Signer::Rsa(kp) => {
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                    .map_err(|_| JoseError::Sign)?;
                Ok(out)
            }
        }
    }
}

/// A key file name: `<alg>-<unix-ts>-<kid>.pk8` (or `.pem`).
struct KeyFileName {
    alg: JwsAlg,
    created: i64,
    kid: String,
    pem: bool,
}

impl KeyFileName {
    fn parse(name: &str) -> Option<KeyFileName> {
        let (stem, pem) = match (name.strip_suffix(".pk8"), name.strip_suffix(".pem")) {
            (Some(s), _) => (s, false),
            (_, Some(s)) => (s, true),
            _ => return None,
        };
        let mut parts = stem.splitn(3, '-');
        let alg = match parts.next()? {
            "es256" => JwsAlg::ES256,
            "rs256" => JwsAlg::RS256,
            _ => return None,
        };
        let created = parts.next()?.parse().ok()?;
        let kid = parts.next().filter(|k| !k.is_empty())?.to_string();
        Some(KeyFileName {
            alg,
            created,
            kid,
            pem,
        })
    }
}

/// The provider's token-signing keys. Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    /// All keys, sorted by algorithm, newest first.
    keys: Arc<Vec<OwnKey>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| format!("{} {}", k.alg, k.kid)))
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JoseError + '_ {
    move |source| JoseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Names of the key files in `dir`; other files (e.g. the seal key) are ignored.
fn key_files(dir: &Path) -> Result<Vec<(PathBuf, KeyFileName)>, JoseError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(parsed) = entry.file_name().to_str().and_then(KeyFileName::parse) {
            out.push((entry.path(), parsed));
        }
    }
    Ok(out)
}

/// Reads PKCS#8 DER from a `.pk8` file, or from the `PRIVATE KEY` block of a `.pem`.
fn read_pkcs8(path: &Path, pem: bool) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let bytes = read_private(path).map_err(|e| match e {
        PrivateReadError::Mode(mode) => JoseError::InsecureMode {
            path: path.to_path_buf(),
            mode,
        },
        PrivateReadError::Io(source) => JoseError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if !pem {
        return Ok(bytes);
    }
    let bad = || JoseError::KeyFile {
        path: path.to_path_buf(),
        reason: "not a PEM PRIVATE KEY (PKCS#8)".into(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let body = text
        .split_once("-----BEGIN PRIVATE KEY-----")
        .and_then(|(_, rest)| rest.split_once("-----END PRIVATE KEY-----"))
        .map(|(body, _)| body)
        .ok_or_else(bad)?;
    let b64: Zeroizing<Vec<u8>> =
        Zeroizing::new(body.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
    data_encoding::BASE64
        .decode(&b64)
        .map(Zeroizing::new)
        .map_err(|_| bad())
}

/// Generates a key for `alg`, writes it to `dir` and returns it. Its timestamp is after
/// every existing key's, so it is the newest even within the same second.
fn create_key(dir: &Path, alg: JwsAlg) -> Result<OwnKey, JoseError> {
    let latest = key_files(dir)?
        .iter()
        .map(|(_, f)| f.created)
        .max()
        .unwrap_or(i64::MIN);
    let created = now_unix().max(latest.saturating_add(1));
    let der: Zeroizing<Vec<u8>> = match alg {
        JwsAlg::ES256 => {
            let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| JoseError::KeyGen)?;
            Zeroizing::new(
                kp.to_pkcs8v1()
                    .map_err(|_| JoseError::KeyGen)?
                    .as_ref()
                    .to_vec(),
            )
        }
        JwsAlg::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| JoseError::KeyGen)?;
            Zeroizing::new(
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp)
                    .map_err(|_| JoseError::KeyGen)?
                    .as_ref()
                    .to_vec(),
            )
        }
    };
    let key = OwnKey::from_pkcs8(alg, &der, created).ok_or(JoseError::KeyGen)?;
    let path = dir.join(format!("{}-{}-{}.pk8", alg.file_prefix(), created, key.kid));
    if !write_new_private(&path, &der).map_err(io_err(&path))? {
        return Err(JoseError::Io {
            path,
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    Ok(key)
}

impl KeyRing {
    /// Loads every key in `dir`, creating the directory (mode 0700) and an ES256 and an
    /// RS256 (2048-bit) key if there is none for that algorithm. A key file that does not
    /// parse, whose kid does not match its name, or that others may read, is an error.
    pub fn load_or_create(dir: &Path) -> Result<KeyRing, JoseError> {
        create_private_dir(dir).map_err(io_err(dir))?;
        let mut keys = Vec::new();
        for (path, name) in key_files(dir)? {
            let der = read_pkcs8(&path, name.pem)?;
            let key = OwnKey::from_pkcs8(name.alg, &der, name.created).ok_or_else(|| {
                JoseError::KeyFile {
                    path: path.clone(),
                    reason: format!("not a PKCS#8 {} private key", name.alg),
                }
            })?;
            if key.kid != name.kid {
                return Err(JoseError::KeyFile {
                    path,
                    reason: "the kid in the file name does not match the key".into(),
                });
            }
            keys.push(key);
        }
        for alg in JwsAlg::ALL {
            if !keys.iter().any(|k| k.alg == alg) {
                keys.push(create_key(dir, alg)?);
            }
        }
        keys.sort_by(|a, b| {
            a.alg
                .as_str()
                .cmp(b.alg.as_str())
                .then(b.created.cmp(&a.created))
        });
        Ok(KeyRing {
            keys: Arc::new(keys),
        })
    }

    /// Adds a new key for `alg` to `dir` and returns its kid. Older keys stay (and stay
    /// published), so tokens they signed still verify; a [`KeyRing`] loaded afterwards
    /// signs with the new key.
    pub fn rotate(dir: &Path, alg: JwsAlg) -> Result<String, JoseError> {
        create_private_dir(dir).map_err(io_err(dir))?;
        Ok(create_key(dir, alg)?.kid)
    }

    fn current(&self, alg: JwsAlg) -> Option<&OwnKey> {
        // Sorted newest first within an algorithm.
        self.keys.iter().find(|k| k.alg == alg)
    }

    /// The kid of the key that signs for `alg`.
    pub fn current_kid(&self, alg: JwsAlg) -> Option<&str> {
        self.current(alg).map(|k| k.kid.as_str())
    }

    /// Signs `claims` (a JSON object) with the newest key of `alg`; returns a compact JWS
    /// whose header has `alg`, `kid` and, if given, `typ`.
    pub fn sign(
        &self,
        alg: JwsAlg,
        header_typ: Option<&str>,
        claims: &Value,
    ) -> Result<String, JoseError> {
        if !claims.is_object() {
            return Err(JoseError::ClaimsNotObject);
        }
        let key = self.current(alg).ok_or(JoseError::NoKey(alg))?;
        let mut header = json!({"alg": alg.as_str(), "kid": key.kid});
        if let (Some(typ), Some(h)) = (header_typ, header.as_object_mut()) {
            h.insert("typ".into(), json!(typ));
        }
        let mut out = b64_json(&header);
        out.push('.');
        out.push_str(&b64_json(claims));
        let signature = key.sign(out.as_bytes())?;
        out.push('.');
        out.push_str(&BASE64URL_NOPAD.encode(&signature));
        Ok(out)
    }

    /// The public keys as a JWK Set: `{"keys": [{kty, kid, use, alg, crv/x/y | n/e}]}`.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    /// Verifies a JWS signed by one of our keys (e.g. an `id_token_hint`) and returns its
    /// claims. `exp` is required and checked against the system clock unless
    /// `allow_expired`.
    pub fn verify_own(&self, token: &str, allow_expired: bool) -> Result<Value, JoseError> {
        let jws = Compact::parse(token)?;
        let alg: JwsAlg = jws.alg.parse()?;
        let kid = jws
            .header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(JoseError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.alg == alg && k.kid == kid)
            .ok_or(JoseError::UnknownKey)?;
        if key
            .public
            .verify(&jws.alg, jws.signing_input.as_bytes(), &jws.signature)
            != Some(true)
        {
            return Err(JoseError::BadSignature);
        }
        if !allow_expired {
            match number_claim(&jws.claims, "exp")? {
                Some(exp) if exp > now_unix() => {}
                _ => return Err(JoseError::Expired),
            }
        }
        Ok(Value::Object(jws.claims))
    }
}

fn b64_json(v: &Value) -> String {
    BASE64URL_NOPAD.encode(v.to_string().as_bytes())
}

/// A compact JWS, decoded but not yet verified.
struct Compact<'a> {
    header: Map<String, Value>,
    alg: String,
    claims: Map<String, Value>,
    /// `header.payload` as in the token.
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> Compact<'a> {
    fn parse(token: &'a str) -> Result<Compact<'a>, JoseError> {
        if token.len() > MAX_JWS_LEN {
            return Err(JoseError::Malformed("too long"));
        }
        let (signing_input, sig_b64) = token
            .rsplit_once('.')
            .ok_or(JoseError::Malformed("not three parts"))?;
        let (h_b64, p_b64) = signing_input
            .split_once('.')
            .ok_or(JoseError::Malformed("not three parts"))?;
        if p_b64.contains('.') {
            return Err(JoseError::Malformed("not three parts"));
        }
        let decode = |s: &str, what| {
            BASE64URL_NOPAD
                .decode(s.as_bytes())
                .map_err(|_| JoseError::Malformed(what))
        };
        let object = |bytes: Vec<u8>, what| match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(JoseError::Malformed(what)),
        };
        let header = object(
            decode(h_b64, "header is not base64url")?,
            "header is not a JSON object",
        )?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JoseError::Malformed("no alg"))?
            .to_string();
        if header.contains_key("crit") {
            return Err(JoseError::Malformed("crit extensions are not supported"));
        }
        // Refuse unsigned and symmetric tokens before anything else is looked at.
        if alg.eq_ignore_ascii_case("none")
            || alg.starts_with("HS")
            || !CLIENT_ALGS.contains(&alg.as_str())
        {
            return Err(JoseError::UnsupportedAlg(alg.chars().take(20).collect()));
        }
        let claims = object(
            decode(p_b64, "payload is not base64url")?,
            "payload is not a JSON object",
        )?;
        let signature = decode(sig_b64, "signature is not base64url")?;
        Ok(Compact {
            header,
            alg,
            claims,
            signing_input,
            signature,
        })
    }
}

/// A numeric date claim (`exp`, `nbf`, `iat`), floored; `None` if absent.
fn number_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JoseError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(JoseError::Claim(name)),
    }
}

/// What a verified client assertion leaves for the caller's replay check: remember `jti`
/// until `exp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAssertion {
    /// The assertion's unique id.
    pub jti: String,
    /// Its expiry, unix seconds.
    pub exp: i64,
}

/// Verifies a `private_key_jwt` client assertion (RFC 7523, OIDC Core section 9) against
/// the client's registered JWKS (`{"keys": [...]}`).
///
/// Checks: the signature (ES256, ES384, RS256/384/512, PS256/384/512, EdDSA with
/// Ed25519; `none` and HMAC are refused) with a key matching the header's `kid` and `alg`;
/// `iss == sub == client_id`; `aud` contains one of `audiences`; `exp > now` and at most
/// [`MAX_ASSERTION_LIFETIME_SECS`] + [`CLOCK_LEEWAY_SECS`] ahead; `nbf` and `iat` not in the
/// future (with leeway); `jti` present.
pub fn verify_client_assertion(
    jwt: &str,
    client_jwks: &Value,
    client_id: &str,
    audiences: &[String],
    now: i64,
) -> Result<ClientAssertion, JoseError> {
    let jws = Compact::parse(jwt)?;
    let keys = client_jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JoseError::Jwks("no \"keys\" array"))?;
    let kid = jws.header.get("kid").and_then(Value::as_str);
    let mut tried = false;
    let mut verified = false;
    for jwk in keys
        .iter()
        .take(MAX_CLIENT_KEYS)
        .filter_map(Value::as_object)
    {
        let str_of = |name| jwk.get(name).and_then(Value::as_str);
        // A kid on both sides must match; so must an alg, and use must allow signing.
        if kid.zip(str_of("kid")).is_some_and(|(a, b)| a != b)
            || str_of("alg").is_some_and(|a| a != jws.alg)
            || str_of("use").is_some_and(|u| u != "sig")
        {
            continue;
        }
        let Some(key) = PublicKey::from_jwk(jwk) else {
            continue;
        };
        if let Some(ok) = key.verify(&jws.alg, jws.signing_input.as_bytes(), &jws.signature) {
            tried = true;
            if ok {
                verified = true;
                break;
            }
        }
    }
    if !tried {
        return Err(JoseError::UnknownKey);
    }
    if !verified {
        return Err(JoseError::BadSignature);
    }

    let c = &jws.claims;
    let str_claim = |name| c.get(name).and_then(Value::as_str);
    if str_claim("iss") != Some(client_id) {
        return Err(JoseError::Claim("iss must be the client_id"));
    }
    if str_claim("sub") != Some(client_id) {
        return Err(JoseError::Claim("sub must be the client_id"));
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(JoseError::Audience);
    }
    let exp = number_claim(c, "exp")?.ok_or(JoseError::Expired)?;
    if exp <= now {
        return Err(JoseError::Expired);
    }
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME_SECS + CLOCK_LEEWAY_SECS) {
        return Err(JoseError::ExpTooFar);
    }
    for name in ["nbf", "iat"] {
        if number_claim(c, name)?.is_some_and(|t| t > now.saturating_add(CLOCK_LEEWAY_SECS)) {
            return Err(JoseError::NotYetValid);
        }
    }
    let jti = str_claim("jti")
        .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_LEN)
        .ok_or(JoseError::Claim(
            "jti must be present (1 to 256 characters)",
        ))?;
    Ok(ClientAssertion {
        jti: jti.to_string(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::Ed25519KeyPair;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::OnceLock;

    /// One key directory for the tests that only read (RSA generation is slow-ish).
    fn shared() -> &'static (tempfile::TempDir, KeyRing) {
        static RING: OnceLock<(tempfile::TempDir, KeyRing)> = OnceLock::new();
        RING.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let ring = KeyRing::load_or_create(&dir.path().join("keys")).unwrap();
            (dir, ring)
        })
    }

    fn decode_with_jsonwebtoken(token: &str, jwk: &Value, alg: jsonwebtoken::Algorithm) -> Value {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .unwrap()
            .claims
    }

    fn header_of(token: &str) -> Value {
        let h = token.split('.').next().unwrap();
        serde_json::from_slice(&BASE64URL_NOPAD.decode(h.as_bytes()).unwrap()).unwrap()
    }

    fn jwk_for<'a>(ring: &'a KeyRing, kid: &str) -> &'a Value {
        ring.keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| &k.jwk)
            .unwrap()
    }

    #[test]
    fn keyring_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<KeyRing>();
    }

    #[test]
    fn sign_and_verify_both_algorithms() {
        let (_, ring) = shared();
        let exp = now_unix() + 600;
        for (alg, jwt_alg) in [
            (JwsAlg::ES256, jsonwebtoken::Algorithm::ES256),
            (JwsAlg::RS256, jsonwebtoken::Algorithm::RS256),
        ] {
            let claims = json!({"sub": "abc", "exp": exp, "name": "Kari Nordmann"});
            let token = ring.sign(alg, Some("JWT"), &claims).unwrap();
            let h = header_of(&token);
            assert_eq!(h["alg"], alg.as_str());
            assert_eq!(h["typ"], "JWT");
            let kid = h["kid"].as_str().unwrap();
            assert_eq!(Some(kid), ring.current_kid(alg));
            assert_eq!(ring.verify_own(&token, false).unwrap(), claims);
            // An independent implementation, given only the published JWK, agrees.
            assert_eq!(
                decode_with_jsonwebtoken(&token, jwk_for(ring, kid), jwt_alg),
                claims
            );
            let no_typ = ring.sign(alg, None, &claims).unwrap();
            assert!(header_of(&no_typ).get("typ").is_none());
        }
    }

    #[test]
    fn jwks_publishes_both_keys_with_thumbprint_kids() {
        let (_, ring) = shared();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for k in keys {
            assert_eq!(k["use"], "sig");
            assert!(k.get("d").is_none() && k.get("p").is_none());
            let thumb = match k["kty"].as_str().unwrap() {
                "EC" => {
                    assert_eq!(k["alg"], "ES256");
                    assert_eq!(k["crv"], "P-256");
                    assert_eq!(
                        BASE64URL_NOPAD
                            .decode(k["x"].as_str().unwrap().as_bytes())
                            .unwrap()
                            .len(),
                        32
                    );
                    assert_eq!(
                        BASE64URL_NOPAD
                            .decode(k["y"].as_str().unwrap().as_bytes())
                            .unwrap()
                            .len(),
                        32
                    );
                    json!({"crv": k["crv"], "kty": "EC", "x": k["x"], "y": k["y"]})
                }
                "RSA" => {
                    assert_eq!(k["alg"], "RS256");
                    assert_eq!(
                        BASE64URL_NOPAD
                            .decode(k["n"].as_str().unwrap().as_bytes())
                            .unwrap()
                            .len(),
                        256
                    );
                    assert_eq!(k["e"], "AQAB");
                    json!({"e": k["e"], "kty": "RSA", "n": k["n"]})
                }
                other => panic!("{other}"),
            };
            // serde_json's maps are sorted, so to_string() is the RFC 7638 input.
            assert_eq!(
                k["kid"],
                crate::random::sha256_b64url(thumb.to_string().as_bytes())
            );
            // The coordinates are the public key itself: verify with them alone.
            let pk = PublicKey::from_jwk(k.as_object().unwrap()).unwrap();
            let alg = k["alg"].as_str().unwrap();
            let token = ring
                .sign(alg.parse().unwrap(), None, &json!({"a": 1}))
                .unwrap();
            let (input, s) = token.rsplit_once('.').unwrap();
            assert_eq!(
                pk.verify(
                    alg,
                    input.as_bytes(),
                    &BASE64URL_NOPAD.decode(s.as_bytes()).unwrap()
                ),
                Some(true)
            );
        }
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let input = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            crate::random::sha256_b64url(input.as_bytes()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn files_are_private_and_reload_identically() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let files = key_files(&dir).unwrap();
        assert_eq!(files.len(), 2);
        for (path, name) in &files {
            assert_eq!(
                fs::metadata(path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(Some(name.kid.as_str()), ring.current_kid(name.alg));
        }
        // Another file in the directory (the seal key lives here) is left alone.
        crate::seal::SealKey::load_or_create(&dir.join("seal.key")).unwrap();
        let again = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(again.jwks(), ring.jwks());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        let token = ring
            .sign(JwsAlg::ES256, None, &json!({"exp": now_unix() + 60}))
            .unwrap();
        assert!(again.verify_own(&token, false).is_ok());
    }

    #[test]
    fn rotation_keeps_old_tokens_verifiable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        let claims = json!({"sub": "x", "exp": now_unix() + 600});
        let old_es = ring.sign(JwsAlg::ES256, None, &claims).unwrap();
        let old_rs = ring.sign(JwsAlg::RS256, None, &claims).unwrap();
        let new_kid = KeyRing::rotate(&dir, JwsAlg::ES256).unwrap();
        assert_ne!(Some(new_kid.as_str()), ring.current_kid(JwsAlg::ES256));
        let ring2 = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(ring2.current_kid(JwsAlg::ES256), Some(new_kid.as_str()));
        assert_eq!(
            ring2.current_kid(JwsAlg::RS256),
            ring.current_kid(JwsAlg::RS256)
        );
        assert_eq!(ring2.jwks()["keys"].as_array().unwrap().len(), 3);
        assert!(ring2.verify_own(&old_es, false).is_ok());
        assert!(ring2.verify_own(&old_rs, false).is_ok());
        let new_token = ring2.sign(JwsAlg::ES256, None, &claims).unwrap();
        assert_eq!(header_of(&new_token)["kid"], new_kid.as_str());
        // The old ring does not know the new key.
        assert!(matches!(
            ring.verify_own(&new_token, false),
            Err(JoseError::UnknownKey)
        ));
        // Rotating twice in the same second still orders the keys.
        let newest = KeyRing::rotate(&dir, JwsAlg::ES256).unwrap();
        assert_eq!(
            KeyRing::load_or_create(&dir)
                .unwrap()
                .current_kid(JwsAlg::ES256),
            Some(newest.as_str())
        );
    }

    #[test]
    fn bad_key_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        KeyRing::load_or_create(&dir).unwrap();
        let (path, name) = key_files(&dir)
            .unwrap()
            .into_iter()
            .find(|(_, n)| n.alg == JwsAlg::ES256)
            .unwrap();
        // Readable by others.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyRing::load_or_create(&dir),
            Err(JoseError::InsecureMode { mode: 0o644, .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // A name whose kid is not the key's.
        let renamed = dir.join(format!("es256-{}-wrongkid.pk8", name.created));
        fs::rename(&path, &renamed).unwrap();
        assert!(matches!(
            KeyRing::load_or_create(&dir),
            Err(JoseError::KeyFile { .. })
        ));
        // Garbage content.
        fs::write(&renamed, b"garbage").unwrap();
        let err = KeyRing::load_or_create(&dir).unwrap_err();
        assert!(err.to_string().contains("not a PKCS#8 ES256"), "{err}");
    }

    #[test]
    fn pem_key_files_load() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        KeyRing::load_or_create(&dir).unwrap();
        let (path, name) = key_files(&dir)
            .unwrap()
            .into_iter()
            .find(|(_, n)| n.alg == JwsAlg::RS256)
            .unwrap();
        let der = fs::read(&path).unwrap();
        let b64 = data_encoding::BASE64.encode(&der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        fs::remove_file(&path).unwrap();
        let pem_path = dir.join(format!("rs256-{}-{}.pem", name.created, name.kid));
        assert!(write_new_private(&pem_path, pem.as_bytes()).unwrap());
        let ring = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(ring.current_kid(JwsAlg::RS256), Some(name.kid.as_str()));
    }

    #[test]
    fn verify_own_refusals() {
        let (_, ring) = shared();
        let past = json!({"sub": "x", "exp": now_unix() - 10});
        let token = ring.sign(JwsAlg::ES256, None, &past).unwrap();
        assert!(matches!(
            ring.verify_own(&token, false),
            Err(JoseError::Expired)
        ));
        assert_eq!(ring.verify_own(&token, true).unwrap(), past);
        let no_exp = ring
            .sign(JwsAlg::RS256, None, &json!({"sub": "x"}))
            .unwrap();
        assert!(matches!(
            ring.verify_own(&no_exp, false),
            Err(JoseError::Expired)
        ));
        assert!(ring.verify_own(&no_exp, true).is_ok());
        // A changed payload breaks the signature.
        let good = ring
            .sign(
                JwsAlg::ES256,
                None,
                &json!({"sub": "x", "exp": now_unix() + 60}),
            )
            .unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64_json(&json!({"sub": "y", "exp": now_unix() + 60})),
            parts[2]
        );
        assert!(matches!(
            ring.verify_own(&forged, false),
            Err(JoseError::BadSignature)
        ));
        // alg none, and an HMAC token keyed with our public key, are refused.
        let none = format!("{}.{}.", b64_json(&json!({"alg": "none"})), parts[1]);
        assert!(matches!(
            ring.verify_own(&none, false),
            Err(JoseError::UnsupportedAlg(_))
        ));
        let hs = format!(
            "{}.{}.{}",
            b64_json(&json!({"alg": "HS256", "kid": ring.current_kid(JwsAlg::ES256)})),
            parts[1],
            parts[2]
        );
        assert!(matches!(
            ring.verify_own(&hs, false),
            Err(JoseError::UnsupportedAlg(_))
        ));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            &format!("{good}x"),
            &"a".repeat(MAX_JWS_LEN + 1),
        ] {
            assert!(ring.verify_own(bad, true).is_err(), "{bad:.20}");
        }
        assert!(matches!(
            ring.sign(JwsAlg::ES256, None, &json!([1])),
            Err(JoseError::ClaimsNotObject)
        ));
    }

    // --- client assertions ---

    const CLIENT: &str = "client-1";
    const NOW: i64 = 1_800_000_000;

    fn aud() -> Vec<String> {
        vec![
            "https://eid.example.no".into(),
            "https://eid.example.no/token".into(),
        ]
    }

    fn claims() -> Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": "https://eid.example.no/token", "exp": NOW + 120, "iat": NOW, "jti": "j-1"})
    }

    fn compact(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let s = sign(input.as_bytes());
        format!("{input}.{}", BASE64URL_NOPAD.encode(&s))
    }

    struct ClientEc {
        pkcs8: Vec<u8>,
        jwks: Value,
    }

    fn client_ec() -> ClientEc {
        let kp = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let p = kp.public_key().as_ref();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "c1", "use": "sig",
            "x": BASE64URL_NOPAD.encode(&p[1..33]), "y": BASE64URL_NOPAD.encode(&p[33..])}]});
        ClientEc {
            pkcs8: kp.to_pkcs8v1().unwrap().as_ref().to_vec(),
            jwks,
        }
    }

    /// Signed by jsonwebtoken, independently of this module.
    fn es256_assertion(c: &ClientEc, kid: Option<&str>, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(
            &h,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&c.pkcs8),
        )
        .unwrap()
    }

    #[test]
    fn client_assertion_good() {
        let c = client_ec();
        let jwt = es256_assertion(&c, Some("c1"), &claims());
        let a = verify_client_assertion(&jwt, &c.jwks, CLIENT, &aud(), NOW).unwrap();
        assert_eq!(
            a,
            ClientAssertion {
                jti: "j-1".into(),
                exp: NOW + 120
            }
        );
        // No kid in the header: every suitable key is tried. aud as an array.
        let mut cl = claims();
        cl["aud"] = json!(["other", "https://eid.example.no"]);
        let jwt = es256_assertion(&c, None, &cl);
        assert!(verify_client_assertion(&jwt, &c.jwks, CLIENT, &aud(), NOW).is_ok());
    }

    #[test]
    fn client_assertion_time_checks() {
        let c = client_ec();
        let check = |cl: &Value| {
            verify_client_assertion(
                &es256_assertion(&c, Some("c1"), cl),
                &c.jwks,
                CLIENT,
                &aud(),
                NOW,
            )
        };
        let mut cl = claims();
        cl["exp"] = json!(NOW - 1);
        assert!(matches!(check(&cl), Err(JoseError::Expired)));
        cl["exp"] = json!(NOW);
        assert!(matches!(check(&cl), Err(JoseError::Expired)));
        cl.as_object_mut().unwrap().remove("exp");
        assert!(matches!(check(&cl), Err(JoseError::Expired)));
        cl["exp"] = json!(NOW + MAX_ASSERTION_LIFETIME_SECS + CLOCK_LEEWAY_SECS + 1);
        assert!(matches!(check(&cl), Err(JoseError::ExpTooFar)));
        cl["exp"] = json!(NOW + MAX_ASSERTION_LIFETIME_SECS + CLOCK_LEEWAY_SECS);
        assert!(check(&cl).is_ok());
        cl["nbf"] = json!(NOW + 120);
        assert!(matches!(check(&cl), Err(JoseError::NotYetValid)));
        cl["exp"] = json!("soon");
        assert!(matches!(check(&cl), Err(JoseError::Claim("exp"))));
    }

    #[test]
    fn client_assertion_claim_checks() {
        let c = client_ec();
        let check = |cl: &Value| {
            verify_client_assertion(
                &es256_assertion(&c, Some("c1"), cl),
                &c.jwks,
                CLIENT,
                &aud(),
                NOW,
            )
        };
        let mut cl = claims();
        cl["aud"] = json!("https://evil.example");
        assert!(matches!(check(&cl), Err(JoseError::Audience)));
        cl["aud"] = json!(["https://evil.example"]);
        assert!(matches!(check(&cl), Err(JoseError::Audience)));
        let mut cl = claims();
        cl["iss"] = json!("client-2");
        assert!(matches!(check(&cl), Err(JoseError::Claim(m)) if m.starts_with("iss")));
        let mut cl = claims();
        cl["sub"] = json!("someone");
        assert!(matches!(check(&cl), Err(JoseError::Claim(m)) if m.starts_with("sub")));
        let mut cl = claims();
        cl.as_object_mut().unwrap().remove("jti");
        assert!(matches!(check(&cl), Err(JoseError::Claim(m)) if m.starts_with("jti")));
        cl["jti"] = json!("x".repeat(MAX_JTI_LEN + 1));
        assert!(matches!(check(&cl), Err(JoseError::Claim(_))));
        // Another client's id with this client's key.
        let jwt = es256_assertion(&c, Some("c1"), &claims());
        assert!(matches!(
            verify_client_assertion(&jwt, &c.jwks, "client-2", &aud(), NOW),
            Err(JoseError::Claim(_))
        ));
    }

    #[test]
    fn client_assertion_signature_checks() {
        let c = client_ec();
        let other = client_ec();
        // Signed by a key the client did not register.
        let jwt = es256_assertion(&other, Some("c1"), &claims());
        assert!(matches!(
            verify_client_assertion(&jwt, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::BadSignature)
        ));
        // kid that matches no key.
        let jwt = es256_assertion(&c, Some("nope"), &claims());
        assert!(matches!(
            verify_client_assertion(&jwt, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnknownKey)
        ));
        // A bit flipped in the signature.
        let mut jwt = es256_assertion(&c, Some("c1"), &claims()).into_bytes();
        let last = jwt.len() - 2;
        jwt[last] = if jwt[last] == b'A' { b'B' } else { b'A' };
        let jwt = String::from_utf8(jwt).unwrap();
        assert!(matches!(
            verify_client_assertion(&jwt, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::BadSignature)
        ));
        // JWKS entries for encryption or another alg are not used for signatures.
        let mut jwks = c.jwks.clone();
        jwks["keys"][0]["use"] = json!("enc");
        let jwt = es256_assertion(&c, Some("c1"), &claims());
        assert!(matches!(
            verify_client_assertion(&jwt, &jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnknownKey)
        ));
        jwks["keys"][0]["use"] = json!("sig");
        jwks["keys"][0]["alg"] = json!("ES384");
        assert!(matches!(
            verify_client_assertion(&jwt, &jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnknownKey)
        ));
        assert!(matches!(
            verify_client_assertion(&jwt, &json!({}), CLIENT, &aud(), NOW),
            Err(JoseError::Jwks(_))
        ));
    }

    #[test]
    fn client_assertion_alg_none_and_hmac_are_refused() {
        let c = client_ec();
        let none = compact(&json!({"alg": "none", "kid": "c1"}), &claims(), |_| {
            Vec::new()
        });
        assert!(matches!(
            verify_client_assertion(&none, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnsupportedAlg(_))
        ));
        let none = compact(&json!({"alg": "None"}), &claims(), |_| Vec::new());
        assert!(matches!(
            verify_client_assertion(&none, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnsupportedAlg(_))
        ));
        // HS256 keyed with a secret the client "registered" as an oct JWK.
        let secret = b"client-secret-client-secret-0123";
        let jwks = json!({"keys": [{"kty": "oct", "k": BASE64URL_NOPAD.encode(secret)}]});
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(matches!(
            verify_client_assertion(&hs, &jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnsupportedAlg(_))
        ));
        let crit = compact(
            &json!({"alg": "ES256", "crit": ["b64"], "b64": false}),
            &claims(),
            |_| vec![0; 64],
        );
        assert!(matches!(
            verify_client_assertion(&crit, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::Malformed(_))
        ));
    }

    #[test]
    fn client_assertion_rs256_ps256_eddsa() {
        // RSA: PKCS#1 v1.5 and PSS with the same key.
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let n = kp
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec();
        let e = kp
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec();
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "r1", "n": BASE64URL_NOPAD.encode(&n), "e": BASE64URL_NOPAD.encode(&e)}]});
        for (alg, enc) in [
            ("RS256", &sig::RSA_PKCS1_SHA256),
            ("PS256", &sig::RSA_PSS_SHA256),
        ] {
            let jwt = compact(&json!({"alg": alg, "kid": "r1"}), &claims(), |m| {
                let mut s = vec![0; kp.public_modulus_len()];
                kp.sign(enc, &SystemRandom::new(), m, &mut s).unwrap();
                s
            });
            assert!(
                verify_client_assertion(&jwt, &jwks, CLIENT, &aud(), NOW).is_ok(),
                "{alg}"
            );
        }
        // A PKCS#1 v1.5 signature presented as PSS does not verify.
        let jwt = compact(&json!({"alg": "PS256", "kid": "r1"}), &claims(), |m| {
            let mut s = vec![0; kp.public_modulus_len()];
            kp.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), m, &mut s)
                .unwrap();
            s
        });
        assert!(matches!(
            verify_client_assertion(&jwt, &jwks, CLIENT, &aud(), NOW),
            Err(JoseError::BadSignature)
        ));
        // Ed25519.
        let ed = Ed25519KeyPair::generate().unwrap();
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": BASE64URL_NOPAD.encode(ed.public_key().as_ref())}]});
        let jwt = compact(&json!({"alg": "EdDSA"}), &claims(), |m| {
            ed.sign(m).as_ref().to_vec()
        });
        assert!(verify_client_assertion(&jwt, &jwks, CLIENT, &aud(), NOW).is_ok());
        // An EC key cannot verify an EdDSA token.
        let c = client_ec();
        assert!(matches!(
            verify_client_assertion(&jwt, &c.jwks, CLIENT, &aud(), NOW),
            Err(JoseError::UnknownKey)
        ));
    }

    #[test]
    fn alg_names() {
        assert_eq!("es256".parse::<JwsAlg>().unwrap(), JwsAlg::ES256);
        assert_eq!("RS256".parse::<JwsAlg>().unwrap(), JwsAlg::RS256);
        assert!("HS256".parse::<JwsAlg>().is_err());
        assert_eq!(serde_json::to_string(&JwsAlg::RS256).unwrap(), "\"RS256\"");
        assert_eq!(JwsAlg::ES256.to_string(), "ES256");
    }
}
