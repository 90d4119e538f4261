//! The demo relying party at `/demo`, served only with `--demo`. It is a real confidential
//! client of this provider (state, nonce, PKCE, code exchange, ID token verified against our
//! own keys); it shows the demo people and their code devices' next codes so a newcomer can
//! log in within a minute.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use segl_crypto::otp::{self, OtpAlgorithm};
use segl_crypto::password::PasswordHasher;
use segl_crypto::pskc::{PskcToken, TokenKind};
use segl_crypto::random::{random_bytes, random_token, sha256_b64url};
use segl_store::clients::{self, AuthMethod, Client};
use segl_store::persons::{self, Person};
use segl_store::{Store, StoreError, devices};
use std::collections::HashMap;
use url::Url;

use crate::AppState;

/// The demo client's id.
pub const DEMO_CLIENT_ID: &str = "segl-demo";
const RP_COOKIE: &str = "segl_demo_rp";

/// A demo person as the demo page shows them.
#[derive(Clone, Debug)]
pub struct DemoPerson {
    /// National identity number (fictitious).
    pub nin: String,
    /// Name.
    pub name: String,
    /// Password (shown on the demo page).
    pub password: String,
    /// Serial of their code device.
    pub serial: String,
}

/// The demo relying party's own state. It redeems codes in-process, so its client secret
/// is random and never leaves the database (as a hash).
pub struct Demo {
    /// The people.
    pub people: Vec<DemoPerson>,
}

fn demo_people() -> Vec<DemoPerson> {
    // Fictitious numbers that pass both check digits.
    [
        (
            "15058500027",
            "Kari Nordmann",
            "demo-Kari-segl-1985",
            "DEMO-0001",
        ),
        (
            "01010050053",
            "Ola Nordmann",
            "demo-Ola-segl-2000",
            "DEMO-0002",
        ),
        (
            "55058500010",
            "Ingrid Hansen",
            "demo-Ingrid-segl-85",
            "DEMO-0003",
        ),
    ]
    .into_iter()
    .map(|(nin, name, password, serial)| DemoPerson {
        nin: nin.into(),
        name: name.into(),
        password: password.into(),
        serial: serial.into(),
    })
    .collect()
}

