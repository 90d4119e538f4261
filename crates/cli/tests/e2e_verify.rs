//! `segl verify` on a CAdES signature made by `openssl cms` over a hierarchy made by
//! openssl (root → CA → leaf): valid with the right root (exit 0, human and JSON), a
//! changed content (exit 1, "digest"), another root (exit 1, names the missing issuer), bad
//! input (exit 2), and, for a certificate this segl has on record, its revocation state.
//!
//! `segl verify --pdf` on a PDF made by fpdf2 (crates/pki/tests/data), signed at PAdES B-B
//! by `segl_pki::pades` with the leaf's key held by openssl (`openssl dgst -sign`): valid
//! once and twice signed, invalid when a signed byte changes, when bytes follow the last
//! signature, or when a ByteRange is malformed (exit 1), bad input (exit 2).

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
    signed_pdf_verifies,
    changed_pdf_is_invalid,
    bad_pdf_input_exits_2,
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

    let mut db = segl.db_connect().await;
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

// ---------------------------------------------------------------------------------------
// PDF (PAdES)
// ---------------------------------------------------------------------------------------

/// A `segl_pki::Signer` whose key stays with openssl: `openssl dgst -sha256 -sign`.
struct OpensslSigner {
    dir: std::path::PathBuf,
    key: String,
    spki: Vec<u8>,
}

impl OpensslSigner {
    fn new(dir: &Path, key: &str) -> Self {
        openssl(
            dir,
            &format!("pkey -in {key} -pubout -outform DER -out {key}.spki"),
        );
        Self {
            dir: dir.to_path_buf(),
            key: key.into(),
            spki: std::fs::read(dir.join(format!("{key}.spki"))).unwrap(),
        }
    }
}

impl segl_pki::Signer for OpensslSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, segl_pki::Error> {
        std::fs::write(self.dir.join("tbs.bin"), msg).unwrap();
        openssl(
            &self.dir,
            &format!("dgst -sha256 -sign {} -out tbs.sig tbs.bin", self.key),
        );
        Ok(std::fs::read(self.dir.join("tbs.sig")).unwrap())
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
}

fn der(dir: &Path, pem: &str) -> Vec<u8> {
    openssl(dir, &format!("x509 -in {pem} -outform DER -out {pem}.der"));
    std::fs::read(dir.join(format!("{pem}.der"))).unwrap()
}

/// An unsigned PDF from another producer (fpdf2; crates/pki/tests/data/README.md).
fn unsigned_pdf() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pki/tests/data/fpdf2-classic.pdf");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `pdf` signed at PAdES B-B by the hierarchy's leaf (made by [`hierarchy`] in `dir`).
fn sign_pdf(dir: &Path, pdf: &[u8]) -> Vec<u8> {
    let cms = segl_pki::cms::CmsSigner::new(&der(dir, "leaf.pem"), &[der(dir, "ca.pem")])
        .expect("CMS signer");
    let opts = segl_pki::pades::PadesOptions {
        signing_time: time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap(),
        signer_name: "leaf".into(),
        reason: Some("e2e".into()),
        field_name: None,
    };
    segl_pki::pades::sign_pdf(pdf, &opts, &cms, &OpensslSigner::new(dir, "leaf.key"), None)
        .expect("sign the PDF")
}

/// A temp dir with the hierarchy, `signed.pdf` (signed once) and `twice.pdf`.
fn signed_pdfs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hierarchy(dir, "");
    let once = sign_pdf(dir, &unsigned_pdf());
    std::fs::write(dir.join("signed.pdf"), &once).unwrap();
    std::fs::write(dir.join("twice.pdf"), sign_pdf(dir, &once)).unwrap();
    tmp
}

async fn signed_pdf_verifies(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    let tmp = signed_pdfs();
    let d = tmp.path();
    let (pdf, root) = (path(d, "signed.pdf"), path(d, "root.pem"));

    let out = segl.cmd(&["verify", "--pdf", &pdf, "--ca", &root]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("signature 1 of 1 (field \"Signature1\")"),
        "{text}"
    );
    assert!(text.contains("valid signature"), "{text}");
    assert!(text.contains("CN=leaf"), "{text}");
    assert!(text.contains("covers:       the whole file"), "{text}");
    assert!(text.contains("valid PDF: 1 signature,"), "{text}");

    let v: Value = segl.json(&["verify", "--json", "--pdf", &pdf, "--ca", &root]);
    assert_eq!(v["valid"], true, "{v}");
    let sig = &v["signatures"][0];
    assert_eq!(sig["valid"], true, "{v}");
    assert_eq!(sig["field"], "Signature1", "{v}");
    assert_eq!(sig["signer"], "CN=leaf,O=e2e", "{v}");
    assert_eq!(sig["serial"], "4242", "{v}");
    assert_eq!(sig["sub_filter"], "ETSI.CAdES.detached", "{v}");
    assert_eq!(sig["covers_whole_file"], true, "{v}");
    assert_eq!(
        sig["chain"],
        serde_json::json!(["CN=leaf,O=e2e", "CN=ca,O=e2e", "CN=root,O=e2e"]),
        "{v}"
    );
    assert_eq!(sig["revocation"]["status"], "not checked", "{v}");
    assert!(sig["signing_time"].is_string(), "{v}");

    // Twice signed: the first covers its revision only, the last the whole file: valid.
    let twice = path(d, "twice.pdf");
    let v: Value = segl.json(&["verify", "--json", "--pdf", &twice, "--ca", &root]);
    assert_eq!(v["valid"], true, "{v}");
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{v}");
    assert_eq!(sigs[0]["field"], "Signature1", "{v}");
    assert_eq!(sigs[0]["valid"], true, "{v}");
    assert_eq!(sigs[0]["covers_whole_file"], false, "{v}");
    assert_eq!(sigs[1]["field"], "Signature2", "{v}");
    assert_eq!(sigs[1]["covers_whole_file"], true, "{v}");
    let out = segl.cmd(&["verify", "--pdf", &twice, "--ca", &root]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("incremental update"), "{text}");
    assert!(text.contains("valid PDF: 2 signatures"), "{text}");
}

