//! Detached CMS signatures (CAdES baseline B) against openssl 3: what `sign_detached`
//! makes, `openssl cms -verify` accepts (and rejects once content or signature changes);
//! `verify_detached` reads ours and openssl's, and names what is wrong with bad ones.

mod common;

use common::{LEAF1_SERIAL, TestPki, TestSigner, openssl, openssl_any, openssl_or_skip, text};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use segl_pki::cms::{self, CmsSigner, SignInput, VerifiedSignature};
use segl_pki::ocsp::{CertStatus, HashAlg, IssuerId, Responder, SingleAnswer};
use segl_pki::profile::{self, DEFAULT_POLICY_OID, Issuer, Profile, Request, Urls};
use segl_pki::{Error, Signer};
use sha2::{Digest, Sha256};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const CONTENT: &[u8] = b"%PDF-1.7 pretend byte range\n\x00\x01\x02 binary too\r\n";

fn digest(content: &[u8]) -> [u8; 32] {
    Sha256::digest(content).into()
}

/// Whole seconds: CMS signing times carry no fraction.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).expect("zero nanoseconds")
}

/// leaf1 (keyUsage digitalSignature, made by openssl) signs CONTENT with its chain [ca].
fn sign_leaf1(pki: &TestPki, ocsp: Option<&[u8]>) -> Vec<u8> {
    let chain = [pki.ca_der.clone()];
    cms::sign_detached(
        &SignInput {
            content_digest: digest(CONTENT),
            signer_cert_der: &pki.leaf1_der,
            chain_der: &chain,
            signing_time: now(),
            ocsp_response_der: ocsp,
        },
        &pki.leaf1_signer,
    )
    .expect("sign")
}

/// `openssl cms -verify` of `sig` over `content`, with `extra` arguments; Output whatever
/// the status.
fn openssl_verify(pki: &TestPki, sig: &[u8], content: &[u8], extra: &str) -> std::process::Output {
    pki.write("sig.der", sig);
    pki.write("content.bin", content);
    openssl_any(
        &pki.dir,
        &format!(
            "cms -verify -inform DER -in sig.der -content content.bin -binary \
             -CAfile root.pem -out /dev/null {extra}"
        ),
    )
}

fn assert_openssl_accepts(pki: &TestPki, sig: &[u8], extra: &str) {
    let out = openssl_verify(pki, sig, CONTENT, extra);
    let text = text(&out);
    assert!(
        out.status.success() && text.contains("Verification successful"),
        "openssl cms -verify {extra}:\n{text}"
    );
}

fn assert_openssl_rejects(pki: &TestPki, sig: &[u8], content: &[u8]) {
    let out = openssl_verify(pki, sig, content, "-purpose any");
    let text = text(&out);
    assert!(
        !out.status.success() && !text.contains("Verification successful"),
        "openssl should have refused:\n{text}"
    );
}

fn urls() -> Urls {
    Urls {
        base: "https://eid.example".into(),
        policy: DEFAULT_POLICY_OID.into(),
    }
}

/// A person certificate from segl's own profile (keyUsage nonRepudiation only), issued
/// by the openssl-made CA, and its key.
fn person(pki: &TestPki, serial: &[u8], key: &TestSigner) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    profile::issue(
        &Request {
            profile: Profile::Person {
                ca: "persons".into(),
                given_name: "Kari".into(),
                surname: "Nordmann".into(),
                serial_number: "UUID:0b2f0e1c".into(),
            },
            public_key_der: key.public_key_der(),
            serial,
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(365),
        },
        &Issuer {
            cert_der: Some(&pki.ca_der),
            signer: &pki.ca_signer,
        },
        &urls(),
    )
    .expect("issue person certificate")
}

/// A good OCSP response for leaf1 from the delegated responder.
fn ocsp_for_leaf1(pki: &TestPki) -> Vec<u8> {
    let issuer = IssuerId::from_cert_der(&pki.ca_der).expect("issuer");
    let cert_id = issuer
        .cert_id(HashAlg::Sha1, LEAF1_SERIAL)
        .expect("cert id");
    let now = OffsetDateTime::now_utc();
    Responder::new(&pki.ocsp_der, &pki.ocsp_signer)
        .expect("responder")
        .respond(
            &pki.ocsp_signer,
            now,
            &[SingleAnswer {
                cert_id,
                status: CertStatus::Good,
                this_update: now - Duration::minutes(1),
                next_update: now + Duration::days(1),
            }],
            None,
        )
        .expect("OCSP response")
}

