//! Import of OTP token seeds from PSKC files (RFC 6030), as token vendors deliver them.
//!
//! Supported: plain secrets (`PlainValue`); secrets encrypted with AES-CBC (xmlenc
//! aes128/192/256-cbc, IV prepended) under a pre-shared key (section 6.1) or a key derived
//! from a passphrase with PBKDF2 (section 6.2), each with an HMAC `ValueMAC` over IV and
//! ciphertext made with the MAC key of `MACMethod` (section 6.1.1), checked in constant
//! time before anything is decrypted. HOTP and TOTP keys, with HMAC-SHA1/256/512.
//!
//! The import is all or nothing: one bad key package fails the whole file, with an error
//! naming the package (1-based index and serial or key id) and the reason. DTDs are
//! refused, so no entity expansion or external fetch can happen.

use std::collections::HashMap;

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, KeyInit, Mac};
use roxmltree::{Document, Node, ParsingOptions};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::otp::{MAX_DIGITS, MIN_DIGITS, OtpAlgorithm};

/// Largest PSKC file accepted, bytes.
pub const MAX_PSKC_BYTES: usize = 64 * 1024 * 1024;
/// Most XML nodes parsed: bounds memory well above what `MAX_PSKC_BYTES` of real
/// key packages need (about 40 nodes each).
const MAX_NODES: u32 = 8_000_000;
/// Most PBKDF2 iterations accepted: more would stall the import for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Longest secret accepted, bytes (HMAC-SHA512's block; vendors use 20 to 64).
const MAX_SECRET_LEN: usize = 128;
/// Largest TimeInterval accepted, seconds.
const MAX_TIME_INTERVAL: u32 = 86_400;

const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_PKCS5: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";

/// Errors of this module. None carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PskcError {
    /// The file is larger than [`MAX_PSKC_BYTES`].
    #[error("PSKC file is larger than {MAX_PSKC_BYTES} bytes")]
    TooLarge,
    /// The file has a DTD (`<!DOCTYPE`), which is refused.
    #[error("PSKC file has a DTD (<!DOCTYPE ...>), which is not allowed")]
    Dtd,
    /// The file is not well-formed XML, or not a PSKC KeyContainer.
    #[error("PSKC file is not valid: {0}")]
    Xml(String),
    /// The container uses a feature this importer does not support.
    #[error("PSKC file uses something unsupported: {0}")]
    Unsupported(String),
    /// The container has no key packages.
    #[error("PSKC file contains no key packages")]
    Empty,
    /// Secrets are encrypted but no key or passphrase was given.
    #[error("the PSKC file is encrypted: give the pre-shared key or the passphrase")]
    KeyRequired,
    /// The kind of key given (pre-shared key or passphrase) is not what the file uses.
    #[error("the PSKC file is encrypted with {expected}; give that instead")]
    KeyKind {
        /// What the file uses.
        expected: &'static str,
    },
    /// A pre-shared key of the wrong length for the file's cipher.
    #[error("the pre-shared key is {got} bytes, but the file's cipher needs {expected}")]
    KeyLength {
        /// Bytes the cipher needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The MAC key does not decrypt, or no MAC verifies: the key or passphrase is wrong.
    #[error("the pre-shared key or passphrase is wrong (or the file was altered)")]
    WrongKey,
    /// One key package is bad.
    #[error("key package {index} ({name}): {reason}")]
    Entry {
        /// 1-based position of the KeyPackage in the file.
        index: usize,
        /// Its serial number, or key id if it has none.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two key packages have the same serial number.
    #[error("serial number {serial} appears twice, in key packages {first} and {second}")]
    DuplicateSerial {
        /// The serial number.
        serial: String,
        /// 1-based index of its first package.
        first: usize,
        /// 1-based index of its second package.
        second: usize,
    },
}

/// The key that protects an encrypted PSKC file.
pub enum PskcKey {
    /// A pre-shared AES key (RFC 6030 section 6.1).
    PreShared(Zeroizing<Vec<u8>>),
    /// A passphrase, from which PBKDF2 derives the key (section 6.2).
    Passphrase(Zeroizing<String>),
}

impl std::fmt::Debug for PskcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PskcKey::PreShared(_) => f.write_str("PreShared(<redacted>)"),
            PskcKey::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
        }
    }
}

/// HOTP or TOTP, with the parameters of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Event based (RFC 4226).
    Hotp {
        /// The token's next counter.
        counter: u64,
    },
    /// Time based (RFC 6238).
    Totp {
        /// Time step, seconds.
        step: u32,
        /// T0, unix seconds.
        t0: i64,
    },
}

/// One token from a PSKC file.
pub struct PskcToken {
    /// Serial number: DeviceInfo/SerialNo, else the Key Id.
    pub serial: String,
    /// DeviceInfo/Manufacturer.
    pub manufacturer: Option<String>,
    /// The Key's Id attribute (the serial if it has none).
    pub key_id: String,
    /// HOTP or TOTP.
    pub kind: TokenKind,
    /// The HMAC hash.
    pub algorithm: OtpAlgorithm,
    /// Code length.
    pub digits: u8,
    /// The seed.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PskcToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskcToken")
            .field("serial", &self.serial)
            .field("manufacturer", &self.manufacturer)
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field(
                "secret",
                &format_args!("<{} bytes redacted>", self.secret.len()),
            )
            .finish()
    }
}

