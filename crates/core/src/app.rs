//! The rules of the phone app ("Yes, it's me"), without I/O or cryptography.
//!
//! - [`MobileNumber`]: the Norwegian mobile number an app activation requires.
//! - [`verification_code`]: the short code shown both in the browser and in the app, so the
//!   person can see that the request on the phone is the one they started (anti-phishing).
//! - [`ApprovalPayload`]: the exact bytes the device key signs, so the server can prove what
//!   was approved. The format is a public contract with the phone app.
//! - [`activation_phase`]: the security period before a new phone may be activated, against
//!   account takeover (as BankID Norway does it).
//! - [`qr_time_step`]: the seconds counter of the animated QR code (as Swedish BankID).
//!
//! Randomness and time come in as parameters; hashing and signing live in `segl-crypto`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an app input was refused. Messages are shown to the person who typed the value, so
/// they say what is wrong without repeating it.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// The mobile number is empty (or only spaces and hyphens).
    #[error("no mobile number was given")]
    MobileEmpty,
    /// The mobile number has characters other than digits, spaces, hyphens and a leading `+`.
    #[error("a mobile number has only digits, spaces and hyphens, and may start with +47 or 0047")]
    MobileNotDigits,
    /// The number has a country code other than Norway's.
    #[error(
        "+{code} is not the Norwegian country code; a Norwegian mobile number (+47) is required"
    )]
    MobileForeignCountry {
        /// The country code found, digits only (e.g. `46`).
        code: String,
    },
    /// The national part does not have eight digits.
    #[error("a Norwegian mobile number has 8 digits (after +47), this has {len}")]
    MobileBadLength {
        /// Number of national digits found.
        len: usize,
    },
    /// Eight digits, but not starting with 4 or 9: a landline or a special number.
    #[error("this is not a mobile number: Norwegian mobile numbers start with 4 or 9")]
    MobileNotMobile,
    /// A verification code style other than `words` or `digits`.
    #[error("unknown verification code style '{0}' (expected 'words' or 'digits')")]
    UnknownVerificationStyle(String),
    /// A text field of an approval payload is empty.
    #[error("approval payload field {field} is empty")]
    PayloadFieldEmpty {
        /// The field name, e.g. `request_id`.
        field: &'static str,
    },
    /// A text field of an approval payload is longer than [`MAX_PAYLOAD_FIELD_LEN`].
    #[error("approval payload field {field} is {len} bytes, at most {max} are allowed")]
    PayloadFieldTooLong {
        /// The field name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit, [`MAX_PAYLOAD_FIELD_LEN`].
        max: usize,
    },
}

// ---------------------------------------------------------------------------------------
// Mobile number
// ---------------------------------------------------------------------------------------

/// A Norwegian mobile number, held in E.164 form (`+4741234567`).
///
/// Only [`MobileNumber::parse`] builds one, so holding one means the country, the length and
/// the mobile range (first digit 4 or 9) have been checked. The number is personal data:
/// `Debug` masks it; `Display` and [`MobileNumber::as_str`] give it in full.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MobileNumber {
    /// `+47` and the eight national digits.
    e164: String,
}

impl MobileNumber {
    /// Parses a Norwegian mobile number as people write it.
    ///
    /// Accepted: `+47 412 34 567`, `+4741234567`, `0047 41234567`, `41234567`,
    /// `412 34 567`. Spaces and hyphens anywhere are ignored, surrounding whitespace is
    /// trimmed. Checks run in the order characters, country, length, mobile range.
    pub fn parse(s: &str) -> Result<MobileNumber, AppError> {
        let compact: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        if compact.is_empty() {
            return Err(AppError::MobileEmpty);
        }
        let (international, digits) = match compact.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => match compact.strip_prefix("00") {
                Some(rest) => (true, rest),
                None => (false, compact.as_str()),
            },
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AppError::MobileNotDigits);
        }
        // All ASCII from here on, so byte offsets are character offsets.
        let national = if international {
            match digits.strip_prefix("47") {
                Some(national) => national,
                None => {
                    let len = country_code_len(digits);
                    match digits.get(..len) {
                        Some(code) => {
                            return Err(AppError::MobileForeignCountry { code: code.into() });
                        }
                        // Too few digits even for a country code.
                        None => return Err(AppError::MobileBadLength { len: 0 }),
                    }
                }
            }
        } else {
            digits
        };
        if national.len() != 8 {
            return Err(AppError::MobileBadLength {
                len: national.len(),
            });
        }
        if !matches!(national.as_bytes().first(), Some(b'4' | b'9')) {
            return Err(AppError::MobileNotMobile);
        }
        Ok(MobileNumber {
            e164: format!("+47{national}"),
        })
    }

    /// The number in E.164 form, `+47` and eight digits.
    pub fn as_str(&self) -> &str {
        &self.e164
    }
}

/// Length of the E.164 country code at the start of `digits` (ITU-T E.164 assignments):
/// 1 and 7 are one digit, the two-digit codes are listed, everything else has three.
/// Country codes are prefix-free, so this needs no lookup beyond the first two digits.
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGIT: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    match digits.as_bytes().first() {
        Some(b'1' | b'7') => 1,
        _ if digits.get(..2).is_some_and(|p| TWO_DIGIT.contains(&p)) => 2,
        _ => 3,
    }
}

impl fmt::Debug for MobileNumber {
    /// Shows only the last two digits, so a `{:?}` in a log line does not leak the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self
            .e164
            .get(self.e164.len().saturating_sub(2)..)
            .unwrap_or("");
        write!(f, "MobileNumber(+47******{tail})")
    }
}

impl fmt::Display for MobileNumber {
    /// The E.164 form: use only where it is meant to be shown or stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl FromStr for MobileNumber {
    type Err = AppError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MobileNumber::parse(s)
    }
}

impl TryFrom<String> for MobileNumber {
    type Error = AppError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        MobileNumber::parse(&s)
    }
}

