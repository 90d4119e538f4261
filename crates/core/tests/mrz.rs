//! The MRZ verifier through its public API: the ICAO 9303 specimens, Norwegian samples, one
//! wrong character in each checked field, bad shapes, dates, and the comparison with an
//! order. Check digits here come from an independent implementation of ICAO 9303 part 3,
//! 4.9, not from `segl_core`.

use proptest::prelude::*;
use segl_core::mrz::{Field, Format, Mrz, MrzError, MrzMismatch, Sex};
use time::Date;
use time::macros::date;

const TODAY: Date = date!(2025 - 06 - 01);

/// ICAO 9303 part 5 (TD1 specimen, Utopia), part 6 (TD2) and part 4 (TD3).
const TD1: [&str; 3] = [
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
];
const TD2: [&str; 2] = [
    "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
    "D231458907UTO7408122F1204159<<<<<<<6",
];
const TD3: [&str; 2] = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
];

/// Made for these tests (check digits computed with a separate script, and checked below):
/// a Norwegian passport whose personal number is a (fictitious) national identity number,
/// and a Norwegian identity card with a 13-character document number, which overflows into
/// the optional data.
const NOR_TD3: [&str; 2] = [
    "P<NORAAS<BJOERNSTAD<<KARI<OEYVOR<<<<<<<<<<<<",
    "FH23456787NOR8505154F310101215058500027<<<16",
];
const NOR_TD1: [&str; 3] = [
    "I<NORNO1234567<89011<<<<<<<<<<",
    "8505154F3101012NOR<<<<<<<<<<<6",
    "AAS<BJOERNSTAD<<KARI<OEYVOR<<<",
];

/// The check digit of ICAO 9303 part 3, 4.9, written from the standard's description.
fn cd(s: &str) -> char {
    let sum: u32 = s
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let value = match c {
                '0'..='9' => c as u32 - '0' as u32,
                'A'..='Z' => c as u32 - 'A' as u32 + 10,
                _ => 0,
            };
            value * [7, 3, 1][i % 3]
        })
        .sum();
    char::from_digit(sum % 10, 10).unwrap()
}

/// Characters `from..=to` (1-based, as ICAO counts) of a line.
fn at(line: &str, from: usize, to: usize) -> &str {
    &line[from - 1..to]
}

/// The character at 1-based position `pos`.
fn ch(line: &str, pos: usize) -> char {
    line.as_bytes()[pos - 1] as char
}

fn join(lines: &[&str]) -> String {
    lines.join("\n")
}

/// `s` padded with `<` to `len`.
fn pad(s: &str, len: usize) -> String {
    format!("{s:<<len$}")
}

#[test]
fn the_specimens_check_digits_are_right() {
    let [a, b, c] = TD1;
    assert_eq!((a.len(), b.len(), c.len()), (30, 30, 30));
    assert_eq!(cd(at(a, 6, 14)), ch(a, 15), "TD1 document number");
    assert_eq!(cd(at(b, 1, 6)), ch(b, 7), "TD1 birth date");
    assert_eq!(cd(at(b, 9, 14)), ch(b, 15), "TD1 expiry date");
    let composite = [at(a, 6, 30), at(b, 1, 7), at(b, 9, 15), at(b, 19, 29)].concat();
    assert_eq!(cd(&composite), ch(b, 30), "TD1 composite");

    for (name, [a, b], len) in [("TD2", TD2, 36), ("TD3", TD3, 44)] {
        assert_eq!((a.len(), b.len()), (len, len));
        assert_eq!(cd(at(b, 1, 9)), ch(b, 10), "{name} document number");
        assert_eq!(cd(at(b, 14, 19)), ch(b, 20), "{name} birth date");
        assert_eq!(cd(at(b, 22, 27)), ch(b, 28), "{name} expiry date");
        let composite = [at(b, 1, 10), at(b, 14, 20), at(b, 22, len - 1)].concat();
        assert_eq!(cd(&composite), ch(b, len), "{name} composite");
    }
    assert_eq!(
        cd(at(TD3[1], 29, 42)),
        ch(TD3[1], 43),
        "TD3 personal number"
    );

    // The Norwegian samples, by the same rules.
    let [a, b] = NOR_TD3;
    assert_eq!((a.len(), b.len()), (44, 44));
    assert_eq!(cd(at(b, 1, 9)), ch(b, 10));
    assert_eq!(cd(at(b, 14, 19)), ch(b, 20));
    assert_eq!(cd(at(b, 22, 27)), ch(b, 28));
    assert_eq!(cd(at(b, 29, 42)), ch(b, 43));
    let composite = [at(b, 1, 10), at(b, 14, 20), at(b, 22, 43)].concat();
    assert_eq!(cd(&composite), ch(b, 44));
    let [a, b, c] = NOR_TD1;
    assert_eq!((a.len(), b.len(), c.len()), (30, 30, 30));
    assert_eq!(
        ch(a, 15),
        '<',
        "a long number has < in place of its check digit"
    );
    assert_eq!(
        cd("NO12345678901"),
        ch(a, 20),
        "checked over the whole number"
    );
    let composite = [at(a, 6, 30), at(b, 1, 7), at(b, 9, 15), at(b, 19, 29)].concat();
    assert_eq!(cd(&composite), ch(b, 30));
}

