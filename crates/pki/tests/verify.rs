//! `verify::verify_cms` on signatures over the openssl-made test CA: each way a signature
//! can fail gives its own error (content changed, untrusted root, expired at the signing
//! time, revoked before signing, an OCSP response for another certificate or from someone
//! who may not answer), and a good one reports its chain and revocation status.

mod common;

use common::{LEAF1_SERIAL, LEAF2_SERIAL, TestPki, TestSigner, ocsp_response, openssl_or_skip};
use segl_pki::ocsp::CertStatus;
use segl_pki::profile::{self, Issuer, Profile, Request};
use segl_pki::verify::{self, Revocation, VerifyError};
use segl_pki::{Error, RevocationReason, Signer, cms};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

const CONTENT: &[u8] = b"a contract, signed\n";

fn digest(content: &[u8]) -> [u8; 32] {
    Sha256::digest(content).into()
}

/// Whole seconds: CMS and OCSP times carry no fraction.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds")
}

/// `cert` (with `key`) signs CONTENT at `at`, with the CA in the chain.
fn sign(
    pki: &TestPki,
    cert: &[u8],
    key: &dyn Signer,
    at: OffsetDateTime,
    ocsp: Option<&[u8]>,
) -> Vec<u8> {
    cms::sign_detached(
        &cms::SignInput {
            content_digest: digest(CONTENT),
            signer_cert_der: cert,
            chain_der: std::slice::from_ref(&pki.ca_der),
            signing_time: at,
            ocsp_response_der: ocsp,
        },
        key,
    )
    .expect("sign")
}

fn verify(pki: &TestPki, sig: &[u8]) -> Result<verify::Report, VerifyError> {
    verify::verify_cms(
        sig,
        &digest(CONTENT),
        std::slice::from_ref(&pki.root_der),
        now(),
    )
}

/// leaf1 signs now, with an OCSP response from the delegated responder.
fn leaf1_with_ocsp(pki: &TestPki, serial: &[u8], status: CertStatus) -> Vec<u8> {
    let resp = ocsp_response(pki, &pki.ocsp_der, &pki.ocsp_signer, serial, status, now());
    sign(pki, &pki.leaf1_der, &pki.leaf1_signer, now(), Some(&resp))
}

#[test]
fn valid_signature_reports_chain_and_unchecked_revocation() {
    if !openssl_or_skip("valid_signature_reports_chain_and_unchecked_revocation") {
        return;
    }
    let pki = TestPki::new();
    // openssl made the test CA just now, so no earlier signing time is valid.
    let at = now();
    let report = verify(
        &pki,
        &sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, at, None),
    )
    .expect("valid");
    assert_eq!(report.serial_hex, "1001");
    assert_eq!(report.signing_time, at);
    assert!(
        report.signer_subject.contains("CN=test-leaf1"),
        "{report:?}"
    );
    assert_eq!(report.chain.len(), 3, "{report:?}");
    assert!(report.chain[1].contains("CN=test-ca"), "{report:?}");
    assert!(report.chain[2].contains("CN=test-root"), "{report:?}");
    assert_eq!(report.revocation, Revocation::NotChecked);
    assert_eq!(report.signer_cert_der, pki.leaf1_der);
}

#[test]
fn changed_content_is_a_digest_mismatch() {
    if !openssl_or_skip("changed_content_is_a_digest_mismatch") {
        return;
    }
    let pki = TestPki::new();
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, now(), None);
    let err = verify::verify_cms(
        &sig,
        &digest(b"another contract\n"),
        std::slice::from_ref(&pki.root_der),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::DigestMismatch), "{err}");
    assert!(err.to_string().contains("digest"), "{err}");
}

#[test]
fn garbage_is_a_bad_cms_not_a_panic() {
    for bytes in [&b""[..], b"\x30\x03\x02\x01\x01", b"not a signature at all"] {
        let err = verify::verify_cms(bytes, &digest(CONTENT), &[], now()).unwrap_err();
        assert!(matches!(err, VerifyError::Cms(Error::NotCms(_))), "{err}");
    }
}

