//! Sealing of secrets at rest (OTP seeds) with AES-256-GCM (aws-lc-rs).
//!
//! A sealed value is `version (1) || nonce (12) || ciphertext || tag (16)`. The caller's
//! associated data (e.g. the device serial) binds a sealed value to its row, so it cannot
//! be moved to another one. The key is 32 random bytes in a file of mode 0600.
//!
//! The private-file helpers here are shared with [`crate::jose`].

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::random::random_bytes;

/// Length of a seal key in bytes.
pub const KEY_LEN: usize = 32;
/// Format version written as the first byte of every sealed value.
const VERSION: u8 = 1;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Reading or writing the key file failed.
    #[error("seal key {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The key file may be read or written by others than its owner.
    #[error("seal key {} has mode {mode:o}; it must be private to its owner (chmod 600)", path.display())]
    InsecureMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is not 32 bytes long.
    #[error("a seal key is {KEY_LEN} bytes, this one is {0}")]
    KeyLength(usize),
    /// The sealed value is too short to hold a version, nonce and tag.
    #[error("sealed value is truncated")]
    Truncated,
    /// The sealed value has a format version this build does not know.
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    /// Authentication failed: wrong key, wrong associated data, or altered data.
    #[error("sealed value does not open (wrong key, wrong associated data, or altered)")]
    Open,
    /// The plaintext is too large for AES-GCM.
    #[error("value too large to seal")]
    TooLarge,
}

/// An AES-256-GCM key for sealing secrets at rest.
pub struct SealKey {
    /// The key, held by aws-lc-rs (which clears it on drop).
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(AES-256-GCM, <redacted>)")
    }
}

