//! The OpenID Connect provider: discovery, authorize, PAR (RFC 9126), token, userinfo,
//! JWKS and RP-initiated logout.
//!
//! Until the client and its redirect URI are verified, errors are shown as a page and never
//! redirected; after that they go back to the client with `state` and `iss` (RFC 9207).

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use data_encoding::BASE64;
use segl_core::flow::LoginFlow;
use segl_core::nin::Nin;
use segl_core::oidc::{self, AuthRequest, Grant, Prompt};
use segl_crypto::jose::JwsAlg;
use segl_crypto::random::{ct_eq, pkce_s256_matches, random_token, sha256, sha256_b64url};
use segl_store::audit::{self, Event, OwnedEvent};
use segl_store::clients::{self, AuthMethod, Client};
use segl_store::grants::{self, Decide, Decision, Kind, NewTokens, Redeemed, Session, TokenRow};
use segl_store::{flows, persons};
use serde_json::{Value, json};
use url::Url;

use crate::error::{OAuthError, log_fault};
use crate::{AppState, pages};

/// Cookie naming the browser, to which flows are bound.
pub const BROWSER_COOKIE: &str = "segl_flow";
/// Cookie of the single sign-on session.
pub const SESSION_COOKIE: &str = "segl_sid";
/// Prefix of PAR request URIs.
pub const PAR_URN: &str = "urn:ietf:params:oauth:request_uri:";
/// Scopes segl understands; others are ignored, as OAuth allows.
const SCOPES: [&str; 4] = ["openid", "profile", "nin", "offline_access"];

/// The OIDC routes.
pub fn routes() -> Router<AppState> {
    // Browser-based clients (public clients with PKCE) call these from their own origin;
    // none of them uses cookies, so any origin may read them.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    let api = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth2/jwks", get(jwks))
        .route("/oauth2/token", post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo_post))
        .layer(cors);
    Router::new()
        .merge(api)
        .route("/oauth2/authorize", get(authorize_get).post(authorize_post))
        .route("/oauth2/par", post(par))
        .route("/oauth2/logout", get(logout_get).post(logout_post))
}

async fn discovery(State(st): State<AppState>) -> Response {
    let iss = &st.settings.issuer;
    let body = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "pushed_authorization_request_endpoint": format!("{iss}/oauth2/par"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "end_session_endpoint": format!("{iss}/oauth2/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "PS256"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "name", "given_name", "family_name", "birthdate", "nin"],
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": true,
        "authorization_response_iss_parameter_supported": true,
        "acr_values_supported": oidc::SUPPORTED_ACRS,
        "ui_locales_supported": ["nb", "nn", "en"],
        "claims_locales_supported": ["nb", "nn", "en"],
        "display_values_supported": ["page"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "require_pushed_authorization_requests": false,
        "frontchannel_logout_supported": false,
    });
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body)).into_response()
}

async fn jwks(State(st): State<AppState>) -> Response {
    (
        [
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::CONTENT_TYPE, "application/jwk-set+json"),
        ],
        st.keys.jwks().to_string(),
    )
        .into_response()
}

type Params = HashMap<String, String>;

/// A form body for the token and PAR endpoints whose rejections are OAuth errors.
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> axum::extract::FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<Params>::from_request(req, state).await {
            Ok(Form(p)) => Ok(OAuthForm(p)),
            Err(rej) => Err(OAuthError::new(
                "invalid_request",
                format!(
                    "the body must be application/x-www-form-urlencoded: {}",
                    rej.body_text()
                ),
            )),
        }
    }
}

async fn authorize_get(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    authorize(st, jar, headers, params).await
}

async fn authorize_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Response {
    authorize(st, jar, headers, params).await
}

/// An authorization error that may be redirected to the (verified) client.
struct Redirectable {
    redirect_uri: String,
    state: Option<String>,
    error: &'static str,
    description: String,
}

/// Errors before the redirect URI is trusted: a page, never a redirect.
struct PageErr {
    status: StatusCode,
    detail: String,
}

fn page_err(detail: impl Into<String>) -> PageErr {
    PageErr {
        status: StatusCode::BAD_REQUEST,
        detail: detail.into(),
    }
}

/// The client's parameters, resolved through PAR when `request_uri` is used.
async fn resolve_params(st: &AppState, mut params: Params) -> Result<Params, PageErr> {
    let Some(uri) = params.get("request_uri").cloned() else {
        return Ok(params);
    };
    if !uri.starts_with(PAR_URN) {
        // Only PAR request URIs are supported. Left in place, so that once the client and
        // its redirect URI are verified the client hears `request_uri_not_supported`.
        return Ok(params);
    }
    let now = st.now();
    let mut c = st.store.conn().await.map_err(server_page)?;
    let Some((client_id, stored)) = grants::take_par(&mut c, &sha256_b64url(uri.as_bytes()), now)
        .await
        .map_err(server_page)?
    else {
        return Err(page_err(
            "the pushed authorization request is unknown, used or expired",
        ));
    };
    if params.get("client_id").is_some_and(|c| c != &client_id) {
        return Err(page_err(
            "client_id does not match the pushed authorization request",
        ));
    }
    let stored: Params = serde_json::from_str(&stored).map_err(server_page)?;
    params.clear();
    params.extend(stored);
    params.insert("client_id".into(), client_id);
    Ok(params)
}

fn server_page(e: impl std::fmt::Display) -> PageErr {
    let id = log_fault(&e);
    PageErr {
        status: StatusCode::SERVICE_UNAVAILABLE,
        detail: format!("The server could not complete the request (error id {id})."),
    }
}

