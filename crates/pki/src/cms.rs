//! Detached CMS signatures (RFC 5652) at CAdES baseline B (ETSI EN 319 122-1): the content
//! is signed through its SHA-256, so a PDF byte range or a relying party's document digest
//! is all that reaches segl.
//!
//! A [`CmsSigner`] is prepared once from the signer's certificate and chain (parsed,
//! checked, pre-encoded); [`CmsSigner::sign`] then costs one small encoding and one
//! [`Signer::sign`]. [`sign_detached`] does both in one call. [`verify_detached`] checks a
//! signature against a digest; chain and revocation checks are the caller's.
//!
//! For PDFs (PAdES baseline B-B, ETSI EN 319 142-1), [`CmsSigner::sign_pades`] leaves the
//! signing-time attribute out (the time is the signature dictionary's /M) and
//! [`verify_detached_pades`] reads such a CMS with the time from /M.
//!
//! Types come from the `cms` crate; hand-written here are the ESS signing-certificate-v2
//! types (RFC 5035), which the crate lacks, and the `crls` side of SignedData: cms
//! 0.3.0-rc.0 models `OtherRevocationInfoFormat.otherRevInfoFormat` as an
//! AlgorithmIdentifier where RFC 5652 has an OBJECT IDENTIFIER, so it can neither write
//! nor read an RFC 5940 OCSP response.

use ::cms::cert::IssuerAndSerialNumber;
use ::cms::content_info::{CmsVersion, ContentInfo};
use ::cms::signed_data::{
    CertificateSet, DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignerIdentifier,
    SignerInfos,
};
use const_oid::db::rfc5911::{
    ID_AA_SIGNING_CERTIFICATE_V_2, ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA,
    ID_SIGNING_TIME,
};
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_SHA_256};
use der::asn1::{ContextSpecificRef, ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Length, Tag, TagMode, TagNumber};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::time::Time;

use crate::ocsp::asn1::{OcspResponse, OcspResponseStatus};
use crate::profile::{offset_time, x509_time as cms_time};
use crate::{Error, Signer};

/// id-ri-ocsp-response (RFC 5940 section 4.1): an OCSPResponse carried in SignedData's
/// `crls` as `other` revocation information. Not in const-oid's database.
pub const ID_RI_OCSP_RESPONSE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.16.2");

/// The DER types RFC 5035 and RFC 5940 add to CMS, which the `cms` crate lacks.
pub mod asn1 {
    use core::cmp::Ordering;

    use der::asn1::{Any, ObjectIdentifier, OctetString};
    use der::{Choice, DerOrd, Encode, Sequence, ValueOrd};
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::crl::CertificateList;
    use x509_cert::ext::pkix::name::GeneralNames;
    use x509_cert::serial_number::SerialNumber;

    /// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies
    /// SEQUENCE OF PolicyInformation OPTIONAL }` (RFC 5035 section 3).
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct SigningCertificateV2 {
        /// The first names the signer's certificate; more may follow (RFC 5035 section 3).
        pub certs: Vec<EssCertIdV2>,
        /// Kept undecoded: segl sends none, and a policy OID may have arcs too long for
        /// const-oid (like segl's own UUID policy).
        #[asn1(optional = "true")]
        pub policies: Option<Vec<Any>>,
    }

    /// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT
    /// {algorithm id-sha256}, certHash Hash, issuerSerial IssuerSerial OPTIONAL }`
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct EssCertIdV2 {
        /// None means SHA-256, which DER requires to be left out. An Option rather than a
        /// DEFAULT so that a producer that writes sha256 out is still read.
        #[asn1(optional = "true")]
        pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
        /// The hash of the whole certificate DER.
        pub cert_hash: OctetString,
        #[asn1(optional = "true")]
        pub issuer_serial: Option<IssuerSerial>,
    }

    /// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber
    /// CertificateSerialNumber }` (RFC 5035 section 4).
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct IssuerSerial {
        /// The certificate's issuer as one directoryName.
        pub issuer: GeneralNames,
        pub serial_number: SerialNumber,
    }

