//! A test CA made with the `openssl` CLI (an independent implementation to check ours
//! against), and a `Signer` over aws-lc-rs.
//!
//! Hierarchy: P-256 root → issuing CA → { OCSP responder (EKU OCSPSigning, ocsp-nocheck),
//! leaf1 (serial 0x1001), leaf2 (0x1002), leaf3 (a 20-octet serial with the top bit set,
//! so that its DER INTEGER needs a leading zero) }.

#![allow(dead_code)] // each test file uses part of it

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use segl_pki::{Error, Signer};

/// Whether the tests that need `openssl` can run: absent openssl fails the test under CI
/// (env `CI` set) and is a printed skip elsewhere.
pub fn openssl_or_skip(test: &str) -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: the openssl CLI is required when CI is set");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(std::io::stderr(), "SKIP {test}: no openssl CLI on PATH");
    false
}

/// Runs `openssl <cmd>` in `dir` (`cmd` split at whitespace: no argument has a space) and
/// returns its Output whatever its exit status.
pub fn openssl_any(dir: &Path, cmd: &str) -> Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(cmd.split_whitespace())
        .output()
        .expect("run openssl")
}

/// Runs `openssl <cmd>` in `dir` and returns stdout + stderr; panics with both if it failed.
pub fn openssl(dir: &Path, cmd: &str) -> String {
    let out = openssl_any(dir, cmd);
    let text = text(&out);
    assert!(out.status.success(), "openssl {cmd} failed:\n{text}");
    text
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// ECDSA P-256 SHA-256 over aws-lc-rs, from a PKCS#8 key.
pub struct TestSigner {
    key: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl TestSigner {
    pub fn from_pkcs8(der: &[u8]) -> Self {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).expect("pkcs8");
        let spki = key.public_key().as_der().expect("spki").as_ref().to_vec();
        Self { key, spki }
    }

    /// A fresh P-256 key (for certificates issued by `profile::issue` in tests).
    pub fn generate() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .expect("generate P-256 key");
        Self::from_pkcs8(pkcs8.as_ref())
    }
}

impl Signer for TestSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let sig = self
            .key
            .sign(&SystemRandom::new(), msg)
            .map_err(|e| Error::Sign(e.to_string()))?;
        Ok(sig.as_ref().to_vec())
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
}

const CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ocsp]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

pub const LEAF1_SERIAL: &[u8] = &[0x10, 0x01];
pub const LEAF2_SERIAL: &[u8] = &[0x10, 0x02];
pub const LEAF3_SERIAL: &[u8] = &[
    0x8f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13,
];

pub struct TestPki {
    _tmp: tempfile::TempDir,
    /// Where the files live: root.pem, ca.pem, chain.pem (root + CA), ocsp.pem,
    /// leaf1.pem .. leaf3.pem, their keys (*.key) and DER forms (*.der).
    pub dir: PathBuf,
    pub root_der: Vec<u8>,
    pub ca_der: Vec<u8>,
    pub ocsp_der: Vec<u8>,
    pub leaf1_der: Vec<u8>,
    pub ca_signer: TestSigner,
    pub ocsp_signer: TestSigner,
    pub leaf1_signer: TestSigner,
}