impl From<MobileNumber> for String {
    fn from(m: MobileNumber) -> String {
        m.e164
    }
}

// ---------------------------------------------------------------------------------------
// Verification code
// ---------------------------------------------------------------------------------------

/// How the verification code looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStyle {
    /// Two Norwegian words, e.g. `elg fjord`: easy to compare at a glance (65 536 codes).
    #[default]
    Words,
    /// Four digits, e.g. `0427`, for people who prefer numbers (10 000 codes).
    Digits,
}

impl VerificationStyle {
    /// `words` or `digits`, as in configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            VerificationStyle::Words => "words",
            VerificationStyle::Digits => "digits",
        }
    }
}

impl fmt::Display for VerificationStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VerificationStyle {
    type Err = AppError;

    /// `words` or `digits`, in any case, surrounding whitespace ignored.
    fn from_str(s: &str) -> Result<Self, AppError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "words" => Ok(VerificationStyle::Words),
            "digits" => Ok(VerificationStyle::Digits),
            _ => Err(AppError::UnknownVerificationStyle(
                s.chars().take(40).collect(),
            )),
        }
    }
}

/// The word list of [`VerificationStyle::Words`]: 256 short, everyday Norwegian nouns, so a
/// byte picks a word. No word is a prefix of another (a truncated display cannot turn one
/// word into another), no colours or adjectives (two nouns never read as a phrase), nothing
/// offensive. Sorted in Norwegian order; never reorder or replace entries without need, as
/// support staff may learn them.
pub const WORDS: [&str; 256] = [
    "agurk", "anker", "ball", "bekk", "belte", "berg", "bever", "bie", //
    "bilde", "bjelle", "bjørk", "bjørn", "blad", "blomst", "blyant", "blåbær", //
    "bok", "bolle", "bord", "bregne", "brev", "bro", "brygge", "brød", //
    "bukse", "buss", "bønne", "børste", "bøtte", "bål", "båt", "dal", //
    "dans", "drage", "drue", "drøm", "due", "dugg", "dyne", "dør", //
    "egg", "eik", "ekorn", "elg", "elv", "eng", "eple", "falk", //
    "farge", "fersken", "fiken", "fjell", "fjord", "flaske", "fløte", "fløyte", //
    "foss", "fred", "frosk", "frost", "fugl", "furu", "føll", "gate", //
    "gaupe", "geit", "genser", "glass", "glede", "gran", "grein", "gress", //
    "gryte", "grøt", "gulrot", "gulv", "gås", "hage", "hane", "hare", //
    "harpe", "hatt", "hauk", "hav", "hest", "himmel", "hjerte", "hjort", //
    "hjul", "honning", "hund", "hus", "hval", "hylle", "hytte", "høst", //
    "håp", "jakke", "jerv", "jordbær", "kaffe", "kake", "kalv", "kanel", //
    "kanin", "kanne", "kart", "katt", "kirke", "kiste", "kjeks", "kjelke", //
    "kjole", "klokke", "kløver", "knapp", "kongle", "kopp", "krabbe", "kritt", //
    "krone", "kråke", "kurv", "kveld", "kvist", "kål", "laks", "lampe", //
    "lerke", "lilje", "lind", "lomme", "lue", "lykt", "lyng", "lys", //
    "løk", "løve", "lås", "mais", "mandel", "maur", "melk", "melon", //
    "morgen", "mose", "multe", "myr", "mølle", "måke", "måne", "mår", //
    "nøkkel", "nøtt", "okse", "ost", "oter", "ovn", "panne", "papir", //
    "park", "penn", "pepper", "perle", "plomme", "potet", "pute", "pære", //
    "ravn", "regn", "rein", "reke", "rev", "ring", "ris", "rose", //
    "rosin", "rype", "saft", "salt", "sand", "sang", "seil", "sel", //
    "seng", "sild", "silke", "sitron", "skap", "skip", "skjerf", "skjær", //
    "skog", "sky", "slott", "smil", "smør", "snegl", "snø", "sokk", //
    "sol", "sommer", "sopp", "spade", "speil", "spurv", "stein", "stige", //
    "stjerne", "stol", "storm", "strand", "støvel", "sukker", "suppe", "svane", //
    "sykkel", "sølv", "såpe", "tak", "tavle", "telt", "teppe", "tog", //
    "tone", "topp", "torden", "torg", "torsk", "trapp", "tromme", "trost", //
    "tråd", "tønne", "tåke", "tårn", "ugle", "ull", "ulv", "vaffel", //
    "vegg", "vei", "venn", "veps", "veske", "vidde", "vik", "vind", //
    "vinter", "vogn", "votter", "vår", "ørn", "ørret", "åker", "åre", //
];