    /// `RevocationInfoChoice ::= CHOICE { crl CertificateList, other [1] IMPLICIT
    /// OtherRevocationInfoFormat }` (RFC 5652 section 10.2.1).
    #[derive(Clone, Debug, PartialEq, Eq, Choice)]
    #[allow(clippy::large_enum_variant)] // as parsed; one per signature
    pub enum RevocationInfoChoice {
        Crl(CertificateList),
        #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
        Other(OtherRevocationInfoFormat),
    }

    impl ValueOrd for RevocationInfoChoice {
        // A SET OF member: DER orders by encoding.
        fn value_cmp(&self, other: &Self) -> der::Result<Ordering> {
            self.to_der()?.der_cmp(&other.to_der()?)
        }
    }

    /// `OtherRevocationInfoFormat ::= SEQUENCE { otherRevInfoFormat OBJECT IDENTIFIER,
    /// otherRevInfo ANY DEFINED BY otherRevInfoFormat }`.
    #[derive(Clone, Debug, PartialEq, Eq, Sequence)]
    pub struct OtherRevocationInfoFormat {
        pub other_rev_info_format: ObjectIdentifier,
        pub other_rev_info: Any,
    }
}

use asn1::{EssCertIdV2, IssuerSerial, OtherRevocationInfoFormat, RevocationInfoChoice};

/// `SignedData` as RFC 5652 has it, for reading: the crate's, with `crls` of
/// [`asn1::RevocationInfoChoice`] (see the module comment).
#[derive(Clone, Debug, PartialEq, Eq, der::Sequence)]
struct SignedData {
    version: CmsVersion,
    digest_algorithms: DigestAlgorithmIdentifiers,
    encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<CertificateSet>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<SetOfVec<RevocationInfoChoice>>,
    signer_infos: SignerInfos,
}

/// What to sign: see [`sign_detached`].
pub struct SignInput<'a> {
    /// SHA-256 of the signed content (a PDF byte range, or a document's digest from the
    /// relying party).
    pub content_digest: [u8; 32],
    /// The signer's certificate (DER) and the chain above it up to, not including, the
    /// root (DER each).
    pub signer_cert_der: &'a [u8],
    pub chain_der: &'a [Vec<u8>],
    pub signing_time: OffsetDateTime,
    /// Optional: a DER OCSPResponse for the signer's certificate at signing time, put in
    /// the SignedData's `crls` as RevocationInfoChoice `other` with id-ri-ocsp-response
    /// (RFC 5940), for long-term validation.
    pub ocsp_response_der: Option<&'a [u8]>,
}

/// A detached CAdES-B signature (DER ContentInfo of SignedData) over a content digest.
/// For many signatures with one certificate, keep a [`CmsSigner`].
pub fn sign_detached(input: &SignInput<'_>, signer: &dyn Signer) -> Result<Vec<u8>, Error> {
    CmsSigner::new(input.signer_cert_der, input.chain_der)?.sign(
        signer,
        &input.content_digest,
        input.signing_time,
        input.ocsp_response_der,
    )
}

/// Signs as one certificate. Prepared once: the certificates are parsed, checked and
/// encoded here with the `cms` crate's types, and so are every other part that does not
/// change; each [`CmsSigner::sign`] then encodes the message digest and signing time,
/// signs, and joins the DER pieces. (Encoding the typed SignedData for every signature
/// cost about 45 % of an ECDSA signature, mostly in re-encoding the certificates and
/// in der's nested length computations; joining pieces costs a few percent. A unit test
/// checks that the result equals what the crate's types encode.)
#[derive(Clone, Debug)]
pub struct CmsSigner {
    /// The signer certificate's SubjectPublicKeyInfo, to check each signer against.
    spki_der: Vec<u8>,
    /// The content-type (id-data) and signing-certificate-v2 Attributes, DER: the same
    /// in every signature.
    fixed_attrs: [Vec<u8>; 2],
    /// SignedData's fields before `crls`: version, digestAlgorithms, encapContentInfo
    /// (id-data, no eContent) and `certificates [0] IMPLICIT CertificateSet`, DER.
    signed_data_head: Vec<u8>,
    /// SignerInfo's fields before `signedAttrs`: version, sid, digestAlgorithm, DER.
    signer_info_head: Vec<u8>,
    /// signatureAlgorithm, DER.
    signature_algorithm: Vec<u8>,
}