/// Checks the client and redirect URI; errors here are never redirected.
async fn verify_client(st: &AppState, params: &Params) -> Result<(Client, String), PageErr> {
    let client_id = params
        .get("client_id")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| page_err("client_id is missing"))?;
    let client = st
        .store
        .client(client_id)
        .await
        .map_err(server_page)?
        .ok_or_else(|| page_err("unknown client_id"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| page_err("redirect_uri is missing"))?;
    // Exact string match, as OAuth 2.1 and the BCP require: no prefix, no normalisation.
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(page_err("redirect_uri is not registered for this client"));
    }
    Ok((client, redirect_uri.clone()))
}

/// Validates everything after the client: the request as the flow will carry it.
fn validate_request(
    client: &Client,
    redirect_uri: &str,
    params: &Params,
) -> Result<AuthRequest, Redirectable> {
    let state = params.get("state").cloned();
    let err = |error: &'static str, description: &str| Redirectable {
        redirect_uri: redirect_uri.to_string(),
        state: state.clone(),
        error,
        description: description.to_string(),
    };
    if params.contains_key("request") {
        return Err(err(
            "request_not_supported",
            "request objects are not supported; use PAR",
        ));
    }
    if params.contains_key("request_uri") {
        return Err(err(
            "request_uri_not_supported",
            "request_uri is only supported with PAR",
        ));
    }
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => return Err(err("invalid_request", "response_type is missing")),
        Some(_) => {
            return Err(err(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if let Some(mode) = params.get("response_mode")
        && mode != "query"
    {
        return Err(err(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in params
        .get("scope")
        .map(String::as_str)
        .unwrap_or("")
        .split(' ')
    {
        if SCOPES.contains(&s) && !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_string());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(err("invalid_scope", "the scope must include openid"));
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Some(c), m) => {
            if m.map(String::as_str).unwrap_or("plain") != "S256" {
                return Err(err("invalid_request", "code_challenge_method must be S256"));
            }
            if c.len() != 43
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(err(
                    "invalid_request",
                    "code_challenge is not a base64url SHA-256",
                ));
            }
            Some(c.clone())
        }
        (None, Some(_)) => {
            return Err(err(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if client.is_public() => {
            return Err(err(
                "invalid_request",
                "PKCE (code_challenge with S256) is required for public clients",
            ));
        }
        (None, None) => None,
    };
    let mut prompt = Vec::new();
    for p in params
        .get("prompt")
        .map(String::as_str)
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
    {
        prompt
            .push(Prompt::parse(p).ok_or_else(|| err("invalid_request", "unknown prompt value"))?);
    }
    if prompt.contains(&Prompt::None) && prompt.len() > 1 {
        return Err(err(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| err("invalid_request", "max_age must be a non-negative integer"))?,
        ),
    };
    let (id_token_claims, userinfo_claims, claims_acr) = match params.get("claims") {
        None => (Vec::new(), Vec::new(), None),
        Some(c) => {
            let c = parse_claims(c).ok_or_else(|| {
                err(
                    "invalid_request",
                    "claims is not a valid claims request object",
                )
            })?;
            (c.id_token, c.userinfo, c.acr)
        }
    };
    // The level to reach. `acr_values` (OIDC Core 3.1.2.1) and an `acr` claim requested
    // with `value`/`values` (5.5.1.1) each list the levels the client accepts; each list
    // means its strongest supported level, and a list of only unknown levels means high.
    // Both present: the stricter of the two. The spec calls `acr_values` and a
    // non-essential `acr` claim voluntary; segl enforces them all, essential or not: a
    // session below the level is not reused, and a login that cannot reach it fails
    // rather than silently downgrading. Asked for nothing: substantial, the lowest level
    // segl offers.
    let acr = [
        params.get("acr_values").map(|v| required_acr(v.split(' '))),
        claims_acr
            .as_ref()
            .map(|v| required_acr(v.iter().map(String::as_str))),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|a| oidc::acr_rank(a))
    .unwrap_or(oidc::ACR_SUBSTANTIAL)
    .to_string();
    let login_hint = params
        .get("login_hint")
        .and_then(|h| Nin::parse(h).ok())
        .map(|n| n.as_str().to_string());
    let ui_locales = params
        .get("ui_locales")
        .map(|l| {
            l.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(AuthRequest {
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri: redirect_uri.to_string(),
        scopes,
        state,
        nonce: params.get("nonce").cloned(),
        code_challenge,
        prompt,
        max_age,
        acr,
        login_hint,
        ui_locales,
        id_token_claims,
        userinfo_claims,
    })
}

/// The level a list of accepted `acr` values asks for: the strongest supported one; a
/// list with none segl supports means high, so an unknown level is never met by less.
fn required_acr<'a>(asked: impl Iterator<Item = &'a str>) -> &'static str {
    asked
        .filter_map(|a| oidc::SUPPORTED_ACRS.iter().find(|s| **s == a))
        .max_by_key(|a| oidc::acr_rank(a))
        .copied()
        .unwrap_or(oidc::ACR_HIGH)
}

/// The `claims` request parameter (OIDC Core 5.5), as far as segl acts on it.
struct ClaimsRequest {
    /// Claim names asked for the ID token.
    id_token: Vec<String>,
    /// Claim names asked for userinfo.
    userinfo: Vec<String>,
    /// The `acr` values asked for with `value` or `values` (5.5.1.1), from either
    /// member; `None` when no level was named.
    acr: Option<Vec<String>>,
}

fn parse_claims(raw: &str) -> Option<ClaimsRequest> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let obj = v.as_object()?;
    let member = |k: &str| -> Option<Option<&serde_json::Map<String, Value>>> {
        match obj.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(m)) => Some(Some(m)),
            Some(_) => None,
        }
    };
    let (id_token, userinfo) = (member("id_token")?, member("userinfo")?);
    let mut acr: Option<Vec<String>> = None;
    for m in [id_token, userinfo].into_iter().flatten() {
        if let Some(asked) = acr_request(m.get("acr"))? {
            acr.get_or_insert_with(Vec::new).extend(asked);
        }
    }
    let names = |m: Option<&serde_json::Map<String, Value>>| {
        m.map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    Some(ClaimsRequest {
        id_token: names(id_token),
        userinfo: names(userinfo),
        acr,
    })
}

/// One member's request for `acr` (OIDC Core 5.5.1): `None` if malformed, `Some(None)` if
/// it names no level (absent, `null`, or only `essential`), else the values named.
fn acr_request(req: Option<&Value>) -> Option<Option<Vec<String>>> {
    let m = match req {
        None | Some(Value::Null) => return Some(None),
        Some(Value::Object(m)) => m,
        Some(_) => return None,
    };
    if m.get("essential").is_some_and(|e| !e.is_boolean()) {
        return None;
    }
    let mut asked = Vec::new();
    match m.get("value") {
        None => {}
        Some(Value::String(s)) => asked.push(s.clone()),
        Some(_) => return None,
    }
    match m.get("values") {
        None => {}
        Some(Value::Array(a)) => {
            for v in a {
                asked.push(v.as_str()?.to_string());
            }
        }
        Some(_) => return None,
    }
    if m.contains_key("value") || m.contains_key("values") {
        Some(Some(asked))
    } else {
        Some(None)
    }
}

fn redirect_error(st: &AppState, e: Redirectable) -> Response {
    let mut url = match Url::parse(&e.redirect_uri) {
        Ok(u) => u,
        Err(_) => return pages::error_page(StatusCode::BAD_REQUEST, "invalid redirect_uri", &[]),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", e.error);
        q.append_pair("error_description", &e.description);
        if let Some(s) = &e.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &st.settings.issuer);
    }
    Redirect::to(url.as_str()).into_response()
}

async fn authorize(st: AppState, jar: CookieJar, headers: HeaderMap, params: Params) -> Response {
    let langs = pages::langs_from(params.get("ui_locales").map(String::as_str), &headers);
    let params = match resolve_params(&st, params).await {
        Ok(p) => p,
        Err(e) => return pages::error_page(e.status, &e.detail, &langs),
    };
    let (client, redirect_uri) = match verify_client(&st, &params).await {
        Ok(v) => v,
        Err(e) => return pages::error_page(e.status, &e.detail, &langs),
    };
    let req = match validate_request(&client, &redirect_uri, &params) {
        Ok(r) => r,
        Err(e) => return redirect_error(&st, e),
    };
    let hinted = match hinted_sub(&st, &client, &params) {
        Ok(h) => h,
        Err(description) => {
            return redirect_error(
                &st,
                Redirectable {
                    redirect_uri,
                    state: req.state,
                    error: "invalid_request",
                    description: description.into(),
                },
            );
        }
    };
    match start_or_resume(&st, &jar, req, hinted.as_deref()).await {
        Ok(resp) => resp,
        Err(e) => redirect_error(&st, e),
    }
}

/// An ID token segl issued, presented back as `id_token_hint` (authorize and logout).
struct IdTokenHint {
    /// The person it names.
    sub: String,
    /// The client it was issued to.
    aud: String,
}

/// Verifies an `id_token_hint`: segl's own signature with a key of its JWKS, segl's `iss`,
/// a `sub` and an `aud`. An expired token is fine: a hint names a person and grants nothing
/// (OIDC Core 3.1.2.1, RP-Initiated Logout 1.0 section 2). `None` for anything else.
fn verify_id_token_hint(st: &AppState, token: &str) -> Option<IdTokenHint> {
    let claims = st.keys.verify_own(token, true).ok()?;
    if claims.get("iss").and_then(Value::as_str) != Some(st.settings.issuer.as_str()) {
        return None;
    }
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    Some(IdTokenHint {
        sub: text("sub")?,
        aud: text("aud")?,
    })
}

/// The `sub` of the request's `id_token_hint`, if it has one: a verified ID token of segl
/// issued to this client, or the reason it is refused (`invalid_request`).
fn hinted_sub(
    st: &AppState,
    client: &Client,
    params: &Params,
) -> Result<Option<String>, &'static str> {
    let Some(token) = params.get("id_token_hint") else {
        return Ok(None);
    };
    let hint = verify_id_token_hint(st, token)
        .ok_or("id_token_hint is not a valid ID token from this provider")?;
    if hint.aud != client.client_id {
        return Err("id_token_hint was issued to another client");
    }
    Ok(Some(hint.sub))
}

/// With a live session that satisfies `prompt`, `max_age`, the level asked for and the
/// hints, answers at once; otherwise starts a login flow bound to this browser. `hinted` is
/// the `sub` of a verified `id_token_hint`.
async fn start_or_resume(
    st: &AppState,
    jar: &CookieJar,
    req: AuthRequest,
    hinted: Option<&str>,
) -> Result<Response, Redirectable> {
    let now = st.now();
    let fail = |error: &'static str, description: String| Redirectable {
        redirect_uri: req.redirect_uri.clone(),
        state: req.state.clone(),
        error,
        description,
    };
    let server = |e: segl_store::StoreError| {
        let id = log_fault(&e);
        fail("temporarily_unavailable", format!("error id {id}"))
    };
    let session = match jar.get(SESSION_COOKIE) {
        Some(c) => {
            let mut conn = st.store.read().await.map_err(server)?;
            grants::session(&mut conn, &sha256_b64url(c.value().as_bytes()), now)
                .await
                .map_err(server)?
        }
        None => None,
    };
    let session = session.filter(|s| {
        oidc::within_max_age(s.auth_time, req.max_age, now)
            && oidc::acr_rank(&s.acr) >= oidc::acr_rank(&req.acr)
    });
    // A login_hint or an id_token_hint (OIDC Core 3.1.2.1) naming someone else than the
    // session's person needs a fresh login; with prompt=none, that is login_required.
    let mut other_person = false;
    let session = match session {
        Some(s) if req.login_hint.is_some() || hinted.is_some() => {
            let mut conn = st.store.read().await.map_err(server)?;
            let p = persons::by_id(&mut conn, &s.person_id)
                .await
                .map_err(server)?;
            let same = p.is_some_and(|p| {
                req.login_hint.as_ref().is_none_or(|h| &p.nin == h)
                    && hinted.is_none_or(|h| p.sub == h)
            });
            other_person = !same;
            same.then_some(s)
        }
        s => s,
    };
    if let Some(s) = session.filter(|_| !req.prompt.contains(&Prompt::Login)) {
        let (code, url) =
            new_code(st, &req, &s.person_id, s.auth_time, &s.acr, &s.amr, now).map_err(server)?;
        let mut c = st.store.conn().await.map_err(server)?;
        grants::insert_code(&mut c, &code).await.map_err(server)?;
        st.metrics.sso_total.inc();
        return Ok(Redirect::to(&url).into_response());
    }
    if req.prompt.contains(&Prompt::None) {
        let why = if other_person {
            "another person than the one hinted at is logged in"
        } else {
            "the person is not logged in"
        };
        return Err(fail("login_required", why.into()));
    }
    let (browser, new_cookie) = match jar.get(BROWSER_COOKIE) {
        Some(c) if c.value().len() >= 32 => (c.value().to_string(), false),
        _ => (random_token(32), true),
    };
    let remembered = jar
        .get(pages::METHOD_COOKIE)
        .and_then(|c| segl_core::flow::Method::parse(c.value()));
    let policy = &st.settings.policy;
    let mut flow = match LoginFlow::new(
        req.clone(),
        remembered,
        now,
        policy.flow_ttl_secs,
        policy.flow_max_failures,
    ) {
        Ok(f) => f,
        Err(e) => return Err(fail("invalid_request", e.to_string())),
    };
    let id = random_token(18);
    let mut row = flows::FlowRow {
        id: id.clone(),
        kind: "login".into(),
        binding_hash: sha256_b64url(browser.as_bytes()),
        csrf: random_token(24),
        data: String::new(),
        version: 1,
        expires_at: flow.expires_at,
    };
    // A new flow is only progress (see flow::run_step): it need not wait for the disk.
    // A remembered app with a login_hint waits for the app at once: its request goes out
    // in the same transaction.
    let st2 = st.clone();
    let (row, pushed) = st
        .store
        .relaxed(move |mut tx| {
            Box::pin(async move {
                let mut pushed = None;
                if flow.needs_app_request() {
                    pushed = crate::app_login::open_request(&st2, &mut tx, &row.id, &mut flow, now)
                        .await?;
                }
                row.data = serde_json::to_string(&flow)
                    .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
                flows::insert(&mut tx, &row).await?;
                Ok::<_, crate::error::ApiError>((row, pushed))
            })
        })
        .await
        .map_err(|e| fail("temporarily_unavailable", e.parts().2))?;
    st.store.remember_flow(&row);
    if let Some(app_id) = pushed {
        st.push.publish(&crate::push::app_key(&app_id)).await;
    }
    st.metrics.flows_started.inc();
    let mut resp = Redirect::to(&format!("/login?flow={id}")).into_response();
    if new_cookie {
        let cookie = browser_cookie(st, browser);
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// The browser cookie: HttpOnly, SameSite=Lax (it must ride along the redirect from the
/// client), Secure on https.
pub fn browser_cookie(st: &AppState, value: String) -> Cookie<'static> {
    let mut c = Cookie::new(BROWSER_COOKIE, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(st.settings.cookie_secure);
    c.set_path("/");
    c
}

/// An authorization code for a finished login, to be stored, and the redirect URL with it.
pub fn new_code(
    st: &AppState,
    req: &AuthRequest,
    person_id: &str,
    auth_time: i64,
    acr: &str,
    amr: &[String],
    now: i64,
) -> Result<(TokenRow, String), segl_store::StoreError> {
    let grant = Grant {
        v: 1,
        grant_id: random_token(16),
        client_id: req.client_id.clone(),
        person_id: person_id.to_string(),
        scopes: req.scopes.clone(),
        nonce: req.nonce.clone(),
        auth_time,
        acr: acr.to_string(),
        amr: amr.to_vec(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        id_token_claims: req.id_token_claims.clone(),
        userinfo_claims: req.userinfo_claims.clone(),
    };
    let code = random_token(32);
    let data = serde_json::to_string(&grant)
        .map_err(|e| segl_store::StoreError::Corrupt(e.to_string()))?;
    let row = TokenRow {
        hash: sha256_b64url(code.as_bytes()),
        client_id: req.client_id.clone(),
        person_id: person_id.to_string(),
        grant_id: grant.grant_id.clone(),
        grant_data: data,
        expires_at: now + st.settings.policy.auth_code_ttl_secs,
    };
    let mut url = Url::parse(&req.redirect_uri)
        .map_err(|e| segl_store::StoreError::Corrupt(e.to_string()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &req.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &st.settings.issuer);
    }
    Ok((row, url.to_string()))
}

/// A single sign-on session, to be stored, and its cookie.
pub fn new_session(
    st: &AppState,
    person_id: &str,
    auth_time: i64,
    acr: &str,
    amr: &[String],
) -> (Session, Cookie<'static>) {
    let value = random_token(32);
    let session = Session {
        id_hash: sha256_b64url(value.as_bytes()),
        person_id: person_id.to_string(),
        auth_time,
        acr: acr.to_string(),
        amr: amr.to_vec(),
        expires_at: auth_time + st.settings.policy.session_ttl_secs,
    };
    let mut cookie = Cookie::new(SESSION_COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(st.settings.cookie_secure);
    cookie.set_path("/");
    (session, cookie)
}

// ---------------------------------------------------------------------------------------
// Client authentication (token and PAR endpoints)

/// HTTP Basic client credentials (RFC 6749 2.3.1: both parts form-urlencoded), if the
/// request has an `Authorization: Basic` header.
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, &'static str> {
    let Some(b) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return Ok(None);
    };
    let malformed = "malformed Basic credentials";
    let raw = BASE64.decode(b.trim().as_bytes()).map_err(|_| malformed)?;
    let raw = String::from_utf8(raw).map_err(|_| malformed)?;
    let (id, secret) = raw.split_once(':').ok_or(malformed)?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((dec(id), dec(secret))))
}

async fn authenticate_client(
    st: &AppState,
    headers: &HeaderMap,
    form: &Params,
) -> Result<Client, OAuthError> {
    let invalid = |d: &str| OAuthError::new("invalid_client", d);
    let basic = basic_credentials(headers).map_err(invalid)?;
    let assertion = form.get("client_assertion");
    let (client_id, method) = match (&basic, form.get("client_secret"), assertion) {
        (Some((id, _)), None, None) => (id.clone(), AuthMethod::ClientSecretBasic),
        (None, Some(_), None) => (
            form.get("client_id")
                .cloned()
                .ok_or_else(|| invalid("client_id is missing"))?,
            AuthMethod::ClientSecretPost,
        ),
        (None, None, Some(jwt)) => {
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return Err(invalid("unsupported client_assertion_type"));
            }
            let id = match form.get("client_id") {
                Some(id) => id.clone(),
                None => {
                    unverified_jwt_sub(jwt).ok_or_else(|| invalid("client_assertion has no sub"))?
                }
            };
            (id, AuthMethod::PrivateKeyJwt)
        }
        (None, None, None) => (
            form.get("client_id")
                .cloned()
                .ok_or_else(|| invalid("client authentication is missing"))?,
            AuthMethod::None,
        ),
        _ => return Err(invalid("use exactly one client authentication method")),
    };
    if form.get("client_id").is_some_and(|id| id != &client_id) {
        return Err(invalid(
            "client_id does not match the client authentication",
        ));
    }
    let Some(client) = st.store.client(&client_id).await? else {
        return Err(invalid("unknown client"));
    };
    if client.auth_method != method {
        return Err(invalid(&format!(
            "this client must authenticate with {}",
            client.auth_method.as_str()
        )));
    }
    match method {
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
            let secret = match &basic {
                Some((_, s)) => s.clone(),
                None => form.get("client_secret").cloned().unwrap_or_default(),
            };
            let stored = client.secret_hash.clone().unwrap_or_default();
            if !ct_eq(
                sha256_b64url(secret.as_bytes()).as_bytes(),
                stored.as_bytes(),
            ) {
                return Err(invalid("wrong client secret"));
            }
        }
        AuthMethod::PrivateKeyJwt => {
            let jwt = assertion.map(String::as_str).unwrap_or_default();
            let jwks = client.jwks.clone().unwrap_or_else(|| json!({"keys": []}));
            let iss = &st.settings.issuer;
            let audiences = [
                iss.clone(),
                format!("{iss}/oauth2/token"),
                format!("{iss}/oauth2/par"),
            ];
            let now = st.now();
            let a = segl_crypto::jose::verify_client_assertion(
                jwt,
                &jwks,
                &client.client_id,
                &audiences,
                now,
            )
            .map_err(|e| invalid(&format!("client_assertion refused: {e}")))?;
            let key = format!("{}\u{1f}{}", client.client_id, a.jti);
            if !grants::use_jti(&mut *st.store.conn().await?, &key, a.exp).await? {
                return Err(invalid("client_assertion was used before (jti replay)"));
            }
        }
        AuthMethod::None => {}
    }
    Ok(client)
}

