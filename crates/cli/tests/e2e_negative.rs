//! What segl refuses, end to end: each test asserts the precise problem code or OAuth error
//! and that nothing else changed (code device and password state, audit chain and entries).

#[macro_use]
mod common;

use common::*;
use openidconnect::{
    AuthorizationCode, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError,
};
use serde_json::{Value, json};

backend_tests!(
    wrong_otp_is_refused_and_counted,
    unknown_number_answers_like_a_wrong_code,
    replayed_hotp_code_is_refused,
    replayed_totp_code_is_refused,
    device_blocks_after_five_wrong_codes,
    password_locks_after_five_wrong_passwords,
    expired_flow_is_gone,
    missing_or_wrong_csrf_token_is_refused,
    flow_is_bound_to_its_browser,
    malformed_json_is_refused,
    oversize_body_is_refused,
    flow_steps_out_of_order_or_unknown_are_refused,
    redirect_uri_mismatch_shows_a_page_and_never_redirects,
    unknown_client_shows_a_page_and_never_redirects,
    reused_code_is_refused_and_revokes_its_tokens,
    pkce_mismatch_is_invalid_grant,
    prompt_none_without_session_is_login_required,
    request_object_is_not_supported,
    cli_refuses_a_wrong_check_digit,
    cli_imports_no_token_from_a_file_with_a_corrupt_entry,
);

/// A new browser at the code step of a new flow for the fixture's person.
async fn at_otp_step(fx: &Fixture) -> (Browser, Value) {
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    (b, flow)
}

/// A new browser at the identify step of a new flow.
async fn at_identify_step(fx: &Fixture) -> (Browser, Value) {
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    (b, flow)
}

fn remaining_attempts(p: &Value) -> u64 {
    p["remaining_attempts"]
        .as_u64()
        .unwrap_or_else(|| panic!("a wrong answer tells the remaining attempts: {p}"))
}

async fn wrong_otp_is_refused_and_counted(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (mut b, flow) = at_otp_step(&fx).await;
    let before = fx.segl.audit_ok();

    let r = b
        .step(&flow, "otp", json!({ "otp": fx.device.wrong_code() }))
        .await;
    let p = assert_problem(&r, 401, "wrong_otp");
    remaining_attempts(&p);

    let view = b.flow(&flow_id(&flow)).await;
    assert_eq!(
        view["state"], "otp",
        "a wrong code leaves the flow at the code step: {view}"
    );
    let token = fx.segl.token(SERIAL);
    assert_eq!(
        token["failures"], 1,
        "the failure is counted on the device: {token}"
    );
    assert_eq!(
        token["state"], "active",
        "one wrong code does not block: {token}"
    );
    assert_eq!(fx.segl.audit_count("otp.failure"), 1);
    assert_eq!(
        fx.segl.audit_ok(),
        before + 1,
        "exactly one audit entry (the failure)"
    );

    // The wrong code moved nothing: the device's first code still works.
    let flow = b.otp_ok(&view, &fx.device.next_code()).await;
    assert_eq!(flow["state"], "password");
}

/// A valid number without an eID gets the very answer a wrong code gets, and costs the
/// same work (one audit entry, naming neither a person nor the number), so neither the
/// answer nor its timing tells who is enrolled.
async fn unknown_number_answers_like_a_wrong_code(backend: Backend) {
    const NOT_ENROLLED: &str = "01019010046";
    let fx = Fixture::new(backend, &[]);
    let (mut known, known_flow) = at_otp_step(&fx).await;
    let (mut b, flow) = at_identify_step(&fx).await;
    let flow = b.identify(&flow, NOT_ENROLLED).await;
    assert_eq!(
        flow["methods"], known_flow["methods"],
        "an unknown number is offered the same methods"
    );
    let before = fx.segl.audit_ok();

    let unknown = b.step(&flow, "otp", json!({ "otp": "123456" })).await;
    let unknown = assert_problem(&unknown, 401, "wrong_otp");
    let wrong = known
        .step(&known_flow, "otp", json!({ "otp": fx.device.wrong_code() }))
        .await;
    let wrong = assert_problem(&wrong, 401, "wrong_otp");
    assert_eq!(unknown["title"], wrong["title"]);
    assert_eq!(unknown["detail"], wrong["detail"]);
    assert_eq!(remaining_attempts(&unknown), remaining_attempts(&wrong));

    assert_eq!(fx.segl.audit_ok(), before + 2, "one entry for each attempt");
    let audit = fx.segl.audit();
    let failures: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "otp.failure")
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures.iter().any(|e| e["subject"].is_null()),
        "the unknown number's failure names no person: {failures:?}"
    );
    let text = serde_json::to_string(&audit).unwrap();
    assert!(
        !text.contains(NOT_ENROLLED),
        "the number is not in the audit log"
    );
}