impl CmsSigner {
    /// From the signer's certificate and the chain above it (without the root), DER each.
    pub fn new(signer_cert_der: &[u8], chain_der: &[Vec<u8>]) -> Result<Self, Error> {
        let cert = der_certificate(signer_cert_der, "signer")?;
        let mut set = SetOfVec::new();
        set.insert(::cms::cert::CertificateChoices::Certificate(cert.clone()))?;
        for c in chain_der {
            let chain_cert = der_certificate(c, "chain")?;
            // insert refuses duplicates; a chain repeating a certificate is harmless.
            let choice = ::cms::cert::CertificateChoices::Certificate(chain_cert);
            if !set.as_slice().contains(&choice) {
                set.insert(choice)?;
            }
        }
        let certificates = CertificateSet(set);
        let mut digest_algorithms: DigestAlgorithmIdentifiers = SetOfVec::new();
        digest_algorithms.insert(sha256())?;
        let encap = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        };
        let mut signed_data_head = CmsVersion::V1.to_der()?;
        digest_algorithms.encode(&mut signed_data_head)?;
        encap.encode(&mut signed_data_head)?;
        ContextSpecificRef {
            tag_number: TagNumber(0),
            tag_mode: TagMode::Implicit,
            value: &certificates,
        }
        .encode(&mut signed_data_head)?;

        let tbs = cert.tbs_certificate();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        });
        let mut signer_info_head = CmsVersion::V1.to_der()?;
        sid.encode(&mut signer_info_head)?;
        sha256().encode(&mut signer_info_head)?;

        let signing_cert = asn1::SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(Sha256::digest(signer_cert_der).as_slice())?,
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
                    serial_number: tbs.serial_number().clone(),
                }),
            }],
            policies: None,
        };
        let fixed_attrs = [
            attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?.to_der()?,
            attribute(
                ID_AA_SIGNING_CERTIFICATE_V_2,
                Any::encode_from(&signing_cert)?,
            )?
            .to_der()?,
        ];
        Ok(Self {
            spki_der: tbs.subject_public_key_info().to_der()?,
            fixed_attrs,
            signed_data_head,
            signer_info_head,
            signature_algorithm: ecdsa_with_sha256().to_der()?,
        })
    }

    /// A detached CAdES-B signature (DER ContentInfo of SignedData) over `digest`, the
    /// SHA-256 of the content, with `ocsp_response_der` (a DER OCSPResponse) in `crls`.
    pub fn sign(
        &self,
        signer: &dyn Signer,
        digest: &[u8; 32],
        signing_time: OffsetDateTime,
        ocsp_response_der: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        self.sign_with(signer, digest, Some(signing_time), ocsp_response_der)
    }

    /// The CMS of a PAdES baseline B-B signature (ETSI EN 319 142-1 section 6.3): as
    /// [`CmsSigner::sign`] but without the signing-time attribute, which PAdES forbids
    /// (the time goes in the signature dictionary's /M instead).
    pub fn sign_pades(
        &self,
        signer: &dyn Signer,
        digest: &[u8; 32],
        ocsp_response_der: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        self.sign_with(signer, digest, None, ocsp_response_der)
    }

    /// The longest DER that [`CmsSigner::sign_pades`] can return with this OCSP response:
    /// what a PDF must reserve for it. Only the ECDSA signature varies in length, and it
    /// is at most 72 octets for P-256.
    pub fn pades_max_len(&self, ocsp_response_der: Option<&[u8]>) -> Result<usize, Error> {
        let longest = LongestSignature {
            spki_der: &self.spki_der,
        };
        Ok(self
            .sign_with(&longest, &[0; 32], None, ocsp_response_der)?
            .len())
    }

    fn sign_with(
        &self,
        signer: &dyn Signer,
        digest: &[u8; 32],
        signing_time: Option<OffsetDateTime>,
        ocsp_response_der: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        if signer.public_key_der() != self.spki_der {
            return Err(Error::KeyMismatch("signer"));
        }
        let crls = match ocsp_response_der {
            None => None,
            Some(ocsp) => Some(
                ContextSpecificRef {
                    tag_number: TagNumber(1),
                    tag_mode: TagMode::Implicit,
                    value: &revocation_info(ocsp)?,
                }
                .to_der()?,
            ),
        };
        let message_digest = attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.as_slice())?)?,
        )?
        .to_der()?;
        let time = match signing_time {
            Some(t) => {
                Some(attribute(ID_SIGNING_TIME, Any::encode_from(&cms_time(t)?)?)?.to_der()?)
            }
            None => None,
        };
        let mut attrs: Vec<&[u8]> =
            vec![&self.fixed_attrs[0], &message_digest, &self.fixed_attrs[1]];
        if let Some(time) = &time {
            attrs.push(time);
        }
        // DER SET OF order (X.690 section 11.6): by encoding, as octet strings. Slices
        // compare the same way: a proper prefix cannot occur between distinct TLVs.
        attrs.sort_unstable();
        // RFC 5652 section 5.4: the signature covers the DER of the SET OF (tag 0x31);
        // the same contents are sent under [0] IMPLICIT.
        let signed_attrs = tlv(Tag::Set, &attrs)?;
        let signature = signer.sign(&signed_attrs)?;
        let attrs_content = &signed_attrs[signed_attrs.len() - content_len(&attrs)..];
        let signer_info = tlv(
            Tag::Sequence,
            &[
                &self.signer_info_head,
                &tlv(context_tag(0), &[attrs_content])?,
                &self.signature_algorithm,
                &tlv(Tag::OctetString, &[&signature])?,
            ],
        )?;
        let signed_data = tlv(
            Tag::Sequence,
            &[
                &self.signed_data_head,
                crls.as_deref().unwrap_or_default(),
                &tlv(Tag::Set, &[&signer_info])?,
            ],
        )?;
        Ok(tlv(
            Tag::Sequence,
            &[
                &ID_SIGNED_DATA.to_der()?,
                &tlv(context_tag(0), &[&signed_data])?,
            ],
        )?)
    }
}

