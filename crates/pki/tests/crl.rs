//! CRLs against openssl 3 (`openssl crl -CAfile` verifies the signature and lists the
//! entries, `openssl verify -crl_check` uses it) and against x509-cert's CRL types.

mod common;

use common::{LEAF2_SERIAL, LEAF3_SERIAL, TestPki, openssl, openssl_any, openssl_or_skip, text};
use der::Decode;
use segl_pki::crl::{RevokedEntry, build_crl};
use segl_pki::{Error, RevocationReason};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_cert::crl::CertificateList;

type Crl = CertificateList<x509_cert::certificate::Rfc5280>;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::time::Time;

fn now() -> OffsetDateTime {
    // openssl verify checks thisUpdate/nextUpdate against its clock.
    OffsetDateTime::now_utc()
}

fn entry(serial: &[u8], reason: Option<RevocationReason>) -> RevokedEntry {
    RevokedEntry {
        serial: serial.to_vec(),
        revoked_at: datetime!(2026-03-04 05:06:07 UTC),
        reason,
    }
}

fn sample_entries() -> Vec<RevokedEntry> {
    vec![
        entry(LEAF2_SERIAL, Some(RevocationReason::KeyCompromise)),
        entry(LEAF3_SERIAL, Some(RevocationReason::Superseded)),
        entry(&[0x05], None),
        entry(&[0x00, 0x06], Some(RevocationReason::Unspecified)),
        entry(&[0x07], Some(RevocationReason::PrivilegeWithdrawn)),
    ]
}

#[test]
fn crl_is_verified_and_listed_by_openssl() {
    if !openssl_or_skip("crl_is_verified_and_listed_by_openssl") {
        return;
    }
    let pki = TestPki::new();
    let crl = build_crl(
        &pki.ca_der,
        &pki.ca_signer,
        42,
        now() - Duration::minutes(1),
        now() + Duration::days(7),
        sample_entries(),
    )
    .expect("crl");
    pki.write("crl.der", &crl);
    let out = openssl(
        &pki.dir,
        "crl -in crl.der -inform DER -CAfile chain.pem -noout -text",
    );
    assert!(out.contains("verify OK"), "{out}");
    assert!(out.contains("Version 2 (0x1)"), "{out}");
    assert!(
        out.contains("Signature Algorithm: ecdsa-with-SHA256"),
        "{out}"
    );
    assert!(out.contains("Issuer: O = segl-test, CN = test-ca"), "{out}");
    assert!(
        out.contains("X509v3 CRL Number: \n                42"),
        "{out}"
    );
    assert!(out.contains("Serial Number: 1002"), "{out}");
    assert!(
        out.contains("Serial Number: 8F0102030405060708090A0B0C0D0E0F10111213"),
        "{out}"
    );
    assert!(out.contains("Serial Number: 05"), "{out}");
    assert!(out.contains("Serial Number: 06"), "{out}");
    assert!(
        out.contains("Revocation Date: Mar  4 05:06:07 2026 GMT"),
        "{out}"
    );
    assert!(out.contains("Key Compromise"), "{out}");
    assert!(out.contains("Superseded"), "{out}");
    assert!(out.contains("Privilege Withdrawn"), "{out}");
    assert_eq!(
        out.matches("X509v3 CRL Reason Code").count(),
        3,
        "none for None/unspecified: {out}"
    );

    // authorityKeyIdentifier is the CA's subjectKeyIdentifier.
    let ca = openssl(&pki.dir, "x509 -in ca.pem -noout -ext subjectKeyIdentifier");
    let ski = ca.lines().nth(1).expect("SKI line").trim().to_string();
    assert!(out.contains(&ski), "AKI {ski} in {out}");

    // The same CRL through x509-cert's own types.
    let list = Crl::from_der(&crl).expect("x509-cert decodes it");
    let revoked = list.tbs_cert_list.revoked_certificates.expect("entries");
    assert_eq!(revoked.len(), 5);
    assert_eq!(revoked[0].serial_number.as_bytes(), LEAF2_SERIAL);
    assert_eq!(revoked[1].serial_number.as_bytes()[1..], *LEAF3_SERIAL);
    assert_eq!(revoked[3].serial_number.as_bytes(), [0x06]);
    let reason = |i: usize| {
        revoked[i].crl_entry_extensions.as_ref().map(|exts| {
            assert_eq!(exts.len(), 1);
            CrlReason::from_der(exts[0].extn_value.as_bytes()).expect("reason")
        })
    };
    assert_eq!(reason(0), Some(CrlReason::KeyCompromise));
    assert_eq!(reason(2), None);
    assert_eq!(reason(3), None);
    assert_eq!(reason(4), Some(CrlReason::PrivilegeWithdrawn));
}

