//! OCSP (RFC 6960): parse requests, sign responses.
//!
//! Untrusted bytes go through [`parse_request`] into an [`OcspRequest`]; an [`IssuerId`]
//! tells whether a requested CertID names one of our issuing CAs; a [`Responder`], prepared
//! once from the delegated OCSP signing certificate, signs [`SingleAnswer`]s into a
//! response. The DER types of RFC 6960 are in [`asn1`]: the `x509-ocsp` crate is still on
//! der 0.7 (DEPENDENCIES.md, "OCSP is the gap").

use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_SHA_1, ID_SHA_256};
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE};
use der::asn1::{Any, BitString, GeneralizedTime, Int, Null, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, CrlReason, ExtendedKeyUsage};

use crate::crl::{date_time, serial_content};
use crate::{Error, RevocationReason, Signer};

/// Largest OCSP request [`parse_request`] reads. Twenty CertIDs take under 2 KB; the rest
/// leaves room for a signed request with its certificate chain, which is accepted and ignored.
pub const MAX_REQUEST_LEN: usize = 32 * 1024;
/// Most certificates asked about in one request: each costs a lookup and a SingleResponse.
pub const MAX_CERTS_PER_REQUEST: usize = 20;
/// Longest nonce (RFC 8954 section 2.1: 1 to 32 octets).
pub const MAX_NONCE_LEN: usize = 32;

/// The DER types of RFC 6960 (section 4 and appendix B.1, module `OCSP-2013-88`, which uses
/// EXPLICIT tags), on the x509-cert 0.3 / der 0.8 types.
pub mod asn1 {
    use der::asn1::{Any, BitString, GeneralizedTime, Int, Null, ObjectIdentifier, OctetString};
    use der::{Choice, Enumerated, Sequence};
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::Certificate;
    use x509_cert::ext::Extensions;
    use x509_cert::ext::pkix::CrlReason;

    /// `Version ::= INTEGER { v1(0) }`: the only version there is.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Enumerated)]
    #[asn1(type = "INTEGER")]
    #[repr(u8)]
    pub enum Version {
        #[default]
        V1 = 0,
    }

    /// `OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct OcspRequest {
        pub tbs_request: TbsRequest,
        /// `Signature`, kept undecoded: segl answers only public status information and so
        /// ignores request signatures (RFC 6960 section 4.1.2 leaves that to the responder).
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub optional_signature: Option<Any>,
    }

    /// `TBSRequest ::= SEQUENCE { version [0] DEFAULT v1, requestorName [1] GeneralName
    /// OPTIONAL, requestList SEQUENCE OF Request, requestExtensions [2] Extensions OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct TbsRequest {
        #[asn1(
            context_specific = "0",
            tag_mode = "EXPLICIT",
            default = "Default::default"
        )]
        pub version: Version,
        /// `GeneralName`, kept undecoded: it only matters with a signed request.
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        pub requestor_name: Option<Any>,
        pub request_list: Vec<Request>,
        #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
        pub request_extensions: Option<Extensions>,
    }

    /// `Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] Extensions OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct Request {
        pub req_cert: CertId,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub single_request_extensions: Option<Extensions>,
    }

    /// `CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash OCTET STRING, issuerKeyHash
    /// OCTET STRING, serialNumber CertificateSerialNumber }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct CertId {
        pub hash_algorithm: AlgorithmIdentifierOwned,
        pub issuer_name_hash: OctetString,
        pub issuer_key_hash: OctetString,
        /// Any INTEGER, not x509-cert's `SerialNumber`: a client may ask about a serial that
        /// profile would refuse, and is then told `unknown`, not `malformedRequest`.
        pub serial_number: Int,
    }

    /// `OCSPResponse ::= SEQUENCE { responseStatus, responseBytes [0] ResponseBytes OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct OcspResponse {
        pub response_status: OcspResponseStatus,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub response_bytes: Option<ResponseBytes>,
    }

    /// `OCSPResponseStatus ::= ENUMERATED` (4 is not used).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Enumerated)]
    #[repr(u8)]
    pub enum OcspResponseStatus {
        Successful = 0,
        MalformedRequest = 1,
        InternalError = 2,
        TryLater = 3,
        SigRequired = 5,
        Unauthorized = 6,
    }

    /// `ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct ResponseBytes {
        pub response_type: ObjectIdentifier,
        pub response: OctetString,
    }

    /// `BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm,
    /// signature BIT STRING, certs [0] SEQUENCE OF Certificate OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct BasicOcspResponse {
        pub tbs_response_data: ResponseData,
        pub signature_algorithm: AlgorithmIdentifierOwned,
        pub signature: BitString,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub certs: Option<Vec<Certificate>>,
    }

    /// `ResponseData ::= SEQUENCE { version [0] DEFAULT v1, responderID, producedAt
    /// GeneralizedTime, responses SEQUENCE OF SingleResponse, responseExtensions [1] OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct ResponseData {
        #[asn1(
            context_specific = "0",
            tag_mode = "EXPLICIT",
            default = "Default::default"
        )]
        pub version: Version,
        pub responder_id: ResponderId,
        pub produced_at: GeneralizedTime,
        pub responses: Vec<SingleResponse>,
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        pub response_extensions: Option<Extensions>,
    }

    /// `ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }`, where KeyHash is the
    /// SHA-1 of the responder's subjectPublicKey BIT STRING contents.
    #[derive(Clone, Debug, PartialEq, Eq, Choice)]
    pub enum ResponderId {
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
        ByName(x509_cert::name::Name),
        #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
        ByKey(OctetString),
    }

    /// `SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate GeneralizedTime,
    /// nextUpdate [0] GeneralizedTime OPTIONAL, singleExtensions [1] Extensions OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct SingleResponse {
        pub cert_id: CertId,
        pub cert_status: CertStatus,
        pub this_update: GeneralizedTime,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub next_update: Option<GeneralizedTime>,
        #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
        pub single_extensions: Option<Extensions>,
    }

    /// `CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo,
    /// unknown [2] IMPLICIT UnknownInfo }` (UnknownInfo is NULL).
    #[derive(Clone, Debug, PartialEq, Eq, Choice)]
    pub enum CertStatus {
        #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
        Good(Null),
        #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
        Revoked(RevokedInfo),
        #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
        Unknown(Null),
    }

    /// `RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0]
    /// CRLReason OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct RevokedInfo {
        pub revocation_time: GeneralizedTime,
        #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
        pub revocation_reason: Option<CrlReason>,
    }
}