/// A stand-in signer for [`CmsSigner::pades_max_len`]: the longest DER ECDSA P-256
/// signature (two 33-octet INTEGERs), with no key behind it.
struct LongestSignature<'a> {
    spki_der: &'a [u8],
}

impl Signer for LongestSignature<'_> {
    fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, Error> {
        let mut integer = vec![0x02, 33, 0x00, 0x80];
        integer.resize(35, 0);
        Ok([&[0x30, 70][..], &integer, &integer].concat())
    }

    fn public_key_der(&self) -> &[u8] {
        self.spki_der
    }
}

fn content_len(parts: &[&[u8]]) -> usize {
    parts.iter().map(|p| p.len()).sum()
}

/// A DER TLV with `tag` around the concatenation of `parts` (each already DER).
fn tlv(tag: Tag, parts: &[&[u8]]) -> der::Result<Vec<u8>> {
    let header = der::Header::new(tag, Length::try_from(content_len(parts))?);
    let mut out = Vec::with_capacity(usize::try_from(header.encoded_len()?)? + content_len(parts));
    header.encode(&mut out)?;
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// What [`verify_detached`] found in a valid signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The certificate whose key made the signature, DER.
    pub signer_cert_der: Vec<u8>,
    /// The other certificates the signature carries (normally the chain), DER each.
    pub other_certs_der: Vec<Vec<u8>>,
    /// The signing-time attribute: the signer's claim, not a timestamp.
    pub signing_time: OffsetDateTime,
    /// The first RFC 5940 OCSP response in `crls`, DER, as embedded.
    pub ocsp_response_der: Option<Vec<u8>>,
}

/// Checks a detached CMS signature made as [`CmsSigner::sign`] makes them (one signer,
/// SHA-256, ECDSA P-256) against the content's SHA-256: the message-digest attribute,
/// the signature over the signed attributes with the signer certificate's key, and the
/// signing-certificate-v2 attribute. It does not check the certificate chain, validity
/// or revocation.
pub fn verify_detached(
    cms_der: &[u8],
    content_digest: &[u8; 32],
) -> Result<VerifiedSignature, Error> {
    let (checked, signing_time) = check_detached(cms_der, content_digest)?;
    let signing_time = signing_time.ok_or(Error::CmsMissingAttribute("signing-time"))?;
    Ok(checked.at(signing_time))
}

