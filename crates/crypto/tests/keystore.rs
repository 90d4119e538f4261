//! The key stores on their public API: keys generated, signatures checked by independent
//! verifiers (p256, aws-lc-rs, and for the token the openssl CLI), and every refusal.
//!
//! The PKCS#11 tests need SoftHSM2 reading a configuration of their own, which SoftHSM2
//! takes only from the environment variable SOFTHSM2_CONF at C_Initialize. Setting an
//! environment variable is `unsafe` in Rust 2024 (and our lints forbid `unsafe`), so
//! `pkcs11_store_against_softhsm2` prepares a token in a temporary directory and runs the
//! `pkcs11_child_*` tests of this same binary in a child process with that variable set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use segl_crypto::keystore::{KeyRef, KeyStore, KeyStoreError, Pkcs11KeyStore, SoftwareKeyStore};
use segl_crypto::seal::SealKey;

/// Where Debian's softhsm2 package puts the module.
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "segl-test";
const SO_PIN: &str = "12345678";
const USER_PIN: &str = "87654321";
/// Set (to "1") only in the child process that runs the `pkcs11_child_*` tests.
const CHILD_MARK: &str = "SEGL_KEYSTORE_TEST_CHILD";
/// The DER prefix of every P-256 SPKI with an uncompressed point (RFC 5480).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn master(byte: u8) -> SealKey {
    SealKey::from_bytes(&[byte; 32]).expect("32-byte key")
}

/// Checks `sig` over `msg` with two verifiers that share no code with the stores' signing:
/// p256 (RustCrypto) and aws-lc-rs, the latter fed the bare point out of the SPKI.
fn verifies(spki: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    assert_eq!(spki.len(), 91, "P-256 SPKI");
    assert_eq!(spki[..26], P256_SPKI_PREFIX, "P-256 SPKI");
    let vk = VerifyingKey::from_public_key_der(spki).expect("SPKI parses");
    let by_p256 = Signature::from_der(sig).is_ok_and(|s| vk.verify(msg, &s).is_ok());
    let by_aws = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki[26..])
        .verify(msg, sig)
        .is_ok();
    assert_eq!(by_p256, by_aws, "the two verifiers disagree");
    by_p256
}

// --- software -------------------------------------------------------------------------

#[test]
fn software_generate_sign_verify() {
    let store = SoftwareKeyStore::new(master(1));
    assert_eq!(store.kind(), "software");
    let (key, spki) = store.generate_p256("ca-root").expect("generates");
    assert_eq!(store.public_key("ca-root", &key).expect("public key"), spki);
    let sig = store
        .sign("ca-root", &key, b"tbsCertificate")
        .expect("signs");
    assert!(verifies(&spki, b"tbsCertificate", &sig));
    assert!(!verifies(&spki, b"tbsCertificatf", &sig));
    // A second key is a different key.
    let (key2, spki2) = store.generate_p256("ca-root").expect("generates");
    assert_ne!(key, key2);
    assert_ne!(spki, spki2);
    assert!(!verifies(&spki2, b"tbsCertificate", &sig));
}

#[test]
fn software_key_ref_works_in_a_new_store_with_the_master_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seal.key");
    let first = SoftwareKeyStore::new(SealKey::load_or_create(&path).expect("key"));
    let (key, spki) = first.generate_p256("ocsp").expect("generates");
    drop(first);
    // As after a restart: nothing cached, the blob is opened with the key from the file.
    let second = SoftwareKeyStore::new(Arc::new(SealKey::load_or_create(&path).expect("key")));
    assert_eq!(second.public_key("ocsp", &key).expect("opens"), spki);
    let sig = second.sign("ocsp", &key, b"response").expect("signs");
    assert!(verifies(&spki, b"response", &sig));
}

