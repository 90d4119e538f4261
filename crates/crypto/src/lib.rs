//! segl-crypto: the cryptography segl needs, on audited primitives.
//!
//! - [`otp`]: HOTP (RFC 4226) and TOTP (RFC 6238) with windows, drift and replay guard.
//! - [`pskc`]: import of PSKC files (RFC 6030), plain, pre-shared key and PBKDF2.
//! - [`password`]: Argon2id hashing with rehash detection and a dummy verify.
//! - [`jose`]: token-signing keys (ES256, RS256), JWKS, JWT signing and verification.
//! - [`seal`]: AES-256-GCM sealing of secrets at rest (OTP seeds).
//! - [`keystore`]: signing keys (ECDSA P-256) in software, sealed under the master key, or on a PKCS#11 token.
//! - [`device`]: verification of the phone app's device-key signatures over approvals.
//! - [`qr`]: the auth code of the animated QR code (HMAC-SHA256 over the seconds).
//! - [`random`]: random tokens, hashes, constant-time comparison, PKCE.
#![forbid(unsafe_code)]

pub mod device;
pub mod jose;
pub mod keystore;
pub mod otp;
pub mod password;
pub mod pskc;
pub mod qr;
pub mod random;
pub mod seal;
