//! The PKCS#11 key store (cryptoki): keys are generated on a token and never leave it.
//!
//! A module may be initialised (C_Initialize) only once per process, so its context is kept
//! in a process-wide table for the life of the process. Login state on a token is shared by
//! all sessions of the process, so stores opened on the same token share one logged-in
//! session (behind a mutex) and a second `open` checks its PIN against the first's.
//!
//! SoftHSM2 2.6.1 has no CKM_ECDSA_SHA256: the message is hashed here and the token signs
//! the digest with CKM_ECDSA, which returns raw `r || s`; that is DER-encoded here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use p256::pkcs8::EncodePublicKey;
use zeroize::Zeroizing;

use super::{KeyRef, KeyStore, KeyStoreError};
use crate::random::{ct_eq, random_bytes, sha256};

/// DER of the named curve P-256 (OID 1.2.840.10045.3.1.7), the CKA_EC_PARAMS of our keys.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Length of the random CKA_ID given to a new key.
const ID_LEN: usize = 16;

/// Initialised module contexts by canonical module path.
static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
/// Open tokens by (canonical module path, token label); weak, so a token's session closes
/// (and the token logs out) when its last store is dropped.
static TOKENS: OnceLock<Mutex<HashMap<TokenKey, Weak<OpenToken>>>> = OnceLock::new();
/// A token's key in [`TOKENS`]: its module's canonical path and its label.
type TokenKey = (PathBuf, String);

/// Keys on a PKCS#11 token.
pub struct Pkcs11KeyStore {
    /// The token, shared with other stores opened on it in this process.
    token: Arc<OpenToken>,
}

/// A token this process has logged in to.
struct OpenToken {
    /// The module's canonical path (for messages).
    module: PathBuf,
    /// The module's context.
    ctx: Pkcs11,
    /// The token's label.
    label: String,
    /// The user PIN: to log in again after the session is lost, and to check a second
    /// `open` on this token (the token itself would answer "already logged in").
    pin: Zeroizing<String>,
    /// The logged-in session; `None` after it was lost, reopened at the next call.
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for Pkcs11KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11KeyStore")
            .field("module", &self.token.module)
            .field("token", &self.token.label)
            .finish_non_exhaustive()
    }
}

/// Why an operation on the session failed.
enum Fail {
    /// The session is gone (closed, logged out, token removed): reconnect and try again.
    Lost(&'static str, CkError),
    /// Anything else.
    Other(KeyStoreError),
}

impl From<KeyStoreError> for Fail {
    fn from(e: KeyStoreError) -> Fail {
        Fail::Other(e)
    }
}

/// Maps a cryptoki error of the PKCS#11 function `op`.
fn ck(op: &'static str) -> impl FnOnce(CkError) -> Fail {
    move |e| match e {
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent,
            _,
        ) => Fail::Lost(op, e),
        e => Fail::Other(p11(op, e)),
    }
}

/// A [`KeyStoreError::Pkcs11`] for a failed call of `op` (return codes only, no data).
fn p11(op: &'static str, e: CkError) -> KeyStoreError {
    KeyStoreError::Pkcs11 {
        op,
        detail: e.to_string(),
    }
}

impl Pkcs11KeyStore {
    /// Opens the token labelled `token_label` through the PKCS#11 module at `module` and logs
    /// in with `user_pin`.
    pub fn open(
        module: &Path,
        token_label: &str,
        user_pin: &str,
    ) -> Result<Pkcs11KeyStore, KeyStoreError> {
        let (module, ctx) = context(module)?;
        let mut tokens = TOKENS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, t| t.strong_count() > 0);
        let key = (module.clone(), token_label.to_owned());
        if let Some(token) = tokens.get(&key).and_then(Weak::upgrade) {
            return if ct_eq(token.pin.as_bytes(), user_pin.as_bytes()) {
                Ok(Pkcs11KeyStore { token })
            } else {
                Err(KeyStoreError::BadPin {
                    token: token_label.to_owned(),
                })
            };
        }
        let token = Arc::new(OpenToken {
            module,
            ctx,
            label: token_label.to_owned(),
            pin: Zeroizing::new(user_pin.to_owned()),
            session: Mutex::new(None),
        });
        let session = token.connect()?;
        *token.lock_session() = Some(session);
        tokens.insert(key, Arc::downgrade(&token));
        Ok(Pkcs11KeyStore { token })
    }
}