fn unverified_jwt_sub(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// PAR

async fn par(
    State(st): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate_client(&st, &headers, &form).await?;
    let mut params = form.clone();
    for k in [
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "client_id",
    ] {
        params.remove(k);
    }
    if params.contains_key("request_uri") {
        return Err(OAuthError::new(
            "invalid_request",
            "request_uri is not allowed in a pushed request",
        ));
    }
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::new("invalid_request", "redirect_uri is missing"))?;
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(OAuthError::new(
            "invalid_request",
            "redirect_uri is not registered for this client",
        ));
    }
    validate_request(&client, redirect_uri, &params)
        .map_err(|e| OAuthError::new(e.error, e.description))?;
    hinted_sub(&st, &client, &params).map_err(|d| OAuthError::new("invalid_request", d))?;
    let uri = format!("{PAR_URN}{}", random_token(24));
    let ttl = st.settings.policy.par_ttl_secs;
    let data = serde_json::to_string(&params)
        .map_err(|e| OAuthError::new("server_error", log_fault(&e)))?;
    let mut c = st.store.conn().await?;
    grants::insert_par(
        &mut c,
        &sha256_b64url(uri.as_bytes()),
        &client.client_id,
        &data,
        st.now() + ttl,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"request_uri": uri, "expires_in": ttl})),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Token endpoint

