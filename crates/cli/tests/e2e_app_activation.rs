//! The three ways to activate the app, end to end: (a) with the existing eID on the
//! "Activate the app" page (code device and password), (b) with two codes sent by SMS and
//! email, (c) from the old phone. The owner's phone is told by SMS when an activation
//! starts and completes (read from the file transport's outbox), the password cannot be
//! changed while one is pending, and only the old phone's path skips the security period.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

backend_tests!(
    activation_on_the_web_page_with_code_device_and_password,
    activation_with_codes_by_sms_and_email,
    activation_from_the_old_phone_skips_the_waiting,
    bad_phone_numbers_keys_and_late_codes_are_refused,
);

const PIN: &str = APP_PIN;

/// Kari with a mobile number, an email address, a code device and a password.
fn seed(segl: &Segl) {
    let p = segl.json_stdin(
        &[
            "person",
            "add",
            "--nin",
            NIN,
            "--name",
            NAME,
            "--phone",
            "+4791234567",
            "--email",
            "kari@example.test",
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(p["name"], NAME, "{p}");
    segl.import_tokens("hotp-plain.pskcxml");
    segl.assign(SERIAL, NIN);
}

fn of_kind<'a>(msgs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    msgs.iter().filter(|m| m["kind"] == kind).collect()
}

fn activate(
    segl: &Segl,
    server: &Server,
    code: &str,
    second: Option<&str>,
    vault: &std::path::Path,
) -> std::process::Output {
    app_activate(segl, server, code, second, vault)
}

fn set_password(segl: &Segl, pw: &str) -> std::process::Output {
    segl.cmd_stdin(
        &["person", "set-password", "--nin", NIN, "--json"],
        Some(&format!("{pw}\n")),
    )
}

/// The text of the element with this id in an HTML page.
fn element_text(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let open = html[start..].find('>').unwrap() + start + 1;
    let close = html[open..].find('<').unwrap() + open;
    html[open..close].trim().to_string()
}

async fn activation_on_the_web_page_with_code_device_and_password(backend: Backend) {
    let segl = Segl::new(backend);
    segl.write_config("[policy.app]\nsecurity_period_secs = 2\n");
    let server = Server::start(&segl, &[]);
    seed(&segl);
    let mut device = Hotp::new(SERIAL);

    let mut b = Browser::new(&server);
    let r = b.get("/app/activate").await;
    let id = login_flow_id(&r);
    let flow = b.flow(&id).await;
    assert_eq!(flow["state"], "identify", "{flow}");
    let r = b.step(&flow, "identify", json!({"nin": NIN})).await;
    let v = r.json();
    // Only the code device: an app cannot vouch for a new app on this page.
    assert_eq!(v["methods"], json!(["otp"]), "{v}");
    let r = b.step(&v, "method", json!({"method": "app"})).await;
    assert_problem(&r, 400, "unsupported_method");
    let r = b.step(&v, "method", json!({"method": "otp"})).await;
    let v = r.json();
    assert_eq!(v["state"], "otp", "{v}");
    let v = b.otp_ok(&v, &device.next_code()).await;
    let done = b.password_ok(&v, PASSWORD).await;
    let page_url = done["redirect_to"].as_str().unwrap().to_string();
    assert_eq!(page_url, format!("/app/activate/{id}"), "{done}");
    assert!(
        !b.cookies.contains_key("segl_sid"),
        "activating the app starts no session"
    );

    let page = b.get(&page_url).await;
    page.expect_status(200);
    let code = element_text(&page.body, "activation-code");
    assert_eq!(code.len(), 19, "{code}");
    assert!(
        page.body.contains("data:image/svg+xml;base64,"),
        "a QR code"
    );
    // Only for the browser that authenticated.
    let r = Browser::new(&server).get(&page_url).await;
    r.expect_status(403);
    assert!(!r.body.contains(&code));

    // The owner's phone is told; the code is not in that SMS.
    let msgs = outbox(&segl, 1);
    let started = of_kind(&msgs, "app.activation_started");
    assert_eq!(started.len(), 1, "{msgs:?}");
    assert_eq!(started[0]["channel"], "sms");
    assert_eq!(started[0]["to"], "+4791234567");
    assert!(
        started[0]["body"]
            .as_str()
            .unwrap()
            .contains("kodebrikke og passord"),
        "{msgs:?}"
    );
    assert!(!started[0]["body"].as_str().unwrap().contains(&code));

    // In the security period: no activation, and no password change either.
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault.json");
    let early = activate(&segl, &server, &code, None, &vault);
    assert_input_error(&early, "inside the security period", "activation_not_open");
    let out = set_password(&segl, "Nytt-Passord-Fjell-2026");
    assert_input_error(&out, "a pending activation", "activation_pending");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let out = activate(&segl, &server, &code, None, &vault);
    assert_success(&out, &["app", "activate"]);
    let msgs = outbox(&segl, 2);
    let completed = of_kind(&msgs, "app.activated");
    assert_eq!(completed.len(), 1, "{msgs:?}");
    // Done: the password may change again.
    let out = set_password(&segl, "Nytt-Passord-Fjell-2026");
    assert_success(&out, &["person", "set-password"]);
    assert_eq!(segl.audit_count("password.changed"), 1);
    let audit = segl.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "app.activated" && e["data"]["method"] == "eid"),
        "{audit:?}"
    );
    segl.audit_ok();
}