#[test]
fn td1_specimen() {
    let mrz = Mrz::parse(&join(&TD1), TODAY).unwrap();
    assert_eq!(mrz.format(), Format::Td1);
    assert_eq!(mrz.document_code(), "I");
    assert_eq!(mrz.issuing_state(), "UTO");
    assert_eq!(mrz.document_number(), "D23145890");
    assert_eq!(mrz.birth_date(), date!(1974 - 08 - 12));
    assert_eq!(mrz.sex(), Sex::Female);
    assert_eq!(mrz.expiry_date(), date!(2012 - 04 - 15));
    assert_eq!(mrz.nationality(), "UTO");
    assert_eq!(mrz.surname(), "ERIKSSON");
    assert_eq!(mrz.given_names(), "ANNA MARIA");
    assert!(!mrz.name_may_be_truncated());
    assert_eq!(mrz.optional_data(), "");
    assert_eq!(mrz.optional_data_2(), "");
    assert_eq!(mrz.as_str(), join(&TD1));
}

#[test]
fn td2_specimen() {
    let mrz = Mrz::parse(&join(&TD2), TODAY).unwrap();
    assert_eq!(mrz.format(), Format::Td2);
    assert_eq!(mrz.document_code(), "I");
    assert_eq!(mrz.document_number(), "D23145890");
    assert_eq!(mrz.birth_date(), date!(1974 - 08 - 12));
    assert_eq!(mrz.expiry_date(), date!(2012 - 04 - 15));
    assert_eq!(
        (mrz.surname(), mrz.given_names()),
        ("ERIKSSON", "ANNA MARIA")
    );
    assert_eq!(mrz.optional_data(), "");
}

#[test]
fn td3_specimen() {
    let mrz = Mrz::parse(&join(&TD3), TODAY).unwrap();
    assert_eq!(mrz.format(), Format::Td3);
    assert_eq!(mrz.document_code(), "P");
    assert_eq!(mrz.issuing_state(), "UTO");
    assert_eq!(mrz.document_number(), "L898902C3");
    assert_eq!(mrz.nationality(), "UTO");
    assert_eq!(mrz.birth_date(), date!(1974 - 08 - 12));
    assert_eq!(mrz.sex(), Sex::Female);
    assert_eq!(mrz.expiry_date(), date!(2012 - 04 - 15));
    assert_eq!(mrz.optional_data(), "ZE184226B");
    assert_eq!(
        (mrz.surname(), mrz.given_names()),
        ("ERIKSSON", "ANNA MARIA")
    );
}

#[test]
fn norwegian_samples() {
    let passport = Mrz::parse(&join(&NOR_TD3), TODAY).unwrap();
    assert_eq!(passport.issuing_state(), "NOR");
    assert_eq!(passport.surname(), "AAS BJOERNSTAD");
    assert_eq!(passport.given_names(), "KARI OEYVOR");
    assert_eq!(passport.document_number(), "FH2345678");
    assert_eq!(passport.birth_date(), date!(1985 - 05 - 15));
    assert_eq!(passport.expiry_date(), date!(2031 - 01 - 01));
    assert_eq!(passport.optional_data(), "15058500027");

    let card = Mrz::parse(&join(&NOR_TD1), TODAY).unwrap();
    assert_eq!(card.format(), Format::Td1);
    assert_eq!(card.document_number(), "NO12345678901");
    assert_eq!(card.optional_data(), "");
    assert_eq!(
        (card.surname(), card.given_names()),
        ("AAS BJOERNSTAD", "KARI OEYVOR")
    );

    let born = date!(1985 - 05 - 15);
    for mrz in [&passport, &card] {
        for name in [
            "Kari Øyvor Ås-Bjørnstad",
            "kari øyvor ås bjørnstad",
            "Ås-Bjørnstad, Kari Øyvor",
            "KARI ØYVOR ÅS-BJØRNSTAD",
            // Decomposed (NFD) input, as some keyboards send it (Ø has no decomposition).
            "Kari Øyvor A\u{30A}s-Bjørnstad",
        ] {
            assert_eq!(mrz.check_against(name, born, TODAY), Ok(()), "{name}");
        }
        // The MRZ has given names the order lacks, or another surname.
        assert_eq!(
            mrz.check_against("Kari Ås-Bjørnstad", born, TODAY),
            Err(MrzMismatch::NameMismatch)
        );
        assert_eq!(
            mrz.check_against("Kari Øyvor Bjørnstad", born, TODAY),
            Err(MrzMismatch::NameMismatch)
        );
        assert_eq!(
            mrz.check_against("Kari Øyvor Aas-Bjornstad", born, TODAY),
            Err(MrzMismatch::NameMismatch),
            "Ø is written OE, so O is another name"
        );
        // The order may have more given names (a middle name left out of the MRZ).
        assert_eq!(
            mrz.check_against("Kari Øyvor Marie Ås-Bjørnstad", born, TODAY),
            Ok(())
        );
    }
}