async fn token(
    State(st): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate_client(&st, &headers, &form).await?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is missing"))?;
    let body = match grant_type.as_str() {
        "authorization_code" => {
            let code = form
                .get("code")
                .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
            exchange_code(
                &st,
                &client,
                code,
                form.get("redirect_uri").map(String::as_str),
                form.get("code_verifier").map(String::as_str),
            )
            .await?
        }
        "refresh_token" => {
            let rt = form
                .get("refresh_token")
                .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
            refresh(&st, &client, rt, form.get("scope").map(String::as_str)).await?
        }
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "use authorization_code or refresh_token",
            ));
        }
    };
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}

/// Redeems an authorization code (also used by the demo relying party in-process).
pub async fn exchange_code(
    st: &AppState,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<Value, OAuthError> {
    let now = st.now();
    let issuer = Issuer::new(st, client);
    let redirect_uri = redirect_uri.map(str::to_owned);
    let verifier = verifier.map(str::to_owned);
    let decide: Decide<Result<Issued, OAuthError>> = Box::new(move |row, person| {
        // The code is spent whatever is wrong with the request, so a wrong verifier cannot
        // be retried.
        let refuse = |e: OAuthError| (Decision::Refuse { spend: true }, Err(e));
        // A code presented wrongly may have been intercepted: the refusal is audited
        // (`token.code_refused`, with the presenting client and the reason, never the code).
        let fail = |reason: &'static str, d: &str| {
            let event = OwnedEvent {
                event: "token.code_refused",
                subject: Some(row.person_id.clone()),
                client_id: Some(issuer.client.client_id.clone()),
                data: json!({"reason": reason}),
            };
            (
                Decision::Spend(Box::new(event)),
                Err(OAuthError::new("invalid_grant", d)),
            )
        };
        let grant: Grant = match serde_json::from_str(&row.grant_data) {
            Ok(g) => g,
            Err(e) => return refuse(OAuthError::new("server_error", log_fault(&e))),
        };
        if row.client_id != issuer.client.client_id {
            return fail("client", "the code was issued to another client");
        }
        if redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
            return fail(
                "redirect_uri",
                "redirect_uri does not match the authorization request",
            );
        }
        let pkce = match (&grant.code_challenge, verifier.as_deref()) {
            (Some(ch), Some(v)) if pkce_s256_matches(v, ch) => Ok(()),
            (Some(_), Some(_)) => Err("PKCE verification failed: code_verifier does not match"),
            (Some(_), None) => Err("code_verifier is missing"),
            (None, Some(_)) => Err("code_verifier given but no code_challenge was sent"),
            (None, None) => Ok(()),
        };
        if let Err(d) = pkce {
            return fail("pkce", d);
        }
        issuer.issue(&grant, person, true, now)
    });
    let hash = sha256_b64url(code.as_bytes());
    match st.store.redeem_grant(Kind::Code, hash, now, decide).await? {
        Redeemed::Fresh(issued) => issued?.sign(st),
        Redeemed::Reused => {
            // RFC 6749 4.1.2: a code used twice revokes what it issued (done by the store).
            st.metrics.code_reuse.inc();
            Err(OAuthError::new(
                "invalid_grant",
                "the authorization code was already used",
            ))
        }
        Redeemed::Invalid => Err(OAuthError::new(
            "invalid_grant",
            "unknown or expired authorization code",
        )),
    }
}