/// The initialised context of the module at `module`, loading it at first use.
fn context(module: &Path) -> Result<(PathBuf, Pkcs11), KeyStoreError> {
    let load_err = |reason: String| KeyStoreError::ModuleLoad {
        module: module.to_path_buf(),
        reason,
    };
    let canonical = module.canonicalize().map_err(|e| load_err(e.to_string()))?;
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(&canonical) {
        return Ok((canonical, ctx.clone()));
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| load_err(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Already initialised: the same library reached through another path.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_err(format!("C_Initialize: {e}"))),
    }
    modules.insert(canonical.clone(), ctx.clone());
    Ok((canonical, ctx))
}

impl OpenToken {
    fn lock_session(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        // A panic cannot leave the Option half-written.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Finds the token, opens a read-write session on it and logs in.
    fn connect(&self) -> Result<Session, KeyStoreError> {
        let slot = self.slot()?;
        let session = self
            .ctx
            .open_rw_session(slot)
            .map_err(|e| p11("C_OpenSession", e))?;
        let pin = AuthPin::new(self.pin.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            // Another session of this process is logged in already.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => Err(KeyStoreError::BadPin {
                token: self.label.clone(),
            }),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(KeyStoreError::PinLocked {
                token: self.label.clone(),
            }),
            Err(e) => Err(p11("C_Login", e)),
        }
    }

    /// The slot holding the initialised token with our label.
    fn slot(&self) -> Result<Slot, KeyStoreError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| p11("C_GetSlotList", e))?;
        for slot in slots {
            let info = self
                .ctx
                .get_token_info(slot)
                .map_err(|e| p11("C_GetTokenInfo", e))?;
            if info.token_initialized() && info.label() == self.label {
                return Ok(slot);
            }
        }
        Err(KeyStoreError::TokenNotFound {
            token: self.label.clone(),
        })
    }
}

impl Pkcs11KeyStore {
    /// Runs `f` on the logged-in session; if the session was lost, reconnects and runs it
    /// once more.
    fn with_session<T>(&self, f: impl Fn(&Session) -> Result<T, Fail>) -> Result<T, KeyStoreError> {
        let mut guard = self.token.lock_session();
        let mut retried = false;
        loop {
            let session = match guard.take() {
                Some(s) => s,
                None => self.token.connect()?,
            };
            match f(&session) {
                Ok(v) => {
                    *guard = Some(session);
                    return Ok(v);
                }
                Err(Fail::Other(e)) => {
                    *guard = Some(session);
                    return Err(e);
                }
                // The lost session is dropped; the next attempt (or call) opens another.
                Err(Fail::Lost(_, _)) if !retried => retried = true,
                Err(Fail::Lost(op, e)) => return Err(p11(op, e)),
            }
        }
    }
}

/// The key objects of class `class` with CKA_ID `id` and CKA_LABEL `label`.
fn find(
    s: &Session,
    class: ObjectClass,
    label: &str,
    id: &KeyRef,
) -> Result<Vec<ObjectHandle>, Fail> {
    if id.0.is_empty() {
        return Err(KeyStoreError::MalformedKeyRef("empty").into());
    }
    s.find_objects(&[
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC),
        Attribute::Id(id.0.clone()),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
    .map_err(ck("C_FindObjects"))
}

/// The one key object of class `class` with this id and label.
fn find_one(
    s: &Session,
    class: ObjectClass,
    label: &str,
    id: &KeyRef,
) -> Result<ObjectHandle, Fail> {
    find(s, class, label, id)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            KeyStoreError::KeyNotFound {
                label: label.to_owned(),
            }
            .into()
        })
}

/// The DER SPKI of the public key object `public`.
fn read_spki(s: &Session, public: ObjectHandle) -> Result<Vec<u8>, Fail> {
    let attrs = s
        .get_attributes(public, &[AttributeType::EcPoint])
        .map_err(ck("C_GetAttributeValue"))?;
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or(KeyStoreError::TokenData("EC point"))?;
    Ok(spki_from_ec_point(&point)?)
}

/// The SPKI of a P-256 CKA_EC_POINT. PKCS#11 specifies the point wrapped in a DER OCTET
/// STRING; some tokens return it bare, which is accepted too.
fn spki_from_ec_point(point: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    let sec1 = match point {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        bare => bare,
    };
    let key =
        p256::PublicKey::from_sec1_bytes(sec1).map_err(|_| KeyStoreError::TokenData("EC point"))?;
    key.to_public_key_der()
        .map(|der| der.as_bytes().to_vec())
        .map_err(|_| KeyStoreError::TokenData("EC point"))
}

