//! "My page" at `/my` (issue 5): a person logged in with their eID (a portal session, see
//! [`crate::portal`]) sees their credentials, their history from the audit log and their
//! contact information, and can change phone or email, deactivate the app, renew the
//! certificate and block the eID.
//!
//! Every action is a form that posts and redirects back (post/redirect/get), works without
//! JavaScript, and carries a CSRF token bound to the portal session ([`portal::csrf_token`]); a
//! post without a live session or with a wrong token is refused with 403 and changes
//! nothing. Bad input re-renders the page with a message tied to its field, also nothing
//! changed. Values people type (phone, email, codes) are never logged: the audit log names
//! which detail changed, not to what.

use askama::Template;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use segl_core::app::{AppError, MobileNumber};
use segl_crypto::random::{random_digits, random_token, sha256_b64url};
use segl_pki::RevocationReason;
use segl_store::audit::{self, Event};
use segl_store::contact::{self, ContactChange, Which};
use segl_store::persons::{self, Person};
use segl_store::pki as certs;
use segl_store::{StoreError, apps, devices};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::AppState;
use crate::error::ApiError;
use crate::i18n::{Lang, MyTexts};
use crate::lifecycle::{self, BlockReason};
use crate::pages::{LANG_COOKIE, html};
use crate::portal::{self, PORTAL_CLIENT, PortalSession};

/// A certificate may be renewed from this long before it expires: two months leave time
/// to renew before signing stops working, and a certificate far from its end is not
/// replaced on a whim (each renewal is a new key in the key store and a CRL entry).
pub const RENEW_WITHIN_SECS: i64 = 60 * 86_400;
/// How long a confirmation code for a new phone or email works.
pub const CODE_TTL_SECS: i64 = 15 * 60;
/// Wrong confirmation codes before the change is cancelled (a 6-digit code then holds
/// against guessing: 5 in a million).
pub const CODE_MAX_FAILURES: i64 = 5;
/// Changes a person may start per hour: each sends a message to an address they type, so
/// this keeps My page from being a way to send SMS to strangers.
pub const CODES_PER_HOUR: i64 = 5;
/// History entries per page.
const HISTORY_PAGE: i64 = 50;
/// The audit events that make up a person's history.
const HISTORY_EVENTS: [&str; 10] = [
    "login.success",
    "portal.login",
    "sign.approved",
    "app.activated",
    "app.deactivated",
    "person.blocked",
    "password.changed",
    "contact.changed",
    "certificate.renewed",
    "pki.certificate_issued",
];
/// Who a block from My page is recorded as.
const SELF_AGENT: &str = "self";

/// The routes of My page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/my", get(show))
        .route("/my/contact", post(contact_start))
        .route("/my/contact/confirm", post(contact_confirm))
        .route("/my/app/deactivate", post(app_deactivate))
        .route("/my/certificate/renew", post(renew))
        .route("/my/block", post(block_ask))
        .route("/my/block/confirm", post(block_confirm))
        .route("/my/logout", post(logout))
        .route("/my/logged-out", get(logged_out))
        .route("/my/blocked", get(blocked))
}

// ---------------------------------------------------------------------------------------
// Session, CSRF, language
// ---------------------------------------------------------------------------------------

/// The page's language: `?lang=` on the page, the language cookie, `Accept-Language`,
/// bokmål.
fn lang_of(picked: Option<&str>, jar: &CookieJar, headers: &HeaderMap) -> Lang {
    picked
        .and_then(Lang::parse)
        .or_else(|| jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())))
        .unwrap_or_else(|| portal::lang(headers))
}

/// A logged-in post: the session, its cookie and the page's language.
struct Ctx {
    session: PortalSession,
    csrf: String,
    lang: Lang,
}

/// Checks a post: a live portal session, then the form's CSRF token (in constant time).
/// Either missing is 403 with a page that says which.
async fn check_post(
    st: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    form_csrf: Option<&str>,
) -> Result<Ctx, Response> {
    let lang = lang_of(None, jar, headers);
    let m = lang.my();
    let session = match portal::current(st, jar).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(message(
                StatusCode::FORBIDDEN,
                lang,
                m.session_ended_h,
                m.session_ended_text,
                true,
            ));
        }
        Err(e) => return Err(fault(lang, &e)),
    };
    if !portal::csrf_ok(jar, form_csrf.unwrap_or_default()) {
        return Err(message(
            StatusCode::FORBIDDEN,
            lang,
            m.forbidden_h,
            m.forbidden_text,
            true,
        ));
    }
    Ok(Ctx {
        session,
        csrf: portal::csrf_token(jar),
        lang,
    })
}

/// A form of My page: every one carries the CSRF token.
trait Posted {
    fn csrf(&self) -> Option<&str>;
}

