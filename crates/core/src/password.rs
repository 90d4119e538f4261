//! The rules a new password must meet. Hashing lives in `segl-crypto`; this module only
//! decides whether a password may be chosen.
//!
//! The rules follow NIST SP 800-63B: a minimum length, a generous maximum, and a check
//! against passwords known to be common — no composition rules (a digit, a symbol), which
//! make passwords harder to remember without making them harder to guess. On top, a password
//! must not contain the person's own national identity number or date of birth, which are
//! the first things an attacker who knows the person would try.

use std::collections::HashSet;
use std::io::Read;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::nin::Nin;

/// The 20,000 most common passwords by Royce Williams
/// (<https://gist.github.com/roycewilliams/281ce539915a947a23db17137d91aeb7>), lowercased
/// and de-duplicated (19,640 left), as shipped by Django in
/// `django/contrib/auth/common-passwords.txt.gz` under the BSD licence. Gzipped it is 80 kB
/// in the binary instead of 160 kB.
static COMMON_PASSWORDS_GZ: &[u8] = include_bytes!("../data/common-passwords.txt.gz");

/// Limits on new passwords. Every field has a default, and unknown keys are refused so that
/// a misspelt setting in `segl.toml` is an error rather than silently ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) a password may have; NIST asks for at
    /// least 8, segl defaults to 10 because there is no other rule.
    pub min_length: usize,
    /// Most characters a password may have: long enough for passphrases and password
    /// managers, short enough to bound the work one request can cause.
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 10,
            max_length: 256,
        }
    }
}

/// Why a new password is refused. Messages are shown to the person choosing it.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum PasswordPolicyError {
    /// Fewer characters than `min_length`.
    #[error("a password needs at least {min} characters")]
    TooShort {
        /// The configured minimum.
        min: usize,
    },
    /// More characters than `max_length`.
    #[error("a password can have at most {max} characters")]
    TooLong {
        /// The configured maximum.
        max: usize,
    },
    /// The password (ignoring case) is on the list of common passwords.
    #[error(
        "this password is one of the most common ones and easy to guess; please choose another"
    )]
    Common,
    /// The password contains the person's national identity number.
    #[error("a password must not contain your national identity number")]
    ContainsNin,
    /// The password contains the person's date of birth (as DDMMYY, DDMMYYYY or YYYYMMDD,
    /// or the first six digits of the identity number).
    #[error("a password must not contain your date of birth")]
    ContainsBirthDate,
}

/// Checks a password someone wants to set. `nin` is the person's number when known, so the
/// password can be checked against it.
///
/// Checks run from cheapest to dearest: length first, so an oversized input is refused
/// before it is lowercased or searched.
pub fn check_new_password(
    password: &str,
    policy: &PasswordPolicy,
    nin: Option<&Nin>,
) -> Result<(), PasswordPolicyError> {
    // Count at most one past the maximum: enough to decide, and bounded for huge input.
    let len = password
        .chars()
        .take(policy.max_length.saturating_add(1))
        .count();
    if len < policy.min_length {
        return Err(PasswordPolicyError::TooShort {
            min: policy.min_length,
        });
    }
    if len > policy.max_length {
        return Err(PasswordPolicyError::TooLong {
            max: policy.max_length,
        });
    }
    if is_common_password(password) {
        return Err(PasswordPolicyError::Common);
    }
    if let Some(nin) = nin {
        check_personal(password, nin)?;
    }
    Ok(())
}

/// Whether `password`, lowercased and without surrounding whitespace, is on the list of
/// common passwords (the trim, as in Django, stops `"password "` slipping through).
pub fn is_common_password(password: &str) -> bool {
    common_passwords().contains(password.trim().to_lowercase().as_str())
}

/// The common-password list, decompressed on first use and kept for the life of the
/// process (about 1 MB). Decompressing embedded bytes is not I/O.
fn common_passwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut text = String::new();
        // The bytes are compiled in, not input: if they were not valid gzip and UTF-8 the
        // build itself would be broken, and `the_common_list_loads` fails before release.
        flate2::read::GzDecoder::new(COMMON_PASSWORDS_GZ)
            .read_to_string(&mut text)
            .expect("the embedded common-password list is valid gzipped UTF-8");
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_lowercase)
            .collect()
    })
}

