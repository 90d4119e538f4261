//! Server-rendered login pages. They are clients of the same steps as the flow API
//! ([`crate::flow::run_step`]) and work without JavaScript: every step is a form that posts
//! and redirects back (post/redirect/get).

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use segl_core::flow::{FlowError, LoginFlow, LoginState};
use serde::Deserialize;
use std::collections::HashMap;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{self, Step};
use crate::i18n::{self, Lang, Texts};
use crate::oidc::BROWSER_COOKIE;

/// Cookie remembering the browser's last method.
pub const METHOD_COOKIE: &str = "segl_method";
/// Cookie remembering a language picked on the page.
pub const LANG_COOKIE: &str = "segl_lang";

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page))
        .route("/login/{id}/{step}", post(login_post))
        .route("/static/segl.css", get(css))
        .route("/static/login.js", get(login_js))
}

async fn login_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/login.js"),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/segl.css"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    lang: &'static str,
    t: &'static Texts,
    id: &'a str,
    csrf: &'a str,
    state: &'static str,
    client_name: &'a str,
    error: String,
    redirect_to: String,
    expires_at: String,
    expires_hm: String,
    verification_code: &'a str,
    app_expires_unix: i64,
    offers_app: bool,
    offers_password: bool,
    questions: Vec<String>,
    /// A signing order's text and documents' names, for a sign flow.
    sign: Option<(String, Vec<String>)>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    lang: &'static str,
    heading: &'a str,
    text: &'a str,
}

