//! Single sign-on, RP-initiated logout, pushed authorization requests (RFC 9126), the
//! client authentication methods of the token endpoint and userinfo, end to end against
//! the real `segl` binary on each backend.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use openidconnect::{
    AuthorizationCode, Nonce, OAuth2TokenResponse, PkceCodeChallenge, TokenResponse,
};
use serde_json::{Value, json};
use url::Url;

backend_tests!(
    single_sign_on_prompt_and_max_age,
    max_age_zero_always_asks_again,
    an_acr_claim_is_a_level_to_reach_also_for_single_sign_on,
    logout_ends_the_session_and_checks_the_redirect,
    a_logout_the_store_cannot_record_changes_nothing,
    pushed_authorization_requests,
    client_secret_post_and_basic_are_enforced,
    private_key_jwt_client_assertions,
    userinfo_get_post_and_errors,
);

/// The session cookie.
const SESSION_COOKIE: &str = "segl_sid";
/// The prefix of PAR request URIs (RFC 9126 section 2.2).
const PAR_URN: &str = "urn:ietf:params:oauth:request_uri:";
/// Where the logout client sends browsers after logout (registered).
const POST_LOGOUT_URI: &str = "http://127.0.0.1:9/bye";
/// eIDAS "high": a code device or the app, and the password.
const ACR_HIGH: &str = "http://eidas.europa.eu/LoA/high";
/// eIDAS "substantial": the app with its own user verification.
const ACR_SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";

// ---------------------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------------------

/// Random bytes from the kernel, hex-encoded.
fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    data_encoding::HEXLOWER.encode(&buf)
}

