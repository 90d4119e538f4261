//! Machine-readable zones (ICAO 9303) of passports and identity cards: the built-in identity
//! verifier of an eID order.
//!
//! A person ordering an eID types or pastes the MRZ of their passport (TD3, 2 lines of 44)
//! or national identity card (TD1, 3 lines of 30; TD2, 2 lines of 36). [`Mrz::parse`] checks
//! the shape, every check digit (ICAO 9303 part 3, section 4.9) and every field, so holding
//! an [`Mrz`] means all of that has been verified. [`Mrz::check_against`] then compares the
//! document with the order: birth date, name (after ICAO transliteration of the order's
//! name) and expiry.
//!
//! Checks run in the order lines, characters, line lengths, document code, check digits,
//! field contents: a typing error inside a field is reported as that field's check digit,
//! the most useful hint for the person who typed it.
//!
//! The MRZ is personal data (name, birth date, document number): `Debug` shows only the
//! format, the document code and the issuing state, and no error repeats a field's value.
//! Time comes in as `today`: two-digit years are resolved against it.

use std::fmt;

use time::{Date, Month};

/// Why a text is not a valid MRZ. Messages are shown to the person who typed it.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MrzError {
    /// Not 2 (passport, TD2 card) or 3 (TD1 card) lines.
    #[error(
        "the machine-readable zone of a passport has 2 lines and that of an identity card 2 or 3, this has {found}"
    )]
    LineCount {
        /// Number of lines found (0 for an empty text).
        found: usize,
    },
    /// A line does not have the length of its format.
    #[error("line {line} of the machine-readable zone has {found} characters, expected {expected}")]
    LineLength {
        /// The line, counting from 1.
        line: usize,
        /// Number of characters found (after trimming surrounding whitespace).
        found: usize,
        /// Number of characters of a line in this format (30, 36 or 44).
        expected: usize,
    },
    /// A character other than `A`–`Z`, `0`–`9` and `<` (lowercase letters are accepted).
    #[error(
        "line {line}, position {position} of the machine-readable zone holds {found:?}; only the letters A-Z, the digits 0-9 and < are allowed"
    )]
    BadCharacter {
        /// The line, counting from 1.
        line: usize,
        /// The position in the line, counting from 1 (as ICAO 9303 counts).
        position: usize,
        /// The character found.
        found: char,
    },
    /// The first two characters are not a document code of this format (`P` for a
    /// passport, `I`, `A` or `C` for an identity card, then a letter or `<`).
    #[error(
        "{code:?} is not the code of a passport or identity card in a {format} machine-readable zone; a passport's starts with P (2 lines of 44), an identity card's with I, A or C (3 lines of 30 or 2 lines of 36)"
    )]
    UnknownDocumentCode {
        /// The first two characters.
        code: String,
        /// The format given by the number and length of the lines.
        format: Format,
    },
    /// A check digit does not match its field; most likely a typing error in the field.
    #[error(
        "the check digit of the {field} does not match; please check the {field} for a typing error"
    )]
    CheckDigit {
        /// The field whose check digit is wrong ([`Field::Composite`] for the last one).
        field: Field,
    },
    /// A date field is not a real date (YYMMDD): month 13, 30 February, a letter.
    #[error("the {field} in the machine-readable zone is not a real date (YYMMDD)")]
    BadDate {
        /// [`Field::BirthDate`] or [`Field::ExpiryDate`].
        field: Field,
    },
    /// The sex is not `M`, `F`, `X` or `<`.
    #[error("the sex in the machine-readable zone is {found:?}; it must be M, F, X or <")]
    BadSex {
        /// The character found.
        found: char,
    },
    /// The issuing state or nationality is not a country code (letters and `<`).
    #[error("the {field} in the machine-readable zone must be a country code of letters")]
    BadCountryCode {
        /// [`Field::IssuingState`] or [`Field::Nationality`].
        field: Field,
    },
    /// The name field is empty, starts with `<` or holds a digit.
    #[error(
        "the name in the machine-readable zone must start with the surname and hold only letters and <"
    )]
    BadName,
    /// A required field is empty (all `<`).
    #[error("the machine-readable zone has no {field}")]
    Missing {
        /// The empty field.
        field: Field,
    },
}

/// Why a valid MRZ does not fit the order. Each says what differs, never the values.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MrzMismatch {
    /// The document's expiry date is before today.
    #[error("the document expired on {on}; please use a valid passport or identity card")]
    Expired {
        /// The expiry date in the MRZ.
        on: Date,
    },
    /// The date of birth in the document differs from the order's.
    #[error("the date of birth in the document is not the date of birth in the order")]
    BirthDateMismatch,
    /// The name in the document does not match the order's name.
    #[error("the name in the document does not match the name in the order")]
    NameMismatch,
}

/// The three MRZ formats of ICAO 9303.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Identity cards: 3 lines of 30 (ICAO 9303 part 5).
    Td1,
    /// Identity cards: 2 lines of 36 (ICAO 9303 part 6).
    Td2,
    /// Passports: 2 lines of 44 (ICAO 9303 part 4).
    Td3,
}

impl Format {
    /// Characters in each line.
    pub fn line_len(self) -> usize {
        match self {
            Format::Td1 => 30,
            Format::Td2 => 36,
            Format::Td3 => 44,
        }
    }

    /// Whether `b` may start a document code of this format.
    fn accepts_code(self, b: u8) -> bool {
        match self {
            Format::Td1 | Format::Td2 => matches!(b, b'I' | b'A' | b'C'),
            Format::Td3 => b == b'P',
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Td1 => "TD1",
            Format::Td2 => "TD2",
            Format::Td3 => "TD3",
        })
    }
}

