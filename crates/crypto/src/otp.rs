//! One-time codes of hardware tokens ("kodebrikker"): HOTP (RFC 4226) and TOTP (RFC 6238).
//!
//! Generation is pure; verification takes the device's stored state (next counter, or
//! learned drift and last used time step) and says what to store next. Codes are compared
//! in constant time, and a code that is not `digits` ASCII digits is rejected before any
//! HMAC is computed.

use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Fewest digits a code may have (RFC 4226 section 5.3).
pub const MIN_DIGITS: u8 = 6;
/// Most digits a code may have: the truncated value has 31 bits, about 2.1 * 10^9.
pub const MAX_DIGITS: u8 = 10;

/// Errors of this module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtpError {
    /// The name is not one of `SHA1`, `SHA256`, `SHA512`.
    #[error("unknown OTP algorithm '{0}' (expected SHA1, SHA256 or SHA512)")]
    UnknownAlgorithm(String),
}

/// The HMAC hash of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OtpAlgorithm {
    /// HMAC-SHA-1, the RFC 4226 default and what most tokens use.
    #[serde(rename = "SHA1", alias = "Sha1")]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238).
    #[serde(rename = "SHA256", alias = "Sha256")]
    Sha256,
    /// HMAC-SHA-512 (RFC 6238).
    #[serde(rename = "SHA512", alias = "Sha512")]
    Sha512,
}

impl OtpAlgorithm {
    /// `SHA1`, `SHA256` or `SHA512`, as stored and as in otpauth URIs.
    pub fn as_str(&self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "SHA1",
            OtpAlgorithm::Sha256 => "SHA256",
            OtpAlgorithm::Sha512 => "SHA512",
        }
    }
}

impl std::fmt::Display for OtpAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OtpAlgorithm {
    type Err = OtpError;

    /// Accepts `SHA1`, `SHA-1`, `HMAC-SHA1` and the like, in any case.
    fn from_str(s: &str) -> Result<Self, OtpError> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper
            .strip_prefix("HMAC-")
            .unwrap_or(&upper)
            .replace('-', "");
        match bare.as_str() {
            "SHA1" => Ok(OtpAlgorithm::Sha1),
            "SHA256" => Ok(OtpAlgorithm::Sha256),
            "SHA512" => Ok(OtpAlgorithm::Sha512),
            _ => Err(OtpError::UnknownAlgorithm(s.chars().take(40).collect())),
        }
    }
}

/// What a verification found.
#[derive(Debug, PartialEq, Eq)]
pub enum OtpOutcome {
    /// The code is valid. HOTP: the matched counter (store `counter + 1`).
    /// TOTP: the matched time step (store it as the last used step).
    Accepted {
        /// The matched HOTP counter or TOTP time step.
        counter: u64,
    },
    /// The code was valid once but has been used already.
    Replayed,
    /// The code is wrong (or malformed).
    Rejected,
}

fn clamp_digits(digits: u8) -> u8 {
    digits.clamp(MIN_DIGITS, MAX_DIGITS)
}

fn hmac_of<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    // HMAC accepts keys of any length, so this never fails; the Option only spares a panic.
    let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(mac.finalize().into_bytes().to_vec())
}

/// RFC 4226 HOTP value of `counter`, zero padded to `digits` (clamped to 6..=10).
pub fn hotp(alg: OtpAlgorithm, secret: &[u8], counter: u64, digits: u8) -> String {
    let digits = clamp_digits(digits);
    let msg = counter.to_be_bytes();
    let mac = match alg {
        OtpAlgorithm::Sha1 => hmac_of::<Hmac<sha1::Sha1>>(secret, &msg),
        OtpAlgorithm::Sha256 => hmac_of::<Hmac<sha2::Sha256>>(secret, &msg),
        OtpAlgorithm::Sha512 => hmac_of::<Hmac<sha2::Sha512>>(secret, &msg),
    };
    let Some(mac) = mac else {
        // Unreachable (see hmac_of); an empty string matches no well-formed code.
        return String::new();
    };
    // Dynamic truncation (RFC 4226 section 5.3): the low nibble of the last byte picks
    // where 31 bits are read. Every HMAC output here is at least 20 bytes, so offset+3 fits.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => return String::new(),
    };
    let value = u64::from(word) % 10u64.pow(u32::from(digits));
    format!("{value:0width$}", width = usize::from(digits))
}