/// The verification code for four random bytes from a CSPRNG.
///
/// - [`VerificationStyle::Words`]: `WORDS[random[0]]`, a space, `WORDS[random[1]]`. Two
///   equal words would look like a display fault, so when `random[1] == random[0]` the
///   second word is `WORDS[(random[0] + 1 + random[2] % 255) % 256]`, one of the other 255.
///   That costs a tiny bias: in the 1/256 of cases where the bytes collide, one of the 255
///   words (the one `random[2] % 255 == 0` picks) is twice as likely as the others.
///   `random[3]` is not used.
/// - [`VerificationStyle::Digits`]: `u32::from_be_bytes(random) % 10000`, zero-padded to
///   four digits. As 2^32 is not a multiple of 10 000, codes 0000–7295 are more likely than
///   the others by about one part in 430 000.
///
/// The code is not a secret and not a second factor: it only lets the person compare the
/// browser and the phone.
pub fn verification_code(style: VerificationStyle, random: [u8; 4]) -> String {
    match style {
        VerificationStyle::Words => {
            let first = usize::from(random[0]);
            let mut second = usize::from(random[1]);
            if second == first {
                second = (first + 1 + usize::from(random[2]) % 255) % 256;
            }
            // Both indexes are below 256 = WORDS.len(); `get` only spares an index panic.
            let word = |i: usize| WORDS.get(i).copied().unwrap_or("");
            format!("{} {}", word(first), word(second))
        }
        VerificationStyle::Digits => {
            format!("{:04}", u32::from_be_bytes(random) % 10_000)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Activation codes
// ---------------------------------------------------------------------------------------

/// Letters and digits of activation codes: no 0/O, 1/I/L, so a code read from a letter is
/// typed right.
pub const ACTIVATION_CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in an activation code (16 of 31: about 79 bits).
pub const ACTIVATION_CODE_LEN: usize = 16;

/// A code as printed: four groups of four, `ABCD-EFGH-JKMN-PQRS`.
pub fn group_activation_code(normalized: &str) -> String {
    let chars: Vec<char> = normalized.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A code as stored (hashed): upper case, without the dashes and spaces a person may type.
/// `None` when it cannot be a code (wrong length or letters).
pub fn normalize_activation_code(s: &str) -> Option<String> {
    let c: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (c.len() == ACTIVATION_CODE_LEN && c.bytes().all(|b| ACTIVATION_CODE_ALPHABET.contains(&b)))
        .then_some(c)
}

// ---------------------------------------------------------------------------------------
// Approval payload
// ---------------------------------------------------------------------------------------

/// The person's answer in the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// "Yes, it's me."
    Approve,
    /// "No": the person did not start this, or changed their mind.
    Deny,
}

impl Decision {
    /// `approve` or `deny`: the wire name, also used in [`ApprovalPayload::to_signed_bytes`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

/// How the app unlocked the device key before signing; this is the second factor, reported
/// in the ID token's `amr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserVerification {
    /// The app PIN.
    #[serde(rename = "pin")]
    Pin,
    /// Face recognition.
    #[serde(rename = "face")]
    Face,
    /// Fingerprint.
    #[serde(rename = "fpt")]
    Fingerprint,
}

impl UserVerification {
    /// The RFC 8176 `amr` value: `pin`, `face` or `fpt`. Also the wire name.
    pub fn amr(&self) -> &'static str {
        match self {
            UserVerification::Pin => "pin",
            UserVerification::Face => "face",
            UserVerification::Fingerprint => "fpt",
        }
    }

    /// Parses a wire name (`pin`, `face`, `fpt`).
    pub fn parse(s: &str) -> Option<UserVerification> {
        match s {
            "pin" => Some(UserVerification::Pin),
            "face" => Some(UserVerification::Face),
            "fpt" => Some(UserVerification::Fingerprint),
            _ => None,
        }
    }
}

/// Longest text field of an [`ApprovalPayload`], bytes. Real values are far shorter (an id,
/// an RP's display name, a two-word code); the limit keeps every length well inside the
/// `u32` prefix of the signed format and refuses absurd input early.
pub const MAX_PAYLOAD_FIELD_LEN: usize = 1024;

/// Domain separation: these bytes start every signed approval, so a device-key signature
/// over an approval can never be mistaken for a signature over anything else.
pub const APPROVAL_PREFIX: &[u8] = b"segl-approval-v1\n";

/// What the device key signs when the person answers a request: the server keeps the
/// signature as proof of what was approved, by whom and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalPayload {
    /// The id of the approval request the server sent (one per time a flow asks the app).
    pub request_id: String,
    /// The relying party's display name, as the app showed it.
    pub rp: String,
    /// The verification code, as the app showed it (e.g. `elg fjord`).
    pub verification_code: String,
    /// SHA-256 of the UTF-8 text shown to the person (the text to sign, or the login text).
    pub text_sha256: [u8; 32],
    /// The answer.
    pub decision: Decision,
    /// How the key was unlocked; `None` when the app has no local user verification and the
    /// password must follow.
    pub user_verification: Option<UserVerification>,
}

impl ApprovalPayload {
    /// Checks that `request_id`, `rp` and `verification_code` are not empty and at most
    /// [`MAX_PAYLOAD_FIELD_LEN`] bytes. Both signing and verification call this first.
    pub fn validate(&self) -> Result<(), AppError> {
        for (field, value) in [
            ("request_id", &self.request_id),
            ("rp", &self.rp),
            ("verification_code", &self.verification_code),
        ] {
            if value.is_empty() {
                return Err(AppError::PayloadFieldEmpty { field });
            }
            if value.len() > MAX_PAYLOAD_FIELD_LEN {
                return Err(AppError::PayloadFieldTooLong {
                    field,
                    len: value.len(),
                    max: MAX_PAYLOAD_FIELD_LEN,
                });
            }
        }
        Ok(())
    }

    /// The bytes the device key signs (ECDSA P-256 with SHA-256 over exactly these bytes;
    /// the signature is the 64-byte fixed `r || s`).
    ///
    /// Format, version 1, in this order, with nothing in between:
    ///
    /// | # | field | encoding |
    /// |---|---|---|
    /// | 1 | prefix | the 17 ASCII bytes `segl-approval-v1` and a line feed (`0x0a`) |
    /// | 2 | `request_id` | length as u32 big-endian, then the UTF-8 bytes |
    /// | 3 | `rp` | length as u32 big-endian, then the UTF-8 bytes |
    /// | 4 | `verification_code` | length as u32 big-endian, then the UTF-8 bytes |
    /// | 5 | `text_sha256` | the 32 raw hash bytes, **no** length prefix |
    /// | 6 | `decision` | length as u32 big-endian, then ASCII `approve` or `deny` |
    /// | 7 | `user_verification` | length as u32 big-endian, then ASCII `pin`, `face` or `fpt`; for none, length 0 and no bytes |
    ///
    /// Lengths count bytes, not characters. Strings are used exactly as received (no trimming,
    /// no Unicode normalisation), so the app must sign the very strings the server sent and
    /// showed. Example: `rp = "Sør"` is encoded `00 00 00 04 53 c3 b8 72`.
    ///
    /// The encoding is only defined for payloads that pass [`ApprovalPayload::validate`]
    /// (which keeps every length far below `u32::MAX`); sign and verify check that first.
    pub fn to_signed_bytes(&self) -> Vec<u8> {
        let uv = self.user_verification.map_or("", |uv| uv.amr());
        let decision = self.decision.as_str();
        let mut out = Vec::with_capacity(
            APPROVAL_PREFIX.len()
                + 5 * 4
                + self.request_id.len()
                + self.rp.len()
                + self.verification_code.len()
                + 32
                + decision.len()
                + uv.len(),
        );
        out.extend_from_slice(APPROVAL_PREFIX);
        put_field(&mut out, self.request_id.as_bytes());
        put_field(&mut out, self.rp.as_bytes());
        put_field(&mut out, self.verification_code.as_bytes());
        out.extend_from_slice(&self.text_sha256);
        put_field(&mut out, decision.as_bytes());
        put_field(&mut out, uv.as_bytes());
        out
    }
}

/// Domain separation for [`DeviceRequest`]: a signature over one kind of message is never
/// valid as the other.
pub const DEVICE_REQUEST_PREFIX: &[u8] = b"segl-device-request-v1\n";

/// How far a device's clock may be from the server's, in seconds, for a signed request.
pub const DEVICE_REQUEST_MAX_SKEW_SECS: i64 = 60;

/// What the device key signs to authenticate a call to the device API: who calls, a fresh
/// random nonce, which call, when, and the body's SHA-256. The server refuses it when the
/// time is off by more than [`DEVICE_REQUEST_MAX_SKEW_SECS`] and when the same signed
/// message comes twice (the nonce lets two identical calls in one second both through).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRequest<'a> {
    /// The app id from activation.
    pub app_id: &'a str,
    /// A random value the app makes for each call (16 to 64 base64url characters).
    pub nonce: &'a str,
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The path, without query.
    pub path: &'a str,
    /// Unix seconds on the device's clock.
    pub timestamp: i64,
    /// SHA-256 of the request body (of no bytes for a body-less request).
    pub body_sha256: [u8; 32],
}

