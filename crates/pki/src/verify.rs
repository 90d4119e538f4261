//! Verifying a detached CMS signature as a relying party would: the signature itself
//! ([`crate::cms::verify_detached`]), the chain from the signer up to a trusted root, the
//! certificates' validity at the signing time, and the signer's revocation status from the
//! OCSP response embedded in the signature (RFC 5940).
//!
//! [`verify_cms`] returns a [`Report`] or the one [`VerifyError`] that makes the signature
//! invalid. [`parse_ocsp_response`] reads a successful BasicOCSPResponse into an
//! [`OcspAnswer`]. No I/O: roots come in as DER, `now` as a parameter; a caller that can
//! check revocation itself (segl's CLI, for its own certificates) does so when the report
//! says [`Revocation::NotChecked`].

use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC;
use der::asn1::{GeneralizedTime, ObjectIdentifier};
use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{CrlReason, ExtendedKeyUsage};

use crate::ocsp::{self, CertIdRequest, CertStatus, IssuerId, OcspResponseStatus, asn1};
use crate::{Error, RevocationReason, cms, profile};

/// Longest chain [`verify_cms`] builds (signer, intermediates, root): more is a loop or
/// not a chain segl would ever see.
const MAX_CHAIN_LEN: usize = 8;
/// How far in the future a signing time may lie (clock skew between signer and verifier).
const FUTURE_SKEW: time::Duration = time::Duration::minutes(5);

/// Why a signature is not valid: one variant per cause, each message saying which
/// certificate, time or response is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The CMS structure or its signature is bad (not CMS, unsupported algorithm, missing
    /// attribute, signature that does not verify, …).
    #[error("bad CMS signature: {0}")]
    Cms(Error),
    /// The message-digest attribute is not the digest of the content given.
    #[error(
        "the content's digest does not match the signature's message digest (the content was changed, or it is another document)"
    )]
    DigestMismatch,
    /// No trusted root and no CA certificate in the signature is the named issuer.
    #[error(
        "the chain is not trusted: no trusted root or certificate in the signature is its issuer {issuer} (certificate {subject})"
    )]
    UntrustedChain { subject: String, issuer: String },
    /// A certificate of the right name is there, but its key did not sign the certificate
    /// below it, or it is not a CA.
    #[error("the chain is broken: {subject} is not issued by {issuer}: {detail}")]
    BrokenChain {
        subject: String,
        issuer: String,
        detail: String,
    },
    /// The chain is longer than segl follows (or loops).
    #[error("the chain is longer than {MAX_CHAIN_LEN} certificates")]
    ChainTooLong,
    /// A certificate of the chain that does not parse.
    #[error("a certificate of the chain is unreadable: {0}")]
    Certificate(Error),
    /// A certificate of the chain had expired when the signature was made.
    #[error(
        "the certificate {subject} had expired at the signing time {signing_time} (valid until {not_after})"
    )]
    ExpiredAtSigningTime {
        subject: String,
        not_after: OffsetDateTime,
        signing_time: OffsetDateTime,
    },
    /// A certificate of the chain was not yet valid when the signature was made.
    #[error(
        "the certificate {subject} was not yet valid at the signing time {signing_time} (valid from {not_before})"
    )]
    NotYetValidAtSigningTime {
        subject: String,
        not_before: OffsetDateTime,
        signing_time: OffsetDateTime,
    },
    /// The signing time lies in the future of the verifier's clock.
    #[error("the signing time {signing_time} is in the future (now {now})")]
    SigningTimeInFuture {
        signing_time: OffsetDateTime,
        now: OffsetDateTime,
    },
    /// The signer certificate was revoked before (or when) the signature was made.
    #[error("the signer certificate was revoked at {time} ({}), before the signing time {signing_time}", reason_name(*.reason))]
    Revoked {
        time: OffsetDateTime,
        reason: Option<RevocationReason>,
        signing_time: OffsetDateTime,
    },
    /// The embedded OCSP response does not parse, or is not a successful basic response.
    #[error("the embedded OCSP response is unusable: {0}")]
    OcspUnusable(Error),
    /// No SingleResponse of the embedded OCSP response names the signer certificate.
    #[error(
        "the embedded OCSP response is not for this certificate (serial {serial_hex} of {issuer})"
    )]
    OcspNotForCertificate { serial_hex: String, issuer: String },
    /// The embedded OCSP response's signature does not verify with its responder's key.
    #[error("the embedded OCSP response's signature is invalid: {0}")]
    OcspSignatureInvalid(Error),
    /// The embedded OCSP response is signed by someone who may not answer for the
    /// signer's issuer.
    #[error("the embedded OCSP response's responder is not authorised: {0}")]
    OcspResponderNotAuthorised(String),
    /// The embedded OCSP response says the signer certificate's status is unknown.
    #[error("the embedded OCSP response says the signer certificate's status is unknown")]
    OcspUnknownStatus,
}