/// The RFC 6238 time step `floor((unix_time - t0) / step)`; a `step` of 0 counts as 1.
pub fn totp_step(unix_time: i64, step: u32, t0: i64) -> i64 {
    unix_time
        .saturating_sub(t0)
        .div_euclid(i64::from(step.max(1)))
}

/// RFC 6238 TOTP value at `unix_time`. Times before `t0` use step 0.
pub fn totp(
    alg: OtpAlgorithm,
    secret: &[u8],
    unix_time: i64,
    step: u32,
    t0: i64,
    digits: u8,
) -> String {
    let s = u64::try_from(totp_step(unix_time, step, t0)).unwrap_or(0);
    hotp(alg, secret, s, digits)
}

/// Is `code` exactly `digits` ASCII digits?
fn well_formed(code: &str, digits: u8) -> bool {
    code.len() == usize::from(digits) && code.bytes().all(|b| b.is_ascii_digit())
}

fn code_matches(alg: OtpAlgorithm, secret: &[u8], counter: u64, digits: u8, code: &str) -> bool {
    hotp(alg, secret, counter, digits)
        .as_bytes()
        .ct_eq(code.as_bytes())
        .into()
}

/// Verifies an HOTP code against counters `next_counter ..= next_counter + look_ahead`.
///
/// `Accepted { counter }` gives the matched counter; the caller stores `counter + 1`.
/// A code equal to that of `next_counter - 1` (the last one accepted) is `Replayed`.
pub fn verify_hotp(
    alg: OtpAlgorithm,
    secret: &[u8],
    digits: u8,
    next_counter: u64,
    look_ahead: u32,
    code: &str,
) -> OtpOutcome {
    let digits = clamp_digits(digits);
    if !well_formed(code, digits) {
        return OtpOutcome::Rejected;
    }
    let last = next_counter.saturating_add(u64::from(look_ahead));
    // The whole window is computed whatever matches, so timing does not tell where.
    let mut found = None;
    for c in next_counter..=last {
        if code_matches(alg, secret, c, digits, code) && found.is_none() {
            found = Some(c);
        }
    }
    if let Some(counter) = found {
        return OtpOutcome::Accepted { counter };
    }
    match next_counter.checked_sub(1) {
        Some(prev) if code_matches(alg, secret, prev, digits, code) => OtpOutcome::Replayed,
        _ => OtpOutcome::Rejected,
    }
}

/// Verifies a TOTP code.
///
/// The expected step is `totp_step(now) + drift_steps`; steps `expected - window ..=
/// expected + window` are tried. A match at a step `<= last_used_step` is `Replayed`, so a
/// code is never accepted twice. `Accepted { counter }` gives the matched step.
#[allow(clippy::too_many_arguments)] // the API other crates are written against
pub fn verify_totp(
    alg: OtpAlgorithm,
    secret: &[u8],
    digits: u8,
    step: u32,
    t0: i64,
    now: i64,
    drift_steps: i64,
    last_used_step: Option<i64>,
    window: u32,
    code: &str,
) -> OtpOutcome {
    let digits = clamp_digits(digits);
    if !well_formed(code, digits) {
        return OtpOutcome::Rejected;
    }
    let expected = totp_step(now, step, t0).saturating_add(drift_steps);
    let w = i64::from(window);
    let (mut fresh, mut replayed) = (None, false);
    for s in expected.saturating_sub(w)..=expected.saturating_add(w) {
        // Negative steps (times before T0) have no code.
        let Ok(counter) = u64::try_from(s) else {
            continue;
        };
        if !code_matches(alg, secret, counter, digits, code) {
            continue;
        }
        if last_used_step.is_some_and(|l| s <= l) {
            replayed = true;
        } else if fresh.is_none() {
            fresh = Some(counter);
        }
    }
    match (fresh, replayed) {
        (Some(counter), _) => OtpOutcome::Accepted { counter },
        (None, true) => OtpOutcome::Replayed,
        (None, false) => OtpOutcome::Rejected,
    }
}