impl TestPki {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("openssl.cnf"), CONFIG).expect("write config");
        let d = &dir;
        for name in ["root", "ca", "ocsp", "leaf1", "leaf2", "leaf3"] {
            openssl(
                d,
                &format!("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {name}.key"),
            );
        }
        openssl(
            d,
            "req -x509 -new -config openssl.cnf -extensions root -key root.key \
             -subj /O=segl-test/CN=test-root -days 3650 -set_serial 1 -out root.pem",
        );
        let issue = |name: &str, issuer: &str, serial: &str, ext: &str| {
            openssl(
                d,
                &format!(
                    "req -new -config openssl.cnf -key {name}.key \
                     -subj /O=segl-test/CN=test-{name} -out {name}.csr"
                ),
            );
            openssl(
                d,
                &format!(
                    "x509 -req -in {name}.csr -CA {issuer}.pem -CAkey {issuer}.key \
                     -set_serial {serial} -days 3650 -sha256 -extfile openssl.cnf \
                     -extensions {ext} -out {name}.pem"
                ),
            );
        };
        issue("ca", "root", "2", "ca");
        issue("ocsp", "ca", "0x0100", "ocsp");
        issue("leaf1", "ca", "0x1001", "leaf");
        issue("leaf2", "ca", "0x1002", "leaf");
        issue(
            "leaf3",
            "ca",
            "0x8f0102030405060708090a0b0c0d0e0f10111213",
            "leaf",
        );
        let chain = [
            std::fs::read_to_string(d.join("root.pem")).expect("root.pem"),
            std::fs::read_to_string(d.join("ca.pem")).expect("ca.pem"),
        ]
        .concat();
        std::fs::write(d.join("chain.pem"), chain).expect("chain.pem");

        let der = |name: &str| {
            openssl(
                d,
                &format!("x509 -in {name}.pem -outform DER -out {name}.der"),
            );
            std::fs::read(d.join(format!("{name}.der"))).expect("read der")
        };
        let signer = |name: &str| {
            openssl(
                d,
                &format!("pkcs8 -topk8 -nocrypt -in {name}.key -outform DER -out {name}.p8"),
            );
            TestSigner::from_pkcs8(&std::fs::read(d.join(format!("{name}.p8"))).expect("pkcs8"))
        };
        Self {
            root_der: der("root"),
            ca_der: der("ca"),
            ocsp_der: der("ocsp"),
            leaf1_der: der("leaf1"),
            ca_signer: signer("ca"),
            ocsp_signer: signer("ocsp"),
            leaf1_signer: signer("leaf1"),
            dir,
            _tmp: tmp,
        }
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).expect("write file");
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).expect("read file")
    }
}

impl TestPki {
    /// The signer of one of the keys openssl made (`root`, `ca`, `ocsp`, `leaf1` ..).
    pub fn signer(&self, name: &str) -> TestSigner {
        openssl(
            &self.dir,
            &format!("pkcs8 -topk8 -nocrypt -in {name}.key -outform DER -out {name}.p8"),
        );
        TestSigner::from_pkcs8(&self.read(&format!("{name}.p8")))
    }

    /// A person certificate (segl's profile) issued by the CA with the given validity,
    /// and its fresh key.
    pub fn person(
        &self,
        serial: &[u8],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> (Vec<u8>, TestSigner) {
        let key = TestSigner::generate();
        let cert = segl_pki::profile::issue(
            &segl_pki::profile::Request {
                profile: segl_pki::profile::Profile::Person {
                    ca: "persons".into(),
                    given_name: "Kari".into(),
                    surname: "Nordmann".into(),
                    serial_number: "UUID:0b2f0e1c".into(),
                },
                public_key_der: key.public_key_der(),
                serial,
                not_before,
                not_after,
            },
            &segl_pki::profile::Issuer {
                cert_der: Some(&self.ca_der),
                signer: &self.ca_signer,
            },
            &test_urls(),
        )
        .expect("issue person certificate");
        (cert, key)
    }
}

/// The URLs put in certificates issued with segl's profiles in tests.
pub fn test_urls() -> segl_pki::profile::Urls {
    segl_pki::profile::Urls {
        base: "https://eid.example".into(),
        policy: segl_pki::profile::DEFAULT_POLICY_OID.into(),
    }
}

/// A signed OCSP response about `serial` of the CA (SHA-1 CertID), from the responder
/// certificate `responder_der` with its key, produced at `produced_at`.
pub fn ocsp_response(
    pki: &TestPki,
    responder_der: &[u8],
    responder: &dyn Signer,
    serial: &[u8],
    status: segl_pki::ocsp::CertStatus,
    produced_at: time::OffsetDateTime,
) -> Vec<u8> {
    use segl_pki::ocsp::{HashAlg, IssuerId, Responder, SingleAnswer};
    let cert_id = IssuerId::from_cert_der(&pki.ca_der)
        .expect("issuer")
        .cert_id(HashAlg::Sha1, serial)
        .expect("cert id");
    Responder::new(responder_der, responder)
        .expect("responder")
        .respond(
            responder,
            produced_at,
            &[SingleAnswer {
                cert_id,
                status,
                this_update: produced_at - time::Duration::minutes(1),
                next_update: produced_at + time::Duration::days(1),
            }],
            None,
        )
        .expect("OCSP response")
}
