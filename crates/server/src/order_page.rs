//! The pages for ordering and activating an eID (`/order`, `/order/activate`): forms that
//! work without JavaScript and call the same functions as the API ([`crate::order`]). A
//! refusal shows the form again with the values typed (never a password or code) and the
//! message beside the field it is about.
//!
//! The forms are anonymous, so their CSRF protection is a double-submit token: a random
//! `SameSite=Strict` cookie that the form repeats in a hidden field.

use askama::Template;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use segl_core::order::{Evidence, OrderForm, OrderNumber, OrderState};
use segl_crypto::random::{ct_eq, random_token};
use serde::Deserialize;

use crate::AppState;
use crate::i18n::Texts;
use crate::order::{self, ActivateBody, QuestionAnswer};

/// The double-submit cookie of the anonymous forms.
pub const FORM_COOKIE: &str = "segl_form";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/order", get(order_form).post(order_post))
        .route("/order/activate", get(activate_form).post(activate_post))
}

/// What the order form shows again after a refusal.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct OrderFields {
    csrf: String,
    nin: String,
    name: String,
    phone: String,
    email: String,
    kind: String,
    delivery: String,
    address: String,
    guardian_nin: String,
    evidence: String,
    mrz: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage<'a> {
    lang: &'static str,
    t: &'static Texts,
    csrf: &'a str,
    f: &'a OrderFields,
    error: String,
    /// The error's language: the API's messages are English (WCAG 3.1.2, language of
    /// parts), the page's own are in the page's language.
    error_lang: &'a str,
    field: &'a str,
}

#[derive(Template)]
#[template(path = "order_done.html")]
struct OrderDonePage<'a> {
    lang: &'static str,
    t: &'static Texts,
    number: String,
    state: &'a str,
    reason: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ActivateFields {
    csrf: String,
    number: String,
    code: String,
    second_code: String,
    password: String,
    password2: String,
    q0: String,
    q1: String,
    q2: String,
    a0: String,
    a1: String,
    a2: String,
}

#[derive(Template)]
#[template(path = "order_activate.html")]
struct ActivatePage<'a> {
    lang: &'static str,
    t: &'static Texts,
    csrf: &'a str,
    number: &'a str,
    questions: [&'a str; 3],
    error: String,
    /// As [`OrderPage::error_lang`].
    error_lang: &'a str,
    field: &'a str,
    done: Option<(String, String)>,
}

fn render(status: StatusCode, page: &impl Template, cookie: Option<Cookie<'static>>) -> Response {
    let mut r = crate::pages::html(status, page.render());
    if let Some(c) = cookie
        && let Ok(v) = HeaderValue::from_str(&c.to_string())
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The browser's form token, and the cookie to set when it is new.
fn form_token(st: &AppState, jar: &CookieJar) -> (String, Option<Cookie<'static>>) {
    if let Some(c) = jar.get(FORM_COOKIE).filter(|c| c.value().len() >= 32) {
        return (c.value().to_string(), None);
    }
    let value = random_token(32);
    let mut c = Cookie::new(FORM_COOKIE, value.clone());
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_secure(st.settings.cookie_secure);
    c.set_path("/order");
    (value, Some(c))
}

fn token_ok(jar: &CookieJar, sent: &str) -> bool {
    jar.get(FORM_COOKIE)
        .is_some_and(|c| c.value().len() >= 32 && ct_eq(c.value().as_bytes(), sent.as_bytes()))
}

/// The page's own words for a problem, where it has them: the API's `detail` is English
/// (and shown as such, marked `lang="en"`, when the page has no words for it).
fn localized(t: &Texts, code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_nin" => t.order_err_nin,
        "too_young" => t.order_err_too_young,
        "guardian_required" => t.order_err_guardian_required,
        "invalid_guardian" | "invalid_guardian_nin" => t.order_err_guardian,
        "invalid_name" => t.order_err_name,
        "invalid_phone" => t.order_err_phone,
        "invalid_email" => t.order_err_email,
        "invalid_address" => t.order_err_address,
        "invalid_mrz" => t.order_err_mrz,
        "order_open" => t.order_err_open,
        "invalid_order_number" => t.order_err_number,
        "order_not_found" => t.order_err_not_found,
        "order_not_approved" => t.order_err_not_approved,
        "wrong_code" => t.order_err_code,
        "codes_locked" => t.order_err_codes_locked,
        "codes_expired" => t.order_err_codes_expired,
        "invalid_password" => t.order_err_password,
        "invalid_questions" => t.order_err_questions,
        "form_expired" => t.order_err_form,
        _ => return None,
    })
}

/// The message for a refusal, and its language: the page's words in bokmål and nynorsk,
/// the API's precise English otherwise.
fn message_for(lang: crate::i18n::Lang, code: &str, detail: String) -> (String, &'static str) {
    match localized(lang.t(), code) {
        Some(m) if lang != crate::i18n::Lang::En => (m.to_string(), lang.tag()),
        _ => (detail, "en"),
    }
}

/// The form field a problem is about.
fn field_of(code: &str, detail: &str) -> &'static str {
    match code {
        "invalid_nin" | "too_young" | "order_open" => "nin",
        "invalid_name" => "name",
        "invalid_phone" => "phone",
        "invalid_email" => "email",
        "invalid_kind" => "kind",
        "invalid_delivery" => "delivery",
        "invalid_address" => "address",
        "guardian_required" | "invalid_guardian" | "invalid_guardian_nin" => "guardian_nin",
        "invalid_mrz" => "mrz",
        "invalid_order_number" | "order_not_found" | "order_not_approved" => "number",
        "wrong_code" | "codes_locked" | "codes_expired" => "code",
        "invalid_password" => "password",
        "invalid_questions" => {
            if detail.contains("answer") {
                "answers"
            } else {
                "questions"
            }
        }
        _ => "form",
    }
}