/// A field of the MRZ, as named in errors.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The document number (with a TD1/TD2 overflow into the optional data).
    DocumentNumber,
    /// The date of birth.
    BirthDate,
    /// The date of expiry.
    ExpiryDate,
    /// The personal number (optional data) of a passport, which has its own check digit.
    PersonalNumber,
    /// The last check digit, over the document number, dates and optional data.
    Composite,
    /// The issuing state or organisation.
    IssuingState,
    /// The holder's nationality.
    Nationality,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::DocumentNumber => "document number",
            Field::BirthDate => "date of birth",
            Field::ExpiryDate => "date of expiry",
            Field::PersonalNumber => "personal number",
            Field::Composite => "whole machine-readable zone (its last digit)",
            Field::IssuingState => "issuing state",
            Field::Nationality => "nationality",
        })
    }
}

/// The holder's sex as the MRZ gives it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// `F`.
    Female,
    /// `M`.
    Male,
    /// `X`: given as neither (ICAO 9303 allows `X` in the visual zone; some states print it
    /// in the MRZ too).
    X,
    /// `<`: not specified.
    Unspecified,
}

/// A validated MRZ. Only [`Mrz::parse`] builds one.
#[derive(Clone, PartialEq, Eq)]
pub struct Mrz {
    /// The normalised lines (uppercase, trimmed) joined by `\n`: what was verified, kept as
    /// the evidence of the identity check.
    text: String,
    /// TD1, TD2 or TD3, from the number and length of the lines.
    format: Format,
    /// `P`, `I`, `ID`, `PN`, …: the two characters with a trailing `<` removed.
    document_code: String,
    /// The issuing state or organisation (ISO 3166-1 alpha-3 or an ICAO code; `D` for
    /// Germany), fillers removed.
    issuing_state: String,
    /// The primary identifier, words separated by one space.
    surname: String,
    /// The secondary identifiers, words separated by one space; empty if none.
    given_names: String,
    /// Whether the name field ends with a letter in its last position, which is how ICAO
    /// 9303 marks a name cut to fit (the last word may then be a prefix).
    name_truncated: bool,
    /// The document number, overflow included, fillers removed.
    document_number: String,
    /// The holder's nationality, fillers removed.
    nationality: String,
    /// The date of birth, century resolved against `today` at parse time.
    birth_date: Date,
    /// The holder's sex.
    sex: Sex,
    /// The date of expiry, century resolved against `today` at parse time.
    expiry_date: Date,
    /// TD3: the personal number; TD2: the optional data; TD1: the optional data of line 1
    /// after any document number overflow. Fillers at both ends removed.
    optional_data: String,
    /// TD1: the optional data of line 2; empty for TD2 and TD3.
    optional_data_2: String,
}

impl Mrz {
    /// Parses and validates an MRZ as typed or pasted: lines separated by `\n` or `\r\n`,
    /// whitespace around the text and around each line trimmed, lowercase letters upcased.
    ///
    /// `today` resolves the two-digit years: the date of birth is the latest date with
    /// those digits not after `today`; the date of expiry the one within 50 years of it.
    pub fn parse(text: &str, today: Date) -> Result<Mrz, MrzError> {
        let lines = normalised_lines(text)?;
        let format = format_of(&lines)?;
        let first = &lines[0];
        if !(format.accepts_code(first[0]) && (first[1].is_ascii_uppercase() || first[1] == b'<')) {
            return Err(MrzError::UnknownDocumentCode {
                code: ascii(&first[..2]),
                format,
            });
        }
        let fields = match format {
            Format::Td1 => td1(&lines)?,
            Format::Td2 | Format::Td3 => td2_td3(&lines, format)?,
        };
        let (surname, given_names, name_truncated) = name(fields.name)?;
        let document_number = trim_filler(&fields.document_number);
        if document_number.is_empty() {
            return Err(MrzError::Missing {
                field: Field::DocumentNumber,
            });
        }
        Ok(Mrz {
            text: lines
                .iter()
                .map(|l| ascii(l))
                .collect::<Vec<_>>()
                .join("\n"),
            format,
            document_code: trim_filler(&first[..2]),
            issuing_state: country(&first[2..5], Field::IssuingState)?,
            surname,
            given_names,
            name_truncated,
            document_number,
            nationality: country(fields.nationality, Field::Nationality)?,
            birth_date: birth_date(fields.birth_date, today)?,
            sex: sex(fields.sex)?,
            expiry_date: expiry_date(fields.expiry_date, today)?,
            optional_data: trim_filler(fields.optional_data),
            optional_data_2: trim_filler(fields.optional_data_2),
        })
    }

    /// The normalised MRZ (uppercase lines joined by `\n`); parsed again with the same `today`
    /// it gives the same value.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// TD1, TD2 or TD3.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The document code without trailing filler: `P`, `I`, `ID`, `PN`, ….
    pub fn document_code(&self) -> &str {
        &self.document_code
    }

    /// The issuing state or organisation, e.g. `NOR` (`D` for Germany).
    pub fn issuing_state(&self) -> &str {
        &self.issuing_state
    }

    /// The surname (primary identifier), words separated by one space.
    pub fn surname(&self) -> &str {
        &self.surname
    }

    /// The given names (secondary identifiers), separated by one space; empty if none.
    pub fn given_names(&self) -> &str {
        &self.given_names
    }

    /// Whether the name fills its field to the last position, so its last word may have been
    /// cut short.
    pub fn name_may_be_truncated(&self) -> bool {
        self.name_truncated
    }

    /// The document number, including a TD1/TD2 overflow into the optional data.
    pub fn document_number(&self) -> &str {
        &self.document_number
    }

    /// The holder's nationality, e.g. `NOR`.
    pub fn nationality(&self) -> &str {
        &self.nationality
    }