#[test]
fn another_root_is_untrusted_and_names_the_issuer() {
    if !openssl_or_skip("another_root_is_untrusted_and_names_the_issuer") {
        return;
    }
    let pki = TestPki::new();
    let key = TestSigner::generate();
    let other_root = profile::issue(
        &Request {
            profile: Profile::RootCa {
                common_name: "other root".into(),
                organization: "elsewhere".into(),
            },
            public_key_der: key.public_key_der(),
            serial: &[1],
            not_before: now() - Duration::days(1),
            not_after: now() + Duration::days(365),
        },
        &Issuer {
            cert_der: None,
            signer: &key,
        },
        &common::test_urls(),
    )
    .expect("other root");
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, now(), None);
    let err = verify::verify_cms(&sig, &digest(CONTENT), &[other_root], now()).unwrap_err();
    match &err {
        VerifyError::UntrustedChain { subject, issuer } => {
            assert!(subject.contains("CN=test-ca"), "{err}");
            assert!(issuer.contains("CN=test-root"), "{err}");
        }
        other => panic!("expected UntrustedChain, got {other:?}"),
    }
    assert!(err.to_string().contains("not trusted"), "{err}");
}

#[test]
fn a_root_with_the_right_name_but_another_key_breaks_the_chain() {
    if !openssl_or_skip("a_root_with_the_right_name_but_another_key_breaks_the_chain") {
        return;
    }
    let pki = TestPki::new();
    // Same subject as the test root (O=segl-test, CN=test-root), another key.
    common::openssl(
        &pki.dir,
        "req -x509 -new -config openssl.cnf -extensions root -key ca.key \
         -subj /O=segl-test/CN=test-root -days 30 -set_serial 7 -outform DER -out fake-root.der",
    );
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, now(), None);
    let err = verify::verify_cms(&sig, &digest(CONTENT), &[pki.read("fake-root.der")], now())
        .unwrap_err();
    assert!(matches!(err, VerifyError::BrokenChain { .. }), "{err}");
}