fn reason_name(reason: Option<RevocationReason>) -> &'static str {
    reason.map_or("no reason given", RevocationReason::as_str)
}

/// The signer certificate's revocation status as far as [`verify_cms`] could tell.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The embedded OCSP response says good.
    Good { produced_at: OffsetDateTime },
    /// The embedded OCSP response says revoked, but after the signature was made.
    RevokedAfterSigning {
        time: OffsetDateTime,
        reason: Option<RevocationReason>,
        produced_at: OffsetDateTime,
    },
    /// The signature carries no OCSP response: nobody checked.
    NotChecked,
}

/// What a valid signature is: who signed, when (as claimed), under which chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The signer certificate's subject, RFC 4514 form.
    pub signer_subject: String,
    /// The signer certificate's serial, lower-case hex.
    pub serial_hex: String,
    /// The signing-time attribute (the signer's claim).
    pub signing_time: OffsetDateTime,
    /// Subjects from the signer up to the trusted root.
    pub chain: Vec<String>,
    /// The signer certificate, DER: for a caller that checks revocation itself.
    pub signer_cert_der: Vec<u8>,
    pub revocation: Revocation,
}

/// A successful BasicOCSPResponse as read by [`parse_ocsp_response`]: the signature is
/// not checked until [`OcspAnswer::verify_signature`].
#[derive(Clone, Debug)]
pub struct OcspAnswer {
    /// Who signed: a key hash or a name, to find among the candidates.
    pub responder_id: asn1::ResponderId,
    /// The certificates the responder sent along (a delegated responder's own), DER each.
    pub responder_certs_der: Vec<Vec<u8>>,
    pub produced_at: OffsetDateTime,
    pub responses: Vec<OcspSingle>,
    /// The DER of ResponseData, which the signature covers.
    tbs_der: Vec<u8>,
    signature_algorithm: ObjectIdentifier,
    signature: Vec<u8>,
}

/// One SingleResponse.
#[derive(Clone, Debug)]
pub struct OcspSingle {
    /// Hash algorithm, issuer name and key hashes, serial; compare with
    /// [`IssuerId::matches`].
    pub cert_id: CertIdRequest,
    /// Revocation reasons that segl does not know (removeFromCRL, aACompromise) read as
    /// none given.
    pub status: CertStatus,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
}