    /// The date of birth.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// The holder's sex.
    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// The date of expiry; the document is valid through this day.
    pub fn expiry_date(&self) -> Date {
        self.expiry_date
    }

    /// TD3: the personal number (a Norwegian passport's holds the national identity number);
    /// TD2: the optional data; TD1: line 1's optional data after any document number overflow.
    pub fn optional_data(&self) -> &str {
        &self.optional_data
    }

    /// TD1: the optional data of line 2; empty for TD2 and TD3.
    pub fn optional_data_2(&self) -> &str {
        &self.optional_data_2
    }

    /// Whether the document has expired on `today` (it is valid through its expiry date).
    pub fn is_expired_on(&self, today: Date) -> bool {
        self.expiry_date < today
    }

    /// Compares the document with an eID order: not expired on `today`, the same date of
    /// birth, and a name that matches `name` (the order's full name, "Given Names Surname"
    /// or "Surname, Given Names").
    ///
    /// The name is compared word by word after ICAO 9303 transliteration of `name` (see
    /// [`transliterate`]; case, hyphens, commas and apostrophes as ICAO writes them): the
    /// MRZ surname must be the order's surname (its last words, or the words before a
    /// comma), and every given name in the MRZ must be one of the order's other words. The
    /// order may have more given names than the MRZ. When the MRZ name fills its field, its
    /// last word may be a prefix of the order's word (ICAO truncation).
    ///
    /// The birth date compares the day and the year modulo 100, which is all the MRZ holds:
    /// the century found by [`Mrz::parse`] is wrong for a person over 100.
    pub fn check_against(
        &self,
        name: &str,
        birth_date: Date,
        today: Date,
    ) -> Result<(), MrzMismatch> {
        if self.is_expired_on(today) {
            return Err(MrzMismatch::Expired {
                on: self.expiry_date,
            });
        }
        let ymd = |d: Date| (d.year().rem_euclid(100), d.month(), d.day());
        if ymd(self.birth_date) != ymd(birth_date) {
            return Err(MrzMismatch::BirthDateMismatch);
        }
        if !self.name_matches(name) {
            return Err(MrzMismatch::NameMismatch);
        }
        Ok(())
    }

    /// The name rule of [`Mrz::check_against`].
    fn name_matches(&self, order_name: &str) -> bool {
        let order = OrderName::parse(order_name);
        let surname: Vec<&[u8]> = self.surname.split(' ').map(str::as_bytes).collect();
        let given: Vec<&[u8]> = self
            .given_names
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::as_bytes)
            .collect();
        let words = &order.words;
        let k = surname.len();
        // Where the order's surname is, and which words may be given names.
        let (order_surname, pool) = match order.comma {
            Some(at) => words.split_at(at),
            None => match words.len().checked_sub(k) {
                Some(at) => {
                    let (pool, surname) = words.split_at(at);
                    (surname, pool)
                }
                None => return false,
            },
        };

        let surname_ok = if self.name_truncated && given.is_empty() {
            // The whole field is surname, cut at the end of the line: the MRZ has the first
            // words of the surname, the last one possibly cut short, and the order's surname
            // may have more words. Without a comma the start of the order's surname is not
            // known, so any run of the order's words may be it.
            match order.comma {
                Some(_) => order_surname
                    .get(..k)
                    .is_some_and(|run| words_match(&surname, run, true)),
                None => words.windows(k).any(|run| words_match(&surname, run, true)),
            }
        } else {
            words_match(&surname, order_surname, false)
        };
        if !surname_ok {
            return false;
        }
        let last = given.len().wrapping_sub(1);
        given.iter().enumerate().all(|(i, g)| {
            let prefix = self.name_truncated && i == last;
            pool.iter().any(|w| word_matches(w, g, prefix))
        })
    }
}

impl fmt::Debug for Mrz {
    /// Shows no personal data, so a `{:?}` in a log line cannot leak a name or a number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mrz")
            .field("format", &self.format)
            .field("document_code", &self.document_code)
            .field("issuing_state", &self.issuing_state)
            .finish_non_exhaustive()
    }
}

/// The order's name in ICAO 9303 transliteration, the recommended spelling of each character
/// (`Ø` → `OE`, `Å` → `AA`, `Ä` → `AE`, `é` → `E`, `ß` → `SS`), words separated by one space
/// (hyphens, commas and full stops separate words; apostrophes are left out). `None` if the
/// name has a character with no Latin transliteration (digits, other scripts).
///
/// [`Mrz::check_against`] also accepts ICAO's alternative spellings (`Å`, `Ä`, `Ö`, `Ü` as
/// the plain letter; `UXX`, `NXX`), which some states use.
pub fn transliterate(name: &str) -> Option<String> {
    let order = OrderName::parse(name);
    let mut out = Vec::with_capacity(order.words.len());
    for word in &order.words {
        out.push(
            word.as_ref()?
                .iter()
                .filter_map(|s| s.first())
                .copied()
                .collect::<String>(),
        );
    }
    Some(out.join(" "))
}

/// Fields of a TD1, TD2 or TD3 after the check digits were verified, as raw bytes.
struct RawFields<'a> {
    name: &'a [u8],
    /// With a TD1/TD2 overflow, the concatenation of both parts.
    document_number: Vec<u8>,
    nationality: &'a [u8],
    birth_date: &'a [u8],
    sex: u8,
    expiry_date: &'a [u8],
    optional_data: &'a [u8],
    optional_data_2: &'a [u8],
}