impl DeviceRequest<'_> {
    /// The bytes signed: the prefix, then the app id, nonce, method and path each as
    /// `u32 big-endian length || bytes`, the timestamp as `i64` big-endian, and the body's
    /// SHA-256.
    pub fn to_signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            DEVICE_REQUEST_PREFIX.len()
                + 4 * 4
                + self.app_id.len()
                + self.nonce.len()
                + self.method.len()
                + self.path.len()
                + 8
                + 32,
        );
        out.extend_from_slice(DEVICE_REQUEST_PREFIX);
        put_field(&mut out, self.app_id.as_bytes());
        put_field(&mut out, self.nonce.as_bytes());
        put_field(&mut out, self.method.as_bytes());
        put_field(&mut out, self.path.as_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.body_sha256);
        out
    }
}

/// Appends `u32 big-endian length || bytes`. A field too long for a `u32` (impossible after
/// [`ApprovalPayload::validate`]) is written with length `u32::MAX`.
fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

// ---------------------------------------------------------------------------------------
// Activation timing
// ---------------------------------------------------------------------------------------

/// Timing of an app activation. A thief who has the password and intercepts one SMS must
/// still wait out the security period, during which the real owner is told by SMS that an
/// activation started and can have it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivationPolicy {
    /// Seconds from the start of an activation until it may be completed, unless it was
    /// started from the old, still active phone.
    pub security_period_secs: i64,
    /// Seconds, once open, during which the activation may be completed before it expires.
    pub completion_window_secs: i64,
}

impl Default for ActivationPolicy {
    /// One hour of waiting, then two hours to complete (as BankID Norway).
    fn default() -> Self {
        ActivationPolicy {
            security_period_secs: 3600,
            completion_window_secs: 7200,
        }
    }
}

/// The app's limits: the `[policy.app]` table of `segl.toml`, validated with the rest of
/// [`crate::policy::Policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppPolicy {
    /// Seconds an activation not started from the old phone waits before it may complete.
    pub security_period_secs: i64,
    /// Seconds, once open, in which an activation must be completed.
    pub completion_window_secs: i64,
    /// Seconds an approval request waits for the app's answer.
    pub request_ttl_secs: i64,
    /// How the verification code shown in the browser and the app looks.
    pub verification_code: VerificationStyle,
    /// Whether activation needs a Norwegian mobile number on the person (for the SMS that
    /// tells the owner an activation started and completed).
    pub require_mobile: bool,
    /// Wrong second codes (SMS and email activation) before the activation is cancelled.
    pub second_code_max_failures: u32,
}

impl Default for AppPolicy {
    fn default() -> Self {
        let a = ActivationPolicy::default();
        AppPolicy {
            security_period_secs: a.security_period_secs,
            completion_window_secs: a.completion_window_secs,
            request_ttl_secs: 120,
            verification_code: VerificationStyle::Words,
            require_mobile: true,
            second_code_max_failures: 3,
        }
    }
}

impl AppPolicy {
    /// The activation timing, for [`activation_phase`].
    pub fn activation(&self) -> ActivationPolicy {
        ActivationPolicy {
            security_period_secs: self.security_period_secs,
            completion_window_secs: self.completion_window_secs,
        }
    }
}

/// Where an activation stands at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum ActivationPhase {
    /// In the security period: the activation cannot be completed before `opens_at`.
    Waiting {
        /// Unix time at which it opens.
        opens_at: i64,
    },
    /// It may be completed now, until just before `closes_at`.
    Open {
        /// Unix time from which it is expired.
        closes_at: i64,
    },
    /// Too late: a new activation must be started.
    Expired,
}

