//! PSKC import (RFC 6030): `segl_crypto::pskc::parse_pskc` on arbitrary UTF-8, without a
//! key and with the fixtures' pre-shared key and passphrase, so that encrypted seeds get
//! past the MAC check to decryption.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl_crypto::pskc::{PskcKey, parse_pskc};
use zeroize::Zeroizing;

/// The pre-shared key of RFC 6030 figure 6 and the python-pskc fixtures (hex
/// 12345678901234567890123456789012).
const PSK: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12,
];
/// The passphrase of RFC 6030 figure 7 and the python-pskc PBKDF2 fixture.
const PASSPHRASE: &str = "qwerty";

fuzz_target!(|xml: &str| {
    let psk = PskcKey::PreShared(Zeroizing::new(PSK.to_vec()));
    let passphrase = PskcKey::Passphrase(Zeroizing::new(PASSPHRASE.into()));
    for key in [None, Some(&psk), Some(&passphrase)] {
        let _ = parse_pskc(xml, key);
    }
});
