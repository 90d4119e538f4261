//! Verification of the phone app's device-key signatures, for the server.
//!
//! The app's device key is ECDSA P-256. At activation the app sends its public key as the
//! 65-byte uncompressed point (`0x04 || x || y`, base64url without padding on the wire); the
//! server checks it with [`check_public_key`] and stores it. Each answer is a signature over
//! [`ApprovalPayload::to_signed_bytes`]: ECDSA with SHA-256, encoded as the fixed 64 bytes
//! `r || s` (each big-endian, zero-padded to 32 bytes), not DER.
//!
//! This lives here, not in the app crate, so the server verifies without depending on the
//! app.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use data_encoding::BASE64URL_NOPAD;
use segl_core::app::{AppError, ApprovalPayload};

/// Length of an uncompressed P-256 point.
pub const PUBLIC_KEY_LEN: usize = 65;
/// Length of a fixed-size P-256 signature, `r || s`.
pub const SIGNATURE_LEN: usize = 64;

/// Why a device key or a device signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// The public key is not base64url without padding.
    #[error("device public key is not base64url")]
    PublicKeyEncoding,
    /// The public key is not 65 bytes starting with 0x04 (compressed and other forms are
    /// refused, so each key has one stored form).
    #[error(
        "device public key must be an uncompressed P-256 point (65 bytes starting with 0x04), this is {len} bytes"
    )]
    PublicKeyFormat {
        /// Its length in bytes.
        len: usize,
    },
    /// 65 bytes of the right form, but not a point on the P-256 curve.
    #[error("device public key is not a point on P-256")]
    PublicKeyNotOnCurve,
    /// The signature is not 64 bytes.
    #[error("a device signature is {SIGNATURE_LEN} bytes (r || s), this one is {len}")]
    SignatureLength {
        /// Its length in bytes.
        len: usize,
    },
    /// The payload cannot be signed or verified (an empty or oversized field).
    #[error("invalid approval payload: {0}")]
    Payload(#[from] AppError),
    /// The signature does not verify: another key, another payload, or forged.
    #[error("the device signature does not verify")]
    BadSignature,
}

/// Parses a device public key, refusing anything but a valid uncompressed P-256 point.
fn parse_public_key(public_key: &[u8]) -> Result<ParsedPublicKey, DeviceError> {
    if public_key.len() != PUBLIC_KEY_LEN || public_key.first() != Some(&0x04) {
        return Err(DeviceError::PublicKeyFormat {
            len: public_key.len(),
        });
    }
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .map_err(|_| DeviceError::PublicKeyNotOnCurve)
}

/// Checks a public key sent at activation: an uncompressed P-256 point on the curve.
pub fn check_public_key(public_key: &[u8]) -> Result<(), DeviceError> {
    parse_public_key(public_key).map(|_| ())
}

/// Decodes and checks a public key in its wire form, base64url without padding.
pub fn public_key_from_b64url(s: &str) -> Result<Vec<u8>, DeviceError> {
    let bytes = BASE64URL_NOPAD
        .decode(s.as_bytes())
        .map_err(|_| DeviceError::PublicKeyEncoding)?;
    check_public_key(&bytes)?;
    Ok(bytes)
}

/// Verifies the device's `signature` (64 bytes, `r || s`) over `payload` with the device's
/// `public_key` (65-byte uncompressed point).
///
/// Checks, in order, each with its own error: the key, the signature length, the payload
/// ([`ApprovalPayload::validate`]), the signature.
pub fn verify_approval(
    public_key: &[u8],
    payload: &ApprovalPayload,
    signature: &[u8],
) -> Result<(), DeviceError> {
    verify_signed(public_key, signature, || {
        payload.validate()?;
        Ok(payload.to_signed_bytes())
    })
}

/// Verifies the device's `signature` (64 bytes, `r || s`) over a signed device-API
/// request (see `segl_core::app::DeviceRequest`).
pub fn verify_request(
    public_key: &[u8],
    request: &segl_core::app::DeviceRequest<'_>,
    signature: &[u8],
) -> Result<(), DeviceError> {
    verify_signed(public_key, signature, || Ok(request.to_signed_bytes()))
}

/// The key, then the signature's length, then the message (which may be refused), then
/// the signature: each with its own error.
fn verify_signed(
    public_key: &[u8],
    signature: &[u8],
    message: impl FnOnce() -> Result<Vec<u8>, DeviceError>,
) -> Result<(), DeviceError> {
    let key = parse_public_key(public_key)?;
    if signature.len() != SIGNATURE_LEN {
        return Err(DeviceError::SignatureLength {
            len: signature.len(),
        });
    }
    key.verify_sig(&message()?, signature)
        .map_err(|_| DeviceError::BadSignature)
}