/// Decodes our signature with the `cms` crate's types, lets `edit` change the signed
/// attributes, and signs them again with `signer`: a validly signed CMS with other
/// attributes than `CmsSigner` writes.
fn resign(
    sig: &[u8],
    signer: &dyn Signer,
    edit: impl FnOnce(&mut Vec<x509_cert::attr::Attribute>),
) -> Vec<u8> {
    use ::cms::content_info::ContentInfo;
    use ::cms::signed_data::{SignedData, SignerInfos};

    let mut ci = ContentInfo::from_der(sig).unwrap();
    let mut sd: SignedData = ci.content.decode_as().unwrap();
    let mut si = sd.signer_infos.0.as_slice()[0].clone();
    let mut attrs: Vec<_> = si.signed_attrs.unwrap().into_vec();
    edit(&mut attrs);
    let attrs = SetOfVec::try_from(attrs).unwrap();
    si.signature = OctetString::new(signer.sign(&attrs.to_der().unwrap()).unwrap()).unwrap();
    si.signed_attrs = Some(attrs);
    sd.signer_infos = SignerInfos::try_from(vec![si]).unwrap();
    ci.content = Any::encode_from(&sd).unwrap();
    ci.to_der().unwrap()
}

/// The ESS signing-certificate-v2 attribute's OID.
const SIGNING_CERT_V2: &str = "1.2.840.113549.1.9.16.2.47";

#[test]
fn openssl_verifies_signature_and_shows_cades_attributes() {
    if !openssl_or_skip("openssl_verifies_signature_and_shows_cades_attributes") {
        return;
    }
    let pki = TestPki::new();
    let sig = sign_leaf1(&pki, None);
    assert_openssl_accepts(&pki, &sig, "-purpose any");
    // The chain is in the signature; with it also given apart, the same.
    assert_openssl_accepts(&pki, &sig, "-purpose any -certfile ca.pem");

    let printed = openssl(&pki.dir, "cms -cmsout -print -inform DER -in sig.der");
    // openssl prints "object: id-smime-aa-signingCertificateV2 (1.2.840.113549.1.9.16.2.47)".
    assert!(
        printed.contains(&format!("({SIGNING_CERT_V2})")),
        "{printed}"
    );
    assert!(printed.contains("signingTime"), "{printed}");
    assert!(printed.contains("messageDigest"), "{printed}");
    assert!(printed.contains("contentType"), "{printed}");
    assert!(
        printed.contains("eContent: <ABSENT>"),
        "detached:\n{printed}"
    );
    assert!(printed.contains("ecdsa-with-SHA256"), "{printed}");
}

#[test]
fn openssl_rejects_a_changed_content_byte() {
    if !openssl_or_skip("openssl_rejects_a_changed_content_byte") {
        return;
    }
    let pki = TestPki::new();
    let sig = sign_leaf1(&pki, None);
    let mut changed = CONTENT.to_vec();
    changed[3] ^= 0x01;
    assert_openssl_rejects(&pki, &sig, &changed);
}

#[test]
fn openssl_rejects_a_flipped_signature_byte() {
    if !openssl_or_skip("openssl_rejects_a_flipped_signature_byte") {
        return;
    }
    let pki = TestPki::new();
    let mut sig = sign_leaf1(&pki, None);
    // No unsigned attributes: the DER ends with the signature's s.
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    assert_openssl_rejects(&pki, &sig, CONTENT);
    assert!(matches!(
        cms::verify_detached(&sig, &digest(CONTENT)),
        Err(Error::CmsBadSignature)
    ));
}

/// segl's person profile has keyUsage nonRepudiation only. openssl's default purpose for
/// `cms -verify` is smimesign, which accepts digitalSignature or nonRepudiation (and no
/// EKU at all): so no `-purpose` flag is needed.
#[test]
fn openssl_accepts_person_profile_with_default_purpose() {
    if !openssl_or_skip("openssl_accepts_person_profile_with_default_purpose") {
        return;
    }
    let pki = TestPki::new();
    let key = TestSigner::generate();
    let cert = person(&pki, &[0x42, 0x01], &key);
    let chain = [pki.ca_der.clone()];
    let sig = cms::sign_detached(
        &SignInput {
            content_digest: digest(CONTENT),
            signer_cert_der: &cert,
            chain_der: &chain,
            signing_time: now(),
            ocsp_response_der: None,
        },
        &key,
    )
    .expect("sign");
    assert_openssl_accepts(&pki, &sig, "");
    let v = cms::verify_detached(&sig, &digest(CONTENT)).expect("verify");
    assert_eq!(v.signer_cert_der, cert);
}

