//! Identity verification of an eID order, behind one trait so that an issuer can plug in
//! its own (a population-register look-up, a document chip read with passive and active
//! authentication, a video check). Built in:
//!
//! - [`MrzVerifier`]: the machine-readable zone of a passport or national ID card (ICAO
//!   9303), every check digit, the name, birth date, a Norwegian passport's personal number
//!   and the expiry compared with the order (rules in `segl_core::mrz`);
//! - [`ManualReview`]: the person shows the document to support; the order waits in the
//!   review queue (`segl order review`).
//!
//! A verifier answers bad evidence (an MRZ that does not parse) with an error, which
//! refuses the order and stores nothing; and evidence that does not fit the order with a
//! [`Verdict::Mismatch`], which stores the order as rejected with the reason.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use segl_core::mrz::Mrz;
use segl_core::nin::Nin;
use segl_core::order::{Evidence, ValidOrder};
use time::Date;

use crate::error::ApiError;

/// What a verifier concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The identity is checked.
    Verified {
        /// What support may see of the evidence (never a document number in full).
        summary: String,
    },
    /// The evidence does not fit the order.
    Mismatch {
        /// Why, as the person is told.
        reason: String,
        /// What support may see of the evidence.
        summary: Option<String>,
    },
    /// A person must check: the order waits in the manual review queue.
    NeedsReview,
}

/// A verifier's answer, later.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<Verdict, ApiError>> + Send + 'a>>;

/// Checks the identity claimed in an order.
pub trait IdentityVerifier: Send + Sync {
    /// Its name: stored as the order's `evidence`, and as who decided on its verdicts.
    fn name(&self) -> &'static str;
    /// Whether it handles this kind of evidence.
    fn accepts(&self, evidence: &Evidence) -> bool;
    /// Checks the order's evidence on `today`: an error for evidence that is bad input.
    fn verify<'a>(&'a self, order: &'a ValidOrder, today: Date) -> VerifyFuture<'a>;
}

/// The verifiers segl comes with.
pub fn built_in() -> Vec<Arc<dyn IdentityVerifier>> {
    vec![Arc::new(MrzVerifier), Arc::new(ManualReview)]
}

/// The MRZ of a passport or national ID card.
pub struct MrzVerifier;

impl IdentityVerifier for MrzVerifier {
    fn name(&self) -> &'static str {
        "mrz"
    }

    fn accepts(&self, evidence: &Evidence) -> bool {
        matches!(evidence, Evidence::Mrz(_))
    }

    fn verify<'a>(&'a self, order: &'a ValidOrder, today: Date) -> VerifyFuture<'a> {
        Box::pin(async move {
            let Evidence::Mrz(text) = &order.evidence else {
                return Err(ApiError::Internal(
                    "the MRZ verifier got other evidence".into(),
                ));
            };
            let mrz = Mrz::parse(text, today).map_err(|e| {
                ApiError::problem(StatusCode::BAD_REQUEST, "invalid_mrz", e.to_string())
            })?;
            let summary = summary_of(&mrz);
            let mismatch = mrz
                .check_against(&order.name, order.nin.birth_date(), today)
                .err()
                .map(|m| m.to_string())
                .or_else(|| personal_number_differs(&mrz, &order.nin));
            Ok(match mismatch {
                Some(reason) => Verdict::Mismatch {
                    reason,
                    summary: Some(summary),
                },
                None => Verdict::Verified { summary },
            })
        })
    }
}

/// A Norwegian passport carries the holder's national identity number as its personal
/// number: when it is there, it must be the order's.
fn personal_number_differs(mrz: &Mrz, nin: &Nin) -> Option<String> {
    let personal = mrz.optional_data();
    (mrz.issuing_state() == "NOR"
        && personal.len() == 11
        && personal.bytes().all(|b| b.is_ascii_digit())
        && personal != nin.as_str())
    .then(|| "the national identity number in the document is not the one in the order".into())
}

/// What support sees of the document: type, issuer, the number's last three characters,
/// expiry. Not the whole number.
fn summary_of(mrz: &Mrz) -> String {
    let n = mrz.document_number();
    let tail = &n[n.len().saturating_sub(3)..];
    format!(
        "{} {} …{} valid to {}",
        mrz.document_code(),
        mrz.issuing_state(),
        tail,
        mrz.expiry_date()
    )
}

