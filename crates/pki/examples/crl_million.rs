//! How long a CRL of 1,000,000 entries takes to build and how much memory it needs.
//!
//! `cargo run --release -p segl-pki --example crl_million [entries]`
//!
//! Makes a throwaway P-256 CA with the `openssl` CLI, builds the CRL from a lazy iterator
//! (16-octet pseudo-random serials, a reason on every other entry), prints the time and
//! the peak resident set (VmHWM), then has `openssl crl` verify the result.

use std::process::Command;
use std::time::Instant;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use segl_pki::crl::{RevokedEntry, build_crl};
use segl_pki::{Error, RevocationReason, Signer};
use time::{Duration, OffsetDateTime};

struct AwsLcSigner {
    key: EcdsaKeyPair,
    spki: Vec<u8>,
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

/// `openssl <cmd>` in `dir` (split at whitespace), stdout + stderr.
fn openssl(dir: &std::path::Path, cmd: &str) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(cmd.split_whitespace())
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {cmd}: {text}");
    text
}

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    openssl(
        d,
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key",
    );
    openssl(
        d,
        "req -x509 -new -key ca.key -subj /CN=crl-million-ca -days 30 -out ca.pem -outform PEM",
    );
    openssl(d, "x509 -in ca.pem -outform DER -out ca.der");
    openssl(
        d,
        "pkcs8 -topk8 -nocrypt -in ca.key -outform DER -out ca.p8",
    );
    let ca_der = std::fs::read(d.join("ca.der")).expect("ca.der");
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &std::fs::read(d.join("ca.p8")).expect("ca.p8"),
    )
    .expect("key");
    let spki = key.public_key().as_der().expect("spki").as_ref().to_vec();
    let signer = AwsLcSigner { key, spki };

    let now = OffsetDateTime::now_utc();
    let revoked_at = now - Duration::days(30);
    // splitmix64: serials that look random, without a dependency.
    let mut state = 0x5e61_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let entries = (0..n).map(move |i| {
        let mut serial = [next().to_be_bytes(), next().to_be_bytes()].concat();
        serial[0] |= 0x01; // never a leading zero octet: always 16 octets
        RevokedEntry {
            serial,
            revoked_at: revoked_at + Duration::seconds(i as i64 % 86_400),
            reason: (i % 2 == 0).then_some(RevocationReason::KeyCompromise),
        }
    });

    let before = vm_hwm_kib();
    let start = Instant::now();
    let crl = build_crl(&ca_der, &signer, 1, now, now + Duration::days(7), entries).expect("crl");
    let secs = start.elapsed().as_secs_f64();
    let peak = vm_hwm_kib();
    println!(
        "{n} entries: {secs:.3} s, CRL {:.1} MB, peak RSS {:.1} MB (before building: {:.1} MB)",
        crl.len() as f64 / 1e6,
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
    );

    std::fs::write(d.join("crl.der"), &crl).expect("write crl");
    let start = Instant::now();
    let out = openssl(d, "crl -in crl.der -inform DER -CAfile ca.pem -noout");
    println!(
        "openssl crl: {} ({:.3} s)",
        out.trim(),
        start.elapsed().as_secs_f64()
    );
}
