//! Norwegian national identity numbers: fødselsnummer and D-number.
//!
//! A [`Nin`] can only be built by [`Nin::parse`], so holding one means the check digits, the
//! birth date and the century rule have all been verified; nothing past the edge re-checks a
//! string. The number is personal data: `Debug` masks it so it cannot slip into a log line
//! through `{:?}`, while `Display` and [`Nin::as_str`] give the full number where it is
//! deliberately needed (the store, the `pid` claim).
//!
//! Layout of the 11 digits: `DDMMYY III K1 K2` — birth date, individual number, two
//! modulus-11 check digits. A D-number (given to people without a fødselsnummer) has 40
//! added to the day. H-numbers (month + 40) are auxiliary numbers of the health sector and
//! do not identify a person to an eID, so they are refused as [`NinError::BadDate`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

/// Weights of the first check digit over digits 1–9.
const WEIGHTS_K1: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
/// Weights of the second check digit over digits 1–10.
const WEIGHTS_K2: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// A validated Norwegian national identity number (11 digits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nin {
    /// The 11 ASCII digits, without the optional space accepted on input.
    digits: String,
    /// Which kind of number this is, decided once at parse time.
    kind: NinKind,
    /// The real birth date (D-number offset removed), computed at parse time so that
    /// [`Nin::birth_date`] cannot fail.
    birth_date: Date,
}

/// The kind of national identity number.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NinKind {
    /// Fødselsnummer: given at birth or on moving to Norway.
    Fodselsnummer,
    /// D-number: given to people with a temporary connection to Norway; day + 40.
    DNumber,
}

/// Why a string is not a national identity number. Messages are shown to the person who
/// typed the number, so they say what is wrong without repeating the number.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum NinError {
    /// The input does not have 11 characters (after trimming and the optional space).
    #[error("a national identity number has 11 digits, this has {len}")]
    BadLength {
        /// Number of characters found.
        len: usize,
    },
    /// The input has 11 characters but not all are the digits 0–9.
    #[error("a national identity number has only digits (0-9)")]
    NotDigits,
    /// The first six digits are not a real date (DDMMYY, day + 40 for a D-number).
    #[error(
        "the first six digits of a national identity number are a date of birth (DDMMYY), and these are not a real date"
    )]
    BadDate,
    /// The individual number (digits 7–9) maps the year to no century.
    #[error("the individual number (digits 7 to 9) does not fit the year of birth")]
    BadIndividualNumber,
    /// The first check digit (digit 10) does not match; most likely a typing error.
    #[error(
        "the first check digit (digit 10) does not match; please check the number for a typing error"
    )]
    BadCheckDigit1,
    /// The second check digit (digit 11) does not match; most likely a typing error.
    #[error(
        "the second check digit (digit 11) does not match; please check the number for a typing error"
    )]
    BadCheckDigit2,
}

impl Nin {
    /// Parses and validates a national identity number.
    ///
    /// Surrounding whitespace is trimmed, and one space between the date and the rest is
    /// accepted (`"150585 00027"`) because that is how the number is often written.
    /// Checks run in the order length, digits, check digit 1, check digit 2, then century
    /// and date, so a typing error is reported as a check-digit error.
    pub fn parse(s: &str) -> Result<Nin, NinError> {
        let trimmed = s.trim();
        // `get` rather than indexing: the input may hold multi-byte characters.
        let compact: Cow<'_, str> = match (
            trimmed.len(),
            trimmed.get(..6),
            trimmed.get(6..7),
            trimmed.get(7..),
        ) {
            (12, Some(date), Some(" "), Some(rest)) => Cow::Owned(format!("{date}{rest}")),
            _ => Cow::Borrowed(trimmed),
        };