async fn changed_pdf_is_invalid(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    let tmp = signed_pdfs();
    let d = tmp.path();
    let root = path(d, "root.pem");
    let signed = std::fs::read(d.join("signed.pdf")).unwrap();

    // One byte of the document's title, inside the signed range.
    let at = signed
        .windows(18)
        .position(|w| w == b"segl PAdES fixture")
        .expect("the title");
    let mut tampered = signed.clone();
    tampered[at] ^= 0x01;
    let file = write_file(d, "tampered.pdf", &tampered);
    let out = segl.cmd(&["verify", "--pdf", &file, "--ca", &root]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("invalid signature"), "{text}");
    assert!(text.contains("digest"), "{text}");
    let out = segl.cmd(&["verify", "--json", "--pdf", &file, "--ca", &root]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on failure too");
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("digest"), "{v}");
    assert_eq!(v["signatures"][0]["valid"], false, "{v}");

    // Bytes appended after the signature: it is intact but does not cover the file.
    let mut extended = signed.clone();
    extended.extend_from_slice(b"% added after signing\n");
    let file = write_file(d, "extended.pdf", &extended);
    let out = segl.cmd(&["verify", "--pdf", &file, "--ca", &root]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("valid signature"), "{text}");
    assert!(text.contains("covers only the first"), "{text}");
    let out = segl.cmd(&["verify", "--json", "--pdf", &file, "--ca", &root]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["signatures"][0]["valid"], true, "{v}");
    assert_eq!(v["signatures"][0]["covers_whole_file"], false, "{v}");

    // A ByteRange that does not start at 0 (same width, so the file still parses).
    let at = signed
        .windows(12)
        .position(|w| w == b"/ByteRange [")
        .expect("ByteRange")
        + 12;
    let mut shifted = signed.clone();
    assert_eq!(shifted[at], b'0');
    shifted[at] = b'1';
    let file = write_file(d, "byterange.pdf", &shifted);
    let out = segl.cmd(&["verify", "--pdf", &file, "--ca", &root]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("malformed") && text.contains("starts at 1"),
        "{text}"
    );

    // Another root: not trusted.
    hierarchy(d, "other-");
    let other = path(d, "other-root.pem");
    let out = segl.cmd(&["verify", "--pdf", &path(d, "signed.pdf"), "--ca", &other]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("not trusted"), "{text}");
}

async fn bad_pdf_input_exits_2(backend: Backend) {
    if !openssl_present() {
        return;
    }
    let segl = Segl::new(backend);
    let tmp = signed_pdfs();
    let d = tmp.path();
    let root = path(d, "root.pem");
    let signed = std::fs::read(d.join("signed.pdf")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "truncated.pdf",
            signed[..signed.len() / 2].to_vec(),
            "truncated",
        ),
        ("text.pdf", b"just some text\n".to_vec(), "not a PDF"),
        ("empty.pdf", Vec::new(), "empty"),
        ("unsigned.pdf", unsigned_pdf(), "carries no signature"),
        ("encrypted.pdf", encrypted_pdf(), "encrypted"),
    ];
    for (name, bytes, says) in cases {
        let file = write_file(d, name, &bytes);
        let out = segl.cmd(&["verify", "--pdf", &file, "--ca", &root]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {text}");
        assert!(text.contains(says), "{name}: {text}");
    }
    let out = segl.cmd(&["verify", "--pdf", "/nonexistent/x.pdf", "--ca", &root]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("cannot read"));
    // --pdf excludes --cms, --content and --digest.
    let pdf = path(d, "signed.pdf");
    for extra in [["--cms", pdf.as_str()], ["--content", pdf.as_str()]] {
        let mut args = vec!["verify", "--pdf", &pdf, "--ca", &root];
        args.extend_from_slice(&extra);
        let out = segl.cmd(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            output_text(&out)
        );
    }
}

fn encrypted_pdf() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pki/tests/data/qpdf-encrypted.pdf");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