async fn replayed_hotp_code_is_refused(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let first_code = hotp(OTP_SECRET, 0, 6);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    b.login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;

    // The same code in a later flow (another browser, so no session helps).
    let (mut b2, flow) = at_otp_step(&fx).await;
    let token_before = fx.segl.token(SERIAL);
    let r = b2.step(&flow, "otp", json!({ "otp": first_code })).await;
    let p = assert_problem(&r, 401, "otp_already_used");
    remaining_attempts(&p);
    let view = b2.flow(&flow_id(&flow)).await;
    assert_eq!(view["state"], "otp", "{view}");
    let token = fx.segl.token(SERIAL);
    assert_eq!(token["state"], "active", "{token}");
    assert_eq!(
        token["failures"], token_before["failures"],
        "a replay is no wrong code: {token}"
    );
    assert_eq!(fx.segl.audit_count("otp.replay"), 1);
    fx.segl.audit_ok();
    // The device's next code is still good.
    b2.otp_ok(&view, &fx.device.next_code()).await;
}

async fn replayed_totp_code_is_refused(backend: Backend) {
    const TOTP_NIN: &str = "01010050053";
    const TOTP_SERIAL: &str = "700000000";
    let fx = Fixture::new(backend, &[]);
    fx.segl.add_person(TOTP_NIN, "Ola Nordmann", PASSWORD);
    let imported = fx.segl.import_tokens("totp-plain.pskcxml");
    assert_eq!(imported["imported"], 3, "{imported}");
    fx.segl.assign(TOTP_SERIAL, TOTP_NIN);
    // Stay clear of a step boundary so both flows see the same code as current.
    let into_step = unix_now() % 30;
    if into_step > 22 {
        tokio::time::sleep(std::time::Duration::from_secs(31 - into_step)).await;
    }
    let code = totp(OTP_SECRET, unix_now(), 30, 6);

    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, TOTP_NIN).await;
    let flow = b.otp_ok(&flow, &code).await;
    b.password_ok(&flow, PASSWORD).await;

    let mut b2 = fx.browser();
    let start = authorize(&client, &[], &[]);
    let flow = b2.start_flow(start.url.as_str()).await;
    let flow = b2.identify(&flow, TOTP_NIN).await;
    let r = b2.step(&flow, "otp", json!({ "otp": code })).await;
    assert_problem(&r, 401, "otp_already_used");
    let token = fx.segl.token(TOTP_SERIAL);
    assert_eq!(token["state"], "active", "{token}");
    assert_eq!(token["failures"], 0, "a replay is no wrong code: {token}");
    assert_eq!(fx.segl.audit_count("otp.replay"), 1);
    fx.segl.audit_ok();
}

async fn device_blocks_after_five_wrong_codes(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let wrong = fx.device.wrong_code();
    // One wrong code per flow, so no flow's own limit gets in the way.
    for i in 1..=5u64 {
        let (mut b, flow) = at_otp_step(&fx).await;
        let r = b.step(&flow, "otp", json!({ "otp": wrong })).await;
        assert_problem(&r, 401, "wrong_otp");
        let token = fx.segl.token(SERIAL);
        assert_eq!(
            token["failures"], i,
            "failures after {i} wrong codes: {token}"
        );
        let expected = if i < 5 { "active" } else { "blocked" };
        assert_eq!(
            token["state"], expected,
            "state after {i} wrong codes: {token}"
        );
    }

    // Blocked: even the right code is refused, and not spent.
    let (mut b, flow) = at_otp_step(&fx).await;
    let r = b
        .step(&flow, "otp", json!({ "otp": hotp(OTP_SECRET, 0, 6) }))
        .await;
    assert_problem(&r, 423, "device_blocked");
    let view = b.flow(&flow_id(&flow)).await;
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "device_blocked", "{view}");
    let token = fx.segl.token(SERIAL);
    assert_eq!(token["state"], "blocked", "{token}");
    assert_eq!(token["failures"], 5, "{token}");
    assert_eq!(fx.segl.audit_count("otp.failure"), 5);
    assert_eq!(fx.segl.audit_count("otp.device_blocked"), 1);
    fx.segl.audit_ok();

    // Support unblocks; the counter never moved, so the first code still works.
    let unblocked = fx
        .segl
        .json(&["token", "unblock", "--serial", SERIAL, "--json"]);
    assert_eq!(unblocked["state"], "active", "{unblocked}");
    let (mut b, flow) = at_otp_step(&fx).await;
    b.otp_ok(&flow, &fx.device.next_code()).await;
}

