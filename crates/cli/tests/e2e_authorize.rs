//! The authorization endpoint as the OpenID Foundation's Basic and Config OP profiles
//! exercise it: POST as well as GET, parameters segl ignores or honours (`acr_values`,
//! `display`, `claims_locales`, unknown ones), `id_token_hint`, the `claims` parameter,
//! PKCE for public clients, error redirects, the remembered login method, and the
//! server's shutdown and logs, end to end against the real `segl` binary on each backend.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use openidconnect::{OAuth2TokenResponse, PkceCodeChallenge, TokenResponse};
use serde_json::{Value, json};
use url::Url;

backend_tests!(
    authorize_by_post_works_like_get,
    extra_parameters_are_accepted_and_acr_values_honoured,
    id_token_hint_is_verified_and_names_the_person,
    claims_parameter_targets_id_token_and_userinfo,
    public_clients_must_use_pkce_s256,
    error_redirects_and_unknown_scopes,
    remembered_method_and_choose_another,
    sigterm_shuts_down_gracefully,
    json_logs_are_json_and_leak_no_secrets,
);

/// eIDAS "high": what a code device and a password reach.
const ACR_HIGH: &str = "http://eidas.europa.eu/LoA/high";
/// eIDAS "substantial".
const ACR_SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";
/// The cookie remembering the browser's method.
const METHOD_COOKIE: &str = "segl_method";
/// The person's birthdate (from the national identity number).
const BIRTHDATE: &str = "1985-05-15";

// ---------------------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------------------

