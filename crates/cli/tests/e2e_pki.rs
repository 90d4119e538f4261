//! The CA end to end, checked by openssl: the hierarchy and a person's certificate chain
//! (`openssl verify`), the OCSP responder over HTTP (`openssl ocsp` as client: good, then
//! revoked within seconds of `segl cert revoke`, with and without nonce), the CRL
//! (`openssl crl`, `openssl verify -crl_check`), and bad input to the responder and the CLI.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

backend_tests!(
    person_certificate_chains_to_the_root_and_follows_the_profile,
    ocsp_answers_good_then_revoked_and_the_crl_lists_the_revocation,
    ocsp_answers_bad_requests_with_rfc_6960_statuses,
    cli_refuses_bad_revocations_and_inactive_eids,
    ca_and_person_keys_on_a_softhsm2_token,
    root_kept_offline_signs_the_persons_ca,
);

const SOFTHSM2: &str = "/usr/lib/softhsm/libsofthsm2.so";

const NIN: &str = "01010050053";
const NAME: &str = "Kari Nordmann";
const PASSWORD: &str = "correct horse battery staple";
const SERIAL: &str = "600000000";

/// A person with an active eID (password + code device) and so a certificate.
fn active_person(segl: &Segl) -> Value {
    segl.add_person(NIN, NAME, PASSWORD);
    segl.import_tokens("hotp-plain.pskcxml");
    let assigned = segl.assign(SERIAL, NIN);
    assert!(
        assigned["certificate"].is_string(),
        "assigning the code device made the eID active and should issue a certificate: {assigned}"
    );
    let certs = certs(segl, Some(NIN));
    assert_eq!(certs.len(), 1, "{certs:?}");
    certs[0].clone()
}

