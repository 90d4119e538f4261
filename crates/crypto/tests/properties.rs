//! Property tests: malformed PSKC files, QR payloads and device signatures are refused
//! without a panic, and HOTP always yields a code of the asked length.

use proptest::prelude::*;
use segl_core::app::{ApprovalPayload, Decision};
use segl_crypto::otp::{self, OtpAlgorithm};
use segl_crypto::pskc::{self, PskcKey};
use zeroize::Zeroizing;

const PLAIN: &str = include_str!("data/pskc/hotp-plain.pskcxml");
const PBKDF2: &str = include_str!("data/pskc/hotp-pbkdf2-aes128cbc.pskcxml");

/// Cuts `xml` at char boundaries only, so the result is still a `&str`.
fn splice(xml: &str, at: usize, cut: usize, insert: &str) -> String {
    let mut at = at % (xml.len() + 1);
    while !xml.is_char_boundary(at) {
        at -= 1;
    }
    let mut end = (at + cut).min(xml.len());
    while !xml.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &xml[..at], insert, &xml[end..])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pskc_of_arbitrary_text_never_panics(s in "\\PC{0,400}") {
        prop_assert!(pskc::parse_pskc(&s, None).is_err());
    }

    #[test]
    fn mutated_pskc_files_never_panic(
        at: usize,
        cut in 0usize..64,
        insert in "[<>/=\"a-zA-Z0-9 &;:]{0,12}",
        encrypted: bool,
    ) {
        let (xml, key) = if encrypted {
            (PBKDF2, Some(PskcKey::Passphrase(Zeroizing::new("qwerty".into()))))
        } else {
            (PLAIN, None)
        };
        let mutated = splice(xml, at, cut, &insert);
        // Either a clean import or a clean refusal; an import yields whole tokens only.
        if let Ok(tokens) = pskc::parse_pskc(&mutated, key.as_ref()) {
            for t in tokens {
                prop_assert!(!t.serial.is_empty());
                prop_assert!(!t.secret.is_empty());
            }
        }
    }

    #[test]
    fn hotp_codes_have_the_asked_length(secret in prop::collection::vec(any::<u8>(), 1..64), counter: u64, digits in 6u8..=8) {
        for alg in [OtpAlgorithm::Sha1, OtpAlgorithm::Sha256, OtpAlgorithm::Sha512] {
            let code = otp::hotp(alg, &secret, counter, digits);
            prop_assert_eq!(code.len(), usize::from(digits));
            prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn qr_payloads_of_arbitrary_text_are_refused(s in "\\PC{0,80}", now in 0i64..1_000_000) {
        prop_assert!(segl_crypto::qr::qr_verify(&s, "flow-1", b"secret", now, 30).is_err());
    }

    #[test]
    fn arbitrary_device_keys_and_signatures_are_refused(
        key in prop::collection::vec(any::<u8>(), 0..80),
        sig in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let payload = ApprovalPayload {
            request_id: "req-1".into(),
            rp: "Demo".into(),
            verification_code: "elg fjord".into(),
            text_sha256: [0; 32],
            decision: Decision::Approve,
            user_verification: None,
        };
        prop_assert!(segl_crypto::device::verify_approval(&key, &payload, &sig).is_err());
    }
}