pub use asn1::OcspResponseStatus;

/// The hash algorithms segl accepts in a CertID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// What openssl and most clients send (RFC 5019 section 2.1.1 still requires it).
    Sha1,
    Sha256,
}

impl HashAlg {
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => ID_SHA_1,
            Self::Sha256 => ID_SHA_256,
        }
    }
}

/// One certificate asked about: a CertID as received (echoed back in the answer exactly), or
/// as made by [`IssuerId::cert_id`] for a response signed ahead of any request.
///
/// Equality and hashing use the hash algorithm's OID, both issuer hashes and the serial, not
/// the algorithm's parameters (clients compare CertIDs the same way), so a `CertIdRequest`
/// can key a cache of pre-signed responses.
#[derive(Clone, Debug)]
pub struct CertIdRequest {
    hash: Option<HashAlg>,
    serial: Vec<u8>,
    raw: asn1::CertId,
}

impl CertIdRequest {
    fn from_asn1(raw: asn1::CertId) -> Self {
        let alg = &raw.hash_algorithm;
        // SHA-1 and SHA-2 take NULL or absent parameters (RFC 3370, RFC 5754); anything else
        // is not a hash we know.
        let plain = match &alg.parameters {
            None => true,
            Some(p) => *p == Any::from(Null),
        };
        let hash = match alg.oid {
            ID_SHA_1 if plain => Some(HashAlg::Sha1),
            ID_SHA_256 if plain => Some(HashAlg::Sha256),
            _ => None,
        };
        let serial = serial_magnitude(&raw.serial_number);
        Self { hash, serial, raw }
    }

    /// The CertID's hash algorithm; `None` when segl does not support it (answer `unknown`).
    pub fn hash(&self) -> Option<HashAlg> {
        self.hash
    }

    pub fn hash_oid(&self) -> ObjectIdentifier {
        self.raw.hash_algorithm.oid
    }

    pub fn issuer_name_hash(&self) -> &[u8] {
        self.raw.issuer_name_hash.as_bytes()
    }

    pub fn issuer_key_hash(&self) -> &[u8] {
        self.raw.issuer_key_hash.as_bytes()
    }

    /// The serial number as unsigned big-endian bytes without leading zeros. Empty for a
    /// zero or negative serial, which segl never issues, so it looks up as unknown.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The CertID as DER type.
    pub fn as_asn1(&self) -> &asn1::CertId {
        &self.raw
    }

