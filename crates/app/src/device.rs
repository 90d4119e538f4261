//! The device key: an ECDSA P-256 key pair created on the phone at activation.
//!
//! Its public key goes to the server once, as the uncompressed point in base64url; its
//! private key never leaves the phone (at rest it is in the [`crate::vault`]). Each "Yes,
//! it's me" or "No" is a signature over [`ApprovalPayload::to_signed_bytes`], in the fixed
//! `r || s` form that `segl_crypto::device::verify_approval` checks.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use data_encoding::BASE64URL_NOPAD;
use segl_core::app::{AppError, ApprovalPayload};
use zeroize::Zeroizing;

/// Why a device-key operation failed. None carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceKeyError {
    /// The system could not generate a key (no randomness).
    #[error("could not generate a device key")]
    KeyGen,
    /// The bytes are not a PKCS#8 P-256 private key.
    #[error("not a PKCS#8 P-256 private key")]
    Pkcs8,
    /// The key could not be exported (PKCS#8 or SubjectPublicKeyInfo).
    #[error("could not export the device key")]
    Export,
    /// The payload has an empty or oversized field, so it is not signed.
    #[error("invalid approval payload: {0}")]
    Payload(#[from] AppError),
    /// The signature operation failed.
    #[error("signing with the device key failed")]
    Sign,
}

/// The phone's device key (ECDSA P-256). `Debug` shows only the public key.
pub struct DeviceKey {
    /// The key pair, held by aws-lc-rs (which clears the private key on drop).
    pair: EcdsaKeyPair,
}

impl DeviceKey {
    /// A fresh random key, as made at activation.
    pub fn generate() -> Result<DeviceKey, DeviceKeyError> {
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map(|pair| DeviceKey { pair })
            .map_err(|_| DeviceKeyError::KeyGen)
    }

    /// The key from its PKCS#8 (v1 or v2) DER encoding.
    pub fn from_pkcs8(der: &[u8]) -> Result<DeviceKey, DeviceKeyError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map(|pair| DeviceKey { pair })
            .map_err(|_| DeviceKeyError::Pkcs8)
    }

    /// The private key as PKCS#8 v1 DER, cleared from memory when dropped.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, DeviceKeyError> {
        // aws-lc-rs's Document clears itself on drop too.
        let doc = self.pair.to_pkcs8v1().map_err(|_| DeviceKeyError::Export)?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// The public key as the 65-byte uncompressed point `0x04 || x || y`.
    pub fn public_key_bytes(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key in its wire form: the uncompressed point, base64url without padding.
    pub fn public_key_b64url(&self) -> String {
        BASE64URL_NOPAD.encode(self.public_key_bytes())
    }

    /// The public key as an X.509 SubjectPublicKeyInfo (DER), for tools such as openssl.
    pub fn public_key_spki_der(&self) -> Result<Vec<u8>, DeviceKeyError> {
        AsDer::<PublicKeyX509Der>::as_der(self.pair.public_key())
            .map(|der| der.as_ref().to_vec())
            .map_err(|_| DeviceKeyError::Export)
    }

    /// Signs the person's answer: ECDSA P-256 / SHA-256 over
    /// [`ApprovalPayload::to_signed_bytes`], returned as the 64 bytes `r || s`.
    pub fn sign(&self, payload: &ApprovalPayload) -> Result<Vec<u8>, DeviceKeyError> {
        payload.validate()?;
        self.sign_bytes(&payload.to_signed_bytes())
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, DeviceKeyError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| DeviceKeyError::Sign)
    }
}

impl DeviceKey {
    /// Signs a call to the device API (see `segl_core::app::DeviceRequest`), as `r || s`.
    pub fn sign_request(
        &self,
        request: &segl_core::app::DeviceRequest<'_>,
    ) -> Result<Vec<u8>, DeviceKeyError> {
        self.sign_bytes(&request.to_signed_bytes())
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey(P-256, public {})", self.public_key_b64url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use segl_core::app::{Decision, UserVerification};
    use segl_crypto::device::{DeviceError, verify_approval};

    fn payload() -> ApprovalPayload {
        ApprovalPayload {
            request_id: "req-1".into(),
            rp: "Demo Bank".into(),
            verification_code: "elg fjord".into(),
            text_sha256: segl_crypto::random::sha256("Logg inn hos Demo Bank".as_bytes()),
            decision: Decision::Approve,
            user_verification: Some(UserVerification::Pin),
        }
    }

    #[test]
    fn public_key_forms() {
        let key = DeviceKey::generate().unwrap();
        let point = key.public_key_bytes();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 0x04);
        assert_eq!(
            BASE64URL_NOPAD
                .decode(key.public_key_b64url().as_bytes())
                .unwrap(),
            point
        );
        assert_eq!(
            segl_crypto::device::public_key_from_b64url(&key.public_key_b64url()).unwrap(),
            point
        );
        // SubjectPublicKeyInfo of a P-256 key: 26 bytes of header, then the point.
        let spki = key.public_key_spki_der().unwrap();
        assert_eq!(spki.len(), 91);
        assert!(spki.ends_with(point));
        let dbg = format!("{key:?}");
        assert!(dbg.contains(&key.public_key_b64url()), "{dbg}");
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_key() {
        let key = DeviceKey::generate().unwrap();
        let again = DeviceKey::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap();
        assert_eq!(again.public_key_bytes(), key.public_key_bytes());
        assert_eq!(
            DeviceKey::from_pkcs8(b"not a key").unwrap_err(),
            DeviceKeyError::Pkcs8
        );
        assert_ne!(
            DeviceKey::generate().unwrap().public_key_bytes(),
            key.public_key_bytes()
        );
    }

    #[test]
    fn signature_verifies_with_segl_crypto_and_only_for_its_payload() {
        let key = DeviceKey::generate().unwrap();
        let p = payload();
        let sig = key.sign(&p).unwrap();
        assert_eq!(sig.len(), 64);
        assert_eq!(verify_approval(key.public_key_bytes(), &p, &sig), Ok(()));

        let changes: [fn(&mut ApprovalPayload); 6] = [
            |p| p.request_id.push('2'),
            |p| p.rp = "Evil Bank".into(),
            |p| p.verification_code = "ulv fjord".into(),
            |p| p.text_sha256[7] ^= 1,
            |p| p.decision = Decision::Deny,
            |p| p.user_verification = None,
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut q = p.clone();
            change(&mut q);
            assert_eq!(
                verify_approval(key.public_key_bytes(), &q, &sig),
                Err(DeviceError::BadSignature),
                "change {i}"
            );
        }
    }

    #[test]
    fn invalid_payloads_are_not_signed() {
        let key = DeviceKey::generate().unwrap();
        let mut p = payload();
        p.request_id.clear();
        assert_eq!(
            key.sign(&p),
            Err(DeviceKeyError::Payload(AppError::PayloadFieldEmpty {
                field: "request_id"
            }))
        );
    }
}
