//! Self-service without a working eID: blocking one's own eID after losing a credential
//! ("sperre"), and a forgotten password. Both are flows on the ordinary login pages:
//!
//! - `/block`: the national identity number and any one remaining credential (code
//!   device, app or password: [`Purpose::Block`]); then a page to confirm, with a reason,
//!   and the same block as support's (`crate::lifecycle::block`, by `self-service`).
//! - `/password/reset`: the code device or the app and then the control questions, or the
//!   app with its own user verification alone ([`Purpose::PasswordReset`]); then a page
//!   to set the new password. All sessions and tokens end, and an email (and SMS) says the
//!   password was changed.
//!
//! The confirmation pages belong to the browser that authenticated (the flow's binding
//! cookie), carry the flow's CSRF token, work once, and only while the flow lives.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use segl_core::flow::{FlowError, LoginFlow, LoginState, Method, Purpose};
use segl_crypto::password::Verification;
use segl_crypto::random::ct_eq;
use segl_store::audit::{self, Event};
use segl_store::db::Db;
use segl_store::flows::FlowRow;
use segl_store::{grants, orders, persons};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{Internal, load};
use crate::i18n::{Lang, Texts};
use crate::lifecycle::BlockReason;
use crate::oidc::BROWSER_COOKIE;
use crate::pages;

/// The block flows' client id: not a registered client, never in a token.
pub const BLOCK_CLIENT: &str = "segl:block";
/// The reset flows' client id.
pub const RESET_CLIENT: &str = "segl:password-reset";
/// What marks a confirmation page's flow as used.
const USED: &str = "used";

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/block", get(start_block))
        .route("/block/{id}", get(block_page).post(block_post))
        .route("/password/reset", get(start_reset))
        .route("/password/reset/{id}", get(reset_page).post(reset_post))
}

async fn start(st: &AppState, jar: &CookieJar, headers: &HeaderMap, purpose: Purpose) -> Response {
    let t = crate::portal::lang(headers).t();
    let what = match purpose {
        Purpose::Block => Internal {
            client: BLOCK_CLIENT,
            title: t.block_title.into(),
            return_to: "/block".into(),
            purpose,
            methods: vec![Method::Otp, Method::App, Method::Password],
        },
        _ => Internal {
            client: RESET_CLIENT,
            title: t.reset_title.into(),
            return_to: "/password/reset".into(),
            purpose,
            methods: vec![Method::Otp, Method::App],
        },
    };
    crate::flow::start_internal(st, jar, headers, what).await
}

async fn start_block(State(st): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    start(&st, &jar, &headers, Purpose::Block).await
}

async fn start_reset(State(st): State<AppState>, jar: CookieJar, headers: HeaderMap) -> Response {
    start(&st, &jar, &headers, Purpose::PasswordReset).await
}

/// A finished block or reset flow goes on to its confirmation page.
pub(crate) fn finish(flow_id: &str, flow: &mut LoginFlow) {
    flow.redirect_to = Some(match flow.purpose {
        Purpose::Block => format!("/block/{flow_id}"),
        _ => format!("/password/reset/{flow_id}"),
    });
}

// ---------------------------------------------------------------------------------------
// Control questions in the flow

/// The person's control questions, for a flow that has reached `questions`.
pub(crate) async fn questions_of(
    c: &mut impl Db,
    flow: &LoginFlow,
) -> Result<Vec<String>, ApiError> {
    let Some(person) = crate::flow::person_of(c, flow).await? else {
        return Ok(Vec::new());
    };
    Ok(orders::questions(c, &person)
        .await?
        .into_iter()
        .map(|q| q.question)
        .collect())
}

