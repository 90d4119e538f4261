//! `segl verify` on a CAdES signature made by `openssl cms` over a hierarchy made by
//! openssl (root → CA → leaf): valid with the right root (exit 0, human and JSON), a
//! changed content (exit 1, "digest"), another root (exit 1, names the missing issuer), bad
//! input (exit 2), and, for a certificate this segl has on record, its revocation state.

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

backend_tests!(
    openssl_cades_signature_verifies_against_its_root,
    changed_content_and_another_root_are_invalid,
    bad_input_exits_2,
    own_certificate_without_ocsp_uses_this_segls_records,
);

const CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

fn openssl_present() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("the verify tests", "openssl is not installed");
    }
    ok
}

/// Runs `openssl ARGS` (split at whitespace) in `dir`; panics if it fails.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In `dir`: `{prefix}root.pem`, `{prefix}ca.pem`, `{prefix}leaf.pem` and their keys, the
/// CA's subject `/O=e2e/CN={prefix}ca`.
fn hierarchy(dir: &Path, prefix: &str) {
    std::fs::write(dir.join("openssl.cnf"), CONFIG).unwrap();
    for n in ["root", "ca", "leaf"] {
        openssl(
            dir,
            &format!("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {prefix}{n}.key"),
        );
    }
    openssl(
        dir,
        &format!(
            "req -x509 -new -config openssl.cnf -extensions root -key {prefix}root.key \
             -subj /O=e2e/CN={prefix}root -days 30 -out {prefix}root.pem"
        ),
    );
    for (n, issuer, serial) in [("ca", "root", "2"), ("leaf", "ca", "0x4242")] {
        openssl(
            dir,
            &format!(
                "req -new -config openssl.cnf -key {prefix}{n}.key -subj /O=e2e/CN={prefix}{n} \
                 -out {prefix}{n}.csr"
            ),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {prefix}{n}.csr -CA {prefix}{issuer}.pem \
                 -CAkey {prefix}{issuer}.key -set_serial {serial} -days 30 -sha256 \
                 -extfile openssl.cnf -extensions {n} -out {prefix}{n}.pem"
            ),
        );
    }
}

