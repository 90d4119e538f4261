//! The device key at rest: a JSON file on "the phone", the key wrapped under the app PIN.
//!
//! PIN → Argon2id (m = 19 456 KiB, t = 2, p = 1, random 16-byte salt) → 32-byte key →
//! AES-256-GCM over the PKCS#8 of the device key, random 12-byte nonce, the app id as
//! associated data (so a file's key material cannot be moved under another app id).
//!
//! Five wrong PINs in a row erase the key material: the person must activate the app again,
//! which takes the security period of a new activation. The attempt is counted on disk
//! *before* the PIN is tried, so killing the process mid-check does not win a free guess;
//! unlocks of one vault are serialised by a lock on a `.lock` file beside it.
//!
//! What this does and does not protect: the counter stops someone at the keyboard. Someone
//! who copies the file can guess a short PIN offline (10 000 four-digit PINs × one Argon2id
//! each), so the file must stay private (mode 0600, checked on every read). A real phone
//! keeps the key in its hardware keystore instead; this is the reference app.
//!
//! File format, version 1 (all binary values base64url without padding):
//!
//! ```json
//! {
//!   "version": 1,
//!   "app_id": "…",
//!   "server": "https://eid.example",
//!   "failed_pin_attempts": 0,
//!   "key": { "salt": "…16 bytes…", "nonce": "…12 bytes…",
//!            "pin_check": "…32 bytes…", "ciphertext": "…PKCS#8 + 16-byte tag…" }
//! }
//! ```
//!
//! `key` is `null` once wiped; `app_id` stays so the app can say what was wiped.
//! `pin_check` is HMAC-SHA256(derived key, `segl-vault-v1 pin check`): it tells a wrong PIN
//! (counted) from an altered file (refused as [`VaultError::Tampered`], not counted). It
//! helps an offline guesser no more than the GCM tag already does.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::device::{DeviceKey, DeviceKeyError};

/// The file format this build writes and reads.
const VERSION: u32 = 1;
/// Wrong PINs in a row that erase the key.
pub const MAX_PIN_ATTEMPTS: u32 = 5;
/// Shortest and longest app PIN, in digits.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=12;
/// Argon2id memory (KiB), passes and lanes of version 1: the OWASP minimum.
const ARGON2_M_KIB: u32 = 19_456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;
/// Salt length, bytes.
const SALT_LEN: usize = 16;
/// Length of the derived key (AES-256) and of the PIN check, bytes.
const KEY_LEN: usize = 32;
/// The message of the PIN check.
const PIN_CHECK_MSG: &[u8] = b"segl-vault-v1 pin check";
/// A vault file is well under a kilobyte; a bigger one is not ours.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Why the vault could not be created, read or unlocked. None carries a PIN or a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The PIN is not 4 to 12 digits.
    #[error("the app PIN must be 4 to 12 digits (0-9)")]
    PinFormat,
    /// There is no vault file: the app was never activated here.
    #[error("no app is activated here ({}); activate the app first", path.display())]
    NotFound {
        /// The vault file looked for.
        path: PathBuf,
    },
    /// The key was erased after too many wrong PINs.
    #[error("the app key was erased after {MAX_PIN_ATTEMPTS} wrong PINs; activate the app again")]
    Wiped,
    /// The PIN is wrong; the attempt was counted.
    #[error("wrong PIN; {remaining} tries left before the app key is erased")]
    WrongPin {
        /// Wrong PINs still allowed before the key is erased.
        remaining: u32,
    },
    /// The PIN is right but the key material does not decrypt: the file was altered
    /// (ciphertext, nonce or app id) or damaged.
    #[error("the vault file was altered or damaged; activate the app again")]
    Tampered,
    /// The file is not a vault file of a format this build knows.
    #[error("{} is not a valid vault file: {detail}", path.display())]
    Corrupt {
        /// The vault file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The file has a version this build does not know.
    #[error("vault file version {0} is not supported by this version of segl")]
    UnsupportedVersion(u32),
    /// The file may be read or written by others than its owner.
    #[error("vault file {} has mode {mode:o}; it must be private to its owner (chmod 600)", path.display())]
    InsecureMode {
        /// The vault file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing a file failed.
    #[error("vault file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The device key could not be exported or read back.
    #[error(transparent)]
    Key(#[from] DeviceKeyError),
    /// Key derivation or encryption failed inside the library (not a wrong PIN).
    #[error("vault cryptography failed: {0}")]
    Crypto(&'static str),
}

/// What [`Vault::status`] reports, without the PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultStatus {
    /// The app id the server gave at activation.
    pub app_id: String,
    /// The server's base URL.
    pub server: String,
    /// Wrong PINs in a row so far.
    pub failed_pin_attempts: u32,
    /// Whether the key was erased after too many wrong PINs.
    pub wiped: bool,
}

/// The vault file, as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultFile {
    /// Format version; 1 fixes the KDF parameters and the algorithms.
    version: u32,
    /// The app id from activation; also the AEAD's associated data.
    app_id: String,
    /// The server's base URL.
    server: String,
    /// Wrong PINs in a row, counted before each try.
    failed_pin_attempts: u32,
    /// The wrapped key; `None` once wiped.
    key: Option<WrappedKey>,
}

/// The device key under the PIN. All fields base64url without padding.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedKey {
    /// Argon2id salt, 16 bytes.
    salt: String,
    /// AES-GCM nonce, 12 bytes.
    nonce: String,
    /// HMAC-SHA256(derived key, [`PIN_CHECK_MSG`]).
    pin_check: String,
    /// AES-256-GCM of the PKCS#8, tag appended.
    ciphertext: String,
}