fn certs(segl: &Segl, nin: Option<&str>) -> Vec<Value> {
    let mut args = vec!["cert", "list", "--json"];
    if let Some(n) = nin {
        args.extend(["--nin", n]);
    }
    match segl.json(&args) {
        Value::Array(v) => v,
        other => panic!("`segl cert list --json` is not an array: {other}"),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// Writes a `segl cert list` entry's certificate to `person.pem`.
fn write_leaf(dir: &Path, cert: &Value) -> String {
    write(dir, "person.pem", cert["pem"].as_str().unwrap().as_bytes())
}

/// `openssl verify` of a person certificate up to the root.
fn assert_chain_ok(root: &str, persons: &str, leaf: &str) {
    let (ok, out) = openssl(&["verify", "-CAfile", root, "-untrusted", persons, leaf]);
    assert!(ok && out.contains("person.pem: OK"), "{out}");
}

async fn get_bytes(url: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(url).await.expect(url);
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

/// Downloads root.pem and persons.pem from the server into `dir`.
async fn ca_files(server: &Server, dir: &Path) -> (String, String) {
    let (s, ct, root) = get_bytes(&server.url("/pki/ca/root.pem")).await;
    assert_eq!(s, 200);
    assert_eq!(ct, "application/x-pem-file");
    let (s, _, persons) = get_bytes(&server.url("/pki/ca/persons.pem")).await;
    assert_eq!(s, 200);
    let (s, ct, der) = get_bytes(&server.url("/pki/ca/persons.cer")).await;
    assert_eq!((s, ct.as_str()), (200, "application/pkix-cert"));
    assert_eq!(der[0], 0x30, "persons.cer is DER");
    (
        write(dir, "root.pem", &root),
        write(dir, "persons.pem", &persons),
    )
}

/// `openssl ocsp` against the server for `cert`; its output.
fn ocsp_query(server: &Server, root: &str, persons: &str, cert: &str, nonce: bool) -> String {
    let url = server.url("/pki/ocsp");
    let mut args = vec![
        "ocsp",
        "-issuer",
        persons,
        "-cert",
        cert,
        "-url",
        &url,
        "-CAfile",
        root,
        "-resp_text",
    ];
    if !nonce {
        args.push("-no_nonce");
    }
    let (ok, out) = openssl(&args);
    assert!(ok, "openssl ocsp failed:\n{out}");
    assert!(
        out.contains("Response verify OK"),
        "the responder's signature did not verify:\n{out}"
    );
    if nonce {
        assert!(
            !out.contains("WARNING: no nonce"),
            "the nonce was not echoed:\n{out}"
        );
    }
    out
}

async fn person_certificate_chains_to_the_root_and_follows_the_profile(backend: Backend) {
    if !openssl_present("the PKI tests") {
        return;
    }
    let segl = Segl::new(backend);
    let cert = active_person(&segl);
    assert_eq!(cert["status"], "valid");
    let server = Server::start(&segl, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (root, persons) = ca_files(&server, dir.path()).await;
    let leaf = write_leaf(dir.path(), &cert);

    assert_chain_ok(&root, &persons, &leaf);

    let (ok, text) = openssl(&[
        "x509",
        "-in",
        &leaf,
        "-noout",
        "-text",
        "-nameopt",
        "utf8,sep_comma_plus",
    ]);
    assert!(ok, "{text}");
    let sub = segl.person(NIN)["sub"].as_str().unwrap().to_string();
    for expected in [
        "GN=Kari".to_string(),
        "SN=Nordmann".to_string(),
        format!("serialNumber=UN:NO-{sub}"),
        "Non Repudiation".to_string(),
        "OCSP - URI:".to_string(),
        "/pki/crl/persons.crl".to_string(),
        "Policy: 2.25.".to_string(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?}:\n{text}");
    }
    assert!(
        !text.contains(NIN),
        "the national identity number is in the certificate:\n{text}"
    );
    // Four years by default.
    let days = (cert["not_after"].as_i64().unwrap() - cert["not_before"].as_i64().unwrap()) / 86400;
    assert_eq!(days, 4 * 365);
    assert_eq!(segl.audit_count("pki.certificate_issued"), 1);
    assert!(segl.audit_count("pki.ca_created") >= 1);
}

async fn ocsp_answers_good_then_revoked_and_the_crl_lists_the_revocation(backend: Backend) {
    if !openssl_present("the PKI tests") {
        return;
    }
    let segl = Segl::new(backend);
    let cert = active_person(&segl);
    let serial = cert["serial"].as_str().unwrap().to_string();
    let server = Server::start(&segl, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (root, persons) = ca_files(&server, dir.path()).await;
    let leaf = write_leaf(dir.path(), &cert);

    // Good, with a nonce (signed fresh) and twice without (pre-signed, then from the cache).
    for nonce in [true, false, false] {
        let out = ocsp_query(&server, &root, &persons, &leaf, nonce);
        assert!(out.contains(&format!("{leaf}: good")), "{out}");
    }

    let revoked = segl.json(&[
        "cert",
        "revoke",
        "--serial",
        &serial,
        "--reason",
        "key-compromise",
        "--json",
    ]);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(segl.audit_count("pki.certificate_revoked"), 1);

    // Within seconds, also for the answer that was cached as good.
    let started = Instant::now();
    loop {
        let out = ocsp_query(&server, &root, &persons, &leaf, false);
        if out.contains(&format!("{leaf}: revoked")) {
            assert!(out.contains("Reason: keyCompromise"), "{out}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "OCSP still answers good 10 s after the revocation:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let out = ocsp_query(&server, &root, &persons, &leaf, true);
    assert!(out.contains(&format!("{leaf}: revoked")), "{out}");
    eprintln!(
        "OCSP said revoked {:?} after the revocation",
        started.elapsed()
    );

    // The CRL, regenerated on revocation.
    let (s, ct, crl) = get_bytes(&server.url("/pki/crl/persons.crl")).await;
    assert_eq!((s, ct.as_str()), (200, "application/pkix-crl"));
    let crl_der = write(dir.path(), "persons.crl", &crl);
    let (ok, text) = openssl(&[
        "crl", "-inform", "DER", "-in", &crl_der, "-CAfile", &persons, "-noout", "-text",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains(&serial),
        "the CRL does not list {serial}:\n{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    let (ok, crl_pem) = {
        let out = Command::new("openssl")
            .args(["crl", "-inform", "DER", "-in", &crl_der, "-outform", "PEM"])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    };
    assert!(ok);
    let crl_pem = write(dir.path(), "persons-crl.pem", crl_pem.as_bytes());
    // The root's CRL too, for a full -crl_check_all.
    let (s, _, root_crl) = get_bytes(&server.url("/pki/crl/root.crl")).await;
    assert_eq!(s, 200);
    let root_crl_der = write(dir.path(), "root.crl", &root_crl);
    let out = Command::new("openssl")
        .args([
            "crl",
            "-inform",
            "DER",
            "-in",
            &root_crl_der,
            "-outform",
            "PEM",
        ])
        .output()
        .unwrap();
    let mut crls = std::fs::read(&crl_pem).unwrap();
    crls.extend_from_slice(&out.stdout);
    let all_crls = write(dir.path(), "crls.pem", &crls);
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check_all",
        "-CRLfile",
        &all_crls,
        "-CAfile",
        &root,
        "-untrusted",
        &persons,
        &leaf,
    ]);
    assert!(!ok, "a revoked certificate verified:\n{out}");
    assert!(out.contains("certificate revoked"), "{out}");
}

async fn ocsp_answers_bad_requests_with_rfc_6960_statuses(backend: Backend) {
    if !openssl_present("the PKI tests") {
        return;
    }
    let segl = Segl::new(backend);
    active_person(&segl);
    let server = Server::start(&segl, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (_root, persons) = ca_files(&server, dir.path()).await;
    let client = reqwest::Client::new();

    // Garbage over POST and GET: an OCSPResponse with status malformedRequest (1).
    for resp in [
        client
            .post(server.url("/pki/ocsp"))
            .header("content-type", "application/ocsp-request")
            .body(b"\x30\x03\x02\x01".to_vec())
            .send()
            .await
            .unwrap(),
        client
            .get(server.url("/pki/ocsp/not-base64!!"))
            .send()
            .await
            .unwrap(),
        client
            .get(server.url("/pki/ocsp/MAMCAQE="))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "application/ocsp-response");
        let body = resp.bytes().await.unwrap();
        let path = write(dir.path(), "bad.der", &body);
        let (_, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
        assert!(text.contains("malformedrequest"), "{text}");
    }

    // A certificate of another CA: unknown.
    let other_key = dir.path().join("other.key");
    let other_ca = dir.path().join("other-ca.pem");
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        other_key.to_str().unwrap(),
        "-out",
        other_ca.to_str().unwrap(),
        "-subj",
        "/CN=Another CA",
        "-days",
        "2",
    ]);
    assert!(ok, "{out}");
    let req = dir.path().join("req.der");
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        other_ca.to_str().unwrap(),
        "-serial",
        "0x1234",
        "-reqout",
        req.to_str().unwrap(),
        "-no_nonce",
    ]);
    assert!(ok, "{out}");
    let resp = client
        .post(server.url("/pki/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(std::fs::read(&req).unwrap())
        .send()
        .await
        .unwrap();
    let path = write(dir.path(), "unknown.der", &resp.bytes().await.unwrap());
    let (_, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
    assert!(text.contains("Cert Status: unknown"), "{text}");

    // A serial the persons CA never issued: unknown as well.
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        &persons,
        "-serial",
        "0x7777",
        "-reqout",
        req.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let resp = client
        .post(server.url("/pki/ocsp"))
        .body(std::fs::read(&req).unwrap())
        .send()
        .await
        .unwrap();
    let path = write(dir.path(), "unknown2.der", &resp.bytes().await.unwrap());
    let (_, text) = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
    assert!(text.contains("Cert Status: unknown"), "{text}");

    // No such CA or CRL.
    for path in [
        "/pki/ca/nobody.pem",
        "/pki/ca/root.txt",
        "/pki/crl/nobody.crl",
        "/pki/ca/persons-ocsp.pem",
    ] {
        let (s, ct, _) = get_bytes(&server.url(path)).await;
        assert_eq!(
            (s, ct.as_str()),
            (404, "application/problem+json"),
            "{path}"
        );
    }
}

async fn cli_refuses_bad_revocations_and_inactive_eids(backend: Backend) {
    let segl = Segl::new(backend);
    // A password alone is not an active eID.
    segl.add_person("01010050134", "Ola Nordmann", PASSWORD);
    let out = segl.cmd(&["cert", "issue", "--nin", "01010050134"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not active"),
        "{out:?}"
    );
    assert!(certs(&segl, None).is_empty());

    let cert = active_person(&segl);
    let serial = cert["serial"].as_str().unwrap();
    for (args, message) in [
        (
            vec![
                "cert",
                "revoke",
                "--serial",
                "00ff",
                "--reason",
                "superseded",
            ],
            "no certificate with serial",
        ),
        (
            vec!["cert", "revoke", "--serial", serial, "--reason", "bored"],
            "unknown reason",
        ),
        (
            vec![
                "cert",
                "revoke",
                "--serial",
                serial,
                "--reason",
                "ca-compromise",
            ],
            "CA certificates",
        ),
    ] {
        let out = segl.cmd(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}: {out:?}"
        );
    }
    assert_eq!(
        certs(&segl, Some(NIN))[0]["status"],
        "valid",
        "a refused revocation changed nothing"
    );
    segl.ok(&["cert", "revoke", "--serial", serial]);
    let out = segl.cmd(&["cert", "revoke", "--serial", serial]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already revoked"),
        "{out:?}"
    );
    assert_eq!(segl.audit_count("pki.certificate_revoked"), 1);
    // A new certificate for the active eID once the old one is revoked.
    let issued = segl.json(&["cert", "issue", "--nin", NIN, "--json"]);
    assert_ne!(issued["serial"].as_str().unwrap(), serial);
    let list = certs(&segl, Some(NIN));
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|c| c["status"] == "revoked").count(), 1);
}

/// segl with `[pki] key_store = "pkcs11"`: the hierarchy and a person's key are made on a
/// SoftHSM2 token, as non-extractable objects, and what they sign verifies with openssl;
/// a wrong PIN stops segl with a message that does not show it.
async fn ca_and_person_keys_on_a_softhsm2_token(backend: Backend) {
    if !openssl_present("the PKI tests") {
        return;
    }
    if !Path::new(SOFTHSM2).exists() {
        skip("the PKCS#11 CA test", "SoftHSM2 is not installed");
        return;
    }
    let hsm = tempfile::tempdir().unwrap();
    let tokens = hsm.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = hsm.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "segl-ca",
            "--so-pin",
            "87654321",
            "--pin",
            "123456",
        ])
        .output()
        .expect("softhsm2-util");
    assert!(init.status.success(), "{init:?}");

    let segl = Segl::new(backend);
    segl.write_config(&format!(
        "[pki]\nkey_store = \"pkcs11\"\npkcs11_module = \"{SOFTHSM2}\"\npkcs11_token = \"segl-ca\"\n"
    ));
    let hsm_env = |c: &mut Command, pin: &str| {
        c.env("SOFTHSM2_CONF", &conf)
            .env("SEGL_PKI__PKCS11_PIN", pin);
    };
    let run = |args: &[&str], pin: &str| {
        let mut c = segl.command(args);
        hsm_env(&mut c, pin);
        c.output().unwrap()
    };
    let out = run(&["ca", "list", "--json"], "999999");
    assert!(!out.status.success(), "a wrong PIN was accepted: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PIN"), "{err}");
    assert!(!err.contains("999999"), "the PIN is in the message: {err}");

    let out = run(&["ca", "list", "--json"], "123456");
    assert!(out.status.success(), "{out:?}");
    let cas: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cas.as_array().unwrap().len(), 3, "{cas}");
    assert!(
        cas.as_array()
            .unwrap()
            .iter()
            .all(|c| c["key_store"] == "pkcs11"),
        "{cas}"
    );

    // An active eID, enrolled with the token's PIN in the environment.
    let mut add = segl.command(&[
        "person",
        "add",
        "--nin",
        NIN,
        "--name",
        NAME,
        "--password-stdin",
        "--json",
    ]);
    hsm_env(&mut add, "123456");
    add.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = add.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
    }
    assert!(child.wait_with_output().unwrap().status.success());
    let path = fixture("hotp-plain.pskcxml");
    assert!(
        run(&["token", "import", path.to_str().unwrap()], "123456")
            .status
            .success()
    );
    let out = run(
        &[
            "token", "assign", "--serial", SERIAL, "--nin", NIN, "--json",
        ],
        "123456",
    );
    assert!(out.status.success(), "{out:?}");
    let out = run(&["cert", "list", "--nin", NIN, "--json"], "123456");
    let certs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cert = &certs[0];
    assert_eq!(cert["key_store"], "pkcs11");

    // The token holds the keys (3 CAs and the person's), private and never extractable.
    let objects = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--module",
            SOFTHSM2,
            "--token-label",
            "segl-ca",
            "--login",
            "--pin",
            "123456",
            "--list-objects",
            "--type",
            "privkey",
        ])
        .output()
        .expect("pkcs11-tool");
    let listing = String::from_utf8_lossy(&objects.stdout);
    assert_eq!(
        listing.matches("Private Key Object").count(),
        4,
        "{listing}"
    );
    assert!(listing.contains("never extractable"), "{listing}");

    // What the token signed verifies.
    let dir = tempfile::tempdir().unwrap();
    let export = |name: &str| {
        let out = run(&["ca", "export", name], "123456");
        assert!(out.status.success());
        write(dir.path(), &format!("{name}.pem"), &out.stdout)
    };
    let (root, persons) = (export("root"), export("persons"));
    let leaf = write_leaf(dir.path(), cert);
    assert_chain_ok(&root, &persons, &leaf);

    // The OCSP responder signs with the token's key too.
    let server = Server::start_with_env(
        &segl,
        &[],
        &[
            ("SOFTHSM2_CONF", conf.to_str().unwrap()),
            ("SEGL_PKI__PKCS11_PIN", "123456"),
        ],
    );
    let out = ocsp_query(&server, &root, &persons, &leaf, true);
    assert!(out.contains(&format!("{leaf}: good")), "{out}");
}

