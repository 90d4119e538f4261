//! The animated QR code of a login started on a computer and answered on the phone.
//!
//! The browser shows a new code every second (`segl_core::app::qr_time_step`):
//! `segl-qr.{flow_ref}.{seconds}.{auth_code}`, where `auth_code` is the lowercase hex of
//! HMAC-SHA256(flow's QR secret, `seconds` as decimal ASCII). This is the scheme Swedish
//! BankID documents for its animated QR codes (`bankid.{qrStartToken}.{time}.{qrAuthCode}`),
//! with our own prefix. The secret stays on the server, so only the server can make a fresh
//! code, and a code relayed by a phisher from another screen is stale within seconds.

use data_encoding::HEXLOWER;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The first component of every QR payload.
pub const QR_PREFIX: &str = "segl-qr";
/// Length of an auth code: 32 bytes of HMAC-SHA256 in hex.
const AUTH_CODE_LEN: usize = 64;
/// Longest flow reference accepted; real ones are a few dozen characters.
const MAX_FLOW_REF_LEN: usize = 128;

/// Why a scanned QR payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrError {
    /// Not `segl-qr.{flow_ref}.{seconds}.{auth_code}` with a base64url reference and a
    /// 64-character lowercase hex code.
    #[error("not a segl QR code")]
    Malformed,
    /// The seconds are not a plain decimal number (no sign, no leading zeros, fits i64).
    #[error("the QR code's time is not a valid number of seconds")]
    BadSeconds,
    /// The payload names another flow than the one being checked.
    #[error("the QR code belongs to another login")]
    WrongFlow,
    /// The seconds are later than the server's count: no server made this code.
    #[error("the QR code's time is ahead of the server's clock")]
    FromTheFuture,
    /// The code was shown longer ago than allowed.
    #[error("the QR code is {age} seconds old, at most {max} are allowed; scan the code shown now")]
    TooOld {
        /// Seconds since the code was shown.
        age: i64,
        /// The allowed age.
        max: i64,
    },
    /// The auth code does not match: forged, or made with another secret.
    #[error("the QR code's authentication code is wrong")]
    BadCode,
}

/// The parts of a well-formed QR payload, before any check against a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrParts<'a> {
    /// The reference of the login's app request, to look up the flow and its secret.
    pub flow_ref: &'a str,
    /// Seconds since the flow started when the code was shown.
    pub seconds: i64,
    /// The 64 lowercase hex characters of the auth code.
    pub auth_code: &'a str,
}

/// Lowercase hex of HMAC-SHA256(`secret`, `seconds` in decimal ASCII), e.g. over `"0"`,
/// `"1"`, `"-3"` (callers pass the non-negative [`segl_core::app::qr_time_step`]).
pub fn qr_auth_code(secret: &[u8], seconds: i64) -> String {
    // HMAC takes keys of any length, so this is never empty; if it were, an empty string
    // matches no well-formed code (64 characters).
    mac(secret, seconds)
        .map(|m| HEXLOWER.encode(&m))
        .unwrap_or_default()
}

/// The raw HMAC behind [`qr_auth_code`]; `None` only if the HMAC refused the key.
fn mac(secret: &[u8], seconds: i64) -> Option<[u8; 32]> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    m.update(seconds.to_string().as_bytes());
    Some(m.finalize().into_bytes().into())
}

/// The QR payload `segl-qr.{flow_ref}.{seconds}.{auth_code}` for the given second.
///
/// `flow_ref` must be base64url (it may not contain `.`), or [`qr_parse`] will refuse the
/// payload. Negative `seconds` (a clock that went back) are shown as 0.
pub fn qr_payload(flow_ref: &str, secret: &[u8], seconds: i64) -> String {
    let seconds = seconds.max(0);
    format!(
        "{QR_PREFIX}.{flow_ref}.{seconds}.{}",
        qr_auth_code(secret, seconds)
    )
}

