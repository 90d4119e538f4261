//! Logging in to segl's own pages ("My page", a guardian's approval of an order). The
//! person proves who they are on the ordinary login pages (a flow with
//! [`Purpose::Portal`], at the high level: these pages can block the eID and change where
//! codes are sent), and gets a short session of its own: a `segl_portal` cookie,
//! `SameSite=Strict`, that lives [`PORTAL_TTL_SECS`] from the authentication however
//! active the person is, and is ended with every other session on a block or logout. It
//! is never the single sign-on session: logging in to a relying party does not open My
//! page, and My page does not log anyone in elsewhere.

use axum::http::HeaderMap;
use axum::response::Response;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use segl_core::flow::{LoginFlow, Method, Purpose};
use segl_crypto::random::{ct_eq, random_token, sha256_b64url};
use segl_store::audit::{self, Event};
use segl_store::db::Db;
use segl_store::grants::{self, Session};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Lang;
use crate::pages;

/// The flows' client id: not a registered client, never in a token.
pub const PORTAL_CLIENT: &str = "segl:portal";
/// The portal session's cookie.
pub const PORTAL_COOKIE: &str = "segl_portal";
/// How long a portal session lives after the authentication: long enough to look and
/// change something, short enough that a shared computer left open does little harm.
pub const PORTAL_TTL_SECS: i64 = 15 * 60;

/// A live portal session.
#[derive(Clone, Debug)]
pub struct PortalSession {
    /// The session's stored id (hash of the cookie).
    pub id_hash: String,
    /// Who logged in.
    pub person_id: String,
    /// When they authenticated.
    pub auth_time: i64,
    /// How (RFC 8176 values).
    pub amr: Vec<String>,
    /// When the session ends.
    pub expires_at: i64,
}

/// Starts a portal login that comes back to `return_to` (a path on segl) and sends the
/// browser to the login pages. `title` is what the pages show as the service's name.
pub async fn start_login(
    st: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    title: &str,
    return_to: &str,
) -> Response {
    let what = crate::flow::Internal {
        client: PORTAL_CLIENT,
        title: title.into(),
        return_to: return_to.into(),
        purpose: Purpose::Portal,
        methods: vec![Method::App, Method::Otp],
    };
    crate::flow::start_internal(st, jar, headers, what).await
}

/// Ends a portal flow whose person has just authenticated: the session, the audit entry,
/// and the way back to the page. Returns the session's cookie.
pub(crate) async fn finish(
    st: &AppState,
    c: &mut impl Db,
    flow: &mut LoginFlow,
    person_id: &str,
    now: i64,
) -> Result<Cookie<'static>, ApiError> {
    let auth_time = flow.auth_time.unwrap_or(now);
    let value = random_token(32);
    grants::insert_session(
        c,
        &Session {
            id_hash: stored_id(&value),
            person_id: person_id.to_string(),
            auth_time,
            acr: flow.acr().to_string(),
            amr: flow.amr.clone(),
            expires_at: auth_time + PORTAL_TTL_SECS,
        },
    )
    .await?;
    audit::append(
        c,
        &Event {
            event: "portal.login",
            subject: Some(person_id),
            client_id: Some(PORTAL_CLIENT),
            data: json!({"amr": flow.amr, "page": page_of(&st.settings.issuer, &flow.request.redirect_uri)}),
        },
        now,
    )
    .await?;
    flow.redirect_to = Some(flow.request.redirect_uri.clone());
    Ok(cookie(st, value, PORTAL_TTL_SECS))
}

/// The stored id of a portal cookie: hashed apart from single sign-on sessions (which
/// share the table), so neither session's cookie opens the other's pages.
fn stored_id(cookie: &str) -> String {
    sha256_b64url(format!("portal:{cookie}").as_bytes())
}

fn page_of<'a>(issuer: &str, uri: &'a str) -> &'a str {
    uri.strip_prefix(issuer).unwrap_or(uri)
}

fn cookie(st: &AppState, value: String, max_age: i64) -> Cookie<'static> {
    let mut c = Cookie::new(PORTAL_COOKIE, value);
    c.set_http_only(true);
    // Strict: no other site can make the browser send it, so no cross-site request
    // reaches My page's actions with the person's session (CSRF tokens check too).
    c.set_same_site(SameSite::Strict);
    c.set_secure(st.settings.cookie_secure);
    c.set_path("/");
    c.set_max_age(time::Duration::seconds(max_age));
    c
}

/// The browser's live portal session, if any.
pub async fn current(st: &AppState, jar: &CookieJar) -> Result<Option<PortalSession>, ApiError> {
    let Some(c) = jar.get(PORTAL_COOKIE) else {
        return Ok(None);
    };
    let id_hash = stored_id(c.value());
    let mut conn = st.store.conn().await?;
    let Some(s) = grants::session(&mut conn, &id_hash, st.now()).await? else {
        return Ok(None);
    };
    Ok(Some(PortalSession {
        id_hash: s.id_hash,
        person_id: s.person_id,
        auth_time: s.auth_time,
        amr: s.amr,
        expires_at: s.expires_at,
    }))
}

/// The CSRF token of the browser's portal session, for its forms: derived from the
/// session's cookie, which no other site can read, so it needs no storage. Empty without a
/// session.
pub fn csrf_token(jar: &CookieJar) -> String {
    jar.get(PORTAL_COOKIE)
        .map(|c| sha256_b64url(format!("portal-csrf:{}", c.value()).as_bytes()))
        .unwrap_or_default()
}

/// Whether a form's CSRF token is the session's (constant time).
pub fn csrf_ok(jar: &CookieJar, token: &str) -> bool {
    let expected = csrf_token(jar);
    !expected.is_empty() && ct_eq(expected.as_bytes(), token.as_bytes())
}

/// Ends the portal session and returns the cookie that clears it in the browser.
pub async fn logout(st: &AppState, session: &PortalSession) -> Result<Cookie<'static>, ApiError> {
    let mut conn = st.store.conn().await?;
    grants::end_session(&mut conn, &session.id_hash).await?;
    Ok(clearing_cookie(st))
}

/// The cookie that removes the portal session's cookie from the browser.
pub fn clearing_cookie(st: &AppState) -> Cookie<'static> {
    cookie(st, String::new(), 0)
}

/// The language of a portal page: the browser's choice, else bokmål.
pub fn lang(headers: &HeaderMap) -> Lang {
    let langs = pages::langs_from(None, headers);
    Lang::pick(langs.iter().map(String::as_str)).unwrap_or(Lang::Nb)
}