/// An authorize URL for `rp` with exactly these parameters (plus `client_id` and
/// `redirect_uri`), built by hand so that anything can be sent.
fn raw_authorize(server: &Server, rp: &Rp, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&server.url("/oauth2/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &rp.client_id)
            .append_pair("redirect_uri", &rp.redirect_uri);
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// A form-encoded body.
fn form_body(fields: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
        .into_bytes()
}

/// POST a form as a browser (with its cookies).
async fn browser_form(b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Resp {
    b.post_raw(
        path,
        "application/x-www-form-urlencoded",
        form_body(fields),
        None,
    )
    .await
}

/// POST a form to a server path without cookies or client authentication.
async fn post_form(server: &Server, path: &str, form: &[(&str, &str)]) -> Resp {
    let req = no_redirect_client().post(server.url(path)).form(form);
    Resp::fetch(req, format!("POST {path}")).await
}

/// From an authorize response that must redirect back to the client with an error: the
/// query, checked for `state` and `iss`, an `error_description` and no `code`.
fn error_redirect(r: &Resp, rp: &Rp, state: &str, issuer: &str) -> BTreeMap<String, String> {
    r.expect_status(303);
    let loc = r
        .location()
        .unwrap_or_else(|| panic!("{}: 303 without Location", r.what));
    let q = callback_params(&loc, rp, state, issuer);
    assert!(
        !q.contains_key("code"),
        "an error redirect has no code: {loc}"
    );
    assert!(q.contains_key("error"), "no error in {loc}");
    assert!(
        q.get("error_description").is_some_and(|d| !d.is_empty()),
        "no error_description in {loc}"
    );
    q
}

/// The `error` of an error redirect.
fn redirected_error(r: &Resp, rp: &Rp, state: &str, issuer: &str) -> String {
    error_redirect(r, rp, state, issuer)["error"].clone()
}

/// From a flow view in state `identify`: identify (choosing the code device if asked), the
/// next code and the password; returns `redirect_to`.
async fn finish_login(b: &mut Browser, flow: &Value, device: &mut Hotp) -> String {
    let flow = b.identify(flow, NIN).await;
    let flow = b.otp_ok(&flow, &device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    done["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("state done without redirect_to: {done}"))
        .to_string()
}

/// A full login with `start` in browser `b`, the code exchanged; returns the token
/// response and the ID token's verified claims.
async fn login_and_exchange(
    b: &mut Browser,
    fx_device: &mut Hotp,
    client: &OidcClient,
    rp: &Rp,
    issuer: &str,
    start: AuthStart,
) -> (openidconnect::core::CoreTokenResponse, Value) {
    let flow = b.start_flow(start.url.as_str()).await;
    let redirect_to = finish_login(b, &flow, fx_device).await;
    let code = code_from(&redirect_to, rp, &start, issuer);
    let tokens = exchange(client, code, start.verifier).await;
    let id_token = tokens.id_token().expect("ID token").to_string();
    let claims = verified_claims(client, &id_token, &start.nonce);
    (tokens, claims)
}

// ---------------------------------------------------------------------------------------
// 1. POST to the authorization endpoint
// ---------------------------------------------------------------------------------------

/// OIDC Core 3.1.2.1: the authorization endpoint takes POST (form-encoded) as well as GET,
/// with the same outcome: a login flow bound to the browser, a code, tokens; and the
/// same error redirects.
async fn authorize_by_post_works_like_get(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();

    let start = authorize(&client, &["profile"], &[]);
    let body = start
        .url
        .query()
        .expect("authorize URL has a query")
        .to_string();
    let r = b
        .post_raw(
            "/oauth2/authorize",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            None,
        )
        .await;
    let id = login_flow_id(&r);
    assert!(
        b.cookies.contains_key(FLOW_COOKIE),
        "POST authorize did not set the {FLOW_COOKIE} cookie: {:?}",
        b.cookies.keys()
    );
    let flow = b.flow(&id).await;
    assert_eq!(flow["kind"], "login", "{flow}");
    assert_eq!(flow["state"], "identify", "{flow}");
    assert_eq!(flow["client_name"], "Test", "{flow}");
    let redirect_to = finish_login(&mut b, &flow, &mut fx.device).await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let claims = verified_claims(
        &client,
        &tokens.id_token().expect("ID token").to_string(),
        &start.nonce,
    );
    assert_eq!(claims["sub"], fx.sub.as_str(), "{claims}");
    assert_eq!(
        claims["name"], NAME,
        "scope profile from the POST body: {claims}"
    );
    assert_eq!(claims["acr"], ACR_HIGH, "{claims}");

    // The session works for a POST too: single sign-on straight back with a code.
    let start = authorize(&client, &[], &[]);
    let body = start.url.query().unwrap().to_string();
    let r = b
        .post_raw(
            "/oauth2/authorize",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            None,
        )
        .await;
    r.expect_status(303);
    let loc = r.location().expect("Location");
    let code = code_from(&loc, &fx.rp, &start, &issuer);
    exchange(&client, code, start.verifier).await;

    // Errors after the client is verified are redirected, as for GET.
    let mut fresh = fx.browser();
    let r = browser_form(
        &mut fresh,
        "/oauth2/authorize",
        &[
            ("client_id", &fx.rp.client_id),
            ("redirect_uri", &fx.rp.redirect_uri),
            ("response_type", "token"),
            ("scope", "openid"),
            ("state", "post-state"),
        ],
    )
    .await;
    assert_eq!(
        redirected_error(&r, &fx.rp, "post-state", &issuer),
        "unsupported_response_type"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Parameters segl accepts
// ---------------------------------------------------------------------------------------

/// Unknown parameters, a valid `id_token_hint`, `claims_locales` and `display` do not stop
/// a flow (OIDC Core 3.1.2.1, OAuth 2.0 3.1); `acr_values` are voluntary: the ID token's
/// `acr` is the level reached (high), which meets any supported level asked for, also
/// through single sign-on, and unknown values are ignored.
async fn extra_parameters_are_accepted_and_acr_values_honoured(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (meta, client) = discover(&fx.server, &fx.rp).await;
    let supported: Vec<String> = meta
        .acr_values_supported()
        .expect("acr_values_supported in discovery")
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert!(
        supported.iter().any(|a| a == ACR_HIGH) && supported.iter().any(|a| a == ACR_SUBSTANTIAL),
        "acr_values_supported: {supported:?}"
    );

    // A first login, for a real ID token to hint with.
    let mut first = fx.browser();
    let start = authorize(&client, &[], &[]);
    let (tokens, _) =
        login_and_exchange(&mut first, &mut fx.device, &client, &fx.rp, &issuer, start).await;
    let hint = tokens.id_token().expect("ID token").to_string();

    // Each of these parameters alone starts a flow in a new browser.
    for extra in [
        [("unknown_param", "some value")],
        [("id_token_hint", hint.as_str())],
        [("claims_locales", "en nb")],
        [("claims_locales", "xx-YY")],
        [("display", "page")],
        [("display", "popup")],
        [("display", "touch")],
        [("acr_values", ACR_SUBSTANTIAL)],
        [("acr_values", "urn:example:unknown-level")],
    ] {
        let mut b = fx.browser();
        let start = authorize(&client, &[], &extra);
        let r = b.get(start.url.as_str()).await;
        assert!(
            r.location().is_some_and(|l| l.starts_with("/login")),
            "{extra:?} must be accepted (a login flow starts), got {} Location {:?}: {}",
            r.status,
            r.location(),
            r.body
        );
        login_flow_id(&r);
    }

    // All at once, through a whole login: acr asked "substantial", reached "high".
    let mut b = fx.browser();
    let start = authorize(
        &client,
        &["profile"],
        &[
            ("unknown_param", "x"),
            ("id_token_hint", hint.as_str()),
            ("claims_locales", "en"),
            ("display", "page"),
            ("acr_values", ACR_SUBSTANTIAL),
        ],
    );
    let (_, claims) =
        login_and_exchange(&mut b, &mut fx.device, &client, &fx.rp, &issuer, start).await;
    assert_eq!(claims["acr"], ACR_HIGH, "high meets substantial: {claims}");
    assert_eq!(claims["amr"], json!(["otp", "pwd", "mfa"]), "{claims}");
    assert_eq!(claims["sub"], fx.sub.as_str(), "{claims}");
    assert_eq!(claims["name"], NAME, "{claims}");

    // The session (high) satisfies these acr_values: single sign-on, acr high.
    for acr_values in [
        ACR_SUBSTANTIAL.to_string(),
        ACR_HIGH.to_string(),
        format!("{ACR_SUBSTANTIAL} {ACR_HIGH}"),
        "urn:example:unknown-level".to_string(),
    ] {
        let start = authorize(&client, &[], &[("acr_values", acr_values.as_str())]);
        let r = b.get(start.url.as_str()).await;
        r.expect_status(303);
        let loc = r.location().expect("Location");
        assert!(
            loc.starts_with(REDIRECT_URI),
            "acr_values={acr_values} with a high session: single sign-on expected, got {loc}"
        );
        let code = code_from(&loc, &fx.rp, &start, &issuer);
        let tokens = exchange(&client, code, start.verifier).await;
        let claims = verified_claims(
            &client,
            &tokens.id_token().expect("ID token").to_string(),
            &start.nonce,
        );
        assert_eq!(claims["acr"], ACR_HIGH, "acr_values={acr_values}: {claims}");
    }
}

/// A second person, with the fixtures' second code device.
const OTHER_NIN: &str = "01010050053";
/// The second person's code device (imported with the fixture's, unassigned).
const OTHER_SERIAL: &str = "600000001";

/// `jwt` with its payload's `sub` replaced and the signature kept: no longer segl's.
fn with_sub(jwt: &str, sub: &str) -> String {
    let (header, mut payload) = jwt_parts(jwt);
    payload["sub"] = json!(sub);
    let b64 = |v: &Value| data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes());
    let signature = jwt.rsplit('.').next().unwrap();
    format!("{}.{}.{signature}", b64(&header), b64(&payload))
}

/// The ID token of a token response, unverified (a hint to send back, not to trust).
fn raw_id_token(tokens: &openidconnect::core::CoreTokenResponse) -> String {
    tokens.id_token().expect("ID token").to_string()
}

/// OIDC Core 3.1.2.1: an `id_token_hint` must be an ID token segl issued to this client
/// (signature, `iss`, `aud`), else `invalid_request` goes back to the client; it names the
/// person, so a session of someone else is not reused (`prompt=none`: `login_required`;
/// otherwise a new login), while the session of the person it names is, also once the hint
/// has expired.
async fn id_token_hint_is_verified_and_names_the_person(backend: Backend) {
    // ID tokens live 3 s here, so the hints below expire within the test.
    let mut fx = Fixture::with_env(
        Segl::new(backend),
        &[],
        &[("SEGL_POLICY__ID_TOKEN_TTL_SECS", "3")],
    );
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    fx.segl.add_person(OTHER_NIN, "Ola Nordmann", PASSWORD);
    fx.segl.assign(OTHER_SERIAL, OTHER_NIN);
    let mut other_device = Hotp::new(OTHER_SERIAL);

    // The other person logs in in a browser of their own: their ID token.
    let mut theirs = fx.browser();
    let start = authorize(&client, &[], &[]);
    let redirect_to = theirs
        .login(start.url.as_str(), OTHER_NIN, &mut other_device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let other_hint = raw_id_token(&exchange(&client, code, start.verifier).await);
    let other_sub = jwt_parts(&other_hint).1["sub"]
        .as_str()
        .expect("sub")
        .to_string();
    assert_ne!(other_sub, fx.sub, "two people, two subs");

    // The fixture's person logs in in this browser: the session, and their ID token.
    let mut b = fx.browser();
    let start = authorize(&client, &[], &[]);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let own_hint = raw_id_token(&exchange(&client, code, start.verifier).await);

    // The session's person hinted at: prompt=none signs on with a code for them.
    let start = authorize(
        &client,
        &[],
        &[("prompt", "none"), ("id_token_hint", own_hint.as_str())],
    );
    let r = b.get(start.url.as_str()).await;
    r.expect_status(303);
    let code = code_from(&r.location().expect("Location"), &fx.rp, &start, &issuer);
    let tokens = exchange(&client, code, start.verifier).await;
    let claims = verified_claims(&client, &raw_id_token(&tokens), &start.nonce);
    assert_eq!(claims["sub"], fx.sub.as_str(), "{claims}");

    // Someone else hinted at: prompt=none is login_required, back to the client ...
    let start = authorize(
        &client,
        &[],
        &[("prompt", "none"), ("id_token_hint", other_hint.as_str())],
    );
    let r = b.get(start.url.as_str()).await;
    assert_eq!(
        redirected_error(&r, &fx.rp, start.state.secret(), &issuer),
        "login_required",
        "a hint for another person than the session's"
    );
    // ... and without prompt=none a new login, from the first step.
    let start = authorize(&client, &[], &[("id_token_hint", other_hint.as_str())]);
    let r = b.get(start.url.as_str()).await;
    let id = login_flow_id(&r);
    assert_eq!(b.flow(&id).await["state"], "identify");

    // A hint segl did not issue to this client: invalid_request, with or without prompt.
    let rp2 = fx.segl.add_rp("Other client", REDIRECT_URI, &[]);
    let (_, client2) = discover(&fx.server, &rp2).await;
    let start = authorize(&client2, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    r.expect_status(303);
    let code = code_from(&r.location().expect("Location"), &rp2, &start, &issuer);
    let other_client_hint = raw_id_token(&exchange(&client2, code, start.verifier).await);
    let (header, _) = jwt_parts(&own_hint);
    let alg_none = format!(
        "{}.{}.",
        data_encoding::BASE64URL_NOPAD.encode(json!({"alg": "none"}).to_string().as_bytes()),
        own_hint.split('.').nth(1).unwrap()
    );
    assert!(header["kid"].is_string(), "{header}");
    for (what, hint) in [
        (
            "another person's sub in a signed token",
            with_sub(&own_hint, &other_sub),
        ),
        ("a token issued to another client", other_client_hint),
        ("alg none", alg_none),
        ("no JWT", "not.a.jwt".to_string()),
        ("empty", String::new()),
    ] {
        for prompt in [None, Some("none")] {
            let mut params = vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", "hint-state"),
                ("id_token_hint", hint.as_str()),
            ];
            params.extend(prompt.map(|p| ("prompt", p)));
            let r = b.get(&raw_authorize(&fx.server, &fx.rp, &params)).await;
            let q = error_redirect(&r, &fx.rp, "hint-state", &issuer);
            assert_eq!(
                q["error"], "invalid_request",
                "{what}, prompt {prompt:?}: {q:?}"
            );
            assert!(
                q["error_description"].contains("id_token_hint"),
                "{what}: {q:?}"
            );
        }
    }

    // Expired hints still name their person (OIDC Core 3.1.2.1 allows it).
    let exp = jwt_parts(&own_hint).1["exp"].as_u64().expect("exp");
    while unix_now() <= exp + 1 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start = authorize(
        &client,
        &[],
        &[("prompt", "none"), ("id_token_hint", own_hint.as_str())],
    );
    let r = b.get(start.url.as_str()).await;
    r.expect_status(303);
    code_from(&r.location().expect("Location"), &fx.rp, &start, &issuer);
    let start = authorize(
        &client,
        &[],
        &[("prompt", "none"), ("id_token_hint", other_hint.as_str())],
    );
    let r = b.get(start.url.as_str()).await;
    assert_eq!(
        redirected_error(&r, &fx.rp, start.state.secret(), &issuer),
        "login_required"
    );
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 3. The claims parameter
// ---------------------------------------------------------------------------------------

/// OIDC Core 5.5: claims asked for the ID token go into the ID token, those asked for
/// userinfo into userinfo, even without the `profile` scope; a malformed `claims` is
/// redirected as `invalid_request`.
async fn claims_parameter_targets_id_token_and_userinfo(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (meta, client) = discover(&fx.server, &fx.rp).await;
    assert_eq!(
        meta.claims_parameter_supported(),
        Some(true),
        "discovery says claims_parameter_supported"
    );
    let mut b = fx.browser();
    let claims_req = r#"{"id_token":{"birthdate":{"essential":true}},"userinfo":{"name":null}}"#;
    let start = authorize(&client, &[], &[("claims", claims_req)]);
    let (tokens, id) =
        login_and_exchange(&mut b, &mut fx.device, &client, &fx.rp, &issuer, start).await;
    assert_eq!(
        id["birthdate"], BIRTHDATE,
        "birthdate asked for the ID token: {id}"
    );
    assert!(
        id.get("name").is_none(),
        "name was asked for userinfo only, scope has no profile: {id}"
    );
    assert!(id.get("nin").is_none(), "{id}");
    let r = userinfo_raw(&fx.server, tokens.access_token().secret()).await;
    r.expect_status(200);
    let ui = r.json();
    assert_eq!(ui["sub"], fx.sub.as_str(), "{ui}");
    assert_eq!(ui["name"], NAME, "name asked for userinfo: {ui}");
    assert!(
        ui.get("birthdate").is_none(),
        "birthdate was asked for the ID token only: {ui}"
    );
    assert!(ui.get("nin").is_none(), "{ui}");

    // Malformed claims: an OAuth error back to the verified redirect URI.
    for bad in [
        r#"{"id_token":"#,
        "not json",
        r#"["birthdate"]"#,
        r#"{"id_token":"birthdate"}"#,
        r#"{"userinfo":["name"]}"#,
    ] {
        let mut fresh = fx.browser();
        let r = fresh
            .get(&raw_authorize(
                &fx.server,
                &fx.rp,
                &[
                    ("response_type", "code"),
                    ("scope", "openid"),
                    ("state", "claims-state"),
                    ("claims", bad),
                ],
            ))
            .await;
        assert_eq!(
            redirected_error(&r, &fx.rp, "claims-state", &issuer),
            "invalid_request",
            "claims={bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. PKCE for public clients
// ---------------------------------------------------------------------------------------

/// A public client (`rp add --public`) must send a S256 code challenge: without one, with
/// `plain` or with the method left out (which means plain, RFC 7636 4.3) the error is
/// redirected as `invalid_request`; with S256 the login and the exchange (client_id and
/// code_verifier, no secret) work. `plain` is refused for confidential clients too.
async fn public_clients_must_use_pkce_s256(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let public = fx.segl.add_rp("Public app", REDIRECT_URI, &["--public"]);
    assert!(
        public.client_secret.is_none(),
        "a public client gets no secret: {public:?}"
    );
    let listed = fx.segl.json(&["rp", "list", "--json"]);
    let entry = listed
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|c| c["client_id"] == public.client_id.as_str())
        })
        .unwrap_or_else(|| panic!("public client not in rp list: {listed}"));
    assert_eq!(entry["public"], true, "{entry}");

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let base = [
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "pkce-state"),
        ("nonce", "pkce-nonce"),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&str, String)> {
        base.iter()
            .map(|(k, v)| (*k, v.to_string()))
            .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
            .collect()
    };
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no code_challenge", with(&[])),
        (
            "code_challenge_method=plain",
            with(&[
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "plain"),
            ]),
        ),
        (
            "code_challenge without method (plain)",
            with(&[("code_challenge", challenge.as_str())]),
        ),
    ];
    for (what, params) in &cases {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut b = fx.browser();
        let r = b.get(&raw_authorize(&fx.server, &public, &params)).await;
        assert_eq!(
            redirected_error(&r, &public, "pkce-state", &issuer),
            "invalid_request",
            "public client, {what}"
        );
    }
    // plain is no better for a confidential client.
    let mut b = fx.browser();
    let r = b
        .get(&raw_authorize(
            &fx.server,
            &fx.rp,
            &[
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", "pkce-state"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_eq!(
        redirected_error(&r, &fx.rp, "pkce-state", &issuer),
        "invalid_request",
        "confidential client, plain"
    );

    // S256: a login flow, a code, tokens for client_id + code_verifier.
    let mut b = fx.browser();
    let url = raw_authorize(
        &fx.server,
        &public,
        &[
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "pkce-state"),
            ("nonce", "pkce-nonce"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let flow = b.start_flow(&url).await;
    assert_eq!(flow["client_name"], "Public app", "{flow}");
    let redirect_to = finish_login(&mut b, &flow, &mut fx.device).await;
    let q = callback_params(&redirect_to, &public, "pkce-state", &issuer);
    let code = q.get("code").expect("code").clone();
    let r = post_form(
        &fx.server,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &public.client_id),
            ("code_verifier", verifier.secret()),
        ],
    )
    .await;
    r.expect_status(200);
    let t = r.json();
    assert!(t["access_token"].is_string(), "{t}");
    let id_token = t["id_token"].as_str().unwrap_or_else(|| panic!("{t}"));
    let claims = jwt_parts(id_token).1;
    assert_eq!(claims["aud"], public.client_id.as_str(), "{claims}");
    assert_eq!(claims["nonce"], "pkce-nonce", "{claims}");
    assert_eq!(claims["sub"], fx.sub.as_str(), "{claims}");
}

// ---------------------------------------------------------------------------------------
// 5. Error redirects and scopes
// ---------------------------------------------------------------------------------------

/// Errors after the client and redirect URI are verified go back to the client with
/// `error`, `error_description`, `state` and `iss`: `response_type=token` and
/// `code id_token` are `unsupported_response_type`, a missing one `invalid_request`, a
/// scope without `openid` `invalid_scope`. Unknown scopes are ignored (segl grants only
/// those it knows, as RFC 6749 3.3 allows), and the token response says which it granted.
async fn error_redirects_and_unknown_scopes(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("response_type", "token"), ("scope", "openid")],
            "unsupported_response_type",
        ),
        (
            &[("response_type", "code id_token"), ("scope", "openid")],
            "unsupported_response_type",
        ),
        (&[("scope", "openid")], "invalid_request"),
        (
            &[("response_type", "code"), ("scope", "profile foo")],
            "invalid_scope",
        ),
        (&[("response_type", "code")], "invalid_scope"),
    ];
    for (params, error) in cases {
        let mut all = params.to_vec();
        all.push(("state", "err state/ü"));
        let r = b.get(&raw_authorize(&fx.server, &fx.rp, &all)).await;
        assert_eq!(
            redirected_error(&r, &fx.rp, "err state/ü", &issuer),
            error,
            "{params:?}"
        );
    }
    // Without state: still iss, and no state invented.
    let r = b
        .get(&raw_authorize(
            &fx.server,
            &fx.rp,
            &[("response_type", "token"), ("scope", "openid")],
        ))
        .await;
    r.expect_status(303);
    let loc = Url::parse(&r.location().expect("Location")).unwrap();
    let q: BTreeMap<String, String> = loc.query_pairs().into_owned().collect();
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("unsupported_response_type")
    );
    assert_eq!(q.get("iss"), Some(&issuer), "{loc}");
    assert!(!q.contains_key("state"), "{loc}");
    assert!(!b.cookies.contains_key(FLOW_COOKIE), "no flow for an error");

    // Unknown scopes: ignored, the flow starts, only known scopes are granted.
    let start = authorize(&client, &["profile", "foo", "urn:example:bar"], &[]);
    let (tokens, claims) =
        login_and_exchange(&mut b, &mut fx.device, &client, &fx.rp, &issuer, start).await;
    let granted: BTreeSet<String> = tokens
        .scopes()
        .expect("the token response names the granted scopes")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from(["openid".to_string(), "profile".to_string()]),
        "unknown scopes are not granted"
    );
    assert_eq!(claims["name"], NAME, "{claims}");
}

// ---------------------------------------------------------------------------------------
// 6. The remembered method
// ---------------------------------------------------------------------------------------

/// After a login in a browser, its next login skips the method choice (the remembered
/// method); the page's "choose another method" form brings the choice back, and the
/// login goes on from there. Another browser is asked.
async fn remembered_method_and_choose_another(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();

    // First login: identify, then the choice.
    let start = authorize(&client, &[], &[]);
    let flow = b.start_flow(start.url.as_str()).await;
    let r = b.step(&flow, "identify", json!({ "nin": NIN })).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["state"], "choose_method", "no method remembered yet: {v}");
    let r = b.step(&v, "method", json!({ "method": "otp" })).await;
    r.expect_status(200);
    assert_eq!(
        b.cookies.get(METHOD_COOKIE).map(String::as_str),
        Some("otp"),
        "the choice is remembered in {METHOD_COOKIE}: {:?}",
        b.cookies
    );
    let v = b.otp_ok(&r.json(), &fx.device.next_code()).await;
    let done = b.password_ok(&v, PASSWORD).await;
    code_from(
        done["redirect_to"].as_str().unwrap(),
        &fx.rp,
        &start,
        &issuer,
    );

    // Second login (prompt=login, so not single sign-on): identify goes straight to otp.
    let start = authorize(&client, &[], &[("prompt", "login")]);
    let flow = b.start_flow(start.url.as_str()).await;
    let id = flow_id(&flow);
    let r = b.step(&flow, "identify", json!({ "nin": NIN })).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(
        v["state"], "otp",
        "the remembered method skips the choice: {v}"
    );
    assert_eq!(v["method"], "otp", "{v}");
    let page = b.get(&format!("/login?flow={id}")).await;
    page.expect_status(200);
    let action = format!("action=\"/login/{id}/choose-another\"");
    assert!(
        page.body.contains(&action) && page.body.contains("id=\"choose-another\""),
        "the code page offers choose-another: {}",
        page.body
    );

    // "Choose another method": back to the choice.
    let csrf = flow["csrf_token"].as_str().unwrap().to_string();
    let r = browser_form(
        &mut b,
        &format!("/login/{id}/choose-another"),
        &[("csrf_token", &csrf)],
    )
    .await;
    r.expect_status(303);
    assert_eq!(
        r.location().as_deref(),
        Some(format!("/login?flow={id}").as_str())
    );
    let v = b.flow(&id).await;
    assert_eq!(v["state"], "choose_method", "choose-another: {v}");
    let page = b.get(&format!("/login?flow={id}")).await;
    assert!(
        page.body.contains("name=\"method\" value=\"otp\""),
        "the choice is shown again: {}",
        page.body
    );
    // Without the CSRF token the form is refused and the flow stays where it is.
    let r = b.step(&v, "method", json!({ "method": "otp" })).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["state"], "otp", "{v}");
    let r = browser_form(&mut b, &format!("/login/{id}/choose-another"), &[]).await;
    r.expect_status(403);
    assert_eq!(b.flow(&id).await["state"], "otp");
    // And on to the end.
    let v = b.otp_ok(&v, &fx.device.next_code()).await;
    let done = b.password_ok(&v, PASSWORD).await;
    let code = code_from(
        done["redirect_to"].as_str().unwrap(),
        &fx.rp,
        &start,
        &issuer,
    );
    exchange(&client, code, start.verifier).await;

    // A browser without the cookie is asked.
    let mut other = fx.browser();
    let start = authorize(&client, &[], &[]);
    let flow = other.start_flow(start.url.as_str()).await;
    let r = other.step(&flow, "identify", json!({ "nin": NIN })).await;
    r.expect_status(200);
    assert_eq!(r.json()["state"], "choose_method");
}

