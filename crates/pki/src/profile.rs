//! Certificate profiles of segl's CA hierarchy: the root, the issuing CA for persons, its
//! delegated OCSP signer, and person certificates after ETSI EN 319 412-2 (natural person).
//!
//! The `x509-cert` builder assembles the TBS certificate; the signature comes from a
//! [`Signer`], so a CA key never leaves its key store.

use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc4519, rfc5280, rfc5912};
use der::asn1::{BitString, Ia5String, OctetString, Utf8StringRef};
use der::{Any, Decode, Encode};
use sha1::{Digest, Sha1};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::{Error, Signer};

/// segl's certificate policy: a UUID OID (ITU-T X.667, arc 2.25), which needs no
/// registration. An issuer with an OID of its own sets it (`[pki] policy_oid`).
pub const DEFAULT_POLICY_OID: &str = "2.25.16504666654713297426761069446264920270";
/// ecdsa-with-SHA256 (RFC 5758).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-pkix-ocsp-nocheck (RFC 6960 section 4.2.2.2.1): clients need not check the responder.
const OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning.
pub const KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// What every issued certificate points at: where relying parties fetch CA certificates,
/// CRLs and OCSP answers, and the issuer's certificate policy.
#[derive(Clone, Debug)]
pub struct Urls {
    /// The public base URL, without a trailing slash (`https://eid.example`).
    pub base: String,
    /// The certificate policy OID (dotted) put in every certificate below the root.
    pub policy: String,
}

impl Urls {
    pub fn ocsp(&self) -> String {
        format!("{}/pki/ocsp", self.base)
    }
    /// The CA certificate, DER (RFC 5280 wants DER or certs-only CMS behind caIssuers).
    pub fn ca_cert(&self, ca: &str) -> String {
        format!("{}/pki/ca/{ca}.cer", self.base)
    }
    pub fn crl(&self, ca: &str) -> String {
        format!("{}/pki/crl/{ca}.crl", self.base)
    }
}

/// What a certificate is for, and so its extensions.
#[derive(Clone, Debug)]
pub enum Profile {
    /// Self-signed root; signs issuing CAs and the root CRL.
    RootCa {
        common_name: String,
        organization: String,
    },
    /// An issuing CA (`persons`), signed by the root; signs person certificates and CRLs.
    IssuingCa {
        name: String,
        common_name: String,
        organization: String,
    },
    /// The issuing CA's delegated OCSP responder (RFC 6960 section 4.2.2.2).
    OcspSigner {
        ca: String,
        common_name: String,
        organization: String,
    },
    /// A natural person (ETSI EN 319 412-2): names and a pseudonymous serialNumber.
    Person {
        ca: String,
        given_name: String,
        surname: String,
        serial_number: String,
    },
}

/// The certificate to issue. Serial and times come from the caller: this crate has no
/// clock and no randomness.
pub struct Request<'a> {
    pub profile: Profile,
    /// The subject's public key, DER SubjectPublicKeyInfo.
    pub public_key_der: &'a [u8],
    /// 1 to 20 bytes, first bit clear (a positive INTEGER, RFC 5280 section 4.1.2.2).
    pub serial: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Who signs: the issuer's certificate (none for a self-signed root) and its key.
pub struct Issuer<'a> {
    pub cert_der: Option<&'a [u8]>,
    pub signer: &'a dyn Signer,
}

/// Issues a certificate and returns its DER.
pub fn issue(req: &Request<'_>, issuer: &Issuer<'_>, urls: &Urls) -> Result<Vec<u8>, Error> {
    let spki = SubjectPublicKeyInfoOwned::from_der(req.public_key_der)?;
    if req.serial.is_empty() || req.serial.len() > 20 || req.serial[0] & 0x80 != 0 {
        return Err(Error::Invalid(
            "a serial number is 1 to 20 bytes and positive".into(),
        ));
    }
    if req.not_after <= req.not_before {
        return Err(Error::Invalid("notAfter must come after notBefore".into()));
    }
    let issuer_cert = issuer.cert_der.map(Certificate::from_der).transpose()?;
    if issuer_cert.is_none() && !matches!(req.profile, Profile::RootCa { .. }) {
        return Err(Error::Invalid("only a root CA signs itself".into()));
    }
    let subject = subject_name(&req.profile)?;
    let issuer_name = match &issuer_cert {
        Some(c) => c.tbs_certificate().subject().clone(),
        None => subject.clone(),
    };
    let validity = Validity::new(x509_time(req.not_before)?, x509_time(req.not_after)?);
    let profile = SeglProfile {
        kind: req.profile.clone(),
        subject,
        issuer: issuer_name,
        issuer_key_id: match &issuer_cert {
            Some(c) => Some(key_identifier(c)?),
            None => None,
        },
        urls,
    };
    let mut builder =
        CertificateBuilder::new(profile, SerialNumber::new(req.serial)?, validity, spki)
            .map_err(builder_error)?;
    let keypair = KeyOf(issuer.signer);
    let tbs = builder.finalize(&keypair).map_err(builder_error)?;
    let signature = issuer.signer.sign(&tbs)?;
    let cert = builder
        .assemble(BitString::from_bytes(&signature)?, &keypair)
        .map_err(builder_error)?;
    Ok(cert.to_der()?)
}