/// Operations on a vault file. The file is the state: every call reads it afresh.
pub struct Vault;

impl Vault {
    /// Writes a new vault at `path` holding `key` under `pin`, replacing any vault there.
    ///
    /// The file is written with mode 0600 to a temporary name in the same directory, synced,
    /// and renamed into place, so a crash leaves either the old vault or the new one.
    /// Missing parent directories are created with mode 0700.
    pub fn create(
        path: &Path,
        app_id: &str,
        server: &str,
        key: &DeviceKey,
        pin: &str,
    ) -> Result<(), VaultError> {
        check_pin(pin)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err(parent))?;
        }
        let _lock = lock(path)?;
        let salt: [u8; SALT_LEN] = segl_crypto::random::random_bytes();
        let nonce: [u8; NONCE_LEN] = segl_crypto::random::random_bytes();
        let derived = derive(pin, &salt)?;
        // Room for the tag up front: a reallocation would leave a copy of the PKCS#8 behind.
        let pkcs8 = key.to_pkcs8()?;
        let mut buf = Zeroizing::new(Vec::with_capacity(pkcs8.len() + AES_256_GCM.tag_len()));
        buf.extend_from_slice(&pkcs8);
        aead_key(&derived)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(app_id.as_bytes()),
                &mut *buf,
            )
            .map_err(|_| VaultError::Crypto("AES-GCM seal"))?;
        let file = VaultFile {
            version: VERSION,
            app_id: app_id.to_owned(),
            server: server.to_owned(),
            failed_pin_attempts: 0,
            key: Some(WrappedKey {
                salt: BASE64URL_NOPAD.encode(&salt),
                nonce: BASE64URL_NOPAD.encode(&nonce),
                pin_check: BASE64URL_NOPAD.encode(pin_check(&derived).as_ref()),
                ciphertext: BASE64URL_NOPAD.encode(&buf),
            }),
        };
        write(path, &file)
    }

    /// Unlocks the device key with `pin`.
    ///
    /// A PIN that is not 4–12 digits is refused before the file is touched (it cannot be
    /// right, so it is not counted). Otherwise the attempt is counted on disk first; a
    /// right PIN resets the count, a wrong one returns [`VaultError::WrongPin`], and the
    /// fifth wrong one in a row erases the key and returns [`VaultError::Wiped`].
    pub fn unlock(path: &Path, pin: &str) -> Result<DeviceKey, VaultError> {
        check_pin(pin)?;
        let _lock = lock(path)?;
        let mut file = read(path)?;
        let Some(wrapped) = file.key.take() else {
            return Err(VaultError::Wiped);
        };
        if file.failed_pin_attempts >= MAX_PIN_ATTEMPTS {
            // Counted to the limit and then interrupted before the wipe: finish it.
            return wipe(path, file);
        }
        let corrupt = |detail: &str| VaultError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.to_owned(),
        };
        let salt = decode(&wrapped.salt).filter(|s| s.len() == SALT_LEN);
        let salt = salt.ok_or_else(|| corrupt("salt is not 16 bytes of base64url"))?;
        let nonce = decode(&wrapped.nonce)
            .and_then(|n| Nonce::try_assume_unique_for_key(&n).ok())
            .ok_or_else(|| corrupt("nonce is not 12 bytes of base64url"))?;
        let check = decode(&wrapped.pin_check)
            .filter(|c| c.len() == KEY_LEN)
            .ok_or_else(|| corrupt("pin_check is not 32 bytes of base64url"))?;
        let ciphertext =
            decode(&wrapped.ciphertext).ok_or_else(|| corrupt("ciphertext is not base64url"))?;

        // Count first, so an interrupted check still costs an attempt.
        let attempts = file.failed_pin_attempts.saturating_add(1);
        file.failed_pin_attempts = attempts;
        file.key = Some(wrapped);
        write(path, &file)?;

        let derived = derive(pin, &salt)?;
        let pin_key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        if hmac::verify(&pin_key, PIN_CHECK_MSG, &check).is_err() {
            if attempts >= MAX_PIN_ATTEMPTS {
                return wipe(path, file);
            }
            return Err(VaultError::WrongPin {
                remaining: MAX_PIN_ATTEMPTS - attempts,
            });
        }

        // The PIN is right: reset the count whatever the key material turns out to be.
        file.failed_pin_attempts = 0;
        write(path, &file)?;

        let mut buf = Zeroizing::new(ciphertext);
        let pkcs8 = aead_key(&derived)?
            .open_in_place(nonce, Aad::from(file.app_id.as_bytes()), &mut buf[..])
            .map_err(|_| VaultError::Tampered)?;
        DeviceKey::from_pkcs8(pkcs8).map_err(|_| VaultError::Tampered)
    }

    /// What the vault at `path` holds, without unlocking it.
    pub fn status(path: &Path) -> Result<VaultStatus, VaultError> {
        let file = read(path)?;
        Ok(VaultStatus {
            wiped: file.key.is_none(),
            app_id: file.app_id,
            server: file.server,
            failed_pin_attempts: file.failed_pin_attempts,
        })
    }
}