/// Checks the answers outside the step's transaction (hashing is slow): every answer must
/// match its question's hash. Returns the verdict and the person's id.
pub(crate) async fn check_answers(
    st: &AppState,
    id: &str,
    browser: Option<&str>,
    csrf: Option<&str>,
    answers: &[String],
    now: i64,
) -> Result<(segl_core::flow::PasswordCheck, String), ApiError> {
    use segl_core::flow::PasswordCheck;
    if answers.len() > 10 || answers.iter().any(|a| a.len() > 1024) {
        return Err(ApiError::problem(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "too many or too long answers",
        ));
    }
    let (id, browser, csrf) = (
        id.to_string(),
        browser.map(str::to_string),
        csrf.map(str::to_string),
    );
    let (person, stored) = st
        .store
        .relaxed(move |mut c| {
            Box::pin(async move {
                let (_, flow) =
                    load(&mut c, &id, browser.as_deref(), Some(csrf.as_deref())).await?;
                flow.expect_answers(now)?;
                let person = crate::flow::person_of(&mut c, &flow)
                    .await?
                    .unwrap_or_default();
                let stored = orders::questions(&mut c, &person).await?;
                Ok::<_, ApiError>((person, stored))
            })
        })
        .await?;
    let hasher = st.hasher.clone();
    let given: Vec<String> = answers
        .iter()
        .map(|a| segl_core::order::normalize_answer(a))
        .collect();
    let right = st
        .hash_pool
        .run(move || {
            if stored.is_empty() || stored.len() != given.len() {
                hasher.dummy_verify("no control questions");
                return false;
            }
            // Every answer is checked, right or wrong, so the time does not say which.
            stored.iter().zip(&given).fold(true, |all, (q, a)| {
                let ok = matches!(
                    hasher.verify(a, &q.answer_phc),
                    Ok(Verification::Valid { .. })
                );
                all & ok
            })
        })
        .await
        .map_err(|e| ApiError::problem(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))?;
    let check = if right {
        PasswordCheck::Accepted
    } else {
        PasswordCheck::Wrong
    };
    Ok((check, person))
}

/// The answers' step inside the transaction: the flow moves on or counts a failure, which
/// is audited.
pub(crate) async fn answers_step(
    c: &mut impl Db,
    flow: &mut LoginFlow,
    check: segl_core::flow::PasswordCheck,
    person_id: &str,
    now: i64,
) -> Result<Result<(), FlowError>, ApiError> {
    let right = check == segl_core::flow::PasswordCheck::Accepted;
    if !right && !person_id.is_empty() {
        audit::append(
            c,
            &Event {
                event: "password_reset.wrong_answers",
                subject: Some(person_id),
                client_id: Some(RESET_CLIENT),
                data: json!({}),
            },
            now,
        )
        .await?;
    }
    Ok(flow.answers_checked(right, now))
}

// ---------------------------------------------------------------------------------------
// The confirmation pages

#[derive(Template)]
#[template(path = "self_service.html")]
struct ConfirmPage<'a> {
    lang: &'static str,
    t: &'static Texts,
    kind: &'static str,
    action: String,
    csrf: &'a str,
    name: &'a str,
    error: &'a str,
    field: &'a str,
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    pages::html(status, page.render())
}

/// The flow behind a confirmation page: this browser's, of this purpose, authenticated,
/// alive and not used yet; with the person.
async fn confirmed(
    st: &AppState,
    jar: &CookieJar,
    id: &str,
    purpose: Purpose,
) -> Result<(FlowRow, LoginFlow, persons::Person), ApiError> {
    let mut c = st.store.read().await?;
    let (row, flow) = load(&mut c, id, jar.get(BROWSER_COOKIE).map(|c| c.value()), None).await?;
    let gone = || {
        ApiError::problem(
            StatusCode::GONE,
            "flow_expired",
            "this page has expired or was used: start again",
        )
    };
    if flow.purpose != purpose || flow.state != LoginState::Done {
        return Err(ApiError::problem(
            StatusCode::CONFLICT,
            "invalid_state",
            "authenticate first",
        ));
    }
    if flow.is_expired(st.now()) || flow.sealed_result.as_deref() == Some(USED) {
        return Err(gone());
    }
    let person = crate::flow::person_of(&mut c, &flow)
        .await?
        .and_then(|p| Some(p).filter(|p| !p.is_empty()));
    let Some(person) = person else {
        return Err(ApiError::Internal(
            "a finished flow without a person".into(),
        ));
    };
    let person = persons::by_id(&mut c, &person)
        .await?
        .ok_or_else(|| ApiError::Internal("a finished flow's person vanished".into()))?;
    Ok((row, flow, person))
}