#[test]
fn software_refuses_other_label_tampering_and_other_master_key() {
    let store = SoftwareKeyStore::new(master(1));
    let (key, _) = store.generate_p256("signer-a").expect("generates");
    // Refused both while the key is cached (just generated and used) and when it is not.
    store.sign("signer-a", &key, b"m").expect("signs");
    let fresh = SoftwareKeyStore::new(master(1));
    for s in [&store, &fresh] {
        assert!(matches!(
            s.sign("signer-b", &key, b"m"),
            Err(KeyStoreError::Unseal)
        ));
        assert!(matches!(
            s.public_key("signer-b", &key),
            Err(KeyStoreError::Unseal)
        ));
        for i in [1, 20, key.0.len() / 2, key.0.len() - 1] {
            let mut t = key.clone();
            t.0[i] ^= 0x01;
            assert!(
                matches!(s.sign("signer-a", &t, b"m"), Err(KeyStoreError::Unseal)),
                "byte {i}"
            );
        }
    }
    let other = SoftwareKeyStore::new(master(2));
    assert!(matches!(
        other.sign("signer-a", &key, b"m"),
        Err(KeyStoreError::Unseal)
    ));
    // The refusals changed nothing: the right label still works.
    assert!(fresh.sign("signer-a", &key, b"m").is_ok());
}

#[test]
fn software_refuses_malformed_refs() {
    let store = SoftwareKeyStore::new(master(1));
    let (key, _) = store.generate_p256("x").expect("generates");
    for bad in [Vec::new(), vec![1u8; 10], key.0[..28].to_vec()] {
        assert!(matches!(
            store.sign("x", &KeyRef(bad), b"m"),
            Err(KeyStoreError::MalformedKeyRef(_))
        ));
    }
    let mut version = key.clone();
    version.0[0] = 9;
    assert!(matches!(
        store.public_key("x", &version),
        Err(KeyStoreError::MalformedKeyRef(_))
    ));
    // A sealed value that is no key at all (sealed with the right key and label, but not by
    // the store) is refused too: it needs the store's associated data, so it cannot open.
    let not_a_key = KeyRef(master(1).seal(b"not pkcs8", b"x"));
    assert!(matches!(
        store.sign("x", &not_a_key, b"m"),
        Err(KeyStoreError::Unseal)
    ));
}

#[test]
fn software_destroy_leaves_the_callers_blob_usable() {
    let store = SoftwareKeyStore::new(master(1));
    let (key, spki) = store.generate_p256("tsa").expect("generates");
    store.destroy("tsa", &key).expect("no-op");
    let sig = store.sign("tsa", &key, b"m").expect("blob still opens");
    assert!(verifies(&spki, b"m", &sig));
}