#[test]
fn openssl_verify_with_crl_check() {
    if !openssl_or_skip("openssl_verify_with_crl_check") {
        return;
    }
    let pki = TestPki::new();
    let crl = build_crl(
        &pki.ca_der,
        &pki.ca_signer,
        1,
        now() - Duration::minutes(1),
        now() + Duration::days(7),
        [entry(LEAF2_SERIAL, Some(RevocationReason::KeyCompromise))],
    )
    .expect("crl");
    pki.write("crl.der", &crl);
    openssl(&pki.dir, "crl -in crl.der -inform DER -out crl.pem");
    let verify = |leaf: &str| {
        openssl_any(
            &pki.dir,
            &format!("verify -crl_check -CRLfile crl.pem -CAfile chain.pem {leaf}"),
        )
    };
    let out = verify("leaf1.pem");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("leaf1.pem: OK"));
    let out = verify("leaf2.pem");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("certificate revoked"), "{}", text(&out));
}

#[test]
fn empty_crl_has_no_revoked_list() {
    if !openssl_or_skip("empty_crl_has_no_revoked_list") {
        return;
    }
    let pki = TestPki::new();
    let crl = build_crl(
        &pki.ca_der,
        &pki.ca_signer,
        7,
        now() - Duration::minutes(1),
        now() + Duration::days(7),
        [],
    )
    .expect("crl");
    pki.write("crl.der", &crl);
    let out = openssl(
        &pki.dir,
        "crl -in crl.der -inform DER -CAfile chain.pem -noout -text",
    );
    assert!(out.contains("verify OK"), "{out}");
    assert!(out.contains("No Revoked Certificates."), "{out}");
    let list = Crl::from_der(&crl).expect("decodes");
    assert_eq!(
        list.tbs_cert_list.revoked_certificates, None,
        "RFC 5280: absent, not empty"
    );
}

#[test]
fn utc_time_before_2050_generalized_time_from_2050() {
    if !openssl_or_skip("utc_time_before_2050_generalized_time_from_2050") {
        return;
    }
    let pki = TestPki::new();
    let late = RevokedEntry {
        serial: vec![0x42],
        revoked_at: datetime!(2050-01-01 00:00:00 UTC),
        reason: None,
    };
    let early = RevokedEntry {
        serial: vec![0x43],
        revoked_at: datetime!(2049-12-31 23:59:59 UTC),
        reason: None,
    };
    let crl = build_crl(
        &pki.ca_der,
        &pki.ca_signer,
        u64::MAX,
        datetime!(2049-12-31 23:59:59.999 UTC),
        datetime!(2050-01-01 00:00:00 UTC),
        [late, early],
    )
    .expect("crl");
    let list = Crl::from_der(&crl).expect("decodes");
    let tbs = &list.tbs_cert_list;
    assert!(matches!(tbs.this_update, Time::UtcTime(_)));
    assert!(matches!(tbs.next_update, Some(Time::GeneralTime(_))));
    let revoked = tbs.revoked_certificates.as_ref().expect("entries");
    assert!(matches!(revoked[0].revocation_date, Time::GeneralTime(_)));
    assert!(matches!(revoked[1].revocation_date, Time::UtcTime(_)));

    // Signature still good for openssl (it is past nextUpdate by then, so no verify -crl_check).
    pki.write("crl.der", &crl);
    let out = openssl(
        &pki.dir,
        "crl -in crl.der -inform DER -CAfile chain.pem -noout -text",
    );
    assert!(out.contains("verify OK"), "{out}");
    assert!(
        out.contains("Last Update: Dec 31 23:59:59 2049 GMT"),
        "{out}"
    );
    assert!(
        out.contains("Next Update: Jan  1 00:00:00 2050 GMT"),
        "{out}"
    );
    assert!(
        out.contains("18446744073709551615"),
        "u64::MAX CRL number: {out}"
    );
}