/// Reads a DER OCSPResponse that must be successful and of type id-pkix-ocsp-basic.
pub fn parse_ocsp_response(der: &[u8]) -> Result<OcspAnswer, Error> {
    let response = asn1::OcspResponse::from_der(der).map_err(Error::OcspResponseMalformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(Error::OcspResponseUnsuccessful(response.response_status));
    }
    let bytes = response.response_bytes.ok_or_else(|| {
        Error::OcspResponseUnsupported("a successful response without responseBytes".into())
    })?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(Error::OcspResponseUnsupported(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let raw = bytes.response.as_bytes();
    let basic = asn1::BasicOcspResponse::from_der(raw).map_err(Error::OcspResponseMalformed)?;
    // The signature covers ResponseData as sent; re-encoded is the same only for DER.
    if basic.to_der()? != raw {
        return Err(Error::OcspResponseUnsupported(
            "the BasicOCSPResponse is not in DER".into(),
        ));
    }
    let data = &basic.tbs_response_data;
    let responses = data
        .responses
        .iter()
        .map(single)
        .collect::<Result<_, _>>()?;
    Ok(OcspAnswer {
        responder_id: data.responder_id.clone(),
        responder_certs_der: basic
            .certs
            .iter()
            .flatten()
            .map(|c| c.to_der())
            .collect::<Result<_, _>>()?,
        produced_at: generalized(data.produced_at)?,
        responses,
        tbs_der: data.to_der()?,
        signature_algorithm: basic.signature_algorithm.oid,
        signature: basic.signature.raw_bytes().to_vec(),
    })
}

impl OcspAnswer {
    /// Checks the response's signature with a responder's key (DER SubjectPublicKeyInfo).
    pub fn verify_signature(&self, responder_spki_der: &[u8]) -> Result<(), Error> {
        profile::verify_ecdsa(
            responder_spki_der,
            &self.signature_algorithm,
            &self.tbs_der,
            &self.signature,
        )
        .map_err(Error::OcspBadSignature)
    }

    /// Whether the ResponderID names this certificate (by the SHA-1 of its key, or by its
    /// subject).
    pub fn responder_is(&self, cert_der: &[u8]) -> Result<bool, Error> {
        let cert = Certificate::from_der(cert_der)?;
        let tbs = cert.tbs_certificate();
        Ok(match &self.responder_id {
            asn1::ResponderId::ByKey(hash) => {
                let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
                hash.as_bytes() == Sha1::digest(key).as_slice()
            }
            asn1::ResponderId::ByName(name) => name == tbs.subject(),
        })
    }
}

fn single(s: &asn1::SingleResponse) -> Result<OcspSingle, Error> {
    let status = match &s.cert_status {
        asn1::CertStatus::Good(_) => CertStatus::Good,
        asn1::CertStatus::Revoked(info) => CertStatus::Revoked {
            time: generalized(info.revocation_time)?,
            reason: info.revocation_reason.and_then(revocation_reason),
        },
        asn1::CertStatus::Unknown(_) => CertStatus::Unknown,
    };
    Ok(OcspSingle {
        cert_id: cert_id_request(&s.cert_id)?,
        status,
        this_update: generalized(s.this_update)?,
        next_update: s.next_update.map(generalized).transpose()?,
    })
}

/// A response's CertID as the [`CertIdRequest`] that [`IssuerId::matches`] compares.
/// `CertIdRequest` is only made by parsing a request, so a one-CertID request is written
/// and parsed: the normalisation of hash parameters and serial then stays in one place.
fn cert_id_request(id: &asn1::CertId) -> Result<CertIdRequest, Error> {
    let request = asn1::OcspRequest {
        tbs_request: asn1::TbsRequest {
            version: asn1::Version::V1,
            requestor_name: None,
            request_list: vec![asn1::Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    ocsp::parse_request(&request.to_der()?)?
        .certs
        .into_iter()
        .next()
        .ok_or(Error::OcspNoCertificates)
}

fn revocation_reason(r: CrlReason) -> Option<RevocationReason> {
    Some(match r {
        CrlReason::Unspecified => RevocationReason::Unspecified,
        CrlReason::KeyCompromise => RevocationReason::KeyCompromise,
        CrlReason::CaCompromise => RevocationReason::CaCompromise,
        CrlReason::AffiliationChanged => RevocationReason::AffiliationChanged,
        CrlReason::Superseded => RevocationReason::Superseded,
        CrlReason::CessationOfOperation => RevocationReason::CessationOfOperation,
        CrlReason::CertificateHold => RevocationReason::CertificateHold,
        CrlReason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        CrlReason::RemoveFromCRL | CrlReason::AaCompromise => return None,
    })
}

fn generalized(t: GeneralizedTime) -> Result<OffsetDateTime, Error> {
    i64::try_from(t.to_unix_duration().as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| Error::Invalid("OCSP time out of range".into()))
}

/// Verifies a detached CMS signature over `content_digest` (SHA-256 of the content): the
/// signature, the chain to one of `trusted_roots` (DER each; intermediates come from the
/// signature's certificates), every certificate's validity at the signing time, and the
/// embedded OCSP response if there is one.
pub fn verify_cms(
    cms_der: &[u8],
    content_digest: &[u8; 32],
    trusted_roots: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Report, VerifyError> {
    let signed = cms::verify_detached(cms_der, content_digest).map_err(cms_error)?;
    verify_signed(signed, trusted_roots, now)
}

/// [`verify_cms`] for a signature in a PDF (PAdES): its CMS over the digest of its byte
/// range, the signing time from /M when the CMS has no signing-time attribute (see
/// [`cms::verify_detached_pades`]). Whether the byte range covers the whole file is the
/// caller's to weigh ([`crate::pades::PdfSignature::covers_whole_file`]).
pub fn verify_pdf_signature(
    signature: &crate::pades::PdfSignature,
    trusted_roots: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Report, VerifyError> {
    let signed = cms::verify_detached_pades(
        &signature.cms_der,
        &signature.digest,
        signature.signing_time,
    )
    .map_err(cms_error)?;
    verify_signed(signed, trusted_roots, now)
}

fn cms_error(e: Error) -> VerifyError {
    match e {
        Error::CmsDigestMismatch => VerifyError::DigestMismatch,
        e => VerifyError::Cms(e),
    }
}

/// The chain, validity and revocation checks of [`verify_cms`] on a signature whose CMS
/// verified.
fn verify_signed(
    signed: cms::VerifiedSignature,
    trusted_roots: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Report, VerifyError> {
    let signing_time = signed.signing_time;
    if signing_time > now + FUTURE_SKEW {
        return Err(VerifyError::SigningTimeInFuture { signing_time, now });
    }
    let chain = build_chain(
        &signed.signer_cert_der,
        &signed.other_certs_der,
        trusted_roots,
    )?;
    let mut subjects = Vec::with_capacity(chain.len());
    for cert in &chain {
        let s = profile::summary(cert).map_err(VerifyError::Certificate)?;
        if signing_time < s.not_before {
            return Err(VerifyError::NotYetValidAtSigningTime {
                subject: s.subject,
                not_before: s.not_before,
                signing_time,
            });
        }
        if signing_time > s.not_after {
            return Err(VerifyError::ExpiredAtSigningTime {
                subject: s.subject,
                not_after: s.not_after,
                signing_time,
            });
        }
        subjects.push(s.subject);
    }
    let signer = profile::summary(&signed.signer_cert_der).map_err(VerifyError::Certificate)?;
    let revocation = match &signed.ocsp_response_der {
        None => Revocation::NotChecked,
        // build_chain returns at least the signer and its issuer.
        Some(der) => match chain.get(1) {
            Some(issuer) => check_ocsp(der, &signed.signer_cert_der, issuer, signing_time)?,
            None => Revocation::NotChecked,
        },
    };
    Ok(Report {
        signer_subject: signer.subject,
        serial_hex: signer.serial_hex,
        signing_time,
        chain: subjects,
        signer_cert_der: signed.signer_cert_der,
        revocation,
    })
}

fn parse_cert(der: &[u8]) -> Result<Certificate, VerifyError> {
    Certificate::from_der(der).map_err(|e| VerifyError::Certificate(e.into()))
}

/// The chain from `signer` to a trusted root, both included: each issuer found by name
/// among the roots first, then among the intermediates, and checked by signature.
fn build_chain(
    signer: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, VerifyError> {
    let roots = roots
        .iter()
        .map(|r| Ok((parse_cert(r)?, r)))
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates = intermediates
        .iter()
        .map(|r| Ok((parse_cert(r)?, r)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut chain = vec![signer.to_vec()];
    while chain.len() < MAX_CHAIN_LEN {
        let current_der = chain.last().map(Vec::as_slice).unwrap_or_default();
        let current = parse_cert(current_der)?;
        let subject = current.tbs_certificate().subject().to_string();
        let issuer_name = current.tbs_certificate().issuer();
        let mut failure = None;
        for (cert, der) in &roots {
            if cert.tbs_certificate().subject() != issuer_name {
                continue;
            }
            match profile::verify_issued_by(current_der, der) {
                Ok(()) => {
                    chain.push(der.to_vec());
                    return Ok(chain);
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        let mut next = None;
        for (cert, der) in &intermediates {
            if cert.tbs_certificate().subject() != issuer_name || chain.contains(der) {
                continue;
            }
            if let Err(e) = profile::verify_issued_by(current_der, der) {
                failure = Some(e.to_string());
                continue;
            }
            if !profile::is_ca(der).map_err(VerifyError::Certificate)? {
                failure = Some("the issuer is not a CA certificate".into());
                continue;
            }
            next = Some(der.to_vec());
            break;
        }
        match (next, failure) {
            (Some(der), _) => chain.push(der),
            (None, Some(detail)) => {
                return Err(VerifyError::BrokenChain {
                    subject,
                    issuer: issuer_name.to_string(),
                    detail,
                });
            }
            (None, None) => {
                return Err(VerifyError::UntrustedChain {
                    subject,
                    issuer: issuer_name.to_string(),
                });
            }
        }
    }
    Err(VerifyError::ChainTooLong)
}

/// The embedded OCSP response's verdict on `signer`, issued by `issuer`.
fn check_ocsp(
    ocsp_der: &[u8],
    signer: &[u8],
    issuer: &[u8],
    signing_time: OffsetDateTime,
) -> Result<Revocation, VerifyError> {
    let answer = parse_ocsp_response(ocsp_der).map_err(VerifyError::OcspUnusable)?;
    let responder_spki = authorised_responder(&answer, issuer)?;
    answer
        .verify_signature(&responder_spki)
        .map_err(VerifyError::OcspSignatureInvalid)?;

    let issuer_id = IssuerId::from_cert_der(issuer).map_err(VerifyError::Certificate)?;
    let cert = parse_cert(signer)?;
    let serial = unsigned(cert.tbs_certificate().serial_number().as_bytes());
    let found = answer
        .responses
        .iter()
        .find(|s| issuer_id.matches(&s.cert_id) && s.cert_id.serial() == serial)
        .ok_or_else(|| VerifyError::OcspNotForCertificate {
            serial_hex: profile::hex(serial),
            issuer: cert.tbs_certificate().issuer().to_string(),
        })?;
    match found.status {
        CertStatus::Good => Ok(Revocation::Good {
            produced_at: answer.produced_at,
        }),
        CertStatus::Revoked { time, reason } if time <= signing_time => Err(VerifyError::Revoked {
            time,
            reason,
            signing_time,
        }),
        CertStatus::Revoked { time, reason } => Ok(Revocation::RevokedAfterSigning {
            time,
            reason,
            produced_at: answer.produced_at,
        }),
        CertStatus::Unknown => Err(VerifyError::OcspUnknownStatus),
    }
}

/// RFC 6960 section 4.2.2.2: the response is signed by the issuer itself, or by a
/// certificate the issuer issued with EKU id-kp-OCSPSigning, valid when the response was
/// produced. Returns the responder's SubjectPublicKeyInfo, DER.
fn authorised_responder(answer: &OcspAnswer, issuer: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let not_authorised = VerifyError::OcspResponderNotAuthorised;
    if answer
        .responder_is(issuer)
        .map_err(VerifyError::Certificate)?
    {
        return profile::public_key_der(issuer).map_err(VerifyError::Certificate);
    }
    let Some(responder) = answer
        .responder_certs_der
        .iter()
        .find(|c| answer.responder_is(c).unwrap_or(false))
    else {
        return Err(not_authorised(
            "it is neither the signer's issuer nor a certificate sent with the response".into(),
        ));
    };
    let summary = profile::summary(responder).map_err(VerifyError::Certificate)?;
    profile::verify_issued_by(responder, issuer).map_err(|e| {
        not_authorised(format!(
            "{} is not issued by the signer's issuer: {e}",
            summary.subject
        ))
    })?;
    let cert = parse_cert(responder)?;
    let delegated = cert
        .tbs_certificate()
        .get_extension::<ExtendedKeyUsage>()
        .map_err(|e| VerifyError::Certificate(e.into()))?
        .is_some_and(|(_, eku)| eku.0.contains(&ID_KP_OCSP_SIGNING));
    if !delegated {
        return Err(not_authorised(format!(
            "{} has no extended key usage id-kp-OCSPSigning",
            summary.subject
        )));
    }
    if answer.produced_at < summary.not_before || answer.produced_at > summary.not_after {
        return Err(not_authorised(format!(
            "{} was not valid when the response was produced ({})",
            summary.subject, answer.produced_at
        )));
    }
    profile::public_key_der(responder).map_err(VerifyError::Certificate)
}

/// A positive INTEGER's contents without the leading zero octets, as
/// [`CertIdRequest::serial`] has it.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}