fn b64u(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// Asserts an error page: 400, HTML, no `Location`.
fn assert_error_page(r: &Resp) {
    r.expect_status(400);
    assert!(
        r.location().is_none(),
        "{}: an error page, never a redirect, but Location is {:?}",
        r.what,
        r.location()
    );
    assert!(
        r.content_type().starts_with("text/html"),
        "{}: an HTML page, got {:?} with body {}",
        r.what,
        r.content_type(),
        r.body
    );
}

/// Asserts an OAuth error response (RFC 6749 5.2) with this status and `error`.
fn assert_oauth_error(r: &Resp, status: u16, error: &str) -> Value {
    r.expect_status(status);
    assert!(
        r.content_type().starts_with("application/json"),
        "{}: an OAuth error is JSON, got {:?} with body {}",
        r.what,
        r.content_type(),
        r.body
    );
    let v = r.json();
    assert_eq!(v["error"], error, "{}: {v}", r.what);
    if status == 401 {
        assert!(
            r.headers.contains_key(reqwest::header::WWW_AUTHENTICATE),
            "{}: a 401 carries WWW-Authenticate",
            r.what
        );
    }
    v
}

/// An absolute Location of a redirect (303).
fn redirect_location(r: &Resp) -> String {
    r.expect_status(303);
    r.location()
        .unwrap_or_else(|| panic!("{}: 303 without Location", r.what))
}

/// POST a form to a server path, optionally with HTTP Basic credentials.
async fn post_form(
    server: &Server,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Resp {
    let mut req = no_redirect_client().post(server.url(path)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let what = format!(
        "POST {path} ({})",
        if basic.is_some() { "basic" } else { "no basic" }
    );
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    Resp::read(resp, what).await
}

/// The form of an authorization-code exchange (without client authentication).
fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

/// From a redirect straight back to the client (single sign-on): the code.
fn sso_code(r: &Resp, rp: &Rp, start: &AuthStart, issuer: &str) -> AuthorizationCode {
    let loc = redirect_location(r);
    assert!(
        !loc.contains("/login"),
        "{}: expected a redirect to the client, got a login flow: {loc}",
        r.what
    );
    code_from(&loc, rp, start, issuer)
}

/// From a redirect back to the client carrying an error: the `error`.
fn redirected_error(r: &Resp, rp: &Rp, state: &str, issuer: &str) -> String {
    let loc = redirect_location(r);
    let q = callback_params(&loc, rp, state, issuer);
    assert!(
        !q.contains_key("code"),
        "an error redirect has no code: {loc}"
    );
    q.get("error")
        .unwrap_or_else(|| panic!("no error in {loc}"))
        .clone()
}

fn auth_time(claims: &Value) -> i64 {
    claims["auth_time"]
        .as_i64()
        .unwrap_or_else(|| panic!("no auth_time in {claims}"))
}

// ---------------------------------------------------------------------------------------
// 1. Single sign-on
// ---------------------------------------------------------------------------------------

/// After a login the same browser is not asked again: authorize answers at once with a
/// code whose ID token carries the first login's `auth_time`; `prompt=none` works;
/// `prompt=login`, a `max_age` the session is older than and a `login_hint` naming
/// someone else start a new login flow.
async fn single_sign_on_prompt_and_max_age(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();

    let start = authorize(&client, &["profile"], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    assert!(
        b.cookies.contains_key(SESSION_COOKIE),
        "a finished login sets the {SESSION_COOKIE} cookie: {:?}",
        b.cookies.keys()
    );
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let first = verified_claims(
        &client,
        &tokens.id_token().expect("ID token").to_string(),
        &start.nonce,
    );
    let first_auth_time = auth_time(&first);
    assert_eq!(fx.segl.audit_count("login.success"), 1);
    let device_before = fx.segl.token(SERIAL);

    // Single sign-on: straight back to the client with a code, no /login.
    let start = authorize(&client, &["profile"], &[]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let sso = verified_claims(
        &client,
        &tokens.id_token().expect("ID token").to_string(),
        &start.nonce,
    );
    assert_eq!(
        auth_time(&sso),
        first_auth_time,
        "single sign-on keeps the first login's auth_time: first {first}, now {sso}"
    );
    assert_eq!(sso["sub"], fx.sub.as_str(), "{sso}");
    assert_eq!(sso["acr"], first["acr"], "{sso}");
    assert_eq!(sso["amr"], first["amr"], "{sso}");
    assert_eq!(sso["name"], NAME, "scope profile on the new request: {sso}");
    assert_eq!(
        fx.segl.audit_count("login.success"),
        1,
        "single sign-on is no new login"
    );
    assert_eq!(
        fx.segl.token(SERIAL)["failures"],
        device_before["failures"],
        "single sign-on does not touch the code device"
    );

    // prompt=none with a live session: a code.
    let start = authorize(&client, &[], &[("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let none = verified_claims(
        &client,
        &tokens.id_token().expect("ID token").to_string(),
        &start.nonce,
    );
    assert_eq!(auth_time(&none), first_auth_time, "{none}");

    // login_hint: the session's own person is fine, someone else needs a new login.
    let start = authorize(&client, &[], &[("login_hint", NIN)]);
    let r = b.get(start.url.as_str()).await;
    sso_code(&r, &fx.rp, &start, &issuer);
    let start = authorize(&client, &[], &[("login_hint", "01010050053")]);
    let r = b.get(start.url.as_str()).await;
    login_flow_id(&r);

    // prompt=login: a new login flow for the same browser, from the first step.
    let start = authorize(&client, &["profile"], &[("prompt", "login")]);
    let r = b.get(start.url.as_str()).await;
    let id = login_flow_id(&r);
    let view = b.flow(&id).await;
    assert_eq!(view["state"], "identify", "prompt=login asks again: {view}");

    // max_age: once the session is older, a new flow (and prompt=none cannot help).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let start = authorize(&client, &[], &[("max_age", "1")]);
    let r = b.get(start.url.as_str()).await;
    let id = login_flow_id(&r);
    assert_eq!(b.flow(&id).await["state"], "identify");
    let start = authorize(&client, &[], &[("max_age", "1"), ("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    assert_eq!(
        redirected_error(&r, &fx.rp, start.state.secret(), &issuer),
        "login_required"
    );
    // A max_age the session is younger than still signs on.
    let start = authorize(&client, &[], &[("max_age", "3600")]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let aged = verified_claims(
        &client,
        &tokens.id_token().expect("ID token").to_string(),
        &start.nonce,
    );
    assert_eq!(auth_time(&aged), first_auth_time, "{aged}");
    assert_eq!(fx.segl.audit_count("login.success"), 1);
    fx.segl.audit_ok();
}

/// `max_age=0` is `prompt=login` (OIDC Core 3.1.2.1; OpenID Connect WG issue #993): a
/// new login flow however young the session, also in the very second of the login.
async fn max_age_zero_always_asks_again(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();
    let start = authorize(&client, &[], &[]);
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    // Finish the login early in a wall-clock second, so that the request right after it
    // falls in the same second as auth_time (segl counts whole seconds). The outcome
    // asserted is the same whenever the requests happen.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(
        1005 - into_second,
    )))
    .await;
    b.password_ok(&flow, PASSWORD).await;
    let fresh = authorize(&client, &[], &[("max_age", "0")]);
    let r = b.get(fresh.url.as_str()).await;
    if r.location().is_some_and(|l| l.starts_with(REDIRECT_URI)) {
        panic!(
            "max_age=0 right after a login was answered from the session instead of asking \
             again: GET {} -> {} Location {}",
            fresh.url,
            r.status,
            r.location().unwrap()
        );
    }
    let id = login_flow_id(&r);
    assert_eq!(b.flow(&id).await["state"], "identify");
    // And once the second has passed, too.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = authorize(&client, &[], &[("max_age", "0")]);
    let r = b.get(fresh.url.as_str()).await;
    login_flow_id(&r);
}

/// `segl app approve --wait 10` with the app's PIN: approves the request waiting for it.
fn app_approves(fx: &AppFx) {
    let args = [
        "app",
        "approve",
        "--wait",
        "10",
        "--vault",
        fx.app.vault(),
        "--json",
    ];
    let out = fx.segl.cmd_stdin(&args, Some(&format!("{APP_PIN}\n")));
    assert_success(&out, &args);
}

/// From a new login flow's view (state `identify`) to `done` with the app: identify,
/// the app approves with its PIN, then the password if the flow asks for it.
async fn app_login(fx: &AppFx, b: &mut Browser, flow: &Value) -> (Value, bool) {
    let v = b.identify_choosing(flow, APP_NIN, "app").await;
    assert_eq!(v["state"], "app_pending", "{v}");
    app_approves(fx);
    let mut v = collect_app(b, &v, 50).await.json();
    let password = v["state"] == "password";
    if password {
        v = b.password_ok(&v, PASSWORD).await;
    }
    assert_eq!(v["state"], "done", "{v}");
    (v, password)
}

/// OIDC Core 5.5.1.1: an `acr` claim requested with `value`/`values` through `claims` is a
/// level the login must reach, like `acr_values`: a session below it is not reused (a new
/// login, and `prompt=none` is `login_required`), the new login asks for what that level
/// needs (the password after the app's PIN), and the ID token's `acr` is that level. With
/// `acr_values` too, the stricter counts; only unknown values mean high; voluntary or
/// essential, in `id_token` or `userinfo`, alike; a malformed `acr` request is refused.
async fn an_acr_claim_is_a_level_to_reach_also_for_single_sign_on(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let essential =
        |acr: &str| json!({"id_token": {"acr": {"essential": true, "values": [acr]}}}).to_string();
    let id_token_claims = |tokens: &openidconnect::core::CoreTokenResponse, nonce: &Nonce| {
        let id_token = tokens.id_token().expect("ID token").to_string();
        verified_claims(&client, &id_token, nonce)
    };

    // The app with its PIN: a session at substantial.
    let mut b = Browser::new(&fx.server);
    let start = authorize(&client, &[], &[]);
    let flow = b.start_flow(start.url.as_str()).await;
    let (done, password) = app_login(&fx, &mut b, &flow).await;
    assert!(!password, "substantial needs no password: {done}");
    let code = code_from(
        done["redirect_to"].as_str().unwrap(),
        &fx.rp,
        &start,
        &issuer,
    );
    let claims = id_token_claims(&exchange(&client, code, start.verifier).await, &start.nonce);
    assert_eq!(claims["acr"], ACR_SUBSTANTIAL, "{claims}");

    // Substantial asked for: the session serves it.
    let start = authorize(&client, &[], &[("claims", &essential(ACR_SUBSTANTIAL))]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let claims = id_token_claims(&exchange(&client, code, start.verifier).await, &start.nonce);
    assert_eq!(claims["acr"], ACR_SUBSTANTIAL, "{claims}");

    // High asked for, in any of these ways: not from this session.
    let high_requests = [
        essential(ACR_HIGH),
        json!({"id_token": {"acr": {"essential": true, "value": ACR_HIGH}}}).to_string(),
        json!({"id_token": {"acr": {"values": [ACR_HIGH]}}}).to_string(),
        json!({"userinfo": {"acr": {"essential": true, "values": [ACR_HIGH]}}}).to_string(),
        json!({"id_token": {"acr": {"essential": true, "values": [ACR_SUBSTANTIAL, ACR_HIGH]}}})
            .to_string(),
        essential("urn:example:unknown-level"),
    ];
    for claims_req in &high_requests {
        let start = authorize(&client, &[], &[("claims", claims_req)]);
        let r = b.get(start.url.as_str()).await;
        let id = login_flow_id(&r);
        assert_eq!(
            b.flow(&id).await["state"],
            "identify",
            "claims={claims_req}"
        );
        let start = authorize(&client, &[], &[("claims", claims_req), ("prompt", "none")]);
        let r = b.get(start.url.as_str()).await;
        assert_eq!(
            redirected_error(&r, &fx.rp, start.state.secret(), &issuer),
            "login_required",
            "claims={claims_req} with prompt=none and a substantial session"
        );
    }
    // With acr_values as well, the stricter of the two counts.
    for (acr_values, claims_req) in [
        (ACR_SUBSTANTIAL, essential(ACR_HIGH)),
        (ACR_HIGH, essential(ACR_SUBSTANTIAL)),
    ] {
        let start = authorize(
            &client,
            &[],
            &[("acr_values", acr_values), ("claims", &claims_req)],
        );
        let r = b.get(start.url.as_str()).await;
        login_flow_id(&r);
    }
    // A malformed acr request: invalid_request back to the client.
    for bad in [
        json!({"id_token": {"acr": {"values": ACR_HIGH}}}),
        json!({"id_token": {"acr": {"value": [ACR_HIGH]}}}),
        json!({"id_token": {"acr": {"essential": "yes", "values": [ACR_HIGH]}}}),
        json!({"id_token": {"acr": ACR_HIGH}}),
    ] {
        let start = authorize(&client, &[], &[("claims", &bad.to_string())]);
        let r = b.get(start.url.as_str()).await;
        assert_eq!(
            redirected_error(&r, &fx.rp, start.state.secret(), &issuer),
            "invalid_request",
            "claims={bad}"
        );
    }

    // The new login for high: after the app's PIN the password follows; acr high.
    let start = authorize(&client, &[], &[("claims", &essential(ACR_HIGH))]);
    let r = b.get(start.url.as_str()).await;
    let id = login_flow_id(&r);
    let flow = b.flow(&id).await;
    let (done, password) = app_login(&fx, &mut b, &flow).await;
    assert!(password, "high needs the password after the app: {done}");
    let code = code_from(
        done["redirect_to"].as_str().unwrap(),
        &fx.rp,
        &start,
        &issuer,
    );
    let claims = id_token_claims(&exchange(&client, code, start.verifier).await, &start.nonce);
    assert_eq!(claims["acr"], ACR_HIGH, "{claims}");
    assert_eq!(
        claims["amr"],
        json!(["swk", "pin", "pwd", "mfa"]),
        "{claims}"
    );

    // That session is high: now it serves the same request.
    let start = authorize(&client, &[], &[("claims", &essential(ACR_HIGH))]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let claims = id_token_claims(&exchange(&client, code, start.verifier).await, &start.nonce);
    assert_eq!(claims["acr"], ACR_HIGH, "{claims}");
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 2. Logout
// ---------------------------------------------------------------------------------------

fn logout_url(server: &Server, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&server.url("/oauth2/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// RP-initiated logout: an unregistered post_logout_redirect_uri is an error page and
/// leaves the session alone; a registered one redirects there with `state`, ends the
/// session (also for a browser that kept the old cookie) and `prompt=none` then answers
/// `login_required`.
async fn logout_ends_the_session_and_checks_the_redirect(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let rp = fx.segl.add_rp(
        "Logout client",
        REDIRECT_URI,
        &["--post-logout-redirect-uri", POST_LOGOUT_URI],
    );
    let (_, client) = discover(&fx.server, &rp).await;
    let mut b = fx.browser();
    let start = authorize(&client, &[], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token").to_string();
    let sid = b
        .cookies
        .get(SESSION_COOKIE)
        .cloned()
        .expect("a session cookie after login");

    // Not registered (a prefix, another path, another client's): an error page.
    for uri in [
        "http://127.0.0.1:9/evil",
        "http://127.0.0.1:9/bye/",
        "http://127.0.0.1:9/bye?x=1",
        REDIRECT_URI,
    ] {
        let r = b
            .get(&logout_url(
                &fx.server,
                &[
                    ("id_token_hint", id_token.as_str()),
                    ("post_logout_redirect_uri", uri),
                    ("state", "s1"),
                ],
            ))
            .await;
        assert_error_page(&r);
        assert_eq!(
            b.cookies.get(SESSION_COOKIE),
            Some(&sid),
            "a refused logout keeps the session cookie ({uri})"
        );
    }
    // A forged id_token_hint: an error page too.
    let r = b
        .get(&logout_url(
            &fx.server,
            &[
                ("id_token_hint", "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0."),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        ))
        .await;
    assert_error_page(&r);
    assert_eq!(fx.segl.audit_count("session.logout"), 0);
    // The session is still alive.
    let start = authorize(&client, &[], &[("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    sso_code(&r, &rp, &start, &issuer);

    // The registered URI: a redirect there with state, and the cookie goes.
    let r = b
        .get(&logout_url(
            &fx.server,
            &[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "bye-state"),
            ],
        ))
        .await;
    let loc = redirect_location(&r);
    let loc = Url::parse(&loc).unwrap_or_else(|e| panic!("Location {loc:?}: {e}"));
    let mut base = loc.clone();
    base.set_query(None);
    assert_eq!(base.as_str(), POST_LOGOUT_URI, "{loc}");
    let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
    assert_eq!(
        q,
        vec![("state".to_string(), "bye-state".to_string())],
        "{loc}"
    );
    assert!(
        !b.cookies.contains_key(SESSION_COOKIE),
        "logout removes the session cookie"
    );
    assert_eq!(fx.segl.audit_count("session.logout"), 1);

    // No session: prompt=none is login_required ...
    let start = authorize(&client, &[], &[("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    assert_eq!(
        redirected_error(&r, &rp, start.state.secret(), &issuer),
        "login_required"
    );
    // ... also for a browser that kept the old cookie: the session ended at the server.
    b.cookies.insert(SESSION_COOKIE.to_string(), sid);
    let start = authorize(&client, &[], &[("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    assert_eq!(
        redirected_error(&r, &rp, start.state.secret(), &issuer),
        "login_required"
    );
    let start = authorize(&client, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    login_flow_id(&r);

    // Without state the redirect carries none.
    let mut b2 = fx.browser();
    let r = b2
        .get(&logout_url(
            &fx.server,
            &[
                ("id_token_hint", id_token.as_str()),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        ))
        .await;
    assert_eq!(redirect_location(&r), POST_LOGOUT_URI);
    fx.segl.audit_ok();
}

/// Runs each statement on the test's own connection to the database.
async fn db_exec(db: &mut sqlx::AnyConnection, statements: &[&str]) {
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// A logout whose audit event cannot be written (a trigger the test adds refuses it, as a
/// full disk or a lost database would) ends nothing: 503 with Retry-After and an error page,
/// not "logged out"; the session lives on at the server and the browser keeps its cookie;
/// no `session.logout` event. Once the store works again, the logout goes through.
async fn a_logout_the_store_cannot_record_changes_nothing(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();
    let start = authorize(&client, &[], &[]);
    b.login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let sid = b
        .cookies
        .get(SESSION_COOKIE)
        .cloned()
        .expect("a session cookie after login");

    let mut db = fx.segl.db_connect().await;
    let (refuse, allow): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER test_refuse_logout BEFORE INSERT ON audit_log \
               WHEN NEW.event = 'session.logout' \
               BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            ],
            &["DROP TRIGGER test_refuse_logout"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION test_refuse_logout() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
                "CREATE TRIGGER test_refuse_logout BEFORE INSERT ON audit_log FOR EACH ROW \
                 WHEN (NEW.event = 'session.logout') EXECUTE FUNCTION test_refuse_logout()",
            ],
            &[
                "DROP TRIGGER test_refuse_logout ON audit_log",
                "DROP FUNCTION test_refuse_logout()",
            ],
        ),
    };
    db_exec(&mut db, refuse).await;

    let r = b.get(&logout_url(&fx.server, &[])).await;
    r.expect_status(503);
    assert!(r.location().is_none(), "{}: no redirect", r.what);
    assert!(
        r.content_type().starts_with("text/html"),
        "{}: an error page, got {:?}",
        r.what,
        r.content_type()
    );
    assert!(
        r.headers.contains_key(reqwest::header::RETRY_AFTER),
        "{}: a 503 says when to try again",
        r.what
    );
    assert!(
        r.body.contains("try again"),
        "{}: the page says to try again: {}",
        r.what,
        r.body
    );
    assert_eq!(
        b.cookies.get(SESSION_COOKIE),
        Some(&sid),
        "a failed logout keeps the session cookie"
    );
    assert_eq!(fx.segl.audit_count("session.logout"), 0);
    // The session's end was undone with its event: it still signs on.
    let start = authorize(&client, &[], &[("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    sso_code(&r, &fx.rp, &start, &issuer);

    // The store works again: the same logout ends the session, with its event.
    db_exec(&mut db, allow).await;
    let r = b.get(&logout_url(&fx.server, &[])).await;
    r.expect_status(200);
    assert!(
        !b.cookies.contains_key(SESSION_COOKIE),
        "logout removes the session cookie"
    );
    assert_eq!(fx.segl.audit_count("session.logout"), 1);
    let start = authorize(&client, &[], &[("prompt", "none")]);
    let r = b.get(start.url.as_str()).await;
    assert_eq!(
        redirected_error(&r, &fx.rp, start.state.secret(), &issuer),
        "login_required"
    );
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 3. PAR
// ---------------------------------------------------------------------------------------

/// RFC 9126: a pushed request gives a one-time `request_uri`; authorize with it runs the
/// pushed request (parameters outside it are ignored), and the flow completes; the same
/// `request_uri` again is an error page; a pushed request with an unregistered redirect
/// URI or a wrong secret is refused as JSON.
async fn pushed_authorization_requests(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let secret = fx.rp.client_secret.clone().expect("secret");
    let basic = Some((fx.rp.client_id.as_str(), secret.as_str()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let pushed = [
        ("response_type", "code"),
        ("client_id", fx.rp.client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile"),
        ("state", "par-state"),
        ("nonce", "par-nonce"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];

    let r = post_form(&fx.server, "/oauth2/par", basic, &pushed).await;
    r.expect_status(201);
    let v = r.json();
    let request_uri = v["request_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("no request_uri in {v}"))
        .to_string();
    assert!(
        request_uri.starts_with(PAR_URN) && request_uri.len() > PAR_URN.len() + 16,
        "request_uri {request_uri:?}"
    );
    assert_eq!(v["expires_in"], 60, "the default par_ttl_secs: {v}");
    assert_eq!(
        r.headers
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|h| h.to_str().ok()),
        Some("no-store"),
        "a PAR response is not cached"
    );

    // Authorize with client_id and request_uri; a state and scope outside the pushed
    // request are ignored (RFC 9126 section 4).
    let mut url = Url::parse(&fx.server.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &fx.rp.client_id)
        .append_pair("request_uri", &request_uri)
        .append_pair("state", "not-the-pushed-state")
        .append_pair("scope", "openid nin");
    let mut b = fx.browser();
    let flow = b.start_flow(url.as_str()).await;
    assert_eq!(flow["client_name"], "Test", "{flow}");
    let flow = b.identify(&flow, NIN).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    let redirect_to = done["redirect_to"].as_str().expect("redirect_to");
    let q = callback_params(redirect_to, &fx.rp, "par-state", &issuer);
    let code = q.get("code").expect("a code").clone();
    let form = code_form(&code, verifier.secret());
    let r = post_form(&fx.server, "/oauth2/token", basic, &form).await;
    r.expect_status(200);
    let body = r.json();
    let claims = verified_claims(
        &client,
        body["id_token"].as_str().expect("id_token"),
        &Nonce::new("par-nonce".into()),
    );
    assert_eq!(claims["sub"], fx.sub.as_str(), "{claims}");
    assert_eq!(claims["name"], NAME, "the pushed scope profile: {claims}");
    assert!(
        claims.get("nin").is_none(),
        "a scope outside the pushed request is ignored: {claims}"
    );
    assert_eq!(body["scope"], "openid profile", "{body}");

    // The request_uri works once.
    let mut b2 = fx.browser();
    let r = b2.get(url.as_str()).await;
    assert_error_page(&r);
    assert!(
        !b2.cookies.contains_key(FLOW_COOKIE),
        "no flow for a used request_uri"
    );
    // The session of the first browser does not make a used request_uri valid either.
    let r = b.get(url.as_str()).await;
    assert_error_page(&r);

    // A request_uri belongs to its client.
    let other = fx.segl.add_rp("Other", REDIRECT_URI, &[]);
    let r = post_form(&fx.server, "/oauth2/par", basic, &pushed).await;
    r.expect_status(201);
    let uri2 = r.json()["request_uri"].as_str().unwrap().to_string();
    let mut url2 = Url::parse(&fx.server.url("/oauth2/authorize")).unwrap();
    url2.query_pairs_mut()
        .append_pair("client_id", &other.client_id)
        .append_pair("request_uri", &uri2);
    let r = fx.browser().get(url2.as_str()).await;
    assert_error_page(&r);

    // Refusals at the PAR endpoint are OAuth JSON errors.
    let mut wrong_redirect = pushed.to_vec();
    wrong_redirect[2] = ("redirect_uri", "http://127.0.0.1:9/evil");
    let r = post_form(&fx.server, "/oauth2/par", basic, &wrong_redirect).await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = post_form(
        &fx.server,
        "/oauth2/par",
        Some((fx.rp.client_id.as_str(), "wrong-secret")),
        &pushed,
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = post_form(&fx.server, "/oauth2/par", None, &pushed).await;
    assert_oauth_error(&r, 401, "invalid_client");
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 4. client_secret_post and client_secret_basic
// ---------------------------------------------------------------------------------------

/// A `client_secret_post` client authenticates with the secret in the form; a
/// `client_secret_basic` client must use Basic. The wrong method, a wrong secret or no
/// authentication is 401 `invalid_client`, and none of them spends the code.
async fn client_secret_post_and_basic_are_enforced(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let post_rp = fx.segl.add_rp(
        "Post client",
        REDIRECT_URI,
        &["--auth-method", "client_secret_post"],
    );
    let post_secret = post_rp
        .client_secret
        .clone()
        .expect("a post client has a secret");
    let (_, post_client) = discover(&fx.server, &post_rp).await;
    let mut b = fx.browser();
    let start = authorize(&post_client, &[], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &post_rp, &start, &issuer);
    let form = code_form(code.secret(), start.verifier.secret());
    let pid = post_rp.client_id.as_str();

    // The post client with Basic: refused.
    let r = post_form(
        &fx.server,
        "/oauth2/token",
        Some((pid, &post_secret)),
        &form,
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Wrong secret in the form.
    let mut f = form.clone();
    f.push(("client_id", pid));
    f.push(("client_secret", "wrong-secret"));
    let r = post_form(&fx.server, "/oauth2/token", None, &f).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // client_id alone (no secret).
    let mut f = form.clone();
    f.push(("client_id", pid));
    let r = post_form(&fx.server, "/oauth2/token", None, &f).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Right: the code still works.
    let mut f = form.clone();
    f.push(("client_id", pid));
    f.push(("client_secret", post_secret.as_str()));
    let r = post_form(&fx.server, "/oauth2/token", None, &f).await;
    r.expect_status(200);
    let body = r.json();
    let claims = verified_claims(
        &post_client,
        body["id_token"].as_str().expect("id_token"),
        &start.nonce,
    );
    assert_eq!(claims["aud"], pid, "{claims}");
    assert!(body["access_token"].is_string(), "{body}");

    // The basic client (single sign-on gives its code at once).
    let (_, basic_client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&basic_client, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let form = code_form(code.secret(), start.verifier.secret());
    let bid = fx.rp.client_id.as_str();
    let bsecret = fx.rp.client_secret.clone().expect("secret");
    // With client_secret_post: refused.
    let mut f = form.clone();
    f.push(("client_id", bid));
    f.push(("client_secret", bsecret.as_str()));
    let r = post_form(&fx.server, "/oauth2/token", None, &f).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Wrong Basic secret; another client's secret.
    let r = post_form(&fx.server, "/oauth2/token", Some((bid, "wrong")), &form).await;
    assert_oauth_error(&r, 401, "invalid_client");
    let r = post_form(
        &fx.server,
        "/oauth2/token",
        Some((bid, &post_secret)),
        &form,
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    // No authentication at all.
    let r = post_form(&fx.server, "/oauth2/token", None, &form).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Right: Basic.
    let r = post_form(&fx.server, "/oauth2/token", Some((bid, &bsecret)), &form).await;
    r.expect_status(200);
    let body = r.json();
    verified_claims(
        &basic_client,
        body["id_token"].as_str().expect("id_token"),
        &start.nonce,
    );
    assert_eq!(
        fx.segl.audit_count("token.issued"),
        2,
        "only the two right requests issued tokens"
    );
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 5. private_key_jwt
// ---------------------------------------------------------------------------------------

/// An EC P-256 key made by the `openssl` command, independent of segl's crypto.
struct EcKey {
    pem: PathBuf,
    dir: PathBuf,
    /// The public JWK.
    jwk: Value,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl EcKey {
    fn generate(dir: &Path, name: &str, kid: &str) -> EcKey {
        let pem = dir.join(format!("{name}.pem"));
        let der = dir.join(format!("{name}.pub.der"));
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            pem.to_str().unwrap(),
        ]);
        openssl(&[
            "ec",
            "-in",
            pem.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ]);
        let spki = std::fs::read(&der).expect("public key DER");
        // SubjectPublicKeyInfo of a P-256 key: 26 bytes of header, then 04 || x || y.
        assert_eq!(spki.len(), 91, "unexpected P-256 SPKI length");
        let point = &spki[26..];
        assert_eq!(point[0], 4, "uncompressed point");
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": b64u(&point[1..33]), "y": b64u(&point[33..65]),
        });
        EcKey {
            pem,
            dir: dir.to_path_buf(),
            jwk,
        }
    }

    /// A compact ES256 JWS of these claims, with `kid` in the header.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            b64u(header.to_string().as_bytes()),
            b64u(claims.to_string().as_bytes())
        );
        let name = random_hex(8);
        let msg = self.dir.join(format!("{name}.msg"));
        let sig = self.dir.join(format!("{name}.sig"));
        std::fs::write(&msg, &input).unwrap();
        openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            self.pem.to_str().unwrap(),
            "-out",
            sig.to_str().unwrap(),
            msg.to_str().unwrap(),
        ]);
        let der = std::fs::read(&sig).unwrap();
        format!("{input}.{}", b64u(&der_ecdsa_to_raw(&der)))
    }
}

/// An ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) as JOSE's 64-byte r || s.
fn der_ecdsa_to_raw(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "DER SEQUENCE");
    assert!(der[1] < 0x80, "short-form length for a P-256 signature");
    let mut i = 2;
    let mut out = Vec::with_capacity(64);
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "DER INTEGER");
        let len = usize::from(der[i + 1]);
        let mut int = &der[i + 2..i + 2 + len];
        while int.len() > 32 && int[0] == 0 {
            int = &int[1..];
        }
        assert!(int.len() <= 32, "integer too long");
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client registered with `--auth-method private_key_jwt --jwks FILE` exchanges a code
/// with an ES256 client assertion; wrong audience, issuer, expiry or key are refused
/// without spending the code; the same assertion (same `jti`) again is `invalid_client`.
async fn private_key_jwt_client_assertions(backend: Backend) {
    if !openssl_available() {
        skip("private_key_jwt", "the openssl command is not installed");
        return;
    }
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let keys_dir = tempfile::tempdir().expect("temp dir");
    let key = EcKey::generate(keys_dir.path(), "client", "client-key-1");
    let stranger = EcKey::generate(keys_dir.path(), "stranger", "client-key-1");
    let jwks_file = keys_dir.path().join("jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [key.jwk]}).to_string()).unwrap();
    let rp = fx.segl.add_rp(
        "JWT client",
        REDIRECT_URI,
        &[
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            jwks_file.to_str().unwrap(),
        ],
    );
    assert!(
        rp.client_secret.is_none(),
        "a private_key_jwt client gets no secret"
    );
    let cid = rp.client_id.clone();
    let (_, client) = discover(&fx.server, &rp).await;
    let mut b = fx.browser();
    let start = authorize(&client, &[], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &rp, &start, &issuer);
    let token_endpoint = format!("{issuer}/oauth2/token");
    let claims = |aud: &str, iss: &str, exp_in: i64| -> Value {
        let now = unix_now() as i64;
        json!({
            "iss": iss, "sub": cid, "aud": aud, "iat": now, "exp": now + exp_in,
            "jti": random_hex(16),
        })
    };
    let exchange_with = |assertion: String, code: String, verifier: String, with_id: bool| {
        let server = &fx.server;
        let cid = cid.clone();
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code),
                ("redirect_uri", REDIRECT_URI.to_string()),
                ("code_verifier", verifier),
                ("client_assertion_type", JWT_BEARER.to_string()),
                ("client_assertion", assertion),
            ];
            if with_id {
                form.push(("client_id", cid));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(server, "/oauth2/token", None, &form).await
        }
    };
    let c = code.secret().to_string();
    let v = start.verifier.secret().to_string();

    // Refused, and the code stays good.
    for (what, assertion) in [
        (
            "another audience",
            key.sign(
                "client-key-1",
                &claims("https://rp.example/token", &cid, 60),
            ),
        ),
        (
            "another issuer",
            key.sign("client-key-1", &claims(&token_endpoint, "someone-else", 60)),
        ),
        (
            "expired",
            key.sign("client-key-1", &claims(&token_endpoint, &cid, -120)),
        ),
        (
            "signed by an unregistered key",
            stranger.sign("client-key-1", &claims(&token_endpoint, &cid, 60)),
        ),
        ("another subject", {
            let mut c = claims(&token_endpoint, &cid, 60);
            c["sub"] = json!("someone-else");
            key.sign("client-key-1", &c)
        }),
        ("no jti", {
            let mut c = claims(&token_endpoint, &cid, 60);
            c.as_object_mut().unwrap().remove("jti");
            key.sign("client-key-1", &c)
        }),
        ("not a JWT", "not.a.jwt".to_string()),
    ] {
        let r = exchange_with(assertion, c.clone(), v.clone(), true).await;
        let e = assert_oauth_error(&r, 401, "invalid_client");
        println!("{what}: {e}");
    }
    // A secret instead of an assertion.
    let r = post_form(
        &fx.server,
        "/oauth2/token",
        Some((cid.as_str(), "a-secret")),
        &code_form(&c, &v),
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");

    // The right assertion.
    let assertion = key.sign("client-key-1", &claims(&token_endpoint, &cid, 60));
    let r = exchange_with(assertion.clone(), c, v, true).await;
    r.expect_status(200);
    let body = r.json();
    let id = verified_claims(
        &client,
        body["id_token"].as_str().expect("id_token"),
        &start.nonce,
    );
    assert_eq!(id["aud"], cid.as_str(), "{id}");
    assert_eq!(id["sub"], fx.sub.as_str(), "{id}");

    // Replay of the same assertion (same jti) with a fresh code: refused.
    let start = authorize(&client, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &rp, &start, &issuer);
    let c = code.secret().to_string();
    let v = start.verifier.secret().to_string();
    let r = exchange_with(assertion, c.clone(), v.clone(), true).await;
    assert_oauth_error(&r, 401, "invalid_client");
    // A new assertion (new jti) works, also without client_id (taken from sub), and
    // with the issuer as audience.
    let assertion = key.sign("client-key-1", &claims(&issuer, &cid, 60));
    let r = exchange_with(assertion, c, v, false).await;
    r.expect_status(200);
    verified_claims(
        &client,
        r.json()["id_token"].as_str().expect("id_token"),
        &start.nonce,
    );
    assert_eq!(fx.segl.audit_count("token.issued"), 2);
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 6. Userinfo
// ---------------------------------------------------------------------------------------

/// Userinfo answers GET and POST with a Bearer header (and POST with `access_token` in
/// the form): `sub`, and the profile claims with scope profile only. Without a token or
/// with a wrong one: 401 with `WWW-Authenticate: Bearer`.
async fn userinfo_get_post_and_errors(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();
    let start = authorize(&client, &["profile"], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let at = tokens.access_token().secret().clone();
    let http = no_redirect_client();
    let url = fx.server.url("/oauth2/userinfo");
    let expected = json!({
        "sub": fx.sub, "name": NAME, "given_name": "Kari", "family_name": "Nordmann",
        "birthdate": "1985-05-15",
    });

    let r = Resp::read(
        http.get(&url).bearer_auth(&at).send().await.unwrap(),
        "GET userinfo".into(),
    )
    .await;
    r.expect_status(200);
    assert_eq!(r.json(), expected, "GET userinfo with scope profile");
    let r = Resp::read(
        http.post(&url).bearer_auth(&at).send().await.unwrap(),
        "POST userinfo (Bearer)".into(),
    )
    .await;
    r.expect_status(200);
    assert_eq!(r.json(), expected, "POST userinfo with scope profile");
    let r = Resp::read(
        http.post(&url)
            .form(&[("access_token", at.as_str())])
            .send()
            .await
            .unwrap(),
        "POST userinfo (form)".into(),
    )
    .await;
    r.expect_status(200);
    assert_eq!(
        r.json(),
        expected,
        "POST userinfo with the token in the body"
    );

    // Without a token, and with a wrong one.
    for (what, req) in [
        ("GET, no token", http.get(&url)),
        ("POST, no token", http.post(&url)),
        (
            "GET, wrong token",
            http.get(&url).bearer_auth("not-a-token"),
        ),
        (
            "POST, wrong token",
            http.post(&url).bearer_auth("not-a-token"),
        ),
    ] {
        let r = Resp::read(req.send().await.unwrap(), what.into()).await;
        r.expect_status(401);
        let www = r
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate"))
            .to_string();
        assert!(
            www.starts_with("Bearer"),
            "{what}: WWW-Authenticate {www:?}"
        );
        if what.ends_with("wrong token") {
            assert!(
                www.contains("error=\"invalid_token\""),
                "{what}: WWW-Authenticate {www:?}"
            );
        }
    }

    // Scope openid only: sub and nothing else.
    let start = authorize(&client, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    let code = sso_code(&r, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let r = userinfo_raw(&fx.server, tokens.access_token().secret()).await;
    r.expect_status(200);
    assert_eq!(
        r.json(),
        json!({"sub": fx.sub}),
        "userinfo with scope openid"
    );
}