/// A device public key (65-byte point) as DER SubjectPublicKeyInfo, and a device
/// signature (`r || s`) as DER `Ecdsa-Sig-Value`: the forms standard tools read, for a
/// relying party that checks an approval itself.
pub fn to_standard_forms(
    public_key: &[u8],
    signature: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), DeviceError> {
    use p256::pkcs8::EncodePublicKey;
    check_public_key(public_key)?;
    let spki = p256::PublicKey::from_sec1_bytes(public_key)
        .ok()
        .and_then(|k| k.to_public_key_der().ok())
        .ok_or(DeviceError::PublicKeyNotOnCurve)?;
    let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| {
        DeviceError::SignatureLength {
            len: signature.len(),
        }
    })?;
    Ok((spki.as_bytes().to_vec(), sig.to_der().as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use data_encoding::HEXLOWER;
    use segl_core::app::{Decision, UserVerification};

    /// The payload of segl-core's fixed approval vector.
    fn payload() -> ApprovalPayload {
        ApprovalPayload {
            request_id: "0b1e2f7a-9c4d-4e8f-a1b2-c3d4e5f60718".into(),
            rp: "Sparebanken Sør".into(),
            verification_code: "elg fjord".into(),
            text_sha256: HEXLOWER
                .decode(b"7bdb1ed2d8d70b5f454fa1412162e0c45510e997477419d5d48e5f952bbf7ff5")
                .unwrap()
                .try_into()
                .unwrap(),
            decision: Decision::Approve,
            user_verification: Some(UserVerification::Face),
        }
    }

    /// A key and a signature over [`payload`] made by an independent implementation
    /// (Python 3, `cryptography` 48), as a phone app would:
    ///
    /// ```python
    /// # msg = the bytes of segl-core's vector (see app.rs, signed_bytes_fixed_vectors)
    /// d = int.from_bytes(hashlib.sha256(b"segl test device key").digest(), "big")
    /// key = ec.derive_private_key(d, ec.SECP256R1())
    /// pub = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    /// r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    /// sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    /// ```
    const PY_PUBLIC_KEY: &[u8] = b"042e24433392d4360a28568e261013450728ea68db96fad46b4f30125a5f163444201c00d2dd1b8c94c0459d343f830ffb686f0eeb81d2b03c323e70b779de5f1d";
    const PY_SIGNATURE: &[u8] = b"06b5b6a5c3bbbdc76f18aa2f67816f393c28c27428b3f5712d122105a1db848c67cf4a61ef3428d2c7cd7ab7e2ab6ce94c8d406de89357524b4840c35aeb46ce";

    fn unhex(s: &[u8]) -> Vec<u8> {
        HEXLOWER.decode(s).unwrap()
    }

    #[test]
    fn verifies_a_signature_from_an_independent_implementation() {
        let key = unhex(PY_PUBLIC_KEY);
        let sig = unhex(PY_SIGNATURE);
        assert_eq!(verify_approval(&key, &payload(), &sig), Ok(()));
        let mut denied = payload();
        denied.decision = Decision::Deny;
        assert_eq!(
            verify_approval(&key, &denied, &sig),
            Err(DeviceError::BadSignature)
        );
    }

    #[test]
    fn sign_with_aws_lc_and_verify() {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let public = kp.public_key().as_ref().to_vec();
        let p = payload();
        let sig = kp
            .sign(&SystemRandom::new(), &p.to_signed_bytes())
            .unwrap()
            .as_ref()
            .to_vec();
        assert_eq!(verify_approval(&public, &p, &sig), Ok(()));
        // Another key does not verify it.
        let other = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        assert_eq!(
            verify_approval(other.public_key().as_ref(), &p, &sig),
            Err(DeviceError::BadSignature)
        );
        // Any flipped bit of the signature is refused.
        for i in 0..sig.len() {
            let mut bad = sig.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                verify_approval(&public, &p, &bad),
                Err(DeviceError::BadSignature),
                "byte {i}"
            );
        }
    }

    #[test]
    fn refuses_bad_keys() {
        let good = unhex(PY_PUBLIC_KEY);
        let sig = unhex(PY_SIGNATURE);
        let fmt = |len| Err(DeviceError::PublicKeyFormat { len });
        assert_eq!(verify_approval(&[], &payload(), &sig), fmt(0));
        assert_eq!(verify_approval(&good[..64], &payload(), &sig), fmt(64));
        // The compressed form of a valid point is refused too.
        let mut compressed = vec![0x02 | (good[64] & 1)];
        compressed.extend_from_slice(&good[1..33]);
        assert_eq!(verify_approval(&compressed, &payload(), &sig), fmt(33));
        let mut wrong_tag = good.clone();
        wrong_tag[0] = 0x06;
        assert_eq!(verify_approval(&wrong_tag, &payload(), &sig), fmt(65));
        // Right form, but not on the curve.
        let mut off_curve = good.clone();
        off_curve[64] ^= 0x01;
        assert_eq!(
            verify_approval(&off_curve, &payload(), &sig),
            Err(DeviceError::PublicKeyNotOnCurve)
        );
        let mut zeros = vec![0u8; 65];
        zeros[0] = 0x04;
        assert_eq!(
            check_public_key(&zeros),
            Err(DeviceError::PublicKeyNotOnCurve)
        );
        // A SubjectPublicKeyInfo is not the wire form either.
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            kp.public_key(),
        )
        .unwrap();
        assert_eq!(check_public_key(spki.as_ref()), fmt(spki.as_ref().len()));
    }

    #[test]
    fn refuses_wrong_signature_lengths_and_invalid_payloads() {
        let key = unhex(PY_PUBLIC_KEY);
        let sig = unhex(PY_SIGNATURE);
        for len in [0, 63, 65, 72] {
            let s = vec![1u8; len];
            assert_eq!(
                verify_approval(&key, &payload(), &s),
                Err(DeviceError::SignatureLength { len })
            );
        }
        let mut empty = payload();
        empty.rp.clear();
        assert_eq!(
            verify_approval(&key, &empty, &sig),
            Err(DeviceError::Payload(AppError::PayloadFieldEmpty {
                field: "rp"
            }))
        );
    }

    #[test]
    fn b64url_wire_form() {
        let key = unhex(PY_PUBLIC_KEY);
        let wire = BASE64URL_NOPAD.encode(&key);
        assert_eq!(public_key_from_b64url(&wire), Ok(key));
        assert_eq!(
            public_key_from_b64url(&format!("{wire}=")),
            Err(DeviceError::PublicKeyEncoding)
        );
        assert_eq!(
            public_key_from_b64url("AAAA"),
            Err(DeviceError::PublicKeyFormat { len: 3 })
        );
    }
}