/// Splits a scanned payload into its parts, checking only the syntax. The server uses the
/// reference to find the flow, then calls [`qr_verify`] with the flow's secret.
pub fn qr_parse(payload: &str) -> Result<QrParts<'_>, QrError> {
    let mut parts = payload.split('.');
    let (Some(QR_PREFIX), Some(flow_ref), Some(seconds), Some(auth_code), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(QrError::Malformed);
    };
    let ref_ok = !flow_ref.is_empty()
        && flow_ref.len() <= MAX_FLOW_REF_LEN
        && flow_ref
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let code_ok = auth_code.len() == AUTH_CODE_LEN
        && auth_code
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ref_ok || !code_ok {
        return Err(QrError::Malformed);
    }
    let canonical = !seconds.is_empty()
        && seconds.bytes().all(|b| b.is_ascii_digit())
        && (seconds == "0" || !seconds.starts_with('0'));
    if !canonical {
        return Err(QrError::BadSeconds);
    }
    let seconds = seconds.parse::<i64>().map_err(|_| QrError::BadSeconds)?;
    Ok(QrParts {
        flow_ref,
        seconds,
        auth_code,
    })
}

/// Checks a scanned payload against the flow `flow_ref` with QR secret `secret`, at
/// `now_seconds` (the flow's current [`segl_core::app::qr_time_step`]). Returns the seconds
/// of the scanned code.
///
/// Checks, in order: syntax, that it names this flow, that its time is not ahead of
/// `now_seconds` and at most `max_age_secs` behind it (a code exactly `max_age_secs` old is
/// accepted), then the auth code, compared in constant time.
pub fn qr_verify(
    payload: &str,
    flow_ref: &str,
    secret: &[u8],
    now_seconds: i64,
    max_age_secs: i64,
) -> Result<i64, QrError> {
    let parts = qr_parse(payload)?;
    if !bool::from(parts.flow_ref.as_bytes().ct_eq(flow_ref.as_bytes())) {
        return Err(QrError::WrongFlow);
    }
    if parts.seconds > now_seconds {
        return Err(QrError::FromTheFuture);
    }
    let age = now_seconds.saturating_sub(parts.seconds);
    if age > max_age_secs {
        return Err(QrError::TooOld {
            age,
            max: max_age_secs,
        });
    }
    // Compare the hex strings: both are 64 lowercase hex characters here.
    let expected = qr_auth_code(secret, parts.seconds);
    if bool::from(expected.as_bytes().ct_eq(parts.auth_code.as_bytes())) {
        Ok(parts.seconds)
    } else {
        Err(QrError::BadCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Swedish BankID's example from its Relying Party Guidelines (qrStartSecret
    /// `d28db9a7-4cde-429e-a983-359be676944c`, times 0, 1, 2), recomputed independently
    /// with Python 3:
    /// `hmac.new(b"d28db9a7-4cde-429e-a983-359be676944c", b"0", hashlib.sha256).hexdigest()`.
    #[test]
    fn bankid_reference_vector() {
        let secret = b"d28db9a7-4cde-429e-a983-359be676944c";
        assert_eq!(
            qr_auth_code(secret, 0),
            "dc69358e712458a66a7525beef148ae8526b1c71610eff2c16cdffb4cdac9bf8"
        );
        assert_eq!(
            qr_auth_code(secret, 1),
            "949d559bf23403952a94d103e67743126381eda00f0b3cbddbf7c96b1adcbce2"
        );
        assert_eq!(
            qr_auth_code(secret, 2),
            "a9e5ec59cb4eee4ef4117150abc58fad7a85439a6a96ccbecc3668b41795b3f3"
        );
    }

    /// Our own vectors, made with Python 3:
    /// `hmac.new(b"segl-test-qr-secret", str(s).encode(), hashlib.sha256).hexdigest()`
    /// for s in 0, 30, 1234567890.
    #[test]
    fn segl_vectors_and_payload() {
        let secret = b"segl-test-qr-secret";
        assert_eq!(
            qr_auth_code(secret, 0),
            "56a4aae99bed501934a7cb4b99bfc9fe50ef8f01203037ba591bc4b28b16bcf0"
        );
        assert_eq!(
            qr_auth_code(secret, 1_234_567_890),
            "8bca84bd20342aff7396b750a911fbea7d14f309509d907fd077efc7e6d7437a"
        );
        assert_eq!(
            qr_payload("Ab3_-x", secret, 30),
            "segl-qr.Ab3_-x.30.02d599b774f851e531c614289acb1b5dcdbf191f063679dfb4dee4cb65456c25"
        );
        assert_eq!(qr_payload("r", secret, -4), qr_payload("r", secret, 0));
    }

    #[test]
    fn parse_round_trips_and_refuses_bad_syntax() {
        let p = qr_payload("flowRef1", b"k", 17);
        let parts = qr_parse(&p).unwrap();
        assert_eq!(parts.flow_ref, "flowRef1");
        assert_eq!(parts.seconds, 17);
        assert_eq!(parts.auth_code, qr_auth_code(b"k", 17));

        let code = qr_auth_code(b"k", 1);
        for bad in [
            String::new(),
            "segl-qr".into(),
            format!("bankid.r.1.{code}"),
            format!("segl-qr.r.1.{code}.x"),
            format!("segl-qr..1.{code}"),
            format!("segl-qr.r/x.1.{code}"),
            format!("segl-qr.{}.1.{code}", "r".repeat(129)),
            format!("segl-qr.r.1.{}", code.to_uppercase()),
            format!("segl-qr.r.1.{}", &code[..63]),
            format!("segl-qr.r.1.{code}0"),
            format!("segl-qr.r.1.{}g", &code[..63]),
        ] {
            assert_eq!(qr_parse(&bad), Err(QrError::Malformed), "{bad}");
        }
        for bad in [
            "",
            "-1",
            "+1",
            "01",
            "1.5",
            "1e3",
            " 1",
            "99999999999999999999",
        ] {
            let payload = format!("segl-qr.r.{bad}.{code}");
            if bad.contains('.') {
                assert_eq!(qr_parse(&payload), Err(QrError::Malformed), "{bad}");
            } else {
                assert_eq!(qr_parse(&payload), Err(QrError::BadSeconds), "{bad}");
            }
        }
    }

    #[test]
    fn verify_accepts_fresh_codes() {
        let secret = b"flow secret";
        let p = qr_payload("ref", secret, 10);
        assert_eq!(qr_verify(&p, "ref", secret, 10, 5), Ok(10));
        assert_eq!(qr_verify(&p, "ref", secret, 15, 5), Ok(10));
        let p0 = qr_payload("ref", secret, 0);
        assert_eq!(qr_verify(&p0, "ref", secret, 0, 0), Ok(0));
    }

    #[test]
    fn verify_refusals_are_specific() {
        let secret = b"flow secret";
        let p = qr_payload("ref", secret, 10);
        assert_eq!(
            qr_verify(&p, "other", secret, 10, 5),
            Err(QrError::WrongFlow)
        );
        assert_eq!(qr_verify(&p, "re", secret, 10, 5), Err(QrError::WrongFlow));
        assert_eq!(
            qr_verify(&p, "ref", secret, 9, 5),
            Err(QrError::FromTheFuture)
        );
        assert_eq!(
            qr_verify(&p, "ref", secret, 16, 5),
            Err(QrError::TooOld { age: 6, max: 5 })
        );
        assert_eq!(
            qr_verify(&p, "ref", b"other secret", 10, 5),
            Err(QrError::BadCode)
        );
        // A valid code for second 9 relabelled as second 10.
        let forged = format!("segl-qr.ref.10.{}", qr_auth_code(secret, 9));
        assert_eq!(
            qr_verify(&forged, "ref", secret, 10, 5),
            Err(QrError::BadCode)
        );
        // Every single-character change of the code is refused.
        let code = qr_auth_code(secret, 10);
        for i in 0..code.len() {
            let mut c = code.clone().into_bytes();
            c[i] = if c[i] == b'0' { b'1' } else { b'0' };
            let tampered = format!("segl-qr.ref.10.{}", String::from_utf8(c).unwrap());
            assert_eq!(
                qr_verify(&tampered, "ref", secret, 10, 5),
                Err(QrError::BadCode),
                "{i}"
            );
        }
        assert_eq!(
            qr_verify("garbage", "ref", secret, 10, 5),
            Err(QrError::Malformed)
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let secret = b"s";
        let p = qr_payload("ref", secret, 0);
        assert_eq!(qr_verify(&p, "ref", secret, i64::MAX, i64::MAX), Ok(0));
        assert_eq!(
            qr_verify(&p, "ref", secret, i64::MAX, 1),
            Err(QrError::TooOld {
                age: i64::MAX,
                max: 1
            })
        );
        let max = qr_payload("ref", secret, i64::MAX);
        assert_eq!(qr_verify(&max, "ref", secret, i64::MAX, 0), Ok(i64::MAX));
        assert_eq!(
            qr_verify(&p, "ref", secret, 0, -1),
            Err(QrError::TooOld { age: 0, max: -1 })
        );
    }
}