/// The text with the character at (line, position) changed by one in check-digit value,
/// which the 7-3-1 weights always catch (a change by 10 would not be caught: `A` is 10).
fn bumped(lines: &[&str], line: usize, pos: usize) -> String {
    let mut owned: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    let b = &mut owned[line - 1][pos - 1];
    *b = match *b {
        b'9' => b'8',
        b'Z' => b'Y',
        b'<' => b'1',
        other => other + 1,
    };
    let strings: Vec<String> = owned
        .into_iter()
        .map(|l| String::from_utf8(l).unwrap())
        .collect();
    strings.join("\n")
}

/// Every checked position of every sample, with the field its check digit names.
#[test]
fn one_wrong_character_names_its_field() {
    use Field::*;
    // (sample, line, first, last, field)
    let td1_line2 = [
        (2, 1, 7, BirthDate),
        (2, 9, 15, ExpiryDate),
        (2, 19, 30, Composite),
    ];
    // Line 1's optional data is checked by the composite only.
    let mut td1 = vec![(1, 6, 15, DocumentNumber), (1, 16, 30, Composite)];
    td1.extend(td1_line2);
    // Unless it holds the overflow of a long document number, ended by the `<` at 21.
    let mut nor_td1 = vec![
        (1, 6, 14, DocumentNumber),
        // `<` → `1` here makes `1` the check digit of the first nine characters, which it
        // happens to be: a short number with a valid check digit, caught by the composite.
        (1, 15, 15, Composite),
        (1, 16, 21, DocumentNumber),
        (1, 22, 30, Composite),
    ];
    nor_td1.extend(td1_line2);
    let td2 = vec![
        (2, 1, 10, DocumentNumber),
        (2, 14, 20, BirthDate),
        (2, 22, 28, ExpiryDate),
        (2, 29, 36, Composite),
    ];
    let td3 = vec![
        (2, 1, 10, DocumentNumber),
        (2, 14, 20, BirthDate),
        (2, 22, 28, ExpiryDate),
        (2, 29, 43, PersonalNumber),
        (2, 44, 44, Composite),
    ];
    let samples: Vec<(&[&str], Vec<_>)> = vec![
        (&TD1, td1),
        (&NOR_TD1, nor_td1),
        (&TD2, td2),
        (&TD3, td3.clone()),
        (&NOR_TD3, td3),
    ];
    let mut tried = 0;
    for (lines, cases) in samples {
        assert!(Mrz::parse(&join(lines), TODAY).is_ok());
        for (line, first, last, field) in cases {
            for pos in first..=last {
                let text = bumped(lines, line, pos);
                assert_eq!(
                    Mrz::parse(&text, TODAY),
                    Err(MrzError::CheckDigit { field }),
                    "line {line} position {pos} of\n{text}"
                );
                tried += 1;
            }
        }
    }
    assert_eq!(tried, 51 + 51 + 32 + 2 * 40);
}

#[test]
fn the_empty_personal_number_may_have_a_filler_check_digit() {
    let line2 = |personal_cd: char| {
        let head = format!("L898902C36UTO7408122F1204159{}", "<".repeat(14));
        let body = format!("{head}{personal_cd}");
        let composite = [at(&body, 1, 10), at(&body, 14, 20), at(&body, 22, 43)].concat();
        format!("{body}{}", cd(&composite))
    };
    for c in ['<', '0'] {
        let text = format!("{}\n{}", TD3[0], line2(c));
        assert_eq!(Mrz::parse(&text, TODAY).unwrap().optional_data(), "");
    }
    let text = format!("{}\n{}", TD3[0], line2('1'));
    assert_eq!(
        Mrz::parse(&text, TODAY),
        Err(MrzError::CheckDigit {
            field: Field::PersonalNumber
        })
    );
    // A `<` check digit after a personal number is wrong.
    let mut bad = TD3[1].to_string();
    bad.replace_range(42..43, "<");
    assert_eq!(
        Mrz::parse(&format!("{}\n{bad}", TD3[0]), TODAY),
        Err(MrzError::CheckDigit {
            field: Field::PersonalNumber
        })
    );
}