impl SealKey {
    /// Loads the key at `path`, or creates it (32 random bytes, mode 0600, parent
    /// directories 0700) if there is none. Two processes racing to create it end up with
    /// the same key: the file is linked into place only if absent.
    pub fn load_or_create(path: &Path) -> Result<SealKey, SealError> {
        let io_err = |source| SealError::Io {
            path: path.to_path_buf(),
            source,
        };
        match read_private(path) {
            Ok(bytes) => return SealKey::from_bytes(&bytes),
            Err(PrivateReadError::Mode(mode)) => {
                return Err(SealError::InsecureMode {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            Err(PrivateReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(PrivateReadError::Io(e)) => return Err(io_err(e)),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(io_err)?;
        }
        let key = Zeroizing::new(random_bytes::<KEY_LEN>());
        if write_new_private(path, key.as_slice()).map_err(io_err)? {
            SealKey::from_bytes(key.as_slice())
        } else {
            // Someone else created it first: use theirs.
            let bytes = read_private(path).map_err(|e| match e {
                PrivateReadError::Mode(mode) => SealError::InsecureMode {
                    path: path.to_path_buf(),
                    mode,
                },
                PrivateReadError::Io(e) => io_err(e),
            })?;
            SealKey::from_bytes(&bytes)
        }
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(key: &[u8]) -> Result<SealKey, SealError> {
        if key.len() != KEY_LEN {
            return Err(SealError::KeyLength(key.len()));
        }
        let unbound =
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::KeyLength(key.len()))?;
        Ok(SealKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plaintext`, binding it to `aad`: `version || nonce || ciphertext+tag`.
    ///
    /// A plaintext too large for AES-GCM (over 64 GiB) yields an empty vector, which never
    /// opens; use [`SealKey::try_seal`] to see that error.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.try_seal(plaintext, aad).unwrap_or_default()
    }

    /// Like [`SealKey::seal`], with the (only theoretical) failure as an error.
    pub fn try_seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(full_aad(aad)),
                &mut out[1 + NONCE_LEN..],
            )
            .map_err(|_| SealError::TooLarge)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value sealed with this key and the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        if version != VERSION {
            return Err(SealError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(full_aad(aad)), buf.as_mut_slice())
            .map_err(|_| SealError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// The AEAD's associated data: the version byte, so it is authenticated too, then the
/// caller's.
fn full_aad(aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + aad.len());
    v.push(VERSION);
    v.extend_from_slice(aad);
    v
}

/// Why a private file could not be read.
pub(crate) enum PrivateReadError {
    /// The operating system refused.
    Io(io::Error),
    /// The file's mode lets others than its owner read or write it.
    Mode(u32),
}

/// Reads a file that must be private to its owner (no group or other permission bits).
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, PrivateReadError> {
    let mut f = fs::File::open(path).map_err(PrivateReadError::Io)?;
    let mode = f.metadata().map_err(PrivateReadError::Io)?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateReadError::Mode(mode));
    }
    let mut buf = Zeroizing::new(Vec::new());
    f.read_to_end(&mut buf).map_err(PrivateReadError::Io)?;
    Ok(buf)
}

/// Creates `dir` and its missing parents with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to a new file at `path` with mode 0600, durably and atomically: a
/// temporary file is written and synced, then hard-linked into place, which fails if
/// `path` exists. Returns `false` (and writes nothing) if `path` already existed.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    write_private(path, bytes, false)
}

/// Writes `bytes` to `path` with mode 0600, durably and atomically, replacing what was
/// there: a reader sees the old content or the new, never a part.
pub fn replace_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_private(path, bytes, true).map(drop)
}

fn write_private(path: &Path, bytes: &[u8], replace: bool) -> io::Result<bool> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".tmp-{}", crate::random::random_token(12)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            return fs::rename(&tmp, path).map(|()| true);
        }
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    // The temporary name goes whatever happened; a failure to remove it is harmless.
    let _ = fs::remove_file(&tmp);
    if matches!(result, Ok(true)) {
        // Make the new directory entry durable too.
        fs::File::open(&dir)?.sync_all()?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> SealKey {
        SealKey::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn roundtrip_and_format() {
        let k = key();
        let sealed = k.seal(b"seed bytes", b"serial-1");
        assert_eq!(sealed.len(), 1 + 12 + 10 + 16);
        assert_eq!(sealed[0], 1);
        assert_eq!(
            k.open(&sealed, b"serial-1").unwrap().as_slice(),
            b"seed bytes"
        );
        // Fresh nonce each time.
        assert_ne!(k.seal(b"seed bytes", b"serial-1"), sealed);
        let empty = k.seal(b"", b"");
        assert_eq!(k.open(&empty, b"").unwrap().len(), 0);
    }

    #[test]
    fn open_refuses_wrong_aad_key_and_tampering() {
        let k = key();
        let sealed = k.seal(b"seed bytes", b"serial-1");
        assert!(matches!(k.open(&sealed, b"serial-2"), Err(SealError::Open)));
        let other = SealKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(matches!(
            other.open(&sealed, b"serial-1"),
            Err(SealError::Open)
        ));
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                matches!(k.open(&t, b"serial-1"), Err(SealError::Open)),
                "byte {i}"
            );
        }
        let mut t = sealed.clone();
        t[0] = 2;
        assert!(matches!(
            k.open(&t, b"serial-1"),
            Err(SealError::UnknownVersion(2))
        ));
        assert!(matches!(
            k.open(&sealed[..28], b"serial-1"),
            Err(SealError::Truncated)
        ));
        assert!(matches!(k.open(&[], b""), Err(SealError::Truncated)));
    }

    #[test]
    fn key_length_is_checked() {
        assert!(matches!(
            SealKey::from_bytes(&[0u8; 16]),
            Err(SealError::KeyLength(16))
        ));
        assert!(matches!(
            SealKey::from_bytes(&[]),
            Err(SealError::KeyLength(0))
        ));
    }

    #[test]
    fn debug_hides_the_key() {
        let dbg = format!("{:?}", key());
        assert!(!dbg.contains('7'), "{dbg}");
    }

    #[test]
    fn load_or_create_persists_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/seal.key");
        let k1 = SealKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let sealed = k1.seal(b"x", b"a");
        let k2 = SealKey::load_or_create(&path).unwrap();
        assert_eq!(k2.open(&sealed, b"a").unwrap().as_slice(), b"x");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn load_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        fs::write(&path, [1u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        match SealKey::load_or_create(&path) {
            Err(e @ SealError::InsecureMode { mode: 0o644, .. }) => {
                assert!(e.to_string().contains("644"))
            }
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SealKey::load_or_create(&path).is_ok());
        fs::write(&path, [1u8; 31]).unwrap();
        assert!(matches!(
            SealKey::load_or_create(&path),
            Err(SealError::KeyLength(31))
        ));
        let missing_parent = dir.path().join("file-not-dir");
        fs::write(&missing_parent, b"").unwrap();
        assert!(matches!(
            SealKey::load_or_create(&missing_parent.join("seal.key")),
            Err(SealError::Io { .. })
        ));
    }
}