/// TD1 (ICAO 9303 part 5, 4.2.2): line 1 code, state, number, check, optional data; line 2
/// birth, check, sex, expiry, check, nationality, optional data, composite; line 3 name.
fn td1(lines: &[Vec<u8>]) -> Result<RawFields<'_>, MrzError> {
    let (l1, l2, l3) = (&lines[0], &lines[1], &lines[2]);
    let (document_number, optional_data) = document_number(&l1[5..14], l1[14], &l1[15..30])?;
    check(&l2[0..6], l2[6], Field::BirthDate)?;
    check(&l2[8..14], l2[14], Field::ExpiryDate)?;
    let composite = l1[5..30]
        .iter()
        .chain(&l2[0..7])
        .chain(&l2[8..15])
        .chain(&l2[18..29]);
    check(composite, l2[29], Field::Composite)?;
    Ok(RawFields {
        name: l3,
        document_number,
        nationality: &l2[15..18],
        birth_date: &l2[0..6],
        sex: l2[7],
        expiry_date: &l2[8..14],
        optional_data,
        optional_data_2: &l2[18..29],
    })
}

/// TD2 (part 6, 4.2.2) and TD3 (part 4, 4.2.2): line 1 code, state, name; line 2 number,
/// check, nationality, birth, check, sex, expiry, check, optional data (TD3: personal
/// number and its check), composite.
fn td2_td3(lines: &[Vec<u8>], format: Format) -> Result<RawFields<'_>, MrzError> {
    let (l1, l2) = (&lines[0], &lines[1]);
    let end = format.line_len() - 1;
    let (document_number, optional_data) = if format == Format::Td2 {
        document_number(&l2[0..9], l2[9], &l2[28..35])?
    } else {
        check(&l2[0..9], l2[9], Field::DocumentNumber)?;
        (l2[0..9].to_vec(), &l2[28..42])
    };
    check(&l2[13..19], l2[19], Field::BirthDate)?;
    check(&l2[21..27], l2[27], Field::ExpiryDate)?;
    if format == Format::Td3 {
        let personal = &l2[28..42];
        // An empty personal number may have `<` as its check digit (part 4, note on 29–42).
        if !(l2[42] == b'<' && personal.iter().all(|&b| b == b'<')) {
            check(personal, l2[42], Field::PersonalNumber)?;
        }
    }
    let composite = l2[0..10].iter().chain(&l2[13..20]).chain(&l2[21..end]);
    check(composite, l2[end], Field::Composite)?;
    Ok(RawFields {
        name: &l1[5..],
        document_number,
        nationality: &l2[10..13],
        birth_date: &l2[13..19],
        sex: l2[20],
        expiry_date: &l2[21..27],
        optional_data,
        optional_data_2: &[],
    })
}

/// A TD1 or TD2 document number and the optional data after it. A number longer than nine
/// characters has its first nine in the number field, `<` as its check digit, and the rest
/// followed by the check digit over the whole number at the start of the optional data,
/// ended by `<` (part 5, 4.2.4 note j; part 6, 4.2.2 note j).
fn document_number<'a>(
    number: &[u8],
    check_char: u8,
    optional: &'a [u8],
) -> Result<(Vec<u8>, &'a [u8]), MrzError> {
    if check_char != b'<' {
        check(number, check_char, Field::DocumentNumber)?;
        return Ok((number.to_vec(), optional));
    }
    let end = optional
        .iter()
        .position(|&b| b == b'<')
        .unwrap_or(optional.len());
    match optional[..end].split_last() {
        Some((&digit, rest)) if !rest.is_empty() => {
            check(number.iter().chain(rest), digit, Field::DocumentNumber)?;
            Ok(([number, rest].concat(), &optional[end..]))
        }
        _ => Err(MrzError::CheckDigit {
            field: Field::DocumentNumber,
        }),
    }
}

/// The lines of the text, trimmed and upcased, each checked for the MRZ alphabet.
fn normalised_lines(text: &str) -> Result<Vec<Vec<u8>>, MrzError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MrzError::LineCount { found: 0 });
    }
    let found = text.split('\n').count();
    if !(2..=3).contains(&found) {
        return Err(MrzError::LineCount { found });
    }
    let mut lines = Vec::with_capacity(found);
    for (i, line) in text.split('\n').enumerate() {
        let mut bytes = Vec::with_capacity(line.len());
        for (j, c) in line.trim().chars().enumerate() {
            let upper = c.to_ascii_uppercase();
            if !(upper.is_ascii_uppercase() || upper.is_ascii_digit() || upper == '<') {
                return Err(MrzError::BadCharacter {
                    line: i + 1,
                    position: j + 1,
                    found: c,
                });
            }
            // ASCII, checked just above.
            bytes.push(upper as u8);
        }
        lines.push(bytes);
    }
    Ok(lines)
}

/// The format from the number of lines and, for two lines, their lengths (a line of the
/// other two-line length counts as that format; otherwise the document code decides), with
/// each line's length checked.
fn format_of(lines: &[Vec<u8>]) -> Result<Format, MrzError> {
    let two_line = |len: usize| match len {
        36 => Some(Format::Td2),
        44 => Some(Format::Td3),
        _ => None,
    };
    let format = match lines {
        [_, _, _] => Format::Td1,
        [first, second] => two_line(first.len())
            .or_else(|| two_line(second.len()))
            .unwrap_or(if first.first() == Some(&b'P') {
                Format::Td3
            } else {
                Format::Td2
            }),
        _ => {
            return Err(MrzError::LineCount { found: lines.len() });
        }
    };
    let expected = format.line_len();
    for (i, line) in lines.iter().enumerate() {
        if line.len() != expected {
            return Err(MrzError::LineLength {
                line: i + 1,
                found: line.len(),
                expected,
            });
        }
    }
    Ok(format)
}