/// The root made apart (here: another data directory, as on an offline machine) and only
/// its certificate imported; the persons CA's request is signed where the root is.
async fn root_kept_offline_signs_the_persons_ca(backend: Backend) {
    if !openssl_present("the PKI tests") {
        return;
    }
    let offline = Segl::new(Backend::Sqlite);
    let online = Segl::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let root = write(
        dir.path(),
        "root.pem",
        &offline.ok(&["ca", "export", "root"]).stdout,
    );

    let out = online.ok(&["ca", "import", "--root", &root]);
    let request = write(dir.path(), "persons.csr", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE REQUEST"));
    let (ok, text) = openssl(&["req", "-in", &request, "-noout", "-verify", "-subject"]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // Until the persons CA has its certificate, commands say what is missing.
    let out = online.cmd(&["cert", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("segl ca import --ca persons"),
        "{out:?}"
    );
    // A second root is refused.
    let out = online.cmd(&["ca", "import", "--root", &root]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already has a CA"),
        "{out:?}"
    );
    // A certificate for another key (the offline side's own persons CA) is refused.
    let other = write(
        dir.path(),
        "other.pem",
        &offline.ok(&["ca", "export", "persons"]).stdout,
    );
    let out = online.cmd(&["ca", "import", "--ca", "persons", "--cert", &other]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another key"),
        "{out:?}"
    );
    // A tampered request is not signed.
    let mut pem = std::fs::read_to_string(&request).unwrap();
    let at = pem.find("MII").unwrap() + 40;
    let flipped = if &pem[at..at + 1] == "A" { "B" } else { "A" };
    pem.replace_range(at..at + 1, flipped);
    let tampered = write(dir.path(), "tampered.csr", pem.as_bytes());
    let out = offline.cmd(&["ca", "sign-request", "--request", &tampered]);
    assert!(
        !out.status.success(),
        "a tampered request was signed: {out:?}"
    );

    let signed = offline.ok(&["ca", "sign-request", "--request", &request]);
    let persons = write(dir.path(), "persons.pem", &signed.stdout);
    online.ok(&["ca", "import", "--ca", "persons", "--cert", &persons]);
    let cas = online.json(&["ca", "list", "--json"]);
    let names: Vec<&str> = cas
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["persons", "persons-ocsp", "root"], "{cas}");
    let root_row = cas
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "root")
        .unwrap();
    assert_eq!(root_row["key_store"], "none");

    // The online CA issues under the offline root.
    let cert = active_person(&online);
    let leaf = write_leaf(dir.path(), &cert);
    assert_chain_ok(&root, &persons, &leaf);
    assert_eq!(online.audit_count("pki.root_imported"), 1);
    assert_eq!(offline.audit_count("pki.request_signed"), 1);
}