/// The parts of a certificate that `segl cert list` and the store show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub serial_hex: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Reads a certificate's serial, names and validity.
pub fn summary(cert_der: &[u8]) -> Result<Summary, Error> {
    let cert = Certificate::from_der(cert_der)?;
    let tbs = cert.tbs_certificate();
    Ok(Summary {
        serial_hex: hex(tbs.serial_number().as_bytes()),
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        not_before: offset_time(tbs.validity().not_before)?,
        not_after: offset_time(tbs.validity().not_after)?,
    })
}

/// The certificate's public key, DER SubjectPublicKeyInfo.
pub fn public_key_der(cert_der: &[u8]) -> Result<Vec<u8>, Error> {
    let cert = Certificate::from_der(cert_der)?;
    Ok(cert.tbs_certificate().subject_public_key_info().to_der()?)
}

/// PEM of a DER certificate.
pub fn to_pem(cert_der: &[u8]) -> Result<String, Error> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert_der)
        .map_err(|e| Error::Invalid(format!("PEM: {e}")))
}

/// DER of a PEM certificate (the first one in the text).
pub fn from_pem(pem: &str) -> Result<Vec<u8>, Error> {
    let (label, der) =
        der::pem::decode_vec(pem.as_bytes()).map_err(|e| Error::Invalid(format!("PEM: {e}")))?;
    if label != "CERTIFICATE" {
        return Err(Error::Invalid(format!(
            "expected a CERTIFICATE, found {label}"
        )));
    }
    Certificate::from_der(&der)?;
    Ok(der)
}

/// Lower-case hex, as serials are shown and stored.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn builder_error(e: x509_cert::builder::Error) -> Error {
    Error::Invalid(format!("certificate builder: {e}"))
}

/// An X.509/CMS time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 section
/// 4.1.2.5, RFC 5652 section 11.3).
pub(crate) fn x509_time(t: OffsetDateTime) -> Result<Time, Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| Error::TimeOutOfRange(t))?;
    let d = Duration::from_secs(secs);
    Ok(if t.year() < 2050 {
        Time::UtcTime(der::asn1::UtcTime::from_unix_duration(d)?)
    } else {
        Time::GeneralTime(der::asn1::GeneralizedTime::from_unix_duration(d)?)
    })
}

pub(crate) fn offset_time(t: Time) -> Result<OffsetDateTime, Error> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|_| Error::Invalid("time out of range".into()))?;
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| Error::Invalid("time out of range".into()))
}

/// SHA-1 of the subjectPublicKey bits: RFC 5280's method (1) for key identifiers.
fn key_id_of(spki: SubjectPublicKeyInfoRef<'_>) -> Vec<u8> {
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

/// The issuer's subjectKeyIdentifier, or method (1) when it has none.
fn key_identifier(cert: &Certificate) -> Result<Vec<u8>, Error> {
    let tbs = cert.tbs_certificate();
    if let Some((_, ski)) = tbs.get_extension::<SubjectKeyIdentifier>()? {
        return Ok(ski.0.as_bytes().to_vec());
    }
    Ok(Sha1::digest(tbs.subject_public_key_info().subject_public_key.raw_bytes()).to_vec())
}

fn attr(oid: ObjectIdentifier, value: &str) -> Result<RelativeDistinguishedName, Error> {
    let mut rdn = RelativeDistinguishedName::default();
    rdn.insert(AttributeTypeAndValue {
        oid,
        value: Any::encode_from(&Utf8StringRef::new(value)?)?,
    })?;
    Ok(rdn)
}

/// countryName is a PrintableString of two letters (RFC 5280 appendix A).
fn country(code: &str) -> Result<RelativeDistinguishedName, Error> {
    let mut rdn = RelativeDistinguishedName::default();
    rdn.insert(AttributeTypeAndValue {
        oid: rfc4519::C,
        value: Any::encode_from(&der::asn1::PrintableStringRef::new(code)?)?,
    })?;
    Ok(rdn)
}

fn subject_name(profile: &Profile) -> Result<Name, Error> {
    let mut rdns = RdnSequence::default();
    rdns.push(country("NO")?);
    match profile {
        Profile::RootCa {
            common_name,
            organization,
        }
        | Profile::IssuingCa {
            common_name,
            organization,
            ..
        }
        | Profile::OcspSigner {
            common_name,
            organization,
            ..
        } => {
            rdns.push(attr(rfc4519::O, organization)?);
            rdns.push(attr(rfc4519::CN, common_name)?);
        }
        Profile::Person {
            given_name,
            surname,
            serial_number,
            ..
        } => {
            for (what, v) in [("given name", given_name), ("surname", surname)] {
                if v.trim().is_empty() || v.len() > 64 {
                    return Err(Error::Invalid(format!("a {what} is 1 to 64 characters")));
                }
            }
            rdns.push(attr(rfc4519::SN, surname)?);
            rdns.push(attr(rfc4519::GIVEN_NAME, given_name)?);
            rdns.push(attr(rfc4519::CN, &format!("{given_name} {surname}"))?);
            // serialNumber is a PrintableString (X.520).
            let mut rdn = RelativeDistinguishedName::default();
            rdn.insert(AttributeTypeAndValue {
                oid: rfc4519::SERIAL_NUMBER,
                value: Any::encode_from(&der::asn1::PrintableStringRef::new(serial_number)?)?,
            })?;
            rdns.push(rdn);
        }
    }
    Ok(Name::from_der(&rdns.to_der()?)?)
}

struct SeglProfile<'a> {
    kind: Profile,
    subject: Name,
    issuer: Name,
    issuer_key_id: Option<Vec<u8>>,
    urls: &'a Urls,
}

fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> der::Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// DER of an OBJECT IDENTIFIER with arcs of up to 128 bits (X.690 section 8.19).
pub fn policy_oid(dotted: &str) -> der::Result<Any> {
    let bad = || der::Error::from(der::ErrorKind::OidMalformed);
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| a.parse::<u128>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (first, second) = match arcs.as_slice() {
        [f @ 0..=1, s @ 0..=39, ..] | [f @ 2, s, ..] => (*f, *s),
        _ => return Err(bad()),
    };
    let mut bytes = Vec::new();
    let head = first
        .checked_mul(40)
        .and_then(|f| f.checked_add(second))
        .ok_or_else(bad)?;
    for arc in std::iter::once(head).chain(arcs[2..].iter().copied()) {
        let mut group = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            group.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        bytes.extend(group.iter().rev());
    }
    Any::new(der::Tag::ObjectIdentifier, bytes)
}

fn uri(s: &str) -> der::Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s)?))
}

impl BuilderProfile for SeglProfile<'_> {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut exts = Vec::new();
        let ski = OctetString::new(key_id_of(spk))?;
        exts.push(extension(
            rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(ski),
        )?);
        let aki = match &self.issuer_key_id {
            Some(id) => id.clone(),
            None => key_id_of(issuer_spk),
        };
        exts.push(extension(
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(aki)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?);
        let (ca, path_len, usages, parent): (bool, Option<u8>, _, Option<&str>) = match &self.kind {
            Profile::RootCa { .. } => (
                true,
                None,
                KeyUsages::KeyCertSign | KeyUsages::CRLSign,
                None,
            ),
            Profile::IssuingCa { .. } => (
                true,
                Some(0),
                KeyUsages::KeyCertSign | KeyUsages::CRLSign,
                Some("root"),
            ),
            Profile::OcspSigner { .. } => (false, None, KeyUsages::DigitalSignature.into(), None),
            Profile::Person { ca, .. } => (
                false,
                None,
                KeyUsages::NonRepudiation.into(),
                Some(ca.as_str()),
            ),
        };
        exts.push(extension(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca,
                path_len_constraint: path_len,
            },
        )?);
        exts.push(extension(
            rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsage(usages),
        )?);
        if let Profile::OcspSigner { .. } = self.kind {
            exts.push(extension(
                rfc5280::ID_CE_EXT_KEY_USAGE,
                false,
                &ExtendedKeyUsage(vec![KP_OCSP_SIGNING]),
            )?);
            exts.push(extension(OCSP_NOCHECK, false, &der::asn1::Null)?);
        }
        if !matches!(self.kind, Profile::RootCa { .. }) {
            exts.push(extension(
                rfc5280::ID_CE_CERTIFICATE_POLICIES,
                false,
                // SEQUENCE OF PolicyInformation, written by hand because const-oid
                // holds arcs in 32 bits and a UUID arc needs 128.
                &vec![vec![policy_oid(&self.urls.policy)?]],
            )?);
        }
        // Revocation pointers for certificates whose status someone checks; the OCSP
        // signer carries nocheck instead.
        if let Some(parent) = parent {
            let mut access = vec![AccessDescription {
                access_method: rfc5912::ID_AD_CA_ISSUERS,
                access_location: uri(&self.urls.ca_cert(parent))?,
            }];
            if matches!(self.kind, Profile::Person { .. }) {
                access.insert(
                    0,
                    AccessDescription {
                        access_method: rfc5912::ID_AD_OCSP,
                        access_location: uri(&self.urls.ocsp())?,
                    },
                );
            }
            exts.push(extension(
                rfc5280::ID_PE_AUTHORITY_INFO_ACCESS,
                false,
                &AuthorityInfoAccessSyntax(access),
            )?);
            exts.push(extension(
                rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS,
                false,
                &CrlDistributionPoints(vec![DistributionPoint {
                    distribution_point: Some(DistributionPointName::FullName(vec![uri(&self
                        .urls
                        .crl(parent))?])),
                    reasons: None,
                    crl_issuer: None,
                }]),
            )?);
        }
        Ok(exts)
    }
}

