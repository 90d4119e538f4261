//! `private_key_jwt` client assertions at the token endpoint:
//! `segl_crypto::jose::verify_client_assertion` with a fixed client JWKS (Ed25519, P-256,
//! RSA) and audience.
//!
//! The input is tried twice: as the whole token, which reaches the JWS parsing, the key
//! selection and the signature checks; and as `header.payload` signed here with the JWKS's
//! Ed25519 key, so that the claim checks after the signature are fuzzed too.
#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use data_encoding::BASE64URL_NOPAD;
use libfuzzer_sys::fuzz_target;
use segl_crypto::jose::verify_client_assertion;
use serde_json::{Value, json};

const CLIENT_ID: &str = "client-1";
/// "Now" for the time claims; the seeds' `exp` is `NOW + 120`.
const NOW: i64 = 1_800_000_000;
/// The Ed25519 key's seed, which seeds/make-jwt-seeds.sh also signs whole tokens with.
const ED25519_SEED: [u8; 32] = [7; 32];

static ED25519: LazyLock<Ed25519KeyPair> = LazyLock::new(|| {
    Ed25519KeyPair::from_seed_unchecked(&ED25519_SEED).expect("a 32-byte Ed25519 seed")
});

static JWKS: LazyLock<Value> = LazyLock::new(|| {
    json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "use": "sig",
         "x": BASE64URL_NOPAD.encode(ED25519.public_key().as_ref())},
        // Public halves of throwaway keys (private halves discarded).
        {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
         "x": "ANJ8ZDkjQSGAIZr-E0mtn9uerlLgyHdtDjSknDx2MQA",
         "y": "Rjlu9_wTSzmAchIFAXtHssvfp7jFfrYrHJFoUn8M1Lo"},
        {"kty": "RSA", "kid": "rsa", "e": "AQAB",
         "n": "lGjZs5LDUqB-45cllmq7UmiiENnc7FA3_Uv8QNtJGzLgJAwMJ-x2ZhgbzdFuRgk2-eBPZrOyfQavVfG7uoxWlY8Ca0_4n8U6gex8ruWQow9AmJinpEha6fYRKXo-qM_-Vu6-0mZM1dt_UQDnXxTPz6mfHHKtPUDaCGhJP8zFtOxFrBqQpwlkhPkAZI0KXYVz9fj-7c6hi38WjVAegOoL98eHFp3Wh5V0aklIzoGcmuAJCX98d5YocQQ3SYsLwYPJw4LsPzDoqyH8n5y2qZx4gn8yyOqw8JwF8749R7K65TBCjQzS_ojUr7naF_J5WCTjPyXEOIqcbR3t6NZ2oDPSgw"}
    ]})
});

static AUDIENCES: LazyLock<Vec<String>> = LazyLock::new(|| {
    vec![
        "https://eid.example.no".into(),
        "https://eid.example.no/token".into(),
    ]
});

fuzz_target!(|s: &str| {
    let _ = verify_client_assertion(s, &JWKS, CLIENT_ID, &AUDIENCES, NOW);
    let signature = ED25519.sign(s.as_bytes());
    let signed = format!("{s}.{}", BASE64URL_NOPAD.encode(signature.as_ref()));
    let _ = verify_client_assertion(&signed, &JWKS, CLIENT_ID, &AUDIENCES, NOW);
});