        let len = compact.chars().count();
        if len != 11 {
            return Err(NinError::BadLength { len });
        }
        // With 11 characters that are all ASCII digits there are exactly 11 bytes.
        if !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NinError::NotDigits);
        }
        let mut d = [0u8; 11];
        for (slot, b) in d.iter_mut().zip(compact.bytes()) {
            *slot = b - b'0';
        }

        if check_digit(&d[..9], &WEIGHTS_K1) != Some(d[9]) {
            return Err(NinError::BadCheckDigit1);
        }
        if check_digit(&d[..10], &WEIGHTS_K2) != Some(d[10]) {
            return Err(NinError::BadCheckDigit2);
        }

        let day = two(d[0], d[1]);
        let month = two(d[2], d[3]);
        let yy = i32::from(two(d[4], d[5]));
        let individual = u16::from(d[6]) * 100 + u16::from(d[7]) * 10 + u16::from(d[8]);

        let year = century(individual, yy).ok_or(NinError::BadIndividualNumber)? + yy;
        let (kind, day) = match day {
            1..=31 => (NinKind::Fodselsnummer, day),
            41..=71 => (NinKind::DNumber, day - 40),
            _ => return Err(NinError::BadDate),
        };
        let month = Month::try_from(month).map_err(|_| NinError::BadDate)?;
        let birth_date =
            Date::from_calendar_date(year, month, day).map_err(|_| NinError::BadDate)?;

        Ok(Nin {
            digits: compact.into_owned(),
            kind,
            birth_date,
        })
    }

    /// The 11 digits. This is personal data: use it for storage and claims, not for logs.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// Whether this is a fødselsnummer or a D-number.
    pub fn kind(&self) -> NinKind {
        self.kind
    }

    /// The date of birth, with the D-number offset removed and the century resolved.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// Age in full years on `today`; 0 for a date before the birth date.
    ///
    /// Someone born on 29 February turns a year older on 1 March in a common year, as
    /// Norwegian practice has it: 28 February is still before the birthday.
    pub fn age_on(&self, today: Date) -> u32 {
        let born = self.birth_date;
        let mut years = today.year() - born.year();
        if (u8::from(today.month()), today.day()) < (u8::from(born.month()), born.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }

    /// Whether the person is 18 or older on `today`.
    pub fn is_adult_on(&self, today: Date) -> bool {
        self.age_on(today) >= 18
    }
}

/// Modulus-11 check digit: `11 - (sum mod 11)`, where 11 becomes 0 and 10 means that no
/// valid number starts with these digits (`None`).
fn check_digit(digits: &[u8], weights: &[u32]) -> Option<u8> {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(&d, &w)| u32::from(d) * w)
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => u8::try_from(k).ok(),
    }
}

/// Two decimal digits as a number.
fn two(tens: u8, ones: u8) -> u8 {
    tens * 10 + ones
}

/// The century (1800, 1900, 2000) of a two-digit year, from the individual number:
/// 000–499 → 1900s; 500–749 with 54–99 → 1854–1899; 500–999 with 00–39 → 2000–2039;
/// 900–999 with 40–99 → 1940–1999. Any other pair was never issued.
fn century(individual: u16, yy: i32) -> Option<i32> {
    match (individual, yy) {
        (0..=499, _) => Some(1900),
        (500..=749, 54..=99) => Some(1800),
        (500..=999, 0..=39) => Some(2000),
        (900..=999, 40..=99) => Some(1900),
        _ => None,
    }
}

impl fmt::Debug for Nin {
    /// Shows only the date part, so a `{:?}` in a log line does not leak the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.digits.get(..6).unwrap_or("");
        write!(f, "Nin({date}*****)")
    }
}

impl fmt::Display for Nin {
    /// The full number: use only where it is meant to be shown or stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl FromStr for Nin {
    type Err = NinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Nin::parse(s)
    }
}

impl TryFrom<String> for Nin {
    type Error = NinError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Nin::parse(&s)
    }
}