/// Marks the flow used, if it still is unused and the CSRF token is its own; false when
/// another request used it first.
async fn use_flow(st: &AppState, jar: &CookieJar, id: &str, csrf: &str) -> Result<bool, ApiError> {
    let flow_id = id;
    let (id, browser, csrf) = (
        id.to_string(),
        jar.get(BROWSER_COOKIE).map(|c| c.value().to_string()),
        csrf.to_string(),
    );
    let used = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move {
                let (mut row, mut flow) =
                    load(&mut tx, &id, browser.as_deref(), Some(Some(&csrf))).await?;
                if flow.sealed_result.as_deref() == Some(USED) {
                    return Ok(false);
                }
                flow.sealed_result = Some(USED.into());
                row.data =
                    serde_json::to_string(&flow).map_err(|e| ApiError::Internal(e.to_string()))?;
                segl_store::flows::update(&mut tx, &mut row).await?;
                Ok(true)
            })
        })
        .await;
    // This node's copy of the flow (see segl_store::flows) is older than the database's now.
    st.store.forget_flow(flow_id);
    used
}

/// [`confirmed`] for a form post: also the flow's CSRF token. Refusals are pages.
async fn confirmed_post(
    st: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    id: &str,
    purpose: Purpose,
    csrf: &str,
) -> Result<(FlowRow, LoginFlow, persons::Person, Lang), Response> {
    let (row, flow, person) = confirmed(st, jar, id, purpose)
        .await
        .map_err(|e| problem_page(&e, headers))?;
    if !ct_eq(row.csrf.as_bytes(), csrf.as_bytes()) {
        return Err(pages::error_page(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is wrong",
            &pages::langs_from(None, headers),
        ));
    }
    let lang = lang_of(&flow, headers);
    Ok((row, flow, person, lang))
}

fn problem_page(e: &ApiError, headers: &HeaderMap) -> Response {
    let langs = pages::langs_from(None, headers);
    let (status, _, detail, _) = e.parts();
    pages::error_page(status, &detail, &langs)
}

fn lang_of(flow: &LoginFlow, headers: &HeaderMap) -> Lang {
    Lang::pick(flow.request.ui_locales.iter().map(String::as_str))
        .unwrap_or_else(|| crate::portal::lang(headers))
}

async fn block_page(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    confirm_page(&st, &jar, &headers, &id, Purpose::Block).await
}

/// The confirmation page of a finished block or reset flow, as it first shows.
async fn confirm_page(
    st: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    id: &str,
    purpose: Purpose,
) -> Response {
    let (kind, action) = match purpose {
        Purpose::Block => ("block", format!("/block/{id}")),
        _ => ("reset", format!("/password/reset/{id}")),
    };
    match confirmed(st, jar, id, purpose).await {
        Ok((row, flow, person)) => {
            let lang = lang_of(&flow, headers);
            html(
                StatusCode::OK,
                &ConfirmPage {
                    lang: lang.tag(),
                    t: lang.t(),
                    kind,
                    action,
                    csrf: &row.csrf,
                    name: &person.name,
                    error: "",
                    field: "",
                },
            )
        }
        Err(e) => problem_page(&e, headers),
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct BlockForm {
    csrf_token: String,
    reason: String,
}

async fn block_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<BlockForm>,
) -> Response {
    let (row, _, person, lang) =
        match confirmed_post(&st, &jar, &headers, &id, Purpose::Block, &form.csrf_token).await {
            Ok(x) => x,
            Err(page) => return page,
        };
    // Self-service names what happened to the credential; "deceased" is for support.
    let reason = match BlockReason::parse(&form.reason) {
        Some(
            r @ (BlockReason::Lost | BlockReason::Stolen | BlockReason::Fraud | BlockReason::Other),
        ) => r,
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                &ConfirmPage {
                    lang: lang.tag(),
                    t: lang.t(),
                    kind: "block",
                    action: format!("/block/{id}"),
                    csrf: &row.csrf,
                    name: &person.name,
                    error: lang.t().block_reason_missing,
                    field: "reason",
                },
            );
        }
    };
    let Some(service) = &st.pki else {
        return ApiError::Internal("the CA is not running".into()).into_response();
    };
    match use_flow(&st, &jar, &id, &form.csrf_token).await {
        Ok(true) => {}
        Ok(false) => {
            return problem_page(
                &ApiError::problem(
                    StatusCode::GONE,
                    "flow_expired",
                    "this page was used already",
                ),
                &headers,
            );
        }
        Err(e) => return problem_page(&e, &headers),
    }
    match crate::lifecycle::block(
        &st.store,
        &service.pki,
        &person,
        reason,
        "self-service",
        st.now(),
    )
    .await
    {
        Ok(_) => {
            st.metrics.self_service.inc();
            pages::message_page(
                StatusCode::OK,
                lang,
                lang.t().block_done_title,
                lang.t().block_done_text,
            )
        }
        Err(e) => problem_page(&e, &headers),
    }
}