/// A temp dir with the hierarchy and `sig.der`, a detached CAdES signature by the leaf
/// over `content` (the CA certificate included).
fn signed() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hierarchy(dir, "");
    std::fs::write(dir.join("content"), b"the signed document\n").unwrap();
    openssl(
        dir,
        "cms -sign -binary -cades -md sha256 -signer leaf.pem -inkey leaf.key \
         -certfile ca.pem -outform DER -in content -out sig.der",
    );
    tmp
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn openssl_cades_signature_verifies_against_its_root(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    let tmp = signed();
    let d = tmp.path();
    let (sig, content, root) = (path(d, "sig.der"), path(d, "content"), path(d, "root.pem"));

    let out = segl.cmd(&[
        "verify",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &root,
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("valid signature"), "{text}");
    assert!(text.contains("CN=leaf"), "{text}");
    assert!(text.contains("not checked"), "{text}");

    let v: Value = segl.json(&[
        "verify",
        "--json",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &root,
    ]);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["serial"], "4242", "{v}");
    assert_eq!(v["signer"], "CN=leaf,O=e2e", "{v}");
    assert_eq!(
        v["chain"],
        serde_json::json!(["CN=leaf,O=e2e", "CN=ca,O=e2e", "CN=root,O=e2e"]),
        "{v}"
    );
    assert_eq!(v["revocation"]["status"], "not checked", "{v}");
    assert!(v["signing_time"].is_string(), "{v}");

    // A DER root does as well as PEM.
    openssl(d, "x509 -in root.pem -outform DER -out root.der");
    let der_root = path(d, "root.der");
    let out = segl.cmd(&[
        "verify",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &der_root,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    // --digest instead of --content.
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r", &content])
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = segl.cmd(&["verify", "--cms", &sig, "--digest", &hex, "--ca", &root]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

async fn changed_content_and_another_root_are_invalid(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    let tmp = signed();
    let d = tmp.path();
    let (sig, root) = (path(d, "sig.der"), path(d, "root.pem"));

    let changed = write_file(d, "changed", b"the signed document, amended\n");
    let out = segl.cmd(&[
        "verify",
        "--cms",
        &sig,
        "--content",
        &changed,
        "--ca",
        &root,
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("digest"), "{text}");

    let out = segl.cmd(&[
        "verify",
        "--json",
        "--cms",
        &sig,
        "--content",
        &changed,
        "--ca",
        &root,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on failure too");
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("digest"), "{v}");

    hierarchy(d, "other-");
    let content = path(d, "content");
    let other = path(d, "other-root.pem");
    let out = segl.cmd(&[
        "verify",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &other,
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("not trusted"), "{text}");
    assert!(
        text.contains("CN=root,O=e2e"),
        "names the missing issuer: {text}"
    );

    // This segl's own root (the default) did not sign it either.
    segl.ok(&["ca", "init"]);
    let out = segl.cmd(&["verify", "--cms", &sig, "--content", &content]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("not trusted"), "{text}");
}

async fn bad_input_exits_2(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    let tmp = signed();
    let d = tmp.path();
    let (sig, content, root) = (path(d, "sig.der"), path(d, "content"), path(d, "root.pem"));
    let short = "ab".repeat(31);
    let key = path(d, "root.key");
    let cases: [(&[&str], &str); 6] = [
        (&["--digest", &short, "--ca", &root], "32"),
        (&["--digest", "not-hex", "--ca", &root], "hex"),
        (
            &["--content", "/nonexistent/file", "--ca", &root],
            "cannot read",
        ),
        (
            &["--content", &content, "--ca", "/nonexistent/root.pem"],
            "cannot read",
        ),
        (
            &["--content", &content, "--ca", &key],
            "expected a CERTIFICATE",
        ),
        (
            &["--content", &content, "--ca", &sig],
            "not a DER certificate",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["verify", "--cms", &sig];
        all.extend_from_slice(args);
        let out = segl.cmd(&all);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
    let out = segl.cmd(&[
        "verify",
        "--cms",
        "/nonexistent/sig.der",
        "--content",
        &content,
        "--ca",
        &root,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    std::fs::write(dir.join(name), bytes).unwrap();
    path(dir, name)
}

/// A connection to the installation's database (SQLite file or PostgreSQL).
async fn db_connect(segl: &Segl) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let args = segl.location_args();
    let url = args
        .iter()
        .position(|a| a == "--database-url")
        .map(|i| args[i + 1].to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("sqlite://{}", segl.data_dir().join("segl.db").display()));
    sqlx::AnyConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open the database {url}: {e}"))
}

/// The signature carries no OCSP response; the signer certificate is recorded as this
/// segl's (written into the database here: segl's own person keys cannot sign from a
/// test), so its records answer: good, then revoked before the signing time.
async fn own_certificate_without_ocsp_uses_this_segls_records(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    segl.ok(&["ca", "init"]);
    let tmp = signed();
    let d = tmp.path();
    let (sig, content, root) = (path(d, "sig.der"), path(d, "content"), path(d, "root.pem"));
    openssl(d, "x509 -in leaf.pem -outform DER -out leaf.der");
    let leaf = std::fs::read(d.join("leaf.der")).unwrap();

    let mut db = db_connect(&segl).await;
    sqlx::query(
        "INSERT INTO certificates (serial, ca, person_id, cert_der, key_store, key_ref, \
         not_before, not_after, revoked_at, reason, created_at) \
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, NULL, NULL, $8)",
    )
    .bind("4242")
    .bind("persons")
    .bind(leaf)
    .bind("software")
    .bind(vec![0u8])
    .bind(0i64)
    .bind(4_000_000_000i64)
    .bind(0i64)
    .execute(&mut db)
    .await
    .expect("record the leaf");

    let out = segl.cmd(&[
        "verify",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &root,
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("good (this segl's records)"), "{text}");
    let v = segl.json(&[
        "verify",
        "--json",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &root,
    ]);
    assert_eq!(v["revocation"]["status"], "good", "{v}");
    assert_eq!(v["revocation"]["source"], "this segl's records", "{v}");

    // Revoked in 1970: long before the signature.
    sqlx::query("UPDATE certificates SET revoked_at = $1, reason = $2 WHERE serial = $3")
        .bind(1i64)
        .bind("key-compromise")
        .bind("4242")
        .execute(&mut db)
        .await
        .expect("revoke");
    let out = segl.cmd(&[
        "verify",
        "--cms",
        &sig,
        "--content",
        &content,
        "--ca",
        &root,
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("revoked") && text.contains("key-compromise"),
        "{text}"
    );
}
