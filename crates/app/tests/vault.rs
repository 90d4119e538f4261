//! The PIN vault as the app uses it: create, unlock, count wrong PINs, wipe, refuse tampering.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use segl_app::device::DeviceKey;
use segl_app::vault::{MAX_PIN_ATTEMPTS, Vault, VaultError, VaultStatus};
use segl_core::app::{ApprovalPayload, Decision, UserVerification};
use segl_crypto::device::{DeviceError, verify_approval};

const PIN: &str = "2580";
const APP_ID: &str = "app-7f3a";
const SERVER: &str = "https://eid.example";

/// A fresh vault in a temporary directory (kept alive by the returned guard).
fn vault() -> (tempfile::TempDir, PathBuf, DeviceKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app/vault.json");
    let key = DeviceKey::generate().unwrap();
    Vault::create(&path, APP_ID, SERVER, &key, PIN).unwrap();
    (dir, path, key)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &serde_json::Value) {
    fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

fn attempts(path: &Path) -> u32 {
    Vault::status(path).unwrap().failed_pin_attempts
}

#[test]
fn round_trip() {
    let (_dir, path, key) = vault();
    let unlocked = Vault::unlock(&path, PIN).unwrap();
    assert_eq!(unlocked.public_key_bytes(), key.public_key_bytes());
    assert_eq!(
        Vault::status(&path).unwrap(),
        VaultStatus {
            app_id: APP_ID.into(),
            server: SERVER.into(),
            failed_pin_attempts: 0,
            wiped: false,
        }
    );
    // Unlocking twice works; the file holds no PKCS#8 or PIN in the clear.
    Vault::unlock(&path, PIN).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PIN), "{text}");
    let v = json(&path);
    assert_eq!(v["version"], 1);
    for field in ["salt", "nonce", "pin_check", "ciphertext"] {
        assert!(v["key"][field].is_string(), "{field}");
    }
}

#[test]
fn file_mode_is_0600_and_directory_0700() {
    let (_dir, path, _key) = vault();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    // Still 0600 after the counter was rewritten.
    let _ = Vault::unlock(&path, "0000");
    assert_eq!(mode(&path), 0o600);
    // Only the vault and its lock file: no temporary files left behind.
    let mut names: Vec<String> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["vault.json", "vault.json.lock"]);
    // A vault others may read is refused.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Vault::unlock(&path, PIN),
        Err(VaultError::InsecureMode { mode: 0o644, .. })
    ));
}

#[test]
fn wrong_pin_counter_is_persisted_across_reopen() {
    let (_dir, path, _key) = vault();
    assert!(matches!(
        Vault::unlock(&path, "1111"),
        Err(VaultError::WrongPin { remaining: 4 })
    ));
    assert_eq!(attempts(&path), 1);
    assert_eq!(json(&path)["failed_pin_attempts"], 1);
    assert!(matches!(
        Vault::unlock(&path, "123456789012"),
        Err(VaultError::WrongPin { remaining: 3 })
    ));
    assert_eq!(attempts(&path), 2);
}

#[test]
fn right_pin_resets_the_counter() {
    let (_dir, path, key) = vault();
    for _ in 0..MAX_PIN_ATTEMPTS - 1 {
        assert!(matches!(
            Vault::unlock(&path, "9999"),
            Err(VaultError::WrongPin { .. })
        ));
    }
    assert_eq!(attempts(&path), 4);
    let unlocked = Vault::unlock(&path, PIN).unwrap();
    assert_eq!(unlocked.public_key_bytes(), key.public_key_bytes());
    assert_eq!(attempts(&path), 0);
    // The count starts over: four more wrong PINs do not wipe.
    for _ in 0..MAX_PIN_ATTEMPTS - 1 {
        let _ = Vault::unlock(&path, "9999");
    }
    assert!(!Vault::status(&path).unwrap().wiped);
}

#[test]
fn fifth_wrong_pin_wipes_the_key() {
    let (_dir, path, _key) = vault();
    for remaining in (1..MAX_PIN_ATTEMPTS).rev() {
        match Vault::unlock(&path, "0000") {
            Err(VaultError::WrongPin { remaining: r }) => assert_eq!(r, remaining),
            other => panic!("{other:?}"),
        }
    }
    assert!(!Vault::status(&path).unwrap().wiped);
    let err = Vault::unlock(&path, "0000").unwrap_err();
    assert!(matches!(err, VaultError::Wiped), "{err:?}");
    assert!(err.to_string().contains("activate the app again"), "{err}");

    // The key material is gone from the file; the app id stays for `status`.
    let v = json(&path);
    assert!(v["key"].is_null(), "{v}");
    let status = Vault::status(&path).unwrap();
    assert!(status.wiped);
    assert_eq!(status.app_id, APP_ID);
    // Even the right PIN cannot bring it back.
    assert!(matches!(Vault::unlock(&path, PIN), Err(VaultError::Wiped)));
}

#[test]
fn interrupted_fifth_attempt_still_wipes() {
    // The count reached the limit on disk but the process died before the wipe.
    let (_dir, path, _key) = vault();
    let mut v = json(&path);
    v["failed_pin_attempts"] = MAX_PIN_ATTEMPTS.into();
    write_json(&path, &v);
    assert!(matches!(Vault::unlock(&path, PIN), Err(VaultError::Wiped)));
    assert!(json(&path)["key"].is_null());
}