async fn password_locks_after_five_wrong_passwords(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    for i in 1..=5 {
        let (mut b, flow) = at_otp_step(&fx).await;
        let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
        let r = b
            .step(
                &flow,
                "password",
                json!({ "password": "not-the-password-1" }),
            )
            .await;
        let p = assert_problem(&r, 401, "wrong_password");
        remaining_attempts(&p);
        let person = fx.segl.person(NIN);
        assert_eq!(
            person["password_locked"],
            i == 5,
            "password_locked after {i} wrong passwords: {person}"
        );
        assert_eq!(person["password_set"], true, "{person}");
    }
    // Locked: even the right password is refused.
    let (mut b, flow) = at_otp_step(&fx).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let r = b
        .step(&flow, "password", json!({ "password": PASSWORD }))
        .await;
    assert_problem(&r, 423, "password_locked");
    let view = b.flow(&flow_id(&flow)).await;
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(view["error"]["code"], "password_locked", "{view}");
    if let Some(to) = view["redirect_to"].as_str() {
        let url = url::Url::parse(to).expect("redirect_to is a URL");
        assert!(
            !url.query_pairs().any(|(k, _)| k == "code"),
            "no code for a locked password: {view}"
        );
    }
    let person = fx.segl.person(NIN);
    assert_eq!(person["password_locked"], true, "{person}");
    assert!(
        person.get("password").is_none() && !person.to_string().contains("$argon2"),
        "no secret shown: {person}"
    );
    assert_eq!(fx.segl.audit_count("password.failure"), 5);
    assert_eq!(fx.segl.audit_count("password.locked"), 1);
    assert_eq!(fx.segl.audit_count("login.success"), 0);
    fx.segl.audit_ok();
}

async fn expired_flow_is_gone(backend: Backend) {
    let segl = Segl::new(backend);
    // 3 s rather than 1: starting the flow (authorize, then the view) must fit in it even
    // on a loaded 2-core machine; the clock is whole seconds, so wait TTL + 1 s.
    segl.write_config("[policy]\nflow_ttl_secs = 3\n");
    let fx = Fixture::with_segl(segl, &[]);
    let (mut b, flow) = at_identify_step(&fx).await;
    let before = fx.segl.audit_ok();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let r = b.step(&flow, "identify", json!({ "nin": NIN })).await;
    assert_problem(&r, 410, "flow_expired");
    assert_eq!(
        fx.segl.audit_ok(),
        before,
        "nothing is recorded for an expired flow"
    );
    assert_eq!(fx.segl.token(SERIAL)["failures"], 0);
}

async fn missing_or_wrong_csrf_token_is_refused(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let (mut b, flow) = at_identify_step(&fx).await;
    let id = flow_id(&flow);
    let path = format!("/api/v1/flows/{id}/identify");
    let body = json!({ "nin": NIN }).to_string().into_bytes();
    let before = fx.segl.audit_ok();

    let r = b
        .post_raw(&path, "application/json", body.clone(), None)
        .await;
    assert_problem(&r, 403, "csrf_mismatch");
    let r = b
        .post_raw(
            &path,
            "application/json",
            body.clone(),
            Some("not-the-token"),
        )
        .await;
    assert_problem(&r, 403, "csrf_mismatch");

    let view = b.flow(&id).await;
    assert_eq!(
        view["state"], "identify",
        "refused steps change nothing: {view}"
    );
    assert_eq!(fx.segl.audit_ok(), before);
    // The flow still works with its token.
    b.identify(&view, NIN).await;
}

