//! Property tests: arbitrary input never panics, and numbers built by an independent
//! implementation of the rules are accepted (and any single wrong digit refused).

use proptest::prelude::*;
use segl_core::app::{MobileNumber, VerificationStyle, WORDS, verification_code};
use segl_core::nin::{Nin, NinKind};

/// Mod-11 check digit with the given weights, written from Skatteetaten's description;
/// None where the remainder makes the number impossible.
fn mod11(digits: &[u8], weights: &[u8]) -> Option<u8> {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(d, w)| u32::from(*d) * u32::from(*w))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k as u8),
    }
}

/// A valid number for the date, individual number and kind, or None when no check digit fits.
fn build(day: u8, month: u8, year: i32, individual: u16, d_number: bool) -> Option<String> {
    let dd = if d_number { day + 40 } else { day };
    let yy = (year % 100) as u8;
    let mut d = vec![
        dd / 10,
        dd % 10,
        month / 10,
        month % 10,
        yy / 10,
        yy % 10,
        (individual / 100) as u8,
        (individual / 10 % 10) as u8,
        (individual % 10) as u8,
    ];
    d.push(mod11(&d, &[3, 7, 6, 1, 8, 9, 4, 5, 2])?);
    d.push(mod11(&d, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2])?);
    Some(d.iter().map(|x| char::from(b'0' + x)).collect())
}

fn days_in(month: u8, year: i32) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

proptest! {
    #[test]
    fn nin_parse_never_panics(s in "\\PC{0,20}") {
        if let Ok(n) = Nin::parse(&s) {
            prop_assert_eq!(n.as_str().len(), 11);
            prop_assert!(n.as_str().bytes().all(|b| b.is_ascii_digit()));
            prop_assert_eq!(Nin::parse(n.as_str()).unwrap(), n);
        }
    }

    #[test]
    fn nin_digit_strings_never_panic(s in "[0-9]{11}") {
        let _ = Nin::parse(&s);
    }

    #[test]
    fn built_numbers_are_accepted_and_a_wrong_digit_is_not(
        year in 1900i32..=2039,
        month in 1u8..=12,
        day_seed in 0u8..31,
        ind_seed in 0u16..500,
        d_number: bool,
        pos in 0usize..11,
        delta in 1u8..10,
    ) {
        let day = day_seed % days_in(month, year) + 1;
        // 1900-1999: individual numbers 000-499; 2000-2039: 500-999.
        let individual = if year >= 2000 { 500 + ind_seed } else { ind_seed };
        let built = build(day, month, year, individual, d_number);
        prop_assume!(built.is_some());
        let s = built.unwrap();
        let n = Nin::parse(&s).unwrap();
        prop_assert_eq!(n.birth_date().year(), year);
        prop_assert_eq!(u8::from(n.birth_date().month()), month);
        prop_assert_eq!(n.birth_date().day(), day);
        let kind = if d_number { NinKind::DNumber } else { NinKind::Fodselsnummer };
        prop_assert_eq!(n.kind(), kind);

        // mod 11 with non-zero weights catches every single-digit substitution.
        let mut bytes = s.into_bytes();
        bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
        let wrong = String::from_utf8(bytes).unwrap();
        prop_assert!(Nin::parse(&wrong).is_err(), "{} was accepted", wrong);
    }

    #[test]
    fn mobile_parse_never_panics(s in "\\PC{0,24}") {
        if let Ok(m) = MobileNumber::parse(&s) {
            prop_assert!(m.as_str().starts_with("+47"));
            prop_assert_eq!(m.as_str().len(), 11);
        }
    }

    #[test]
    fn norwegian_mobiles_in_any_usual_form_normalise(
        first in prop::sample::select(vec!['4', '9']),
        rest in "[0-9]{7}",
        prefix in prop::sample::select(vec!["", "+47", "+47 ", "0047", "0047 "]),
        spaced: bool,
    ) {
        let national = format!("{first}{rest}");
        let body = if spaced {
            format!("{} {} {}", &national[..3], &national[3..5], &national[5..])
        } else {
            national.clone()
        };
        let m = MobileNumber::parse(&format!("{prefix}{body}")).unwrap();
        prop_assert_eq!(m.as_str(), format!("+47{national}"));
    }

    #[test]
    fn verification_codes_have_their_shape(random: [u8; 4]) {
        let words = verification_code(VerificationStyle::Words, random);
        let parts: Vec<&str> = words.split(' ').collect();
        prop_assert_eq!(parts.len(), 2);
        prop_assert!(parts[0] != parts[1]);
        prop_assert!(parts.iter().all(|w| WORDS.contains(w)));
        let digits = verification_code(VerificationStyle::Digits, random);
        prop_assert_eq!(digits.len(), 4);
        prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    }
}