/// The phase at `now` of an activation started at `started_at` (Unix seconds).
///
/// Intervals are half-open: at exactly `opens_at` it is open, at exactly `closes_at` it is
/// expired. An activation approved from the old phone skips the security period (the owner
/// is evidently in control) and is open from `started_at` until
/// `started_at + completion_window_secs`. Otherwise it is waiting until
/// `started_at + security_period_secs` and then open for `completion_window_secs`. A `now`
/// before `started_at` (clock skew between nodes) is treated like `started_at`.
pub fn activation_phase(
    policy: &ActivationPolicy,
    started_at: i64,
    now: i64,
    from_old_device: bool,
) -> ActivationPhase {
    let opens_at = if from_old_device {
        started_at
    } else {
        started_at.saturating_add(policy.security_period_secs)
    };
    let closes_at = opens_at.saturating_add(policy.completion_window_secs);
    let now = now.max(started_at);
    if now < opens_at {
        ActivationPhase::Waiting { opens_at }
    } else if now < closes_at {
        ActivationPhase::Open { closes_at }
    } else {
        ActivationPhase::Expired
    }
}

// ---------------------------------------------------------------------------------------
// Animated QR code
// ---------------------------------------------------------------------------------------

/// How old a scanned QR code may be, in seconds: the browser shows a new one every second,
/// so this allows for a slow scan and network, and a code photographed and relayed by a
/// phisher is stale by the time it arrives.
pub const QR_MAX_AGE_SECS: i64 = 10;

