//! segl-app: the reference app's key handling, the part of the phone app that holds secrets.
//!
//! - [`device`]: the device key (ECDSA P-256, aws-lc-rs) that signs approvals.
//! - [`vault`]: the device key at rest, wrapped under the app PIN (Argon2id, AES-256-GCM),
//!   with a wrong-PIN counter that erases the key after five failures.
//!
//! The server never depends on this crate: it verifies signatures with
//! `segl_crypto::device::verify_approval`.
#![forbid(unsafe_code)]

pub mod device;
pub mod vault;