/// [`verify_detached`] for the CMS of a PDF signature (PAdES, ETSI EN 319 142-1), which
/// carries no signing-time attribute: the signing time is then `dictionary_time`, the
/// signature dictionary's /M (covered by the byte range, so signed as well). A CMS that
/// has the attribute all the same (CAdES habits, not baseline B-B) is read with it.
pub fn verify_detached_pades(
    cms_der: &[u8],
    content_digest: &[u8; 32],
    dictionary_time: Option<OffsetDateTime>,
) -> Result<VerifiedSignature, Error> {
    let (checked, signing_time) = check_detached(cms_der, content_digest)?;
    let signing_time = signing_time
        .or(dictionary_time)
        .ok_or(Error::PdfNoSigningTime)?;
    Ok(checked.at(signing_time))
}

/// What [`check_detached`] found, before a signing time is settled.
struct Checked {
    signer_cert_der: Vec<u8>,
    other_certs_der: Vec<Vec<u8>>,
    ocsp_response_der: Option<Vec<u8>>,
}

impl Checked {
    fn at(self, signing_time: OffsetDateTime) -> VerifiedSignature {
        VerifiedSignature {
            signer_cert_der: self.signer_cert_der,
            other_certs_der: self.other_certs_der,
            signing_time,
            ocsp_response_der: self.ocsp_response_der,
        }
    }
}

/// The checks of [`verify_detached`], and the signing-time attribute if there is one.
fn check_detached(
    cms_der: &[u8],
    content_digest: &[u8; 32],
) -> Result<(Checked, Option<OffsetDateTime>), Error> {
    let content_info = ContentInfo::from_der(cms_der).map_err(Error::NotCms)?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(Error::CmsUnsupported(format!(
            "content type {} is not signed-data",
            content_info.content_type
        )));
    }
    let signed_data = content_info
        .content
        .decode_as::<SignedData>()
        .map_err(Error::NotCms)?;
    if signed_data.encap_content_info.econtent.is_some() {
        return Err(Error::CmsNotDetached);
    }
    let [signer_info] = signed_data.signer_infos.0.as_slice() else {
        return Err(Error::CmsUnsupported(format!(
            "{} signers (segl reads exactly one)",
            signed_data.signer_infos.0.len()
        )));
    };
    if signer_info.digest_alg.oid != ID_SHA_256 {
        return Err(Error::CmsUnsupported(format!(
            "digest algorithm {}",
            signer_info.digest_alg.oid
        )));
    }
    if signer_info.signature_algorithm.oid != ECDSA_WITH_SHA_256 {
        return Err(Error::CmsUnsupported(format!(
            "signature algorithm {}",
            signer_info.signature_algorithm.oid
        )));
    }
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or(Error::CmsMissingAttribute("signed attributes"))?;

    let content_type: ObjectIdentifier =
        single_attr(attrs.as_slice(), ID_CONTENT_TYPE, "content-type")?
            .ok_or(Error::CmsMissingAttribute("content-type"))?;
    if content_type != signed_data.encap_content_info.econtent_type {
        return Err(Error::CmsUnsupported(
            "content-type attribute differs from eContentType".into(),
        ));
    }
    let digest: OctetString = single_attr(attrs.as_slice(), ID_MESSAGE_DIGEST, "message-digest")?
        .ok_or(Error::CmsMissingAttribute("message-digest"))?;
    if digest.as_bytes() != content_digest {
        return Err(Error::CmsDigestMismatch);
    }

    let certs: Vec<Certificate> = signed_data
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            ::cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
            ::cms::cert::CertificateChoices::Other(_) => None,
        })
        .collect();
    let signer_index = certs
        .iter()
        .position(|c| identifies(&signer_info.sid, c))
        .ok_or(Error::CmsSignerCertificateMissing)?;
    let signer_cert = &certs[signer_index];
    let spki_der = signer_cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;

    // Re-encoded: the decoder sorted the SET, so this is its DER, which RFC 5652
    // section 5.4 says the signature covers.
    let signed_bytes = attrs.to_der()?;
    verify_ecdsa_p256(&spki_der, &signed_bytes, signer_info.signature.as_bytes())?;

    let signer_cert_der = signer_cert.to_der()?;
    let signing_cert: asn1::SigningCertificateV2 = single_attr(
        attrs.as_slice(),
        ID_AA_SIGNING_CERTIFICATE_V_2,
        "signing-certificate-v2",
    )?
    .ok_or(Error::CmsSigningCertificateMissing)?;
    check_signing_certificate(&signing_cert, signer_cert, &signer_cert_der)?;

    let signing_time: Option<Time> =
        single_attr(attrs.as_slice(), ID_SIGNING_TIME, "signing-time")?;
    let signing_time = signing_time.map(offset_time).transpose()?;

    let ocsp_response_der = signed_data
        .crls
        .iter()
        .flat_map(|set| set.iter())
        .find_map(|c| match c {
            RevocationInfoChoice::Other(o) if o.other_rev_info_format == ID_RI_OCSP_RESPONSE => {
                Some(o.other_rev_info.to_der())
            }
            _ => None,
        })
        .transpose()?;
    let other_certs_der = certs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != signer_index)
        .map(|(_, c)| c.to_der())
        .collect::<Result<_, _>>()?;
    Ok((
        Checked {
            signer_cert_der,
            other_certs_der,
            ocsp_response_der,
        },
        signing_time,
    ))
}

