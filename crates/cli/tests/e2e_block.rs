//! Blocking an eID ("sperre") by support with `segl person block`: the code device is
//! blocked and logins with it refused, refresh tokens revoked, the certificate revoked
//! (OCSP `revoked` within seconds, checked with `openssl ocsp`), signing orders refused,
//! nothing re-enables the eID behind the block (token assign, password, app activation
//! code, certificate issuance), and the person is told by SMS and email.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use openidconnect::OAuth2TokenResponse;
use serde_json::{Value, json};

backend_tests!(
    a_block_ends_logins_tokens_certificates_and_signing,
    blocking_tells_the_person_and_refuses_bad_input,
);

async fn fetch(server: &Server, path: &str, dir: &Path, name: &str) -> String {
    let r = reqwest::get(server.url(path)).await.expect(path);
    assert_eq!(r.status().as_u16(), 200, "{path}");
    let p = dir.join(name);
    std::fs::write(&p, r.bytes().await.unwrap()).unwrap();
    p.to_str().unwrap().to_string()
}

/// The status `openssl ocsp` reports for `cert` (`good`, `revoked`, …).
fn ocsp_status(server: &Server, root: &str, persons: &str, cert: &str) -> String {
    let url = server.url("/pki/ocsp");
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        persons,
        "-cert",
        cert,
        "-url",
        &url,
        "-CAfile",
        root,
        "-no_nonce",
    ]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with(cert))
        .unwrap_or_else(|| panic!("no status line for {cert}:\n{out}"));
    line.rsplit(' ').next().unwrap_or_default().to_string()
}

async fn a_block_ends_logins_tokens_certificates_and_signing(backend: Backend) {
    if !openssl_present("the block tests") {
        return;
    }
    let mut fx = Fixture::new(backend, &[]);
    let (client, tokens) = fx.login_tokens(&["profile", "offline_access"]).await;
    let refresh = tokens.refresh_token().expect("a refresh token").clone();

    let dir = tempfile::tempdir().unwrap();
    let root = fetch(&fx.server, "/pki/ca/root.pem", dir.path(), "root.pem").await;
    let persons = fetch(&fx.server, "/pki/ca/persons.pem", dir.path(), "persons.pem").await;
    let certs = fx.segl.json(&["cert", "list", "--nin", NIN, "--json"]);
    let certs = certs.as_array().expect("a list");
    assert_eq!(certs.len(), 1, "{certs:?}");
    let serial = certs[0]["serial"].as_str().unwrap().to_string();
    let leaf = dir.path().join("person.pem");
    std::fs::write(&leaf, certs[0]["pem"].as_str().unwrap()).unwrap();
    let leaf = leaf.to_str().unwrap().to_string();
    assert_eq!(ocsp_status(&fx.server, &root, &persons, &leaf), "good");

    let done = fx.segl.json(&[
        "person", "block", "--nin", NIN, "--reason", "lost", "--by", "agent-7", "--json",
    ]);
    assert_eq!(done["newly_blocked"], true, "{done}");
    assert_eq!(done["devices"], json!([SERIAL]), "{done}");
    assert!(
        done["tokens"].as_u64().unwrap() >= 2,
        "access and refresh token: {done}"
    );
    assert!(
        done["sessions"].as_u64().unwrap() >= 1,
        "the browser's session: {done}"
    );
    assert_eq!(done["certificates"], json!([serial]), "{done}");
    assert_eq!(fx.segl.audit_count("person.blocked"), 1);
    assert_eq!(fx.segl.audit_count("pki.certificate_revoked"), 1);
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "person.blocked")
        .expect("the audit entry");
    assert_eq!(entry["data"]["reason"], "lost", "{entry}");
    assert_eq!(entry["data"]["by"], "agent-7", "{entry}");

    // The serving node sees the revocation within seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = String::new();
    while Instant::now() < deadline {
        status = ocsp_status(&fx.server, &root, &persons, &leaf);
        if status == "revoked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, "revoked", "OCSP after the block");

    // Tokens and logins.
    assert_eq!(
        refresh_grant(&client, &refresh).await.expect_err("revoked"),
        "invalid_grant"
    );
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let r = b
        .step(&flow, "otp", json!({"otp": fx.device.next_code()}))
        .await;
    assert_problem(&r, 423, "device_blocked");

    // Signing.
    let r = reqwest::Client::new()
        .post(fx.server.url("/api/v1/sign/orders"))
        .basic_auth(&fx.rp.client_id, fx.rp.client_secret.as_deref())
        .json(&json!({
            "text": "I accept",
            "login_hint": NIN,
            "documents": [{"name": "a.txt", "sha256": "00".repeat(32)}],
        }))
        .send()
        .await
        .unwrap();
    let r = Resp::read(r, "sign order for a blocked person".into()).await;
    assert_problem(&r, 409, "person_blocked");

    // Nothing re-enables the eID behind the block.
    let out = fx
        .segl
        .cmd(&["token", "assign", "--serial", "600000001", "--nin", NIN]);
    assert_input_error(&out, "token assign", "blocked");
    let out = fx.segl.cmd(&["person", "activation-code", "--nin", NIN]);
    assert_input_error(&out, "activation-code", "blocked");
    let out = fx.segl.cmd_stdin(
        &["person", "set-password", "--nin", NIN],
        Some("another-Long-passphrase-2026\n"),
    );
    assert_input_error(&out, "set-password", "blocked");
    let certs = fx.segl.json(&["cert", "list", "--nin", NIN, "--json"]);
    assert_eq!(
        certs.as_array().unwrap().len(),
        1,
        "no new certificate: {certs}"
    );
    assert_eq!(certs[0]["status"], "revoked", "{certs}");
    fx.segl.audit_ok();
}