/// A post's form and context: a form that does not parse is 400, then [`check_post`].
async fn posted<T: Posted>(
    st: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<(T, Ctx), Response> {
    let Ok(Form(f)) = form else {
        return Err(bad_form(lang_of(None, jar, headers)));
    };
    let ctx = check_post(st, jar, headers, f.csrf()).await?;
    Ok((f, ctx))
}

// ---------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "my.html")]
struct MyPage {
    lang: &'static str,
    m: &'static MyTexts,
    csrf: String,
    /// The block's second step ("Yes, block") instead of the page.
    confirm_block: bool,
    block_reason: String,
    block_reason_text: &'static str,
    name: String,
    session_minutes: i64,
    session_ends_iso: String,
    session_ends_text: String,
    apps: Vec<AppRow>,
    has_active_app: bool,
    devices: Vec<DeviceRow>,
    password: Option<PasswordRow>,
    certs: Vec<CertRow>,
    history: Vec<HistoryRow>,
    /// `?before=` of the next (older) page of history.
    older: Option<i64>,
    /// Whether this is a later page of history.
    paged: bool,
    phone: String,
    email: String,
    pending: Vec<PendingRow>,
    notice: &'static str,
    /// The id of the field an error is about (`new-phone`, `email-code`, …), or empty.
    error_field: &'static str,
    error: String,
    /// What the person typed, shown again with an error.
    typed_phone: String,
    typed_email: String,
}

struct AppRow {
    app_id: String,
    label: String,
    activated_iso: String,
    activated_text: String,
    active: bool,
}

struct DeviceRow {
    serial: String,
    kind: &'static str,
    blocked: bool,
}

struct PasswordRow {
    changed_iso: String,
    changed_text: String,
    locked: bool,
}

struct CertRow {
    serial: String,
    not_after_iso: String,
    not_after_text: String,
    status: String,
}

struct HistoryRow {
    iso: String,
    text: String,
    what: String,
    service: String,
    method: String,
}

struct PendingRow {
    which: &'static str,
    label: &'static str,
    to: String,
    expires_iso: String,
    expires_text: String,
}

/// What a page shows besides the stored data.
#[derive(Default)]
struct Extra {
    notice: &'static str,
    error_field: &'static str,
    error: String,
    typed_phone: String,
    typed_email: String,
    confirm_block: Option<BlockReason>,
}

impl Extra {
    fn error(field: &'static str, error: impl Into<String>) -> Extra {
        Extra {
            error_field: field,
            error: error.into(),
            ..Extra::default()
        }
    }
}

/// Everything the page shows, read with one connection.
struct Loaded {
    person: Person,
    apps: Vec<apps::AppDevice>,
    devices: Vec<devices::Device>,
    password: Option<persons::PasswordRecord>,
    certs: Vec<certs::Certificate>,
    history: Vec<audit::Entry>,
    pending: Vec<ContactChange>,
}

async fn load(
    st: &AppState,
    person_id: &str,
    before: Option<i64>,
    now: i64,
) -> Result<Option<Loaded>, ApiError> {
    let mut c = st.store.read().await?;
    let Some(person) = persons::by_id(&mut c, person_id).await? else {
        return Ok(None);
    };
    Ok(Some(Loaded {
        apps: apps::for_person(&mut c, person_id).await?,
        devices: devices::list(&mut c, Some(person_id)).await?,
        password: persons::password(&mut c, person_id).await?,
        certs: certs::certificates(&mut c, Some(person_id)).await?,
        history: audit::for_subject(&mut c, person_id, &HISTORY_EVENTS, before, HISTORY_PAGE + 1)
            .await?,
        pending: contact::open(&mut c, person_id, now).await?,
        person,
    }))
}

/// Renders the page for the session's person.
async fn render(
    st: &AppState,
    ctx: &Ctx,
    before: Option<i64>,
    extra: Extra,
    status: StatusCode,
) -> Response {
    let now = st.now();
    let lang = ctx.lang;
    let m = lang.my();
    let loaded = match load(st, &ctx.session.person_id, before, now).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return message(
                StatusCode::FORBIDDEN,
                lang,
                m.session_ended_h,
                m.session_ended_text,
                true,
            );
        }
        Err(e) => return fault(lang, &e),
    };
    let mut history = loaded.history;
    let older = if history.len() as i64 > HISTORY_PAGE {
        history.truncate(HISTORY_PAGE as usize);
        history.last().map(|e| e.seq)
    } else {
        None
    };
    let mut rows = Vec::with_capacity(history.len());
    for e in &history {
        rows.push(history_row(st, lang, e).await);
    }
    let has_active_app = loaded
        .apps
        .iter()
        .any(|a| a.state == apps::AppDeviceState::Active);
    let page = MyPage {
        lang: lang.tag(),
        m,
        csrf: ctx.csrf.clone(),
        confirm_block: extra.confirm_block.is_some(),
        block_reason: extra
            .confirm_block
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
        block_reason_text: extra.confirm_block.map_or("", |r| reason_text(m, r)),
        name: loaded.person.name.clone(),
        session_minutes: ((ctx.session.expires_at - now).max(0) + 59) / 60,
        session_ends_iso: crate::flow::rfc3339(ctx.session.expires_at),
        session_ends_text: hm(ctx.session.expires_at),
        apps: loaded
            .apps
            .iter()
            .map(|a| AppRow {
                app_id: a.app_id.clone(),
                label: a.label.clone().unwrap_or_default(),
                activated_iso: crate::flow::rfc3339(a.activated_at),
                activated_text: when(lang, a.activated_at),
                active: a.state == apps::AppDeviceState::Active,
            })
            .collect(),
        has_active_app,
        devices: loaded
            .devices
            .iter()
            .map(|d| DeviceRow {
                serial: d.serial.clone(),
                kind: match d.kind {
                    segl_crypto::pskc::TokenKind::Hotp { .. } => m.kind_hotp,
                    segl_crypto::pskc::TokenKind::Totp { .. } => m.kind_totp,
                },
                blocked: d.state == devices::DeviceState::Blocked,
            })
            .collect(),
        password: loaded.password.as_ref().map(|p| PasswordRow {
            changed_iso: crate::flow::rfc3339(p.changed_at),
            changed_text: when(lang, p.changed_at),
            locked: p.locked,
        }),
        certs: loaded
            .certs
            .iter()
            .map(|c| CertRow {
                serial: c.serial.clone(),
                not_after_iso: crate::flow::rfc3339(c.not_after),
                not_after_text: day(lang, c.not_after),
                status: cert_status(m, c, now),
            })
            .collect(),
        history: rows,
        older,
        paged: before.is_some(),
        phone: loaded.person.phone.clone().unwrap_or_default(),
        email: loaded.person.email.clone().unwrap_or_default(),
        pending: loaded
            .pending
            .iter()
            .map(|p| PendingRow {
                which: p.which.as_str(),
                label: match p.which {
                    Which::Phone => m.code_label_phone,
                    Which::Email => m.code_label_email,
                },
                to: p.new_value.clone(),
                expires_iso: crate::flow::rfc3339(p.expires_at),
                expires_text: hm(p.expires_at),
            })
            .collect(),
        notice: extra.notice,
        error_field: extra.error_field,
        error: extra.error,
        typed_phone: extra.typed_phone,
        typed_email: extra.typed_email,
    };
    html(status, page.render())
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A message page, with a link back to My page when `back`.
fn message(status: StatusCode, lang: Lang, heading: &str, text: &str, back: bool) -> Response {
    #[derive(Template)]
    #[template(
        source = r##"{% extends "base.html" %}
{% block title %}{{ heading }}{% endblock %}
{% block langs %}<a class="skip" href="#main">{{ m.skip }}</a>{% endblock %}
{% block content %}
<h1>{{ heading }}</h1>
<p id="message">{{ text }}</p>
{% if back %}<p><a id="login-again" href="/my">{{ m.login_again }}</a></p>{% endif %}
{% endblock %}"##,
        ext = "html"
    )]
    struct Message<'a> {
        lang: &'static str,
        m: &'static MyTexts,
        heading: &'a str,
        text: &'a str,
        back: bool,
    }
    html(
        status,
        Message {
            lang: lang.tag(),
            m: lang.my(),
            heading,
            text,
            back,
        }
        .render(),
    )
}

