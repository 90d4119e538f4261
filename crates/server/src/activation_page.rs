//! "Activate the app" with the existing eID: the person proves who they are with the code
//! device and the password on the ordinary login pages (a flow with
//! [`Purpose::AppActivation`]), and instead of a session gets a one-time activation code,
//! also as a QR code, for the new app. The code opens after the security period, like
//! every activation that does not come from the old phone, and the owner's phone is told
//! by SMS that an activation started.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use segl_core::flow::{LoginFlow, LoginState, Method, Purpose};
use segl_store::apps::ActivationMethod;
use segl_store::db::Db;
use segl_store::persons;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::rfc3339;
use crate::i18n::{Lang, Texts};
use crate::pages;

/// The flows' client id: not a registered client, never in a token.
pub const ACTIVATION_CLIENT: &str = "segl:app-activation";

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/app/activate", get(start))
        .route("/app/activate/{id}", get(show))
}

/// Starts the flow and sends the browser to the login pages, with the code device only:
/// the app cannot vouch for a new app here (that is the old phone's own path).
async fn start(State(st): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    let what = crate::flow::Internal {
        client: ACTIVATION_CLIENT,
        title: crate::portal::lang(&headers).t().activate_title.into(),
        return_to: "/app/activate".into(),
        purpose: Purpose::AppActivation,
        methods: vec![Method::Otp],
    };
    crate::flow::start_internal(&st, &jar, &headers, what).await
}

/// Ends an activation flow whose person has just authenticated: starts the activation
/// (method `eid`) and keeps its code, sealed, on the flow for [`show`].
pub(crate) async fn finish(
    st: &AppState,
    c: &mut impl Db,
    flow_id: &str,
    flow: &mut LoginFlow,
    person_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let person = persons::by_id(c, person_id)
        .await?
        .ok_or_else(|| ApiError::Internal("an authenticated person vanished".into()))?;
    let started = crate::app_api::start_activation(
        c,
        &st.store,
        &st.settings.policy.app,
        &person,
        ActivationMethod::Eid,
        "web",
        now,
    )
    .await?;
    let result = json!({
        "code": started.code,
        "opens_at": started.opens_at,
        "expires_at": started.expires_at,
    })
    .to_string();
    let sealed = st
        .store
        .seal()
        .try_seal(result.as_bytes(), flow_id.as_bytes())
        .map_err(|e| ApiError::Internal(format!("sealing the activation code: {e}")))?;
    flow.sealed_result = Some(data_encoding::BASE64URL_NOPAD.encode(&sealed));
    flow.redirect_to = Some(format!("/app/activate/{flow_id}"));
    Ok(())
}

#[derive(Template)]
#[template(path = "activate.html")]
struct ActivatePage<'a> {
    lang: &'static str,
    t: &'static Texts,
    code: &'a str,
    qr_b64: String,
    opens_at: String,
    opens_hm: String,
    expires_at: String,
    expires_hm: String,
}

fn hm(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!("[hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default()
}

/// The activation code, to the browser that authenticated only, while the flow lives.
async fn show(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let langs = pages::langs_from(None, &headers);
    let flow = match crate::flow::load_for_browser(&st, &jar, &id).await {
        Ok((_, f)) => f,
        Err(e) => {
            let (status, _, detail, _) = e.parts();
            return pages::error_page(status, &detail, &langs);
        }
    };
    let lang = Lang::pick(flow.request.ui_locales.iter().map(String::as_str)).unwrap_or(Lang::Nb);
    let sealed = match (&flow.purpose, flow.state, &flow.sealed_result) {
        (Purpose::AppActivation, LoginState::Done, Some(s)) if !flow.is_expired(st.now()) => s,
        _ => {
            return pages::error_page(
                StatusCode::NOT_FOUND,
                "no activation code here: start again at /app/activate",
                &langs,
            );
        }
    };
    let opened = data_encoding::BASE64URL_NOPAD
        .decode(sealed.as_bytes())
        .ok()
        .and_then(|b| st.store.seal().open(&b, id.as_bytes()).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(v) = opened else {
        return ApiError::Internal("the sealed activation code does not open".into())
            .into_response();
    };
    let code = v["code"].as_str().unwrap_or_default();
    let (opens, expires) = (
        v["opens_at"].as_i64().unwrap_or_default(),
        v["expires_at"].as_i64().unwrap_or_default(),
    );
    let qr = match crate::app_login::qr_svg(code) {
        Ok(svg) => data_encoding::BASE64.encode(svg.as_bytes()),
        Err(e) => return e.into_response(),
    };
    let page = ActivatePage {
        lang: lang.tag(),
        t: lang.t(),
        code,
        qr_b64: qr,
        opens_at: rfc3339(opens),
        opens_hm: hm(opens),
        expires_at: rfc3339(expires),
        expires_hm: hm(expires),
    };
    match page.render() {
        Ok(body) => {
            let mut resp = (StatusCode::OK, Html(body)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}