/// Resynchronises an HOTP token from two consecutive codes: searches `c` in
/// `from_counter ..= from_counter + search` with `code1 == hotp(c)` and
/// `code2 == hotp(c + 1)`, and returns `c + 1`, the counter of `code2`.
#[allow(clippy::too_many_arguments)] // the API other crates are written against
pub fn resync_hotp(
    alg: OtpAlgorithm,
    secret: &[u8],
    digits: u8,
    from_counter: u64,
    search: u32,
    code1: &str,
    code2: &str,
) -> Option<u64> {
    let digits = clamp_digits(digits);
    if !well_formed(code1, digits) || !well_formed(code2, digits) {
        return None;
    }
    let last = from_counter.saturating_add(u64::from(search));
    (from_counter..=last).find_map(|c| {
        let next = c.checked_add(1)?;
        let hit = code_matches(alg, secret, c, digits, code1)
            && code_matches(alg, secret, next, digits, code2);
        hit.then_some(next)
    })
}

/// Resynchronises a TOTP token from two consecutive codes: searches steps `s` within
/// `search_steps` of `totp_step(now)` with `code1 == totp(s)` and `code2 == totp(s + 1)`,
/// and returns `s + 1`, the step of `code2`. The nearest match to now wins.
#[allow(clippy::too_many_arguments)] // the API other crates are written against
pub fn resync_totp(
    alg: OtpAlgorithm,
    secret: &[u8],
    digits: u8,
    step: u32,
    t0: i64,
    now: i64,
    search_steps: u32,
    code1: &str,
    code2: &str,
) -> Option<i64> {
    let digits = clamp_digits(digits);
    if !well_formed(code1, digits) || !well_formed(code2, digits) {
        return None;
    }
    let centre = totp_step(now, step, t0);
    // Nearest first: 0, -1, +1, -2, +2, ...
    let offsets = std::iter::once(0).chain((1..=i64::from(search_steps)).flat_map(|d| [-d, d]));
    offsets.map(|d| centre.saturating_add(d)).find_map(|s| {
        let c1 = u64::try_from(s).ok()?;
        let c2 = c1.checked_add(1)?;
        let hit = code_matches(alg, secret, c1, digits, code1)
            && code_matches(alg, secret, c2, digits, code2);
        if hit { s.checked_add(1) } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"12345678901234567890";

    #[derive(serde::Deserialize)]
    struct Vectors {
        source: String,
        hotp: HotpVectors,
        totp: Vec<TotpVectors>,
    }
    #[derive(serde::Deserialize)]
    struct HotpVectors {
        secret_ascii: String,
        digits: u8,
        codes_by_counter: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct TotpVectors {
        algorithm: String,
        secret_ascii: String,
        digits: u8,
        step: u32,
        codes: std::collections::BTreeMap<String, String>,
    }

    fn vectors() -> Vectors {
        serde_json::from_str(include_str!("../tests/data/otp_vectors.json")).unwrap()
    }

    #[test]
    fn rfc4226_appendix_d() {
        let v = vectors();
        assert!(v.source.contains("RFC 4226"));
        assert_eq!(v.hotp.codes_by_counter.len(), 10);
        for (counter, code) in v.hotp.codes_by_counter.iter().enumerate() {
            let got = hotp(
                OtpAlgorithm::Sha1,
                v.hotp.secret_ascii.as_bytes(),
                counter as u64,
                v.hotp.digits,
            );
            assert_eq!(&got, code, "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let v = vectors();
        assert!(v.source.contains("RFC 6238"));
        assert_eq!(v.totp.len(), 3);
        for set in &v.totp {
            let alg: OtpAlgorithm = set.algorithm.parse().unwrap();
            assert_eq!(set.codes.len(), 6);
            for (time, code) in &set.codes {
                let t: i64 = time.parse().unwrap();
                let got = totp(alg, set.secret_ascii.as_bytes(), t, set.step, 0, set.digits);
                assert_eq!(&got, code, "{} at {t}", set.algorithm);
            }
        }
    }

    #[test]
    fn digits_are_clamped_and_padded() {
        // RFC 4226 counter 0: truncated value 1284755224.
        assert_eq!(hotp(OtpAlgorithm::Sha1, SECRET, 0, 4), "755224");
        assert_eq!(hotp(OtpAlgorithm::Sha1, SECRET, 0, 8), "84755224");
        assert_eq!(hotp(OtpAlgorithm::Sha1, SECRET, 0, 10), "1284755224");
        assert_eq!(hotp(OtpAlgorithm::Sha1, SECRET, 0, 99), "1284755224");
        // 10 digits of a value below 10^9 keep the leading zero (time 1111111109: 07081804).
        assert_eq!(
            totp(OtpAlgorithm::Sha1, SECRET, 1_111_111_109, 30, 0, 8),
            "07081804"
        );
    }

    #[test]
    fn algorithm_names() {
        for alg in [
            OtpAlgorithm::Sha1,
            OtpAlgorithm::Sha256,
            OtpAlgorithm::Sha512,
        ] {
            assert_eq!(alg.as_str().parse::<OtpAlgorithm>(), Ok(alg));
            assert_eq!(
                serde_json::to_string(&alg).unwrap(),
                format!("\"{}\"", alg.as_str())
            );
        }
        assert_eq!(
            "hmac-sha-256".parse::<OtpAlgorithm>(),
            Ok(OtpAlgorithm::Sha256)
        );
        assert_eq!("sha1".parse::<OtpAlgorithm>(), Ok(OtpAlgorithm::Sha1));
        assert_eq!(
            "MD5".parse::<OtpAlgorithm>(),
            Err(OtpError::UnknownAlgorithm("MD5".into()))
        );
        assert_eq!(
            serde_json::from_str::<OtpAlgorithm>("\"Sha512\"").unwrap(),
            OtpAlgorithm::Sha512
        );
    }

    #[test]
    fn totp_steps() {
        assert_eq!(totp_step(59, 30, 0), 1);
        assert_eq!(totp_step(60, 30, 0), 2);
        assert_eq!(totp_step(100, 30, 40), 2);
        assert_eq!(totp_step(39, 30, 40), -1);
        assert_eq!(totp_step(5, 0, 0), 5);
        assert_eq!(totp_step(i64::MIN, 30, i64::MAX), i64::MIN.div_euclid(30));
        // Before T0 there is no step; totp() uses step 0 rather than wrap around.
        assert_eq!(totp(OtpAlgorithm::Sha1, SECRET, -100, 30, 0, 6), "755224");
    }

    #[test]
    fn hotp_window_and_replay() {
        let alg = OtpAlgorithm::Sha1;
        // Next expected counter 3 ("969429"); codes up to counter 3+2 are accepted.
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 3, 2, "969429"),
            OtpOutcome::Accepted { counter: 3 }
        );
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 3, 2, "254676"),
            OtpOutcome::Accepted { counter: 5 }
        );
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 3, 2, "287922"),
            OtpOutcome::Rejected
        );
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 3, 0, "338314"),
            OtpOutcome::Rejected
        );
        // Counter 2 was the last accepted: its code is a replay; older ones are plain wrong.
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 3, 2, "359152"),
            OtpOutcome::Replayed
        );
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 3, 2, "287082"),
            OtpOutcome::Rejected
        );
        assert_eq!(
            verify_hotp(alg, SECRET, 6, 0, 0, "755224"),
            OtpOutcome::Accepted { counter: 0 }
        );
        assert_eq!(
            verify_hotp(alg, SECRET, 6, u64::MAX, 5, "000000"),
            OtpOutcome::Rejected
        );
    }

    #[test]
    fn malformed_codes_are_rejected() {
        let alg = OtpAlgorithm::Sha1;
        for code in [
            "", "75522", "7552244", "75522a", " 755224", "７55224", "755 24",
        ] {
            assert_eq!(
                verify_hotp(alg, SECRET, 6, 0, 10, code),
                OtpOutcome::Rejected,
                "{code:?}"
            );
            assert_eq!(
                verify_totp(alg, SECRET, 6, 30, 0, 59, 0, None, 1, code),
                OtpOutcome::Rejected
            );
        }
        // An 8-digit device does not take the 6-digit suffix.
        assert_eq!(
            verify_totp(alg, SECRET, 8, 30, 0, 59, 0, None, 1, "287082"),
            OtpOutcome::Rejected
        );
        assert_eq!(
            verify_totp(alg, SECRET, 8, 30, 0, 59, 0, None, 1, "94287082"),
            OtpOutcome::Accepted { counter: 1 }
        );
    }

    #[test]
    fn totp_window_drift_and_replay() {
        let alg = OtpAlgorithm::Sha1;
        let now = 1_111_111_111; // step 37037037
        let at = |s: i64| totp(alg, SECRET, s * 30, 30, 0, 6);
        let step = totp_step(now, 30, 0);
        assert_eq!(step, 37_037_037);
        let ok = |s: i64| OtpOutcome::Accepted { counter: s as u64 };
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, None, 1, &at(step)),
            ok(step)
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, None, 1, &at(step - 1)),
            ok(step - 1)
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, None, 1, &at(step + 1)),
            ok(step + 1)
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, None, 1, &at(step + 2)),
            OtpOutcome::Rejected
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, None, 0, &at(step + 1)),
            OtpOutcome::Rejected
        );
        // A token running 5 steps fast: rejected until the drift is known, then accepted.
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, None, 1, &at(step + 5)),
            OtpOutcome::Rejected
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 5, None, 1, &at(step + 5)),
            ok(step + 5)
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 5, None, 1, &at(step + 6)),
            ok(step + 6)
        );
        // Replay: the step already used, or an earlier one, is refused.
        let used = Some(step);
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, used, 1, &at(step)),
            OtpOutcome::Replayed
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, used, 1, &at(step - 1)),
            OtpOutcome::Replayed
        );
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 0, now, 0, used, 1, &at(step + 1)),
            ok(step + 1)
        );
        // T0 shifts the steps.
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 300, now + 300, 0, None, 0, &at(step)),
            ok(step)
        );
        // Nothing before T0 is ever accepted.
        assert_eq!(
            verify_totp(alg, SECRET, 6, 30, 1000, 0, 0, None, 2, "755224"),
            OtpOutcome::Rejected
        );
    }

    #[test]
    fn totp_other_hashes() {
        let secret = b"12345678901234567890123456789012";
        let code = totp(OtpAlgorithm::Sha256, secret, 59, 30, 0, 8);
        assert_eq!(code, "46119246");
        let r = verify_totp(
            OtpAlgorithm::Sha256,
            secret,
            8,
            30,
            0,
            59,
            0,
            None,
            0,
            &code,
        );
        assert_eq!(r, OtpOutcome::Accepted { counter: 1 });
        let r = verify_totp(OtpAlgorithm::Sha1, secret, 8, 30, 0, 59, 0, None, 0, &code);
        assert_eq!(r, OtpOutcome::Rejected);
    }

    #[test]
    fn hotp_resync() {
        let alg = OtpAlgorithm::Sha1;
        // Counters 7 and 8: "162583", "399871".
        assert_eq!(
            resync_hotp(alg, SECRET, 6, 0, 100, "162583", "399871"),
            Some(8)
        );
        assert_eq!(
            resync_hotp(alg, SECRET, 6, 7, 0, "162583", "399871"),
            Some(8)
        );
        // Out of the search range, not consecutive, or in the wrong order.
        assert_eq!(resync_hotp(alg, SECRET, 6, 0, 6, "162583", "399871"), None);
        assert_eq!(
            resync_hotp(alg, SECRET, 6, 8, 100, "162583", "399871"),
            None
        );
        assert_eq!(
            resync_hotp(alg, SECRET, 6, 0, 100, "162583", "520489"),
            None
        );
        assert_eq!(
            resync_hotp(alg, SECRET, 6, 0, 100, "399871", "162583"),
            None
        );
        assert_eq!(resync_hotp(alg, SECRET, 6, 0, 100, "16258", "399871"), None);
        assert_eq!(
            resync_hotp(alg, SECRET, 6, u64::MAX, 10, "162583", "399871"),
            None
        );
    }

    #[test]
    fn totp_resync() {
        let alg = OtpAlgorithm::Sha1;
        let now = 1_111_111_111;
        let step = totp_step(now, 30, 0);
        let at = |s: i64| totp(alg, SECRET, s * 30, 30, 0, 6);
        // A token 40 steps slow.
        let (c1, c2) = (at(step - 41), at(step - 40));
        assert_eq!(
            resync_totp(alg, SECRET, 6, 30, 0, now, 50, &c1, &c2),
            Some(step - 40)
        );
        assert_eq!(resync_totp(alg, SECRET, 6, 30, 0, now, 30, &c1, &c2), None);
        // A token 10 steps fast.
        let (c1, c2) = (at(step + 10), at(step + 11));
        assert_eq!(
            resync_totp(alg, SECRET, 6, 30, 0, now, 10, &c1, &c2),
            Some(step + 11)
        );
        assert_eq!(resync_totp(alg, SECRET, 6, 30, 0, now, 10, &c2, &c1), None);
        assert_eq!(
            resync_totp(alg, SECRET, 6, 30, 0, now, 10, "abcdef", &c2),
            None
        );
    }
}