async fn activation_with_codes_by_sms_and_email(backend: Backend) {
    let segl = Segl::new(backend);
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\nsecond_code_max_failures = 3\n");
    let server = Server::start(&segl, &[]);
    seed(&segl);
    let http = reqwest::Client::new();
    let start = |nin: &'static str| {
        let (http, url) = (
            http.clone(),
            server.url("/api/v1/app/activations/by-sms-email"),
        );
        async move { Resp::fetch(http.post(url).json(&json!({"nin": nin})), "start".into()).await }
    };
    let r = start("15058500028").await;
    assert_problem(&r, 400, "invalid_nin");
    // A valid number without an eID: the same answer as with one, and nothing is sent.
    let unknown = start("01019010046").await;
    unknown.expect_status(202);
    let r = start(NIN).await;
    r.expect_status(202);
    assert_eq!(
        r.json()["status"],
        unknown.json()["status"],
        "the answer does not tell who has an eID"
    );
    let msgs = outbox(&segl, 3);
    let sms = of_kind(&msgs, "app.activation_code");
    let mail = of_kind(&msgs, "app.activation_second_code");
    assert_eq!((sms.len(), mail.len()), (1, 1), "{msgs:?}");
    assert_eq!(sms[0]["channel"], "sms");
    assert_eq!(mail[0]["channel"], "email");
    assert_eq!(mail[0]["to"], "kari@example.test");
    let grab = |m: &Value| -> String {
        let body = m["body"].as_str().unwrap();
        body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find(|w| w.len() == 19 && w.matches('-').count() == 3)
            .unwrap_or_else(|| panic!("no code in {body}"))
            .to_string()
    };
    let (code1, code2) = (grab(sms[0]), grab(mail[0]));
    assert_ne!(code1, code2);
    assert_eq!(of_kind(&msgs, "app.activation_started").len(), 1);
    // Again within a minute: no new codes (no flooding the phone).
    start(NIN).await.expect_status(202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(outbox(&segl, 3).len(), 3, "no new messages");

    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault.json");
    // Both codes are needed; a wrong second code counts.
    let out = activate(&segl, &server, &code1, None, &vault);
    assert_input_error(&out, "the SMS code alone", "wrong_second_code");
    let out = activate(&segl, &server, &code1, Some(&code1), &vault);
    assert_input_error(&out, "a wrong second code", "1 attempts left");
    let out = activate(&segl, &server, &code1, Some("ABCD-EFGH"), &vault);
    assert_input_error(&out, "a malformed second code", "malformed_second_code");
    let out = activate(&segl, &server, &code1, Some(&code2), &vault);
    assert_success(&out, &["app", "activate"]);
    let audit = segl.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "app.activated" && e["data"]["method"] == "sms_email"),
        "{audit:?}"
    );
    assert_eq!(segl.audit_count("app.activation_failure"), 2);
    assert!(segl.audit_count("app.activation_refused") >= 2);

    // A third wrong code ends an activation for good.
    let r = start(NIN).await;
    r.expect_status(202);
    let msgs = outbox(&segl, 7);
    let code3 = grab(of_kind(&msgs, "app.activation_code").last().unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = dir.path().join("other.json");
    for _ in 0..2 {
        let out = activate(&segl, &server, &code3, Some(&code1), &other);
        assert_input_error(&out, "a wrong second code", "wrong_second_code");
    }
    let out = activate(&segl, &server, &code3, Some(&code1), &other);
    assert_input_error(&out, "the third wrong code", "activation_ended");
    segl.audit_ok();
}