/// The ICAO 9303 check digit (part 3, 4.9): weights 7, 3, 1 repeated; `0`–`9` count as
/// themselves, `A`–`Z` as 10–35, `<` as 0; the sum modulo 10.
fn check_digit<'a>(chars: impl IntoIterator<Item = &'a u8>) -> u8 {
    let sum: u32 = chars
        .into_iter()
        .zip([7, 3, 1].iter().cycle())
        .map(|(&c, &w)| {
            let value = match c {
                b'0'..=b'9' => c - b'0',
                b'A'..=b'Z' => c - b'A' + 10,
                _ => 0,
            };
            u32::from(value) * w
        })
        .sum();
    b'0' + (sum % 10) as u8
}

/// Verifies `digit` (a character of the MRZ) as the check digit of `chars`.
fn check<'a>(
    chars: impl IntoIterator<Item = &'a u8>,
    digit: u8,
    field: Field,
) -> Result<(), MrzError> {
    if check_digit(chars) == digit {
        Ok(())
    } else {
        Err(MrzError::CheckDigit { field })
    }
}

/// The bytes (all ASCII, checked by [`normalised_lines`]) as a string.
fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The bytes without fillers at either end.
fn trim_filler(bytes: &[u8]) -> String {
    ascii(bytes).trim_matches('<').to_owned()
}

/// A country code: letters, padded with `<` (`D<<`).
fn country(code: &[u8], field: Field) -> Result<String, MrzError> {
    let trimmed = trim_filler(code);
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(MrzError::BadCountryCode { field });
    }
    Ok(trimmed)
}

/// `M`, `F`, `X` or `<`.
fn sex(b: u8) -> Result<Sex, MrzError> {
    match b {
        b'F' => Ok(Sex::Female),
        b'M' => Ok(Sex::Male),
        b'X' => Ok(Sex::X),
        b'<' => Ok(Sex::Unspecified),
        _ => Err(MrzError::BadSex {
            found: char::from(b),
        }),
    }
}

/// Surname, given names and whether the field is full (ICAO's mark of truncation). The
/// primary and secondary identifiers are separated by `<<`, words within them by `<`.
fn name(field: &[u8]) -> Result<(String, String, bool), MrzError> {
    if !field.first().is_some_and(u8::is_ascii_uppercase)
        || !field.iter().all(|&b| b.is_ascii_uppercase() || b == b'<')
    {
        return Err(MrzError::BadName);
    }
    let truncated = field.last().is_some_and(u8::is_ascii_uppercase);
    let text = ascii(field);
    let (primary, secondary) = text.split_once("<<").unwrap_or((&text, ""));
    let words = |s: &str| {
        s.split('<')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok((words(primary), words(secondary), truncated))
}

/// YYMMDD as numbers, or `BadDate` if not six digits.
fn yymmdd(b: &[u8], field: Field) -> Result<(i32, u8, u8), MrzError> {
    let bad = MrzError::BadDate { field };
    let &[y1, y2, m1, m2, d1, d2] = b else {
        return Err(bad);
    };
    let digits = [y1, y2, m1, m2, d1, d2];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let two = |a: u8, b: u8| (a - b'0') * 10 + (b - b'0');
    Ok((i32::from(two(y1, y2)), two(m1, m2), two(d1, d2)))
}

/// `today` as a (year, month, day) tuple, ordered like dates.
fn tuple(d: Date) -> (i32, u8, u8) {
    (d.year(), u8::from(d.month()), d.day())
}

/// The date, or `BadDate` if there is no such day.
fn make_date(year: i32, month: u8, day: u8, field: Field) -> Result<Date, MrzError> {
    let month = Month::try_from(month).map_err(|_| MrzError::BadDate { field })?;
    Date::from_calendar_date(year, month, day).map_err(|_| MrzError::BadDate { field })
}

/// The date of birth: the latest real date with these digits that is not after `today`
/// (nobody is born in the future; 29 February skips a century year that is not a leap year).
fn birth_date(b: &[u8], today: Date) -> Result<Date, MrzError> {
    let field = Field::BirthDate;
    let (yy, mm, dd) = yymmdd(b, field)?;
    let today = tuple(today);
    let mut year = today.0 - today.0.rem_euclid(100) + yy;
    if (year, mm, dd) > today {
        year -= 100;
    }
    make_date(year, mm, dd, field).or_else(|_| make_date(year - 100, mm, dd, field))
}

/// The date of expiry: the date with these digits in the window from 50 years before
/// `today` (inclusive) to 50 years after it (exclusive).
///
/// ICAO 9303 gives no century for the expiry date; readers use a sliding window around the
/// current date. A document is valid for at most about ten years, so any real expiry date
/// (recently expired or still valid) lies well inside ±50 years and is placed correctly,
/// while the half-open window of exactly 100 years holds exactly one date for each YYMMDD.
fn expiry_date(b: &[u8], today: Date) -> Result<Date, MrzError> {
    let field = Field::ExpiryDate;
    let (yy, mm, dd) = yymmdd(b, field)?;
    let (ty, tm, td) = tuple(today);
    let base = ty - ty.rem_euclid(100) + yy;
    let year = [base - 100, base, base + 100]
        .into_iter()
        .find(|&y| (ty - 50, tm, td) <= (y, mm, dd) && (y, mm, dd) < (ty + 50, tm, td))
        .ok_or(MrzError::BadDate { field })?;
    make_date(year, mm, dd, field)
}

/// How one character of the order's name is written in an MRZ.
enum Spelling {
    /// Left out: apostrophes, combining accents.
    Omit,
    /// Any of these, the ICAO-recommended one first.
    As(&'static [&'static str]),
    /// No Latin transliteration: the word cannot match.
    Unknown,
}

/// One word of the order's name: each character's spellings, or `None` if a character has
/// no transliteration.
type Word = Option<Vec<&'static [&'static str]>>;

/// The order's name split into words.
struct OrderName {
    words: Vec<Word>,
    /// With "Surname, Given Names": the number of words before the first comma.
    comma: Option<usize>,
}