#[test]
fn a_long_document_number_needs_its_overflow() {
    // `<` as the check digit but no overflow in the optional data.
    let mut lines = TD1.map(String::from);
    lines[0].replace_range(14..15, "<");
    let text = lines.join("\n");
    assert_eq!(
        Mrz::parse(&text, TODAY),
        Err(MrzError::CheckDigit {
            field: Field::DocumentNumber
        })
    );
}

#[test]
fn wrong_shapes() {
    let [a, b] = TD3;
    assert_eq!(
        Mrz::parse(&format!("{a}\n{}", &b[..43]), TODAY),
        Err(MrzError::LineLength {
            line: 2,
            found: 43,
            expected: 44
        })
    );
    assert_eq!(
        Mrz::parse(&format!("{a}<\n{b}"), TODAY),
        Err(MrzError::LineLength {
            line: 1,
            found: 45,
            expected: 44
        })
    );
    assert_eq!(
        Mrz::parse(&format!("{}\n{}\n{}<", TD1[0], TD1[1], TD1[2]), TODAY),
        Err(MrzError::LineLength {
            line: 3,
            found: 31,
            expected: 30
        })
    );
    // A blank line between the two is a third line.
    assert_eq!(
        Mrz::parse(&format!("{a}\n\n{b}"), TODAY),
        Err(MrzError::LineLength {
            line: 1,
            found: 44,
            expected: 30
        })
    );
    assert_eq!(
        Mrz::parse(&format!("{a}\n{b}\n{b}\n{b}"), TODAY),
        Err(MrzError::LineCount { found: 4 })
    );
    assert_eq!(
        Mrz::parse(&format!("{a} {b}"), TODAY),
        Err(MrzError::LineCount { found: 1 })
    );
    assert_eq!(
        Mrz::parse(&format!("{a}\n{}-{}", &b[..10], &b[11..]), TODAY),
        Err(MrzError::BadCharacter {
            line: 2,
            position: 11,
            found: '-'
        })
    );
}

#[test]
fn unknown_document_codes() {
    let code = |lines: &[&str], code: &str| {
        let mut owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        owned[0].replace_range(0..2, code);
        Mrz::parse(&owned.join("\n"), TODAY)
    };
    // A visa, a passport code on an identity card, an identity card code on a passport line,
    // a digit as the second character.
    for (lines, c, format) in [
        (&TD3[..], "V<", Format::Td3),
        (&TD3[..], "I<", Format::Td3),
        (&TD1[..], "P<", Format::Td1),
        (&TD2[..], "V<", Format::Td2),
        (&TD1[..], "I1", Format::Td1),
    ] {
        assert_eq!(
            code(lines, c),
            Err(MrzError::UnknownDocumentCode {
                code: c.into(),
                format
            }),
            "{c}"
        );
    }
    assert_eq!(code(&TD3, "PN").unwrap().document_code(), "PN");
    assert_eq!(code(&TD1, "ID").unwrap().document_code(), "ID");
    assert_eq!(code(&TD1, "AC").unwrap().document_code(), "AC");
}

/// A TD3 with these fields and correct check digits (independent implementation).
fn td3(name: &str, number: &str, birth: &str, sex: char, expiry: &str, personal: &str) -> String {
    let line1 = pad(&format!("P<NOR{name}"), 44);
    let number = pad(number, 9);
    let personal = pad(personal, 14);
    let body = format!(
        "{number}{}NOR{birth}{}{sex}{expiry}{}{personal}{}",
        cd(&number),
        cd(birth),
        cd(expiry),
        cd(&personal)
    );
    let composite = [at(&body, 1, 10), at(&body, 14, 20), at(&body, 22, 43)].concat();
    format!("{line1}\n{body}{}", cd(&composite))
}