#[test]
fn openssl_verifies_with_embedded_ocsp_response_and_verify_returns_it() {
    if !openssl_or_skip("openssl_verifies_with_embedded_ocsp_response_and_verify_returns_it") {
        return;
    }
    let pki = TestPki::new();
    let ocsp = ocsp_for_leaf1(&pki);
    let sig = sign_leaf1(&pki, Some(&ocsp));
    assert_openssl_accepts(&pki, &sig, "-purpose any");
    let printed = openssl(&pki.dir, "cms -cmsout -print -inform DER -in sig.der");
    // RFC 5940's id-ri-ocsp-response, in crls as `other`.
    // openssl 3.0 prints "otherRevInfoFormat: undefined (1.3.6.1.5.5.7.16.2)".
    assert!(
        printed.contains("d.other:")
            && printed.contains("otherRevInfoFormat: ")
            && printed.contains("(1.3.6.1.5.5.7.16.2)")
            && printed.contains("Basic OCSP Response"),
        "{printed}"
    );
    let v = cms::verify_detached(&sig, &digest(CONTENT)).expect("verify");
    assert_eq!(v.ocsp_response_der.as_deref(), Some(ocsp.as_slice()));
}

#[test]
fn verify_detached_round_trip() {
    if !openssl_or_skip("verify_detached_round_trip") {
        return;
    }
    let pki = TestPki::new();
    let chain = [pki.ca_der.clone()];
    let signer = CmsSigner::new(&pki.leaf1_der, &chain).expect("prepare");
    for (when, d) in [
        (datetime!(2026-11-30 12:34:56 UTC), digest(CONTENT)),
        // From 2050, GeneralizedTime.
        (datetime!(2051-01-02 03:04:05 UTC), digest(b"other")),
    ] {
        let sig = signer
            .sign(&pki.leaf1_signer, &d, when, None)
            .expect("sign");
        let v = cms::verify_detached(&sig, &d).expect("verify");
        assert_eq!(
            v,
            VerifiedSignature {
                signer_cert_der: pki.leaf1_der.clone(),
                other_certs_der: vec![pki.ca_der.clone()],
                signing_time: when,
                ocsp_response_der: None,
            }
        );
    }
    // sign_detached and CmsSigner::sign write the same structure.
    let when = datetime!(2026-11-30 12:00:00 UTC);
    let a = signer
        .sign(&pki.leaf1_signer, &digest(CONTENT), when, None)
        .unwrap();
    let b = cms::sign_detached(
        &SignInput {
            content_digest: digest(CONTENT),
            signer_cert_der: &pki.leaf1_der,
            chain_der: &chain,
            signing_time: when,
            ocsp_response_der: None,
        },
        &pki.leaf1_signer,
    )
    .unwrap();
    // Equal but for the ECDSA signature value (random k, so its length varies too).
    let without_signature = |der: &[u8]| {
        let ci = ::cms::content_info::ContentInfo::from_der(der).unwrap();
        let mut sd: ::cms::signed_data::SignedData = ci.content.decode_as().unwrap();
        let mut si = sd.signer_infos.0.as_slice()[0].clone();
        si.signature = OctetString::new(Vec::new()).unwrap();
        sd.signer_infos = ::cms::signed_data::SignerInfos::try_from(vec![si]).unwrap();
        sd
    };
    assert_eq!(without_signature(&a), without_signature(&b));
    // CmsSigner joins pre-encoded pieces: the `cms` crate's types, decoding and encoding
    // again, give the same bytes.
    let ci = ::cms::content_info::ContentInfo::from_der(&a).unwrap();
    let sd: ::cms::signed_data::SignedData = ci.content.decode_as().unwrap();
    assert_eq!(sd.to_der().unwrap(), ci.content.to_der().unwrap());
    assert_eq!(ci.to_der().unwrap(), a);
}