impl OrderName {
    fn parse(name: &str) -> OrderName {
        let mut words = Vec::new();
        let mut comma = None;
        let mut current: Word = Some(Vec::new());
        let mut in_word = false;
        // The last character of the current word, for composing a following accent.
        let mut previous: Option<char> = None;
        for c in name.chars() {
            let separator = c.is_whitespace()
                || matches!(c, '-' | '‐' | '‑' | '‒' | '–' | '—' | ',' | '.' | '<' | '_');
            if separator {
                previous = None;
                if in_word {
                    words.push(current.replace(Vec::new()));
                    in_word = false;
                }
                if c == ',' && comma.is_none() {
                    comma = Some(words.len());
                }
                continue;
            }
            for upper in c.to_uppercase() {
                // A decomposed Å, Ä, Ö, Ü or Ñ (NFD input) is spelt as the composed letter.
                if let (Some(base), Some(units)) = (previous, current.as_mut())
                    && let Some(Spelling::As(s)) = compose(base, upper).map(spelling)
                {
                    units.pop();
                    units.push(s);
                    previous = None;
                    continue;
                }
                previous = Some(upper);
                match spelling(upper) {
                    Spelling::Omit => {}
                    Spelling::As(s) => {
                        in_word = true;
                        if let Some(units) = current.as_mut() {
                            units.push(s);
                        }
                    }
                    Spelling::Unknown => {
                        in_word = true;
                        current = None;
                    }
                }
            }
        }
        if in_word {
            words.push(current);
        }
        OrderName { words, comma }
    }
}

/// The composed letter of an uppercase base letter and a combining mark, where ICAO spells
/// the composed letter other than the base letter alone. Other accents are left out anyway;
/// Ø and Æ have no decomposition.
fn compose(base: char, mark: char) -> Option<char> {
    match (base, mark) {
        ('A', '\u{30A}') => Some('Å'),
        ('A', '\u{308}') => Some('Ä'),
        ('O', '\u{308}') => Some('Ö'),
        ('U', '\u{308}') => Some('Ü'),
        ('N', '\u{303}') => Some('Ñ'),
        _ => None,
    }
}

/// Whether the MRZ words are the order's words, one for one; with `last_prefix`, the last
/// MRZ word may be a prefix of its order word.
fn words_match(mrz: &[&[u8]], order: &[Word], last_prefix: bool) -> bool {
    mrz.len() == order.len()
        && mrz
            .iter()
            .zip(order)
            .enumerate()
            .all(|(i, (m, o))| word_matches(o, m, last_prefix && i + 1 == mrz.len()))
}

/// Whether some spelling of the order's word is the MRZ word (or, with `prefix`, starts
/// with it). A dynamic programme over positions in the MRZ word: `reach[j]` says the
/// characters seen so far can spell its first `j` letters.
fn word_matches(order: &Word, mrz: &[u8], prefix: bool) -> bool {
    let Some(units) = order else {
        return false;
    };
    let m = mrz.len();
    let mut reach = vec![false; m + 1];
    reach[0] = true;
    for spellings in units {
        let mut next = vec![false; m + 1];
        for j in (0..=m).filter(|&j| reach[j]) {
            let rest = &mrz[j..];
            for s in spellings.iter().map(|s| s.as_bytes()) {
                if rest.starts_with(s) {
                    next[j + s.len()] = true;
                } else if prefix && s.starts_with(rest) {
                    // The MRZ word ends here, inside or before this character's spelling.
                    return true;
                }
            }
        }
        reach = next;
    }
    reach[m]
}