/// A server fault: the client sees an id, the log has the detail.
fn fault(lang: Lang, e: &ApiError) -> Response {
    let (status, _, detail, _) = e.parts();
    message(status, lang, lang.t().error_title, &detail, false)
}

fn hm(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(|d| format!("{:02}:{:02} UTC", d.hour(), d.minute()))
        .unwrap_or_default()
}

/// A date in the page's language ("3. mars 2026", "3 March 2026").
fn day(lang: Lang, t: i64) -> String {
    let Ok(d) = OffsetDateTime::from_unix_timestamp(t) else {
        return String::new();
    };
    let month = lang.my().months[usize::from(u8::from(d.month())) - 1];
    match lang {
        Lang::En => format!("{} {month} {}", d.day(), d.year()),
        Lang::Nb | Lang::Nn => format!("{}. {month} {}", d.day(), d.year()),
    }
}

/// A time in the page's language ("3. mars 2026 kl. 14:05 UTC").
fn when(lang: Lang, t: i64) -> String {
    let Ok(d) = OffsetDateTime::from_unix_timestamp(t) else {
        return String::new();
    };
    let at = match lang {
        Lang::En => ",",
        Lang::Nb | Lang::Nn => " kl.",
    };
    format!("{}{at} {:02}:{:02} UTC", day(lang, t), d.hour(), d.minute())
}

fn cert_status(m: &MyTexts, c: &certs::Certificate, now: i64) -> String {
    match (&c.revoked_at, c.reason.as_deref()) {
        (Some(_), Some(r)) if RevocationReason::parse(r) == Some(RevocationReason::Superseded) => {
            m.cert_superseded.into()
        }
        (Some(_), _) => m.cert_revoked.into(),
        (None, _) if c.not_after <= now => m.cert_expired.into(),
        (None, _) if c.not_after - now <= RENEW_WITHIN_SECS => m.cert_expiring.into(),
        (None, _) => m.cert_valid.into(),
    }
}