// ---------------------------------------------------------------------------------------
// 7. Shutdown and logs
// ---------------------------------------------------------------------------------------

/// SIGTERM stops `segl serve` gracefully: exit status 0 within a few seconds and
/// "segl stopped" in its log, in text and in JSON log format; an idle keep-alive
/// connection does not hold the shutdown up.
async fn sigterm_shuts_down_gracefully(backend: Backend) {
    let segl = Segl::new(backend);
    for format in ["text", "json"] {
        let mut server = Server::start(&segl, &["--log-format", format]);
        // A keep-alive connection that has served a request and sits idle.
        let http = no_redirect_client();
        let r = http
            .get(format!(
                "{}/.well-known/openid-configuration",
                server.base_url
            ))
            .send()
            .await
            .expect("discovery");
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.bytes().await;
        let status = server.terminate(Duration::from_secs(10));
        assert!(
            status.success(),
            "{format}: segl serve exited with {status} after SIGTERM; stderr:\n{}",
            server.stderr()
        );
        let log = server.stderr();
        assert!(
            log.contains("segl stopped"),
            "{format}: the log does not say it stopped:\n{log}"
        );
        if format == "json" {
            let last = log
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .expect("log lines");
            let v: Value = serde_json::from_str(last)
                .unwrap_or_else(|e| panic!("last log line is not JSON ({e}): {last}"));
            assert_eq!(v["fields"]["message"], "segl stopped", "{v}");
        }
        // Nothing listens any more.
        assert!(
            http.get(format!("{}/healthz", server.base_url))
                .send()
                .await
                .is_err(),
            "{format}: still answering after shutdown"
        );
    }
}

