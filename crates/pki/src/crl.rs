//! CRLs (RFC 5280 section 5): v2 CRLs signed by an issuing CA, for up to millions of entries.
//!
//! Entries are DER-encoded straight into the output buffer (about 50 bytes each) instead of
//! being collected as `x509_cert::crl::RevokedCert` values, which would cost several
//! allocations and a few hundred bytes per entry. The SEQUENCE headers, whose lengths are
//! known only at the end, are written into gaps left in front of their contents.

use std::time::Duration;

use const_oid::db::rfc5280::{ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS};
use der::asn1::{BitString, GeneralizedTime, OctetString, Uint, UtcTime};
use der::{DateTime, Decode, Encode, Header, Length, Tag, TagNumber};
use sha1::{Digest, Sha1};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, SubjectKeyIdentifier};
use x509_cert::time::Time;

use crate::ocsp::{crl_reason, ecdsa_with_sha256};
use crate::{Error, RevocationReason, Signer};

/// A revoked certificate as listed in a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Unsigned big-endian, 1 to 20 octets (leading zero octets are ignored).
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    /// Listed as a reasonCode entry extension unless None or Unspecified (RFC 5280 section
    /// 5.3.1: unspecified SHOULD be left out).
    pub reason: Option<RevocationReason>,
}

/// Room for a DER header: one tag octet, and a length of up to four octets after 0x84.
const GAP: usize = 6;
/// The usual size of an entry, to size the buffer from the iterator's hint.
const ENTRY_ESTIMATE: usize = 54;

/// A v2 CRL issued by the CA of `issuer_cert_der`, signed by `signer` (that CA's key), with
/// authorityKeyIdentifier, cRLNumber `crl_number`, and `entries` in the order given. With no
/// entries the revokedCertificates list is left out, as RFC 5280 requires. Entries are not
/// checked for duplicate serials.
pub fn build_crl(
    issuer_cert_der: &[u8],
    signer: &dyn Signer,
    crl_number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    entries: impl IntoIterator<Item = RevokedEntry>,
) -> Result<Vec<u8>, Error> {
    let issuer = Certificate::from_der(issuer_cert_der)?;
    let tbs_cert = issuer.tbs_certificate();
    let spki = tbs_cert.subject_public_key_info();
    if spki.to_der()? != signer.public_key_der() {
        return Err(Error::KeyMismatch("issuer"));
    }
    if next_update <= this_update {
        return Err(Error::Invalid(
            "a CRL's nextUpdate must be after its thisUpdate".into(),
        ));
    }
    // The issuer's own key identifier, so that AKI matches its SKI; RFC 5280 section
    // 4.2.1.2 method (1) when it has none.
    let key_id = match tbs_cert.get_extension::<SubjectKeyIdentifier>()? {
        Some((_, ski)) => ski.0,
        None => OctetString::new(Sha1::digest(spki.subject_public_key.raw_bytes()).as_slice())?,
    };
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(key_id),
        ..Default::default()
    };
    let crl_extensions = vec![
        Extension {
            extn_id: ID_CE_AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(aki.to_der()?)?,
        },
        Extension {
            extn_id: ID_CE_CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(CrlNumber(Uint::try_from(crl_number)?).to_der()?)?,
        },
    ]
    .to_der()?;
    let reason_exts = ReasonExtensions::new()?;

    let entries = entries.into_iter();
    let mut buf = Vec::with_capacity(
        1024 + entries
            .size_hint()
            .0
            .saturating_mul(ENTRY_ESTIMATE)
            .min(1 << 30),
    );
    // [gap for the CertificateList header][gap for the TBSCertList header][TBSCertList...]
    buf.resize(2 * GAP, 0);
    let mut tbs_start = buf.len();
    buf.extend_from_slice(&[0x02, 0x01, 0x01]); // version v2
    ecdsa_with_sha256().encode_to_vec(&mut buf)?;
    tbs_cert.subject().encode_to_vec(&mut buf)?;
    rfc5280_time(this_update)?.encode_to_vec(&mut buf)?;
    rfc5280_time(next_update)?.encode_to_vec(&mut buf)?;

    let list_gap = buf.len();
    buf.resize(list_gap + GAP, 0);
    for entry in entries {
        push_entry(&mut buf, &entry, &reason_exts)?;
    }
    let list_len = buf.len() - list_gap - GAP;
    if list_len == 0 {
        buf.truncate(list_gap);
    } else {
        let header_start = put_header(&mut buf, list_gap + GAP, Tag::Sequence, list_len)?;
        // Close the rest of the gap by moving what precedes it (a few hundred bytes), not
        // the entries (megabytes).
        let shift = header_start - list_gap;
        buf.copy_within(tbs_start..list_gap, tbs_start + shift);
        tbs_start += shift;
    }
    put_header_after(
        &mut buf,
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(0),
        },
        &crl_extensions,
    )?;

    let tbs_len = buf.len() - tbs_start;
    let tbs_start = put_header(&mut buf, tbs_start, Tag::Sequence, tbs_len)?;
    let signature = signer.sign(buf.get(tbs_start..).unwrap_or_default())?;
    ecdsa_with_sha256().encode_to_vec(&mut buf)?;
    BitString::from_bytes(&signature)?.encode_to_vec(&mut buf)?;
    let outer_len = buf.len() - tbs_start;
    let start = put_header(&mut buf, tbs_start, Tag::Sequence, outer_len)?;
    // One move of the whole CRL over the unused gap octets in front, in place.
    buf.drain(..start);
    Ok(buf)
}