/// The method of a login or signature from its `amr` (RFC 8176).
fn method_text(m: &MyTexts, amr: &[String]) -> String {
    let has = |v: &str| amr.iter().any(|a| a == v);
    let text = if has("swk") {
        if has("pwd") {
            m.method_app_pwd
        } else if has("face") {
            m.method_app_face
        } else if has("fpt") {
            m.method_app_fpt
        } else if has("pin") {
            m.method_app_pin
        } else {
            m.method_app
        }
    } else if has("otp") {
        m.method_otp
    } else if has("hwk") {
        m.method_fido
    } else if has("sc") {
        m.method_card
    } else {
        return amr.join(" ");
    };
    text.into()
}

async fn history_row(st: &AppState, lang: Lang, e: &audit::Entry) -> HistoryRow {
    let m = lang.my();
    let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
    let what = match e.event.as_str() {
        "login.success" => m.ev_login,
        "portal.login" => m.ev_portal_login,
        "sign.approved" => m.ev_sign,
        "app.activated" => m.ev_app_activated,
        "app.deactivated" => m.ev_app_deactivated,
        "person.blocked" => m.ev_blocked,
        "password.changed" => m.ev_password,
        "contact.changed" if data["which"] == "phone" => m.ev_phone,
        "contact.changed" => m.ev_email,
        "certificate.renewed" => m.ev_renewed,
        "pki.certificate_issued" => m.ev_cert_issued,
        other => other,
    };
    let service = match e.client_id.as_deref() {
        None => m.service_segl.to_string(),
        Some(PORTAL_CLIENT) => m.title.to_string(),
        Some(id) if id.starts_with("segl:") => m.service_segl.to_string(),
        Some(id) => match st.store.client(id).await {
            Ok(Some(c)) => c.name,
            _ => id.to_string(),
        },
    };
    let amr: Vec<String> = data["amr"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    HistoryRow {
        iso: crate::flow::rfc3339(e.ts),
        text: when(lang, e.ts),
        what: what.to_string(),
        service,
        method: if amr.is_empty() {
            String::new()
        } else {
            method_text(m, &amr)
        },
    }
}

#[derive(Deserialize)]
struct ShowQuery {
    before: Option<String>,
    notice: Option<String>,
    lang: Option<String>,
}

/// `GET /my`: the login when there is no portal session, else the page.
async fn show(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    let lang = lang_of(q.lang.as_deref(), &jar, &headers);
    let m = lang.my();
    let session = match portal::current(&st, &jar).await {
        Ok(Some(s)) => s,
        Ok(None) => return portal::start_login(&st, &jar, &headers, m.title, "/my").await,
        Err(e) => return fault(lang, &e),
    };
    let before = match q.before.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(b)) if b > 0 => Some(b),
        Some(_) => {
            return message(
                StatusCode::BAD_REQUEST,
                lang,
                lang.t().error_title,
                m.err_before,
                true,
            );
        }
    };
    let notice = match q.notice.as_deref() {
        Some("code_sent") => m.notice_code_sent,
        Some("phone_changed") => m.notice_phone_changed,
        Some("email_changed") => m.notice_email_changed,
        Some("app_deactivated") => m.notice_app_deactivated,
        Some("renewed") => m.notice_renewed,
        _ => "",
    };
    let ctx = Ctx {
        csrf: portal::csrf_token(&jar),
        session,
        lang,
    };
    let extra = Extra {
        notice,
        ..Extra::default()
    };
    let mut resp = render(&st, &ctx, before, extra, StatusCode::OK).await;
    if let Some(p) = q.lang.as_deref().and_then(Lang::parse) {
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

/// Back to the page after a change (post/redirect/get), with a notice.
fn back(notice: &str, anchor: &str) -> Response {
    no_store(Redirect::to(&format!("/my?notice={notice}#{anchor}")).into_response())
}

/// A form body that is not a form at all.
fn bad_form(lang: Lang) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        lang,
        lang.t().error_title,
        lang.my().err_form,
        true,
    )
}

// ---------------------------------------------------------------------------------------
// Contact information
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ContactForm {
    csrf_token: Option<String>,
    which: Option<String>,
    value: Option<String>,
    code: Option<String>,
}

impl Posted for ContactForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

fn email_error_text(m: &MyTexts, e: segl_core::email::EmailError) -> &'static str {
    match e {
        segl_core::email::EmailError::Empty => m.err_email_empty,
        segl_core::email::EmailError::TooLong => m.err_email_long,
        segl_core::email::EmailError::At => m.err_email_at,
        segl_core::email::EmailError::Local => m.err_email_local,
        segl_core::email::EmailError::Domain => m.err_email_domain,
        segl_core::email::EmailError::Characters => m.err_email_chars,
    }
}

fn phone_error_text(m: &MyTexts, e: &AppError) -> String {
    match e {
        AppError::MobileEmpty => m.err_phone_empty.into(),
        AppError::MobileNotDigits => m.err_phone_digits.into(),
        AppError::MobileForeignCountry { code } => format!("{} (+{code})", m.err_phone_foreign),
        AppError::MobileBadLength { len } => format!("{} ({len})", m.err_phone_length),
        AppError::MobileNotMobile => m.err_phone_not_mobile.into(),
        _ => m.err_phone_digits.into(),
    }
}