/// Every string and number in a JSON value, skipping `timestamp` fields (whose digits
/// could match a six-digit code by chance).
fn json_leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| json_leaves(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                if k != "timestamp" {
                    json_leaves(x, out);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// With `--log-format json` every line segl writes to stderr is a JSON object; after a
/// login (code and password typed, one wrong code too), a code exchange, userinfo and a
/// refresh, the log holds neither the password, the codes, the national identity number,
/// the authorization code nor the access and refresh tokens.
async fn json_logs_are_json_and_leak_no_secrets(backend: Backend) {
    let mut fx = Fixture::new(backend, &["--log-format", "json"]);
    let issuer = fx.server.issuer();
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b = fx.browser();
    let start = authorize(&client, &["profile", "nin", "offline_access"], &[]);
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let wrong = fx.device.wrong_code();
    let r = b.step(&flow, "otp", json!({ "otp": wrong })).await;
    assert_problem(&r, 401, "wrong_otp");
    let otp = fx.device.next_code();
    let flow = b.otp_ok(&flow, &otp).await;
    let r = b
        .step(
            &flow,
            "password",
            json!({ "password": "Not-The-Password-42" }),
        )
        .await;
    assert_problem(&r, 401, "wrong_password");
    let done = b.password_ok(&flow, PASSWORD).await;
    let redirect_to = done["redirect_to"].as_str().unwrap().to_string();
    let code = code_from(&redirect_to, &fx.rp, &start, &issuer);
    let code_value = code.secret().clone();
    let tokens = exchange(&client, code, start.verifier).await;
    let access = tokens.access_token().secret().clone();
    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token")
        .secret()
        .clone();
    let id_token = tokens.id_token().expect("ID token").to_string();
    let claims = verified_claims(&client, &id_token, &start.nonce);
    assert_eq!(claims["nin"], NIN, "{claims}");
    userinfo_raw(&fx.server, &access).await.expect_status(200);
    let r = token_raw(
        &fx.server,
        &fx.rp,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    r.expect_status(200);
    let refreshed = r.json();
    let access2 = refreshed["access_token"].as_str().unwrap().to_string();
    let refresh2 = refreshed["refresh_token"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    // A failing request too, so that an error is logged.
    let r = token_raw(
        &fx.server,
        &fx.rp,
        &[("grant_type", "refresh_token"), ("refresh_token", "bogus")],
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.body);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = fx.server.stderr();
    let mut lines = 0;
    let mut leaves = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}\nlog:\n{log}"));
        assert!(v.is_object(), "a log line is not a JSON object: {line}");
        json_leaves(&v, &mut leaves);
        lines += 1;
    }
    assert!(lines >= 1, "no log lines at all:\n{log}");
    assert!(
        leaves.iter().any(|l| l == "segl started"),
        "the start is logged:\n{log}"
    );
    let mut secrets = vec![
        ("password", PASSWORD.to_string()),
        ("wrong password", "Not-The-Password-42".to_string()),
        ("one-time code", otp),
        ("wrong one-time code", wrong),
        ("national identity number", NIN.to_string()),
        ("authorization code", code_value),
        ("access token", access),
        ("refresh token", refresh),
        ("refreshed access token", access2),
    ];
    if !refresh2.is_empty() {
        secrets.push(("refreshed refresh token", refresh2));
    }
    for (what, secret) in &secrets {
        assert!(
            !leaves.iter().any(|l| l.contains(secret.as_str())),
            "the log contains the {what} ({secret}):\n{log}"
        );
    }
    // And not anywhere outside timestamps either (the long secrets).
    for (what, secret) in secrets.iter().filter(|(_, s)| s.len() > 8) {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains the {what}:\n{log}"
        );
    }
}