/// Parses a PSKC document and returns all its tokens, or an error if any is bad.
/// `key` is needed only if secrets are encrypted.
pub fn parse_pskc(xml: &str, key: Option<&PskcKey>) -> Result<Vec<PskcToken>, PskcError> {
    if xml.len() > MAX_PSKC_BYTES {
        return Err(PskcError::TooLarge);
    }
    if xml.contains("<!DOCTYPE") {
        return Err(PskcError::Dtd);
    }
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(xml, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => PskcError::Dtd,
        e => PskcError::Xml(e.to_string()),
    })?;
    let root = doc.root_element();
    if !is_pskc(root, "KeyContainer") {
        return Err(PskcError::Xml(
            "the root element is not a PSKC KeyContainer".into(),
        ));
    }
    if let Some(v) = root.attribute("Version").map(str::trim)
        && v != "1.0"
    {
        return Err(PskcError::Unsupported(format!(
            "KeyContainer Version {:?}",
            short(v)
        )));
    }

    let packages: Vec<Node> = root
        .children()
        .filter(|n| is_pskc(*n, "KeyPackage"))
        .collect();
    if packages.is_empty() {
        return Err(PskcError::Empty);
    }
    let mut raws = Vec::with_capacity(packages.len());
    for (i, pkg) in packages.iter().enumerate() {
        raws.push(parse_package(i + 1, *pkg)?);
    }

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &raws {
        if let Some(first) = seen.insert(r.serial.as_str(), r.index) {
            return Err(PskcError::DuplicateSerial {
                serial: r.serial.clone(),
                first,
                second: r.index,
            });
        }
    }

    let crypto = if raws
        .iter()
        .any(|r| matches!(r.secret, RawSecret::Encrypted { .. }))
    {
        Some(ContainerCrypto::new(root, key)?)
    } else {
        None
    };
    if let Some(c) = &crypto {
        c.check_macs(&raws)?;
    }

    raws.into_iter()
        .map(|r| {
            let secret = match r.secret {
                RawSecret::Plain(s) => s,
                RawSecret::Encrypted { cipher, data, .. } => match &crypto {
                    Some(c) => decrypt(cipher, &c.key, &data).ok_or_else(|| {
                        // The MAC verified, so the key is right: the producer is broken.
                        entry_err(r.index, &r.serial, "Secret does not decrypt (bad padding)")
                    })?,
                    None => return Err(PskcError::KeyRequired),
                },
            };
            check_secret_len(r.index, &r.serial, &secret)?;
            Ok(PskcToken {
                serial: r.serial,
                manufacturer: r.manufacturer,
                key_id: r.key_id,
                kind: r.kind,
                algorithm: r.algorithm,
                digits: r.digits,
                secret,
            })
        })
        .collect()
}

/// A key package parsed, its secret not yet decrypted.
struct RawEntry {
    index: usize,
    serial: String,
    manufacturer: Option<String>,
    key_id: String,
    kind: TokenKind,
    algorithm: OtpAlgorithm,
    digits: u8,
    secret: RawSecret,
}

enum RawSecret {
    Plain(Zeroizing<Vec<u8>>),
    Encrypted {
        /// The cipher of its EncryptionMethod.
        cipher: Cbc,
        /// IV || ciphertext.
        data: Vec<u8>,
        /// The ValueMAC, if present.
        mac: Option<Vec<u8>>,
    },
}

/// The AES-CBC variants of xmlenc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cbc {
    Aes128,
    Aes192,
    Aes256,
}

impl Cbc {
    fn from_uri(uri: &str) -> Option<Cbc> {
        match uri.trim() {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Some(Cbc::Aes128),
            "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => Some(Cbc::Aes192),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Some(Cbc::Aes256),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Cbc::Aes128 => 16,
            Cbc::Aes192 => 24,
            Cbc::Aes256 => 32,
        }
    }
}

/// Decrypts `IV || ciphertext` with PKCS#7 padding; `None` if the key length, the data
/// length or the padding is wrong.
fn decrypt(cipher: Cbc, key: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if key.len() != cipher.key_len() || data.len() < 32 || !data.len().is_multiple_of(16) {
        return None;
    }
    let (iv, ct) = data.split_at(16);
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = match cipher {
        Cbc::Aes128 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .ok()?
            .len(),
        Cbc::Aes192 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .ok()?
            .len(),
        Cbc::Aes256 => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .ok()?
            .len(),
    };
    buf.truncate(len);
    Some(buf)
}

/// The MAC algorithms of xmldsig.
#[derive(Clone, Copy)]
enum MacAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl MacAlg {
    fn from_uri(uri: &str) -> Option<MacAlg> {
        match uri.trim() {
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1" => Some(MacAlg::Sha1),
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256" => Some(MacAlg::Sha256),
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384" => Some(MacAlg::Sha384),
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512" => Some(MacAlg::Sha512),
            _ => None,
        }
    }

    /// Does `tag` equal HMAC(key, data)? Compared in constant time.
    fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        fn mac<M: Mac + KeyInit>(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().as_slice().ct_eq(tag).into()
                }
                Err(_) => false,
            }
        }
        match self {
            MacAlg::Sha1 => mac::<Hmac<sha1::Sha1>>(key, data, tag),
            MacAlg::Sha256 => mac::<Hmac<sha2::Sha256>>(key, data, tag),
            MacAlg::Sha384 => mac::<Hmac<sha2::Sha384>>(key, data, tag),
            MacAlg::Sha512 => mac::<Hmac<sha2::Sha512>>(key, data, tag),
        }
    }
}

/// The container's encryption key and MAC key, both recovered.
struct ContainerCrypto {
    key: Zeroizing<Vec<u8>>,
    mac_alg: MacAlg,
    mac_key: Zeroizing<Vec<u8>>,
}