/// The value of the attribute `oid`, if present: exactly one attribute with exactly one
/// value (RFC 5652 section 11 for the CMS ones, RFC 5035 for signing-certificate-v2).
fn single_attr<T: for<'b> Decode<'b, Error = der::Error>>(
    attrs: &[Attribute],
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<Option<T>, Error> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || attr.values.len() != 1 {
        return Err(Error::CmsDuplicateAttribute(name));
    }
    let value = attr.values.get(0).ok_or(Error::CmsMissingAttribute(name))?;
    // Through DER bytes: `Any::decode_as` does not take a CHOICE such as Time.
    Ok(Some(T::from_der(&value.to_der()?)?))
}

/// Whether a SignerIdentifier names `cert`.
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, own)| own == *ski),
    }
}

/// RFC 5035 section 5.4: the first ESSCertIDv2 must name the signer's certificate.
fn check_signing_certificate(
    signing_cert: &asn1::SigningCertificateV2,
    cert: &Certificate,
    cert_der: &[u8],
) -> Result<(), Error> {
    let first = signing_cert
        .certs
        .first()
        .ok_or(Error::CmsSigningCertificateMissing)?;
    if first
        .hash_algorithm
        .as_ref()
        .is_some_and(|a| a.oid != ID_SHA_256)
    {
        return Err(Error::CmsUnsupported(
            "signing-certificate-v2 hash other than SHA-256".into(),
        ));
    }
    if first.cert_hash.as_bytes() != Sha256::digest(cert_der).as_slice() {
        return Err(Error::CmsSigningCertificateMismatch);
    }
    if let Some(issuer_serial) = &first.issuer_serial {
        let tbs = cert.tbs_certificate();
        let names_issuer = issuer_serial
            .issuer
            .iter()
            .any(|n| matches!(n, GeneralName::DirectoryName(name) if name == tbs.issuer()));
        if !names_issuer || issuer_serial.serial_number != *tbs.serial_number() {
            return Err(Error::CmsSigningCertificateMismatch);
        }
    }
    Ok(())
}

/// ECDSA P-256 with SHA-256 over `msg`; p256 does the public-key arithmetic.
fn verify_ecdsa_p256(spki_der: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), Error> {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki_der)
        .map_err(|e| Error::CmsUnsupported(format!("signer key is not an ECDSA P-256 key: {e}")))?;
    let signature =
        p256::ecdsa::Signature::from_der(signature).map_err(|_| Error::CmsBadSignature)?;
    key.verify(msg, &signature)
        .map_err(|_| Error::CmsBadSignature)
}

/// Parses a certificate that must be in DER: it is embedded as re-encoded from the parsed
/// form, and hashed as given for signing-certificate-v2, so the two must agree.
fn der_certificate(der: &[u8], what: &'static str) -> Result<Certificate, Error> {
    let cert = Certificate::from_der(der)?;
    if cert.to_der()? != der {
        return Err(Error::NotDer(what));
    }
    Ok(cert)
}