async fn flow_is_bound_to_its_browser(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let (mut a, flow) = at_identify_step(&fx).await;
    let id = flow_id(&flow);
    let csrf = flow["csrf_token"].as_str().unwrap().to_string();
    let path = format!("/api/v1/flows/{id}/identify");
    let body = json!({ "nin": NIN }).to_string().into_bytes();
    let before = fx.segl.audit_ok();

    // No cookie at all.
    let mut stranger = fx.browser();
    let r = stranger
        .post_raw(&path, "application/json", body.clone(), Some(&csrf))
        .await;
    assert_problem(&r, 403, "flow_binding");

    // Another browser's cookie (it has a flow of its own).
    let (mut other, _) = at_identify_step(&fx).await;
    assert_ne!(
        other.cookies.get(FLOW_COOKIE),
        a.cookies.get(FLOW_COOKIE),
        "browsers differ"
    );
    let r = other
        .post_raw(&path, "application/json", body.clone(), Some(&csrf))
        .await;
    assert_problem(&r, 403, "flow_binding");

    let view = a.flow(&id).await;
    assert_eq!(
        view["state"], "identify",
        "refused steps change nothing: {view}"
    );
    assert_eq!(fx.segl.audit_ok(), before);
    a.identify(&view, NIN).await;
}

async fn malformed_json_is_refused(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let (mut b, flow) = at_identify_step(&fx).await;
    let id = flow_id(&flow);
    let csrf = flow["csrf_token"].as_str().unwrap().to_string();
    let path = format!("/api/v1/flows/{id}/identify");
    let before = fx.segl.audit_ok();

    for bad in [
        &b"{\"nin\": "[..],
        b"not json",
        b"[]",
        b"{\"name\": \"Kari\"}",
        b"{\"nin\": 15058500027}",
    ] {
        let r = b
            .post_raw(&path, "application/json", bad.to_vec(), Some(&csrf))
            .await;
        let p = assert_problem(&r, 400, "malformed_request");
        assert!(!p["detail"].as_str().unwrap_or("").is_empty(), "{p}");
    }
    let r = b
        .post_raw(
            &path,
            "text/plain",
            json!({ "nin": NIN }).to_string().into_bytes(),
            Some(&csrf),
        )
        .await;
    assert_problem(&r, 415, "unsupported_media_type");

    let view = b.flow(&id).await;
    assert_eq!(view["state"], "identify", "{view}");
    assert_eq!(fx.segl.audit_ok(), before);
    b.identify(&view, NIN).await;
}