async fn refresh(
    st: &AppState,
    client: &Client,
    rt: &str,
    scope: Option<&str>,
) -> Result<Value, OAuthError> {
    let now = st.now();
    let issuer = Issuer::new(st, client);
    let scope = scope.map(str::to_owned);
    let decide: Decide<Result<Issued, OAuthError>> = Box::new(move |row, person| {
        // Refused here, the token stays valid for its rightful client.
        let refuse = |e: OAuthError| (Decision::Refuse { spend: false }, Err(e));
        if row.client_id != issuer.client.client_id {
            return refuse(OAuthError::new(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        let mut grant: Grant = match serde_json::from_str(&row.grant_data) {
            Ok(g) => g,
            Err(e) => return refuse(OAuthError::new("server_error", log_fault(&e))),
        };
        if let Some(scope) = &scope {
            let asked: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
            if asked.iter().any(|s| !grant.has_scope(s)) {
                return refuse(OAuthError::new(
                    "invalid_scope",
                    "a refresh may only narrow the scope",
                ));
            }
            grant.scopes.retain(|s| asked.contains(&s.as_str()));
        }
        // The nonce belongs to the first ID token only (OIDC Core 12.2).
        grant.nonce = None;
        issuer.issue(&grant, person, false, now)
    });
    let hash = sha256_b64url(rt.as_bytes());
    match st
        .store
        .redeem_grant(Kind::Refresh, hash, now, decide)
        .await?
    {
        Redeemed::Fresh(issued) => {
            let body = issued?.sign(st)?;
            st.metrics.refresh_total.inc();
            Ok(body)
        }
        Redeemed::Reused => {
            // A rotated token presented again means it was copied: the store revoked the
            // whole family.
            st.metrics.refresh_reuse.inc();
            Err(OAuthError::new(
                "invalid_grant",
                "the refresh token was already used; its family is revoked",
            ))
        }
        Redeemed::Invalid => Err(OAuthError::new(
            "invalid_grant",
            "unknown, revoked or expired refresh token",
        )),
    }
}

/// A token response whose tokens are stored, with its ID token still to sign.
struct Issued {
    body: Value,
    alg: JwsAlg,
    claims: Value,
}

impl Issued {
    /// Signs the ID token into the response. Done after the commit, so the transaction
    /// (and, on PostgreSQL, the audit chain's head row) is not held during the signature.
    fn sign(mut self, st: &AppState) -> Result<Value, OAuthError> {
        let id_token = st
            .keys
            .sign(self.alg, Some("JWT"), &self.claims)
            .map_err(|e| OAuthError::new("server_error", log_fault(&e)))?;
        self.body["id_token"] = json!(id_token);
        st.metrics.tokens_issued.inc();
        Ok(self.body)
    }
}

/// What issuing tokens needs from the server's state, owned, so a grant can be decided
/// inside the store's transaction (on SQLite, on its writer thread).
struct Issuer {
    issuer: String,
    client: Client,
    access_ttl: i64,
    refresh_ttl: i64,
    id_token_ttl: i64,
}

impl Issuer {
    fn new(st: &AppState, client: &Client) -> Issuer {
        let policy = &st.settings.policy;
        Issuer {
            issuer: st.settings.issuer.clone(),
            client: client.clone(),
            access_ttl: policy.access_token_ttl_secs,
            refresh_ttl: policy.refresh_token_ttl_secs,
            id_token_ttl: policy.id_token_ttl_secs,
        }
    }

    /// The access (and refresh) token of a grant, its audit event and the unsigned ID token.
    fn issue(
        &self,
        grant: &Grant,
        person: Option<&persons::Person>,
        first: bool,
        now: i64,
    ) -> (Decision, Result<Issued, OAuthError>) {
        let Some(person) = person else {
            return (
                Decision::Refuse { spend: false },
                Err(OAuthError::new(
                    "invalid_grant",
                    "the person no longer exists",
                )),
            );
        };
        let data = match serde_json::to_string(grant) {
            Ok(d) => d,
            Err(e) => {
                return (
                    Decision::Refuse { spend: false },
                    Err(OAuthError::new("server_error", log_fault(&e))),
                );
            }
        };
        let client_id = &self.client.client_id;
        let row = |hash: String, expires_at: i64| TokenRow {
            hash,
            client_id: client_id.clone(),
            person_id: person.id.clone(),
            grant_id: grant.grant_id.clone(),
            grant_data: data.clone(),
            expires_at,
        };
        let access = random_token(32);
        let access_row = row(sha256_b64url(access.as_bytes()), now + self.access_ttl);
        let refresh = grant.has_scope("offline_access").then(|| random_token(32));
        let refresh_row = refresh
            .as_ref()
            .map(|rt| row(sha256_b64url(rt.as_bytes()), now + self.refresh_ttl));
        let alg: JwsAlg = self.client.id_token_alg.parse().unwrap_or(JwsAlg::ES256);
        let mut claims = json!({
            "iss": self.issuer,
            "sub": person.sub,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.id_token_ttl,
            "auth_time": grant.auth_time,
            "acr": grant.acr,
            "amr": grant.amr,
            "at_hash": at_hash(&access),
        });
        if let Some(n) = &grant.nonce {
            claims["nonce"] = json!(n);
        }
        add_person_claims(&mut claims, person, grant, &grant.id_token_claims);
        let event = OwnedEvent {
            event: if first {
                "token.issued"
            } else {
                "token.refreshed"
            },
            subject: Some(person.id.clone()),
            client_id: Some(client_id.clone()),
            data: json!({"scopes": grant.scopes, "acr": grant.acr}),
        };
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "scope": grant.scopes.join(" "),
        });
        if let Some(rt) = refresh {
            body["refresh_token"] = json!(rt);
        }
        (
            Decision::Issue(Box::new(NewTokens {
                access: access_row,
                refresh: refresh_row,
                event,
            })),
            Ok(Issued { body, alg, claims }),
        )
    }
}

/// OIDC Core 3.1.3.6: left half of the SHA-256 of the access token (ES256 and RS256 both
/// use SHA-256).
fn at_hash(access: &str) -> String {
    let h = sha256(access.as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(&h[..16])
}

/// Adds the person's claims that the scopes or the `claims` parameter ask for. `nin` only
/// ever with the `nin` scope.
fn add_person_claims(claims: &mut Value, p: &persons::Person, grant: &Grant, requested: &[String]) {
    let wants = |name: &str| grant.has_scope("profile") || requested.iter().any(|r| r == name);
    if wants("name") {
        claims["name"] = json!(p.name);
    }
    if wants("given_name") {
        claims["given_name"] = json!(p.given_name());
    }
    if wants("family_name") {
        claims["family_name"] = json!(p.family_name());
    }
    if wants("birthdate") {
        claims["birthdate"] = json!(p.birthdate);
    }
    if grant.has_scope("nin") {
        claims["nin"] = json!(p.nin);
    }
}

// ---------------------------------------------------------------------------------------
// Userinfo

async fn userinfo(State(st): State<AppState>, headers: HeaderMap) -> Response {
    userinfo_for(&st, bearer(&headers)).await
}

async fn userinfo_post(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let from_body = serde_urlencoded::from_bytes::<Params>(&body)
        .ok()
        .and_then(|p| p.get("access_token").cloned());
    userinfo_for(&st, bearer(&headers).or(from_body)).await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
}

fn invalid_token(desc: &str) -> Response {
    let www = format!("Bearer error=\"invalid_token\", error_description=\"{desc}\"");
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "invalid_token", "error_description": desc})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&www) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

