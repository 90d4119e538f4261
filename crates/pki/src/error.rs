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
    /// Bytes that are not a DER CMS ContentInfo holding SignedData (garbage, truncated,
    /// trailing bytes, a field of the wrong type).
    #[error("not a CMS signature: {0}")]
    NotCms(der::Error),
    /// A CMS signature that carries its content: segl signs and reads detached ones only.
    #[error("the CMS signature is not detached (it carries its content)")]
    CmsNotDetached,
    /// A well-formed CMS structure that segl does not read: another content type, other
    /// than one signer, an algorithm other than SHA-256 / ECDSA P-256.
    #[error("unsupported CMS signature: {0}")]
    CmsUnsupported(String),
    /// A required signed attribute (or the signed attributes) is absent.
    #[error("the CMS signature has no {0} attribute")]
    CmsMissingAttribute(&'static str),
    /// A signed attribute present twice, or with other than one value.
    #[error("the CMS signature's {0} attribute must occur once with one value")]
    CmsDuplicateAttribute(&'static str),
    /// The message-digest attribute is not the digest of the content.
    #[error("the CMS signature's message digest does not match the content")]
    CmsDigestMismatch,
    /// The signature over the signed attributes does not verify with the signer's key.
    #[error("the CMS signature does not verify with the signer certificate's key")]
    CmsBadSignature,
    /// No certificate in the SignedData matches the SignerInfo's signer identifier.
    #[error("the CMS signature does not carry its signer's certificate")]
    CmsSignerCertificateMissing,
    /// No ESS signing-certificate-v2 attribute (RFC 5035), required by CAdES baseline B.
    #[error("the CMS signature has no signing-certificate-v2 attribute")]
    CmsSigningCertificateMissing,
    /// An OCSP response that is not DER `OCSPResponse` holding a `BasicOCSPResponse`.
    #[error("OCSP response is malformed: {0}")]
    OcspResponseMalformed(der::Error),
    /// An OCSP response whose status is not successful, so it says nothing about a
    /// certificate.
    #[error("OCSP response status is {0:?}, not successful")]
    OcspResponseUnsuccessful(crate::ocsp::OcspResponseStatus),
    /// A well-formed OCSP response segl does not read: another response type, or BER
    /// where its signature needs the exact DER.
    #[error("unsupported OCSP response: {0}")]
    OcspResponseUnsupported(String),
    /// The OCSP response's signature does not verify with the given responder key.
    #[error("the OCSP response's signature does not verify: {0}")]
    OcspBadSignature(String),
    /// The signing-certificate-v2 attribute names another certificate than the signer's.
    #[error("the CMS signature's signing-certificate-v2 does not name the signer certificate")]
    CmsSigningCertificateMismatch,
    /// A PDF of no bytes at all.
    #[error("the PDF is empty (0 bytes)")]
    PdfEmpty,
    /// Bytes that do not start with a PDF header.
    #[error("not a PDF: the file does not start with %PDF-")]
    NotPdf,
    /// A PDF whose end is missing: no `startxref` and `%%EOF` in its last kilobyte.
    #[error("the PDF is truncated: it does not end with startxref and %%EOF")]
    PdfTruncated,
    /// A PDF whose structure does not parse as written (cross-reference data that points
    /// elsewhere, an object that does not parse, a missing catalog or page tree).
    #[error("the PDF is damaged: {0}")]
    PdfDamaged(String),
    /// A PDF with an /Encrypt dictionary: segl neither signs nor reads those.
    #[error("the PDF is encrypted; segl signs and verifies only unencrypted PDFs")]
    PdfEncrypted,
    /// A well-formed PDF that segl does not sign (no pages, larger than 4 GiB, a stream
    /// where the catalog or a page should be).
    #[error("unsupported PDF: {0}")]
    PdfUnsupported(String),
    /// Signing into a field name the PDF already has.
    #[error("the PDF already has a form field named {0:?}")]
    PdfFieldExists(String),
    /// A CMS signature longer than the room reserved for it in the signature dictionary.
    #[error("the CMS signature of {len} bytes does not fit the {room} bytes reserved in the PDF")]
    PdfSignatureTooLarge { len: usize, room: usize },
    /// A signature field whose signature dictionary is malformed: a ByteRange that does
    /// not start at 0, overlaps, leaves the file, or whose gap is not exactly the
    /// /Contents hex string; /Contents that is not one DER value followed by zero padding.
    #[error("the PDF signature in field {field:?} is malformed: {detail}")]
    PdfSignatureMalformed { field: String, detail: String },
    /// A PDF signature with neither a signing-time attribute in its CMS nor /M in its
    /// dictionary.
    #[error(
        "the PDF signature has no signing time (no /M in its dictionary, no signing-time attribute in its CMS)"
    )]
    PdfNoSigningTime,
}