async fn activation_from_the_old_phone_skips_the_waiting(backend: Backend) {
    let segl = Segl::new(backend);
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\n");
    let server = Server::start(&segl, &[]);
    seed(&segl);
    let letter = segl.json(&["person", "activation-code", "--nin", NIN, "--json"]);
    let letter = letter["activation_code"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    let new = dir.path().join("new.json");
    assert_success(
        &activate(&segl, &server, &letter, None, &old),
        &["app", "activate"],
    );

    // From here on the security period is an hour: only the old phone's path is open now.
    drop(server);
    segl.write_config("[policy.app]\nsecurity_period_secs = 3600\n");
    let server = Server::start(&segl, &[]);
    // The restarted server listens elsewhere: point the old app at it.
    let mut v: Value = serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
    v["server"] = json!(server.issuer());
    std::fs::write(&old, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = segl.cmd_stdin(
        &[
            "app",
            "transfer",
            "--vault",
            old.to_str().unwrap(),
            "--json",
        ],
        Some(&format!("{PIN}\n")),
    );
    assert_success(&out, &["app", "transfer"]);
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = t["activation_code"].as_str().unwrap().to_string();
    // The old app holds its push connection while the new one is activated: it is told.
    let mut watch = segl.command(&[
        "app",
        "watch",
        "--timeout",
        "30",
        "--vault",
        old.to_str().unwrap(),
        "--json",
    ]);
    watch
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut watch = watch.spawn().unwrap();
    {
        use std::io::Write;
        writeln!(watch.stdin.take().unwrap(), "{PIN}").unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = activate(&segl, &server, &code, None, &new);
    assert_success(&out, &["app", "activate"]);
    let watched = watch.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&watched.stdout);
    let stderr = String::from_utf8_lossy(&watched.stderr);
    assert_eq!(watched.status.code(), Some(1), "{stdout} {stderr}");
    assert!(stdout.contains("\"replaced\""), "{stdout}");
    assert!(stderr.contains("no longer active"), "{stderr}");

    // The old app is told it was replaced.
    let out = segl.cmd_stdin(
        &[
            "app",
            "status",
            "--online",
            "--vault",
            old.to_str().unwrap(),
            "--json",
        ],
        Some(&format!("{PIN}\n")),
    );
    assert_success(&out, &["app", "status"]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["state"], "deactivated", "{s}");
    assert_eq!(s["deactivated_why"], "replaced", "{s}");
    // A deactivated app cannot start another transfer.
    let out = segl.cmd_stdin(
        &[
            "app",
            "transfer",
            "--vault",
            old.to_str().unwrap(),
            "--json",
        ],
        Some(&format!("{PIN}\n")),
    );
    assert_input_error(&out, "a replaced app", "app_deactivated");

    let msgs = outbox(&segl, 4);
    let started: Vec<_> = of_kind(&msgs, "app.activation_started");
    assert_eq!(started.len(), 2, "{msgs:?}");
    assert!(
        started[1]["body"]
            .as_str()
            .unwrap()
            .contains("fra den gamle telefonen"),
        "{msgs:?}"
    );
    assert_eq!(of_kind(&msgs, "app.activated").len(), 2, "{msgs:?}");
    let audit = segl.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "app.activated" && e["data"]["method"] == "old_device"),
        "{audit:?}"
    );
    segl.audit_ok();
}

async fn bad_phone_numbers_keys_and_late_codes_are_refused(backend: Backend) {
    let segl = Segl::new(backend);
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\ncompletion_window_secs = 1\n");
    let server = Server::start(&segl, &[]);
    // A mobile number in the wrong form: refused with the reason, nobody added.
    for phone in ["+4712345678", "+46701234567", "9123456", "not a number"] {
        let out = segl.cmd_stdin(
            &[
                "person", "add", "--nin", NIN, "--name", NAME, "--phone", phone, "--json",
            ],
            None,
        );
        assert_input_error(&out, phone, "not a Norwegian mobile number");
    }
    let out = segl.cmd(&["person", "show", "--nin", NIN, "--json"]);
    assert_eq!(out.status.code(), Some(2), "nobody was added");
    seed(&segl);

    let code = segl.json(&["person", "activation-code", "--nin", NIN, "--json"]);
    let code = code["activation_code"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/app/activations");
    let post = |body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move { Resp::fetch(http.post(url).json(&body), "activation".into()).await }
    };
    // A key on another curve (a P-384 point is 97 bytes) and a compressed P-256 point.
    let p384 = data_encoding::BASE64URL_NOPAD.encode(&[4u8; 97]);
    let r = post(json!({"activation_code": code, "public_key": p384})).await;
    assert_problem(&r, 400, "malformed_public_key");
    let compressed = data_encoding::BASE64URL_NOPAD.encode(&[2u8; 33]);
    let r = post(json!({"activation_code": code, "public_key": compressed})).await;
    assert_problem(&r, 400, "malformed_public_key");
    // Open for one second after one second of waiting; after that the code is dead.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = activate(&segl, &server, &code, None, &dir.path().join("v.json"));
    assert_input_error(&out, "an expired code", "activation_ended");
    assert!(!dir.path().join("v.json").exists());
    assert_eq!(segl.audit_count("app.activated"), 0);
}
