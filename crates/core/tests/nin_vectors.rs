//! Runs every vector of `data/nin_vectors.json` (copied from `/work/shared/testdata`; its
//! `source` field says how the numbers were made) through `Nin::parse`.

use segl_core::nin::{Nin, NinError, NinKind};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    source: String,
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
}

#[derive(Deserialize)]
struct Valid {
    nin: String,
    kind: String,
    birth_date: String,
}

#[derive(Deserialize)]
struct Invalid {
    nin: String,
    reason: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("data/nin_vectors.json"))
        .expect("the vector file is valid JSON")
}

/// The error a vector's free-text reason points at, where it is unambiguous.
fn expected_error(v: &Invalid) -> Option<NinError> {
    let r = v.reason.as_str();
    if r.starts_with("second check digit") {
        Some(NinError::BadCheckDigit2)
    } else if r.starts_with("first check digit") {
        Some(NinError::BadCheckDigit1)
    } else if let Some(n) = r.strip_suffix(" digits").and_then(|n| n.parse().ok()) {
        Some(NinError::BadLength { len: n })
    } else if r.starts_with("non-digit") {
        Some(NinError::NotDigits)
    } else if r.starts_with("individual number") {
        Some(NinError::BadIndividualNumber)
    } else if r.starts_with("no such date") || r.contains("non-leap year") {
        Some(NinError::BadDate)
    } else {
        None
    }
}

#[test]
fn the_file_names_its_source() {
    assert!(!vectors().source.trim().is_empty());
}

#[test]
fn valid_vectors() {
    let v = vectors();
    assert!(!v.valid.is_empty());
    for case in &v.valid {
        let nin = Nin::parse(&case.nin).unwrap_or_else(|e| panic!("{}: {e}", case.nin));
        assert_eq!(nin.as_str(), case.nin);
        let kind = match case.kind.as_str() {
            "fodselsnummer" => NinKind::Fodselsnummer,
            "d-number" => NinKind::DNumber,
            other => panic!("unknown kind {other:?} in the vector file"),
        };
        assert_eq!(nin.kind(), kind, "{}", case.nin);
        assert_eq!(
            nin.birth_date().to_string(),
            case.birth_date,
            "{}",
            case.nin
        );
    }
}

#[test]
fn invalid_vectors() {
    let v = vectors();
    assert!(!v.invalid.is_empty());
    let mut specific = 0;
    for case in &v.invalid {
        let got = Nin::parse(&case.nin);
        match expected_error(case) {
            Some(want) => {
                assert_eq!(got, Err(want), "{} ({})", case.nin, case.reason);
                specific += 1;
            }
            None => assert!(got.is_err(), "{} ({}) was accepted", case.nin, case.reason),
        }
    }
    // A vague reason only has to fail; make sure the mapping still recognises most.
    assert!(
        specific * 2 > v.invalid.len(),
        "only {specific} reasons recognised"
    );
}