async fn blocking_tells_the_person_and_refuses_bad_input(backend: Backend) {
    let segl = Segl::new(backend);
    let _server = Server::start(&segl, &[]);
    let nin = "01010050053";
    segl.json_stdin(
        &[
            "person",
            "add",
            "--nin",
            nin,
            "--name",
            "Kari Nordmann",
            "--phone",
            "+4791234567",
            "--email",
            "kari@example.no",
            "--password-stdin",
            "--json",
        ],
        Some("correct horse battery staple\n"),
    );

    for (args, needle) in [
        (vec!["--nin", nin, "--reason", "bored"], "--reason"),
        (
            vec!["--nin", "01010050054", "--reason", "lost"],
            "check digit",
        ),
        (
            vec!["--nin", "01019010046", "--reason", "lost"],
            "no person",
        ),
    ] {
        let mut full = vec!["person", "block"];
        full.extend(args);
        let out = segl.cmd(&full);
        assert_input_error(&out, &full.join(" "), needle);
    }
    assert_eq!(
        segl.audit_count("person.blocked"),
        0,
        "bad input changed nothing"
    );

    let done = segl.json(&[
        "person", "block", "--nin", nin, "--reason", "fraud", "--json",
    ]);
    assert_eq!(done["newly_blocked"], true, "{done}");
    assert_eq!(done["notified"], json!(["sms", "email"]), "{done}");
    let msgs = outbox(&segl, 2);
    let blocked: Vec<&Value> = msgs.iter().filter(|m| m["kind"] == "eid.blocked").collect();
    assert_eq!(blocked.len(), 2, "{msgs:?}");
    let mut channels: Vec<&str> = blocked
        .iter()
        .map(|m| m["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["email", "sms"]);
    assert!(
        blocked
            .iter()
            .all(|m| m["body"].as_str().unwrap().contains("blocked")
                && !m["body"].as_str().unwrap().contains(nin)),
        "{blocked:?}"
    );

    // Blocking again changes nothing and says so.
    let again = segl.json(&[
        "person", "block", "--nin", nin, "--reason", "lost", "--json",
    ]);
    assert_eq!(again["newly_blocked"], false, "{again}");
    assert_eq!(again["certificates"], json!([]), "{again}");
    assert_eq!(segl.audit_count("person.blocked"), 1);
    let shown = segl.person(nin);
    assert!(shown.to_string().contains("Kari"), "{shown}");
    segl.audit_ok();
}