/// Adapts a [`Signer`] to the builder's traits: the builder only asks for the algorithm
/// and the issuer's public key; the signature itself is made outside.
struct KeyOf<'a>(&'a dyn Signer);

#[derive(Clone)]
struct PublicKey(Vec<u8>);

impl EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.as_slice())?)
    }
}

impl signature::Keypair for KeyOf<'_> {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        PublicKey(self.0.public_key_der().to_vec())
    }
}

impl DynSignatureAlgorithmIdentifier for KeyOf<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        })
    }
}

/// A PKCS#10 request (RFC 2986) for an issuing CA's certificate, signed with its own key as
/// proof of possession: what an offline root signs with [`issue`] after [`read_request`].
pub fn request(profile: &Profile, signer: &dyn Signer) -> Result<Vec<u8>, Error> {
    let subject = subject_name(profile)?;
    let mut builder = x509_cert::request::RequestBuilder::new(subject).map_err(builder_error)?;
    let keypair = KeyOf(signer);
    let info = builder.finalize(&keypair).map_err(builder_error)?;
    let signature = signer.sign(&info)?;
    let req = builder
        .assemble(BitString::from_bytes(&signature)?, &keypair)
        .map_err(builder_error)?;
    Ok(req.to_der()?)
}

/// The public key (DER SPKI) of a PKCS#10 request whose signature checks out.
pub fn read_request(der: &[u8]) -> Result<Vec<u8>, Error> {
    let req = x509_cert::request::CertReq::from_der(der)?;
    let spki = req.info.public_key.to_der()?;
    verify_ecdsa(
        &spki,
        &req.algorithm.oid,
        &req.info.to_der()?,
        req.signature.raw_bytes(),
    )
    .map_err(|e| Error::Invalid(format!("the request's signature does not verify: {e}")))?;
    Ok(spki)
}

/// Checks that `cert_der` names `issuer_der`'s subject as its issuer and carries a valid
/// signature by its key.
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), Error> {
    let cert = Certificate::from_der(cert_der)?;
    let issuer = Certificate::from_der(issuer_der)?;
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return Err(Error::Invalid(format!(
            "the certificate's issuer is {}, not {}",
            cert.tbs_certificate().issuer(),
            issuer.tbs_certificate().subject()
        )));
    }
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;
    verify_ecdsa(
        &spki,
        &cert.signature_algorithm().oid,
        &cert.tbs_certificate().to_der()?,
        cert.signature().raw_bytes(),
    )
    .map_err(|e| Error::Invalid(format!("the certificate's signature does not verify: {e}")))
}

/// Whether a certificate is a CA certificate that may sign certificates.
pub fn is_ca(cert_der: &[u8]) -> Result<bool, Error> {
    let cert = Certificate::from_der(cert_der)?;
    let tbs = cert.tbs_certificate();
    let ca = tbs
        .get_extension::<BasicConstraints>()?
        .is_some_and(|(_, bc)| bc.ca);
    let signs = tbs
        .get_extension::<KeyUsage>()?
        .is_some_and(|(_, ku)| ku.key_cert_sign());
    Ok(ca && signs)
}

/// ECDSA P-256 with SHA-256, the only algorithm segl's CA uses (public-key work only).
pub(crate) fn verify_ecdsa(
    spki: &[u8],
    alg: &ObjectIdentifier,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    if *alg != ECDSA_WITH_SHA256 {
        return Err(format!("algorithm {alg} is not ecdsa-with-SHA256"));
    }
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki)
        .map_err(|_| "the key is not a P-256 public key".to_string())?;
    let sig =
        p256::ecdsa::Signature::from_der(sig).map_err(|_| "malformed signature".to_string())?;
    key.verify(msg, &sig)
        .map_err(|_| "wrong signature".to_string())
}
