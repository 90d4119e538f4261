//! Certificate profiles, checked by openssl: the chain verifies, and the extensions a
//! relying party looks for are there.

use std::path::Path;
use std::process::Command;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use segl_pki::profile::{self, DEFAULT_POLICY_OID, Issuer, Profile, Request, Urls};
use segl_pki::{Error, Signer};
use time::{Duration, OffsetDateTime};

struct TestKey {
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl TestKey {
    fn new() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        // SPKI of a P-256 key: fixed prefix + the uncompressed point.
        let mut spki = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(pair.public_key().as_ref());
        TestKey { pair, spki }
    }
}

impl Signer for TestKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), msg)
            .map_err(|e| Error::Sign(e.to_string()))?;
        Ok(sig.as_ref().to_vec())
    }
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn urls() -> Urls {
    Urls {
        base: "https://eid.example".into(),
        policy: DEFAULT_POLICY_OID.into(),
    }
}

fn openssl_present() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("openssl is required in CI");
    }
    if !ok {
        eprintln!("skipped: openssl not installed");
    }
    ok
}

fn write_pem(dir: &Path, name: &str, der: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, profile::to_pem(der).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Hierarchy {
    root: Vec<u8>,
    issuing: Vec<u8>,
    issuing_key: TestKey,
}

fn hierarchy(now: OffsetDateTime) -> Hierarchy {
    let root_key = TestKey::new();
    let root = profile::issue(
        &Request {
            profile: Profile::RootCa {
                common_name: "segl Test Root CA".into(),
                organization: "segl test".into(),
            },
            public_key_der: &root_key.spki,
            serial: &[0x01, 0x02],
            not_before: now,
            not_after: now + Duration::days(3650),
        },
        &Issuer {
            cert_der: None,
            signer: &root_key,
        },
        &urls(),
    )
    .unwrap();
    let issuing_key = TestKey::new();
    let issuing = profile::issue(
        &Request {
            profile: Profile::IssuingCa {
                name: "persons".into(),
                common_name: "segl Test Persons CA".into(),
                organization: "segl test".into(),
            },
            public_key_der: &issuing_key.spki,
            serial: &[0x03],
            not_before: now,
            not_after: now + Duration::days(3000),
        },
        &Issuer {
            cert_der: Some(&root),
            signer: &root_key,
        },
        &urls(),
    )
    .unwrap();
    Hierarchy {
        root,
        issuing,
        issuing_key,
    }
}

#[test]
fn person_certificate_verifies_and_carries_the_natural_person_profile() {
    if !openssl_present() {
        return;
    }
    let now = OffsetDateTime::now_utc() - Duration::minutes(1);
    let h = hierarchy(now);
    let person_key = TestKey::new();
    let person = profile::issue(
        &Request {
            profile: Profile::Person {
                ca: "persons".into(),
                given_name: "Kari Åse".into(),
                surname: "Nordmann, Jr.".into(),
                serial_number: "UN:NO-9578-4001-0000001".into(),
            },
            public_key_der: &person_key.spki,
            serial: &[0x4a, 0x11, 0x22, 0x33],
            not_before: now,
            not_after: now + Duration::days(4 * 365),
        },
        &Issuer {
            cert_der: Some(&h.issuing),
            signer: &h.issuing_key,
        },
        &urls(),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let root = write_pem(dir.path(), "root.pem", &h.root);
    let issuing = write_pem(dir.path(), "issuing.pem", &h.issuing);
    let leaf = write_pem(dir.path(), "person.pem", &person);
    let (ok, out) = openssl(&["verify", "-CAfile", &root, "-untrusted", &issuing, &leaf]);
    assert!(ok, "openssl verify: {out}");
    assert!(out.contains("person.pem: OK"), "{out}");

    let (ok, text) = openssl(&[
        "x509",
        "-in",
        &leaf,
        "-noout",
        "-text",
        "-nameopt",
        "utf8,sep_comma_plus",
    ]);
    assert!(ok, "{text}");
    for expected in [
        "Non Repudiation",
        "Policy: 2.25.16504666654713297426761069446264920270",
        "OCSP - URI:https://eid.example/pki/ocsp",
        "CA Issuers - URI:https://eid.example/pki/ca/persons.cer",
        "URI:https://eid.example/pki/crl/persons.crl",
        "serialNumber=UN:NO-9578-4001-0000001",
        "GN=Kari Åse",
        "SN=Nordmann, Jr.,GN=Kari Åse",
        "CA:FALSE",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(
        !text.contains("Digital Signature"),
        "a person key is for signatures only:\n{text}"
    );

    let summary = profile::summary(&person).unwrap();
    assert_eq!(summary.serial_hex, "4a112233");
    assert_eq!(
        summary.not_after - summary.not_before,
        Duration::days(4 * 365)
    );
    assert_eq!(profile::public_key_der(&person).unwrap(), person_key.spki);
    assert_eq!(
        profile::from_pem(&profile::to_pem(&person).unwrap()).unwrap(),
        person
    );
}

#[test]
fn a_certificate_signed_by_another_key_fails_verification() {
    if !openssl_present() {
        return;
    }
    let now = OffsetDateTime::now_utc() - Duration::minutes(1);
    let h = hierarchy(now);
    let stranger = TestKey::new();
    let leaf_key = TestKey::new();
    // Claims the persons CA as issuer but is signed by a stranger's key.
    let forged = profile::issue(
        &Request {
            profile: Profile::Person {
                ca: "persons".into(),
                given_name: "Ola".into(),
                surname: "Nordmann".into(),
                serial_number: "UN:NO-1".into(),
            },
            public_key_der: &leaf_key.spki,
            serial: &[0x05],
            not_before: now,
            not_after: now + Duration::days(30),
        },
        &Issuer {
            cert_der: Some(&h.issuing),
            signer: &stranger,
        },
        &urls(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = write_pem(dir.path(), "root.pem", &h.root);
    let issuing = write_pem(dir.path(), "issuing.pem", &h.issuing);
    let leaf = write_pem(dir.path(), "forged.pem", &forged);
    let (ok, out) = openssl(&["verify", "-CAfile", &root, "-untrusted", &issuing, &leaf]);
    assert!(!ok, "a forged certificate verified: {out}");
    assert!(out.contains("signature failure"), "{out}");
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let now = OffsetDateTime::now_utc();
    let h = hierarchy(now);
    let key = TestKey::new();
    let person = |given: &str, serial: &'static [u8], not_after| {
        profile::issue(
            &Request {
                profile: Profile::Person {
                    ca: "persons".into(),
                    given_name: given.into(),
                    surname: "Nordmann".into(),
                    serial_number: "UN:NO-1".into(),
                },
                public_key_der: &key.spki,
                serial,
                not_before: now,
                not_after,
            },
            &Issuer {
                cert_der: Some(&h.issuing),
                signer: &h.issuing_key,
            },
            &urls(),
        )
    };
    let later = now + Duration::days(1);
    let err = |r: Result<Vec<u8>, Error>| r.unwrap_err().to_string();
    assert!(err(person("Kari", &[0x80, 1], later)).contains("positive"));
    assert!(err(person("Kari", &[], later)).contains("1 to 20 bytes"));
    assert!(err(person("Kari", &[1], now)).contains("notAfter"));
    assert!(err(person(" ", &[1], later)).contains("given name"));
    // A person certificate cannot sign itself.
    let selfsigned = profile::issue(
        &Request {
            profile: Profile::Person {
                ca: "persons".into(),
                given_name: "Kari".into(),
                surname: "Nordmann".into(),
                serial_number: "UN:NO-1".into(),
            },
            public_key_der: &key.spki,
            serial: &[1],
            not_before: now,
            not_after: later,
        },
        &Issuer {
            cert_der: None,
            signer: &key,
        },
        &urls(),
    );
    assert!(err(selfsigned).contains("only a root"));
    // Garbage instead of a public key.
    let garbage = profile::issue(
        &Request {
            profile: Profile::RootCa {
                common_name: "x".into(),
                organization: "y".into(),
            },
            public_key_der: b"\x30\x03\x02\x01",
            serial: &[1],
            not_before: now,
            not_after: later,
        },
        &Issuer {
            cert_der: None,
            signer: &key,
        },
        &urls(),
    );
    assert!(matches!(garbage, Err(Error::Der(_))));
    assert!(
        profile::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .is_err()
    );
}

#[test]
fn policy_oids_encode_as_x690_says() {
    // 2.25.<uuid>: the first two arcs as 2*40+25 = 105, then base-128 groups.
    let any = profile::policy_oid("1.2.840.113549").unwrap();
    assert_eq!(any.value(), &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]);
    assert!(profile::policy_oid("3.1").is_err());
    assert!(profile::policy_oid("1.40.1").is_err());
    assert!(profile::policy_oid("1.2.x").is_err());
}
