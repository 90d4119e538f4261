//! segl's PKI: certificate profiles for the CA hierarchy and persons, CRLs and OCSP
//! (RFC 5280, RFC 6960), and detached CMS signatures (CAdES baseline B), built on
//! RustCrypto's `x509-cert`/`der`/`cms` types; [`verify`] checks a detached CMS signature
//! with its chain and revocation status; [`pades`] signs PDFs at PAdES baseline B-B by
//! incremental update (parsed with `lopdf`) and reads the signatures in a PDF.
//!
//! No I/O and no clock: keys sign through [`Signer`] (the key store lives in
//! `segl-crypto`), and every time is passed in.

pub mod cms;
pub mod crl;
pub mod error;
pub mod ocsp;
pub mod pades;
pub mod profile;
pub mod verify;

pub use error::Error;

/// A private key that signs with ECDSA P-256 and SHA-256. The key itself stays in its key
/// store (software or PKCS#11); segl's PKI only ever sees signatures.
pub trait Signer: Send + Sync {
    /// ECDSA over SHA-256 of `msg`, DER-encoded (`Ecdsa-Sig-Value`, as X.509, CRLs, OCSP
    /// and CMS carry it).
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error>;
    /// The public key as DER `SubjectPublicKeyInfo`.
    fn public_key_der(&self) -> &[u8];
}

/// Why a certificate was revoked: the CRLReason codes of RFC 5280 section 5.3.1 that segl
/// uses (removeFromCRL and aACompromise do not apply to a CA that never suspends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The name used by the CLI and the database (kebab-case of the RFC 5280 name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key-compromise",
            Self::CaCompromise => "ca-compromise",
            Self::AffiliationChanged => "affiliation-changed",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessation-of-operation",
            Self::CertificateHold => "certificate-hold",
            Self::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}