#[test]
fn software_signs_from_many_threads_and_many_keys() {
    let store: Arc<dyn KeyStore> = Arc::new(SoftwareKeyStore::new(master(1)));
    let keys: Vec<_> = (0..8)
        .map(|i| store.generate_p256(&format!("k{i}")).expect("generates"))
        .collect();
    let keys = Arc::new(keys);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, keys) = (Arc::clone(&store), Arc::clone(&keys));
            std::thread::spawn(move || {
                for round in 0..20 {
                    let i = (t + round) % keys.len();
                    let (key, spki) = &keys[i];
                    let msg = format!("{t}-{round}");
                    let sig = store
                        .sign(&format!("k{i}"), key, msg.as_bytes())
                        .expect("signs");
                    assert!(verifies(spki, msg.as_bytes(), &sig));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
}

#[test]
fn software_debug_shows_no_key_material() {
    let store = SoftwareKeyStore::new(master(0xab));
    store.generate_p256("x").expect("generates");
    assert_eq!(format!("{store:?}"), "SoftwareKeyStore { cached: 1, .. }");
}

/// Cached signing against aws-lc-rs signing with a parsed key directly. Timing, so not run by
/// default: `cargo test -p segl-crypto --release --test keystore -- --ignored software_sign_speed`.
#[test]
#[ignore = "timing; run by hand"]
fn software_sign_speed_vs_raw() {
    const N: u32 = 3000;
    let store = SoftwareKeyStore::new(master(1));
    let (key, _) = store.generate_p256("bench").expect("generates");
    let raw = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("generates");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let msg = [7u8; 200];
    let mut best = f64::MAX;
    let mut best_raw = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(raw.sign(&rng, &msg).expect("signs"));
        }
        best_raw = best_raw.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(store.sign("bench", &key, &msg).expect("signs"));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let ratio = best_raw / best;
    println!(
        "raw {:.1} µs/sig, store {:.1} µs/sig, store reaches {:.0} % of raw",
        best_raw * 1e6 / f64::from(N),
        best * 1e6 / f64::from(N),
        ratio * 100.0
    );
    assert!(ratio >= 0.7, "store signs at {:.0} % of raw", ratio * 100.0);
}

// --- PKCS#11 ----------------------------------------------------------------------------

#[test]
fn pkcs11_missing_module_is_refused() {
    let err = Pkcs11KeyStore::open(Path::new("/nonexistent/libpkcs11.so"), TOKEN, USER_PIN)
        .expect_err("no module");
    assert!(matches!(err, KeyStoreError::ModuleLoad { .. }), "{err:?}");
    assert!(!err.to_string().contains(USER_PIN), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_library = dir.path().join("libnot-pkcs11.so");
    std::fs::write(&not_a_library, b"not an ELF file").expect("write");
    let err = Pkcs11KeyStore::open(&not_a_library, TOKEN, USER_PIN).expect_err("not a module");
    assert!(matches!(err, KeyStoreError::ModuleLoad { .. }), "{err:?}");
}

/// Prepares a SoftHSM2 token in a temporary directory and runs the `pkcs11_child_*` tests
/// in a child process whose SOFTHSM2_CONF points at it.
#[test]
fn pkcs11_store_against_softhsm2() {
    if !Path::new(MODULE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "SoftHSM2 ({MODULE}) is required in CI: .ci/run installs softhsm2"
        );
        println!("skipped: SoftHSM2 not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).expect("token dir");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("conf");
    let init = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
        .output()
        .expect("softhsm2-util runs");
    assert!(init.status.success(), "{init:?}");

    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_MARK, "1")
        .current_dir(dir.path())
        .args(["pkcs11_child_", "--ignored", "--test-threads=1"])
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "PKCS#11 tests failed (output above)");
    let ran = stdout
        .lines()
        .filter(|l| l.starts_with("test pkcs11_child_") && l.ends_with("... ok"))
        .count();
    assert_eq!(ran, 5, "all PKCS#11 tests ran");
}

/// The child's token, or `None` outside the child (then the test does nothing).
fn child_store() -> Option<Pkcs11KeyStore> {
    if std::env::var_os(CHILD_MARK).is_none() {
        println!("runs only inside pkcs11_store_against_softhsm2");
        return None;
    }
    Some(Pkcs11KeyStore::open(Path::new(MODULE), TOKEN, USER_PIN).expect("token opens"))
}

#[test]
#[ignore = "run by pkcs11_store_against_softhsm2 in a child process"]
fn pkcs11_child_generate_sign_verify() {
    let Some(store) = child_store() else { return };
    assert_eq!(store.kind(), "pkcs11");
    let (key, spki) = store.generate_p256("ca-root").expect("generates");
    assert_eq!(key.0.len(), 16, "CKA_ID");
    assert_eq!(store.public_key("ca-root", &key).expect("public key"), spki);
    for msg in [&b""[..], b"tbsCertificate", &[0xffu8; 5000]] {
        let sig = store.sign("ca-root", &key, msg).expect("signs");
        assert!(verifies(&spki, msg, &sig));
        assert!(!verifies(&spki, b"other", &sig));
    }
    // The key is on the token, not in the store: a second store on it finds it.
    drop(store);
    let again = child_store().expect("child");
    let sig = again.sign("ca-root", &key, b"m").expect("signs");
    assert!(verifies(&spki, b"m", &sig));
    // Under another label the id names no key.
    assert!(matches!(
        again.sign("other", &key, b"m"),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
}

#[test]
#[ignore = "run by pkcs11_store_against_softhsm2 in a child process"]
fn pkcs11_child_openssl_and_pkcs11_tool_agree() {
    let Some(store) = child_store() else { return };
    let (key, spki) = store.generate_p256("outside-check").expect("generates");
    let msg = b"checked by openssl";
    let sig = store.sign("outside-check", &key, msg).expect("signs");
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}-----END PUBLIC KEY-----\n",
        data_encoding::BASE64
            .encode(&spki)
            .as_bytes()
            .chunks(64)
            .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
            .collect::<String>()
    );
    let file = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let (pub_pem, sig_der) = (file("pub.pem", pem.as_bytes()), file("sig.der", &sig));
    let openssl = |msg_file: &Path| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&pub_pem)
            .arg("-signature")
            .arg(&sig_der)
            .arg(msg_file)
            .output()
            .expect("openssl runs")
    };
    let ok = openssl(&file("msg", msg));
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "Verified OK");
    let bad = openssl(&file("msg2", b"checked by openssk"));
    assert!(!bad.status.success(), "{bad:?}");

    // The private key as the token describes it to another PKCS#11 client.
    let listing = Command::new("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            TOKEN,
            "--login",
            "--pin",
            USER_PIN,
        ])
        .args(["--list-objects", "--type", "privkey", "--id"])
        .arg(data_encoding::HEXLOWER.encode(&key.0))
        .output()
        .expect("pkcs11-tool runs");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{listing:?}");
    assert!(text.contains("Private Key Object; EC"), "{text}");
    assert!(text.contains("label:      outside-check"), "{text}");
    assert!(text.contains("sign"), "{text}");
    assert!(text.contains("sensitive"), "{text}");
    assert!(text.contains("never extractable"), "{text}");
}

