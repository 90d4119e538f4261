use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("DER encoding or decoding failed: {0}")]
    Der(#[from] der::Error),
    #[error("the key store could not sign: {0}")]
    Sign(String),
    #[error("{0}")]
    Invalid(String),
    /// An OCSP request longer than [`crate::ocsp::MAX_REQUEST_LEN`]; answered malformedRequest.
    #[error("OCSP request of {len} bytes is too large (at most {max})")]
    OcspRequestTooLarge { len: usize, max: usize },
    /// An OCSP request that is not a DER `OCSPRequest` (truncated, wrong tag, trailing
    /// bytes, unknown version); answered malformedRequest.
    #[error("OCSP request is malformed: {0}")]
    OcspMalformed(der::Error),
    /// An OCSP request whose requestList is empty; answered malformedRequest.
    #[error("OCSP request asks about no certificate")]
    OcspNoCertificates,
    /// An OCSP request asking about more certificates than segl answers in one response.
    #[error("OCSP request asks about {count} certificates (at most {max})")]
    OcspTooManyCertificates { count: usize, max: usize },
    /// An OCSP nonce outside RFC 8954's 1 to 32 octets.
    #[error("OCSP nonce of {len} bytes (RFC 8954 allows 1 to 32)")]
    OcspNonceLength { len: usize },
    /// An OCSP request carrying the nonce extension twice.
    #[error("OCSP request carries more than one nonce")]
    OcspDuplicateNonce,
    /// The signer's public key is not the one in the certificate it is meant to sign for.
    #[error("the signer's public key is not the key of the {0} certificate")]
    KeyMismatch(&'static str),
    /// A certificate asked to sign OCSP responses is neither a CA nor has EKU OCSPSigning.
    #[error("the responder certificate has neither EKU id-kp-OCSPSigning nor is it a CA")]
    NotOcspResponder,
    /// A certificate that does not encode back to the same DER (so it could not be
    /// embedded in a response or CRL without breaking its signature).
    #[error("the {0} certificate is not in DER form")]
    NotDer(&'static str),
    /// A time X.509 cannot carry (before 1970 as used here, or after 9999).
    #[error("time {0} cannot be encoded in X.509")]
    TimeOutOfRange(time::OffsetDateTime),
    /// A serial number that is zero, or longer than RFC 5280's 20 octets.
    #[error("serial number must be 1 to 20 octets and not zero")]
    InvalidSerial,
}