/// Language tags from `ui_locales` (if given) and `Accept-Language`, in order.
pub fn langs_from(ui_locales: Option<&str>, headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = ui_locales
        .map(|u| {
            u.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(al) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    {
        tags.extend(i18n::accept_language(al));
    }
    tags
}

fn lang_of(tags: &[String]) -> Lang {
    Lang::pick(tags.iter().map(String::as_str)).unwrap_or(Lang::Nb)
}

/// An error page (never a redirect).
pub fn error_page(status: StatusCode, detail: &str, langs: &[String]) -> Response {
    let lang = lang_of(langs);
    message(status, lang, lang.t().error_title, detail)
}

/// The page after logout.
pub fn logged_out_page(langs: &[String]) -> Response {
    let lang = lang_of(langs);
    message(
        StatusCode::OK,
        lang,
        lang.t().logged_out,
        lang.t().logged_out_text,
    )
}

/// A page with a heading and a text.
pub(crate) fn message_page(status: StatusCode, lang: Lang, heading: &str, text: &str) -> Response {
    message(status, lang, heading, text)
}

fn message(status: StatusCode, lang: Lang, heading: &str, text: &str) -> Response {
    let page = MessagePage {
        lang: lang.tag(),
        heading,
        text,
    };
    html(status, page.render())
}

/// A rendered page, never cached (it may show personal data or a one-time code); a
/// template that fails is a logged fault with an id.
pub(crate) fn html(status: StatusCode, r: Result<String, askama::Error>) -> Response {
    match r {
        Ok(body) => {
            let mut resp = (status, Html(body)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => {
            let id = crate::error::log_fault(&e);
            (StatusCode::SERVICE_UNAVAILABLE, format!("error id {id}")).into_response()
        }
    }
}

/// The language for a flow's page: a choice on the page, then `ui_locales`, then
/// `Accept-Language`.
fn page_lang(
    picked: Option<&str>,
    jar: &CookieJar,
    flow: Option<&LoginFlow>,
    headers: &HeaderMap,
) -> Lang {
    picked
        .and_then(Lang::parse)
        .or_else(|| jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())))
        .or_else(|| flow.and_then(|f| Lang::pick(f.request.ui_locales.iter().map(String::as_str))))
        .unwrap_or_else(|| lang_of(&langs_from(None, headers)))
}

fn error_text(t: &Texts, e: &ApiError) -> String {
    match e {
        ApiError::Flow(f) => match f {
            FlowError::WrongOtp { .. } => t.err_wrong_otp.into(),
            FlowError::OtpReplayed { .. } => t.err_otp_used.into(),
            FlowError::WrongPassword { .. } => t.err_wrong_password.into(),
            FlowError::DeviceBlocked => t.err_device_blocked.into(),
            FlowError::PasswordLocked => t.err_password_locked.into(),
            FlowError::TooManyAttempts => t.err_too_many.into(),
            FlowError::Expired => t.err_expired.into(),
            FlowError::InvalidNin(n) => format!("{}: {n}", t.err_nin),
            FlowError::AppExpired { .. } => t.err_app_expired.into(),
            FlowError::DeniedInApp => t.err_denied_in_app.into(),
            FlowError::WrongAnswers { .. } => t.err_wrong_answers.into(),
            _ => t.err_other.into(),
        },
        other => other.parts().2,
    }
}

fn failure_text(t: &Texts, f: Option<segl_core::flow::FailureReason>) -> &'static str {
    use segl_core::flow::FailureReason as R;
    match f {
        Some(R::DeniedInApp) => t.err_denied_in_app,
        Some(R::TooManyAttempts) => t.err_too_many,
        Some(R::DeviceBlocked) => t.err_device_blocked,
        Some(R::PasswordLocked) => t.err_password_locked,
        Some(R::Cancelled) | None => "",
    }
}

fn render_flow(
    status: StatusCode,
    lang: Lang,
    row: &segl_store::flows::FlowRow,
    flow: &LoginFlow,
    error: String,
    sign: Option<(String, Vec<String>)>,
) -> Response {
    let page = LoginPage {
        lang: lang.tag(),
        t: lang.t(),
        id: &row.id,
        csrf: &row.csrf,
        state: flow.state.as_str(),
        client_name: &flow.request.client_name,
        error,
        redirect_to: flow.redirect_to.clone().unwrap_or_default(),
        expires_at: time::OffsetDateTime::from_unix_timestamp(flow.expires_at)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        expires_hm: time::OffsetDateTime::from_unix_timestamp(flow.expires_at)
            .ok()
            .and_then(|d| {
                d.format(time::macros::format_description!("[hour]:[minute]"))
                    .ok()
            })
            .unwrap_or_default(),
        verification_code: flow
            .app
            .as_ref()
            .map_or("", |a| a.verification_code.as_str()),
        app_expires_unix: flow.app.as_ref().map_or(0, |a| a.expires_at),
        offers_app: flow.methods.contains(&segl_core::flow::Method::App),
        offers_password: flow.methods.contains(&segl_core::flow::Method::Password),
        questions: flow.questions.clone(),
        sign,
    };
    html(status, page.render())
}

async fn login_page(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let picked = q.get("lang").map(String::as_str);
    let Some(id) = q.get("flow") else {
        let lang = page_lang(picked, &jar, None, &headers);
        return message(
            StatusCode::BAD_REQUEST,
            lang,
            lang.t().error_title,
            "flow is missing",
        );
    };
    let loaded = match st.store.read().await {
        Ok(mut c) => flow::load(&mut c, id, jar.get(BROWSER_COOKIE).map(|c| c.value()), None).await,
        Err(e) => Err(e.into()),
    };
    match loaded {
        Ok((row, f)) => {
            let lang = page_lang(picked, &jar, Some(&f), &headers);
            let expired =
                f.is_expired(st.now()) && !matches!(f.state, LoginState::Done | LoginState::Failed);
            let error = if expired {
                lang.t().err_expired.to_string()
            } else if q.get("notice").map(String::as_str) == Some("app_expired")
                && f.state == LoginState::ChooseMethod
            {
                // The page's script collected a lapsed request and came back here.
                lang.t().err_app_expired.to_string()
            } else if f.state == LoginState::Failed {
                // Why it ended, also when the page arrives here after the fact (the app's
                // "No", seen by the page's script).
                failure_text(lang.t(), f.failure).to_string()
            } else {
                String::new()
            };
            let status = if expired {
                StatusCode::GONE
            } else {
                StatusCode::OK
            };
            let sign = crate::sign::page_box(&st, &f).await;
            let mut resp = render_flow(status, lang, &row, &f, error, sign);
            if let Some(p) = picked.and_then(Lang::parse) {
                let mut c = Cookie::new(LANG_COOKIE, p.tag());
                c.set_path("/");
                c.set_same_site(SameSite::Lax);
                c.set_http_only(true);
                if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => {
            let lang = page_lang(picked, &jar, None, &headers);
            let (status, _, _, _) = e.parts();
            message(
                status,
                lang,
                lang.t().error_title,
                &error_text(lang.t(), &e),
            )
        }
    }
}

#[derive(Deserialize)]
struct StepForm {
    csrf_token: Option<String>,
    lang: Option<String>,
    nin: Option<String>,
    method: Option<String>,
    otp: Option<String>,
    password: Option<String>,
    answer0: Option<String>,
    answer1: Option<String>,
    answer2: Option<String>,
}

async fn login_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path((id, step)): Path<(String, String)>,
    Form(form): Form<StepForm>,
) -> Response {
    let step = match step.as_str() {
        "identify" => Step::Identify(form.nin.unwrap_or_default()),
        "method" => Step::Method(form.method.unwrap_or_default()),
        "choose-another" => Step::ChooseAnother,
        "otp" => Step::Otp(form.otp.unwrap_or_default()),
        "password" => Step::Password(form.password.unwrap_or_default()),
        "answers" => Step::Answers(
            [form.answer0, form.answer1, form.answer2]
                .into_iter()
                .flatten()
                .collect(),
        ),
        "app" => Step::AppCollect,
        "cancel" => Step::Cancel,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let browser = jar.get(BROWSER_COOKIE).map(|c| c.value().to_string());
    let result = flow::run_step(
        &st,
        &id,
        browser.as_deref(),
        form.csrf_token.as_deref(),
        step,
    )
    .await;
    let lang_q = form.lang.as_deref().and_then(Lang::parse);
    match result {
        Ok(s) => {
            let target = match (&s.flow.state, &s.flow.redirect_to) {
                (LoginState::Done, Some(url)) => url.clone(),
                (LoginState::Failed, Some(url)) => url.clone(),
                _ => format!("/login?flow={id}"),
            };
            let mut resp = Redirect::to(&target).into_response();
            for c in s.cookies {
                if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => {
            // Show the step again with the error (or the flow's end), in the flow's language.
            let reloaded = match st.store.read().await {
                Ok(mut c) => flow::load(&mut c, &id, browser.as_deref(), None).await.ok(),
                Err(_) => None,
            };
            let (status, _, _, _) = e.parts();
            match reloaded {
                Some((row, f))
                    if !matches!(
                        e,
                        ApiError::Problem {
                            code: "csrf_mismatch",
                            ..
                        }
                    ) =>
                {
                    let lang = lang_q.unwrap_or_else(|| page_lang(None, &jar, Some(&f), &headers));
                    let sign = crate::sign::page_box(&st, &f).await;
                    render_flow(status, lang, &row, &f, error_text(lang.t(), &e), sign)
                }
                _ => {
                    let lang = lang_q.unwrap_or_else(|| page_lang(None, &jar, None, &headers));
                    message(
                        status,
                        lang,
                        lang.t().error_title,
                        &error_text(lang.t(), &e),
                    )
                }
            }
        }
    }
}