/// Refuses a password that contains the NIN or the date of birth, also when written with
/// the usual separators (`150585 00027`, `15.05.85`, `1985-05-15`).
fn check_personal(password: &str, nin: &Nin) -> Result<(), PasswordPolicyError> {
    // Only separators are removed, not letters: removing every non-digit would join
    // digits from unrelated words ("horse1 battery50 staple585") into a false match.
    let joined: String = password
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '/'))
        .collect();
    let contains = |needle: &str| password.contains(needle) || joined.contains(needle);

    if contains(nin.as_str()) {
        return Err(PasswordPolicyError::ContainsNin);
    }
    let b = nin.birth_date();
    let (d, m, y) = (b.day(), u8::from(b.month()), b.year());
    let forms = [
        // For a D-number the first six digits differ from the real date; refuse both.
        nin.as_str().get(..6).unwrap_or_default().to_owned(),
        format!("{d:02}{m:02}{:02}", y.rem_euclid(100)),
        format!("{d:02}{m:02}{y:04}"),
        format!("{y:04}{m:02}{d:02}"),
    ];
    if forms.iter().any(|f| !f.is_empty() && contains(f)) {
        return Err(PasswordPolicyError::ContainsBirthDate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nin() -> Nin {
        Nin::parse("15058500027").unwrap()
    }

    fn check(pw: &str) -> Result<(), PasswordPolicyError> {
        check_new_password(pw, &PasswordPolicy::default(), Some(&nin()))
    }

    #[test]
    fn the_common_list_loads() {
        let n = common_passwords().len();
        assert!((19_000..=20_000).contains(&n), "{n} common passwords");
    }

    #[test]
    fn common_passwords_ignoring_case() {
        assert!(is_common_password("password"));
        assert!(is_common_password("qwerty123"));
        assert!(is_common_password("PassWord"));
        assert!(is_common_password("QWERTY123"));
        assert!(is_common_password(" password\t"));
        assert!(!is_common_password("correct horse battery staple"));
        assert!(!is_common_password(""));
    }

    #[test]
    fn a_long_common_password_is_refused() {
        assert_eq!(check("1234567890"), Err(PasswordPolicyError::Common));
        assert_eq!(check("QwertyUiop"), Err(PasswordPolicyError::Common));
    }

    #[test]
    fn a_passphrase_is_fine() {
        assert_eq!(check("correct horse battery staple"), Ok(()));
        assert_eq!(
            check_new_password(
                "correct horse battery staple",
                &PasswordPolicy::default(),
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn too_short() {
        assert_eq!(check(""), Err(PasswordPolicyError::TooShort { min: 10 }));
        assert_eq!(
            check("password"),
            Err(PasswordPolicyError::TooShort { min: 10 })
        );
        assert_eq!(
            check("kort-ord9"),
            Err(PasswordPolicyError::TooShort { min: 10 })
        );
        assert_eq!(check("kort-ord9!"), Ok(()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Ten characters, twenty bytes.
        assert_eq!(check("æøåæøåæøåæ"), Ok(()));
        assert_eq!(
            check("æøåæøåæøå"),
            Err(PasswordPolicyError::TooShort { min: 10 })
        );
    }

    #[test]
    fn too_long() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            check(&"abcdefgh".repeat(32)),
            Ok(()),
            "exactly 256 is allowed"
        );
        assert_eq!(check(&"abcdefgh".repeat(32).replace('a', "å")), Ok(()));
        assert_eq!(
            check(&format!("{}x", "abcdefgh".repeat(32))),
            Err(PasswordPolicyError::TooLong { max: 256 })
        );
        assert_eq!(
            check_new_password(&"x".repeat(1 << 20), &policy, None),
            Err(PasswordPolicyError::TooLong { max: 256 })
        );
    }

    #[test]
    fn contains_nin() {
        assert_eq!(
            check("my number is 15058500027"),
            Err(PasswordPolicyError::ContainsNin)
        );
        assert_eq!(
            check("150585 00027 yes"),
            Err(PasswordPolicyError::ContainsNin)
        );
    }

    #[test]
    fn contains_birth_date() {
        for pw in [
            "kari150585!",
            "kari 15.05.85",
            "born 15/05/1985",
            "born 1985-05-15!",
            "15051985kari",
        ] {
            assert_eq!(
                check(pw),
                Err(PasswordPolicyError::ContainsBirthDate),
                "{pw}"
            );
        }
        // Digits from unrelated words are not joined into a date.
        assert_eq!(check("horse1 battery50 staple585"), Ok(()));
        // Without a NIN there is nothing to compare with.
        assert_eq!(
            check_new_password("kari150585!", &PasswordPolicy::default(), None),
            Ok(())
        );
    }

    #[test]
    fn d_number_refuses_both_the_digits_and_the_real_date() {
        let d = Nin::parse("55058500010").unwrap(); // born 1985-05-15
        let policy = PasswordPolicy::default();
        assert_eq!(
            check_new_password("kari550585!", &policy, Some(&d)),
            Err(PasswordPolicyError::ContainsBirthDate)
        );
        assert_eq!(
            check_new_password("kari150585!", &policy, Some(&d)),
            Err(PasswordPolicyError::ContainsBirthDate)
        );
        assert_eq!(
            check_new_password("kari55058500010", &policy, Some(&d)),
            Err(PasswordPolicyError::ContainsNin)
        );
    }

    #[test]
    fn serde_defaults_and_unknown_fields() {
        let p: PasswordPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, PasswordPolicy::default());
        let p: PasswordPolicy = serde_json::from_str(r#"{"min_length": 12}"#).unwrap();
        assert_eq!(
            p,
            PasswordPolicy {
                min_length: 12,
                max_length: 256
            }
        );
        assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_lenght": 12}"#).is_err());
    }
}