#[test]
#[ignore = "run by pkcs11_store_against_softhsm2 in a child process"]
fn pkcs11_child_refuses_wrong_pin_unknown_token_and_unknown_key() {
    if std::env::var_os(CHILD_MARK).is_none() {
        return;
    }
    let module = Path::new(MODULE);
    // No store is open: the token itself refuses the PIN.
    let err = Pkcs11KeyStore::open(module, TOKEN, "00000000").expect_err("wrong PIN");
    assert!(matches!(err, KeyStoreError::BadPin { .. }), "{err:?}");
    assert!(!err.to_string().contains("00000000"), "{err}");
    let store = child_store().expect("child");
    // A store is open (the token is logged in): the PIN is still checked.
    let err = Pkcs11KeyStore::open(module, TOKEN, "00000000").expect_err("wrong PIN");
    assert!(matches!(err, KeyStoreError::BadPin { .. }), "{err:?}");
    assert!(!format!("{store:?}").contains(USER_PIN));

    let err = Pkcs11KeyStore::open(module, "no-such-token", USER_PIN).expect_err("no token");
    assert!(
        matches!(err, KeyStoreError::TokenNotFound { .. }),
        "{err:?}"
    );

    let unknown = KeyRef(vec![0x5a; 16]);
    assert!(matches!(
        store.sign("ca-root", &unknown, b"m"),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.public_key("ca-root", &unknown),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.destroy("ca-root", &unknown),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.sign("ca-root", &KeyRef(Vec::new()), b"m"),
        Err(KeyStoreError::MalformedKeyRef(_))
    ));
}

#[test]
#[ignore = "run by pkcs11_store_against_softhsm2 in a child process"]
fn pkcs11_child_destroy_removes_key() {
    let Some(store) = child_store() else { return };
    let (key, _) = store.generate_p256("short-lived").expect("generates");
    let (kept, kept_spki) = store.generate_p256("short-lived").expect("generates");
    store.sign("short-lived", &key, b"m").expect("signs");
    store.destroy("short-lived", &key).expect("destroys");
    assert!(matches!(
        store.sign("short-lived", &key, b"m"),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.public_key("short-lived", &key),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.destroy("short-lived", &key),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    // Only that key went: another with the same label is untouched.
    let sig = store.sign("short-lived", &kept, b"m").expect("signs");
    assert!(verifies(&kept_spki, b"m", &sig));
}

#[test]
#[ignore = "run by pkcs11_store_against_softhsm2 in a child process"]
fn pkcs11_child_concurrent_signing() {
    let Some(store) = child_store() else { return };
    let (key, spki) = store.generate_p256("busy").expect("generates");
    let store: Arc<dyn KeyStore> = Arc::new(store);
    let (key, spki) = (Arc::new(key), Arc::new(spki));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, key, spki) = (Arc::clone(&store), Arc::clone(&key), Arc::clone(&spki));
            std::thread::spawn(move || {
                for round in 0..10 {
                    let msg = format!("{t}-{round}");
                    let sig = store.sign("busy", &key, msg.as_bytes()).expect("signs");
                    assert!(verifies(&spki, msg.as_bytes(), &sig));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
}