/// Seeds the demo people, their code devices and the demo client (idempotent), and
/// points the client at `issuer`. Returns the demo's state.
pub async fn seed(
    store: &Store,
    hasher: &PasswordHasher,
    issuer: &str,
    now: i64,
) -> Result<Demo, StoreError> {
    let people = demo_people();
    let mut tx = store.begin().await?;
    for p in &people {
        let nin =
            segl_core::nin::Nin::parse(&p.nin).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let person = match persons::by_nin(&mut tx, &p.nin).await? {
            Some(existing) => existing,
            None => {
                let person = Person {
                    id: uuid::Uuid::new_v4().to_string(),
                    sub: uuid::Uuid::new_v4().to_string(),
                    nin: p.nin.clone(),
                    name: p.name.clone(),
                    birthdate: nin.birth_date().to_string(),
                    phone: None,
                    email: None,
                    created_at: now,
                };
                persons::insert(&mut tx, &person).await?;
                let phc = hasher
                    .hash(&p.password)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                persons::set_password(&mut tx, &person.id, &phc, now).await?;
                person
            }
        };
        if devices::by_serial(&mut tx, &p.serial).await?.is_none() {
            let token = PskcToken {
                serial: p.serial.clone(),
                manufacturer: Some("segl demo".into()),
                key_id: p.serial.clone(),
                kind: TokenKind::Hotp { counter: 0 },
                algorithm: OtpAlgorithm::Sha1,
                digits: 6,
                secret: zeroize::Zeroizing::new(random_bytes::<20>().to_vec()),
            };
            devices::import(&mut tx, store, &token, now).await?;
            devices::assign(&mut tx, &p.serial, &person.id).await?;
        }
    }
    let secret = random_token(32);
    let redirect = vec![format!("{issuer}/demo/callback")];
    let logout = vec![format!("{issuer}/demo")];
    let hash = sha256_b64url(secret.as_bytes());
    if !clients::update_registration(&mut tx, DEMO_CLIENT_ID, &redirect, &logout, Some(&hash))
        .await?
    {
        clients::insert(
            &mut tx,
            &Client {
                client_id: DEMO_CLIENT_ID.into(),
                name: "segl demo".into(),
                secret_hash: Some(hash),
                auth_method: AuthMethod::ClientSecretBasic,
                redirect_uris: redirect,
                post_logout_redirect_uris: logout,
                jwks: None,
                id_token_alg: "ES256".into(),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Demo { people })
}

/// The demo routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/demo", get(page))
        .route("/demo/start", get(start))
        .route("/demo/callback", get(callback))
}

struct Row {
    nin: String,
    name: String,
    password: String,
    serial: String,
    code: String,
}

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage {
    lang: &'static str,
    people: Vec<Row>,
}

#[derive(Template)]
#[template(path = "demo_result.html")]
struct ResultPage {
    lang: &'static str,
    name: String,
    claims: String,
    id_token: String,
    logout_uri: String,
    error: String,
}

fn render(status: StatusCode, r: Result<String, askama::Error>) -> Response {
    match r {
        Ok(body) => {
            let mut resp = (status, Html(body)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, crate::error::log_fault(&e)).into_response(),
    }
}

async fn page(State(st): State<AppState>) -> Response {
    let Some(demo) = st.demo.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut rows = Vec::new();
    let mut c = match st.store.conn().await {
        Ok(c) => c,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    for p in &demo.people {
        let code = match devices::by_serial(&mut c, &p.serial).await {
            Ok(Some(d)) => match d.secret(&st.store) {
                Ok(secret) => match d.kind {
                    TokenKind::Hotp { .. } => otp::hotp(d.algorithm, &secret, d.counter, d.digits),
                    TokenKind::Totp { step, t0 } => {
                        otp::totp(d.algorithm, &secret, st.now(), step, t0, d.digits)
                    }
                },
                Err(_) => "—".into(),
            },
            _ => "—".into(),
        };
        rows.push(Row {
            nin: p.nin.clone(),
            name: p.name.clone(),
            password: p.password.clone(),
            serial: p.serial.clone(),
            code,
        });
    }
    render(
        StatusCode::OK,
        DemoPage {
            lang: "en",
            people: rows,
        }
        .render(),
    )
}

async fn start(State(st): State<AppState>) -> Response {
    let state = random_token(16);
    let nonce = random_token(16);
    let verifier = random_token(32);
    let challenge = sha256_b64url(verifier.as_bytes());
    let iss = &st.settings.issuer;
    let Ok(mut url) = Url::parse(&format!("{iss}/oauth2/authorize")) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", DEMO_CLIENT_ID)
        .append_pair("redirect_uri", &format!("{iss}/demo/callback"))
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("ui_locales", "nb en");
    let mut c = Cookie::new(RP_COOKIE, format!("{state}.{nonce}.{verifier}"));
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(st.settings.cookie_secure);
    c.set_path("/demo");
    let mut resp = Redirect::to(url.as_str()).into_response();
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn callback(
    State(st): State<AppState>,
    jar: CookieJar,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fail = |msg: String| {
        render(
            StatusCode::BAD_REQUEST,
            ResultPage {
                lang: "en",
                name: String::new(),
                claims: String::new(),
                id_token: String::new(),
                logout_uri: String::new(),
                error: msg,
            }
            .render(),
        )
    };
    if st.demo.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(cookie) = jar.get(RP_COOKIE) else {
        return fail("The demo's state cookie is missing; start again.".into());
    };
    let parts: Vec<&str> = cookie.value().split('.').collect();
    let &[state, nonce, verifier] = parts.as_slice() else {
        return fail("The demo's state cookie is malformed; start again.".into());
    };
    if q.get("state").map(String::as_str) != Some(state) {
        return fail("state does not match: this response was not for this browser.".into());
    }
    if q.get("iss") != Some(&st.settings.issuer) {
        return fail("iss does not match the issuer (RFC 9207).".into());
    }
    if let Some(err) = q.get("error") {
        return fail(format!(
            "The login did not complete: {err} ({})",
            q.get("error_description").map(String::as_str).unwrap_or("")
        ));
    }
    let Some(code) = q.get("code") else {
        return fail("No code in the response.".into());
    };
    let client = match st.store.conn().await {
        Ok(mut c) => clients::by_id(&mut c, DEMO_CLIENT_ID).await.ok().flatten(),
        Err(_) => None,
    };
    let Some(client) = client else {
        return fail("The demo client is not registered.".into());
    };
    let redirect = format!("{}/demo/callback", st.settings.issuer);
    let tokens =
        match crate::oidc::exchange_code(&st, &client, code, Some(&redirect), Some(verifier)).await
        {
            Ok(t) => t,
            Err(e) => {
                return fail(format!(
                    "Code exchange failed: {} {}",
                    e.error, e.description
                ));
            }
        };
    let id_token = tokens["id_token"].as_str().unwrap_or_default().to_string();
    let claims = match st.keys.verify_own(&id_token, false) {
        Ok(c) => c,
        Err(e) => return fail(format!("ID token did not verify: {e}")),
    };
    if claims["nonce"].as_str() != Some(nonce) || claims["aud"].as_str() != Some(DEMO_CLIENT_ID) {
        return fail("ID token nonce or audience does not match.".into());
    }
    let page = ResultPage {
        lang: "en",
        name: claims["name"].as_str().unwrap_or_default().to_string(),
        claims: serde_json::to_string_pretty(&claims).unwrap_or_default(),
        id_token,
        logout_uri: format!("{}/demo", st.settings.issuer),
        error: String::new(),
    };
    let jar = jar.remove(Cookie::build(RP_COOKIE).path("/demo"));
    (jar, render(StatusCode::OK, page.render())).into_response()
}