/// ICAO 9303 part 3, section 6 (transliteration of multinational Latin-based characters),
/// for an uppercase character. Where ICAO allows two spellings (`Ä` as `AE` or `A`) both
/// are given, the recommended first.
fn spelling(c: char) -> Spelling {
    /// Each letter as itself.
    static LETTERS: [&str; 26] = [
        "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R",
        "S", "T", "U", "V", "W", "X", "Y", "Z",
    ];
    if c.is_ascii_uppercase() {
        // An ASCII uppercase letter: its byte minus `A` is 0 to 25.
        let index = usize::from(c as u8 - b'A');
        return Spelling::As(std::slice::from_ref(&LETTERS[index]));
    }
    match c {
        // Apostrophes (O'Brien → OBRIEN) and combining accents (a decomposed é).
        '\'' | '’' | '‘' | 'ʼ' | '`' | '´' | '\u{0300}'..='\u{036F}' => Spelling::Omit,
        'À' | 'Á' | 'Â' | 'Ã' | 'Ā' | 'Ă' | 'Ą' => Spelling::As(&["A"]),
        'Ä' => Spelling::As(&["AE", "A"]),
        'Å' => Spelling::As(&["AA", "A"]),
        'Æ' => Spelling::As(&["AE"]),
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => Spelling::As(&["C"]),
        'Ð' | 'Ď' | 'Đ' => Spelling::As(&["D"]),
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => Spelling::As(&["E"]),
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => Spelling::As(&["G"]),
        'Ĥ' | 'Ħ' => Spelling::As(&["H"]),
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => Spelling::As(&["I"]),
        'Ĳ' => Spelling::As(&["IJ"]),
        'Ĵ' => Spelling::As(&["J"]),
        'Ķ' => Spelling::As(&["K"]),
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => Spelling::As(&["L"]),
        'Ñ' => Spelling::As(&["N", "NXX"]),
        'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => Spelling::As(&["N"]),
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ō' | 'Ŏ' | 'Ő' => Spelling::As(&["O"]),
        'Ö' => Spelling::As(&["OE", "O"]),
        'Ø' | 'Œ' => Spelling::As(&["OE"]),
        'Ŕ' | 'Ŗ' | 'Ř' => Spelling::As(&["R"]),
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => Spelling::As(&["S"]),
        'ẞ' => Spelling::As(&["SS"]),
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => Spelling::As(&["T"]),
        'Þ' => Spelling::As(&["TH"]),
        'Ù' | 'Ú' | 'Û' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => Spelling::As(&["U"]),
        'Ü' => Spelling::As(&["UE", "UXX", "U"]),
        'Ŵ' => Spelling::As(&["W"]),
        'Ý' | 'Ŷ' | 'Ÿ' => Spelling::As(&["Y"]),
        'Ź' | 'Ż' | 'Ž' => Spelling::As(&["Z"]),
        _ => Spelling::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2025 - 06 - 01);

    /// ICAO 9303 part 4 appendix: the TD3 specimen.
    const TD3: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n\
                       L898902C36UTO7408122F1204159ZE184226B<<<<<10";

    #[test]
    fn check_digits_of_the_specimens() {
        assert_eq!(check_digit(b"L898902C3"), b'6');
        assert_eq!(check_digit(b"D23145890"), b'7');
        assert_eq!(check_digit(b"D23145890734"), b'9');
        assert_eq!(check_digit(b"740812"), b'2');
        assert_eq!(check_digit(b"120415"), b'9');
        assert_eq!(check_digit(b"ZE184226B<<<<<"), b'1');
        assert_eq!(check_digit(b"<<<<<<<<<<<<<<"), b'0');
        assert_eq!(check_digit(b""), b'0');
        // Worked example of part 3, 4.9: 520727 → 3.
        assert_eq!(check_digit(b"520727"), b'3');
    }

    #[test]
    fn normalises_what_is_pasted() {
        let pasted = "  p<utoeriksson<<anna<maria<<<<<<<<<<<<<<<<<<< \r\n\
                      \tL898902C36UTO7408122F1204159ZE184226B<<<<<10\r\n\n ";
        let mrz = Mrz::parse(pasted, TODAY).unwrap();
        assert_eq!(mrz.as_str(), TD3);
        assert_eq!(Mrz::parse(mrz.as_str(), TODAY).unwrap(), mrz);
    }

    #[test]
    fn line_count_and_format() {
        assert_eq!(
            Mrz::parse(" \n ", TODAY),
            Err(MrzError::LineCount { found: 0 })
        );
        assert_eq!(
            Mrz::parse("P<UTO", TODAY),
            Err(MrzError::LineCount { found: 1 })
        );
        assert_eq!(
            Mrz::parse("A\nB\nC\nD", TODAY),
            Err(MrzError::LineCount { found: 4 })
        );
        // Two short lines: a passport code expects 44, anything else 36; the second line's
        // length decides when the first has none of the two.
        assert_eq!(
            Mrz::parse("P<UTO\nL898", TODAY),
            Err(MrzError::LineLength {
                line: 1,
                found: 5,
                expected: 44
            })
        );
        assert_eq!(
            Mrz::parse("I<UTO\nL898", TODAY),
            Err(MrzError::LineLength {
                line: 1,
                found: 5,
                expected: 36
            })
        );
        let l2 = TD3.lines().nth(1).unwrap();
        assert_eq!(
            Mrz::parse(&format!("I<UTO\n{l2}"), TODAY),
            Err(MrzError::LineLength {
                line: 1,
                found: 5,
                expected: 44
            })
        );
    }

    #[test]
    fn characters_are_reported_where_they_are() {
        let with = |line: usize, pos: usize, c: char| {
            let mut lines: Vec<String> = TD3.lines().map(String::from).collect();
            let mut chars: Vec<char> = lines[line - 1].chars().collect();
            chars[pos - 1] = c;
            lines[line - 1] = chars.into_iter().collect();
            Mrz::parse(&lines.join("\n"), TODAY)
        };
        assert_eq!(
            with(1, 16, ' '),
            Err(MrzError::BadCharacter {
                line: 1,
                position: 16,
                found: ' '
            })
        );
        // Positions count characters, not bytes.
        assert_eq!(
            with(2, 44, 'ø'),
            Err(MrzError::BadCharacter {
                line: 2,
                position: 44,
                found: 'ø'
            })
        );
        assert_eq!(
            with(2, 1, '«'),
            Err(MrzError::BadCharacter {
                line: 2,
                position: 1,
                found: '«'
            })
        );
    }

    #[test]
    fn birth_century_is_the_latest_not_after_today() {
        let birth = |s: &str, today| birth_date(s.as_bytes(), today);
        assert_eq!(birth("250601", TODAY), Ok(date!(2025 - 06 - 01)));
        assert_eq!(birth("250602", TODAY), Ok(date!(1925 - 06 - 02)));
        assert_eq!(birth("000101", TODAY), Ok(date!(2000 - 01 - 01)));
        assert_eq!(birth("991231", TODAY), Ok(date!(1999 - 12 - 31)));
        // 2100 is not a leap year: the latest 29 February 2000 is taken.
        assert_eq!(
            birth("000229", date!(2100 - 03 - 01)),
            Ok(date!(2000 - 02 - 29))
        );
        let bad = Err(MrzError::BadDate {
            field: Field::BirthDate,
        });
        assert_eq!(birth("741312", TODAY), bad);
        assert_eq!(birth("740230", TODAY), bad);
        assert_eq!(birth("740800", TODAY), bad);
        assert_eq!(
            birth("010229", TODAY),
            bad,
            "2001 and 1901 are common years"
        );
        assert_eq!(birth("74O812", TODAY), bad);
        assert_eq!(birth("<<<<<<", TODAY), bad);
    }

    #[test]
    fn expiry_century_is_within_fifty_years() {
        let expiry = |s: &str| expiry_date(s.as_bytes(), TODAY);
        // The window is [1975-06-01, 2075-06-01).
        assert_eq!(expiry("750601"), Ok(date!(1975 - 06 - 01)));
        assert_eq!(expiry("750531"), Ok(date!(2075 - 05 - 31)));
        assert_eq!(expiry("120415"), Ok(date!(2012 - 04 - 15)));
        assert_eq!(expiry("350101"), Ok(date!(2035 - 01 - 01)));
        assert_eq!(expiry("991231"), Ok(date!(1999 - 12 - 31)));
        assert_eq!(
            expiry_date(b"010101", date!(2099 - 12 - 31)),
            Ok(date!(2101 - 01 - 01))
        );
        assert_eq!(
            expiry("270229"),
            Err(MrzError::BadDate {
                field: Field::ExpiryDate
            })
        );
    }

    #[test]
    fn name_field() {
        let name = |s: &str| name(s.as_bytes());
        assert_eq!(
            name("ERIKSSON<<ANNA<MARIA<<<<<<<<<<"),
            Ok(("ERIKSSON".into(), "ANNA MARIA".into(), false))
        );
        assert_eq!(
            name("VON<DER<LINDEN<<ANNA<<<<<<<<<<"),
            Ok(("VON DER LINDEN".into(), "ANNA".into(), false))
        );
        assert_eq!(
            name("ERIKSSON<<<<<<<<<<<<<<<<<<<<<<"),
            Ok(("ERIKSSON".into(), String::new(), false))
        );
        assert_eq!(
            name("BJOERNSTAD<<KARI<OEYVOR<MARGRE"),
            Ok(("BJOERNSTAD".into(), "KARI OEYVOR MARGRE".into(), true))
        );
        assert_eq!(
            name("<<ANNA<<<<<<<<<<<<<<<<<<<<<<<<"),
            Err(MrzError::BadName)
        );
        assert_eq!(
            name("ERIKSSON<<ANNA2<<<<<<<<<<<<<<<"),
            Err(MrzError::BadName)
        );
        assert_eq!(
            name("<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<"),
            Err(MrzError::BadName)
        );
    }

    #[test]
    fn transliteration() {
        let t = |s: &str| transliterate(s);
        assert_eq!(
            t("Øyvind Åsmund Ærø-Bjørnstad"),
            Some("OEYVIND AASMUND AEROE BJOERNSTAD".into())
        );
        assert_eq!(t("José Müller"), Some("JOSE MUELLER".into()));
        assert_eq!(t("Sören Häkkinen"), Some("SOEREN HAEKKINEN".into()));
        assert_eq!(t("Seán O'Brien"), Some("SEAN OBRIEN".into()));
        assert_eq!(t("Strauß, Þóra"), Some("STRAUSS THORA".into()));
        assert_eq!(t("Łukasz Wałęsa"), Some("LUKASZ WALESA".into()));
        // A decomposed é (e + combining acute) is the same as the composed one.
        assert_eq!(t("Rene\u{301}e  "), Some("RENEE".into()));
        // A decomposed Å or ü is spelt as the composed letter.
        assert_eq!(t("A\u{30A}sa Mu\u{308}ller"), Some("AASA MUELLER".into()));
        assert_eq!(t("a\u{30A}\u{30A}"), Some("AA".into()));
        assert_eq!(t("  "), Some(String::new()));
        assert_eq!(t("李 小龙"), None);
        assert_eq!(t("Kari 2"), None);
    }

    #[test]
    fn word_matching_allows_the_icao_alternatives_and_truncation() {
        let word = |s: &str| OrderName::parse(s).words.remove(0);
        let matches =
            |order: &str, mrz: &str, prefix| word_matches(&word(order), mrz.as_bytes(), prefix);
        assert!(matches("Müller", "MUELLER", false));
        assert!(matches("Müller", "MULLER", false));
        assert!(matches("Müller", "MUXXLLER", false));
        assert!(matches("Åsa", "AASA", false));
        assert!(matches("Åsa", "ASA", false));
        assert!(matches("Peña", "PENXXA", false));
        assert!(!matches("Bjørn", "BJORN", false), "Ø is only OE");
        assert!(!matches("Bjørn", "BJOERNE", false));
        assert!(!matches("Bjørn", "BJOER", false));
        // Truncation may cut inside a transliteration.
        assert!(matches("Bjørn", "BJOER", true));
        assert!(matches("Bjørn", "BJO", true));
        assert!(matches("Bjørn", "BJOERN", true));
        assert!(!matches("Bjørn", "BJOERNE", true));
        assert!(!matches("Bjørn", "BJA", true));
        // A word with a character that has no transliteration matches nothing.
        assert!(!matches("Bjørn李", "BJOERN", true));
    }

    #[test]
    fn debug_shows_no_personal_data() {
        let mrz = Mrz::parse(TD3, TODAY).unwrap();
        let debug = format!("{mrz:?}");
        assert_eq!(
            debug,
            r#"Mrz { format: Td3, document_code: "P", issuing_state: "UTO", .. }"#
        );
    }

    #[test]
    fn messages_name_the_field() {
        let err = MrzError::CheckDigit {
            field: Field::BirthDate,
        };
        assert_eq!(
            err.to_string(),
            "the check digit of the date of birth does not match; please check the date of birth for a typing error"
        );
        let err = MrzError::LineLength {
            line: 2,
            found: 43,
            expected: 44,
        };
        assert_eq!(
            err.to_string(),
            "line 2 of the machine-readable zone has 43 characters, expected 44"
        );
        assert_eq!(
            MrzMismatch::Expired {
                on: date!(2012 - 04 - 15)
            }
            .to_string(),
            "the document expired on 2012-04-15; please use a valid passport or identity card"
        );
    }
}