async fn order_form(State(st): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    let lang = crate::portal::lang(&headers);
    let (csrf, cookie) = form_token(&st, &jar);
    let f = OrderFields {
        kind: "app".into(),
        delivery: "sms_email".into(),
        evidence: "mrz".into(),
        ..OrderFields::default()
    };
    render(
        StatusCode::OK,
        &OrderPage {
            lang: lang.tag(),
            t: lang.t(),
            csrf: &csrf,
            f: &f,
            error: String::new(),
            error_lang: "en",
            field: "",
        },
        cookie,
    )
}

async fn order_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<OrderFields>,
) -> Response {
    let lang = crate::portal::lang(&headers);
    let again = |status: StatusCode, (error, error_lang): (String, &str), field: &str| {
        let (csrf, cookie) = form_token(&st, &jar);
        render(
            status,
            &OrderPage {
                lang: lang.tag(),
                t: lang.t(),
                csrf: &csrf,
                f: &f,
                error_lang,
                error,
                field,
            },
            cookie,
        )
    };
    if !token_ok(&jar, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            message_for(
                lang,
                "form_expired",
                "the form has expired: send it again".into(),
            ),
            "form",
        );
    }
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let form = OrderForm {
        nin: f.nin.clone(),
        name: f.name.clone(),
        phone: opt(&f.phone),
        email: opt(&f.email),
        kind: f.kind.clone(),
        delivery: f.delivery.clone(),
        address: f.address.lines().map(str::to_string).collect(),
        guardian_nin: opt(&f.guardian_nin),
        evidence: if f.evidence == "manual" {
            Evidence::Manual
        } else {
            Evidence::Mrz(f.mrz.clone())
        },
    };
    match order::submit(&st, form).await {
        Ok(s) => {
            let state = s.state.as_str();
            let number = OrderNumber::parse(&s.number).map_or(s.number.clone(), |n| n.grouped());
            render(
                StatusCode::OK,
                &OrderDonePage {
                    lang: lang.tag(),
                    t: lang.t(),
                    number,
                    state,
                    reason: s.reason.unwrap_or_default(),
                },
                None,
            )
        }
        Err(e) => {
            let (status, code, detail, _) = e.parts();
            let field = field_of(code, &detail);
            again(status, message_for(lang, code, detail), field)
        }
    }
}

async fn activate_form(State(st): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    let lang = crate::portal::lang(&headers);
    let (csrf, cookie) = form_token(&st, &jar);
    render(
        StatusCode::OK,
        &ActivatePage {
            lang: lang.tag(),
            t: lang.t(),
            csrf: &csrf,
            number: "",
            questions: ["", "", ""],
            error: String::new(),
            error_lang: "en",
            field: "",
            done: None,
        },
        cookie,
    )
}

async fn activate_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<ActivateFields>,
) -> Response {
    let lang = crate::portal::lang(&headers);
    let again = |status: StatusCode, (error, error_lang): (String, &str), field: &str| {
        let (csrf, cookie) = form_token(&st, &jar);
        render(
            status,
            &ActivatePage {
                lang: lang.tag(),
                t: lang.t(),
                csrf: &csrf,
                number: &f.number,
                questions: [&f.q0, &f.q1, &f.q2],
                error_lang,
                error,
                field,
                done: None,
            },
            cookie,
        )
    };
    if !token_ok(&jar, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            message_for(
                lang,
                "form_expired",
                "the form has expired: send it again".into(),
            ),
            "form",
        );
    }
    if f.password != f.password2 {
        return again(
            StatusCode::BAD_REQUEST,
            (lang.t().reset_mismatch.into(), lang.tag()),
            "password2",
        );
    }
    let body = ActivateBody {
        code: f.code.clone(),
        second_code: Some(f.second_code.trim().to_string()).filter(|c| !c.is_empty()),
        password: f.password.clone(),
        questions: [(&f.q0, &f.a0), (&f.q1, &f.a1), (&f.q2, &f.a2)]
            .into_iter()
            .map(|(q, a)| QuestionAnswer {
                question: q.clone(),
                answer: a.clone(),
            })
            .collect(),
    };
    match order::activate(&st, &f.number, body).await {
        Ok(v) => {
            let done = match (v["app_activation_code"].as_str(), v["code_device"].as_str()) {
                (Some(code), _) => (lang.t().activate_done_app.to_string(), code.to_string()),
                (None, Some(serial)) => {
                    (lang.t().activate_done_card.to_string(), serial.to_string())
                }
                _ => (String::new(), String::new()),
            };
            render(
                StatusCode::OK,
                &ActivatePage {
                    lang: lang.tag(),
                    t: lang.t(),
                    csrf: "",
                    number: "",
                    questions: ["", "", ""],
                    error: String::new(),
                    error_lang: "en",
                    field: "",
                    done: Some(done),
                },
                None,
            )
        }
        Err(e) => {
            let (status, code, detail, _) = e.parts();
            let field = field_of(code, &detail);
            again(status, message_for(lang, code, detail), field)
        }
    }
}

/// The texts of an order's state on the receipt.
pub fn state_text(t: &Texts, state: &str) -> &'static str {
    match OrderState::parse(state) {
        Some(OrderState::Approved) => t.order_state_approved,
        Some(OrderState::AwaitingGuardian) => t.order_state_awaiting_guardian,
        Some(OrderState::Rejected) => t.order_state_rejected,
        _ => t.order_state_pending_review,
    }
}