#[test]
fn verify_detached_names_what_is_wrong() {
    if !openssl_or_skip("verify_detached_names_what_is_wrong") {
        return;
    }
    let pki = TestPki::new();
    let sig = sign_leaf1(&pki, None);
    let d = digest(CONTENT);
    assert!(cms::verify_detached(&sig, &d).is_ok());

    let wrong = digest(b"another document");
    assert!(matches!(
        cms::verify_detached(&sig, &wrong),
        Err(Error::CmsDigestMismatch)
    ));
    assert!(matches!(
        cms::verify_detached(b"not DER at all", &d),
        Err(Error::NotCms(_))
    ));
    assert!(matches!(
        cms::verify_detached(&[], &d),
        Err(Error::NotCms(_))
    ));
    for cut in [1, 10, sig.len() / 2, sig.len() - 1] {
        assert!(
            matches!(cms::verify_detached(&sig[..cut], &d), Err(Error::NotCms(_))),
            "truncated to {cut}"
        );
    }
    let mut trailing = sig.clone();
    trailing.push(0);
    assert!(matches!(
        cms::verify_detached(&trailing, &d),
        Err(Error::NotCms(_))
    ));
    // A certificate is DER but not CMS.
    assert!(matches!(
        cms::verify_detached(&pki.leaf1_der, &d),
        Err(Error::NotCms(_))
    ));

    // Without signing-certificate-v2, validly signed: not CAdES.
    let without = resign(&sig, &pki.leaf1_signer, |attrs| {
        attrs.retain(|a| a.oid.to_string() != SIGNING_CERT_V2);
    });
    assert!(matches!(
        cms::verify_detached(&without, &d),
        Err(Error::CmsSigningCertificateMissing)
    ));
    // signing-certificate-v2 naming another certificate (the CA's hash), validly signed.
    let other = resign(&sig, &pki.leaf1_signer, |attrs| {
        let a = attrs
            .iter_mut()
            .find(|a| a.oid.to_string() == SIGNING_CERT_V2)
            .unwrap();
        let mut value: cms::asn1::SigningCertificateV2 =
            a.values.get(0).unwrap().decode_as().unwrap();
        value.certs[0].cert_hash = OctetString::new(Sha256::digest(&pki.ca_der).to_vec()).unwrap();
        a.values = SetOfVec::try_from(vec![Any::encode_from(&value).unwrap()]).unwrap();
    });
    assert!(matches!(
        cms::verify_detached(&other, &d),
        Err(Error::CmsSigningCertificateMismatch)
    ));
    // Signed by another key than the certificate's.
    let forged = resign(&sig, &pki.ca_signer, |_| {});
    assert!(matches!(
        cms::verify_detached(&forged, &d),
        Err(Error::CmsBadSignature)
    ));
}

/// openssl-made signatures: with `-cades` they carry signing-certificate-v2 and verify;
/// without, the attribute is missing; with the content inside, not detached.
#[test]
fn verify_detached_reads_openssl_signatures() {
    if !openssl_or_skip("verify_detached_reads_openssl_signatures") {
        return;
    }
    let pki = TestPki::new();
    pki.write("content.bin", CONTENT);
    let d = digest(CONTENT);
    let sign = |name: &str, extra: &str| -> Vec<u8> {
        openssl(
            &pki.dir,
            &format!(
                "cms -sign -binary -in content.bin -signer leaf1.pem -inkey leaf1.key \
                 -certfile ca.pem -md sha256 -outform DER -out {name} {extra}"
            ),
        );
        pki.read(name)
    };
    let v = cms::verify_detached(&sign("cades.der", "-cades"), &d).expect("openssl CAdES");
    assert_eq!(v.signer_cert_der, pki.leaf1_der);
    assert_eq!(v.other_certs_der, vec![pki.ca_der.clone()]);
    assert!(matches!(
        cms::verify_detached(&sign("plain.der", ""), &d),
        Err(Error::CmsSigningCertificateMissing)
    ));
    assert!(matches!(
        cms::verify_detached(&sign("attached.der", "-nodetach -cades"), &d),
        Err(Error::CmsNotDetached)
    ));
}

#[test]
fn signing_refuses_a_key_that_is_not_the_certificates() {
    if !openssl_or_skip("signing_refuses_a_key_that_is_not_the_certificates") {
        return;
    }
    let pki = TestPki::new();
    let signer = CmsSigner::new(&pki.leaf1_der, &[]).expect("prepare");
    assert!(matches!(
        signer.sign(&pki.ca_signer, &digest(CONTENT), now(), None),
        Err(Error::KeyMismatch("signer"))
    ));
    // Garbage certificates and OCSP responses are errors, not panics.
    assert!(CmsSigner::new(b"junk", &[]).is_err());
    assert!(CmsSigner::new(&pki.leaf1_der, &[b"junk".to_vec()]).is_err());
    assert!(
        signer
            .sign(&pki.leaf1_signer, &digest(CONTENT), now(), Some(b"junk"))
            .is_err()
    );
    // An unsigned OCSP error response says nothing about the certificate.
    assert!(
        signer
            .sign(
                &pki.leaf1_signer,
                &digest(CONTENT),
                now(),
                Some(&[0x30, 0x03, 0x0a, 0x01, 0x02])
            )
            .is_err()
    );
}