/// Checks a PIN is 4 to 12 ASCII digits (an app asks before using it).
pub fn check_pin(pin: &str) -> Result<(), VaultError> {
    if PIN_DIGITS.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(VaultError::PinFormat)
    }
}

/// Argon2id of the PIN with version 1's parameters.
fn derive(pin: &str, salt: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(KEY_LEN))
        .map_err(|_| VaultError::Crypto("Argon2 parameters"))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), salt, out.as_mut())
        .map_err(|_| VaultError::Crypto("Argon2"))?;
    Ok(out)
}

/// The AES-256-GCM key (aws-lc-rs keeps its own copy and clears it on drop).
fn aead_key(derived: &[u8; KEY_LEN]) -> Result<LessSafeKey, VaultError> {
    UnboundKey::new(&AES_256_GCM, derived)
        .map(LessSafeKey::new)
        .map_err(|_| VaultError::Crypto("AES-GCM key"))
}

/// The PIN check stored beside the ciphertext.
fn pin_check(derived: &[u8; KEY_LEN]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, derived), PIN_CHECK_MSG)
}

fn decode(s: &str) -> Option<Vec<u8>> {
    BASE64URL_NOPAD.decode(s.as_bytes()).ok()
}

/// Erases the key material, keeping the rest, and reports [`VaultError::Wiped`].
fn wipe(path: &Path, mut file: VaultFile) -> Result<DeviceKey, VaultError> {
    file.key = None;
    file.failed_pin_attempts = file.failed_pin_attempts.max(MAX_PIN_ATTEMPTS);
    write(path, &file)?;
    Err(VaultError::Wiped)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VaultError + '_ {
    move |source| VaultError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes an exclusive lock on `<path>.lock`, held until the returned file is dropped, so
/// that two unlocks cannot both read the same attempt count.
fn lock(path: &Path) -> Result<File, VaultError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    f.lock().map_err(io_err(&lock_path))?;
    Ok(f)
}

/// Reads and parses the vault, refusing a file others may read or write.
fn read(path: &Path) -> Result<VaultFile, VaultError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VaultError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let meta = f.metadata().map_err(io_err(path))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(VaultError::InsecureMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let corrupt = |detail: String| VaultError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    if meta.len() > MAX_FILE_LEN {
        return Err(corrupt(format!("larger than {MAX_FILE_LEN} bytes")));
    }
    let mut text = String::new();
    f.take(MAX_FILE_LEN)
        .read_to_string(&mut text)
        .map_err(io_err(path))?;
    // Read the version alone first, so a future format says "unsupported", not "corrupt".
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if versioned.version != VERSION {
        return Err(VaultError::UnsupportedVersion(versioned.version));
    }
    serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))
}

/// Writes the vault atomically with mode 0600: temporary file, sync, rename, sync directory.
fn write(path: &Path, file: &VaultFile) -> Result<(), VaultError> {
    let mut json =
        serde_json::to_vec_pretty(file).map_err(|e| io_err(path)(io::Error::other(e)))?;
    json.push(b'\n');
    segl_crypto::seal::replace_private(path, &json).map_err(io_err(path))
}