/// An OCSPResponse as RFC 5940 RevocationInfoChoices. Only a successful response says
/// anything about the certificate, so others are refused.
fn revocation_info(ocsp_der: &[u8]) -> Result<SetOfVec<RevocationInfoChoice>, Error> {
    let response = OcspResponse::from_der(ocsp_der)
        .map_err(|e| Error::Invalid(format!("OCSP response: {e}")))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(Error::Invalid(format!(
            "OCSP response status {:?} carries no revocation information",
            response.response_status
        )));
    }
    let mut set = SetOfVec::new();
    set.insert(RevocationInfoChoice::Other(OtherRevocationInfoFormat {
        other_rev_info_format: ID_RI_OCSP_RESPONSE,
        other_rev_info: Any::from_der(ocsp_der)?,
    }))?;
    Ok(set)
}

fn context_tag(number: u32) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(number),
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, Error> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn sha256() -> AlgorithmIdentifierOwned {
    // RFC 5754 section 2: the parameters of the SHA-2 hashes are absent.
    AlgorithmIdentifierOwned {
        oid: ID_SHA_256,
        parameters: None,
    }
}

fn ecdsa_with_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA_256,
        parameters: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESSCertIDv2 with the default hash: DER leaves hashAlgorithm out, so the encoding
    /// starts with the certHash OCTET STRING.
    #[test]
    fn ess_cert_id_v2_omits_default_sha256() {
        let id = EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new([0xab; 32]).unwrap(),
            issuer_serial: None,
        };
        let der = id.to_der().unwrap();
        assert_eq!(&der[..4], &[0x30, 34, 0x04, 32]);
        assert_eq!(EssCertIdV2::from_der(&der).unwrap(), id);
    }

    /// A producer that writes the default sha256 out is still read.
    #[test]
    fn ess_cert_id_v2_reads_explicit_sha256() {
        let id = EssCertIdV2 {
            hash_algorithm: Some(sha256()),
            cert_hash: OctetString::new([1; 32]).unwrap(),
            issuer_serial: None,
        };
        let back = EssCertIdV2::from_der(&id.to_der().unwrap()).unwrap();
        assert_eq!(back.hash_algorithm.unwrap().oid, ID_SHA_256);
    }

    /// SigningCertificateV2 round trip with an issuerSerial and no policies.
    #[test]
    fn signing_certificate_v2_round_trip() {
        let name = x509_cert::name::Name::from_der(&[0x30, 0x00]).unwrap();
        let value = asn1::SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new([7; 32]).unwrap(),
                issuer_serial: Some(IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(name)],
                    serial_number: x509_cert::serial_number::SerialNumber::new(&[0x10, 0x01])
                        .unwrap(),
                }),
            }],
            policies: None,
        };
        let der = value.to_der().unwrap();
        assert_eq!(asn1::SigningCertificateV2::from_der(&der).unwrap(), value);
    }

    /// OtherRevocationInfoFormat starts with a bare OBJECT IDENTIFIER (RFC 5652), under
    /// the [1] IMPLICIT tag of its CHOICE.
    #[test]
    fn other_revocation_info_is_oid_then_value() {
        let choice = RevocationInfoChoice::Other(OtherRevocationInfoFormat {
            other_rev_info_format: ID_RI_OCSP_RESPONSE,
            other_rev_info: Any::from_der(&[0x30, 0x03, 0x0a, 0x01, 0x01]).unwrap(),
        });
        let der = choice.to_der().unwrap();
        assert_eq!(der[0], 0xa1);
        assert_eq!(&der[2..4], &[0x06, 0x08]);
        assert_eq!(RevocationInfoChoice::from_der(&der).unwrap(), choice);
    }

    /// Signing times before 2050 are UTCTime, from 2050 GeneralizedTime; before 1970 is
    /// refused rather than wrapped.
    #[test]
    fn signing_time_encoding() {
        let t = time::macros::datetime!(2049-12-31 23:59:59 UTC);
        assert!(matches!(cms_time(t).unwrap(), Time::UtcTime(_)));
        let t = time::macros::datetime!(2050-01-01 00:00:00 UTC);
        assert!(matches!(cms_time(t).unwrap(), Time::GeneralTime(_)));
        let t = time::macros::datetime!(1969-12-31 23:59:59 UTC);
        assert!(matches!(cms_time(t), Err(Error::TimeOutOfRange(_))));
    }
}