#[test]
fn fields_that_are_checked_but_wrong() {
    let ok = td3("NORDMANN<<KARI", "AB1234567", "850515", 'F', "310101", "");
    assert!(Mrz::parse(&ok, TODAY).is_ok());
    let bad_birth = Err(MrzError::BadDate {
        field: Field::BirthDate,
    });
    let bad_expiry = Err(MrzError::BadDate {
        field: Field::ExpiryDate,
    });
    for (text, expected) in [
        (
            td3("NORDMANN<<KARI", "AB1234567", "851315", 'F', "310101", ""),
            bad_birth.clone(),
        ),
        (
            td3("NORDMANN<<KARI", "AB1234567", "850230", 'F', "310101", ""),
            bad_birth.clone(),
        ),
        (
            td3("NORDMANN<<KARI", "AB1234567", "8505AA", 'F', "310101", ""),
            bad_birth,
        ),
        (
            td3("NORDMANN<<KARI", "AB1234567", "850515", 'F', "310132", ""),
            bad_expiry.clone(),
        ),
        (
            td3("NORDMANN<<KARI", "AB1234567", "850515", 'F', "290229", ""),
            bad_expiry,
        ),
        (
            td3("NORDMANN<<KARI", "AB1234567", "850515", 'Q', "310101", ""),
            Err(MrzError::BadSex { found: 'Q' }),
        ),
        (
            td3("NORDMANN<<KAR1", "AB1234567", "850515", 'F', "310101", ""),
            Err(MrzError::BadName),
        ),
        (
            td3("<<KARI", "AB1234567", "850515", 'F', "310101", ""),
            Err(MrzError::BadName),
        ),
        (
            td3("NORDMANN<<KARI", "<<<<<<<<<", "850515", 'F', "310101", ""),
            Err(MrzError::Missing {
                field: Field::DocumentNumber,
            }),
        ),
    ] {
        assert_eq!(Mrz::parse(&text, TODAY), expected, "{text}");
    }
    for sex in ['M', 'X', '<'] {
        let text = td3("NORDMANN<<KARI", "AB1234567", "850515", sex, "310101", "");
        let expected = match sex {
            'M' => Sex::Male,
            'X' => Sex::X,
            _ => Sex::Unspecified,
        };
        assert_eq!(Mrz::parse(&text, TODAY).unwrap().sex(), expected);
    }
    // Country codes are letters (Germany's is `D<<`).
    let text = td3("NORDMANN<<KARI", "AB1234567", "850515", 'F', "310101", "");
    let (line1, line2) = text.split_once('\n').unwrap();
    let german = format!(
        "{}\n{}",
        line1.replacen("P<NOR", "P<D<<", 1),
        line2.replacen("NOR", "D<<", 1)
    );
    let mrz = Mrz::parse(&german, TODAY).unwrap();
    assert_eq!((mrz.issuing_state(), mrz.nationality()), ("D", "D"));
    assert_eq!(
        Mrz::parse(&text.replacen("P<NOR", "P<N0R", 1), TODAY),
        Err(MrzError::BadCountryCode {
            field: Field::IssuingState
        })
    );
    assert_eq!(
        Mrz::parse(&text.replacen("P<NOR", "P<<<<", 1), TODAY),
        Err(MrzError::BadCountryCode {
            field: Field::IssuingState
        })
    );
}

#[test]
fn centuries_are_resolved_around_today() {
    let parse = |birth: &str, expiry: &str, today| {
        Mrz::parse(
            &td3("NORDMANN<<KARI", "AB1234567", birth, 'F', expiry, ""),
            today,
        )
        .map(|m| (m.birth_date(), m.expiry_date()))
    };
    // Born today is possible, tomorrow is a century ago.
    assert_eq!(
        parse("250601", "350601", TODAY),
        Ok((date!(2025 - 06 - 01), date!(2035 - 06 - 01)))
    );
    assert_eq!(
        parse("250602", "750531", TODAY),
        Ok((date!(1925 - 06 - 02), date!(2075 - 05 - 31)))
    );
    // 50 years back is in the window, 50 years ahead is not.
    assert_eq!(
        parse("000101", "750601", TODAY),
        Ok((date!(2000 - 01 - 01), date!(1975 - 06 - 01)))
    );
    // Near the turn of a century.
    assert_eq!(
        parse("991231", "050101", date!(2099 - 12 - 31)),
        Ok((date!(2099 - 12 - 31), date!(2105 - 01 - 01)))
    );
    assert_eq!(
        parse("991231", "950101", date!(2100 - 01 - 01)),
        Ok((date!(2099 - 12 - 31), date!(2095 - 01 - 01)))
    );
}