fn code_hash(id: &str, code: &str) -> String {
    sha256_b64url(format!("segl-contact-code:{id}:{code}").as_bytes())
}

/// `POST /my/contact` (`which`, `value`): checks the new phone or email and sends a code
/// to it. Nothing changes until the code comes back.
async fn contact_start(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<ContactForm>, FormRejection>,
) -> Response {
    let (f, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let m = ctx.lang.my();
    let typed = f.value.clone().unwrap_or_default();
    let Some(which) = f.which.as_deref().and_then(Which::parse) else {
        return bad_form(ctx.lang);
    };
    let (field, parsed) = match which {
        Which::Phone => (
            "new-phone",
            MobileNumber::parse(&typed)
                .map(|n| n.as_str().to_string())
                .map_err(|e| phone_error_text(m, &e)),
        ),
        Which::Email => (
            "new-email",
            segl_core::email::parse_email(&typed).map_err(|e| email_error_text(m, e).to_string()),
        ),
    };
    let refuse = |text: String| {
        let mut extra = Extra::error(field, text);
        match which {
            Which::Phone => extra.typed_phone = typed.clone(),
            Which::Email => extra.typed_email = typed.clone(),
        }
        extra
    };
    let value = match parsed {
        Ok(v) => v,
        Err(text) => {
            let extra = refuse(text);
            return render(&st, &ctx, None, extra, StatusCode::BAD_REQUEST).await;
        }
    };
    match start_change(&st, &ctx, which, &value).await {
        Ok(Ok(())) => back("code_sent", &format!("{}-code", which.as_str())),
        Ok(Err(text)) => {
            let extra = refuse(text.to_string());
            render(&st, &ctx, None, extra, StatusCode::CONFLICT).await
        }
        Err(e) => fault(ctx.lang, &e),
    }
}

/// Records the change and queues the code to the new address, in one transaction; the
/// inner error is a refusal to show by the field.
async fn start_change(
    st: &AppState,
    ctx: &Ctx,
    which: Which,
    value: &str,
) -> Result<Result<(), &'static str>, ApiError> {
    let m = ctx.lang.my();
    let now = st.now();
    let mut tx = st.store.begin().await?;
    let Some(person) = persons::by_id(&mut tx, &ctx.session.person_id).await? else {
        return Ok(Err(m.session_ended_text));
    };
    let current = match which {
        Which::Phone => person.phone.as_deref(),
        Which::Email => person.email.as_deref(),
    };
    if current.is_some_and(|c| c.eq_ignore_ascii_case(value)) {
        return Ok(Err(m.err_same));
    }
    if contact::started_since(&mut tx, &person.id, now - 3600).await? >= CODES_PER_HOUR {
        return Ok(Err(m.err_too_many_codes));
    }
    let id = random_token(16);
    let code = random_digits(6);
    contact::start(
        &mut tx,
        &ContactChange {
            id: id.clone(),
            person_id: person.id.clone(),
            which,
            new_value: value.to_string(),
            code_hash: code_hash(&id, &code),
            failures: 0,
            created_at: now,
            expires_at: now + CODE_TTL_SECS,
            used_at: None,
            cancelled_at: None,
        },
    )
    .await?;
    // The message goes to the new address: the person as they would be after the change.
    let body = format!("{} {code}. {}", m.msg_code, m.msg_code_tail);
    let to = match which {
        Which::Phone => Person {
            phone: Some(value.to_string()),
            ..person.clone()
        },
        Which::Email => Person {
            email: Some(value.to_string()),
            ..person.clone()
        },
    };
    match which {
        Which::Phone => {
            crate::notify::sms(&mut tx, &st.store, &to, "contact.code", &body, now).await?
        }
        Which::Email => {
            crate::notify::email(&mut tx, &st.store, &to, "contact.code", &body, now).await?
        }
    };
    audit::append(
        &mut tx,
        &Event {
            event: "contact.change_started",
            subject: Some(&person.id),
            client_id: Some(PORTAL_CLIENT),
            data: json!({ "which": which.as_str() }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Ok(()))
}

/// `POST /my/contact/confirm` (`which`, `code`): applies the change when the code is the
/// one sent, in time and with tries left; tells the old address afterwards.
async fn contact_confirm(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<ContactForm>, FormRejection>,
) -> Response {
    let (f, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let m = ctx.lang.my();
    let Some(which) = f.which.as_deref().and_then(Which::parse) else {
        return bad_form(ctx.lang);
    };
    let field = match which {
        Which::Phone => "phone-code",
        Which::Email => "email-code",
    };
    let code: String = f
        .code
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let extra = Extra::error(field, m.err_code_format);
        return render(&st, &ctx, None, extra, StatusCode::BAD_REQUEST).await;
    }
    match confirm_change(&st, &ctx, which, &code).await {
        Ok(Ok(())) => back(&format!("{}_changed", which.as_str()), "contact"),
        Ok(Err(refusal)) => {
            // A change no longer open has no code field on the page: its message goes by
            // the field that asks for a new code.
            let field = match (refusal, which) {
                (CodeRefusal::Wrong { .. }, _) => field,
                (_, Which::Phone) => "new-phone",
                (_, Which::Email) => "new-email",
            };
            let extra = Extra::error(field, refusal.text(m));
            render(&st, &ctx, None, extra, StatusCode::CONFLICT).await
        }
        Err(e) => fault(ctx.lang, &e),
    }
}

/// Why a confirmation code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CodeRefusal {
    /// Not the code sent; `left` tries remain on the open change.
    Wrong { left: i64 },
    /// Wrong too many times: the change is cancelled.
    NoTries,
    /// The change was applied already.
    Used,
    /// The code's time is up.
    Expired,
    /// No change of this kind was asked for.
    Nothing,
}

impl CodeRefusal {
    fn text(self, m: &MyTexts) -> String {
        match self {
            CodeRefusal::Wrong { left } => format!("{} {left}.", m.err_code_wrong),
            CodeRefusal::NoTries => m.err_code_no_tries.into(),
            CodeRefusal::Used => m.err_code_used.into(),
            CodeRefusal::Expired => m.err_code_expired.into(),
            CodeRefusal::Nothing => m.err_code_none.into(),
        }
    }
}

async fn confirm_change(
    st: &AppState,
    ctx: &Ctx,
    which: Which,
    code: &str,
) -> Result<Result<(), CodeRefusal>, ApiError> {
    let m = ctx.lang.my();
    let now = st.now();
    let mut tx = st.store.begin().await?;
    let Some(person) = persons::by_id(&mut tx, &ctx.session.person_id).await? else {
        return Ok(Err(CodeRefusal::Nothing));
    };
    let Some(ch) = contact::latest(&mut tx, &person.id, which).await? else {
        return Ok(Err(CodeRefusal::Nothing));
    };
    if ch.used_at.is_some() {
        return Ok(Err(CodeRefusal::Used));
    }
    // The latest change is cancelled only by wrong codes (a newer one cancels the older).
    if ch.cancelled_at.is_some() {
        return Ok(Err(CodeRefusal::NoTries));
    }
    if ch.expires_at <= now {
        return Ok(Err(CodeRefusal::Expired));
    }
    let given = code_hash(&ch.id, code);
    if !bool::from(given.as_bytes().ct_eq(ch.code_hash.as_bytes())) {
        let failures = contact::failed(&mut tx, &ch.id, CODE_MAX_FAILURES, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        let left = CODE_MAX_FAILURES - failures.unwrap_or(CODE_MAX_FAILURES);
        return Ok(Err(if left <= 0 {
            CodeRefusal::NoTries
        } else {
            CodeRefusal::Wrong { left }
        }));
    }
    if !contact::use_change(&mut tx, &ch.id, now).await? {
        return Ok(Err(CodeRefusal::Used));
    }
    match which {
        Which::Phone => persons::set_phone(&mut tx, &person.id, Some(&ch.new_value)).await?,
        Which::Email => persons::set_email(&mut tx, &person.id, Some(&ch.new_value)).await?,
    };
    // The old address hears of it: if it was not the holder, they know at once.
    match which {
        Which::Phone => {
            crate::notify::sms(
                &mut tx,
                &st.store,
                &person,
                "contact.changed",
                m.msg_phone_changed,
                now,
            )
            .await?
        }
        Which::Email => {
            crate::notify::email(
                &mut tx,
                &st.store,
                &person,
                "contact.changed",
                m.msg_email_changed,
                now,
            )
            .await?
        }
    };
    audit::append(
        &mut tx,
        &Event {
            event: "contact.changed",
            subject: Some(&person.id),
            client_id: Some(PORTAL_CLIENT),
            data: json!({ "which": which.as_str(), "by": SELF_AGENT }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------------------
// App, certificate
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct PlainForm {
    csrf_token: Option<String>,
}

impl Posted for PlainForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// `POST /my/app/deactivate`: deactivates the person's active app, as the app's own
/// "deactivate" does; the app hears it at once if connected.
async fn app_deactivate(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<PlainForm>, FormRejection>,
) -> Response {
    let (_, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match deactivate_app(&st, &ctx.session.person_id).await {
        Ok(Some(app_id)) => {
            st.push.publish(&crate::push::app_key(&app_id)).await;
            back("app_deactivated", "app")
        }
        Ok(None) => {
            let extra = Extra::error("app-deactivate", ctx.lang.my().err_no_app);
            render(&st, &ctx, None, extra, StatusCode::CONFLICT).await
        }
        Err(e) => fault(ctx.lang, &e),
    }
}

async fn deactivate_app(st: &AppState, person_id: &str) -> Result<Option<String>, ApiError> {
    let now = st.now();
    let mut tx = st.store.begin().await?;
    let Some(app) = apps::active_for(&mut tx, person_id).await? else {
        return Ok(None);
    };
    // The guarded UPDATE decides a race with the app's own deactivation or a block.
    if !apps::deactivate(&mut tx, &app.app_id, apps::Deactivation::ByPerson, now).await? {
        return Ok(None);
    }
    audit::append(
        &mut tx,
        &Event {
            event: "app.deactivated",
            subject: Some(person_id),
            client_id: Some(PORTAL_CLIENT),
            data: json!({
                "app_id": app.app_id,
                "why": apps::Deactivation::ByPerson.as_str(),
                "by": "my_page",
            }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Some(app.app_id))
}

/// Why a renewal was refused.
enum RenewRefusal {
    /// The current certificate is valid beyond [`RENEW_WITHIN_SECS`]: until, and from when
    /// it can be renewed.
    NotYet { not_after: i64 },
    /// The eID is blocked (or its certificate revoked by a block).
    Blocked,
    /// No active eID (password and code device or app).
    NoEid,
    /// The CA is not running in this server.
    NoCa,
}

/// `POST /my/certificate/renew`: a new certificate through the CA's usual issuance, the
/// current one revoked as superseded in the same transaction. Ordering's maintenance
/// windows do not apply: this is no order.
async fn renew(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<PlainForm>, FormRejection>,
) -> Response {
    let (_, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let m = ctx.lang.my();
    match renew_certificate(&st, &ctx.session.person_id).await {
        Ok(Ok(())) => back("renewed", "certificates"),
        Ok(Err(r)) => {
            let text = match r {
                RenewRefusal::NotYet { not_after } => format!(
                    "{} {}. {} {}.",
                    m.err_renew_not_yet,
                    day(ctx.lang, not_after),
                    m.err_renew_opens,
                    day(ctx.lang, not_after - RENEW_WITHIN_SECS)
                ),
                RenewRefusal::Blocked => m.err_renew_blocked.into(),
                RenewRefusal::NoEid => m.err_renew_no_eid.into(),
                RenewRefusal::NoCa => m.err_renew_no_ca.into(),
            };
            let extra = Extra::error("renew", text);
            render(&st, &ctx, None, extra, StatusCode::CONFLICT).await
        }
        Err(e) => fault(ctx.lang, &e),
    }
}

async fn renew_certificate(
    st: &AppState,
    person_id: &str,
) -> Result<Result<(), RenewRefusal>, ApiError> {
    let Some(service) = &st.pki else {
        return Ok(Err(RenewRefusal::NoCa));
    };
    let pki = &service.pki;
    let now = st.now();
    let mut tx = st.store.begin().await?;
    let Some(person) = persons::by_id(&mut tx, person_id).await? else {
        return Ok(Err(RenewRefusal::NoEid));
    };
    if persons::blocked(&mut tx, person_id).await?.is_some()
        || !apps::block_requests(&mut tx, person_id).await?.is_empty()
    {
        return Ok(Err(RenewRefusal::Blocked));
    }
    if !crate::ca::eid_active(&mut tx, person_id).await? {
        return Ok(Err(RenewRefusal::NoEid));
    }
    let current = certs::current_for_person(&mut tx, person_id, now).await?;
    match &current {
        Some(c) if c.not_after - now > RENEW_WITHIN_SECS => {
            return Ok(Err(RenewRefusal::NotYet {
                not_after: c.not_after,
            }));
        }
        Some(_) => {}
        // Without a valid certificate, the latest was superseded or has expired: a new
        // one is due, unless a block revoked it.
        None if crate::ca::blocked_by_revocation(&mut tx, person_id).await? => {
            return Ok(Err(RenewRefusal::Blocked));
        }
        None => {}
    }
    if let Some(old) = &current {
        // Guarded: of two renewals at once, one revokes and the other finds nothing to
        // renew (and rolls back).
        if !certs::revoke(
            &mut tx,
            &old.serial,
            now,
            RevocationReason::Superseded.as_str(),
        )
        .await?
        {
            return Err(ApiError::Store(StoreError::Conflict));
        }
        audit::append(
            &mut tx,
            &Event {
                event: "pki.certificate_revoked",
                subject: Some(person_id),
                client_id: None,
                data: json!({
                    "serial": old.serial,
                    "ca": old.ca,
                    "reason": RevocationReason::Superseded.as_str(),
                    "by": SELF_AGENT,
                }),
            },
            now,
        )
        .await?;
    }
    let new = pki.issue_person(&mut tx, &person, now).await?;
    audit::append(
        &mut tx,
        &Event {
            event: "certificate.renewed",
            subject: Some(person_id),
            client_id: Some(PORTAL_CLIENT),
            data: json!({
                "serial": new.serial,
                "replaces": current.as_ref().map(|c| &c.serial),
                "by": SELF_AGENT,
            }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    if current.is_some() {
        // The revocation is in the store (OCSP answers from it); the CRL follows now. A
        // failure here leaves the CRL to its next regular update.
        if let Err(e) = pki.regenerate_crl(&st.store, crate::ca::PERSONS, now).await {
            crate::error::log_fault(&e);
        }
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------------------
// Block, logout
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct BlockForm {
    csrf_token: Option<String>,
    reason: Option<String>,
}

impl Posted for BlockForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// The reasons a person may give (a death is recorded by support, not by the holder).
fn self_reason(s: &str) -> Option<BlockReason> {
    match BlockReason::parse(s)? {
        BlockReason::Deceased => None,
        r => Some(r),
    }
}

fn reason_text(m: &MyTexts, r: BlockReason) -> &'static str {
    match r {
        BlockReason::Lost => m.reason_lost,
        BlockReason::Stolen => m.reason_stolen,
        BlockReason::Fraud => m.reason_fraud,
        _ => m.reason_other,
    }
}

/// `POST /my/block` (`reason`): the first step asks again, with a "Yes, block" form.
async fn block_ask(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<BlockForm>, FormRejection>,
) -> Response {
    let (f, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match f.reason.as_deref().and_then(self_reason) {
        Some(r) => {
            let extra = Extra {
                confirm_block: Some(r),
                ..Extra::default()
            };
            render(&st, &ctx, None, extra, StatusCode::OK).await
        }
        None => {
            let extra = Extra::error("block-reason", ctx.lang.my().err_block_reason);
            render(&st, &ctx, None, extra, StatusCode::BAD_REQUEST).await
        }
    }
}

/// `POST /my/block/confirm` (`reason`): blocks the eID as `segl person block` does, with
/// the agent `self`. The block ends every session, this one too.
async fn block_confirm(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<BlockForm>, FormRejection>,
) -> Response {
    let (f, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(reason) = f.reason.as_deref().and_then(self_reason) else {
        let extra = Extra::error("block-reason", ctx.lang.my().err_block_reason);
        return render(&st, &ctx, None, extra, StatusCode::BAD_REQUEST).await;
    };
    let Some(service) = &st.pki else {
        return fault(
            ctx.lang,
            &ApiError::Internal("the CA is not running in this server".into()),
        );
    };
    let person = match read_person(&st, &ctx.session.person_id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            let m = ctx.lang.my();
            return message(
                StatusCode::FORBIDDEN,
                ctx.lang,
                m.session_ended_h,
                m.session_ended_text,
                true,
            );
        }
        Err(e) => return fault(ctx.lang, &e),
    };
    match lifecycle::block(
        &st.store,
        &service.pki,
        &person,
        reason,
        SELF_AGENT,
        st.now(),
    )
    .await
    {
        Ok(done) => {
            if let Some(app) = &done.app_id {
                st.push.publish(&crate::push::app_key(app)).await;
            }
            let mut resp = no_store(Redirect::to("/my/blocked").into_response());
            clear_cookie(&st, &mut resp);
            resp
        }
        Err(e) => fault(ctx.lang, &e),
    }
}

async fn read_person(st: &AppState, person_id: &str) -> Result<Option<Person>, ApiError> {
    Ok(persons::by_id(&mut st.store.read().await?, person_id).await?)
}

fn clear_cookie(st: &AppState, resp: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&portal::clearing_cookie(st).to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `GET /my/blocked`: what a block from My page leads to. It says nothing about whom.
async fn blocked(jar: CookieJar, headers: HeaderMap) -> Response {
    let lang = lang_of(None, &jar, &headers);
    let m = lang.my();
    message(StatusCode::OK, lang, m.blocked_h, m.blocked_text, false)
}

/// `POST /my/logout`: ends the portal session.
async fn logout(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<PlainForm>, FormRejection>,
) -> Response {
    let (_, ctx) = match posted(&st, &jar, &headers, form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cookie = match portal::logout(&st, &ctx.session).await {
        Ok(c) => c,
        Err(e) => return fault(ctx.lang, &e),
    };
    let mut conn = match st.store.conn().await {
        Ok(c) => c,
        Err(e) => return fault(ctx.lang, &e.into()),
    };
    if let Err(e) = audit::append(
        &mut conn,
        &Event {
            event: "portal.logout",
            subject: Some(&ctx.session.person_id),
            client_id: Some(PORTAL_CLIENT),
            data: json!({}),
        },
        st.now(),
    )
    .await
    {
        crate::error::log_fault(&e);
    }
    let mut resp = no_store(Redirect::to("/my/logged-out").into_response());
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /my/logged-out`.
async fn logged_out(jar: CookieJar, headers: HeaderMap) -> Response {
    let lang = lang_of(None, &jar, &headers);
    let m = lang.my();
    message(
        StatusCode::OK,
        lang,
        m.logged_out_h,
        m.logged_out_text,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_from_amr() {
        let m = Lang::En.my();
        let amr = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(method_text(m, &amr(&["otp", "pwd", "mfa"])), m.method_otp);
        assert_eq!(
            method_text(m, &amr(&["swk", "pin", "mfa"])),
            m.method_app_pin
        );
        assert_eq!(
            method_text(m, &amr(&["swk", "pwd", "mfa"])),
            m.method_app_pwd
        );
        assert_eq!(method_text(m, &amr(&["xyz"])), "xyz");
    }

    #[test]
    fn times_in_the_pages_language() {
        // 2026-03-03T14:05:00Z
        let t = 1_772_546_700;
        assert_eq!(when(Lang::Nb, t), "3. mars 2026 kl. 14:05 UTC");
        assert_eq!(when(Lang::En, t), "3 March 2026, 14:05 UTC");
    }
}