async fn reset_page(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    confirm_page(&st, &jar, &headers, &id, Purpose::PasswordReset).await
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ResetForm {
    csrf_token: String,
    password: String,
    password2: String,
}

const PASSWORD_CHANGED_TEXT: &str = "segl: The password of your eID was just changed, and you \
     were logged out everywhere. If this was not you, block your eID at once and contact us.";

async fn reset_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ResetForm>,
) -> Response {
    let (row, flow, person, lang) = match confirmed_post(
        &st,
        &jar,
        &headers,
        &id,
        Purpose::PasswordReset,
        &form.csrf_token,
    )
    .await
    {
        Ok(x) => x,
        Err(page) => return page,
    };
    let again = |status: StatusCode, error: String, field: &'static str| {
        html(
            status,
            &ConfirmPage {
                lang: lang.tag(),
                t: lang.t(),
                kind: "reset",
                action: format!("/password/reset/{id}"),
                csrf: &row.csrf,
                name: &person.name,
                error: &error,
                field,
            },
        )
    };
    if form.password != form.password2 {
        return again(
            StatusCode::BAD_REQUEST,
            lang.t().reset_mismatch.into(),
            "password2",
        );
    }
    if let Err(e) = segl_core::password::check_new_password(
        &form.password,
        &st.settings.policy.password,
        flow.nin.as_ref(),
    ) {
        return again(
            StatusCode::BAD_REQUEST,
            format!("{}: {e}", lang.t().password_label),
            "password",
        );
    }
    let now = st.now();
    match st.store.conn().await {
        Ok(mut c) => {
            if let Err(e) = crate::app_api::password_change_allowed(
                &mut c,
                &st.settings.policy.app,
                &person.id,
                now,
            )
            .await
            {
                return problem_page(&e, &headers);
            }
        }
        Err(e) => return problem_page(&e.into(), &headers),
    }
    let hasher = st.hasher.clone();
    let pw = zeroize::Zeroizing::new(form.password.clone());
    let phc = match st.hash_pool.run(move || hasher.hash(&pw)).await {
        Ok(Ok(phc)) => phc,
        _ => return ApiError::Internal("hashing the new password".into()).into_response(),
    };
    match use_flow(&st, &jar, &id, &form.csrf_token).await {
        Ok(true) => {}
        Ok(false) => {
            return problem_page(
                &ApiError::problem(
                    StatusCode::GONE,
                    "flow_expired",
                    "this page was used already",
                ),
                &headers,
            );
        }
        Err(e) => return problem_page(&e, &headers),
    }
    let (store, p) = (st.store.clone(), person.clone());
    let amr = flow.amr.clone();
    let done = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move {
                persons::set_password(&mut tx, &p.id, &phc, now).await?;
                let (sessions, tokens) = grants::revoke_person(&mut tx, &p.id).await?;
                crate::notify::email(
                    &mut tx,
                    &store,
                    &p,
                    "password.changed",
                    PASSWORD_CHANGED_TEXT,
                    now,
                )
                .await?;
                crate::notify::sms(
                    &mut tx,
                    &store,
                    &p,
                    "password.changed",
                    PASSWORD_CHANGED_TEXT,
                    now,
                )
                .await?;
                audit::append(
                    &mut tx,
                    &Event {
                        event: "password.reset",
                        subject: Some(&p.id),
                        client_id: Some(RESET_CLIENT),
                        data: json!({"amr": amr, "sessions": sessions, "tokens": tokens}),
                    },
                    now,
                )
                .await?;
                Ok::<_, ApiError>(())
            })
        })
        .await;
    match done {
        Ok(()) => {
            st.metrics.self_service.inc();
            pages::message_page(
                StatusCode::OK,
                lang,
                lang.t().reset_done_title,
                lang.t().reset_done_text,
            )
        }
        Err(e) => problem_page(&e, &headers),
    }
}