#[test]
fn comparing_with_the_order() {
    let specimen = Mrz::parse(&join(&TD3), TODAY).unwrap();
    let born = date!(1974 - 08 - 12);
    let before_expiry = date!(2010 - 01 - 01);
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", born, before_expiry),
        Ok(())
    );
    assert_eq!(
        specimen.check_against("Maria Anna Eriksson", born, before_expiry),
        Ok(()),
        "given names in any order"
    );
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", born, date!(2012 - 04 - 15)),
        Ok(()),
        "valid through its expiry date"
    );
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", born, date!(2012 - 04 - 16)),
        Err(MrzMismatch::Expired {
            on: date!(2012 - 04 - 15)
        })
    );
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", born, TODAY),
        Err(MrzMismatch::Expired {
            on: date!(2012 - 04 - 15)
        })
    );
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", date!(1974 - 08 - 13), before_expiry),
        Err(MrzMismatch::BirthDateMismatch)
    );
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", date!(1975 - 08 - 12), before_expiry),
        Err(MrzMismatch::BirthDateMismatch)
    );
    // Over 100: the MRZ holds only two digits of the year.
    assert_eq!(
        specimen.check_against("Anna Maria Eriksson", date!(1874 - 08 - 12), before_expiry),
        Ok(())
    );
    for wrong in [
        "Anna Eriksson",
        "Anna Maria Eriksen",
        "Anna Maria Eriksson Berg",
        "Eriksson Anna Maria",
        "Anna, Maria Eriksson",
        "Eriksson",
        "",
        "Anna Maria",
    ] {
        assert_eq!(
            specimen.check_against(wrong, born, before_expiry),
            Err(MrzMismatch::NameMismatch),
            "{wrong}"
        );
    }
}

#[test]
fn names_in_icao_spelling() {
    let born = date!(1985 - 05 - 15);
    let check = |mrz_name: &str, order: &str| {
        Mrz::parse(
            &td3(mrz_name, "AB1234567", "850515", 'F', "310101", ""),
            TODAY,
        )
        .unwrap()
        .check_against(order, born, TODAY)
    };
    assert_eq!(check("OBRIEN<<SEAN", "Seán O'Brien"), Ok(()));
    assert_eq!(
        check("MUELLER<LUEDENSCHEID<<JOSE", "José Müller-Lüdenscheid"),
        Ok(())
    );
    assert_eq!(check("MULLER<<JOSE", "José Müller"), Ok(()));
    assert_eq!(check("STRAUSS<<THORA", "Þóra Strauß"), Ok(()));
    assert_eq!(check("HAEKKINEN<<SOEREN", "Sören Häkkinen"), Ok(()));
    assert_eq!(check("VON<DER<LINDEN<<ANNA", "Anna von der Linden"), Ok(()));
    assert_eq!(
        check("VON<DER<LINDEN<<ANNA", "von der Linden, Anna"),
        Ok(())
    );
    assert_eq!(check("NORDMANN<<KARI", "Kari Nordmann"), Ok(()));
    assert_eq!(check("NORDMANN<<KARI", "KARI   nordmann "), Ok(()));
    // A surname alone (some people have one name).
    assert_eq!(check("NORDMANN", "Nordmann"), Ok(()));
    assert_eq!(check("NORDMANN", "Kari Nordmann"), Ok(()));
    assert_eq!(
        check("NORDMANN<<KARI", "Kari Nordman"),
        Err(MrzMismatch::NameMismatch)
    );
    assert_eq!(
        check("NORDMANN<<KARI", "李 Nordmann"),
        Err(MrzMismatch::NameMismatch)
    );
}

#[test]
fn truncated_names() {
    let born = date!(1985 - 05 - 15);
    // TD3's name field has 39 characters; each of these fills it to the last one.
    let check = |mrz_name: &str, order: &str| {
        assert_eq!(mrz_name.len(), 39, "{mrz_name}");
        let mrz = Mrz::parse(
            &td3(mrz_name, "AB1234567", "850515", 'F', "310101", ""),
            TODAY,
        )
        .unwrap();
        assert!(mrz.name_may_be_truncated());
        mrz.check_against(order, born, TODAY)
    };
    let cut = "BJOERNSTAD<<KARI<OEYVOR<MARGRETHE<SOLVE";
    assert_eq!(check(cut, "Kari Øyvor Margrethe Solveig Bjørnstad"), Ok(()));
    assert_eq!(
        check(cut, "Kari Øyvor Margrethe Sølvi Bjørnstad"),
        Err(MrzMismatch::NameMismatch)
    );
    // Cut inside the OE of Ø.
    let cut = "BJOERNSTAD<<KARIN<MARGRETHE<SOLVEIG<BJO";
    assert_eq!(
        check(cut, "Karin Margrethe Solveig Bjørg Bjørnstad"),
        Ok(())
    );
    assert_eq!(
        check(cut, "Karin Margrethe Solveig Berit Bjørnstad"),
        Err(MrzMismatch::NameMismatch)
    );
    let cut = "BJOERNSTAD<<KARI<OEYVOR<MARGRETHE<SOELV";
    assert_eq!(check(cut, "Kari Øyvor Margrethe Sølvi Bjørnstad"), Ok(()));
    assert_eq!(
        check(cut, "Kari Øyvor Margrethe Bjørnstad"),
        Err(MrzMismatch::NameMismatch)
    );
    // Only the last word may be a prefix.
    let cut = "BJOERNSTAD<<KA<OEYVOR<MARGRETHE<SOELVIE";
    assert_eq!(
        check(cut, "Kari Øyvor Margrethe Sølvie Bjørnstad"),
        Err(MrzMismatch::NameMismatch)
    );
    // A surname that fills the whole field.
    let cut = "WOLFESCHLEGELSTEINHAUSENBERGERDORFFWELC";
    assert_eq!(
        check(
            cut,
            "Hubert Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengwissenhaft"
        ),
        Ok(())
    );
    // Without truncation, a prefix is not enough.
    let mrz = Mrz::parse(
        &td3(
            "BJOERNSTAD<<KARI<OEY",
            "AB1234567",
            "850515",
            'F',
            "310101",
            "",
        ),
        TODAY,
    )
    .unwrap();
    assert!(!mrz.name_may_be_truncated());
    assert_eq!(
        mrz.check_against("Kari Øyvor Bjørnstad", born, TODAY),
        Err(MrzMismatch::NameMismatch)
    );
}

