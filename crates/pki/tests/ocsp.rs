//! OCSP against openssl 3: requests made by `openssl ocsp -reqout` are parsed, responses
//! built here are verified by `openssl ocsp -respin` (signature, chain to the root, the
//! responder's EKU, CertID matching, nonce).

mod common;

use common::{
    LEAF1_SERIAL, LEAF2_SERIAL, LEAF3_SERIAL, TestPki, openssl, openssl_any, openssl_or_skip, text,
};
use der::asn1::OctetString;
use der::{Decode, Encode};
use segl_pki::ocsp::{
    self, CertStatus, HashAlg, IssuerId, MAX_CERTS_PER_REQUEST, OcspErrorStatus, Responder,
    SingleAnswer, asn1,
};
use segl_pki::{Error, RevocationReason};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// `openssl ocsp -issuer ca.pem <args> -reqout <name>`, read back.
fn openssl_request(pki: &TestPki, name: &str, args: &str) -> Vec<u8> {
    openssl(
        &pki.dir,
        &format!("ocsp -issuer ca.pem {args} -reqout {name}"),
    );
    pki.read(name)
}

fn now() -> OffsetDateTime {
    // openssl checks thisUpdate/nextUpdate against its clock (5 minutes' leeway).
    OffsetDateTime::now_utc()
}