    fn key(&self) -> (ObjectIdentifier, &[u8], &[u8], &[u8]) {
        (
            self.hash_oid(),
            self.issuer_name_hash(),
            self.issuer_key_hash(),
            &self.serial,
        )
    }
}

impl PartialEq for CertIdRequest {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for CertIdRequest {}

impl std::hash::Hash for CertIdRequest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// What [`parse_request`] found in a request.
#[derive(Clone, Debug)]
pub struct OcspRequest {
    /// The certificates asked about, in request order (1 to [`MAX_CERTS_PER_REQUEST`]).
    pub certs: Vec<CertIdRequest>,
    /// The nonce (1 to 32 bytes, the contents of the extension's OCTET STRING), to be echoed.
    pub nonce: Option<Vec<u8>>,
}

/// Parses a DER OCSPRequest (the body of a POST, or the base64-decoded GET path).
///
/// Every error here is the client's: answer it with [`error_response`] of
/// [`status_for_error`], i.e. malformedRequest. A request signature is accepted and ignored.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, Error> {
    if der.len() > MAX_REQUEST_LEN {
        return Err(Error::OcspRequestTooLarge {
            len: der.len(),
            max: MAX_REQUEST_LEN,
        });
    }
    let req = asn1::OcspRequest::from_der(der).map_err(Error::OcspMalformed)?;
    let tbs = req.tbs_request;
    let count = tbs.request_list.len();
    if count == 0 {
        return Err(Error::OcspNoCertificates);
    }
    if count > MAX_CERTS_PER_REQUEST {
        return Err(Error::OcspTooManyCertificates {
            count,
            max: MAX_CERTS_PER_REQUEST,
        });
    }
    let nonce = request_nonce(tbs.request_extensions.as_deref().unwrap_or_default())?;
    let certs = tbs
        .request_list
        .into_iter()
        .map(|r| CertIdRequest::from_asn1(r.req_cert))
        .collect();
    Ok(OcspRequest { certs, nonce })
}

fn request_nonce(exts: &[Extension]) -> Result<Option<Vec<u8>>, Error> {
    let mut found = None;
    for ext in exts.iter().filter(|e| e.extn_id == ID_PKIX_OCSP_NONCE) {
        if found.is_some() {
            return Err(Error::OcspDuplicateNonce);
        }
        // RFC 8954: `Nonce ::= OCTET STRING(SIZE(1..32))` inside extnValue. Clients from
        // before RFC 8954 that put raw bytes there are refused rather than guessed at.
        let value =
            OctetString::from_der(ext.extn_value.as_bytes()).map_err(Error::OcspMalformed)?;
        check_nonce(value.as_bytes())?;
        found = Some(value.into_bytes().into_vec());
    }
    Ok(found)
}

fn check_nonce(nonce: &[u8]) -> Result<(), Error> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(Error::OcspNonceLength { len: nonce.len() });
    }
    Ok(())
}

/// The serial of a CertID as unsigned bytes; empty when zero or negative.
fn serial_magnitude(serial: &Int) -> Vec<u8> {
    let bytes = serial.as_bytes();
    match bytes.first() {
        Some(b) if b & 0x80 == 0 => {
            let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
            bytes.get(start..).unwrap_or_default().to_vec()
        }
        _ => Vec::new(),
    }
}

/// An issuing CA as CertIDs name it: hashes of its subject Name and of its public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerId {
    name_sha1: [u8; 20],
    key_sha1: [u8; 20],
    name_sha256: [u8; 32],
    key_sha256: [u8; 32],
}