/// A valid MRZ of any format from generated fields, with the values parsing must give back.
#[derive(Debug, Clone)]
struct Generated {
    text: String,
    format: Format,
    code: String,
    state: String,
    surname: Vec<String>,
    given: Vec<String>,
    number: String,
    nationality: String,
    birth: Date,
    sex: char,
    expiry: Date,
    optional: String,
    today: Date,
}

fn yymmdd(d: Date) -> String {
    format!(
        "{:02}{:02}{:02}",
        d.year().rem_euclid(100),
        u8::from(d.month()),
        d.day()
    )
}

fn build(g: &Generated) -> String {
    let name = format!("{}<<{}", g.surname.join("<"), g.given.join("<"));
    let (birth, expiry) = (yymmdd(g.birth), yymmdd(g.expiry));
    let state = pad(&g.state, 3);
    let nationality = pad(&g.nationality, 3);
    let sex = g.sex;
    match g.format {
        Format::Td1 => {
            let (number, optional) = if g.number.len() > 9 {
                let (head, tail) = g.number.split_at(9);
                (
                    format!("{head}<"),
                    format!("{tail}{}<{}", cd(&g.number), g.optional),
                )
            } else {
                let number = pad(&g.number, 9);
                let check = cd(&number);
                (format!("{number}{check}"), g.optional.clone())
            };
            let l1 = pad(&format!("{}{state}{number}{optional}", g.code), 30);
            let body = format!(
                "{birth}{}{sex}{expiry}{}{nationality}{}",
                cd(&birth),
                cd(&expiry),
                "<".repeat(11)
            );
            let composite = [
                at(&l1, 6, 30),
                at(&body, 1, 7),
                at(&body, 9, 15),
                at(&body, 19, 29),
            ]
            .concat();
            let l3 = pad(&name, 30);
            format!("{l1}\n{body}{}\n{l3}", cd(&composite))
        }
        _ => {
            let len = if g.format == Format::Td2 { 36 } else { 44 };
            let l1 = pad(&format!("{}{state}{name}", g.code), len);
            let (number, optional) = if g.number.len() > 9 {
                let (head, tail) = g.number.split_at(9);
                (format!("{head}<"), format!("{tail}{}<", cd(&g.number)))
            } else {
                let number = pad(&g.number, 9);
                let check = cd(&number);
                (format!("{number}{check}"), g.optional.clone())
            };
            let optional = if g.format == Format::Td2 {
                pad(&optional, 7)
            } else {
                let personal = pad(&optional, 14);
                format!("{personal}{}", cd(&personal))
            };
            let body = format!(
                "{number}{nationality}{birth}{}{sex}{expiry}{}{optional}",
                cd(&birth),
                cd(&expiry)
            );
            let composite = [at(&body, 1, 10), at(&body, 14, 20), at(&body, 22, len - 1)].concat();
            format!("{l1}\n{body}{}", cd(&composite))
        }
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    let words = |n| prop::collection::vec("[A-Z]{1,6}", n);
    (
        (
            0usize..3,
            "[A-Z<]",
            "[A-Z]{1,3}",
            "[A-Z]{1,3}",
            words(1..=2),
            words(0..=2),
        ),
        (
            any::<bool>(),
            "[A-Z0-9]{1,9}",
            "[A-Z0-9]{10,14}",
            "[A-Z0-9]{0,5}",
        ),
        (
            prop::sample::select(vec!['M', 'F', 'X', '<']),
            // Today between 1990 and 2080, birth up to ~98 years before, expiry within ~49
            // years either side.
            2_447_893i32..2_480_765,
            0i32..36_000,
            -18_000i32..18_000,
        ),
    )
        .prop_map(|(names, numbers, dates)| {
            let (format, second, state, nationality, surname, given) = names;
            let (long, short_number, long_number, optional) = numbers;
            let (sex, today, birth_back, expiry_offset) = dates;
            let format = [Format::Td1, Format::Td2, Format::Td3][format];
            let first = if format == Format::Td3 { 'P' } else { 'I' };
            let today = Date::from_julian_day(today).unwrap();
            let long = long && format != Format::Td3;
            let mut g = Generated {
                text: String::new(),
                format,
                code: format!("{first}{second}"),
                state,
                surname,
                given,
                number: if long { long_number } else { short_number },
                nationality,
                birth: Date::from_julian_day(today.to_julian_day() - birth_back).unwrap(),
                sex,
                expiry: Date::from_julian_day(today.to_julian_day() + expiry_offset).unwrap(),
                // A long TD2 number fills the optional data.
                optional: if long && format == Format::Td2 {
                    String::new()
                } else {
                    optional
                },
                today,
            };
            g.text = build(&g);
            g
        })
}

proptest! {
    #[test]
    fn generated_mrzs_parse_and_round_trip(g in generated()) {
        let mrz = Mrz::parse(&g.text, g.today).map_err(|e| TestCaseError::fail(format!("{e}\n{}", g.text)))?;
        prop_assert_eq!(mrz.format(), g.format);
        prop_assert_eq!(mrz.document_code(), g.code.trim_end_matches('<'));
        prop_assert_eq!(mrz.issuing_state(), &g.state);
        prop_assert_eq!(mrz.surname(), g.surname.join(" "));
        prop_assert_eq!(mrz.given_names(), g.given.join(" "));
        prop_assert_eq!(mrz.document_number(), &g.number);
        prop_assert_eq!(mrz.nationality(), &g.nationality);
        prop_assert_eq!(mrz.birth_date(), g.birth);
        prop_assert_eq!(mrz.expiry_date(), g.expiry);
        prop_assert_eq!(mrz.optional_data(), &g.optional);
        let sex = match g.sex { 'M' => Sex::Male, 'F' => Sex::Female, 'X' => Sex::X, _ => Sex::Unspecified };
        prop_assert_eq!(mrz.sex(), sex);
        prop_assert_eq!(mrz.as_str(), &g.text);
        prop_assert_eq!(Mrz::parse(mrz.as_str(), g.today), Ok(mrz.clone()));
        // The MRZ's own name, birth date and a day before expiry match.
        let name = format!("{} {}", g.given.join(" "), g.surname.join(" "));
        prop_assert_eq!(mrz.check_against(&name, g.birth, g.expiry), Ok(()));
        prop_assert_eq!(mrz.check_against(&name, g.birth, g.expiry.next_day().unwrap()),
            Err(MrzMismatch::Expired { on: g.expiry }));
        // Lowercase and CRLF are the same MRZ.
        let pasted = format!(" {} \r\n", g.text.to_lowercase().replace('\n', "\r\n"));
        prop_assert_eq!(Mrz::parse(&pasted, g.today), Ok(mrz));
    }

    #[test]
    fn any_changed_digit_is_caught(g in generated(), pick in any::<prop::sample::Index>(), delta in 1u8..10) {
        let digits: Vec<usize> = g.text.bytes().enumerate()
            .filter(|(_, b)| b.is_ascii_digit()).map(|(i, _)| i).collect();
        let i = digits[pick.index(digits.len())];
        let mut bytes = g.text.clone().into_bytes();
        bytes[i] = b'0' + (bytes[i] - b'0' + delta) % 10;
        let wrong = String::from_utf8(bytes).unwrap();
        prop_assert!(Mrz::parse(&wrong, g.today).is_err(), "{} was accepted", wrong);
    }

    #[test]
    fn parse_never_panics(s in "[A-Za-z0-9<\n ]{0,100}|\\PC{0,100}") {
        if let Ok(mrz) = Mrz::parse(&s, date!(2025 - 06 - 01)) {
            prop_assert_eq!(Mrz::parse(mrz.as_str(), date!(2025 - 06 - 01)), Ok(mrz));
        }
    }

    #[test]
    fn check_against_never_panics(name in "\\PC{0,60}") {
        let mrz = Mrz::parse(&join(&NOR_TD3), TODAY).unwrap();
        let _ = mrz.check_against(&name, date!(1985 - 05 - 15), TODAY);
    }
}
