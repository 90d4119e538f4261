//! The path a code device takes through segl, on the public API only: import from the
//! vendor's PSKC file, seal the seed for storage, open it at login and verify codes.

use segl_crypto::otp::{self, OtpOutcome};
use segl_crypto::pskc::{self, PskcKey, TokenKind};
use segl_crypto::seal::SealKey;
use zeroize::Zeroizing;

#[test]
fn pbkdf2_file_to_sealed_seed_to_login() {
    let xml = include_str!("data/pskc/hotp-pbkdf2-aes128cbc.pskcxml");
    let key = PskcKey::Passphrase(Zeroizing::new("qwerty".into()));
    let tokens = pskc::parse_pskc(xml, Some(&key)).expect("file imports");
    assert_eq!(tokens.len(), 3);

    let dir = tempfile::tempdir().expect("tempdir");
    let seal = SealKey::load_or_create(&dir.path().join("seal.key")).expect("seal key");
    let t = &tokens[0];
    // The serial is the associated data, as the store binds a seed to its row.
    let sealed = seal.seal(&t.secret, t.serial.as_bytes());
    assert!(seal.open(&sealed, b"600000001").is_err());

    let secret = seal.open(&sealed, t.serial.as_bytes()).expect("opens");
    let TokenKind::Hotp { counter } = t.kind else {
        panic!("HOTP expected")
    };
    // RFC 4226 appendix D, counters 0 and 1.
    assert_eq!(
        otp::verify_hotp(t.algorithm, &secret, t.digits, counter, 10, "755224"),
        OtpOutcome::Accepted { counter: 0 }
    );
    assert_eq!(
        otp::verify_hotp(t.algorithm, &secret, t.digits, 1, 10, "755224"),
        OtpOutcome::Replayed
    );
    assert_eq!(
        otp::verify_hotp(t.algorithm, &secret, t.digits, 1, 10, "287082"),
        OtpOutcome::Accepted { counter: 1 }
    );
}

#[test]
fn psk_totp_file_to_login() {
    let xml = include_str!("data/pskc/totp-psk-aes128cbc.pskcxml");
    let psk = data_encoding::HEXLOWER
        .decode(b"12345678901234567890123456789012")
        .expect("hex");
    let tokens = pskc::parse_pskc(xml, Some(&PskcKey::PreShared(Zeroizing::new(psk))))
        .expect("file imports");
    let t = &tokens[1];
    let TokenKind::Totp { step, t0 } = t.kind else {
        panic!("TOTP expected")
    };
    let now = 1_111_111_111;
    let code = otp::totp(t.algorithm, &t.secret, now, step, t0, t.digits);
    // RFC 6238 appendix B gives 14050471 at this time; 6 digits are its last six.
    assert_eq!(code, "050471");
    let first = otp::verify_totp(
        t.algorithm,
        &t.secret,
        t.digits,
        step,
        t0,
        now,
        0,
        None,
        1,
        &code,
    );
    let OtpOutcome::Accepted { counter } = first else {
        panic!("{first:?}")
    };
    let again = otp::verify_totp(
        t.algorithm,
        &t.secret,
        t.digits,
        step,
        t0,
        now,
        0,
        Some(counter as i64),
        1,
        &code,
    );
    assert_eq!(again, OtpOutcome::Replayed);
}