#[test]
fn expired_or_not_yet_valid_at_signing_time() {
    if !openssl_or_skip("expired_or_not_yet_valid_at_signing_time") {
        return;
    }
    let pki = TestPki::new();
    let (cert, key) = pki.person(
        &[0x20, 0x01],
        now() - Duration::days(10),
        now() - Duration::days(5),
    );
    let err = verify(
        &pki,
        &sign(&pki, &cert, &key, now() - Duration::days(1), None),
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::ExpiredAtSigningTime { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
    // Within the person's validity, but before openssl made the CA: the CA certificates
    // are checked too.
    let err = verify(
        &pki,
        &sign(&pki, &cert, &key, now() - Duration::days(7), None),
    )
    .unwrap_err();
    match &err {
        VerifyError::NotYetValidAtSigningTime { subject, .. } => {
            assert!(subject.contains("CN=test-ca"), "{err}");
        }
        other => panic!("expected NotYetValidAtSigningTime, got {other:?}"),
    }
    let (cert, key) = pki.person(
        &[0x20, 0x02],
        now() + Duration::days(1),
        now() + Duration::days(10),
    );
    let err = verify(&pki, &sign(&pki, &cert, &key, now(), None)).unwrap_err();
    match &err {
        VerifyError::NotYetValidAtSigningTime { subject, .. } => {
            assert!(subject.contains("CN=Kari Nordmann"), "{err}");
        }
        other => panic!("expected NotYetValidAtSigningTime, got {other:?}"),
    }
    assert!(err.to_string().contains("not yet valid"), "{err}");
}

#[test]
fn signing_time_in_the_future_is_refused() {
    if !openssl_or_skip("signing_time_in_the_future_is_refused") {
        return;
    }
    let pki = TestPki::new();
    let sig = sign(
        &pki,
        &pki.leaf1_der,
        &pki.leaf1_signer,
        now() + Duration::hours(1),
        None,
    );
    let err = verify(&pki, &sig).unwrap_err();
    assert!(
        matches!(err, VerifyError::SigningTimeInFuture { .. }),
        "{err}"
    );
}

#[test]
fn ocsp_good_is_reported() {
    if !openssl_or_skip("ocsp_good_is_reported") {
        return;
    }
    let pki = TestPki::new();
    let report = verify(&pki, &leaf1_with_ocsp(&pki, LEAF1_SERIAL, CertStatus::Good))
        .expect("valid with OCSP");
    assert!(
        matches!(report.revocation, Revocation::Good { .. }),
        "{report:?}"
    );
}

#[test]
fn the_ca_itself_may_answer() {
    if !openssl_or_skip("the_ca_itself_may_answer") {
        return;
    }
    let pki = TestPki::new();
    let resp = ocsp_response(
        &pki,
        &pki.ca_der,
        &pki.ca_signer,
        LEAF1_SERIAL,
        CertStatus::Good,
        now(),
    );
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, now(), Some(&resp));
    let report = verify(&pki, &sig).expect("CA-signed OCSP");
    assert!(matches!(report.revocation, Revocation::Good { .. }));
}

#[test]
fn revoked_before_signing_is_invalid_after_signing_is_not() {
    if !openssl_or_skip("revoked_before_signing_is_invalid_after_signing_is_not") {
        return;
    }
    let pki = TestPki::new();
    let revoked_at = now() - Duration::hours(1);
    let status = CertStatus::Revoked {
        time: revoked_at,
        reason: Some(RevocationReason::KeyCompromise),
    };
    let err = verify(&pki, &leaf1_with_ocsp(&pki, LEAF1_SERIAL, status)).unwrap_err();
    match &err {
        VerifyError::Revoked { time, reason, .. } => {
            assert_eq!(*time, revoked_at);
            assert_eq!(*reason, Some(RevocationReason::KeyCompromise));
        }
        other => panic!("expected Revoked, got {other:?}"),
    }
    assert!(err.to_string().contains("key-compromise"), "{err}");

    // Revoked a second after signing: the signature stands. (openssl made leaf1 just
    // now, so the signing time cannot lie further back.)
    let at = now();
    let status = CertStatus::Revoked {
        time: at + Duration::seconds(1),
        reason: Some(RevocationReason::Superseded),
    };
    let resp = ocsp_response(
        &pki,
        &pki.ocsp_der,
        &pki.ocsp_signer,
        LEAF1_SERIAL,
        status,
        at + Duration::seconds(2),
    );
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, at, Some(&resp));
    let report = verify(&pki, &sig).expect("revoked after signing");
    assert!(
        matches!(report.revocation, Revocation::RevokedAfterSigning { .. }),
        "{report:?}"
    );
}

#[test]
fn unknown_status_is_invalid() {
    if !openssl_or_skip("unknown_status_is_invalid") {
        return;
    }
    let pki = TestPki::new();
    let err = verify(
        &pki,
        &leaf1_with_ocsp(&pki, LEAF1_SERIAL, CertStatus::Unknown),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::OcspUnknownStatus), "{err}");
}

#[test]
fn ocsp_for_another_serial_is_not_for_this_certificate() {
    if !openssl_or_skip("ocsp_for_another_serial_is_not_for_this_certificate") {
        return;
    }
    let pki = TestPki::new();
    let err = verify(&pki, &leaf1_with_ocsp(&pki, LEAF2_SERIAL, CertStatus::Good)).unwrap_err();
    match &err {
        VerifyError::OcspNotForCertificate { serial_hex, .. } => assert_eq!(serial_hex, "1001"),
        other => panic!("expected OcspNotForCertificate, got {other:?}"),
    }
}