/// Seconds since the flow started, the `{seconds}` of the animated QR code; never negative.
///
/// The browser shows a new QR code every second, with this payload:
///
/// ```text
/// segl-qr.{flow_ref}.{seconds}.{auth_code}
/// ```
///
/// - `flow_ref`: the id of the flow's current app request (base64url, so it holds no `.`);
///   `started_at` is when that request was made;
/// - `seconds`: this function's value, in decimal ASCII without sign or leading zeros;
/// - `auth_code`: lowercase hex of HMAC-SHA256(flow's QR secret, `seconds` as decimal
///   ASCII), computed by `segl_crypto::qr`. The secret never leaves the server, so a QR
///   code photographed and relayed by a phisher goes stale within seconds.
pub fn qr_time_step(started_at: i64, now: i64) -> i64 {
    now.saturating_sub(started_at).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // --- mobile number --------------------------------------------------------------

    #[test]
    fn mobile_accepted_forms_normalise_to_e164() {
        for s in [
            "+47 412 34 567",
            "+4741234567",
            "0047 41234567",
            "41234567",
            "412 34 567",
            "412-34-567",
            " +47-412 34-567\n",
            "00 47 41 23 45 67",
        ] {
            let m = MobileNumber::parse(s).unwrap();
            assert_eq!(m.as_str(), "+4741234567", "{s:?}");
            assert_eq!(m.to_string(), "+4741234567");
        }
        assert_eq!(
            MobileNumber::parse("99999999").unwrap().as_str(),
            "+4799999999"
        );
        assert_eq!(
            "+47 912 34 567".parse::<MobileNumber>().unwrap().as_str(),
            "+4791234567"
        );
    }

    #[test]
    fn mobile_refusals_are_specific() {
        let p = MobileNumber::parse;
        assert_eq!(p(""), Err(AppError::MobileEmpty));
        assert_eq!(p("  - -  "), Err(AppError::MobileEmpty));
        assert_eq!(p("4123456a"), Err(AppError::MobileNotDigits));
        assert_eq!(p("+47 412.34.567"), Err(AppError::MobileNotDigits));
        assert_eq!(p("(+47) 41234567"), Err(AppError::MobileNotDigits));
        assert_eq!(p("+47+41234567"), Err(AppError::MobileNotDigits));
        assert_eq!(p("41234٥67"), Err(AppError::MobileNotDigits));
        assert_eq!(p("+"), Err(AppError::MobileBadLength { len: 0 }));
        assert_eq!(p("+47"), Err(AppError::MobileBadLength { len: 0 }));
        assert_eq!(p("4123456"), Err(AppError::MobileBadLength { len: 7 }));
        assert_eq!(p("412345678"), Err(AppError::MobileBadLength { len: 9 }));
        assert_eq!(
            p("+47 412 34 5678"),
            Err(AppError::MobileBadLength { len: 9 })
        );
        // Not accepted without + or 00: ambiguous forms are refused rather than guessed.
        assert_eq!(p("4741234567"), Err(AppError::MobileBadLength { len: 10 }));
        assert_eq!(p("22 22 22 22"), Err(AppError::MobileNotMobile));
        assert_eq!(p("+47 81549300"), Err(AppError::MobileNotMobile));
        // "00" is always the international prefix: this is a Swiss number.
        assert_eq!(
            p("0041234567"),
            Err(AppError::MobileForeignCountry { code: "41".into() })
        );
        assert_eq!(p("+4"), Err(AppError::MobileBadLength { len: 0 }));
    }

    #[test]
    fn mobile_foreign_country_is_named() {
        let code = |s: &str| match MobileNumber::parse(s) {
            Err(AppError::MobileForeignCountry { code }) => code,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(code("+46 70 123 45 67"), "46");
        assert_eq!(code("0045 20 12 34 56"), "45");
        assert_eq!(code("+1 202 555 0100"), "1");
        assert_eq!(code("+7 912 345 67 89"), "7");
        assert_eq!(code("+354 611 1234"), "354");
        assert_eq!(code("+358 40 123 4567"), "358");
        let msg = MobileNumber::parse("+46 70 123 45 67")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("+46"), "{msg}");
        assert!(msg.contains("+47"), "{msg}");
    }

    #[test]
    fn mobile_messages_do_not_repeat_the_number() {
        for s in ["4123456a", "412345678", "22222222", "+4741234"] {
            let msg = MobileNumber::parse(s).unwrap_err().to_string();
            assert!(!msg.contains(s), "{msg}");
            assert!(!msg.contains("4123"), "{msg}");
        }
    }

    #[test]
    fn mobile_debug_masks_and_serde_validates() {
        let m = MobileNumber::parse("412 34 567").unwrap();
        assert_eq!(format!("{m:?}"), "MobileNumber(+47******67)");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"+4741234567\"");
        assert_eq!(
            serde_json::from_str::<MobileNumber>("\"0047 412 34 567\"").unwrap(),
            m
        );
        let err = serde_json::from_str::<MobileNumber>("\"22222222\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a mobile number"), "{err}");
    }

    // --- verification code ----------------------------------------------------------

    #[test]
    fn word_list_is_256_distinct_short_lowercase_prefix_free_words() {
        let allowed = |c: char| c.is_ascii_lowercase() || matches!(c, 'æ' | 'ø' | 'å');
        let mut seen = std::collections::BTreeSet::new();
        for w in WORDS {
            assert!(seen.insert(w), "duplicate {w}");
            assert!(w.chars().all(allowed), "{w}");
            assert!((3..=7).contains(&w.chars().count()), "{w}");
        }
        assert_eq!(seen.len(), 256);
        for a in WORDS {
            for b in WORDS {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
    }

    #[test]
    fn words_style_shape() {
        assert_eq!(
            verification_code(VerificationStyle::Words, [0, 1, 0, 0]),
            "agurk anker"
        );
        assert_eq!(
            verification_code(VerificationStyle::Words, [255, 254, 9, 9]),
            "åre åker"
        );
        for r in [
            [0u8, 0, 0, 0],
            [7, 7, 200, 1],
            [255, 255, 254, 0],
            [3, 200, 1, 2],
        ] {
            let code = verification_code(VerificationStyle::Words, r);
            let parts: Vec<&str> = code.split(' ').collect();
            assert_eq!(parts.len(), 2, "{code}");
            assert!(
                WORDS.contains(&parts[0]) && WORDS.contains(&parts[1]),
                "{code}"
            );
            assert_ne!(parts[0], parts[1], "{code}");
        }
    }

    #[test]
    fn equal_bytes_pick_another_word_from_the_third_byte() {
        let code = |r| verification_code(VerificationStyle::Words, r);
        // (a + 1 + r2 % 255) % 256
        assert_eq!(code([5, 5, 0, 0]), format!("{} {}", WORDS[5], WORDS[6]));
        assert_eq!(code([5, 5, 255, 0]), format!("{} {}", WORDS[5], WORDS[6]));
        assert_eq!(code([5, 5, 254, 0]), format!("{} {}", WORDS[5], WORDS[4]));
        assert_eq!(
            code([255, 255, 0, 0]),
            format!("{} {}", WORDS[255], WORDS[0])
        );
        // Every third byte gives a second word other than the first.
        for a in 0..=255u8 {
            for r2 in 0..=255u8 {
                let c = code([a, a, r2, 0]);
                let (x, y) = c.split_once(' ').unwrap();
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn digits_style_shape() {
        let code = |r| verification_code(VerificationStyle::Digits, r);
        assert_eq!(code([0, 0, 0, 0]), "0000");
        assert_eq!(code([0, 0, 0, 7]), "0007");
        assert_eq!(code([0, 0, 0x27, 0x0f]), "9999"); // 9999
        assert_eq!(code([0, 0, 0x27, 0x10]), "0000"); // 10000
        assert_eq!(code([0xff, 0xff, 0xff, 0xff]), "7295"); // 4294967295 % 10000
        for r in [[1u8, 2, 3, 4], [9, 8, 7, 6], [0x80, 0, 0, 1]] {
            let c = code(r);
            assert_eq!(c.len(), 4);
            assert!(c.bytes().all(|b| b.is_ascii_digit()), "{c}");
        }
    }

    #[test]
    fn verification_style_names() {
        for s in [VerificationStyle::Words, VerificationStyle::Digits] {
            assert_eq!(s.as_str().parse::<VerificationStyle>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(" Digits ".parse(), Ok(VerificationStyle::Digits));
        assert_eq!(
            "emoji".parse::<VerificationStyle>(),
            Err(AppError::UnknownVerificationStyle("emoji".into()))
        );
        assert!(serde_json::from_str::<VerificationStyle>("\"Words\"").is_err());
        assert_eq!(VerificationStyle::default(), VerificationStyle::Words);
    }

    // --- approval payload -----------------------------------------------------------

    /// The payload of the fixed test vector.
    fn vector_payload() -> ApprovalPayload {
        ApprovalPayload {
            request_id: "0b1e2f7a-9c4d-4e8f-a1b2-c3d4e5f60718".into(),
            rp: "Sparebanken Sør".into(),
            verification_code: "elg fjord".into(),
            // SHA-256 of the UTF-8 text "Logg inn hos Sparebanken Sør".
            text_sha256: unhex("7bdb1ed2d8d70b5f454fa1412162e0c45510e997477419d5d48e5f952bbf7ff5")
                .try_into()
                .unwrap(),
            decision: Decision::Approve,
            user_verification: Some(UserVerification::Face),
        }
    }

    /// Fixed vectors, made independently of this code with Python 3:
    ///
    /// ```python
    /// import hashlib, struct
    /// lp = lambda b: struct.pack(">I", len(b)) + b
    /// def enc(req, rp, code, h, dec, uv):
    ///     return (b"segl-approval-v1\n" + lp(req.encode()) + lp(rp.encode())
    ///             + lp(code.encode()) + h + lp(dec.encode()) + lp(uv.encode()))
    /// h = hashlib.sha256("Logg inn hos Sparebanken Sør".encode()).digest()
    /// enc("0b1e2f7a-9c4d-4e8f-a1b2-c3d4e5f60718", "Sparebanken Sør", "elg fjord",
    ///     h, "approve", "face").hex()
    /// enc("r1", "RP", "0042", bytes(32), "deny", "").hex()
    /// ```
    ///
    /// If this test fails, the signed format changed: every phone app breaks. Make a
    /// `segl-approval-v2` instead.
    /// A signed device-API request, encoded independently in Python 3:
    ///
    /// ```python
    /// lp = lambda b: struct.pack(">I", len(b)) + b
    /// (b"segl-device-request-v1\n" + lp(b"123456789012") + lp(b"q1Fz0cW3rT5yU7iO9pA2sD") + lp(b"POST")
    ///  + lp(b"/api/v1/app/deactivate") + struct.pack(">q", 1764633600)
    ///  + hashlib.sha256(b"").digest()).hex()
    /// ```
    #[test]
    fn activation_codes_group_and_normalize_back() {
        let code = "ABCDEFGHJKMNPQRS";
        let printed = group_activation_code(code);
        assert_eq!(printed, "ABCD-EFGH-JKMN-PQRS");
        assert_eq!(normalize_activation_code(&printed).as_deref(), Some(code));
        // Typed in lower case with spaces, it is the same code.
        assert_eq!(
            normalize_activation_code("abcd efgh jkmn pqrs").as_deref(),
            Some(code)
        );
    }

    #[test]
    fn malformed_activation_codes_are_refused() {
        for bad in [
            "",
            "ABCD-EFGH-JKMN-PQR",   // truncated
            "ABCD-EFGH-JKMN-PQRST", // too long
            "ABCD-EFGH-JKMN-PQR0",  // 0 is not in the alphabet
            "ABCD-EFGH-JKMN-PQRÅ",  // not ASCII
            "ABCD_EFGH_JKMN_PQRS",  // other separators
        ] {
            assert_eq!(normalize_activation_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn device_request_fixed_vector() {
        let empty_body: [u8; 32] = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        let r = DeviceRequest {
            app_id: "123456789012",
            nonce: "q1Fz0cW3rT5yU7iO9pA2sD",
            method: "POST",
            path: "/api/v1/app/deactivate",
            timestamp: 1_764_633_600,
            body_sha256: empty_body,
        };
        assert_eq!(
            hex(&r.to_signed_bytes()),
            concat!(
                "7365676c2d6465766963652d726571756573742d76310a0000000c313233343536373839303132",
                "000000167131467a30635733725435795537694f39704132734400000004504f5354000000162f",
                "6170692f76312f6170702f6465616374697661746500000000692e2c00e3b0c44298fc1c149afb",
                "f4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        );
        // Every field is bound: changing any one changes the bytes.
        let base = r.to_signed_bytes();
        for other in [
            DeviceRequest {
                app_id: "123456789013",
                ..r.clone()
            },
            DeviceRequest {
                method: "GET",
                ..r.clone()
            },
            DeviceRequest {
                path: "/api/v1/app/status",
                ..r.clone()
            },
            DeviceRequest {
                timestamp: 1_764_633_601,
                ..r.clone()
            },
            DeviceRequest {
                body_sha256: [0; 32],
                ..r.clone()
            },
        ] {
            assert_ne!(other.to_signed_bytes(), base, "{other:?}");
        }
    }

    #[test]
    fn signed_bytes_fixed_vectors() {
        assert_eq!(
            hex(&vector_payload().to_signed_bytes()),
            concat!(
                "7365676c2d617070726f76616c2d76310a",
                "00000024",
                "30623165326637612d396334642d346538662d613162322d633364346535663630373138",
                "00000010",
                "537061726562616e6b656e2053c3b872",
                "00000009",
                "656c6720666a6f7264",
                "7bdb1ed2d8d70b5f454fa1412162e0c45510e997477419d5d48e5f952bbf7ff5",
                "00000007",
                "617070726f7665",
                "00000004",
                "66616365",
            )
        );
        let deny = ApprovalPayload {
            request_id: "r1".into(),
            rp: "RP".into(),
            verification_code: "0042".into(),
            text_sha256: [0; 32],
            decision: Decision::Deny,
            user_verification: None,
        };
        assert_eq!(
            hex(&deny.to_signed_bytes()),
            concat!(
                "7365676c2d617070726f76616c2d76310a",
                "000000027231",
                "000000025250",
                "0000000430303432",
                "0000000000000000000000000000000000000000000000000000000000000000",
                "0000000464656e79",
                "00000000",
            )
        );
    }

    #[test]
    fn changing_any_field_changes_the_bytes() {
        let base = vector_payload();
        let base_bytes = base.to_signed_bytes();
        type Change = fn(&mut ApprovalPayload);
        let variants: [(&str, Change); 9] = [
            ("request_id", |p| p.request_id.push('x')),
            ("rp", |p| p.rp = "Sparebanken Sor".into()),
            ("verification_code", |p| {
                p.verification_code = "elg fjell".into()
            }),
            ("text_sha256 first", |p| p.text_sha256[0] ^= 1),
            ("text_sha256 last", |p| p.text_sha256[31] ^= 0x80),
            ("decision", |p| p.decision = Decision::Deny),
            ("uv none", |p| p.user_verification = None),
            ("uv pin", |p| {
                p.user_verification = Some(UserVerification::Pin)
            }),
            ("uv fpt", |p| {
                p.user_verification = Some(UserVerification::Fingerprint)
            }),
        ];
        let mut all = vec![base_bytes.clone()];
        for (name, change) in variants {
            let mut p = base.clone();
            change(&mut p);
            let bytes = p.to_signed_bytes();
            assert_ne!(bytes, base_bytes, "{name}");
            assert!(
                !all.contains(&bytes),
                "{name} collides with another variant"
            );
            all.push(bytes);
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        // Moving characters between adjacent fields changes the bytes.
        let mut a = vector_payload();
        a.request_id = "ab".into();
        a.rp = "c".into();
        let mut b = a.clone();
        b.request_id = "a".into();
        b.rp = "bc".into();
        assert_ne!(a.to_signed_bytes(), b.to_signed_bytes());
        let mut c = a.clone();
        c.rp = "c d".into();
        c.verification_code = "e".into();
        let mut d = a.clone();
        d.rp = "c".into();
        d.verification_code = "d e".into();
        assert_ne!(c.to_signed_bytes(), d.to_signed_bytes());
    }

    #[test]
    fn payload_validation() {
        type Field = fn(&mut ApprovalPayload) -> &mut String;
        assert_eq!(vector_payload().validate(), Ok(()));
        let fields: [(&str, Field); 3] = [
            ("request_id", |p| &mut p.request_id),
            ("rp", |p| &mut p.rp),
            ("verification_code", |p| &mut p.verification_code),
        ];
        for (field, get) in fields {
            let mut p = vector_payload();
            get(&mut p).clear();
            assert_eq!(p.validate(), Err(AppError::PayloadFieldEmpty { field }));
            *get(&mut p) = "x".repeat(MAX_PAYLOAD_FIELD_LEN);
            assert_eq!(p.validate(), Ok(()));
            get(&mut p).push('x');
            assert_eq!(
                p.validate(),
                Err(AppError::PayloadFieldTooLong {
                    field,
                    len: MAX_PAYLOAD_FIELD_LEN + 1,
                    max: MAX_PAYLOAD_FIELD_LEN
                })
            );
        }
        // The limit counts bytes: 513 two-byte characters are too many.
        let mut p = vector_payload();
        p.rp = "ø".repeat(MAX_PAYLOAD_FIELD_LEN / 2 + 1);
        assert!(matches!(
            p.validate(),
            Err(AppError::PayloadFieldTooLong { len: 1026, .. })
        ));
    }

    #[test]
    fn wire_names_and_amr() {
        assert_eq!(UserVerification::Pin.amr(), "pin");
        assert_eq!(UserVerification::Face.amr(), "face");
        assert_eq!(UserVerification::Fingerprint.amr(), "fpt");
        for uv in [
            UserVerification::Pin,
            UserVerification::Face,
            UserVerification::Fingerprint,
        ] {
            assert_eq!(
                serde_json::to_string(&uv).unwrap(),
                format!("\"{}\"", uv.amr())
            );
            let back: UserVerification =
                serde_json::from_str(&format!("\"{}\"", uv.amr())).unwrap();
            assert_eq!(back, uv);
        }
        assert_eq!(
            serde_json::to_string(&Decision::Approve).unwrap(),
            "\"approve\""
        );
        assert_eq!(serde_json::to_string(&Decision::Deny).unwrap(), "\"deny\"");
        assert!(serde_json::from_str::<UserVerification>("\"fingerprint\"").is_err());
    }

    // --- activation -----------------------------------------------------------------

    #[test]
    fn activation_defaults() {
        let p = ActivationPolicy::default();
        assert_eq!(p.security_period_secs, 3600);
        assert_eq!(p.completion_window_secs, 7200);
        let from_json: ActivationPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(from_json, p);
        assert!(serde_json::from_str::<ActivationPolicy>(r#"{"period": 1}"#).is_err());
    }

    #[test]
    fn activation_boundaries_new_device() {
        let p = ActivationPolicy::default();
        let t0 = 1_000_000;
        let phase = |now| activation_phase(&p, t0, now, false);
        let opens_at = t0 + 3600;
        let closes_at = opens_at + 7200;
        assert_eq!(phase(t0 - 5), ActivationPhase::Waiting { opens_at });
        assert_eq!(phase(t0), ActivationPhase::Waiting { opens_at });
        assert_eq!(phase(opens_at - 1), ActivationPhase::Waiting { opens_at });
        assert_eq!(phase(opens_at), ActivationPhase::Open { closes_at });
        assert_eq!(phase(closes_at - 1), ActivationPhase::Open { closes_at });
        assert_eq!(phase(closes_at), ActivationPhase::Expired);
        assert_eq!(phase(i64::MAX), ActivationPhase::Expired);
    }

    #[test]
    fn activation_boundaries_old_device() {
        let p = ActivationPolicy::default();
        let t0 = 1_000_000;
        let phase = |now| activation_phase(&p, t0, now, true);
        let closes_at = t0 + 7200;
        assert_eq!(phase(t0), ActivationPhase::Open { closes_at });
        assert_eq!(phase(t0 - 5), ActivationPhase::Open { closes_at });
        assert_eq!(phase(closes_at - 1), ActivationPhase::Open { closes_at });
        assert_eq!(phase(closes_at), ActivationPhase::Expired);
    }

    #[test]
    fn activation_saturates_instead_of_overflowing() {
        let p = ActivationPolicy::default();
        assert_eq!(
            activation_phase(&p, i64::MAX - 10, i64::MAX - 5, false),
            ActivationPhase::Waiting { opens_at: i64::MAX }
        );
        let zero = ActivationPolicy {
            security_period_secs: 0,
            completion_window_secs: 0,
        };
        assert_eq!(
            activation_phase(&zero, 10, 10, false),
            ActivationPhase::Expired
        );
        assert_eq!(
            serde_json::to_string(&ActivationPhase::Waiting { opens_at: 5 }).unwrap(),
            r#"{"phase":"waiting","opens_at":5}"#
        );
    }

    // --- QR -------------------------------------------------------------------------

    #[test]
    fn qr_time_step_counts_seconds_and_is_never_negative() {
        assert_eq!(qr_time_step(100, 100), 0);
        assert_eq!(qr_time_step(100, 101), 1);
        assert_eq!(qr_time_step(100, 130), 30);
        assert_eq!(qr_time_step(100, 99), 0);
        assert_eq!(qr_time_step(i64::MAX, i64::MIN), 0);
        assert_eq!(qr_time_step(i64::MIN, i64::MAX), i64::MAX);
    }
}