/// The document is shown to support, who decide in the review queue.
pub struct ManualReview;

impl IdentityVerifier for ManualReview {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn accepts(&self, evidence: &Evidence) -> bool {
        matches!(evidence, Evidence::Manual)
    }

    fn verify<'a>(&'a self, _order: &'a ValidOrder, _today: Date) -> VerifyFuture<'a> {
        Box::pin(async { Ok(Verdict::NeedsReview) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use segl_core::order::{OrderForm, validate};
    use time::macros::date;

    const TODAY: Date = date!(2026 - 12 - 02);
    // A test fødselsnummer born 1985-05-15 (the end-to-end tests' person).
    const NIN: &str = "15058500027";

    fn check(s: &str) -> char {
        let v = |c: char| c.to_digit(36).unwrap_or(0);
        let sum: u32 = s
            .chars()
            .zip([7, 3, 1].iter().cycle())
            .map(|(c, w)| v(c) * w)
            .sum();
        char::from_digit(sum % 10, 10).unwrap()
    }

    /// A Norwegian passport's MRZ for Kari Nordmann, born 1985-05-15, with `personal`.
    fn mrz(birth: &str, personal: &str) -> String {
        let line1 = format!("{:<<44}", "P<NORNORDMANN<<KARI");
        let personal = format!("{personal:<<14}");
        let parts = [
            format!("AB1234567{}", check("AB1234567")),
            format!("{birth}{}", check(birth)),
            format!("310101{}", check("310101")),
            format!("{personal}{}", check(&personal)),
        ];
        let line2 = format!(
            "{}NOR{}F{}{}{}",
            parts[0],
            parts[1],
            parts[2],
            parts[3],
            check(&parts.concat())
        );
        format!("{line1}\n{line2}")
    }

    fn order(evidence: Evidence) -> ValidOrder {
        let form = OrderForm {
            nin: NIN.into(),
            name: "Kari Nordmann".into(),
            phone: Some("+4741234567".into()),
            email: None,
            kind: "app".into(),
            delivery: "letter".into(),
            address: vec!["Storgata 1".into(), "0155 Oslo".into()],
            guardian_nin: None,
            evidence,
        };
        validate(&form, TODAY).unwrap()
    }

    async fn verdict(evidence: Evidence) -> Result<Verdict, ApiError> {
        let o = order(evidence);
        let v = built_in();
        let verifier = v.iter().find(|v| v.accepts(&o.evidence)).unwrap();
        verifier.verify(&o, TODAY).await
    }

    #[tokio::test]
    async fn the_mrz_verifier_checks_the_document_against_the_order() {
        let ok = verdict(Evidence::Mrz(mrz("850515", NIN))).await.unwrap();
        assert_eq!(
            ok,
            Verdict::Verified {
                summary: "P NOR …567 valid to 2031-01-01".into()
            }
        );
        // Another birth date, another national number: rejections with the reason.
        let Verdict::Mismatch { reason, .. } =
            verdict(Evidence::Mrz(mrz("850516", NIN))).await.unwrap()
        else {
            panic!("a mismatch")
        };
        assert!(reason.contains("date of birth"), "{reason}");
        let Verdict::Mismatch { reason, .. } = verdict(Evidence::Mrz(mrz("850515", "01019010046")))
            .await
            .unwrap()
        else {
            panic!("a mismatch")
        };
        assert!(reason.contains("national identity number"), "{reason}");
        // A broken MRZ is bad input.
        let bad = mrz("850515", NIN)
            .replacen("850515", "850516", 1)
            .replace("\n", "");
        let e = verdict(Evidence::Mrz(bad)).await.unwrap_err();
        assert_eq!(e.parts().1, "invalid_mrz");
    }

    #[tokio::test]
    async fn a_manual_check_waits_for_support() {
        assert_eq!(
            verdict(Evidence::Manual).await.unwrap(),
            Verdict::NeedsReview
        );
        assert_eq!(MrzVerifier.name(), "mrz");
        assert!(!MrzVerifier.accepts(&Evidence::Manual));
        assert!(!ManualReview.accepts(&Evidence::Mrz(String::new())));
    }
}
