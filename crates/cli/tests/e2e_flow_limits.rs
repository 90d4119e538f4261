//! The flow's own rules, end to end: a valid `login_hint` skips the identify step (an
//! invalid one is ignored), and one flow ends after `policy.flow_max_failures` wrong
//! answers, whatever the credential, with an `access_denied` redirect to the client.

#[macro_use]
mod common;

use common::*;
use openidconnect::TokenResponse;
use serde_json::{Value, json};

backend_tests!(
    login_hint_skips_the_identify_step,
    flow_ends_after_too_many_failures,
);

/// Follows an authorize URL (303 to `/login?flow=ID`) and returns the flow view, in
/// whatever state segl starts it.
async fn open_flow(b: &mut Browser, authorize_url: &str) -> Value {
    let r = b.get(authorize_url).await;
    let id = login_flow_id(&r);
    let v = b.flow(&id).await;
    assert_eq!(v["kind"], "login", "{v}");
    v
}

async fn login_hint_skips_the_identify_step(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let issuer = fx.server.issuer();
    let person = fx.segl.person(NIN);
    assert_eq!(person["sub"], fx.sub.as_str(), "person show: {person}");

    // A valid number: the flow starts identified, at the choice of method (a fresh browser
    // remembers no method).
    let start = authorize(&client, &[], &[("login_hint", NIN)]);
    let mut b = fx.browser();
    let flow = open_flow(&mut b, start.url.as_str()).await;
    assert_eq!(
        flow["state"], "choose_method",
        "with a valid login_hint: {flow}"
    );
    assert_eq!(flow["failures"], 0, "{flow}");
    assert!(
        flow["methods"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("otp"))),
        "the code device is offered: {flow}"
    );
    // Identify is behind us: sending the number again is out of order.
    let r = b.step(&flow, "identify", json!({ "nin": NIN })).await;
    assert_problem(&r, 409, "invalid_state");

    let r = b.step(&flow, "method", json!({ "method": "otp" })).await;
    r.expect_status(200);
    let flow = r.json();
    assert_eq!(flow["state"], "otp", "{flow}");
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    let redirect_to = done["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("state done without redirect_to: {done}"));
    let code = code_from(redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token").to_string();
    let claims = verified_claims(&client, &id_token, &start.nonce);
    assert_eq!(claims["sub"], fx.sub.as_str(), "ID token: {claims}");
    assert_eq!(claims["sub"], person["sub"], "ID token: {claims}");
    assert_eq!(fx.segl.audit_count("login.success"), 1);

    // A number with a wrong check digit is ignored (not an error): the flow starts at
    // identify, and the right number still works there. A new browser, so no session.
    let start = authorize(&client, &[], &[("login_hint", "15058500028")]);
    let mut b = fx.browser();
    let flow = open_flow(&mut b, start.url.as_str()).await;
    assert_eq!(
        flow["state"], "identify",
        "with an invalid login_hint: {flow}"
    );
    assert_eq!(flow["failures"], 0, "{flow}");
    let flow = b.identify(&flow, NIN).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    let code = code_from(
        done["redirect_to"].as_str().unwrap(),
        &fx.rp,
        &start,
        &issuer,
    );
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token").to_string();
    let claims = verified_claims(&client, &id_token, &start.nonce);
    assert_eq!(claims["sub"], fx.sub.as_str(), "ID token: {claims}");
    assert_eq!(fx.segl.audit_count("login.success"), 2);
    fx.segl.audit_ok();
}

async fn flow_ends_after_too_many_failures(backend: Backend) {
    // The device and password limits are set above the flow's (default 5), so only the
    // flow's own limit can end it.
    let segl = Segl::new(backend);
    segl.write_config("[policy]\notp_max_failures = 20\npassword_max_failures = 20\n");
    let mut fx = Fixture::with_segl(segl, &[]);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let issuer = fx.server.issuer();
    let person = fx.segl.person(NIN);
    let person_id = person["id"].as_str().expect("person id").to_string();

    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;

    // Two wrong codes, the right one, then wrong passwords: all count in one flow.
    let wrong = fx.device.wrong_code();
    for remaining in [4u64, 3] {
        let r = b.step(&flow, "otp", json!({ "otp": wrong })).await;
        let p = assert_problem(&r, 401, "wrong_otp");
        assert_eq!(p["remaining_attempts"], remaining, "{p}");
    }
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    assert_eq!(flow["failures"], 2, "{flow}");
    for remaining in [2u64, 1] {
        let r = b
            .step(
                &flow,
                "password",
                json!({ "password": "not-the-password-1" }),
            )
            .await;
        let p = assert_problem(&r, 401, "wrong_password");
        assert_eq!(p["remaining_attempts"], remaining, "{p}");
    }
    // The fifth failure closes the flow.
    let r = b
        .step(
            &flow,
            "password",
            json!({ "password": "not-the-password-1" }),
        )
        .await;
    let p = assert_problem(&r, 429, "too_many_attempts");
    assert!(p.get("remaining_attempts").is_none(), "{p}");

    // The next step, even with the right password, is refused the same way.
    let r = b
        .step(&flow, "password", json!({ "password": PASSWORD }))
        .await;
    assert_problem(&r, 429, "too_many_attempts");
    let r = b.step(&flow, "cancel", json!({})).await;
    assert_problem(&r, 409, "invalid_state");

    let view = b.flow(&flow_id(&flow)).await;
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(view["failures"], 5, "{view}");
    assert_eq!(view["error"]["code"], "too_many_attempts", "{view}");
    let redirect_to = view["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("a failed flow sends the browser back: {view}"));
    let q = callback_params(redirect_to, &fx.rp, start.state.secret(), &issuer);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("access_denied"),
        "{redirect_to}"
    );
    assert_eq!(
        q.get("error_description").map(String::as_str),
        Some("too_many_attempts"),
        "{redirect_to}"
    );
    assert!(!q.contains_key("code"), "{redirect_to}");

    // Neither credential was blocked or locked, and no login happened.
    let token = fx.segl.token(SERIAL);
    assert_eq!(token["state"], "active", "{token}");
    // The right code reset the device's count of wrong codes in a row.
    assert_eq!(token["failures"], 0, "{token}");
    let person = fx.segl.person(NIN);
    assert_eq!(person["password_locked"], false, "{person}");

    let audit = fx.segl.audit();
    let failures: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "login.failure")
        .collect();
    assert_eq!(failures.len(), 1, "one login.failure: {audit:?}");
    assert_eq!(
        failures[0]["subject"],
        person_id.as_str(),
        "{}",
        failures[0]
    );
    assert_eq!(
        failures[0]["data"]["reason"], "too_many_attempts",
        "{}",
        failures[0]
    );
    assert_eq!(fx.segl.audit_count("otp.failure"), 2);
    assert_eq!(fx.segl.audit_count("password.failure"), 3);
    assert_eq!(fx.segl.audit_count("otp.device_blocked"), 0);
    assert_eq!(fx.segl.audit_count("password.locked"), 0);
    assert_eq!(fx.segl.audit_count("login.success"), 0);
    fx.segl.audit_ok();

    // A new flow starts afresh, and the person can still log in.
    let mut b = fx.browser();
    let start = authorize(&client, &[], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    code_from(&redirect_to, &fx.rp, &start, &issuer);
}
