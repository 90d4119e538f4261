//! Code devices and audit through the CLI, end to end: encrypted PSKC imports (pre-shared
//! key and PBKDF2 passphrase), resynchronisation with two consecutive codes, the audit
//! events of client registration, refresh token reuse and wrong passwords, and failure
//! limits set by the operator. Codes come from the tests' own HOTP/TOTP, not segl's.

#[macro_use]
mod common;

use common::*;
use openidconnect::OAuth2TokenResponse;
use serde_json::{Value, json};

backend_tests!(
    psk_encrypted_totp_file_imports,
    pbkdf2_encrypted_hotp_file_imports_and_logs_in,
    wrong_or_missing_key_imports_nothing,
    resync_recovers_an_hotp_device_beyond_the_look_ahead,
    resync_recovers_a_drifted_totp_device,
    resync_of_an_unknown_device_is_refused,
    rp_add_records_client_added,
    refresh_token_reuse_is_recorded_and_revokes_the_family,
    racing_uses_of_one_refresh_token_have_one_winner,
    wrong_password_is_recorded,
    otp_failure_limit_from_the_environment_blocks_after_three,
    password_failure_limit_from_segl_toml_locks_after_three,
);

/// The pre-shared key of `totp-psk-aes128cbc.pskcxml` (hex).
const PSK_HEX: &str = "12345678901234567890123456789012";
/// The PBKDF2 passphrase of `hotp-pbkdf2-aes128cbc.pskcxml`.
const PASSPHRASE: &str = "qwerty";
/// The person with the TOTP device.
const TOTP_NIN: &str = "01010050053";
/// Their TOTP device (30 s step).
const TOTP_SERIAL: &str = "700000000";