fn answer(cert_id: &ocsp::CertIdRequest, status: CertStatus) -> SingleAnswer {
    SingleAnswer {
        cert_id: cert_id.clone(),
        status,
        this_update: now() - Duration::minutes(1),
        next_update: now() + Duration::days(1),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The openssl request as DER type, to make variants of it.
fn decode_request(der: &[u8]) -> asn1::OcspRequest {
    asn1::OcspRequest::from_der(der).expect("openssl request decodes")
}

#[test]
fn parses_openssl_sha1_request_with_nonce() {
    if !openssl_or_skip("parses_openssl_sha1_request_with_nonce") {
        return;
    }
    let pki = TestPki::new();
    let der = openssl_request(
        &pki,
        "req.der",
        "-cert leaf1.pem -cert leaf2.pem -cert leaf3.pem -nonce",
    );
    let req = ocsp::parse_request(&der).expect("parse");
    let issuer = IssuerId::from_cert_der(&pki.ca_der).expect("issuer");
    assert_eq!(req.certs.len(), 3);
    let serials: Vec<&[u8]> = req.certs.iter().map(|c| c.serial()).collect();
    assert_eq!(serials, [LEAF1_SERIAL, LEAF2_SERIAL, LEAF3_SERIAL]);
    for c in &req.certs {
        assert_eq!(c.hash(), Some(HashAlg::Sha1));
        assert_eq!(c.issuer_name_hash().len(), 20);
        assert!(issuer.matches(c), "CertID names the issuing CA");
    }
    // openssl prints the nonce extension's value: the DER OCTET STRING holding the nonce.
    let nonce = req.nonce.expect("nonce");
    assert_eq!(nonce.len(), 16, "openssl's default nonce length");
    let shown = openssl(&pki.dir, "ocsp -reqin req.der -req_text");
    assert!(shown.contains(&format!("0410{}", hex(&nonce))), "{shown}");

    // Another CA's CertID does not match ours.
    let root = IssuerId::from_cert_der(&pki.root_der).expect("root issuer");
    assert!(!root.matches(&req.certs[0]));
}

#[test]
fn parses_openssl_sha256_request_without_nonce() {
    if !openssl_or_skip("parses_openssl_sha256_request_without_nonce") {
        return;
    }
    let pki = TestPki::new();
    let der = openssl_request(&pki, "req.der", "-sha256 -cert leaf3.pem -no_nonce");
    let req = ocsp::parse_request(&der).expect("parse");
    let issuer = IssuerId::from_cert_der(&pki.ca_der).expect("issuer");
    assert_eq!(req.nonce, None);
    let [c] = req.certs.as_slice() else {
        panic!("one cert: {req:?}")
    };
    assert_eq!(c.hash(), Some(HashAlg::Sha256));
    assert_eq!(c.issuer_key_hash().len(), 32);
    assert_eq!(
        c.serial(),
        LEAF3_SERIAL,
        "leading 0x00 of the INTEGER dropped"
    );
    assert!(issuer.matches(c));
    // The CertID we would make ourselves for a pre-signed response is the same cache key.
    assert_eq!(
        &issuer
            .cert_id(HashAlg::Sha256, LEAF3_SERIAL)
            .expect("cert id"),
        c
    );
    assert_ne!(
        &issuer
            .cert_id(HashAlg::Sha1, LEAF3_SERIAL)
            .expect("cert id"),
        c
    );
}

#[test]
fn unsupported_hash_is_reported_not_refused() {
    if !openssl_or_skip("unsupported_hash_is_reported_not_refused") {
        return;
    }
    let pki = TestPki::new();
    let der = openssl_request(&pki, "req.der", "-sha384 -cert leaf1.pem -no_nonce");
    let req = ocsp::parse_request(&der).expect("parse");
    let issuer = IssuerId::from_cert_der(&pki.ca_der).expect("issuer");
    let [c] = req.certs.as_slice() else {
        panic!("one cert")
    };
    assert_eq!(c.hash(), None);
    assert_eq!(c.hash_oid().to_string(), "2.16.840.1.101.3.4.2.2");
    assert!(!issuer.matches(c));
    // Answered unknown, with the SHA-384 CertID echoed: openssl finds its answer.
    let resp = ocsp::build_response(
        &pki.ocsp_der,
        &pki.ocsp_signer,
        now(),
        &[answer(c, CertStatus::Unknown)],
        None,
    )
    .expect("response");
    pki.write("resp.der", &resp);
    let out = openssl(
        &pki.dir,
        "ocsp -issuer ca.pem -sha384 -cert leaf1.pem -no_nonce -respin resp.der -CAfile chain.pem",
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf1.pem: unknown"), "{out}");
}

#[test]
fn signed_request_is_accepted_and_its_signature_ignored() {
    if !openssl_or_skip("signed_request_is_accepted_and_its_signature_ignored") {
        return;
    }
    let pki = TestPki::new();
    let der = openssl_request(
        &pki,
        "req.der",
        "-cert leaf2.pem -signer leaf1.pem -signkey leaf1.key -nonce",
    );
    assert!(
        decode_request(&der).optional_signature.is_some(),
        "openssl signed it"
    );
    let req = ocsp::parse_request(&der).expect("parse");
    assert_eq!(req.certs.len(), 1);
    assert_eq!(req.certs[0].serial(), LEAF2_SERIAL);
    assert!(req.nonce.is_some());
}

#[test]
fn good_revoked_and_unknown_are_verified_by_openssl() {
    if !openssl_or_skip("good_revoked_and_unknown_are_verified_by_openssl") {
        return;
    }
    let pki = TestPki::new();
    let ids = "-cert leaf1.pem -cert leaf2.pem -cert leaf3.pem -serial 0x9999";
    let der = openssl_request(&pki, "req.der", &format!("{ids} -no_nonce"));
    let req = ocsp::parse_request(&der).expect("parse");
    assert_eq!(req.certs[3].serial(), [0x99, 0x99]);

    let revoked_at = datetime!(2026-01-02 03:04:05.678 UTC);
    let statuses = [
        CertStatus::Good,
        CertStatus::Revoked {
            time: revoked_at,
            reason: Some(RevocationReason::KeyCompromise),
        },
        CertStatus::Revoked {
            time: revoked_at,
            reason: Some(RevocationReason::Unspecified),
        },
        CertStatus::Unknown,
    ];
    let singles: Vec<SingleAnswer> = req
        .certs
        .iter()
        .zip(statuses)
        .map(|(c, s)| answer(c, s))
        .collect();
    let responder = Responder::new(&pki.ocsp_der, &pki.ocsp_signer).expect("responder");
    let resp = responder
        .respond(&pki.ocsp_signer, now(), &singles, None)
        .expect("response");
    pki.write("resp.der", &resp);

    let out = openssl(
        &pki.dir,
        &format!("ocsp -issuer ca.pem {ids} -no_nonce -respin resp.der -CAfile chain.pem"),
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf1.pem: good"), "{out}");
    assert!(out.contains("leaf2.pem: revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    // Whole seconds, GeneralizedTime.
    assert!(
        out.contains("Revocation Time: Jan  2 03:04:05 2026 GMT"),
        "{out}"
    );
    assert!(out.contains("leaf3.pem: revoked"), "{out}");
    assert_eq!(
        out.matches("Reason:").count(),
        1,
        "unspecified is left out: {out}"
    );
    assert!(out.contains("0x9999: unknown"), "{out}");

    // The structure, read back with our DER types.
    let basic = basic_response(&resp);
    let data = &basic.tbs_response_data;
    assert!(matches!(data.responder_id, asn1::ResponderId::ByKey(_)));
    assert_eq!(data.responses.len(), 4);
    assert_eq!(data.response_extensions, None);
    assert_eq!(
        basic.certs.as_ref().map(Vec::len),
        Some(1),
        "responder cert included"
    );
    assert_eq!(
        basic.signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.3.2"
    );
    assert_eq!(basic.signature_algorithm.parameters, None);
    for (single, asked) in data.responses.iter().zip(&req.certs) {
        assert_eq!(&single.cert_id, asked.as_asn1(), "CertID echoed exactly");
    }
}

fn basic_response(resp: &[u8]) -> asn1::BasicOcspResponse {
    let outer = asn1::OcspResponse::from_der(resp).expect("OCSPResponse");
    assert_eq!(outer.response_status, ocsp::OcspResponseStatus::Successful);
    let bytes = outer.response_bytes.expect("responseBytes");
    assert_eq!(bytes.response_type.to_string(), "1.3.6.1.5.5.7.48.1.1");
    asn1::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("BasicOCSPResponse")
}

#[test]
fn nonce_is_echoed_and_checked_by_openssl() {
    if !openssl_or_skip("nonce_is_echoed_and_checked_by_openssl") {
        return;
    }
    let pki = TestPki::new();
    let der = openssl_request(&pki, "req.der", "-cert leaf1.pem -nonce");
    let req = ocsp::parse_request(&der).expect("parse");
    let nonce = req.nonce.clone().expect("nonce");
    let singles = [answer(&req.certs[0], CertStatus::Good)];
    let responder = Responder::new(&pki.ocsp_der, &pki.ocsp_signer).expect("responder");
    let check = |resp: &[u8]| {
        pki.write("resp.der", resp);
        openssl_any(
            &pki.dir,
            "ocsp -reqin req.der -respin resp.der -CAfile chain.pem -resp_text",
        )
    };

    let resp = responder
        .respond(&pki.ocsp_signer, now(), &singles, Some(&nonce))
        .expect("response");
    let out = check(&resp);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Response verify OK"), "{shown}");
    assert!(!shown.contains("WARNING: no nonce"), "{shown}");
    assert!(shown.contains(&format!("0410{}", hex(&nonce))), "{shown}");
    assert!(shown.contains("Cert Status: good"), "{shown}");

    let mut other = nonce.clone();
    other[0] ^= 1;
    let resp = responder
        .respond(&pki.ocsp_signer, now(), &singles, Some(&other))
        .expect("response");
    let out = check(&resp);
    assert!(!out.status.success());
    assert!(text(&out).contains("Nonce Verify error"), "{}", text(&out));

    let resp = responder
        .respond(&pki.ocsp_signer, now(), &singles, None)
        .expect("response");
    assert!(text(&check(&resp)).contains("WARNING: no nonce in response"));

    // A nonce RFC 8954 does not allow is not echoed.
    assert!(matches!(
        responder.respond(&pki.ocsp_signer, now(), &singles, Some(&[0; 33])),
        Err(Error::OcspNonceLength { len: 33 })
    ));
}

#[test]
fn sha256_cert_id_is_answered_for_openssl() {
    if !openssl_or_skip("sha256_cert_id_is_answered_for_openssl") {
        return;
    }
    let pki = TestPki::new();
    let der = openssl_request(&pki, "req.der", "-sha256 -cert leaf3.pem -nonce");
    let req = ocsp::parse_request(&der).expect("parse");
    let resp = ocsp::build_response(
        &pki.ocsp_der,
        &pki.ocsp_signer,
        now(),
        &[answer(&req.certs[0], CertStatus::Good)],
        req.nonce.as_deref(),
    )
    .expect("response");
    pki.write("resp.der", &resp);
    let out = openssl(
        &pki.dir,
        "ocsp -reqin req.der -respin resp.der -CAfile chain.pem -resp_text",
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("Hash Algorithm: sha256"), "{out}");
    assert!(out.contains("Cert Status: good"), "{out}");
}

#[test]
fn presigned_response_from_our_own_cert_id() {
    if !openssl_or_skip("presigned_response_from_our_own_cert_id") {
        return;
    }
    let pki = TestPki::new();
    let issuer = IssuerId::from_cert_der(&pki.ca_der).expect("issuer");
    // Signed before any request, as the server's cache does.
    let id = issuer
        .cert_id(HashAlg::Sha1, LEAF1_SERIAL)
        .expect("cert id");
    let resp = ocsp::build_response(
        &pki.ocsp_der,
        &pki.ocsp_signer,
        now(),
        &[answer(&id, CertStatus::Good)],
        None,
    )
    .expect("response");
    pki.write("resp.der", &resp);
    let out = openssl(
        &pki.dir,
        "ocsp -issuer ca.pem -cert leaf1.pem -no_nonce -respin resp.der -CAfile chain.pem",
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf1.pem: good"), "{out}");

    // A request for the same certificate finds it by CertID.
    let der = openssl_request(&pki, "req.der", "-cert leaf1.pem -no_nonce");
    let req = ocsp::parse_request(&der).expect("parse");
    let cache = std::collections::HashMap::from([(id, resp)]);
    assert!(cache.contains_key(&req.certs[0]));

    // Serials the CA could not have issued.
    assert!(matches!(
        issuer.cert_id(HashAlg::Sha1, &[]),
        Err(Error::InvalidSerial)
    ));
    assert!(matches!(
        issuer.cert_id(HashAlg::Sha1, &[0, 0]),
        Err(Error::InvalidSerial)
    ));
    assert!(matches!(
        issuer.cert_id(HashAlg::Sha1, &[1; 21]),
        Err(Error::InvalidSerial)
    ));
}

#[test]
fn tampered_signature_fails_openssl_verification() {
    if !openssl_or_skip("tampered_signature_fails_openssl_verification") {
        return;
    }
    let pki = TestPki::new();
    let id = IssuerId::from_cert_der(&pki.ca_der)
        .and_then(|i| i.cert_id(HashAlg::Sha1, LEAF1_SERIAL))
        .expect("cert id");
    let resp = ocsp::build_response(
        &pki.ocsp_der,
        &pki.ocsp_signer,
        now(),
        &[answer(&id, CertStatus::Good)],
        None,
    )
    .expect("response");
    let verify = |resp: &[u8]| {
        pki.write("resp.der", resp);
        openssl_any(
            &pki.dir,
            "ocsp -issuer ca.pem -cert leaf1.pem -no_nonce -respin resp.der -CAfile chain.pem",
        )
    };
    let out = verify(&resp);
    assert!(out.status.success(), "{}", text(&out));

    // Flip one byte inside r of the DER Ecdsa-Sig-Value (30 len 02 len r...).
    let sig = basic_response(&resp).signature.raw_bytes().to_vec();
    let at = resp
        .windows(sig.len())
        .position(|w| w == sig)
        .expect("signature in response")
        + 10;
    let mut bad = resp.clone();
    bad[at] ^= 0x01;
    let out = verify(&bad);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("Response Verify Failure"), "{shown}");
}

#[test]
fn responder_certificate_checks() {
    if !openssl_or_skip("responder_certificate_checks") {
        return;
    }
    let pki = TestPki::new();
    assert!(matches!(
        Responder::new(&pki.ocsp_der, &pki.ca_signer),
        Err(Error::KeyMismatch(_))
    ));
    assert!(matches!(
        Responder::new(&pki.leaf1_der, &pki.leaf1_signer),
        Err(Error::NotOcspResponder)
    ));
    let responder = Responder::new(&pki.ocsp_der, &pki.ocsp_signer).expect("responder");
    let id = IssuerId::from_cert_der(&pki.ca_der)
        .and_then(|i| i.cert_id(HashAlg::Sha1, LEAF1_SERIAL))
        .expect("cert id");
    let singles = [answer(&id, CertStatus::Good)];
    assert!(matches!(
        responder.respond(&pki.ca_signer, now(), &singles, None),
        Err(Error::KeyMismatch(_))
    ));
    assert!(matches!(
        responder.respond(&pki.ocsp_signer, now(), &[], None),
        Err(Error::Invalid(_))
    ));

    // The CA may answer itself; then no certificate is sent along.
    let resp =
        ocsp::build_response(&pki.ca_der, &pki.ca_signer, now(), &singles, None).expect("response");
    assert_eq!(basic_response(&resp).certs, None);
    pki.write("resp.der", &resp);
    let out = openssl(
        &pki.dir,
        "ocsp -issuer ca.pem -cert leaf1.pem -no_nonce -respin resp.der -CAfile chain.pem",
    );
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("leaf1.pem: good"), "{out}");
}

/// `req` with its requestList replaced by `n` copies of its first Request.
fn with_copies(req: &asn1::OcspRequest, n: usize) -> Vec<u8> {
    let mut req = req.clone();
    let first = req.tbs_request.request_list[0].clone();
    req.tbs_request.request_list = vec![first; n];
    req.to_der().expect("encode")
}

fn with_nonces(req: &asn1::OcspRequest, nonces: &[&[u8]]) -> Vec<u8> {
    let mut req = req.clone();
    let exts = nonces
        .iter()
        .map(|n| x509_cert::ext::Extension {
            extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(*n).unwrap().to_der().unwrap()).unwrap(),
        })
        .collect();
    req.tbs_request.request_extensions = Some(exts);
    req.to_der().expect("encode")
}

#[test]
fn bad_requests_get_specific_errors() {
    if !openssl_or_skip("bad_requests_get_specific_errors") {
        return;
    }
    let pki = TestPki::new();
    let good = openssl_request(&pki, "req.der", "-cert leaf1.pem -no_nonce");
    let parsed = decode_request(&good);
    let malformed = |der: &[u8]| {
        let err = ocsp::parse_request(der).expect_err("refused");
        assert_eq!(
            ocsp::status_for_error(&err),
            OcspErrorStatus::MalformedRequest
        );
        err
    };

    assert!(
        matches!(malformed(&good[..good.len() - 1]), Error::OcspMalformed(_)),
        "truncated"
    );
    let mut wrong_tag = good.clone();
    wrong_tag[0] = 0x31; // SET instead of SEQUENCE
    assert!(
        matches!(malformed(&wrong_tag), Error::OcspMalformed(_)),
        "wrong tag"
    );
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    assert!(
        matches!(malformed(&trailing), Error::OcspMalformed(_)),
        "trailing bytes"
    );
    assert!(matches!(malformed(&[]), Error::OcspMalformed(_)), "empty");
    assert!(matches!(
        malformed(b"GET / HTTP/1.1\r\n\r\n"),
        Error::OcspMalformed(_)
    ));
    // A length running past the end of the input.
    assert!(matches!(
        malformed(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30]),
        Error::OcspMalformed(_)
    ));

    assert!(ocsp::parse_request(&with_copies(&parsed, MAX_CERTS_PER_REQUEST)).is_ok());
    assert!(matches!(
        malformed(&with_copies(&parsed, MAX_CERTS_PER_REQUEST + 1)),
        Error::OcspTooManyCertificates { count: 21, max: 20 }
    ));
    assert!(matches!(
        malformed(&with_copies(&parsed, 1000)),
        Error::OcspRequestTooLarge { .. }
    ));
    assert!(matches!(
        malformed(&with_copies(&parsed, 0)),
        Error::OcspNoCertificates
    ));

    let nonce = ocsp::parse_request(&with_nonces(&parsed, &[&[7; 32]])).expect("32-byte nonce");
    assert_eq!(nonce.nonce, Some(vec![7; 32]));
    assert!(matches!(
        malformed(&with_nonces(&parsed, &[&[7; 33]])),
        Error::OcspNonceLength { len: 33 }
    ));
    assert!(matches!(
        malformed(&with_nonces(&parsed, &[&[]])),
        Error::OcspNonceLength { len: 0 }
    ));
    assert!(matches!(
        malformed(&with_nonces(&parsed, &[&[1], &[2]])),
        Error::OcspDuplicateNonce
    ));
    // A pre-RFC 8954 nonce: raw bytes, not an OCTET STRING.
    let mut raw = parsed.clone();
    raw.tbs_request.request_extensions = Some(vec![x509_cert::ext::Extension {
        extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new([0xde, 0xad, 0xbe, 0xef]).expect("octets"),
    }]);
    assert!(matches!(
        malformed(&raw.to_der().expect("encode")),
        Error::OcspMalformed(_)
    ));

    // Errors of ours are internalError.
    assert_eq!(
        ocsp::status_for_error(&Error::Sign("hsm down".into())),
        OcspErrorStatus::InternalError
    );
}

#[test]
fn error_responses_are_read_by_openssl() {
    if !openssl_or_skip("error_responses_are_read_by_openssl") {
        return;
    }
    let pki = TestPki::new();
    for (status, shown) in [
        (OcspErrorStatus::MalformedRequest, "malformedrequest (1)"),
        (OcspErrorStatus::InternalError, "internalerror (2)"),
        (OcspErrorStatus::TryLater, "trylater (3)"),
        (OcspErrorStatus::SigRequired, "sigrequired (5)"),
        (OcspErrorStatus::Unauthorized, "unauthorized (6)"),
    ] {
        let der = ocsp::error_response(status);
        let decoded = asn1::OcspResponse::from_der(&der).expect("decodes");
        assert_eq!(decoded.response_status, status.into());
        assert_eq!(decoded.response_bytes, None);
        pki.write("err.der", &der);
        let out = text(&openssl_any(&pki.dir, "ocsp -respin err.der -resp_text"));
        assert!(out.contains(&format!("Responder Error: {shown}")), "{out}");
    }
}

#[test]
fn garbage_never_panics() {
    // Every prefix and single-byte corruption of a valid request: an error or a parse,
    // never a panic. Runs without openssl on a request made with our own types.
    let issuer_less = asn1::OcspRequest {
        tbs_request: asn1::TbsRequest {
            version: asn1::Version::V1,
            requestor_name: None,
            request_list: vec![asn1::Request {
                req_cert: asn1::CertId {
                    hash_algorithm: spki::AlgorithmIdentifierOwned {
                        oid: const_oid::db::rfc5912::ID_SHA_1,
                        parameters: None,
                    },
                    issuer_name_hash: OctetString::new([1; 20]).expect("octets"),
                    issuer_key_hash: OctetString::new([2; 20]).expect("octets"),
                    serial_number: der::asn1::Int::new(&[0x10, 0x01]).expect("int"),
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    let der = with_nonces(&issuer_less, &[&[9; 16]]);
    let req = ocsp::parse_request(&der).expect("parse our own request");
    assert_eq!(req.certs[0].serial(), LEAF1_SERIAL);
    for n in 0..der.len() {
        let _ = ocsp::parse_request(&der[..n]);
        for bit in 0..8 {
            let mut bad = der.clone();
            bad[n] ^= 1 << bit;
            let _ = ocsp::parse_request(&bad);
        }
    }
}