async fn userinfo_for(st: &AppState, token: Option<String>) -> Response {
    let Some(token) = token else {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token", "error_description": "no access token"})),
        )
            .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    };
    let now = st.now();
    let result = async {
        let mut c = st.store.read().await?;
        let Some(row) = grants::access(&mut c, &sha256_b64url(token.as_bytes()), now).await? else {
            return Ok(None);
        };
        let p = persons::by_id(&mut c, &row.person_id).await?;
        Ok::<_, segl_store::StoreError>(p.map(|p| (row, p)))
    }
    .await;
    match result {
        Ok(Some((row, p))) => {
            let Ok(grant) = serde_json::from_str::<Grant>(&row.grant_data) else {
                return invalid_token("unreadable grant");
            };
            let mut claims = json!({"sub": p.sub});
            add_person_claims(&mut claims, &p, &grant, &grant.userinfo_claims);
            ([(header::CACHE_CONTROL, "no-store")], Json(claims)).into_response()
        }
        Ok(None) => invalid_token("the access token is unknown, expired or revoked"),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// RP-initiated logout

async fn logout_get(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    logout(st, jar, headers, p).await
}

async fn logout_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(p): Form<Params>,
) -> Response {
    logout(st, jar, headers, p).await
}

async fn logout(st: AppState, jar: CookieJar, headers: HeaderMap, p: Params) -> Response {
    let langs = pages::langs_from(p.get("ui_locales").map(String::as_str), &headers);
    let hint_aud = match p.get("id_token_hint") {
        Some(t) => match verify_id_token_hint(&st, t) {
            Some(hint) => Some(hint.aud),
            None => {
                return pages::error_page(
                    StatusCode::BAD_REQUEST,
                    "id_token_hint is not a valid ID token from this provider",
                    &langs,
                );
            }
        },
        None => None,
    };
    let client_id = p.get("client_id").cloned().or(hint_aud.clone());
    if let (Some(a), Some(c)) = (&hint_aud, p.get("client_id"))
        && a != c
    {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "client_id does not match id_token_hint",
            &langs,
        );
    }
    let mut redirect = None;
    if let Some(uri) = p.get("post_logout_redirect_uri") {
        let Some(cid) = &client_id else {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "post_logout_redirect_uri needs id_token_hint or client_id",
                &langs,
            );
        };
        let client = match st.store.conn().await {
            Ok(mut c) => clients::by_id(&mut c, cid).await,
            Err(e) => Err(e),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => return logout_unavailable(&e, &langs),
        };
        match client {
            Some(cl) if cl.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                let mut url = match Url::parse(uri) {
                    Ok(u) => u,
                    Err(_) => {
                        return pages::error_page(
                            StatusCode::BAD_REQUEST,
                            "invalid post_logout_redirect_uri",
                            &langs,
                        );
                    }
                };
                if let Some(s) = p.get("state") {
                    url.query_pairs_mut().append_pair("state", s);
                }
                redirect = Some(url.to_string());
            }
            _ => {
                return pages::error_page(
                    StatusCode::BAD_REQUEST,
                    "post_logout_redirect_uri is not registered for this client",
                    &langs,
                );
            }
        }
    }
    let now = st.now();
    let mut jar = jar;
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let hash = sha256_b64url(c.value().as_bytes());
        if let Err(e) = end_session(&st, &hash, client_id.as_deref(), now).await {
            // Nothing changed: the session lives on and the browser keeps its cookie.
            return logout_unavailable(&e, &langs);
        }
        jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    }
    match redirect {
        Some(url) => (jar, Redirect::to(&url)).into_response(),
        None => (jar, pages::logged_out_page(&langs)).into_response(),
    }
}

