//! Detached CMS signatures (CAdES): `segl_pki::cms::verify_detached` against a fixed
//! digest, that of the content the seeds sign (seeds/make-pki-seeds.sh), so mutations of
//! the seeds reach the signature, certificate and attribute checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// SHA-256 of `segl fuzz content\n`.
const CMS_CONTENT_SHA256: [u8; 32] = [
    0x26, 0x0a, 0x83, 0x64, 0xaf, 0x0f, 0x63, 0x7a, 0x1f, 0x42, 0xe6, 0xc9, 0x4f, 0x17, 0x8a, 0x8f,
    0x6b, 0x17, 0x5b, 0x2b, 0x11, 0x2f, 0x64, 0x17, 0x7a, 0xad, 0x80, 0xcc, 0x5d, 0xf8, 0x53, 0x8c,
];

fuzz_target!(|der: &[u8]| {
    let _ = segl_pki::cms::verify_detached(der, &CMS_CONTENT_SHA256);
});