/// DER `Ecdsa-Sig-Value` of a raw CKM_ECDSA P-256 signature (`r || s`, 32 bytes each).
fn raw_to_der(raw: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    let sig = p256::ecdsa::Signature::from_slice(raw)
        .map_err(|_| KeyStoreError::TokenData("signature"))?;
    Ok(sig.to_der().as_bytes().to_vec())
}

impl KeyStore for Pkcs11KeyStore {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn generate_p256(&self, label: &str) -> Result<(KeyRef, Vec<u8>), KeyStoreError> {
        self.with_session(|s| {
            let id = random_bytes::<ID_LEN>().to_vec();
            let common = [
                Attribute::Token(true),
                Attribute::Id(id.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let mut public = common.to_vec();
            public.extend([
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(P256_PARAMS.to_vec()),
            ]);
            let mut private = common.to_vec();
            private.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
            ]);
            let (pub_h, priv_h) = s
                .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
                .map_err(ck("C_GenerateKeyPair"))?;
            match read_spki(s, pub_h) {
                Ok(spki) => Ok((KeyRef(id), spki)),
                Err(e) => {
                    // Leave no key behind that the caller has no reference to.
                    let _ = s.destroy_object(priv_h);
                    let _ = s.destroy_object(pub_h);
                    Err(e)
                }
            }
        })
    }

    fn public_key(&self, label: &str, key: &KeyRef) -> Result<Vec<u8>, KeyStoreError> {
        self.with_session(|s| read_spki(s, find_one(s, ObjectClass::PUBLIC_KEY, label, key)?))
    }

    fn sign(&self, label: &str, key: &KeyRef, msg: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let digest = sha256(msg);
        let raw = self.with_session(|s| {
            let private = find_one(s, ObjectClass::PRIVATE_KEY, label, key)?;
            s.sign(&Mechanism::Ecdsa, private, &digest)
                .map_err(ck("C_Sign"))
        })?;
        raw_to_der(&raw)
    }

    fn destroy(&self, label: &str, key: &KeyRef) -> Result<(), KeyStoreError> {
        self.with_session(|s| {
            let mut objects = find(s, ObjectClass::PRIVATE_KEY, label, key)?;
            objects.extend(find(s, ObjectClass::PUBLIC_KEY, label, key)?);
            if objects.is_empty() {
                return Err(KeyStoreError::KeyNotFound {
                    label: label.to_owned(),
                }
                .into());
            }
            for object in objects {
                s.destroy_object(object).map_err(ck("C_DestroyObject"))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::Signature;

    #[test]
    fn raw_signature_to_der() {
        // r with its top bit set needs a leading zero; s with leading zero bytes is shortened.
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[31] = 1;
        raw[34] = 0x11;
        raw[63] = 2;
        let der = raw_to_der(&raw).unwrap();
        let mut want = vec![0x30, 0x43, 0x02, 0x21, 0x00, 0x80];
        want.extend([0u8; 30]);
        want.push(1);
        want.extend([0x02, 0x1e, 0x11]);
        want.extend([0u8; 28]);
        want.push(2);
        assert_eq!(der, want);
        assert_eq!(
            Signature::from_der(&der).unwrap().to_bytes().as_slice(),
            raw
        );
        assert!(matches!(
            raw_to_der(&raw[..63]),
            Err(KeyStoreError::TokenData("signature"))
        ));
        assert!(matches!(
            raw_to_der(&[0u8; 64]),
            Err(KeyStoreError::TokenData("signature"))
        ));
    }

    #[test]
    fn ec_point_wrapped_or_bare() {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        // aws-lc-rs gives the bare uncompressed point and, independently, the SPKI.
        let bare = kp.public_key().as_ref();
        assert_eq!(bare.len(), 65);
        let want = AsDer::<PublicKeyX509Der>::as_der(kp.public_key()).unwrap();
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend_from_slice(bare);
        assert_eq!(spki_from_ec_point(&wrapped).unwrap(), want.as_ref());
        assert_eq!(spki_from_ec_point(bare).unwrap(), want.as_ref());
        let mut off_curve = wrapped.clone();
        off_curve[66] ^= 1;
        assert!(matches!(
            spki_from_ec_point(&off_curve),
            Err(KeyStoreError::TokenData("EC point"))
        ));
        assert!(spki_from_ec_point(&[]).is_err());
    }
}