impl ContainerCrypto {
    fn new(root: Node, key: Option<&PskcKey>) -> Result<ContainerCrypto, PskcError> {
        let enc_key = child_pskc(root, "EncryptionKey");
        let derived = enc_key.and_then(|k| child_in(k, &[NS_XENC11], "DerivedKey"));
        if let Some(k) = enc_key
            && derived.is_none()
            && child_in(k, &[NS_DS], "KeyName").is_none()
            && k.children().any(|n| n.is_element())
        {
            return Err(PskcError::Unsupported(
                "EncryptionKey is neither a pre-shared key (ds:KeyName) nor PBKDF2 (xenc11:DerivedKey)".into(),
            ));
        }
        let mac_method = child_pskc(root, "MACMethod").ok_or_else(|| {
            PskcError::Xml("secrets are encrypted but there is no MACMethod".into())
        })?;
        let mac_alg = mac_method
            .attribute("Algorithm")
            .and_then(MacAlg::from_uri)
            .ok_or_else(|| {
                PskcError::Unsupported(format!(
                    "MACMethod Algorithm {:?}",
                    short(mac_method.attribute("Algorithm").unwrap_or(""))
                ))
            })?;
        let mac_key_el = child_pskc(mac_method, "MACKey")
            .ok_or_else(|| PskcError::Xml("MACMethod has no MACKey".into()))?;
        let (mac_key_cipher, mac_key_data) =
            encrypted_value(mac_key_el).map_err(|r| PskcError::Xml(format!("MACKey: {r}")))?;

        let key = match (derived, key) {
            (_, None) => return Err(PskcError::KeyRequired),
            (Some(d), Some(PskcKey::Passphrase(p))) => derive_pbkdf2(d, p, mac_key_cipher)?,
            (Some(_), Some(PskcKey::PreShared(_))) => {
                return Err(PskcError::KeyKind {
                    expected: "a passphrase",
                });
            }
            (None, Some(PskcKey::Passphrase(_))) => {
                return Err(PskcError::KeyKind {
                    expected: "a pre-shared key",
                });
            }
            (None, Some(PskcKey::PreShared(k))) => k.clone(),
        };
        if key.len() != mac_key_cipher.key_len() {
            return Err(PskcError::KeyLength {
                expected: mac_key_cipher.key_len(),
                got: key.len(),
            });
        }
        // With a wrong key the padding check fails almost always (about 255 in 256);
        // otherwise no ValueMAC verifies, which check_macs reports as WrongKey too.
        let mac_key = decrypt(mac_key_cipher, &key, &mac_key_data).ok_or(PskcError::WrongKey)?;
        if mac_key.is_empty() {
            return Err(PskcError::WrongKey);
        }
        Ok(ContainerCrypto {
            key,
            mac_alg,
            mac_key,
        })
    }

    /// Verifies every encrypted secret's ValueMAC before anything is decrypted.
    fn check_macs(&self, raws: &[RawEntry]) -> Result<(), PskcError> {
        let mut first_bad = None;
        let mut any_good = false;
        for r in raws {
            let RawSecret::Encrypted { cipher, data, mac } = &r.secret else {
                continue;
            };
            let Some(mac) = mac else {
                return Err(entry_err(
                    r.index,
                    &r.serial,
                    "encrypted Secret has no ValueMAC",
                ));
            };
            if *cipher != self.cipher_for_len() {
                return Err(entry_err(
                    r.index,
                    &r.serial,
                    "Secret uses another cipher than the MAC key",
                ));
            }
            if self.mac_alg.verify(&self.mac_key, data, mac) {
                any_good = true;
            } else if first_bad.is_none() {
                first_bad = Some(r);
            }
        }
        match first_bad {
            // Some verify, so the key is right and this one was altered.
            Some(r) if any_good => Err(entry_err(
                r.index,
                &r.serial,
                "ValueMAC does not match: the secret was altered",
            )),
            Some(_) => Err(PskcError::WrongKey),
            None => Ok(()),
        }
    }

    fn cipher_for_len(&self) -> Cbc {
        match self.key.len() {
            24 => Cbc::Aes192,
            32 => Cbc::Aes256,
            _ => Cbc::Aes128,
        }
    }
}

/// Derives the key from a passphrase with the file's PBKDF2 parameters (RFC 6030 6.2).
fn derive_pbkdf2(
    derived: Node,
    passphrase: &str,
    cipher: Cbc,
) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    let bad = |what: &str| PskcError::Xml(format!("DerivedKey: {what}"));
    let method = child_in(derived, &[NS_XENC11], "KeyDerivationMethod")
        .ok_or_else(|| bad("no KeyDerivationMethod"))?;
    let alg = method.attribute("Algorithm").unwrap_or("").trim();
    if !matches!(
        alg,
        "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"
            | "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5#pbkdf2"
    ) {
        return Err(PskcError::Unsupported(format!(
            "key derivation {:?}",
            short(alg)
        )));
    }
    // python-pskc and the RFC's own example put PBKDF2-params in the pkcs5 or xenc11
    // namespace and leave its children unqualified; accept all of these.
    let params_ns: &[&str] = &[NS_PKCS5, NS_XENC11, ""];
    let params =
        child_in(method, params_ns, "PBKDF2-params").ok_or_else(|| bad("no PBKDF2-params"))?;
    let salt_el = child_in(params, params_ns, "Salt").ok_or_else(|| bad("no Salt"))?;
    let salt_text = match child_in(salt_el, params_ns, "Specified") {
        Some(s) => text(s),
        None => {
            return Err(PskcError::Unsupported(
                "PBKDF2 Salt other than Specified".into(),
            ));
        }
    };
    let salt = b64(&salt_text).ok_or_else(|| bad("Salt is not base64"))?;
    let iterations: u32 = child_in(params, params_ns, "IterationCount")
        .and_then(|n| text(n).trim().parse().ok())
        .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))
        .ok_or_else(|| {
            bad(&format!(
                "IterationCount must be 1 to {MAX_PBKDF2_ITERATIONS}"
            ))
        })?;
    let key_len = match child_in(params, params_ns, "KeyLength") {
        Some(n) => text(n)
            .trim()
            .parse::<usize>()
            .map_err(|_| bad("KeyLength is not a number"))?,
        None => cipher.key_len(),
    };
    if key_len != cipher.key_len() {
        return Err(bad(&format!(
            "KeyLength {key_len} does not fit the cipher ({} bytes)",
            cipher.key_len()
        )));
    }
    let prf = child_in(params, params_ns, "PRF")
        .and_then(|p| p.attribute("Algorithm"))
        .map(str::trim);
    let mut out = Zeroizing::new(vec![0u8; key_len]);
    let pw = passphrase.as_bytes();
    let ok = match prf {
        None | Some("") | Some("http://www.w3.org/2000/09/xmldsig#hmac-sha1") => {
            pbkdf2::pbkdf2::<Hmac<sha1::Sha1>>(pw, &salt, iterations, &mut out).is_ok()
        }
        Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256") => {
            pbkdf2::pbkdf2::<Hmac<sha2::Sha256>>(pw, &salt, iterations, &mut out).is_ok()
        }
        Some("http://www.w3.org/2001/04/xmldsig-more#hmac-sha512") => {
            pbkdf2::pbkdf2::<Hmac<sha2::Sha512>>(pw, &salt, iterations, &mut out).is_ok()
        }
        Some(other) => {
            return Err(PskcError::Unsupported(format!(
                "PBKDF2 PRF {:?}",
                short(other)
            )));
        }
    };
    if !ok {
        return Err(bad("PBKDF2 failed"));
    }
    Ok(out)
}