/// Writes the DER header for `len` content octets into `buf` so that it ends at `end`, and
/// returns where it starts. The caller leaves at least [`GAP`] octets free before `end`.
fn put_header(buf: &mut [u8], end: usize, tag: Tag, len: usize) -> Result<usize, Error> {
    let mut header = [0u8; GAP];
    let header = Header::new(tag, Length::try_from(len)?).encode_to_slice(&mut header)?;
    let start = end
        .checked_sub(header.len())
        .ok_or_else(|| Error::Invalid("no room for a DER header".into()))?;
    buf.get_mut(start..end)
        .ok_or_else(|| Error::Invalid("no room for a DER header".into()))?
        .copy_from_slice(header);
    Ok(start)
}

/// Appends `tag` wrapping `content` (EXPLICIT tagging).
fn put_header_after(buf: &mut Vec<u8>, tag: Tag, content: &[u8]) -> Result<(), Error> {
    Header::new(tag, Length::try_from(content.len())?).encode_to_vec(buf)?;
    buf.extend_from_slice(content);
    Ok(())
}

/// The entry extensions (a reasonCode) for each CRLReason code, encoded once.
struct ReasonExtensions([Option<Vec<u8>>; 10]);

impl ReasonExtensions {
    fn new() -> Result<Self, Error> {
        let mut by_code: [Option<Vec<u8>>; 10] = Default::default();
        for r in RevocationReason::ALL {
            if r == RevocationReason::Unspecified {
                continue;
            }
            let der = vec![Extension {
                extn_id: ID_CE_CRL_REASONS,
                critical: false,
                extn_value: OctetString::new(crl_reason(r).to_der()?)?,
            }]
            .to_der()?;
            if let Some(slot) = by_code.get_mut(usize::from(r.code())) {
                *slot = Some(der);
            }
        }
        Ok(Self(by_code))
    }

    fn get(&self, reason: Option<RevocationReason>) -> &[u8] {
        reason
            .and_then(|r| self.0.get(usize::from(r.code())))
            .and_then(|d| d.as_deref())
            .unwrap_or_default()
    }
}

/// Appends `SEQUENCE { userCertificate, revocationDate, crlEntryExtensions OPTIONAL }`.
fn push_entry(
    buf: &mut Vec<u8>,
    e: &RevokedEntry,
    reasons: &ReasonExtensions,
) -> Result<(), Error> {
    let serial = serial_magnitude(&e.serial)?;
    let pad = serial.first().is_some_and(|b| b & 0x80 != 0);
    let int_len = serial.len() + usize::from(pad);
    let mut time = [0u8; 17];
    let time = rfc5280_time(e.revoked_at)?.encode_to_slice(&mut time)?;
    let ext = reasons.get(e.reason);
    // At most 2+21 + 17 + 14 octets: every length here fits DER's one-octet short form.
    let body_len = 2 + int_len + time.len() + ext.len();
    let (Ok(body_len), Ok(int_len)) = (u8::try_from(body_len), u8::try_from(int_len)) else {
        return Err(Error::InvalidSerial);
    };
    if body_len > 127 {
        return Err(Error::InvalidSerial);
    }
    buf.extend_from_slice(&[0x30, body_len, 0x02, int_len]);
    if pad {
        buf.push(0);
    }
    buf.extend_from_slice(serial);
    buf.extend_from_slice(time);
    buf.extend_from_slice(ext);
    Ok(())
}

/// `serial` without leading zero octets, checked to be 1 to 20 octets.
fn serial_magnitude(serial: &[u8]) -> Result<&[u8], Error> {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    let magnitude = serial.get(start..).unwrap_or_default();
    if magnitude.is_empty() || magnitude.len() > 20 {
        return Err(Error::InvalidSerial);
    }
    Ok(magnitude)
}

/// The DER INTEGER contents of an unsigned serial: a 0x00 in front when the top bit is set.
pub(crate) fn serial_content(serial: &[u8]) -> Result<Vec<u8>, Error> {
    let magnitude = serial_magnitude(serial)?;
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(magnitude);
    Ok(content)
}

/// `t` in UTC, whole seconds (X.509 times carry no fractions).
pub(crate) fn date_time(t: OffsetDateTime) -> Result<DateTime, Error> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| Error::TimeOutOfRange(t))?;
    DateTime::from_unix_duration(Duration::from_secs(secs)).map_err(|_| Error::TimeOutOfRange(t))
}

/// RFC 5280 section 5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050.
pub(crate) fn rfc5280_time(t: OffsetDateTime) -> Result<Time, Error> {
    let dt = date_time(t)?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(dt)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}