/// `segl token import FIXTURE ARGS… --json` with optional standard input.
fn import_raw(
    segl: &Segl,
    fixture_name: &str,
    args: &[&str],
    input: Option<&str>,
) -> std::process::Output {
    let path = fixture(fixture_name);
    let mut all = vec!["token", "import", path.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push("--json");
    segl.cmd_stdin(&all, input)
}

/// The serials of `segl token list`, sorted.
fn serials(segl: &Segl) -> Vec<String> {
    let mut v: Vec<String> = segl
        .tokens()
        .iter()
        .map(|t| t["serial"].as_str().expect("serial").to_string())
        .collect();
    v.sort();
    v
}

/// Seeds an installation as [`Fixture`] does (person, HOTP device 600000000, client),
/// without starting a server.
fn seed(segl: &Segl) -> Rp {
    segl.add_person(NIN, NAME, PASSWORD);
    assert_eq!(segl.import_tokens("hotp-plain.pskcxml")["imported"], 3);
    segl.assign(SERIAL, NIN);
    segl.add_rp("Test", REDIRECT_URI, &[])
}

/// A new browser at the code step of a new flow for `nin`.
async fn at_otp_step(server: &Server, rp: &Rp, nin: &str) -> (Browser, Value) {
    let (_, client) = discover(server, rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = Browser::new(server);
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, nin).await;
    (b, flow)
}

/// A whole login with this code, which must be accepted.
async fn login_with_code(server: &Server, rp: &Rp, nin: &str, code: &str) {
    let (mut b, flow) = at_otp_step(server, rp, nin).await;
    let flow = b.otp_ok(&flow, code).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    assert!(done["redirect_to"].is_string(), "{done}");
}

/// The audit entries with this event name.
fn audit_entries(segl: &Segl, event: &str) -> Vec<Value> {
    segl.audit()
        .into_iter()
        .filter(|e| e["event"] == event)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Encrypted PSKC import
// ---------------------------------------------------------------------------------------

async fn psk_encrypted_totp_file_imports(backend: Backend) {
    let segl = Segl::new(backend);
    let out = import_raw(
        &segl,
        "totp-psk-aes128cbc.pskcxml",
        &["--psk-hex", PSK_HEX],
        None,
    );
    assert_success(&out, &["token", "import", "--psk-hex"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["imported"], 3, "{v}");
    assert_eq!(
        v["serials"],
        json!(["700000000", "700000001", "700000002"]),
        "{v}"
    );
    assert_eq!(serials(&segl), ["700000000", "700000001", "700000002"]);
    for t in segl.tokens() {
        assert_eq!(t["kind"], "totp", "{t}");
        assert_eq!(t["digits"], 6, "{t}");
        assert_eq!(t["state"], "active", "{t}");
        assert_eq!(t["failures"], 0, "{t}");
        assert!(
            !t.to_string().contains("12345678901234567890"),
            "no secret shown: {t}"
        );
    }
    assert_eq!(segl.audit_count("token.imported"), 1);
    segl.audit_ok();

    // The decrypted secret is the right one: a login with our own TOTP works.
    segl.add_person(TOTP_NIN, "Ola Nordmann", PASSWORD);
    segl.assign(TOTP_SERIAL, TOTP_NIN);
    let rp = segl.add_rp("Test", REDIRECT_URI, &[]);
    let server = Server::start(&segl, &[]);
    let code = totp(OTP_SECRET, unix_now(), 30, 6);
    login_with_code(&server, &rp, TOTP_NIN, &code).await;
}

async fn pbkdf2_encrypted_hotp_file_imports_and_logs_in(backend: Backend) {
    let segl = Segl::new(backend);
    let out = import_raw(
        &segl,
        "hotp-pbkdf2-aes128cbc.pskcxml",
        &["--passphrase-stdin"],
        Some(&format!("{PASSPHRASE}\n")),
    );
    assert_success(&out, &["token", "import", "--passphrase-stdin"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["imported"], 3, "{v}");
    assert_eq!(serials(&segl), ["600000000", "600000001", "600000002"]);
    for t in segl.tokens() {
        assert_eq!(t["kind"], "hotp", "{t}");
        assert_eq!(t["state"], "active", "{t}");
    }
    assert_eq!(segl.audit_count("token.imported"), 1);

    // The decrypted secret is the right one: the device's first code logs in.
    segl.add_person(NIN, NAME, PASSWORD);
    segl.assign(SERIAL, NIN);
    let rp = segl.add_rp("Test", REDIRECT_URI, &[]);
    let server = Server::start(&segl, &[]);
    login_with_code(&server, &rp, NIN, &hotp(OTP_SECRET, 0, 6)).await;
    segl.audit_ok();
}

async fn wrong_or_missing_key_imports_nothing(backend: Backend) {
    let segl = Segl::new(backend);
    let before = segl.audit_ok();

    let out = import_raw(
        &segl,
        "totp-psk-aes128cbc.pskcxml",
        &["--psk-hex", "000102030405060708090a0b0c0d0e0f"],
        None,
    );
    assert_input_error(
        &out,
        "pre-shared key or passphrase is wrong",
        "pre-shared key or passphrase is wrong",
    );

    let out = import_raw(
        &segl,
        "hotp-pbkdf2-aes128cbc.pskcxml",
        &["--passphrase-stdin"],
        Some("not-qwerty\n"),
    );
    assert_input_error(
        &out,
        "pre-shared key or passphrase is wrong",
        "pre-shared key or passphrase is wrong",
    );

    let out = import_raw(&segl, "totp-psk-aes128cbc.pskcxml", &[], None);
    assert_input_error(&out, "encrypted", "encrypted");

    let out = import_raw(
        &segl,
        "totp-psk-aes128cbc.pskcxml",
        &["--psk-hex", "xyz"],
        None,
    );
    assert_input_error(&out, "not hexadecimal", "not hexadecimal");

    assert!(segl.tokens().is_empty(), "nothing imported");
    assert_eq!(segl.audit_count("token.imported"), 0);
    assert_eq!(segl.audit_ok(), before, "nothing recorded");

    // The right key still imports afterwards.
    let out = import_raw(
        &segl,
        "totp-psk-aes128cbc.pskcxml",
        &["--psk-hex", PSK_HEX],
        None,
    );
    assert_success(&out, &["token", "import", "--psk-hex"]);
    assert_eq!(segl.tokens().len(), 3);
}

// ---------------------------------------------------------------------------------------
// Resynchronisation
// ---------------------------------------------------------------------------------------

async fn resync_recovers_an_hotp_device_beyond_the_look_ahead(backend: Backend) {
    let segl = Segl::new(backend);
    let rp = seed(&segl);
    let server = Server::start(&segl, &[]);
    let before = segl.audit_ok();

    // Refused: two wrong codes, non-consecutive codes, consecutive codes in the wrong order.
    let wrong = Hotp::new(SERIAL).wrong_code();
    let refused = [
        (wrong.clone(), wrong),
        (hotp(OTP_SECRET, 50, 6), hotp(OTP_SECRET, 52, 6)),
        (hotp(OTP_SECRET, 51, 6), hotp(OTP_SECRET, 50, 6)),
    ];
    for (c1, c2) in &refused {
        let out = segl.resync(SERIAL, c1, c2);
        assert_input_error(
            &out,
            "do not match consecutive codes",
            "do not match consecutive codes",
        );
    }
    let t = segl.token(SERIAL);
    assert_eq!(t["state"], "active", "{t}");
    assert_eq!(t["failures"], 0, "{t}");
    assert_eq!(segl.audit_count("token.resynced"), 0);
    assert_eq!(segl.audit_ok(), before, "nothing recorded");
    // The counter did not move: the first code still logs in.
    login_with_code(&server, &rp, NIN, &hotp(OTP_SECRET, 0, 6)).await;

    // The holder pressed the button 49 more times: code 50 is beyond the look-ahead (10).
    let (mut b, flow) = at_otp_step(&server, &rp, NIN).await;
    let r = b
        .step(&flow, "otp", json!({ "otp": hotp(OTP_SECRET, 50, 6) }))
        .await;
    assert_problem(&r, 401, "wrong_otp");
    assert_eq!(segl.token(SERIAL)["failures"], 1);

    // Support resynchronises with codes 50 and 51.
    let v = segl.resync_ok(SERIAL, &hotp(OTP_SECRET, 50, 6), &hotp(OTP_SECRET, 51, 6));
    assert_eq!(v, json!({"serial": SERIAL, "counter": 52}), "{v}");
    let t = segl.token(SERIAL);
    assert_eq!(t["state"], "active", "{t}");
    assert_eq!(t["failures"], 0, "resync clears the failures: {t}");
    let entries = audit_entries(&segl, "token.resynced");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["data"]["serial"], SERIAL, "{entries:?}");
    segl.audit_ok();

    // The codes used for the resync are spent; the next one logs in.
    let (mut b, flow) = at_otp_step(&server, &rp, NIN).await;
    let r = b
        .step(&flow, "otp", json!({ "otp": hotp(OTP_SECRET, 51, 6) }))
        .await;
    assert!(
        r.status.as_u16() == 401,
        "a code used for the resync is refused: {r:?}"
    );
    let view = b.flow(&flow_id(&flow)).await;
    let flow = b.otp_ok(&view, &hotp(OTP_SECRET, 52, 6)).await;
    b.password_ok(&flow, PASSWORD).await;
}

async fn resync_recovers_a_drifted_totp_device(backend: Backend) {
    let segl = Segl::new(backend);
    let rp = seed(&segl);
    segl.add_person(TOTP_NIN, "Ola Nordmann", PASSWORD);
    assert_eq!(segl.import_tokens("totp-plain.pskcxml")["imported"], 3);
    segl.assign(TOTP_SERIAL, TOTP_NIN);
    let server = Server::start(&segl, &[]);

    // Stay clear of a step boundary so the server's current step is ours.
    let into_step = unix_now() % 30;
    if into_step > 15 {
        tokio::time::sleep(std::time::Duration::from_secs(31 - into_step)).await;
    }
    let step = unix_now() / 30;
    let at = |s: u64| hotp(OTP_SECRET, s, 6);

    // The device's clock runs about ten minutes fast: its code is out of the window (1).
    let (mut b, flow) = at_otp_step(&server, &rp, TOTP_NIN).await;
    let r = b.step(&flow, "otp", json!({ "otp": at(step + 22) })).await;
    assert_problem(&r, 401, "wrong_otp");
    assert_eq!(segl.token(TOTP_SERIAL)["failures"], 1);

    // Non-consecutive codes are refused and change nothing.
    let out = segl.resync(TOTP_SERIAL, &at(step + 20), &at(step + 22));
    assert_input_error(
        &out,
        "do not match consecutive codes",
        "do not match consecutive codes",
    );
    assert_eq!(segl.token(TOTP_SERIAL)["failures"], 1);
    assert_eq!(segl.audit_count("token.resynced"), 0);

    let v = segl.resync_ok(TOTP_SERIAL, &at(step + 20), &at(step + 21));
    assert_eq!(v, json!({"serial": TOTP_SERIAL, "drift": 21}), "{v}");
    let t = segl.token(TOTP_SERIAL);
    assert_eq!(t["failures"], 0, "{t}");
    assert_eq!(t["state"], "active", "{t}");
    assert_eq!(segl.audit_count("token.resynced"), 1);

    // With the drift learnt, the device's next code logs in.
    let view = b.flow(&flow_id(&flow)).await;
    let flow = b.otp_ok(&view, &at(step + 22)).await;
    b.password_ok(&flow, PASSWORD).await;
    segl.audit_ok();
}

async fn resync_of_an_unknown_device_is_refused(backend: Backend) {
    let segl = Segl::new(backend);
    let before = segl.audit_ok();
    let out = segl.resync(
        "699999999",
        &hotp(OTP_SECRET, 0, 6),
        &hotp(OTP_SECRET, 1, 6),
    );
    assert_input_error(
        &out,
        "no code device with serial 699999999",
        "no code device with serial 699999999",
    );
    assert_eq!(segl.audit_ok(), before);
}

// ---------------------------------------------------------------------------------------
// Audit events
// ---------------------------------------------------------------------------------------

async fn rp_add_records_client_added(backend: Backend) {
    let segl = Segl::new(backend);
    let before = segl.audit_ok();
    assert_eq!(segl.audit_count("client.added"), 0);
    let rp = segl.add_rp("Kommune", REDIRECT_URI, &[]);
    let entries = audit_entries(&segl, "client.added");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["data"]["name"], "Kommune", "{e}");
    assert_eq!(e["data"]["redirect_uris"], json!([REDIRECT_URI]), "{e}");
    let secret = rp
        .client_secret
        .expect("a confidential client gets a secret");
    assert!(
        !e.to_string().contains(&secret),
        "the client secret is not in the audit log: {e}"
    );
    assert_eq!(segl.audit_ok(), before + 1);
}

async fn refresh_token_reuse_is_recorded_and_revokes_the_family(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (client, tokens) = fx.login_tokens(&["profile", "offline_access"]).await;
    let rt1 = tokens
        .refresh_token()
        .expect("a refresh token with offline_access")
        .clone();

    let refreshed = refresh_grant(&client, &rt1)
        .await
        .unwrap_or_else(|e| panic!("refresh failed: {e}"));
    let rt2 = refreshed
        .refresh_token()
        .expect("rotation gives a new refresh token")
        .clone();
    let at2 = refreshed.access_token().secret().clone();
    assert_eq!(fx.segl.audit_count("token.refresh_reuse"), 0);

    let reuse = refresh_grant(&client, &rt1)
        .await
        .expect_err("a rotated refresh token must be refused");
    assert_eq!(reuse, "invalid_grant");
    let entries = audit_entries(&fx.segl, "token.refresh_reuse");
    assert_eq!(entries.len(), 1, "one reuse recorded: {entries:?}");
    assert!(
        !entries[0].to_string().contains(rt1.secret()),
        "the token itself is not in the audit log: {}",
        entries[0]
    );

    // The family's newer token is refused too, and so is its access token.
    let after = refresh_grant(&client, &rt2)
        .await
        .expect_err("the family is revoked after a reuse");
    assert_eq!(after, "invalid_grant");
    userinfo_raw(&fx.server, &at2).await.expect_status(401);
    fx.segl.audit_ok();
}

/// Twelve requests with the same refresh token at once: on SQLite they share group commits,
/// on PostgreSQL they race on the row. Exactly one rotates; the others are reuses, which
/// revoke the family, the winner's new tokens included.
async fn racing_uses_of_one_refresh_token_have_one_winner(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (client, tokens) = fx.login_tokens(&["profile", "offline_access"]).await;
    let rt = tokens.refresh_token().expect("a refresh token").clone();

    let racers: Vec<_> = (0..12)
        .map(|_| {
            let (client, rt) = (client.clone(), rt.clone());
            tokio::spawn(async move { refresh_grant(&client, &rt).await })
        })
        .collect();
    let mut winners = Vec::new();
    for r in racers {
        match r.await.expect("task") {
            Ok(t) => winners.push(t),
            Err(e) => assert_eq!(e, "invalid_grant"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one request rotates the token");
    assert_eq!(fx.segl.audit_count("token.refreshed"), 1);
    assert_eq!(fx.segl.audit_count("token.refresh_reuse"), 11);
    let w = &winners[0];
    let next = w.refresh_token().expect("rotated").clone();
    let after = refresh_grant(&client, &next)
        .await
        .expect_err("the winner's token is revoked with its family");
    assert_eq!(after, "invalid_grant");
    userinfo_raw(&fx.server, w.access_token().secret())
        .await
        .expect_status(401);
    fx.segl.audit_ok();
}

async fn wrong_password_is_recorded(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (mut b, flow) = at_otp_step(&fx.server, &fx.rp, NIN).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let before = fx.segl.audit_ok();
    let wrong = "not-the-password-1";
    let r = b
        .step(&flow, "password", json!({ "password": wrong }))
        .await;
    assert_problem(&r, 401, "wrong_password");
    let entries = audit_entries(&fx.segl, "password.failure");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        !entries[0].to_string().contains(wrong),
        "the password is not in the audit log: {}",
        entries[0]
    );
    assert_eq!(fx.segl.audit_count("login.success"), 0);
    assert_eq!(fx.segl.audit_ok(), before + 1, "exactly one entry");

    // The flow is still open; cancelling it ends the login as a failure.
    let view = b.flow(&flow_id(&flow)).await;
    assert_eq!(view["state"], "password", "{view}");
    let r = b.step(&view, "cancel", json!({})).await;
    r.expect_status(200);
    let failures = audit_entries(&fx.segl, "login.failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["data"]["reason"], "cancelled", "{failures:?}");
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// Failure limits set by the operator
// ---------------------------------------------------------------------------------------

async fn otp_failure_limit_from_the_environment_blocks_after_three(backend: Backend) {
    let segl = Segl::new(backend);
    let rp = seed(&segl);
    let server = Server::start_with_env(&segl, &[], &[("SEGL_POLICY__OTP_MAX_FAILURES", "3")]);
    let wrong = Hotp::new(SERIAL).wrong_code();
    // One wrong code per flow, so the flow's own limit never gets in the way.
    for i in 1..=3u64 {
        let (mut b, flow) = at_otp_step(&server, &rp, NIN).await;
        let r = b.step(&flow, "otp", json!({ "otp": wrong })).await;
        assert_problem(&r, 401, "wrong_otp");
        let t = segl.token(SERIAL);
        assert_eq!(t["failures"], i, "failures after {i} wrong codes: {t}");
        let expected = if i < 3 { "active" } else { "blocked" };
        assert_eq!(t["state"], expected, "state after {i} wrong codes: {t}");
    }
    assert_eq!(segl.audit_count("otp.failure"), 3);
    assert_eq!(segl.audit_count("otp.device_blocked"), 1);

    // Blocked: the right code is refused.
    let (mut b, flow) = at_otp_step(&server, &rp, NIN).await;
    let r = b
        .step(&flow, "otp", json!({ "otp": hotp(OTP_SECRET, 0, 6) }))
        .await;
    assert_problem(&r, 423, "device_blocked");
    let failures = audit_entries(&segl, "login.failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0]["data"]["reason"], "device_blocked",
        "{failures:?}"
    );

    // A resync unblocks (the right code was not spent).
    let v = segl.resync_ok(SERIAL, &hotp(OTP_SECRET, 0, 6), &hotp(OTP_SECRET, 1, 6));
    assert_eq!(v["counter"], 2, "{v}");
    assert_eq!(segl.token(SERIAL)["state"], "active");
    login_with_code(&server, &rp, NIN, &hotp(OTP_SECRET, 2, 6)).await;
    segl.audit_ok();
}

async fn password_failure_limit_from_segl_toml_locks_after_three(backend: Backend) {
    let segl = Segl::new(backend);
    segl.write_config("[policy]\npassword_max_failures = 3\n");
    let fx = Fixture::with_segl(segl, &[]);
    let mut device = Hotp::new(SERIAL);
    for i in 1..=3 {
        let (mut b, flow) = at_otp_step(&fx.server, &fx.rp, NIN).await;
        let flow = b.otp_ok(&flow, &device.next_code()).await;
        let r = b
            .step(
                &flow,
                "password",
                json!({ "password": "not-the-password-1" }),
            )
            .await;
        assert_problem(&r, 401, "wrong_password");
        let p = fx.segl.person(NIN);
        assert_eq!(
            p["password_locked"],
            i == 3,
            "password_locked after {i} wrong passwords: {p}"
        );
    }
    assert_eq!(fx.segl.audit_count("password.failure"), 3);
    assert_eq!(fx.segl.audit_count("password.locked"), 1);

    let (mut b, flow) = at_otp_step(&fx.server, &fx.rp, NIN).await;
    let flow = b.otp_ok(&flow, &device.next_code()).await;
    let r = b
        .step(&flow, "password", json!({ "password": PASSWORD }))
        .await;
    assert_problem(&r, 423, "password_locked");
    let failures = audit_entries(&fx.segl, "login.failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0]["data"]["reason"], "password_locked",
        "{failures:?}"
    );

    // An administrator unlocks; the password works again.
    fx.segl
        .json(&["person", "unlock-password", "--nin", NIN, "--json"]);
    login_with_code(&fx.server, &fx.rp, NIN, &device.next_code()).await;
    fx.segl.audit_ok();
}