fn entry_err(index: usize, name: &str, reason: impl Into<String>) -> PskcError {
    PskcError::Entry {
        index,
        name: name.to_string(),
        reason: reason.into(),
    }
}

fn check_secret_len(index: usize, name: &str, secret: &[u8]) -> Result<(), PskcError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(entry_err(
            index,
            name,
            format!(
                "Secret must be 1 to {MAX_SECRET_LEN} bytes, is {}",
                secret.len()
            ),
        ));
    }
    Ok(())
}

/// Parses one KeyPackage; errors name it.
fn parse_package(index: usize, pkg: Node) -> Result<RawEntry, PskcError> {
    let device = child_pskc(pkg, "DeviceInfo");
    let serial = device
        .and_then(|d| child_pskc(d, "SerialNo"))
        .map(|n| text(n).trim().to_string())
        .filter(|s| !s.is_empty());
    let manufacturer = device
        .and_then(|d| child_pskc(d, "Manufacturer"))
        .map(|n| text(n).trim().to_string())
        .filter(|s| !s.is_empty());
    let key = child_pskc(pkg, "Key");
    let key_id = key
        .and_then(|k| k.attribute("Id"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let name = serial
        .clone()
        .or_else(|| key_id.clone())
        .unwrap_or_else(|| "no serial or key id".into());
    let fail = |reason: String| entry_err(index, &name, reason);

    let key = key.ok_or_else(|| fail("no Key".into()))?;
    let (serial, key_id) = match (serial, key_id) {
        (Some(s), Some(k)) => (s, k),
        (Some(s), None) => (s.clone(), s),
        (None, Some(k)) => (k.clone(), k),
        (None, None) => return Err(fail("neither DeviceInfo/SerialNo nor Key Id".into())),
    };
    if serial.chars().count() > 128 || serial.chars().any(char::is_control) {
        return Err(fail(
            "serial number is longer than 128 characters or has control characters".into(),
        ));
    }

    let alg_uri = key.attribute("Algorithm").unwrap_or("").trim();
    let is_totp =
        match alg_uri {
            "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
            | "http://www.ietf.org/keyprov/pskc#hotp" => false,
            "urn:ietf:params:xml:ns:keyprov:pskc:totp"
            | "http://www.ietf.org/keyprov/pskc#totp" => true,
            other => {
                return Err(fail(format!(
                    "unsupported Key Algorithm {:?}",
                    short(other)
                )));
            }
        };

    let params = child_pskc(key, "AlgorithmParameters");
    let algorithm = match params.and_then(|p| child_pskc(p, "Suite")) {
        None => OtpAlgorithm::Sha1,
        Some(s) => {
            let t = text(s);
            t.trim()
                .parse()
                .map_err(|_| fail(format!("unsupported Suite {:?}", short(t.trim()))))?
        }
    };
    let digits = match params.and_then(|p| child_pskc(p, "ResponseFormat")) {
        // RFC 4226's minimum, for files (like RFC 6030 figure 2) that do not say.
        None => MIN_DIGITS,
        Some(rf) => {
            if let Some(enc) = rf.attribute("Encoding")
                && enc.trim() != "DECIMAL"
            {
                return Err(fail(format!(
                    "ResponseFormat Encoding {:?} (only DECIMAL is supported)",
                    short(enc)
                )));
            }
            if rf
                .attribute("CheckDigits")
                .is_some_and(|c| matches!(c.trim(), "true" | "1"))
            {
                return Err(fail("ResponseFormat CheckDigits is not supported".into()));
            }
            rf.attribute("Length")
                .and_then(|l| l.trim().parse::<u8>().ok())
                .filter(|d| (MIN_DIGITS..=MAX_DIGITS).contains(d))
                .ok_or_else(|| {
                    fail(format!(
                        "ResponseFormat Length must be {MIN_DIGITS} to {MAX_DIGITS}"
                    ))
                })?
        }
    };

    let data = child_pskc(key, "Data").ok_or_else(|| fail("no Data".into()))?;
    let secret_el = child_pskc(data, "Secret").ok_or_else(|| fail("no Secret".into()))?;
    let secret = if let Some(pv) = child_pskc(secret_el, "PlainValue") {
        let s = b64(&Zeroizing::new(text(pv)))
            .ok_or_else(|| fail("Secret PlainValue is not valid base64".into()))?;
        check_secret_len(index, &name, &s)?;
        RawSecret::Plain(s)
    } else if let Some(ev) = child_pskc(secret_el, "EncryptedValue") {
        let (cipher, data) = encrypted_value(ev).map_err(|r| fail(format!("Secret: {r}")))?;
        let mac = match child_pskc(secret_el, "ValueMAC") {
            Some(m) => Some(
                b64(&text(m))
                    .ok_or_else(|| fail("ValueMAC is not valid base64".into()))?
                    .to_vec(),
            ),
            None => None,
        };
        RawSecret::Encrypted { cipher, data, mac }
    } else {
        return Err(fail(
            "Secret has neither PlainValue nor EncryptedValue".into(),
        ));
    };

    let kind = if is_totp {
        let step = match plain_number::<u32>(data, "TimeInterval").map_err(&fail)? {
            None => 30,
            Some(s) if (1..=MAX_TIME_INTERVAL).contains(&s) => s,
            Some(_) => {
                return Err(fail(format!(
                    "TimeInterval must be 1 to {MAX_TIME_INTERVAL}"
                )));
            }
        };
        let t0 = plain_number::<i64>(data, "Time")
            .map_err(&fail)?
            .unwrap_or(0);
        TokenKind::Totp { step, t0 }
    } else {
        let counter = plain_number::<u64>(data, "Counter")
            .map_err(&fail)?
            .unwrap_or(0);
        TokenKind::Hotp { counter }
    };

    Ok(RawEntry {
        index,
        serial,
        manufacturer,
        key_id,
        kind,
        algorithm,
        digits,
        secret,
    })
}

/// Reads `Data/<name>/PlainValue` (or `Data/<name>` text) as a number; `None` if absent.
fn plain_number<T: std::str::FromStr>(data: Node, name: &str) -> Result<Option<T>, String> {
    let Some(el) = child_pskc(data, name) else {
        return Ok(None);
    };
    if child_pskc(el, "EncryptedValue").is_some() {
        return Err(format!("encrypted {name} is not supported"));
    }
    // Normally a PlainValue child; some producers put the number directly in the element.
    let t = child_pskc(el, "PlainValue").map_or_else(|| text(el), text);
    t.trim()
        .parse()
        .map(Some)
        .map_err(|_| format!("{name} {:?} is not a valid number", short(t.trim())))
}

/// Reads an xmlenc EncryptionMethod + CipherData/CipherValue pair.
fn encrypted_value(el: Node) -> Result<(Cbc, Vec<u8>), String> {
    let method = child_in(el, &[NS_XENC], "EncryptionMethod").ok_or("no EncryptionMethod")?;
    let uri = method.attribute("Algorithm").unwrap_or("");
    let cipher = Cbc::from_uri(uri)
        .ok_or_else(|| format!("unsupported encryption algorithm {:?}", short(uri)))?;
    let value = child_in(el, &[NS_XENC], "CipherData")
        .and_then(|d| child_in(d, &[NS_XENC], "CipherValue"))
        .ok_or("no CipherData/CipherValue")?;
    let data = b64(&text(value)).ok_or("CipherValue is not valid base64")?;
    if data.len() < 32 || !data.len().is_multiple_of(16) {
        return Err("CipherValue is not an IV and whole AES blocks".into());
    }
    Ok((cipher, data.to_vec()))
}

/// Decodes XML base64Binary, which may contain whitespace (line breaks).
fn b64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<Vec<u8>> =
        Zeroizing::new(s.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
    data_encoding::BASE64
        .decode(&compact)
        .ok()
        .map(Zeroizing::new)
}

/// The element's text content (all text children, so comments in between do not cut it).
fn text(n: Node) -> String {
    n.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

/// At most 40 characters of a value from the file, for error messages.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Is `n` the PSKC element `name`? Unqualified names count too: some vendors omit the
/// namespace.
fn is_pskc(n: Node, name: &str) -> bool {
    n.is_element()
        && n.tag_name().name() == name
        && matches!(n.tag_name().namespace(), Some(NS_PSKC) | None)
}

fn child_pskc<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is_pskc(*c, name))
}

/// The first child element `name` in one of `namespaces` ("" is no namespace).
fn child_in<'a, 'i>(n: Node<'a, 'i>, namespaces: &[&str], name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element()
            && c.tag_name().name() == name
            && namespaces.contains(&c.tag_name().namespace().unwrap_or(""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::hotp;

    const SECRET: &[u8] = b"12345678901234567890";
    const HOTP_PLAIN: &str = include_str!("../tests/data/pskc/hotp-plain.pskcxml");
    const TOTP_PLAIN: &str = include_str!("../tests/data/pskc/totp-plain.pskcxml");
    const TOTP_PSK: &str = include_str!("../tests/data/pskc/totp-psk-aes128cbc.pskcxml");
    const HOTP_PBKDF2: &str = include_str!("../tests/data/pskc/hotp-pbkdf2-aes128cbc.pskcxml");
    const FIG2: &str = include_str!("../tests/data/pskc/rfc6030-figure2.pskcxml");
    const FIG3: &str = include_str!("../tests/data/pskc/rfc6030-figure3.pskcxml");
    const FIG6: &str = include_str!("../tests/data/pskc/rfc6030-figure6.pskcxml");
    const FIG7: &str = include_str!("../tests/data/pskc/rfc6030-figure7.pskcxml");

    fn psk() -> PskcKey {
        PskcKey::PreShared(Zeroizing::new(
            data_encoding::HEXLOWER
                .decode(b"12345678901234567890123456789012")
                .unwrap(),
        ))
    }

    fn pass(p: &str) -> PskcKey {
        PskcKey::Passphrase(Zeroizing::new(p.to_string()))
    }

    fn entry(e: PskcError) -> (usize, String, String) {
        match e {
            PskcError::Entry {
                index,
                name,
                reason,
            } => (index, name, reason),
            other => panic!("expected an Entry error, got {other:?}"),
        }
    }

    /// Replaces the `n`th (1-based) occurrence of `from`.
    fn replace_nth(s: &str, from: &str, to: &str, n: usize) -> String {
        let (i, _) = s.match_indices(from).nth(n - 1).unwrap();
        format!("{}{}{}", &s[..i], to, &s[i + from.len()..])
    }

    #[test]
    fn hotp_plain_file() {
        let t = parse_pskc(HOTP_PLAIN, None).unwrap();
        assert_eq!(t.len(), 3);
        for (i, tok) in t.iter().enumerate() {
            assert_eq!(tok.serial, format!("60000000{i}"));
            assert_eq!(tok.key_id, format!("hotp-{i}"));
            assert_eq!(tok.manufacturer.as_deref(), Some("Example Tokens AS"));
            assert_eq!(tok.kind, TokenKind::Hotp { counter: 0 });
            assert_eq!(tok.algorithm, OtpAlgorithm::Sha1);
            assert_eq!(tok.digits, 6);
            assert_eq!(tok.secret.as_slice(), SECRET);
        }
        assert_eq!(hotp(t[0].algorithm, &t[0].secret, 0, t[0].digits), "755224");
        // A key given for a plain file is simply not needed.
        assert_eq!(parse_pskc(HOTP_PLAIN, Some(&psk())).unwrap().len(), 3);
    }

    #[test]
    fn totp_plain_file() {
        let t = parse_pskc(TOTP_PLAIN, None).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].serial, "700000002");
        assert_eq!(t[2].kind, TokenKind::Totp { step: 30, t0: 0 });
        assert_eq!(t[2].secret.as_slice(), SECRET);
        assert_eq!(
            crate::otp::totp(t[2].algorithm, &t[2].secret, 59, 30, 0, 6),
            "287082"
        );
    }

    #[test]
    fn psk_aes128cbc_file() {
        let t = parse_pskc(TOTP_PSK, Some(&psk())).unwrap();
        assert_eq!(t.len(), 3);
        for tok in &t {
            assert_eq!(tok.secret.as_slice(), SECRET);
            assert_eq!(tok.kind, TokenKind::Totp { step: 30, t0: 0 });
        }
    }

    #[test]
    fn pbkdf2_aes128cbc_file() {
        let t = parse_pskc(HOTP_PBKDF2, Some(&pass("qwerty"))).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].serial, "600000001");
        assert!(t.iter().all(|tok| tok.secret.as_slice() == SECRET));
        assert_eq!(hotp(t[0].algorithm, &t[0].secret, 0, t[0].digits), "755224");
    }

    #[test]
    fn rfc6030_figure2_basic() {
        // No DeviceInfo: the serial falls back to the Key Id; no ResponseFormat: 6 digits.
        let t = parse_pskc(FIG2, None).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].serial, "12345678");
        assert_eq!(t[0].key_id, "12345678");
        assert_eq!(t[0].manufacturer, None);
        assert_eq!(t[0].secret.as_slice(), b"1234");
        assert_eq!(t[0].digits, 6);
        assert_eq!(t[0].kind, TokenKind::Hotp { counter: 0 });
    }

    #[test]
    fn rfc6030_figure3_default_namespace() {
        let t = parse_pskc(FIG3, None).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].serial, "987654321");
        assert_eq!(t[0].key_id, "12345678");
        assert_eq!(t[0].manufacturer.as_deref(), Some("Manufacturer"));
        assert_eq!(t[0].digits, 8);
        assert_eq!(t[0].secret.as_slice(), SECRET);
        assert_eq!(hotp(t[0].algorithm, &t[0].secret, 0, 8), "84755224");
    }

    #[test]
    fn rfc6030_figure6_pre_shared_key() {
        let t = parse_pskc(FIG6, Some(&psk())).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].serial, "987654321");
        assert_eq!(t[0].digits, 8);
        assert_eq!(t[0].secret.as_slice(), SECRET);
    }

    #[test]
    fn rfc6030_figure7_pbkdf2() {
        let t = parse_pskc(FIG7, Some(&pass("qwerty"))).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].serial, "987654321");
        assert_eq!(t[0].manufacturer.as_deref(), Some("TokenVendorAcme"));
        assert_eq!(t[0].secret.as_slice(), SECRET);
    }

    #[test]
    fn wrong_psk() {
        let wrong = PskcKey::PreShared(Zeroizing::new(vec![0x11; 16]));
        assert_eq!(
            parse_pskc(TOTP_PSK, Some(&wrong)).unwrap_err(),
            PskcError::WrongKey
        );
        assert_eq!(
            parse_pskc(FIG6, Some(&wrong)).unwrap_err(),
            PskcError::WrongKey
        );
        let short_key = PskcKey::PreShared(Zeroizing::new(vec![0x11; 15]));
        assert_eq!(
            parse_pskc(TOTP_PSK, Some(&short_key)).unwrap_err(),
            PskcError::KeyLength {
                expected: 16,
                got: 15
            }
        );
        let msg = PskcError::WrongKey.to_string();
        assert!(msg.contains("key or passphrase is wrong"), "{msg}");
    }

    #[test]
    fn wrong_passphrase() {
        assert_eq!(
            parse_pskc(HOTP_PBKDF2, Some(&pass("qwertz"))).unwrap_err(),
            PskcError::WrongKey
        );
        assert_eq!(
            parse_pskc(FIG7, Some(&pass(""))).unwrap_err(),
            PskcError::WrongKey
        );
    }

    #[test]
    fn wrong_kind_of_key() {
        assert_eq!(
            parse_pskc(HOTP_PBKDF2, Some(&psk())).unwrap_err(),
            PskcError::KeyKind {
                expected: "a passphrase"
            }
        );
        assert_eq!(
            parse_pskc(TOTP_PSK, Some(&pass("qwerty"))).unwrap_err(),
            PskcError::KeyKind {
                expected: "a pre-shared key"
            }
        );
    }

    #[test]
    fn missing_key() {
        assert_eq!(
            parse_pskc(TOTP_PSK, None).unwrap_err(),
            PskcError::KeyRequired
        );
        assert_eq!(
            parse_pskc(HOTP_PBKDF2, None).unwrap_err(),
            PskcError::KeyRequired
        );
    }

    #[test]
    fn tampered_value_mac_names_the_entry() {
        let bad = TOTP_PSK.replace(
            "bnGC8HYmfP1Q7y4ML9CFtlSdAso=",
            "bnGC8HYmfP1Q7y4ML9CFtlSdBso=",
        );
        assert_ne!(bad, TOTP_PSK);
        let (index, name, reason) = entry(parse_pskc(&bad, Some(&psk())).unwrap_err());
        assert_eq!((index, name.as_str()), (2, "700000001"));
        assert_eq!(reason, "ValueMAC does not match: the secret was altered");
        // A tampered ciphertext is caught by the MAC too, before decryption.
        let bad = TOTP_PSK.replace("MxIB0f1fgpvl", "MxIB0f1fgpvm");
        let (index, _, reason) = entry(parse_pskc(&bad, Some(&psk())).unwrap_err());
        assert_eq!(index, 2);
        assert!(reason.contains("does not match"), "{reason}");
        // A ValueMAC that is not base64 at all.
        let bad = TOTP_PSK.replace(
            "bnGC8HYmfP1Q7y4ML9CFtlSdAso=",
            "bnGC8HYmfP1Q7y4ML9CFtlSdAsp=",
        );
        assert_eq!(
            entry(parse_pskc(&bad, Some(&psk())).unwrap_err()).2,
            "ValueMAC is not valid base64"
        );
        // With only one entry a bad MAC cannot be told from a wrong key.
        let bad = FIG6.replace(
            "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
            "Tu+NvtQfmvfJzF6bmQiJqoLRExc=",
        );
        assert_eq!(
            parse_pskc(&bad, Some(&psk())).unwrap_err(),
            PskcError::WrongKey
        );
    }

    #[test]
    fn missing_value_mac_is_refused() {
        let bad = replace_nth(
            TOTP_PSK,
            "<pskc:ValueMAC>UeuQySNRwdY/qGGuFdQcMyPXrsQ=</pskc:ValueMAC>",
            "",
            1,
        );
        let (index, name, reason) = entry(parse_pskc(&bad, Some(&psk())).unwrap_err());
        assert_eq!((index, name.as_str()), (1, "700000000"));
        assert!(reason.contains("no ValueMAC"), "{reason}");
    }

    #[test]
    fn bad_base64_in_second_entry() {
        let bad = replace_nth(
            HOTP_PLAIN,
            "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=",
            "@@not base64@@",
            2,
        );
        let err = parse_pskc(&bad, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key package 2 (600000001): Secret PlainValue is not valid base64"
        );
        let (index, name, _) = entry(err);
        assert_eq!((index, name.as_str()), (2, "600000001"));
    }

    #[test]
    fn entry_errors() {
        let cases = [
            (
                HOTP_PLAIN.replace("pskc:hotp\" Id=\"hotp-2\"", "pskc:ocra\" Id=\"hotp-2\""),
                3,
                "unsupported Key Algorithm",
            ),
            (
                replace_nth(HOTP_PLAIN, "Length=\"6\"", "Length=\"4\"", 1),
                1,
                "Length must be 6 to 10",
            ),
            (
                replace_nth(
                    HOTP_PLAIN,
                    "Length=\"6\"",
                    "Length=\"6\" Encoding=\"HEXADECIMAL\"",
                    2,
                ),
                2,
                "Encoding",
            ),
            (
                replace_nth(HOTP_PLAIN, "<pskc:PlainValue>0<", "<pskc:PlainValue>-1<", 2),
                2,
                "Counter \"-1\" is not a valid number",
            ),
            (
                replace_nth(TOTP_PLAIN, "<pskc:PlainValue>30<", "<pskc:PlainValue>0<", 3),
                3,
                "TimeInterval must be",
            ),
            (
                replace_nth(
                    HOTP_PLAIN,
                    "<pskc:PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</pskc:PlainValue>",
                    "",
                    1,
                ),
                1,
                "neither PlainValue",
            ),
            (
                replace_nth(
                    HOTP_PLAIN,
                    "<pskc:PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=<",
                    "<pskc:PlainValue><",
                    1,
                ),
                1,
                "Secret must be 1 to",
            ),
        ];
        for (xml, want_index, want_reason) in cases {
            let (index, _, reason) = entry(parse_pskc(&xml, None).unwrap_err());
            assert_eq!(index, want_index, "{reason}");
            assert!(
                reason.contains(want_reason),
                "{reason} does not contain {want_reason}"
            );
        }
    }

    #[test]
    fn serial_falls_back_to_key_id_and_names_errors() {
        let xml = replace_nth(
            HOTP_PLAIN,
            "<pskc:SerialNo>600000001</pskc:SerialNo>",
            "",
            1,
        );
        let t = parse_pskc(&xml, None).unwrap();
        assert_eq!(t[1].serial, "hotp-1");
        let bad = replace_nth(&xml, "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "%%%", 2);
        let (_, name, _) = entry(parse_pskc(&bad, None).unwrap_err());
        assert_eq!(name, "hotp-1");
    }

    #[test]
    fn duplicate_serials() {
        let xml = replace_nth(HOTP_PLAIN, "600000002", "600000000", 1);
        assert_eq!(
            parse_pskc(&xml, None).unwrap_err(),
            PskcError::DuplicateSerial {
                serial: "600000000".into(),
                first: 1,
                second: 3
            }
        );
    }

    #[test]
    fn totp_parameters() {
        let xml = TOTP_PLAIN
            .replacen(
                "<pskc:ResponseFormat Length=\"6\"/>",
                "<pskc:Suite>HMAC-SHA256</pskc:Suite><pskc:ResponseFormat Length=\"8\" Encoding=\"DECIMAL\"/>",
                1,
            )
            .replacen(
                "<pskc:PlainValue>30</pskc:PlainValue>\n    </pskc:TimeInterval>",
                "<pskc:PlainValue>60</pskc:PlainValue>\n    </pskc:TimeInterval><pskc:Time><pskc:PlainValue>1000</pskc:PlainValue></pskc:Time>",
                1,
            );
        let t = parse_pskc(&xml, None).unwrap();
        assert_eq!(t[0].algorithm, OtpAlgorithm::Sha256);
        assert_eq!(t[0].digits, 8);
        assert_eq!(t[0].kind, TokenKind::Totp { step: 60, t0: 1000 });
        assert_eq!(t[1].kind, TokenKind::Totp { step: 30, t0: 0 });
        // A number directly in the element, without PlainValue.
        let xml = replace_nth(HOTP_PLAIN, "<pskc:PlainValue>0</pskc:PlainValue>", "7", 1);
        assert_eq!(
            parse_pskc(&xml, None).unwrap()[0].kind,
            TokenKind::Hotp { counter: 7 }
        );
        let xml = replace_nth(
            HOTP_PLAIN,
            "<pskc:PlainValue>0</pskc:PlainValue>",
            "<pskc:EncryptedValue/>",
            3,
        );
        assert_eq!(
            entry(parse_pskc(&xml, None).unwrap_err()).2,
            "encrypted Counter is not supported"
        );
        // TimeInterval absent: 30 seconds.
        let xml = replace_nth(TOTP_PLAIN, "<pskc:TimeInterval>", "<pskc:Unknown>", 1).replacen(
            "</pskc:TimeInterval>",
            "</pskc:Unknown>",
            1,
        );
        assert_eq!(
            parse_pskc(&xml, None).unwrap()[0].kind,
            TokenKind::Totp { step: 30, t0: 0 }
        );
        let xml = TOTP_PLAIN.replacen(
            "<pskc:ResponseFormat",
            "<pskc:Suite>MD5</pskc:Suite><pskc:ResponseFormat",
            1,
        );
        assert!(
            entry(parse_pskc(&xml, None).unwrap_err())
                .2
                .contains("Suite")
        );
    }

    #[test]
    fn legacy_algorithm_uris() {
        let xml = HOTP_PLAIN.replace(
            "urn:ietf:params:xml:ns:keyprov:pskc:hotp",
            "http://www.ietf.org/keyprov/pskc#hotp",
        );
        assert_eq!(
            parse_pskc(&xml, None).unwrap()[0].kind,
            TokenKind::Hotp { counter: 0 }
        );
        let xml = TOTP_PLAIN.replace(
            "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            "http://www.ietf.org/keyprov/pskc#totp",
        );
        assert!(matches!(
            parse_pskc(&xml, None).unwrap()[0].kind,
            TokenKind::Totp { .. }
        ));
    }

    #[test]
    fn malformed_xml() {
        assert!(matches!(
            parse_pskc("<pskc:KeyContainer", None),
            Err(PskcError::Xml(_))
        ));
        assert!(matches!(parse_pskc("", None), Err(PskcError::Xml(_))));
        assert!(matches!(
            parse_pskc(&HOTP_PLAIN[..HOTP_PLAIN.len() - 30], None),
            Err(PskcError::Xml(_))
        ));
        assert!(matches!(
            parse_pskc("<KeyContainer xmlns=\"urn:other\"/>", None),
            Err(PskcError::Xml(_))
        ));
        assert!(matches!(
            parse_pskc(
                &HOTP_PLAIN.replace("Version=\"1.0\"", "Version=\"2.0\""),
                None
            ),
            Err(PskcError::Unsupported(_))
        ));
    }

    #[test]
    fn dtd_and_entities_are_refused() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0"><KeyPackage>&lol2;</KeyPackage></KeyContainer>"#;
        assert_eq!(parse_pskc(bomb, None).unwrap_err(), PskcError::Dtd);
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><KeyContainer/>"#;
        assert_eq!(parse_pskc(xxe, None).unwrap_err(), PskcError::Dtd);
        // An entity reference without a DTD is just malformed.
        let undeclared =
            r#"<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc">&xxe;</KeyContainer>"#;
        assert!(matches!(
            parse_pskc(undeclared, None),
            Err(PskcError::Xml(_))
        ));
    }

    #[test]
    fn empty_container() {
        let xml = r#"<?xml version="1.0"?><pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0"/>"#;
        assert_eq!(parse_pskc(xml, None).unwrap_err(), PskcError::Empty);
    }

    #[test]
    fn too_large() {
        let big = " ".repeat(MAX_PSKC_BYTES + 1);
        assert_eq!(parse_pskc(&big, None).unwrap_err(), PskcError::TooLarge);
    }

    #[test]
    fn debug_redacts_secrets() {
        let t = parse_pskc(HOTP_PLAIN, None).unwrap();
        let dbg = format!("{:?}", t[0]);
        assert!(
            dbg.contains("600000000") && dbg.contains("redacted"),
            "{dbg}"
        );
        assert!(
            !dbg.contains("49, 50") && !dbg.contains("12345678901234567890"),
            "{dbg}"
        );
        assert_eq!(format!("{:?}", pass("qwerty")), "Passphrase(<redacted>)");
        assert!(!format!("{:?}", psk()).contains("18"));
    }

    #[test]
    fn aes256_and_mac_sha256_roundtrip() {
        // Built here with the RustCrypto encryptor: checks the AES-256 path and an
        // xmldsig-more MAC URI, which the python-pskc files do not use.
        use cbc::cipher::BlockModeEncrypt;
        let key = [0x42u8; 32];
        let mac_key = [0x24u8; 20];
        let enc = |iv: [u8; 16], pt: &[u8]| {
            let mut out = iv.to_vec();
            out.extend(
                cbc::Encryptor::<Aes256>::new_from_slices(&key, &iv)
                    .unwrap()
                    .encrypt_padded_vec::<Pkcs7>(pt),
            );
            out
        };
        let secret_ct = enc([1; 16], SECRET);
        let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&mac_key).unwrap();
        m.update(&secret_ct);
        let tag = m.finalize().into_bytes();
        let b = |d: &[u8]| data_encoding::BASE64.encode(d);
        let xml = format!(
            r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
 <EncryptionKey><ds:KeyName>k</ds:KeyName></EncryptionKey>
 <MACMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"><MACKey>
  <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/>
  <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>
 <KeyPackage><DeviceInfo><SerialNo>S1</SerialNo></DeviceInfo>
  <Key Id="k1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp"><Data><Secret><EncryptedValue>
   <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes256-cbc"/>
   <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></EncryptedValue>
   <ValueMAC>{}</ValueMAC></Secret></Data></Key></KeyPackage>
</KeyContainer>"#,
            b(&enc([2; 16], &mac_key)),
            b(&secret_ct),
            b(&tag)
        );
        let k = PskcKey::PreShared(Zeroizing::new(key.to_vec()));
        let t = parse_pskc(&xml, Some(&k)).unwrap();
        assert_eq!(t[0].secret.as_slice(), SECRET);
        assert_eq!(t[0].kind, TokenKind::Totp { step: 30, t0: 0 });
        let k16 = PskcKey::PreShared(Zeroizing::new(vec![0x42; 16]));
        assert_eq!(
            parse_pskc(&xml, Some(&k16)).unwrap_err(),
            PskcError::KeyLength {
                expected: 32,
                got: 16
            }
        );
    }
}