impl From<Nin> for String {
    fn from(nin: Nin) -> String {
        nin.digits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    /// Builds a number with correct check digits, or `None` if the first nine digits admit
    /// none (check digit 10).
    fn with_check_digits(first9: &str) -> Option<String> {
        let d: Vec<u8> = first9.bytes().map(|b| b - b'0').collect();
        let k1 = check_digit(&d, &WEIGHTS_K1)?;
        let mut d10 = d.clone();
        d10.push(k1);
        let k2 = check_digit(&d10, &WEIGHTS_K2)?;
        Some(format!("{first9}{k1}{k2}"))
    }

    /// The first number with this date and an individual number in `range` that has valid
    /// check digits.
    fn first_valid(ddmmyy: &str, range: std::ops::RangeInclusive<u16>) -> String {
        range
            .filter_map(|i| with_check_digits(&format!("{ddmmyy}{i:03}")))
            .next()
            .expect("some individual number in the range has valid check digits")
    }

    #[test]
    fn parses_fodselsnummer() {
        let nin = Nin::parse("15058500027").unwrap();
        assert_eq!(nin.as_str(), "15058500027");
        assert_eq!(nin.kind(), NinKind::Fodselsnummer);
        assert_eq!(nin.birth_date(), date!(1985 - 05 - 15));
    }

    #[test]
    fn trims_and_accepts_one_space_after_the_date() {
        for s in ["  15058500027\n", "150585 00027", "\t150585 00027 "] {
            assert_eq!(Nin::parse(s).unwrap().as_str(), "15058500027", "{s:?}");
        }
        // Other separators and other positions are not accepted.
        assert_eq!(
            Nin::parse("150585-00027"),
            Err(NinError::BadLength { len: 12 })
        );
        assert_eq!(
            Nin::parse("15058 500027"),
            Err(NinError::BadLength { len: 12 })
        );
        assert_eq!(
            Nin::parse("150585  00027"),
            Err(NinError::BadLength { len: 13 })
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(Nin::parse(""), Err(NinError::BadLength { len: 0 }));
        assert_eq!(Nin::parse("1505850002ø"), Err(NinError::NotDigits));
        // A multi-byte character at byte 6 must not panic the space handling.
        assert_eq!(Nin::parse("150585ø0027"), Err(NinError::NotDigits));
        assert_eq!(
            Nin::parse("15058ø00027x"),
            Err(NinError::BadLength { len: 12 })
        );
        // Non-ASCII digits are not digits here.
        assert_eq!(Nin::parse("1505850002٧"), Err(NinError::NotDigits));
    }

    #[test]
    fn check_digit_ten_is_invalid() {
        // Find nine digits whose first check digit would be 10: no number may start so.
        let first9 = (0..1000)
            .map(|i| format!("150585{i:03}"))
            .find(|s| {
                let d: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
                check_digit(&d, &WEIGHTS_K1).is_none()
            })
            .unwrap();
        for last2 in 0..100 {
            assert_eq!(
                Nin::parse(&format!("{first9}{last2:02}")),
                Err(NinError::BadCheckDigit1)
            );
        }
    }

    #[test]
    fn century_rules() {
        let year = |ddmmyy: &str, range| {
            Nin::parse(&first_valid(ddmmyy, range)).map(|n| n.birth_date().year())
        };
        assert_eq!(year("010199", 0..=499), Ok(1999));
        assert_eq!(year("010100", 0..=499), Ok(1900));
        assert_eq!(year("010154", 500..=749), Ok(1854));
        assert_eq!(year("010199", 500..=749), Ok(1899));
        assert_eq!(
            year("010153", 500..=749),
            Err(NinError::BadIndividualNumber)
        );
        assert_eq!(year("010100", 500..=999), Ok(2000));
        assert_eq!(year("010139", 500..=999), Ok(2039));
        assert_eq!(
            year("010140", 500..=899),
            Err(NinError::BadIndividualNumber)
        );
        assert_eq!(
            year("010154", 750..=899),
            Err(NinError::BadIndividualNumber)
        );
        assert_eq!(year("010140", 900..=999), Ok(1940));
        assert_eq!(year("010199", 900..=999), Ok(1999));
    }

    #[test]
    fn dates() {
        let parse = |ddmmyy: &str| Nin::parse(&first_valid(ddmmyy, 0..=499));
        assert_eq!(parse("000185"), Err(NinError::BadDate));
        assert_eq!(parse("320185"), Err(NinError::BadDate));
        assert_eq!(parse("400185"), Err(NinError::BadDate));
        assert_eq!(parse("720185"), Err(NinError::BadDate));
        assert_eq!(parse("010085"), Err(NinError::BadDate));
        assert_eq!(parse("011385"), Err(NinError::BadDate));
        assert_eq!(
            parse("290200"),
            Err(NinError::BadDate),
            "1900 was not a leap year"
        );
        assert_eq!(
            parse("290296").map(|n| n.birth_date()),
            Ok(date!(1996 - 02 - 29))
        );
        // 2000 is a leap year, 1900 is not: the century decides.
        assert_eq!(
            Nin::parse(&first_valid("290200", 500..=999)).map(|n| n.birth_date()),
            Ok(date!(2000 - 02 - 29))
        );
        // H-numbers (month + 40) are refused.
        assert_eq!(parse("014185"), Err(NinError::BadDate));
    }

    #[test]
    fn d_number() {
        let nin = Nin::parse(&first_valid("710185", 0..=499)).unwrap();
        assert_eq!(nin.kind(), NinKind::DNumber);
        assert_eq!(nin.birth_date(), date!(1985 - 01 - 31));
    }

    #[test]
    fn debug_masks_display_shows() {
        let nin = Nin::parse("15058500027").unwrap();
        assert_eq!(format!("{nin:?}"), "Nin(150585*****)");
        assert_eq!(format!("{:?}", Some(&nin)), "Some(Nin(150585*****))");
        assert_eq!(nin.to_string(), "15058500027");
    }

    #[test]
    fn serde_is_the_string_and_validates() {
        let nin = Nin::parse("15058500027").unwrap();
        assert_eq!(serde_json::to_string(&nin).unwrap(), "\"15058500027\"");
        assert_eq!(serde_json::from_str::<Nin>("\"15058500027\"").unwrap(), nin);
        let err = serde_json::from_str::<Nin>("\"15058500028\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("second check digit"), "{err}");
        assert!(
            !err.contains("15058500028"),
            "the error must not repeat the number: {err}"
        );
        assert!(serde_json::from_str::<Nin>("15058500027").is_err());
    }

    #[test]
    fn from_str() {
        let nin: Nin = "15058500027".parse().unwrap();
        assert_eq!(nin.as_str(), "15058500027");
        assert_eq!("x".parse::<Nin>(), Err(NinError::BadLength { len: 1 }));
    }

    #[test]
    fn age_around_a_birthday() {
        let nin = Nin::parse("15058500027").unwrap(); // 1985-05-15
        assert_eq!(nin.age_on(date!(2003 - 05 - 14)), 17);
        assert!(!nin.is_adult_on(date!(2003 - 05 - 14)));
        assert_eq!(nin.age_on(date!(2003 - 05 - 15)), 18);
        assert!(nin.is_adult_on(date!(2003 - 05 - 15)));
        assert_eq!(nin.age_on(date!(2003 - 12 - 31)), 18);
        assert_eq!(nin.age_on(date!(1985 - 05 - 15)), 0);
        assert_eq!(
            nin.age_on(date!(1985 - 05 - 14)),
            0,
            "before birth is 0, not a wrap-around"
        );
        assert_eq!(nin.age_on(date!(1900 - 01 - 01)), 0);
    }

    #[test]
    fn age_of_someone_born_on_29_february() {
        let nin = Nin::parse("29020450051").unwrap(); // 2004-02-29
        assert_eq!(nin.birth_date(), date!(2004 - 02 - 29));
        // 2022 is a common year: still 17 on 28 February, 18 on 1 March.
        assert_eq!(nin.age_on(date!(2022 - 02 - 28)), 17);
        assert!(!nin.is_adult_on(date!(2022 - 02 - 28)));
        assert_eq!(nin.age_on(date!(2022 - 03 - 01)), 18);
        assert!(nin.is_adult_on(date!(2022 - 03 - 01)));
        // In a leap year the birthday itself counts.
        assert_eq!(nin.age_on(date!(2024 - 02 - 28)), 19);
        assert_eq!(nin.age_on(date!(2024 - 02 - 29)), 20);
    }
}