/// Ends the session whose cookie hashes to `hash`, with its `session.logout` audit event in
/// the same transaction: both or neither. A session that is unknown, expired or already
/// ended is no error (logging out twice is fine) and records nothing.
async fn end_session(
    st: &AppState,
    hash: &str,
    client_id: Option<&str>,
    now: i64,
) -> Result<(), segl_store::StoreError> {
    let mut tx = st.store.begin().await?;
    let ended = async {
        let person = grants::session(&mut tx, hash, now)
            .await?
            .map(|s| s.person_id);
        if grants::end_session(&mut tx, hash).await? {
            audit::append(
                &mut tx,
                &Event {
                    event: "session.logout",
                    subject: person.as_deref(),
                    client_id,
                    data: json!({}),
                },
                now,
            )
            .await?;
        }
        Ok::<_, segl_store::StoreError>(())
    }
    .await;
    match ended {
        Ok(()) => tx.commit().await.map_err(segl_store::StoreError::from),
        Err(e) => {
            // Dropping the transaction rolls back too; saying so frees the connection now.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// A logout the store could not record: 503 with Retry-After, so the person (or client)
/// tries again, rather than a "logged out" page over a session that still lives.
fn logout_unavailable(e: &segl_store::StoreError, langs: &[String]) -> Response {
    let id = log_fault(e);
    let mut resp = pages::error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!(
            "Logging out could not be completed and you are still logged in. Please try again \
             in a moment (error id {id})."
        ),
        langs,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}