#[test]
fn tampered_crl_fails_openssl_verification() {
    if !openssl_or_skip("tampered_crl_fails_openssl_verification") {
        return;
    }
    let pki = TestPki::new();
    let crl = build_crl(
        &pki.ca_der,
        &pki.ca_signer,
        3,
        now() - Duration::minutes(1),
        now() + Duration::days(7),
        sample_entries(),
    )
    .expect("crl");
    let list = Crl::from_der(&crl).expect("decodes");
    let sig = list.signature.raw_bytes();
    let at = crl
        .windows(sig.len())
        .position(|w| w == sig)
        .expect("signature")
        + 10;
    let mut bad = crl.clone();
    bad[at] ^= 0x01;
    pki.write("bad.der", &bad);
    let out = openssl_any(
        &pki.dir,
        "crl -in bad.der -inform DER -CAfile chain.pem -noout",
    );
    let shown = text(&out);
    assert!(shown.contains("verify failure"), "{shown}");
    assert!(!shown.contains("verify OK"), "{shown}");
}

#[test]
fn refuses_what_it_cannot_sign() {
    if !openssl_or_skip("refuses_what_it_cannot_sign") {
        return;
    }
    let pki = TestPki::new();
    let t = now();
    let build =
        |signer: &common::TestSigner, this: OffsetDateTime, next, entries: Vec<RevokedEntry>| {
            build_crl(&pki.ca_der, signer, 1, this, next, entries)
        };
    let week = t + Duration::days(7);
    assert!(matches!(
        build(&pki.ocsp_signer, t, week, vec![]),
        Err(Error::KeyMismatch(_))
    ));
    assert!(matches!(
        build(&pki.ca_signer, t, t, vec![]),
        Err(Error::Invalid(_))
    ));
    for serial in [&[][..], &[0, 0], &[1; 21]] {
        assert!(
            matches!(
                build(&pki.ca_signer, t, week, vec![entry(serial, None)]),
                Err(Error::InvalidSerial)
            ),
            "{serial:?}"
        );
    }
    let old = RevokedEntry {
        serial: vec![1],
        revoked_at: datetime!(1969-12-31 23:59:59 UTC),
        reason: None,
    };
    assert!(matches!(
        build(&pki.ca_signer, t, week, vec![old]),
        Err(Error::TimeOutOfRange(_))
    ));
    // 20 octets with the top bit set is the largest serial.
    assert!(build(&pki.ca_signer, t, week, vec![entry(&[0xff; 20], None)]).is_ok());
}

#[test]
fn many_entries_decode_back() {
    // 100,000 entries read back by x509-cert's decoder and verified by openssl.
    if !openssl_or_skip("many_entries_decode_back") {
        return;
    }
    let pki = TestPki::new();
    let n = 100_000u32;
    let entries = (1..=n).map(|i| RevokedEntry {
        serial: i.to_be_bytes().to_vec(),
        revoked_at: datetime!(2026-01-01 00:00:00 UTC) + Duration::seconds(i64::from(i)),
        reason: RevocationReason::ALL.get(i as usize % 8).copied(),
    });
    let crl = build_crl(
        &pki.ca_der,
        &pki.ca_signer,
        9,
        now(),
        now() + Duration::days(1),
        entries,
    )
    .expect("crl");
    let list = Crl::from_der(&crl).expect("decodes");
    let revoked = list.tbs_cert_list.revoked_certificates.expect("entries");
    assert_eq!(revoked.len(), n as usize);
    for (i, r) in (1..=n).zip(&revoked) {
        let want = i.to_be_bytes();
        let start = want.iter().position(|b| *b != 0).unwrap_or(4);
        let bytes = r.serial_number.as_bytes();
        let bytes = if bytes[0] == 0 { &bytes[1..] } else { bytes };
        assert_eq!(bytes, &want[start..]);
    }
    pki.write("big.der", &crl);
    let out = openssl(
        &pki.dir,
        "crl -in big.der -inform DER -CAfile chain.pem -noout",
    );
    assert!(out.contains("verify OK"), "{out}");
}