async fn oversize_body_is_refused(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let (mut b, flow) = at_identify_step(&fx).await;
    let id = flow_id(&flow);
    let csrf = flow["csrf_token"].as_str().unwrap().to_string();
    let before = fx.segl.audit_ok();
    let big = format!(
        "{{\"nin\": \"{NIN}\", \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let r = b
        .post_raw(
            &format!("/api/v1/flows/{id}/identify"),
            "application/json",
            big.into_bytes(),
            Some(&csrf),
        )
        .await;
    assert_problem(&r, 413, "payload_too_large");
    let view = b.flow(&id).await;
    assert_eq!(view["state"], "identify", "{view}");
    assert_eq!(fx.segl.audit_ok(), before);
}

async fn flow_steps_out_of_order_or_unknown_are_refused(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let (mut b, flow) = at_identify_step(&fx).await;
    let id = flow_id(&flow);
    let before = fx.segl.audit_ok();

    // A code before the person is identified.
    let r = b
        .step(&flow, "otp", json!({ "otp": hotp(OTP_SECRET, 0, 6) }))
        .await;
    assert_problem(&r, 409, "invalid_state");
    // A number with a wrong check digit.
    let r = b
        .step(&flow, "identify", json!({ "nin": "15058500028" }))
        .await;
    let p = assert_problem(&r, 400, "invalid_nin");
    assert!(
        !p["detail"].as_str().unwrap_or("").is_empty(),
        "invalid_nin says why: {p}"
    );
    // A method that is not offered.
    let flow = b.flow(&id).await;
    assert_eq!(flow["state"], "identify", "{flow}");
    let r = b.step(&flow, "identify", json!({ "nin": NIN })).await;
    r.expect_status(200);
    let view = r.json();
    if view["state"] == "choose_method" {
        let r = b
            .step(&view, "method", json!({ "method": "carrier-pigeon" }))
            .await;
        assert_problem(&r, 400, "unsupported_method");
    }
    // No such flow.
    let r = b.get("/api/v1/flows/no-such-flow-0123456789").await;
    assert_problem(&r, 404, "flow_not_found");

    assert_eq!(fx.segl.token(SERIAL)["failures"], 0, "no code was tried");
    assert_eq!(fx.segl.audit_ok(), before);
    // The code the out-of-order step carried was not spent.
    let view = b.flow(&id).await;
    let view = if view["state"] == "choose_method" {
        let r = b.step(&view, "method", json!({ "method": "otp" })).await;
        r.expect_status(200);
        r.json()
    } else {
        view
    };
    b.otp_ok(&view, &hotp(OTP_SECRET, 0, 6)).await;
}

/// An authorize URL by hand (the library would not build a wrong one).
fn authorize_url(
    server: &Server,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let mut url = url::Url::parse(&server.url("/oauth2/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid profile")
            .append_pair("state", "st4te")
            .append_pair("nonce", "n0nce")
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// What the error page says when the redirect URI is not one of the client's.
const NOT_REGISTERED: &str = "redirect_uri is not registered for this client";

/// Asserts an error page (400, HTML, never a redirect) that names the error: `message`.
fn assert_error_page(r: &Resp, message: &str) {
    r.expect_status(400);
    assert!(
        r.location().is_none(),
        "{}: an error page, never a redirect: {:?}",
        r.what,
        r.location()
    );
    assert!(
        r.content_type().starts_with("text/html"),
        "{}: an HTML page, got {:?}",
        r.what,
        r.content_type()
    );
    assert!(
        r.body.contains(message),
        "{}: the page must say {message:?}: {}",
        r.what,
        r.body
    );
}

async fn redirect_uri_mismatch_shows_a_page_and_never_redirects(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let before = fx.segl.audit_ok();
    for uri in [
        "http://127.0.0.1:9/evil",
        "http://127.0.0.1:9/cb/",
        "http://127.0.0.1:9/cb?x=1",
        "http://127.0.0.1:10/cb",
        "https://127.0.0.1:9/cb",
        "http://localhost:9/cb",
    ] {
        let mut b = fx.browser();
        let r = b
            .get(&authorize_url(&fx.server, &fx.rp.client_id, uri, &[]))
            .await;
        assert_error_page(&r, NOT_REGISTERED);
        assert!(!b.cookies.contains_key(FLOW_COOKIE), "no flow for {uri}");
    }
    assert_eq!(fx.segl.audit_ok(), before);
}

async fn unknown_client_shows_a_page_and_never_redirects(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let before = fx.segl.audit_ok();
    let clients = fx.segl.json(&["rp", "list", "--json"]);
    let mut b = fx.browser();
    let r = b
        .get(&authorize_url(
            &fx.server,
            "no-such-client",
            REDIRECT_URI,
            &[],
        ))
        .await;
    assert_error_page(&r, "unknown client_id");
    let r = b
        .get(&authorize_url(&fx.server, "", REDIRECT_URI, &[]))
        .await;
    assert_error_page(&r, "client_id is missing");
    assert!(
        !b.cookies.contains_key(FLOW_COOKIE),
        "no flow for an unknown client"
    );
    assert_eq!(fx.segl.audit_ok(), before, "nothing recorded");
    assert_eq!(
        fx.segl.json(&["rp", "list", "--json"]),
        clients,
        "no client was made or changed"
    );
}

/// Exchanges a code with this verifier, which the token endpoint must refuse; returns the
/// OAuth `error` and `error_description`.
async fn refused_exchange(
    client: &OidcClient,
    code: &AuthorizationCode,
    verifier: PkceCodeVerifier,
) -> (String, String) {
    let http = oidc_http();
    let e = client
        .exchange_code(AuthorizationCode::new(code.secret().clone()))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect_err("the token endpoint must refuse this exchange");
    match e {
        RequestTokenError::ServerResponse(r) => (
            r.error().to_string(),
            r.error_description().cloned().unwrap_or_default(),
        ),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

/// The audit entries with this event name.
fn audit_entries(segl: &Segl, event: &str) -> Vec<Value> {
    segl.audit()
        .into_iter()
        .filter(|e| e["event"] == event)
        .collect()
}

async fn reused_code_is_refused_and_revokes_its_tokens(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &["profile", "offline_access"], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let verifier_secret = start.verifier.secret().clone();

    let tokens = exchange(&client, code.clone(), start.verifier).await;
    let access = tokens.access_token().secret().clone();
    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token")
        .clone();
    userinfo_raw(&fx.server, &access).await.expect_status(200);
    let issued = audit_entries(&fx.segl, "token.issued");
    assert_eq!(issued.len(), 1, "{issued:?}");
    let before = fx.segl.audit_ok();

    let (error, description) =
        refused_exchange(&client, &code, PkceCodeVerifier::new(verifier_secret)).await;
    assert_eq!(error, "invalid_grant", "{description}");
    assert!(
        description.contains("already used"),
        "the refusal says the code was used: {description:?}"
    );

    // RFC 6749 4.1.2: the tokens issued for that code are revoked.
    let r = userinfo_raw(&fx.server, &access).await;
    r.expect_status(401);
    let www = r
        .headers
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        www.contains("invalid_token"),
        "WWW-Authenticate names invalid_token: {www:?}"
    );
    let refreshed = refresh_grant(&client, &refresh)
        .await
        .expect_err("the refresh token of a reused code is revoked");
    assert_eq!(refreshed, "invalid_grant");

    // One entry: the reuse, naming whose tokens it revoked (the access and refresh token).
    // The refused refresh adds none, and nothing was issued again.
    assert_eq!(fx.segl.audit_ok(), before + 1, "exactly one audit entry");
    let reuses = audit_entries(&fx.segl, "token.code_reuse");
    assert_eq!(reuses.len(), 1, "{reuses:?}");
    let reuse = &reuses[0];
    assert_eq!(reuse["subject"], issued[0]["subject"], "{reuse}");
    assert_eq!(reuse["client_id"], fx.rp.client_id.as_str(), "{reuse}");
    assert_eq!(reuse["data"]["revoked"], 2, "{reuse}");
    assert!(
        !reuse.to_string().contains(code.secret()),
        "the code itself is not in the audit log: {reuse}"
    );
    assert_eq!(fx.segl.audit_count("token.issued"), 1, "no second issue");
}

async fn pkce_mismatch_is_invalid_grant(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let before = fx.segl.audit_ok();

    let (_, other_verifier) = PkceCodeChallenge::new_random_sha256();
    let (error, description) = refused_exchange(&client, &code, other_verifier).await;
    assert_eq!(error, "invalid_grant", "{description}");
    assert!(
        description.contains("PKCE") && description.contains("code_verifier"),
        "the refusal names the PKCE failure: {description:?}"
    );
    // No token, but the refusal is recorded: a code with a wrong verifier may have been
    // intercepted.
    assert_eq!(fx.segl.audit_ok(), before + 1);
    assert_eq!(fx.segl.audit_count("token.issued"), 0);
    let refused = audit_entries(&fx.segl, "token.code_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["data"]["reason"], "pkce", "{}", refused[0]);
    assert_eq!(refused[0]["client_id"], fx.rp.client_id, "{}", refused[0]);
    assert!(
        !refused[0].to_string().contains(code.secret().as_str()),
        "the code is not in the audit log: {}",
        refused[0]
    );

    // The refusal spent the code: not even the right verifier redeems it now. That second
    // presentation is a reuse, recorded, with no tokens to revoke.
    let (error, description) = refused_exchange(&client, &code, start.verifier).await;
    assert_eq!(error, "invalid_grant", "{description}");
    assert!(
        description.contains("already used"),
        "the code is spent: {description:?}"
    );
    assert_eq!(fx.segl.audit_ok(), before + 2);
    let reuses = audit_entries(&fx.segl, "token.code_reuse");
    assert_eq!(reuses.len(), 1, "{reuses:?}");
    assert_eq!(reuses[0]["data"]["revoked"], 0, "{}", reuses[0]);
    assert_eq!(fx.segl.audit_count("token.issued"), 0, "still no token");
}

async fn prompt_none_without_session_is_login_required(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let mut b = fx.browser();
    let r = b
        .get(&authorize_url(
            &fx.server,
            &fx.rp.client_id,
            REDIRECT_URI,
            &[("prompt", "none")],
        ))
        .await;
    r.expect_status(303);
    let loc = r.location().expect("a redirect back to the client");
    let q = callback_params(&loc, &fx.rp, "st4te", &fx.server.issuer());
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("login_required"),
        "{loc}"
    );
    assert!(!q.contains_key("code"), "{loc}");
}

async fn request_object_is_not_supported(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let mut b = fx.browser();
    // An unsigned request object; it must be refused whatever it says.
    let request = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.";
    let r = b
        .get(&authorize_url(
            &fx.server,
            &fx.rp.client_id,
            REDIRECT_URI,
            &[("request", request)],
        ))
        .await;
    r.expect_status(303);
    let loc = r.location().expect("a redirect back to the client");
    let q = callback_params(&loc, &fx.rp, "st4te", &fx.server.issuer());
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("request_not_supported"),
        "{loc}"
    );
    assert!(!q.contains_key("code"), "{loc}");
    assert!(
        !b.cookies.contains_key(FLOW_COOKIE),
        "no flow for a refused request"
    );

    // A request_uri that is not one of segl's pushed requests: refused the same way once
    // the client and its redirect URI are verified; before that, a page, never a redirect.
    let elsewhere = [("request_uri", "https://rp.example/request.jwt")];
    let r = b
        .get(&authorize_url(
            &fx.server,
            &fx.rp.client_id,
            REDIRECT_URI,
            &elsewhere,
        ))
        .await;
    r.expect_status(303);
    let loc = r.location().expect("a redirect back to the client");
    let q = callback_params(&loc, &fx.rp, "st4te", &fx.server.issuer());
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("request_uri_not_supported"),
        "{loc}"
    );
    assert!(!q.contains_key("code"), "{loc}");
    let r = b
        .get(&authorize_url(
            &fx.server,
            &fx.rp.client_id,
            "https://attacker.example/cb",
            &elsewhere,
        ))
        .await;
    assert_error_page(&r, NOT_REGISTERED);
    assert!(
        !b.cookies.contains_key(FLOW_COOKIE),
        "no flow for a refused request"
    );
}

async fn cli_refuses_a_wrong_check_digit(backend: Backend) {
    let segl = Segl::new(backend);
    let before = segl.audit_ok();
    let out = segl.cmd_stdin(
        &[
            "person",
            "add",
            "--nin",
            "15058500028",
            "--name",
            "Feil Nummer",
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad input exits with 2: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: "),
        "one line `error: …` on stderr: {stderr:?}"
    );
    assert!(
        stderr.to_lowercase().contains("check digit"),
        "the message names the check digit: {stderr:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on error: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(segl.audit_ok(), before, "nothing recorded");
    assert_eq!(segl.audit_count("person.added"), 0);
    // A valid number is still accepted afterwards.
    let p = segl.add_person(NIN, NAME, PASSWORD);
    assert_eq!(p["name"], NAME);
}

async fn cli_imports_no_token_from_a_file_with_a_corrupt_entry(backend: Backend) {
    let segl = Segl::new(backend);
    let before = segl.audit_ok();
    let path = fixture("hotp-corrupt-second.pskcxml");
    let out = segl.cmd(&["token", "import", path.to_str().unwrap(), "--json"]);
    assert!(!out.status.success(), "a corrupt file must fail: {out:?}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad file is bad input (exit 2): {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    let names_entry = stderr.contains("600000001")
        || stderr.contains("hotp-1")
        || ["entry 2", "package 2", "key 2", "#2", "second"]
            .iter()
            .any(|w| stderr.to_lowercase().contains(w));
    assert!(
        names_entry,
        "the message names the corrupt (second) entry: {stderr:?}"
    );
    assert!(
        segl.tokens().is_empty(),
        "all or nothing: no device imported"
    );
    assert_eq!(segl.audit_ok(), before, "nothing recorded");
    // The good file still imports afterwards.
    assert_eq!(segl.import_tokens("hotp-plain.pskcxml")["imported"], 3);
}
