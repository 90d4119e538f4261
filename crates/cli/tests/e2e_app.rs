//! App activation with a one-time code, end to end: the operator starts an activation
//! (`segl person activation-code`), the reference app (`segl app activate`) makes its
//! device key, registers the public key and keeps the key under its PIN. The code opens
//! after the security period, works once, and a new activation replaces the old app.

#[macro_use]
mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::{Value, json};

backend_tests!(
    the_app_activates_once_with_a_letter_code,
    activation_refuses_early_malformed_and_unknown_input,
    a_replaced_app_is_told_and_signed_calls_are_checked,
);

const PIN: &str = APP_PIN;

fn add_phone_person(segl: &Segl) {
    add_app_person(segl, APP_NIN, "Ola Nordmann");
}

fn activate(
    segl: &Segl,
    server: &Server,
    code: &str,
    vault: &std::path::Path,
) -> std::process::Output {
    app_activate(segl, server, code, None, vault)
}

fn activated(out: &std::process::Output) -> String {
    assert_success(out, &["app", "activate"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from app activate");
    let id = v["app_id"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(
        id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()),
        "{v}"
    );
    id.to_string()
}

async fn the_app_activates_once_with_a_letter_code(backend: Backend) {
    let segl = Segl::new(backend);
    // The shortest security period the policy allows, so the test waits one second.
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\n");
    let server = Server::start(&segl, &[]);
    add_phone_person(&segl);
    let dir = tempfile::tempdir().unwrap();
    let first_vault = dir.path().join("first/vault.json");
    let code = activation_code(&segl, APP_NIN);
    assert_eq!(code.len(), 19, "{code}");
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let first = activated(&activate(&segl, &server, &code, &first_vault));
    let mode = std::fs::metadata(&first_vault)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the vault is the owner's only");
    let status = segl.json(&[
        "app",
        "status",
        "--vault",
        first_vault.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(status["app_id"], first.as_str(), "{status}");
    assert_eq!(status["wiped"], false, "{status}");
    assert_eq!(status["failed_pin_attempts"], 0, "{status}");

    // The code works once.
    let again = activate(&segl, &server, &code, &dir.path().join("again.json"));
    assert_input_error(&again, "a used code", "activation_ended");
    assert!(
        !dir.path().join("again.json").exists(),
        "no vault for a refused activation"
    );

    // A new activation replaces the first app.
    let second_vault = dir.path().join("second/vault.json");
    let code2 = activation_code(&segl, APP_NIN);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = activated(&activate(&segl, &server, &code2, &second_vault));
    assert_ne!(first, second);

    let audit = segl.audit();
    let mut events: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "app.activated")
        .collect();
    events.sort_by_key(|e| e["seq"].as_i64());
    assert_eq!(events.len(), 2, "{audit:?}");
    assert_eq!(events[0]["data"]["app_id"], first.as_str());
    assert_eq!(events[0]["data"]["method"], "letter");
    assert_eq!(events[0]["data"]["replaced"], Value::Null);
    assert_eq!(events[1]["data"]["app_id"], second.as_str());
    assert_eq!(events[1]["data"]["replaced"], first.as_str());
    assert_eq!(segl.audit_count("app.activation_started"), 2);
    segl.audit_ok();

    // Support finds the person by either app ID, and sees both apps' states.
    for id in [&first, &second] {
        let p = segl.json(&["person", "show", "--app-id", id, "--json"]);
        assert_eq!(p["name"], "Ola Nordmann", "{p}");
        let apps = p["apps"].as_array().unwrap_or_else(|| panic!("{p}"));
        let state = |id: &str| {
            apps.iter()
                .find(|a| a["app_id"] == id)
                .map(|a| a["state"].clone())
        };
        assert_eq!(state(&first), Some(json!("deactivated")), "{p}");
        assert_eq!(state(&second), Some(json!("active")), "{p}");
    }
    let out = segl.cmd(&["person", "show", "--app-id", "000000000000"]);
    assert_input_error(&out, "an unknown app ID", "no app has this app ID");
}

async fn activation_refuses_early_malformed_and_unknown_input(backend: Backend) {
    let segl = Segl::new(backend);
    // A security period no test run outlasts, for the early attempt.
    segl.write_config("[policy.app]\nsecurity_period_secs = 3600\n");
    let server = Server::start(&segl, &[]);
    add_phone_person(&segl);
    let phoneless = segl.add_person(NIN, NAME, PASSWORD);
    assert!(phoneless["phone"].is_null(), "{phoneless}");
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault.json");

    // Within the security period: refused, and the code stays usable.
    let code = activation_code(&segl, APP_NIN);
    let early = activate(&segl, &server, &code, &vault);
    assert_input_error(&early, "an early activation", "activation_not_open");
    assert!(!vault.exists());

    // A PIN that is not 4-12 digits is refused before the server is asked.
    let bad_pin = segl.cmd_stdin(
        &[
            "app",
            "activate",
            "--server",
            &server.issuer(),
            "--code",
            &code,
            "--vault",
            vault.to_str().unwrap(),
        ],
        Some("12ab\n"),
    );
    assert_input_error(&bad_pin, "a bad PIN", "PIN");

    // Without a mobile number no activation starts (the owner could not be told).
    let out = segl.cmd(&["person", "activation-code", "--nin", NIN, "--json"]);
    assert_input_error(&out, "no mobile number", "mobile_number_required");

    // From here on the period is one second: the same code opens.
    drop(server);
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\n");
    let server = Server::start(&segl, &[]);
    std::thread::sleep(std::time::Duration::from_millis(2100));

    // The device API's own answers.
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/app/activations");
    // The public key of segl_crypto::device's Python-made test vector.
    let key =
        "BC4kQzOS1DYKKFaOJhATRQco6mjblvrUa08wElpfFjREIBwA0t0bjJTARZ00P4MP-2hvDuuB0rA8Mj5wt3neXx0";
    let post = |body: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move { Resp::fetch(http.post(url).json(&body), "activation".into()).await }
    };
    let r = post(json!({"activation_code": "ABCD-EFGH", "public_key": key})).await;
    assert_problem(&r, 400, "malformed_activation_code");
    let r = post(json!({"activation_code": "ABCD-EFGH-JKMN-PQRS", "public_key": key})).await;
    assert_problem(&r, 404, "activation_code_unknown");
    let r = post(json!({"activation_code": code, "public_key": "not-a-key"})).await;
    assert_problem(&r, 400, "malformed_public_key");
    // A point that is not on the curve.
    let off_curve = format!("BA{}", "A".repeat(85));
    let r = post(json!({"activation_code": code, "public_key": off_curve})).await;
    assert_problem(&r, 400, "malformed_public_key");
    let r =
        post(json!({"activation_code": code, "public_key": key, "label": "x".repeat(65)})).await;
    assert_problem(&r, 400, "malformed_label");
    let r = post(json!({"activation_code": code, "public_key": key, "extra": 1})).await;
    assert_problem(&r, 400, "malformed_request");
    let r = Resp::fetch(
        http.post(&url)
            .header("content-type", "application/json")
            .body("{\"activation_code\":"),
        "truncated JSON".into(),
    )
    .await;
    assert_problem(&r, 400, "malformed_request");

    // None of that spent the code: it still activates, once.
    let id = activated(&activate(&segl, &server, &code, &vault));
    assert_eq!(segl.audit_count("app.activated"), 1);
    let r = post(json!({"activation_code": code, "public_key": key})).await;
    assert_problem(&r, 410, "activation_ended");
    assert_eq!(
        segl.json(&[
            "app",
            "status",
            "--vault",
            vault.to_str().unwrap(),
            "--json"
        ])["app_id"],
        id.as_str()
    );
    segl.audit_ok();
}

fn with_pin(segl: &Segl, args: &[&str], pin: &str) -> std::process::Output {
    segl.cmd_stdin(args, Some(&format!("{pin}\n")))
}

fn json_out(out: &std::process::Output, what: &str) -> Value {
    assert_success(out, &[what]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Headers of a call signed with `key` at `timestamp`.
fn signed_headers(
    key: &segl_app::device::DeviceKey,
    app_id: &str,
    method: &str,
    path: &str,
    timestamp: i64,
) -> Vec<(&'static str, String)> {
    let nonce = format!("nonce-{timestamp}-{path}").replace('/', "_");
    let request = segl_core::app::DeviceRequest {
        app_id,
        nonce: &nonce,
        method,
        path,
        timestamp,
        body_sha256: <sha2::Sha256 as sha2::Digest>::digest(b"").into(),
    };
    let sig = key.sign_request(&request).expect("sign");
    vec![
        ("x-segl-app-id", app_id.to_string()),
        ("x-segl-nonce", nonce.clone()),
        ("x-segl-timestamp", timestamp.to_string()),
        (
            "x-segl-signature",
            data_encoding::BASE64URL_NOPAD.encode(&sig),
        ),
    ]
}

async fn a_replaced_app_is_told_and_signed_calls_are_checked(backend: Backend) {
    let segl = Segl::new(backend);
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\n");
    let server = Server::start(&segl, &[]);
    add_phone_person(&segl);
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    let new = dir.path().join("new.json");
    let (old_s, new_s) = (old.to_str().unwrap(), new.to_str().unwrap());
    let c1 = activation_code(&segl, APP_NIN);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = activated(&activate(&segl, &server, &c1, &old));

    let online = |vault: &str| {
        json_out(
            &with_pin(
                &segl,
                &["app", "status", "--vault", vault, "--online", "--json"],
                PIN,
            ),
            "app status --online",
        )
    };
    let s = online(old_s);
    assert_eq!(
        (s["app_id"].as_str(), s["state"].as_str()),
        (Some(first.as_str()), Some("active")),
        "{s}"
    );

    // A new phone: the old app is told the next time it asks, and can do nothing else.
    let c2 = activation_code(&segl, APP_NIN);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let second = activated(&activate(&segl, &server, &c2, &new));
    let s = online(old_s);
    assert_eq!(s["state"], "deactivated", "{s}");
    assert_eq!(s["deactivated_why"], "replaced", "{s}");
    let out = with_pin(&segl, &["app", "deactivate", "--vault", old_s], PIN);
    assert_input_error(&out, "deactivating a replaced app", "app_deactivated");

    // A wrong PIN is counted by the vault and never reaches the server.
    let out = with_pin(&segl, &["app", "deactivate", "--vault", new_s], "000000");
    assert_input_error(&out, "a wrong PIN", "wrong PIN");
    let v = segl.json(&["app", "status", "--vault", new_s, "--json"]);
    assert_eq!(v["failed_pin_attempts"], 1, "{v}");

    // Signed calls, made by hand with the new app's key.
    let key = segl_app::vault::Vault::unlock(&new, PIN).expect("unlock");
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/app/status");
    let call = |headers: Vec<(&'static str, String)>| {
        let mut req = http.get(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        Resp::fetch(req, "app status".into())
    };
    let now = unix_now() as i64;
    let r = call(vec![]).await;
    assert_problem(&r, 401, "device_auth_required");
    let good = signed_headers(&key, &second, "GET", "/api/v1/app/status", now);
    let r = call(good.clone()).await;
    r.expect_status(200);
    assert_eq!(r.json()["app_id"], second.as_str());
    // The same call again is a replay.
    let r = call(good).await;
    assert_problem(&r, 401, "replayed_device_request");
    // Signed for another path, at another time, or by another app's key.
    let r = call(signed_headers(
        &key,
        &second,
        "GET",
        "/api/v1/app/deactivate",
        now + 1,
    ))
    .await;
    assert_problem(&r, 401, "bad_device_signature");
    let r = call(signed_headers(
        &key,
        &second,
        "GET",
        "/api/v1/app/status",
        now - 600,
    ))
    .await;
    assert_problem(&r, 401, "stale_device_request");
    let other = segl_app::device::DeviceKey::generate().unwrap();
    let r = call(signed_headers(
        &other,
        &second,
        "GET",
        "/api/v1/app/status",
        now + 2,
    ))
    .await;
    assert_problem(&r, 401, "bad_device_signature");
    let r = call(signed_headers(
        &key,
        "000000000000",
        "GET",
        "/api/v1/app/status",
        now + 3,
    ))
    .await;
    assert_problem(&r, 401, "unknown_app");
    let mut bad = signed_headers(&key, &second, "GET", "/api/v1/app/status", now + 4);
    bad[3].1 = "!!".into();
    let r = call(bad).await;
    assert_problem(&r, 401, "malformed_device_auth");
    assert_eq!(segl.audit_count("app.auth_failure"), 3);

    // The person deactivates the new app from the app; it stays deactivated.
    let out = with_pin(
        &segl,
        &["app", "deactivate", "--vault", new_s, "--json"],
        PIN,
    );
    let v = json_out(&out, "app deactivate");
    assert_eq!(
        (v["state"].as_str(), v["deactivated_why"].as_str()),
        (Some("deactivated"), Some("by_person")),
        "{v}"
    );
    let s = online(new_s);
    assert_eq!(s["state"], "deactivated", "{s}");
    assert_eq!(segl.audit_count("app.deactivated"), 1);
    segl.audit_ok();
}