#[test]
fn malformed_pins_are_refused_without_counting() {
    let (_dir, path, _key) = vault();
    for pin in ["", "123", "1234567890123", "12a4", "١٢٣٤", " 1234", "12 34"] {
        assert!(
            matches!(Vault::unlock(&path, pin), Err(VaultError::PinFormat)),
            "{pin:?}"
        );
    }
    assert_eq!(attempts(&path), 0);
    let key = DeviceKey::generate().unwrap();
    let other = path.with_file_name("other.json");
    assert!(matches!(
        Vault::create(&other, APP_ID, SERVER, &key, "12"),
        Err(VaultError::PinFormat)
    ));
    assert!(!other.exists());
    // Both ends of the range are fine.
    Vault::create(&other, APP_ID, SERVER, &key, "0000").unwrap();
    Vault::create(&other, APP_ID, SERVER, &key, "000000000000").unwrap();
    Vault::unlock(&other, "000000000000").unwrap();
}

#[test]
fn changed_app_id_is_refused_as_tampering() {
    let (_dir, path, _key) = vault();
    let mut v = json(&path);
    v["app_id"] = "app-other".into();
    write_json(&path, &v);
    let err = Vault::unlock(&path, PIN).unwrap_err();
    assert!(matches!(err, VaultError::Tampered), "{err:?}");
    // Tampering is not a wrong PIN: nothing is counted against the person.
    assert_eq!(attempts(&path), 0);
}

#[test]
fn tampered_ciphertext_and_nonce_are_refused() {
    let (_dir, path, _key) = vault();
    let original = json(&path);
    for field in ["ciphertext", "nonce"] {
        let mut v = original.clone();
        let s = v["key"][field].as_str().unwrap().to_owned();
        // Change the first character to another base64url character of the same group.
        let first = if s.starts_with('A') { "B" } else { "A" };
        v["key"][field] = format!("{first}{}", &s[1..]).into();
        write_json(&path, &v);
        let err = Vault::unlock(&path, PIN).unwrap_err();
        assert!(matches!(err, VaultError::Tampered), "{field}: {err:?}");
    }
    // A wrong PIN on a tampered file is still just a wrong PIN.
    assert!(matches!(
        Vault::unlock(&path, "1111"),
        Err(VaultError::WrongPin { .. })
    ));
    // The original file opens again.
    write_json(&path, &original);
    Vault::unlock(&path, PIN).unwrap();
}

#[test]
fn missing_corrupt_and_future_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.json");
    let err = Vault::unlock(&path, PIN).unwrap_err();
    assert!(matches!(err, VaultError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("activate the app first"), "{err}");
    assert!(matches!(
        Vault::status(&path),
        Err(VaultError::NotFound { .. })
    ));

    let private = |text: &str| {
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    };
    private("not json");
    assert!(matches!(
        Vault::unlock(&path, PIN),
        Err(VaultError::Corrupt { .. })
    ));
    private(r#"{"version": 2, "whatever": true}"#);
    assert!(matches!(
        Vault::unlock(&path, PIN),
        Err(VaultError::UnsupportedVersion(2))
    ));

    let (_d, good, _key) = vault();
    let mut v = json(&good);
    v["extra"] = true.into();
    private(&serde_json::to_string(&v).unwrap());
    assert!(matches!(
        Vault::unlock(&path, PIN),
        Err(VaultError::Corrupt { .. })
    ));
    let mut v = json(&good);
    v["key"]["salt"] = "AAAA".into();
    private(&serde_json::to_string(&v).unwrap());
    match Vault::unlock(&path, PIN) {
        Err(e @ VaultError::Corrupt { .. }) => assert!(e.to_string().contains("salt"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A corrupt file costs no attempt.
    assert_eq!(json(&path)["failed_pin_attempts"], 0);
}

#[test]
fn create_replaces_an_existing_vault() {
    let (_dir, path, _old) = vault();
    let _ = Vault::unlock(&path, "1111");
    let new = DeviceKey::generate().unwrap();
    Vault::create(&path, "app-new", SERVER, &new, "13579").unwrap();
    assert_eq!(attempts(&path), 0);
    assert_eq!(Vault::status(&path).unwrap().app_id, "app-new");
    assert!(matches!(
        Vault::unlock(&path, PIN),
        Err(VaultError::WrongPin { remaining: 4 })
    ));
    let unlocked = Vault::unlock(&path, "13579").unwrap();
    assert_eq!(unlocked.public_key_bytes(), new.public_key_bytes());
}

#[test]
fn unlocked_key_signs_approvals_the_server_verifies() {
    let (_dir, path, key) = vault();
    let public = key.public_key_bytes().to_vec();
    let unlocked = Vault::unlock(&path, PIN).unwrap();
    let payload = ApprovalPayload {
        request_id: "0b1e2f7a-9c4d-4e8f-a1b2-c3d4e5f60718".into(),
        rp: "Sparebanken Sør".into(),
        verification_code: "elg fjord".into(),
        text_sha256: segl_crypto::random::sha256("Logg inn hos Sparebanken Sør".as_bytes()),
        decision: Decision::Approve,
        user_verification: Some(UserVerification::Pin),
    };
    let sig = unlocked.sign(&payload).unwrap();
    assert_eq!(verify_approval(&public, &payload, &sig), Ok(()));

    let mut changed = payload.clone();
    changed.verification_code = "ulv fjord".into();
    assert_eq!(
        verify_approval(&public, &changed, &sig),
        Err(DeviceError::BadSignature)
    );
    let mut changed = payload.clone();
    changed.user_verification = Some(UserVerification::Face);
    assert_eq!(
        verify_approval(&public, &changed, &sig),
        Err(DeviceError::BadSignature)
    );
}
