//! CMS signatures per second against raw ECDSA P-256 signatures per second, with the same
//! aws-lc-rs key behind the same `Signer`.
//!
//! `cargo run --release -p segl-pki --example cms_speed [seconds-per-round] [rounds]`
//!
//! Makes a throwaway root → CA → signer hierarchy with segl's own profiles (no openssl
//! needed), then alternates rounds of raw `Signer::sign` over a 32-byte digest-sized
//! message and `CmsSigner::sign` over a digest, so that both see the same machine load.
//! Prints one JSON object.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use segl_pki::cms::{CmsSigner, verify_detached};
use segl_pki::profile::{self, DEFAULT_POLICY_OID, Issuer, Profile, Request, Urls};
use segl_pki::{Error, Signer};
use time::OffsetDateTime;

struct AwsLcSigner {
    key: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl AwsLcSigner {
    fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("generate key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .expect("pkcs8");
        let spki = key.public_key().as_der().expect("spki").as_ref().to_vec();
        Self { key, spki }
    }
}

impl Signer for AwsLcSigner {
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

fn issue(
    profile: Profile,
    subject: &AwsLcSigner,
    serial: &[u8],
    issuer_cert: Option<&[u8]>,
    issuer: &AwsLcSigner,
) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    profile::issue(
        &Request {
            profile,
            public_key_der: subject.public_key_der(),
            serial,
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(365),
        },
        &Issuer {
            cert_der: issuer_cert,
            signer: issuer,
        },
        &Urls {
            base: "https://eid.example".into(),
            policy: DEFAULT_POLICY_OID.into(),
        },
    )
    .expect("issue")
}

/// Runs `f` for `d`, returning how many calls completed.
fn run_for(d: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    (n, start.elapsed())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let rounds: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let round = Duration::from_secs_f64(secs);

    let root_key = AwsLcSigner::generate();
    let ca_key = AwsLcSigner::generate();
    let key = AwsLcSigner::generate();
    let root = issue(
        Profile::RootCa {
            common_name: "bench root".into(),
            organization: "segl".into(),
        },
        &root_key,
        &[1],
        None,
        &root_key,
    );
    let ca = issue(
        Profile::IssuingCa {
            name: "persons".into(),
            common_name: "bench persons".into(),
            organization: "segl".into(),
        },
        &ca_key,
        &[2],
        Some(&root),
        &root_key,
    );
    let cert = issue(
        Profile::Person {
            ca: "persons".into(),
            given_name: "Kari".into(),
            surname: "Nordmann".into(),
            serial_number: "UUID:bench".into(),
        },
        &key,
        &[0x10, 0x01],
        Some(&ca),
        &ca_key,
    );
    let chain = vec![ca];
    let cms = CmsSigner::new(&cert, &chain).expect("prepare");
    let digest = [0x5a_u8; 32];
    let when = OffsetDateTime::now_utc();
    // The signatures measured below are good ones.
    let sample = cms.sign(&key, &digest, when, None).expect("sign");
    verify_detached(&sample, &digest).expect("verify");

    let (mut raw_n, mut raw_t, mut cms_n, mut cms_t) = (0u64, Duration::ZERO, 0u64, Duration::ZERO);
    for _ in 0..rounds {
        let (n, t) = run_for(round, || {
            black_box(key.sign(black_box(&digest)).expect("raw sign"));
        });
        raw_n += n;
        raw_t += t;
        let (n, t) = run_for(round, || {
            black_box(
                cms.sign(&key, black_box(&digest), when, None)
                    .expect("cms sign"),
            );
        });
        cms_n += n;
        cms_t += t;
    }
    let raw_rate = raw_n as f64 / raw_t.as_secs_f64();
    let cms_rate = cms_n as f64 / cms_t.as_secs_f64();
    println!(
        "{{\"rounds\": {rounds}, \"seconds_per_round\": {secs}, \
         \"raw_ecdsa_p256_per_s\": {raw_rate:.0}, \"cms_sign_per_s\": {cms_rate:.0}, \
         \"cms_over_raw\": {:.3}, \"cms_der_bytes\": {}}}",
        cms_rate / raw_rate,
        sample.len()
    );
}