#[test]
fn ocsp_signed_by_a_non_responder_is_not_authorised() {
    if !openssl_or_skip("ocsp_signed_by_a_non_responder_is_not_authorised") {
        return;
    }
    let pki = TestPki::new();
    // The root: a CA, so Responder accepts it, but not leaf1's issuer.
    let root_signer = pki.signer("root");
    let resp = ocsp_response(
        &pki,
        &pki.root_der,
        &root_signer,
        LEAF1_SERIAL,
        CertStatus::Good,
        now(),
    );
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, now(), Some(&resp));
    let err = verify(&pki, &sig).unwrap_err();
    assert!(
        matches!(err, VerifyError::OcspResponderNotAuthorised(_)),
        "{err}"
    );

    // A delegated responder (EKU OCSPSigning) issued by the root, not by leaf1's issuer.
    let key = TestSigner::generate();
    let responder = profile::issue(
        &Request {
            profile: Profile::OcspSigner {
                ca: "root".into(),
                common_name: "stray responder".into(),
                organization: "segl-test".into(),
            },
            public_key_der: key.public_key_der(),
            serial: &[0x33],
            not_before: now() - Duration::days(1),
            not_after: now() + Duration::days(30),
        },
        &Issuer {
            cert_der: Some(&pki.root_der),
            signer: &root_signer,
        },
        &common::test_urls(),
    )
    .expect("stray responder");
    let resp = ocsp_response(
        &pki,
        &responder,
        &key,
        LEAF1_SERIAL,
        CertStatus::Good,
        now(),
    );
    let sig = sign(&pki, &pki.leaf1_der, &pki.leaf1_signer, now(), Some(&resp));
    let err = verify(&pki, &sig).unwrap_err();
    assert!(
        matches!(err, VerifyError::OcspResponderNotAuthorised(_)),
        "{err}"
    );
    assert!(err.to_string().contains("stray responder"), "{err}");
}

#[test]
fn parse_ocsp_response_reads_fields_and_checks_the_signature() {
    if !openssl_or_skip("parse_ocsp_response_reads_fields_and_checks_the_signature") {
        return;
    }
    let pki = TestPki::new();
    let produced = now();
    let revoked_at = produced - Duration::days(2);
    let resp = ocsp_response(
        &pki,
        &pki.ocsp_der,
        &pki.ocsp_signer,
        LEAF2_SERIAL,
        CertStatus::Revoked {
            time: revoked_at,
            reason: Some(RevocationReason::Superseded),
        },
        produced,
    );
    let answer = verify::parse_ocsp_response(&resp).expect("parse");
    assert_eq!(answer.produced_at, produced);
    assert_eq!(answer.responder_certs_der, vec![pki.ocsp_der.clone()]);
    assert!(answer.responder_is(&pki.ocsp_der).expect("responder id"));
    assert!(!answer.responder_is(&pki.ca_der).expect("responder id"));
    let [single] = answer.responses.as_slice() else {
        panic!("one response expected");
    };
    assert_eq!(single.cert_id.serial(), LEAF2_SERIAL);
    assert_eq!(
        single.status,
        CertStatus::Revoked {
            time: revoked_at,
            reason: Some(RevocationReason::Superseded)
        }
    );
    assert_eq!(single.this_update, produced - Duration::minutes(1));
    assert_eq!(single.next_update, Some(produced + Duration::days(1)));

    let ocsp_key = profile::public_key_der(&pki.ocsp_der).expect("key");
    answer.verify_signature(&ocsp_key).expect("signature");
    let ca_key = profile::public_key_der(&pki.ca_der).expect("key");
    assert!(matches!(
        answer.verify_signature(&ca_key),
        Err(Error::OcspBadSignature(_))
    ));

    // Unsuccessful and garbage responses are errors, not panics.
    assert!(matches!(
        verify::parse_ocsp_response(&[0x30, 0x03, 0x0a, 0x01, 0x01]),
        Err(Error::OcspResponseUnsuccessful(_))
    ));
    for bad in [&b""[..], b"\x30", &resp[..resp.len() - 1]] {
        assert!(verify::parse_ocsp_response(bad).is_err());
    }
}