impl IssuerId {
    /// From the issuing CA's certificate.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, Error> {
        let cert = Certificate::from_der(der)?;
        let tbs = cert.tbs_certificate();
        let name = tbs.subject().to_der()?;
        // The BIT STRING's contents without the unused-bits octet (RFC 6960 section 4.1.1).
        let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
        Ok(Self {
            name_sha1: Sha1::digest(&name).into(),
            key_sha1: Sha1::digest(key).into(),
            name_sha256: Sha256::digest(&name).into(),
            key_sha256: Sha256::digest(key).into(),
        })
    }

    /// Whether `id` names this issuer (its serial is for the caller to look up). Plain
    /// comparison: all of it is public.
    pub fn matches(&self, id: &CertIdRequest) -> bool {
        match id.hash {
            Some(HashAlg::Sha1) => {
                id.issuer_name_hash() == self.name_sha1 && id.issuer_key_hash() == self.key_sha1
            }
            Some(HashAlg::Sha256) => {
                id.issuer_name_hash() == self.name_sha256 && id.issuer_key_hash() == self.key_sha256
            }
            None => false,
        }
    }

    /// The CertID a client would send for `serial` (unsigned big-endian, 1 to 20 octets)
    /// issued by this CA, with NULL hash parameters as openssl sends them: for responses
    /// signed before any request.
    pub fn cert_id(&self, hash: HashAlg, serial: &[u8]) -> Result<CertIdRequest, Error> {
        let (name_hash, key_hash): (&[u8], &[u8]) = match hash {
            HashAlg::Sha1 => (&self.name_sha1, &self.key_sha1),
            HashAlg::Sha256 => (&self.name_sha256, &self.key_sha256),
        };
        let raw = asn1::CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: hash.oid(),
                parameters: Some(Any::from(Null)),
            },
            issuer_name_hash: OctetString::new(name_hash)?,
            issuer_key_hash: OctetString::new(key_hash)?,
            serial_number: Int::new(&serial_content(serial)?)?,
        };
        Ok(CertIdRequest::from_asn1(raw))
    }
}

/// A certificate's status as the responder reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    /// `reason` None or Some(Unspecified) is sent without a revocationReason (as in CRLs,
    /// RFC 5280 section 5.3.1).
    Revoked {
        time: OffsetDateTime,
        reason: Option<RevocationReason>,
    },
    /// Not a certificate of ours, or a CertID hash segl does not support.
    Unknown,
}

/// One answer in a response.
#[derive(Clone, Debug)]
pub struct SingleAnswer {
    /// The CertID exactly as requested (or from [`IssuerId::cert_id`]).
    pub cert_id: CertIdRequest,
    pub status: CertStatus,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

/// The OCSPResponseStatus values that come without a signed response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OcspErrorStatus {
    /// The request did not parse ([`parse_request`] failed).
    MalformedRequest,
    /// The responder could not answer (store or key store failure).
    InternalError,
    /// The responder is temporarily unable to answer.
    TryLater,
    /// The responder requires signed requests (segl does not).
    SigRequired,
    /// The responder does not answer for this issuer (RFC 5019 section 2.2.3).
    Unauthorized,
}

impl From<OcspErrorStatus> for OcspResponseStatus {
    fn from(s: OcspErrorStatus) -> Self {
        match s {
            OcspErrorStatus::MalformedRequest => Self::MalformedRequest,
            OcspErrorStatus::InternalError => Self::InternalError,
            OcspErrorStatus::TryLater => Self::TryLater,
            OcspErrorStatus::SigRequired => Self::SigRequired,
            OcspErrorStatus::Unauthorized => Self::Unauthorized,
        }
    }
}

/// An unsigned OCSPResponse carrying only `status` (5 bytes).
pub fn error_response(status: OcspErrorStatus) -> Vec<u8> {
    let code = OcspResponseStatus::from(status) as u8;
    // SEQUENCE { ENUMERATED code }: fixed, so written out rather than through a fallible
    // encoder (tests check it against openssl).
    vec![0x30, 0x03, 0x0a, 0x01, code]
}

/// How to answer a request that failed: malformedRequest for the client's errors from
/// [`parse_request`], internalError for ours.
pub fn status_for_error(err: &Error) -> OcspErrorStatus {
    match err {
        Error::OcspRequestTooLarge { .. }
        | Error::OcspMalformed(_)
        | Error::OcspNoCertificates
        | Error::OcspTooManyCertificates { .. }
        | Error::OcspNonceLength { .. }
        | Error::OcspDuplicateNonce => OcspErrorStatus::MalformedRequest,
        _ => OcspErrorStatus::InternalError,
    }
}

/// Signs responses as one responder certificate. Prepared once (the certificate is parsed
/// and hashed here), then [`Responder::respond`] costs one encoding and one signature.
#[derive(Clone, Debug)]
pub struct Responder {
    responder_id: asn1::ResponderId,
    /// The responder's SubjectPublicKeyInfo, to check each signer against.
    spki_der: Vec<u8>,
    /// The delegated responder's certificate, sent along so that clients can check it was
    /// issued by the CA; None when the CA signs itself (clients already have it).
    certs: Option<Vec<Certificate>>,
}

