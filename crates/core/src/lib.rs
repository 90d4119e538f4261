//! segl-core: the domain of an eID provider without I/O.
//!
//! - [`app`]: phone-app rules: mobile number, verification code, signed approval, activation.
//! - [`nin`]: Norwegian national identity numbers (fødselsnummer, D-number).
//! - [`password`]: the password policy (length, common passwords).
//! - [`flow`]: the login flow state machine; time comes in as a parameter.
//! - [`maintenance`]: maintenance windows that close ordering channels for a while.
//! - [`oidc`]: the validated authorization request, levels and `amr` values.
//! - [`policy`]: limits and lifetimes (retries, expiries) in one place.
#![forbid(unsafe_code)]

pub mod app;
pub mod email;
pub mod flow;
pub mod maintenance;
pub mod mrz;
pub mod nin;
pub mod oidc;
pub mod order;
pub mod password;
pub mod policy;
pub mod sign;
