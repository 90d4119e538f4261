//! The `openssl` command line tool, which checks what segl makes with a tool of its own.

use std::process::Command;

use super::skip;

/// Whether `openssl` can be run; if not, skips `what` with a printed reason (or fails in
/// CI, see [`skip`]).
pub fn openssl_present(what: &str) -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(what, "openssl is not installed");
    }
    ok
}

/// Runs openssl; (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
