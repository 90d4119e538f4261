//! Relying parties that segl did not write log in at a real `segl serve`: Python Authlib
//! (`tests/clients/authlib_rp.py`) and node openid-client (`tests/clients/openid_client_rp.mjs`).
//! Their tool chains are installed by `.ci/run` (`tests/.venv`, `tests/clients/node_modules`);
//! outside CI a missing one is skipped with the reason, in CI it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a client script with the fixture's issuer, client, person and code device; the
/// script gets the device's next counter (and may use the ones after it).
fn run_client(fx: &Fixture, program: &Path, script: &Path, ok_line: &str) {
    let out = Command::new(program)
        .arg(script)
        .env("SEGL_ISSUER", fx.server.issuer())
        .env("CLIENT_ID", &fx.rp.client_id)
        .env(
            "CLIENT_SECRET",
            fx.rp.client_secret.as_deref().expect("confidential client"),
        )
        .env("REDIRECT_URI", &fx.rp.redirect_uri)
        .env("NIN", NIN)
        .env("PASSWORD", PASSWORD)
        .env(
            "HOTP_SECRET_HEX",
            data_encoding::HEXLOWER.encode(OTP_SECRET),
        )
        .env("HOTP_COUNTER", fx.device.counter.to_string())
        .env("EXPECTED_SUB", &fx.sub)
        .env("EXPECTED_NAME", NAME)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().any(|l| l.trim() == ok_line),
        "{} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver stderr:\n{}",
        script.display(),
        out.status,
        fx.server.stderr()
    );
    print!("{stdout}");
}

#[test]
fn authlib_logs_in() {
    let python = repo_root().join("tests/.venv/bin/python");
    if !python.exists() {
        skip(
            "the Authlib client",
            "tests/.venv is missing (make it with: python3 -m venv tests/.venv && \
             tests/.venv/bin/pip install -r tests/clients/requirements.txt)",
        );
        return;
    }
    // Against each backend: the same suite runs on both (PostgreSQL where configured).
    for backend in backends() {
        let fx = Fixture::new(backend, &[]);
        run_client(
            &fx,
            &python,
            &repo_root().join("tests/clients/authlib_rp.py"),
            "authlib: OK",
        );
        fx.segl.audit_ok();
    }
}

#[test]
fn openid_client_logs_in() {
    let node = Path::new("/usr/bin/node");
    let node = if node.exists() {
        node.to_path_buf()
    } else {
        PathBuf::from("node")
    };
    let modules = repo_root().join("tests/clients/node_modules/openid-client");
    if !modules.exists() {
        skip(
            "the openid-client client",
            "tests/clients/node_modules is missing (run: npm ci --prefix tests/clients)",
        );
        return;
    }
    // Against each backend: the same suite runs on both (PostgreSQL where configured).
    for backend in backends() {
        let fx = Fixture::new(backend, &[]);
        run_client(
            &fx,
            &node,
            &repo_root().join("tests/clients/openid_client_rp.mjs"),
            "openid-client: OK",
        );
        fx.segl.audit_ok();
    }
}