impl Responder {
    /// From the responder certificate (EKU id-kp-OCSPSigning, issued by the CA whose
    /// certificates it answers for, or that CA itself) and the signer holding its key.
    pub fn new(responder_cert_der: &[u8], signer: &dyn Signer) -> Result<Self, Error> {
        let cert = Certificate::from_der(responder_cert_der)?;
        // It is embedded as re-encoded from the parsed form; BER would then break its
        // signature, so refuse it now.
        if cert.to_der()? != responder_cert_der {
            return Err(Error::NotDer("responder"));
        }
        let tbs = cert.tbs_certificate();
        let spki_der = tbs.subject_public_key_info().to_der()?;
        if spki_der != signer.public_key_der() {
            return Err(Error::KeyMismatch("responder"));
        }
        let delegated = tbs
            .get_extension::<ExtendedKeyUsage>()?
            .is_some_and(|(_, eku)| eku.0.contains(&ID_KP_OCSP_SIGNING));
        let is_ca = tbs
            .get_extension::<BasicConstraints>()?
            .is_some_and(|(_, bc)| bc.ca);
        if !delegated && !is_ca {
            return Err(Error::NotOcspResponder);
        }
        let key_hash = Sha1::digest(tbs.subject_public_key_info().subject_public_key.raw_bytes());
        Ok(Self {
            responder_id: asn1::ResponderId::ByKey(OctetString::new(key_hash.as_slice())?),
            spki_der,
            certs: delegated.then(|| vec![cert]),
        })
    }

    /// A signed, successful OCSPResponse with one SingleResponse per answer, in order, and
    /// the nonce echoed when given.
    pub fn respond(
        &self,
        signer: &dyn Signer,
        produced_at: OffsetDateTime,
        singles: &[SingleAnswer],
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        if singles.is_empty() {
            return Err(Error::Invalid(
                "an OCSP response needs at least one answer".into(),
            ));
        }
        if signer.public_key_der() != self.spki_der {
            return Err(Error::KeyMismatch("responder"));
        }
        let response_extensions = match nonce {
            None => None,
            Some(n) => {
                check_nonce(n)?;
                Some(vec![Extension {
                    extn_id: ID_PKIX_OCSP_NONCE,
                    critical: false,
                    extn_value: OctetString::new(OctetString::new(n)?.to_der()?)?,
                }])
            }
        };
        let tbs = asn1::ResponseData {
            version: asn1::Version::V1,
            responder_id: self.responder_id.clone(),
            produced_at: generalized_time(produced_at)?,
            responses: singles
                .iter()
                .map(single_response)
                .collect::<Result<_, _>>()?,
            response_extensions,
        };
        let signature = signer.sign(&tbs.to_der()?)?;
        let basic = asn1::BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: ecdsa_with_sha256(),
            signature: BitString::from_bytes(&signature)?,
            certs: self.certs.clone(),
        };
        let response = asn1::OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(asn1::ResponseBytes {
                response_type: ID_PKIX_OCSP_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        };
        Ok(response.to_der()?)
    }
}

/// [`Responder::new`] and [`Responder::respond`] in one call, for a single response; a
/// server answering many should keep the [`Responder`].
pub fn build_response(
    responder_cert_der: &[u8],
    signer: &dyn Signer,
    produced_at: OffsetDateTime,
    singles: &[SingleAnswer],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    Responder::new(responder_cert_der, signer)?.respond(signer, produced_at, singles, nonce)
}

fn single_response(a: &SingleAnswer) -> Result<asn1::SingleResponse, Error> {
    let cert_status = match a.status {
        CertStatus::Good => asn1::CertStatus::Good(Null),
        CertStatus::Revoked { time, reason } => asn1::CertStatus::Revoked(asn1::RevokedInfo {
            revocation_time: generalized_time(time)?,
            revocation_reason: reason
                .filter(|r| *r != RevocationReason::Unspecified)
                .map(crl_reason),
        }),
        CertStatus::Unknown => asn1::CertStatus::Unknown(Null),
    };
    Ok(asn1::SingleResponse {
        cert_id: a.cert_id.raw.clone(),
        cert_status,
        this_update: generalized_time(a.this_update)?,
        next_update: Some(generalized_time(a.next_update)?),
        single_extensions: None,
    })
}

pub(crate) fn crl_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}

/// ecdsa-with-SHA256 with absent parameters (RFC 5758 section 3.2).
pub(crate) fn ecdsa_with_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA_256,
        parameters: None,
    }
}

/// OCSP times are always GeneralizedTime, whole seconds, UTC.
fn generalized_time(t: OffsetDateTime) -> Result<GeneralizedTime, Error> {
    Ok(GeneralizedTime::from_date_time(date_time(t)?))
}
