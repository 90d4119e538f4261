//! Several requests on one flow: two nodes on one PostgreSQL database, and racing steps.
//!
//! Each node keeps the flows it saved last and uses that copy instead of reading the flow
//! back (`segl_store::flows`). When another node, or another request, has saved the flow
//! since, the copy is stale: the step's version-guarded save finds no row, its transaction
//! is undone and the step runs again from the database. These tests make the copy stale on
//! purpose and check that every step still does what it says, exactly once.

#[macro_use]
mod common;

use common::*;
use openidconnect::TokenResponse;
use serde_json::json;

backend_tests!(racing_steps_on_one_flow_have_one_winner);

/// A login whose steps alternate between two nodes, so that every step after the second
/// meets a stale copy on the node that serves it.
#[tokio::test]
async fn a_login_alternating_between_two_nodes() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let mut fx = Fixture::new(backend, &[]);
    // The second node of the same installation: same database, keys and issuer.
    let issuer = fx.server.issuer();
    let other = Server::start_with_env(&fx.segl, &[], &[("SEGL_ISSUER", &issuer)]);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let serial = fx.device.serial.clone();

    // Node A starts the flow (and keeps it); node B identifies.
    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    b.moved_to(&other);
    let r = b.step(&flow, "identify", json!({ "nin": NIN })).await;
    r.expect_status(200);
    let flow = r.json();
    assert_eq!(
        flow["state"], "choose_method",
        "a fresh browser chooses: {flow}"
    );

    // A's copy is still at identify: the method is chosen all the same.
    b.moved_to(&fx.server);
    let r = b.step(&flow, "method", json!({ "method": "otp" })).await;
    r.expect_status(200);
    let flow = r.json();
    assert_eq!(flow["state"], "otp", "{flow}");

    // B's copy is at choose_method. A wrong code counts once: one failure on the flow, on
    // the device, in the audit log and in the metrics.
    b.moved_to(&other);
    let r = b
        .step(&flow, "otp", json!({ "otp": fx.device.wrong_code() }))
        .await;
    let p = assert_problem(&r, 401, "wrong_otp");
    assert_eq!(p["remaining_attempts"], 4, "{p}");
    assert_eq!(fx.segl.token(&serial)["failures"], 1);
    assert_eq!(fx.segl.audit_count("otp.failure"), 1);
    let otp_failures = metric(&metrics(&other).await, "segl_otp_failures_total")
        + metric(&metrics(&fx.server).await, "segl_otp_failures_total");
    assert_eq!(otp_failures, 1, "one wrong code, counted once");

    // A's copy is at otp, without the failure: the right code still lands on the flow as
    // it is, with its failure.
    b.moved_to(&fx.server);
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    assert_eq!(
        flow["failures"], 1,
        "the failure on the other node counts: {flow}"
    );
    assert_eq!(fx.segl.token(&serial)["failures"], 0, "{serial}");

    // B's copy is at the wrong code: the password is checked and the login finished once.
    b.moved_to(&other);
    let done = b.password_ok(&flow, PASSWORD).await;
    let redirect_to = done["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("done without redirect_to: {done}"));
    let code = code_from(redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token").to_string();
    let claims = verified_claims(&client, &id_token, &start.nonce);
    assert_eq!(claims["sub"], fx.sub.as_str(), "ID token: {claims}");
    assert_eq!(fx.segl.audit_count("login.success"), 1);
    let logins = metric(&metrics(&other).await, "segl_logins_succeeded_total")
        + metric(&metrics(&fx.server).await, "segl_logins_succeeded_total");
    assert_eq!(logins, 1, "one login, counted once");

    // A's copy is at password: a late step there meets the finished flow, not its copy.
    b.moved_to(&fx.server);
    let r = b
        .step(&flow, "password", json!({ "password": PASSWORD }))
        .await;
    assert_problem(&r, 409, "invalid_state");
    assert_eq!(fx.segl.audit_count("login.success"), 1);
    fx.segl.audit_ok();
}

/// The same right code sent twice at once on one flow: one request moves the flow on, the
/// other is refused, and nothing of it remains.
async fn racing_steps_on_one_flow_have_one_winner(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let code = fx.device.next_code();
    let (mut b1, mut b2) = (b.clone(), b.clone());
    let (r1, r2) = tokio::join!(
        b1.step(&flow, "otp", json!({ "otp": code })),
        b2.step(&flow, "otp", json!({ "otp": code })),
    );
    let mut statuses = [r1.status.as_u16(), r2.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", r1.body, r2.body);
    let lost = if r1.status.as_u16() == 409 { &r1 } else { &r2 };
    let problem = lost.json();
    assert!(
        ["invalid_state", "concurrent_update"].contains(&problem["code"].as_str().unwrap_or("")),
        "the loser is told the flow moved on: {problem}"
    );
    let view = b.flow(flow["id"].as_str().expect("flow id")).await;
    assert_eq!(view["state"], "password", "{view}");
    assert_eq!(view["failures"], 0, "a lost race is no failure: {view}");
    let token = fx.segl.token(&fx.device.serial);
    assert_eq!(token["failures"], 0, "{token}");
    // Nothing of an attempt that was undone remains.
    assert_eq!(fx.segl.audit_count("otp.failure"), 0);
    assert_eq!(fx.segl.audit_count("otp.replay"), 0);
    fx.segl.audit_ok();
}
