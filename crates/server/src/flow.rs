//! The flow API (`/api/v1/flows/{id}/…`) and the steps it shares with the pages.
//!
//! Each step loads the flow, checks its binding to the browser (cookie) and the CSRF token,
//! lets `segl_core::flow` decide, and saves the flow together with the credential's counters
//! and the audit events in one transaction. A flow saved by another request in the meantime
//! makes the later one fail with a conflict instead of overwriting it.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use segl_core::flow::{FlowError, LoginFlow, LoginState, OtpCheck, PasswordCheck, Purpose};
use segl_crypto::otp::{self, OtpOutcome};
use segl_crypto::password::Verification;
use segl_crypto::pskc::TokenKind;
use segl_crypto::random::{ct_eq, sha256_b64url};
use segl_store::audit::{self, Event};
use segl_store::db::{Body, Db, Txn};
use segl_store::devices::{self, DeviceState};
use segl_store::flows::{self, FlowRow};
use segl_store::{StoreError, persons};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::oidc::{self, BROWSER_COOKIE};
use crate::pages::METHOD_COOKIE;

/// The flow API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/flows/{id}", get(get_flow))
        .route("/api/v1/flows/{id}/identify", post(api_identify))
        .route("/api/v1/flows/{id}/method", post(api_method))
        .route("/api/v1/flows/{id}/otp", post(api_otp))
        .route("/api/v1/flows/{id}/password", post(api_password))
        .route("/api/v1/flows/{id}/answers", post(api_answers))
        .route("/api/v1/flows/{id}/cancel", post(api_cancel))
        .route("/api/v1/flows/{id}/app", post(api_app))
        .route(
            "/api/v1/flows/{id}/events",
            get(crate::app_login::flow_events),
        )
        .route("/api/v1/flows/{id}/qr", get(crate::app_login::flow_qr))
}

/// A step a client can take.
#[derive(Debug)]
pub enum Step {
    /// National identity number.
    Identify(String),
    /// Pick a method.
    Method(String),
    /// Back to the list of methods.
    ChooseAnother,
    /// One-time code.
    Otp(String),
    /// Password.
    Password(String),
    /// Answers to the control questions, in their order.
    Answers(Vec<String>),
    /// Collect the app's answer (still waiting, approved, denied or lapsed).
    AppCollect,
    /// Give up.
    Cancel,
}

impl Step {
    /// The step as its transaction needs it: the password and the answers were checked
    /// before it (see `Checked`), so they are left out rather than copied again.
    fn for_tx(&self) -> Step {
        match self {
            Step::Identify(n) => Step::Identify(n.clone()),
            Step::Method(m) => Step::Method(m.clone()),
            Step::ChooseAnother => Step::ChooseAnother,
            Step::Otp(c) => Step::Otp(c.clone()),
            Step::Password(_) => Step::Password(String::new()),
            Step::Answers(_) => Step::Answers(Vec::new()),
            Step::AppCollect => Step::AppCollect,
            Step::Cancel => Step::Cancel,
        }
    }
}

/// A flow after a step, with cookies the browser should get.
pub struct Stepped {
    /// The flow record.
    pub row: FlowRow,
    /// The flow.
    pub flow: LoginFlow,
    /// Cookies to set (session, remembered method).
    pub cookies: Vec<Cookie<'static>>,
    /// Push keys to publish once the step has committed (an app with a new request).
    pub pushes: Vec<String>,
    /// What the step adds to the metrics once it has committed.
    tally: Tally,
}

/// What a step adds to the metrics: counted once its transaction has committed, so an
/// attempt that was undone and run again counts once.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    otp_failures: u64,
    logins_ok: u64,
    logins_failed: u64,
}

impl Tally {
    fn count(&self, st: &AppState) {
        st.metrics.otp_failures.inc_by(self.otp_failures);
        st.metrics.logins_ok.inc_by(self.logins_ok);
        st.metrics.logins_failed.inc_by(self.logins_failed);
    }
}

/// The flow as the API shows it.
pub fn view(row: &FlowRow, flow: &LoginFlow) -> Value {
    let mut v = json!({
        "id": row.id,
        "kind": row.kind,
        "state": flow.state.as_str(),
        "methods": flow.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "method": flow.method.map(|m| m.as_str()),
        "csrf_token": row.csrf,
        "expires_at": rfc3339(flow.expires_at),
        "client_name": flow.request.client_name,
        "failures": flow.failures,
    });
    if let Some(r) = &flow.redirect_to {
        v["redirect_to"] = json!(r);
    }
    if flow.state == LoginState::Questions {
        v["questions"] = json!(flow.questions);
    }
    if let Some(f) = flow.failure {
        v["error"] = json!({"code": f.as_str(), "message": failure_message(f)});
    }
    if let Some(a) = &flow.app {
        v["app"] = json!({
            "verification_code": a.verification_code,
            "expires_at": rfc3339(a.expires_at),
            "qr_url": format!("/api/v1/flows/{}/qr", row.id),
            "events_url": format!("/api/v1/flows/{}/events", row.id),
        });
    }
    v
}

fn failure_message(f: segl_core::flow::FailureReason) -> &'static str {
    use segl_core::flow::FailureReason as R;
    match f {
        R::TooManyAttempts => "too many failed attempts",
        R::Cancelled => "the login was cancelled",
        R::DeviceBlocked => "the code device is blocked",
        R::PasswordLocked => "the password is locked",
        R::DeniedInApp => "the login was refused in the app",
    }
}

/// A unix time as RFC 3339 (UTC).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn decode(row: &FlowRow) -> Result<LoginFlow, ApiError> {
    if row.kind != "login" {
        return Err(ApiError::problem(
            StatusCode::CONFLICT,
            "invalid_state",
            "this flow is not a login",
        ));
    }
    serde_json::from_str(&row.data).map_err(|e| ApiError::Store(StoreError::Corrupt(e.to_string())))
}

/// A flow segl starts for one of its own pages (activating the app, My page, blocking, a
/// forgotten password): no relying party, the level high, its purpose and methods.
pub(crate) struct Internal {
    /// The flows' pseudo client id (`segl:…`): never a registered client, never in a token.
    pub client: &'static str,
    /// What the login pages show as the service's name.
    pub title: String,
    /// The page (a path on segl) the flow returns to.
    pub return_to: String,
    /// What the authentication is for.
    pub purpose: Purpose,
    /// The methods offered.
    pub methods: Vec<segl_core::flow::Method>,
}

/// Starts an [`Internal`] flow (in the browser's languages) and sends the browser to the
/// login pages.
pub(crate) async fn start_internal(
    st: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    what: Internal,
) -> Response {
    let langs = crate::pages::langs_from(None, headers);
    let now = st.now();
    let policy = &st.settings.policy;
    let request = segl_core::oidc::AuthRequest::internal(
        what.client.into(),
        what.title,
        format!("{}{}", st.settings.issuer, what.return_to),
        segl_core::oidc::ACR_HIGH,
        None,
        langs.clone(),
    );
    let mut flow = match LoginFlow::new(
        request,
        None,
        now,
        policy.flow_ttl_secs,
        policy.flow_max_failures,
    ) {
        Ok(f) => f,
        Err(e) => {
            return crate::pages::error_page(StatusCode::BAD_REQUEST, &e.to_string(), &langs);
        }
    };
    flow.purpose = what.purpose;
    flow.methods = what.methods;
    start_in_browser(st, jar, &flow, None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Stores a new flow bound to this browser (which gets its browser cookie if it has none)
/// and sends the browser to the login pages. With `order`, the flow becomes that signing
/// order's flow in the same transaction; an order no longer pending is `410 Gone`.
pub(crate) async fn start_in_browser(
    st: &AppState,
    jar: &CookieJar,
    flow: &LoginFlow,
    order: Option<String>,
) -> Result<Response, ApiError> {
    let (browser, new_cookie) = match jar.get(BROWSER_COOKIE) {
        Some(c) if c.value().len() >= 32 => (c.value().to_string(), false),
        _ => (segl_crypto::random::random_token(32), true),
    };
    let id = segl_crypto::random::random_token(18);
    let row = FlowRow {
        id: id.clone(),
        kind: "login".into(),
        binding_hash: sha256_b64url(browser.as_bytes()),
        csrf: segl_crypto::random::random_token(24),
        data: serde_json::to_string(flow).map_err(|e| ApiError::Internal(e.to_string()))?,
        version: 1,
        expires_at: flow.expires_at,
    };
    let now = st.now();
    let kept = row.clone();
    st.store
        .transact(move |mut tx| {
            Box::pin(async move {
                flows::insert(&mut tx, &row).await?;
                if let Some(order) = order
                    && !segl_store::sign::set_flow(&mut tx, &order, &row.id, now).await?
                {
                    return Err(ApiError::problem(
                        StatusCode::GONE,
                        "order_not_pending",
                        "this signing order is no longer open",
                    ));
                }
                Ok(())
            })
        })
        .await?;
    st.store.remember_flow(&kept);
    st.metrics.flows_started.inc();
    let mut resp = axum::response::Redirect::to(&format!("/login?flow={id}")).into_response();
    if new_cookie
        && let Ok(v) = HeaderValue::from_str(&oidc::browser_cookie(st, browser).to_string())
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Loads a flow and checks the browser binding and, for steps, the CSRF token.
pub async fn load(
    c: &mut impl Db,
    id: &str,
    browser: Option<&str>,
    csrf: Option<Option<&str>>,
) -> Result<(FlowRow, LoginFlow), ApiError> {
    let row = flows::get(c, id).await?.ok_or_else(|| {
        ApiError::problem(StatusCode::NOT_FOUND, "flow_not_found", "no such flow")
    })?;
    let flow = check_bound(&row, browser, csrf)?;
    Ok((row, flow))
}

/// The flow of a step: `cached` (this node's copy, see [`segl_store::flows`]) when given,
/// else read from the database; either way bound to this browser, with its CSRF token.
async fn load_for_step(
    c: &mut impl Db,
    at: &StepAt,
    cached: Option<FlowRow>,
) -> Result<(FlowRow, LoginFlow), ApiError> {
    let (browser, csrf) = (at.browser.as_deref(), Some(at.csrf.as_deref()));
    match cached {
        Some(row) => {
            let flow = check_bound(&row, browser, csrf)?;
            Ok((row, flow))
        }
        None => load(c, &at.id, browser, csrf).await,
    }
}

/// Checks the browser binding and, when `csrf` is given, the CSRF token; decodes the flow.
/// Both are set when the flow is made and never change, so a cached row answers as well.
fn check_bound(
    row: &FlowRow,
    browser: Option<&str>,
    csrf: Option<Option<&str>>,
) -> Result<LoginFlow, ApiError> {
    let bound = browser.is_some_and(|b| {
        ct_eq(
            sha256_b64url(b.as_bytes()).as_bytes(),
            row.binding_hash.as_bytes(),
        )
    });
    if !bound {
        return Err(ApiError::problem(
            StatusCode::FORBIDDEN,
            "flow_binding",
            "this login belongs to another browser; start again from the service",
        ));
    }
    if let Some(token) = csrf
        && !token.is_some_and(|t| ct_eq(t.as_bytes(), row.csrf.as_bytes()))
    {
        return Err(ApiError::problem(
            StatusCode::FORBIDDEN,
            "csrf_mismatch",
            "the CSRF token is missing or wrong",
        ));
    }
    decode(row)
}

/// Loads a flow for a read by the browser bound to it (no CSRF token: nothing changes).
pub async fn load_for_browser(
    st: &AppState,
    jar: &CookieJar,
    id: &str,
) -> Result<(FlowRow, LoginFlow), ApiError> {
    let mut c = st.store.read().await?;
    load(&mut c, id, jar.get(BROWSER_COOKIE).map(|c| c.value()), None).await
}

/// Runs one step: the shared path of the API and the pages.
pub async fn run_step(
    st: &AppState,
    id: &str,
    browser: Option<&str>,
    csrf: Option<&str>,
    step: Step,
) -> Result<Stepped, ApiError> {
    let now = st.now();
    // Moving between the first steps is only the flow's progress: a power cut may take it
    // back (the person repeats a step), so it need not wait for the disk. Codes, passwords,
    // audit events and the finished login do; `apply_step` refuses, as a bug, a relaxed
    // step that would end the flow.
    let relaxed = matches!(
        step,
        Step::Identify(_) | Step::Method(_) | Step::ChooseAnother
    );
    let at = StepAt {
        id: id.to_string(),
        browser: browser.map(str::to_string),
        csrf: csrf.map(str::to_string),
        now,
        relaxed,
        batched: !relaxed,
    };
    // This node's copy of the flow saves reading it; not for collecting the app's answer,
    // which a waiting page asks for again and again, and which would then always write.
    let cached = match step {
        Step::AppCollect => None,
        _ => st.store.cached_flow(id, now),
    };
    let used_copy = cached.is_some();
    // A step that failed with the copy may have met a stale one (see segl_store::flows); a
    // relaxed step that would write more than the flow needs a transaction (Conflict); a
    // batched one may have needed one, or lost a race. Each runs once more, from the
    // database, in a transaction. Nothing of the failed attempt remains: its writes were
    // undone or never sent, and its counters and pushes count only once a transaction has
    // committed.
    let (stepped, result) = match attempt(st, &at, &step, cached).await {
        Ok(done) => done,
        Err(e) if used_copy || retry_in_transaction(&at, &e) => {
            tracing::debug!(flow = id, error = %e, "flow step: once more from the database");
            let at = StepAt {
                relaxed: false,
                batched: false,
                ..at
            };
            attempt(st, &at, &step, None).await?
        }
        Err(e) => return Err(e),
    };
    // Off the response path: the answer does not wait for NOTIFY, so its timing does not
    // tell whether the person has an app.
    if !stepped.pushes.is_empty() {
        let (push, keys) = (st.push.clone(), stepped.pushes.clone());
        tokio::spawn(async move {
            for key in &keys {
                push.publish(key).await;
            }
        });
    }
    result?;
    // The person approved a signing order: the signatures are made now, outside the
    // step's transaction, before the browser is sent on.
    if stepped.flow.purpose == Purpose::Sign
        && stepped.flow.state == LoginState::Done
        && let Some(order) = &stepped.flow.order
    {
        crate::sign::complete(st, order).await;
    }
    Ok(stepped)
}

/// Whether a failed first attempt may run again in a transaction: a relaxed or batched one
/// that met a changed row, or a batched one that needed a transaction.
fn retry_in_transaction(at: &StepAt, e: &ApiError) -> bool {
    match e {
        ApiError::Store(StoreError::Conflict) => at.relaxed || at.batched,
        ApiError::Store(StoreError::NeedsTransaction) => at.batched,
        _ => false,
    }
}

/// One attempt at a step, with `cached` as its flow when given. Its transaction committed
/// when this returns `Ok`, even with a refused step; this node then keeps the flow.
async fn attempt(
    st: &AppState,
    at: &StepAt,
    step: &Step,
    cached: Option<FlowRow>,
) -> Result<StepOutcome, ApiError> {
    let id = &at.id;
    let (browser, csrf, now) = (at.browser.as_deref(), at.csrf.as_deref(), at.now);
    // The password is checked outside the transaction: hashing takes tens of milliseconds
    // and must not hold the database's write lock.
    let mut cached = cached;
    let password_check = match step {
        Step::Password(pw) => Some(check_password(st, at, pw, cached.take()).await?),
        Step::Answers(answers) => {
            let (check, person) =
                crate::self_service::check_answers(st, id, browser, csrf, answers, now).await?;
            Some(Checked {
                check,
                person,
                read: None,
            })
        }
        _ => None,
    };
    // Batched (one statement on PostgreSQL, see Store::batched): the code step, and the
    // password step with a right password. A wrong one is counted in a transaction at once:
    // a second attempt would hash it again.
    let batched = at.batched
        && match (step, &password_check) {
            (Step::Otp(_), _) => true,
            (Step::Password(_), Some(c)) => c.check == PasswordCheck::Accepted,
            _ => false,
        };
    // One transaction: on SQLite one job of the group-commit writer (see Store::transact).
    let body = step_body(
        st.clone(),
        at.clone(),
        step.for_tx(),
        password_check,
        cached,
    );
    let done = if at.relaxed {
        st.store.relaxed(body).await
    } else if batched {
        st.store.batched(body).await
    } else {
        st.store.transact(body).await
    };
    match &done {
        Ok((stepped, _)) => {
            stepped.tally.count(st);
            st.store.remember_flow(&stepped.row);
        }
        // The flow's state is unknown here (the commit itself may have failed).
        Err(_) => st.store.forget_flow(id),
    }
    done
}

type StepOutcome = (Stepped, Result<(), FlowError>);

/// Where and when a step happens.
#[derive(Clone)]
struct StepAt {
    id: String,
    browser: Option<String>,
    csrf: Option<String>,
    now: i64,
    /// The transaction will not wait for the disk, so it may not end the flow.
    relaxed: bool,
    /// A code or right password may be written as one batch (see `attempt`).
    batched: bool,
}

fn step_body(
    st: AppState,
    at: StepAt,
    step: Step,
    password_check: Option<Checked>,
    cached: Option<FlowRow>,
) -> impl for<'a> FnOnce(Txn<'a>) -> Body<'a, Result<StepOutcome, ApiError>> + Send + 'static {
    move |mut tx| {
        Box::pin(async move { apply_step(&st, &mut tx, at, step, password_check, cached).await })
    }
}

/// The step inside its transaction. A refused step (wrong code…) is still saved, with its
/// counters and audit events, and its refusal returned beside the flow; an error undoes it.
async fn apply_step(
    st: &AppState,
    tx: &mut impl Db,
    at: StepAt,
    step: Step,
    mut password_check: Option<Checked>,
    cached: Option<FlowRow>,
) -> Result<StepOutcome, ApiError> {
    let now = at.now;
    // The flow as the password check read it before hashing, or this node's copy: not read
    // again. Either may have changed since, so the version-guarded save below runs even when
    // the step changed nothing; if it fails, this step's writes are undone.
    let read_before = password_check.as_mut().and_then(|c| c.read.take());
    let reused = read_before.is_some() || cached.is_some();
    let (mut row, mut flow) = match read_before {
        Some(read) => read,
        None => load_for_step(tx, &at, cached).await?,
    };
    let mut tally = Tally::default();
    let before = row.data.clone();
    let state_before = flow.state;
    let request_before = flow.app.as_ref().map(|a| a.request_id.clone());
    let mut cookies = Vec::new();
    let mut pushes = Vec::new();
    // The person, when a step has already looked them up.
    let mut known_person = None;
    let result: Result<(), FlowError> = match step {
        Step::Identify(nin) => flow.identify(&nin, now),
        Step::Method(m) => flow.choose_method(&m, now).map(|m| {
            cookies.push(method_cookie(st, m.as_str()));
        }),
        Step::ChooseAnother => flow.choose_another(now),
        Step::Otp(code) => otp_step(st, tx, &mut flow, &code, now, &mut tally).await?,
        Step::Password(_) => match password_check {
            Some(Checked {
                check,
                person: person_id,
                ..
            }) => {
                let r = password_step(st, tx, &mut flow, check, &person_id, now).await?;
                known_person = Some(person_id).filter(|p| !p.is_empty());
                r
            }
            None => Err(FlowError::InvalidState("password")),
        },
        Step::Answers(_) => match password_check {
            Some(Checked {
                check,
                person: person_id,
                ..
            }) => {
                let r = crate::self_service::answers_step(tx, &mut flow, check, &person_id, now)
                    .await?;
                known_person = Some(person_id).filter(|p| !p.is_empty());
                r
            }
            None => Err(FlowError::InvalidState("questions")),
        },
        Step::AppCollect => crate::app_login::collect(tx, &mut flow, now).await?,
        Step::Cancel => flow.cancel(now),
    };
    // On PostgreSQL a relaxed step's statements commit one by one, so it may write nothing
    // but the flow (whose save is version-guarded): a step that would also open or cancel
    // an app's request is run again in a transaction (see run_step).
    let request_changes = flow.app.as_ref().map(|a| &a.request_id) != request_before.as_ref();
    if at.relaxed && tx.is_postgres() && (request_changes || flow.needs_app_request()) {
        return Err(ApiError::Store(StoreError::Conflict));
    }
    // The request the flow waited for is no longer wanted: the app drops it from its screen.
    if request_before.is_some() && request_changes {
        for app_id in segl_store::apps::cancel_for_flow(tx, &row.id, now).await? {
            pushes.push(crate::push::app_key(&app_id));
        }
    }
    if flow.state == LoginState::Questions && flow.questions.is_empty() {
        flow.questions = crate::self_service::questions_of(tx, &flow).await?;
    }
    if flow.needs_app_request()
        && let Some(app_id) =
            crate::app_login::open_request(st, tx, &row.id, &mut flow, now).await?
    {
        pushes.push(crate::push::app_key(&app_id));
    }
    if at.relaxed
        && flow.state != state_before
        && matches!(flow.state, LoginState::Done | LoginState::Failed)
    {
        // Its code, session or audit event would not be durable: nothing is written.
        return Err(ApiError::Internal(format!(
            "a relaxed step ended the flow ({})",
            flow.state.as_str()
        )));
    }
    if flow.state == LoginState::Done
        && flow.redirect_to.is_none()
        && let Some(cookie) = finish(st, tx, &row.id, &mut flow, known_person, now).await?
    {
        if flow.purpose == Purpose::Login {
            tally.logins_ok += 1;
        }
        cookies.push(cookie);
    }
    if flow.state == LoginState::Failed && flow.redirect_to.is_none() {
        match flow.purpose {
            // The client hears of a failed or cancelled login as access_denied (RFC 6749
            // 4.1.2.1).
            Purpose::Login => flow.redirect_to = Some(denied_url(st, &flow)),
            Purpose::Sign => crate::sign::flow_failed(tx, &row.id, &mut flow, now).await?,
            // The page the person came from says what failed.
            Purpose::Portal => flow.redirect_to = Some(flow.request.redirect_uri.clone()),
            Purpose::AppActivation | Purpose::Block | Purpose::PasswordReset => {}
        }
    }
    if flow.state == LoginState::Failed && !before.contains("\"state\":\"failed\"") {
        tally.logins_failed += 1;
        let subject = person_of(tx, &flow).await?;
        audit::append(
            tx,
            &Event {
                event: "login.failure",
                subject: subject.as_deref(),
                client_id: Some(&flow.request.client_id),
                data: json!({"reason": flow.failure.map(|f| f.as_str())}),
            },
            now,
        )
        .await?;
    }
    row.data = serde_json::to_string(&flow).map_err(|e| ApiError::Internal(e.to_string()))?;
    if row.data != before || reused {
        flows::update(tx, &mut row).await?;
    }
    Ok((
        Stepped {
            row,
            flow,
            cookies,
            pushes,
            tally,
        },
        result,
    ))
}

fn denied_url(st: &AppState, flow: &LoginFlow) -> String {
    let Ok(mut url) = url::Url::parse(&flow.request.redirect_uri) else {
        return String::new();
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", "access_denied");
        q.append_pair(
            "error_description",
            flow.failure.map_or("failed", |f| f.as_str()),
        );
        if let Some(s) = &flow.request.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &st.settings.issuer);
    }
    url.to_string()
}

pub(crate) async fn person_of(
    c: &mut impl Db,
    flow: &LoginFlow,
) -> Result<Option<String>, ApiError> {
    Ok(match &flow.nin {
        Some(n) => persons::by_nin(c, n.as_str()).await?.map(|p| p.id),
        None => None,
    })
}

fn method_cookie(st: &AppState, method: &str) -> Cookie<'static> {
    let mut c = Cookie::new(METHOD_COOKIE, method.to_string());
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(st.settings.cookie_secure);
    c.set_path("/");
    c.set_max_age(time::Duration::days(365));
    c
}

/// Checks the code against the person's device and records the outcome.
async fn otp_step(
    st: &AppState,
    c: &mut impl Db,
    flow: &mut LoginFlow,
    code: &str,
    now: i64,
    tally: &mut Tally,
) -> Result<Result<(), FlowError>, ApiError> {
    if let Err(e) = flow.expect_otp(now) {
        return Ok(Err(e));
    }
    let device = match &flow.nin {
        Some(n) => devices::for_nin(c, n.as_str()).await?,
        None => None,
    };
    let person = match device.as_ref().and_then(|d| d.person_id.clone()) {
        Some(p) => Some(p),
        None => person_of(c, flow).await?,
    };
    let policy = &st.settings.policy;
    let check = match device {
        // Unknown person or no device: the same answer as a wrong code, and the same work
        // (a write to the audit log in this transaction), so neither the page nor the
        // response time tells who has an eID. The entry names no person and no number.
        None => {
            tally.otp_failures += 1;
            otp_event(
                c,
                flow,
                person.as_deref(),
                "otp.failure",
                json!({"serial": null, "reason": "no code device"}),
                now,
            )
            .await?;
            OtpCheck::Wrong
        }
        Some(d) if d.state == DeviceState::Blocked => OtpCheck::Blocked,
        Some(d) => {
            let secret = d.secret(&st.store)?;
            let outcome = match d.kind {
                TokenKind::Hotp { .. } => otp::verify_hotp(
                    d.algorithm,
                    &secret,
                    d.digits,
                    d.counter,
                    policy.hotp_look_ahead,
                    code,
                ),
                TokenKind::Totp { step, t0 } => otp::verify_totp(
                    d.algorithm,
                    &secret,
                    d.digits,
                    step,
                    t0,
                    now,
                    d.drift,
                    d.last_step,
                    policy.totp_window,
                    code,
                ),
            };
            match outcome {
                OtpOutcome::Accepted { counter } => {
                    let saved = match d.kind {
                        TokenKind::Hotp { .. } => {
                            devices::accepted(c, &d, counter + 1, d.last_step, d.drift).await
                        }
                        TokenKind::Totp { step, t0 } => {
                            let drift = counter as i64 - otp::totp_step(now, step, t0);
                            devices::accepted(c, &d, d.counter, Some(counter as i64), drift).await
                        }
                    };
                    match saved {
                        Ok(()) => OtpCheck::Accepted,
                        // Another request spent this code a moment ago.
                        Err(StoreError::Conflict) => OtpCheck::Replayed,
                        Err(e) => return Err(e.into()),
                    }
                }
                OtpOutcome::Replayed => OtpCheck::Replayed,
                OtpOutcome::Rejected => {
                    let (failures, blocked) =
                        devices::failed(c, &d.serial, policy.otp_max_failures).await?;
                    tally.otp_failures += 1;
                    otp_event(
                        c,
                        flow,
                        person.as_deref(),
                        "otp.failure",
                        json!({"serial": d.serial, "failures": failures}),
                        now,
                    )
                    .await?;
                    if blocked {
                        otp_event(
                            c,
                            flow,
                            person.as_deref(),
                            "otp.device_blocked",
                            json!({"serial": d.serial}),
                            now,
                        )
                        .await?;
                    }
                    OtpCheck::Wrong
                }
            }
        }
    };
    if check == OtpCheck::Replayed {
        otp_event(c, flow, person.as_deref(), "otp.replay", json!({}), now).await?;
    }
    Ok(flow.otp_checked(check, now))
}

/// Appends an event of the code step, about `person` (none for an unknown number) and
/// the flow's client.
async fn otp_event(
    c: &mut impl Db,
    flow: &LoginFlow,
    person: Option<&str>,
    event: &str,
    data: serde_json::Value,
    now: i64,
) -> Result<(), ApiError> {
    let e = Event {
        event,
        subject: person,
        client_id: Some(&flow.request.client_id),
        data,
    };
    audit::append(c, &e, now).await?;
    Ok(())
}

/// What was found out before the step's transaction: the verdict on the secret, the person
/// (empty when unknown) and, for the password, the flow as it was read.
struct Checked {
    check: PasswordCheck,
    person: String,
    read: Option<(FlowRow, LoginFlow)>,
}

/// Verifies the password outside any transaction. Unknown persons and locked passwords
/// cost one dummy hash, so timing does not tell them apart from a wrong password.
async fn check_password(
    st: &AppState,
    at: &StepAt,
    password: &str,
    cached: Option<FlowRow>,
) -> Result<Checked, ApiError> {
    let (at, now) = (at.clone(), at.now);
    // Reads only: on SQLite one job of the writer thread instead of a hand-off per query.
    let (read, (person, record)) = st
        .store
        .relaxed(move |mut c| {
            Box::pin(async move {
                let (row, flow) = load_for_step(&mut c, &at, cached).await?;
                flow.expect_password(now)?;
                let found = match &flow.nin {
                    Some(n) => persons::password_by_nin(&mut c, n.as_str()).await?,
                    None => None,
                };
                Ok::<_, ApiError>(((row, flow), found.unwrap_or_default()))
            })
        })
        .await?;
    if password.len() > 1024 {
        return Err(ApiError::problem(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "the password is too long",
        ));
    }
    let hasher = st.hasher.clone();
    let pw = zeroize::Zeroizing::new(password.to_string());
    let rec = record.clone();
    let verdict = st
        .hash_pool
        .run(move || match rec {
            Some(r) if !r.locked => match hasher.verify(&pw, &r.phc) {
                Ok(Verification::Valid { needs_rehash }) => {
                    let rehash = if needs_rehash {
                        hasher.hash(&pw).ok()
                    } else {
                        None
                    };
                    (Some(true), rehash)
                }
                _ => (Some(false), None),
            },
            _ => {
                hasher.dummy_verify(&pw);
                (None, None)
            }
        })
        .await
        .map_err(|e| match e {
            crate::hashing::PoolError::Busy => {
                ApiError::problem(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
            }
            e => ApiError::Internal(e.to_string()),
        })?;
    let check = match (verdict, &record) {
        ((Some(true), rehash), _) => {
            if let (Some(phc), Some(old)) = (rehash, &record) {
                let mut c = st.store.conn().await?;
                persons::rehash_password(&mut c, &person, &old.phc, &phc).await?;
            }
            PasswordCheck::Accepted
        }
        ((Some(false), _), _) => PasswordCheck::Wrong,
        ((None, _), Some(r)) if r.locked => PasswordCheck::Locked,
        // No password set: treated as a wrong password.
        ((None, _), _) => PasswordCheck::Wrong,
    };
    Ok(Checked {
        check,
        person,
        read: Some(read),
    })
}

async fn password_step(
    st: &AppState,
    c: &mut impl Db,
    flow: &mut LoginFlow,
    check: PasswordCheck,
    person_id: &str,
    now: i64,
) -> Result<Result<(), FlowError>, ApiError> {
    let policy = &st.settings.policy;
    let check = match check {
        PasswordCheck::Wrong if !person_id.is_empty() => {
            let (failures, locked) =
                persons::password_failed(c, person_id, policy.password_max_failures)
                    .await
                    .or_else(|e| match e {
                        StoreError::NotFound(_) => Ok((0, false)),
                        e => Err(e),
                    })?;
            audit::append(
                c,
                &Event {
                    event: "password.failure",
                    subject: Some(person_id),
                    client_id: Some(&flow.request.client_id),
                    data: json!({"failures": failures}),
                },
                now,
            )
            .await?;
            if locked && failures == i64::from(policy.password_max_failures) {
                audit::append(
                    c,
                    &Event {
                        event: "password.locked",
                        subject: Some(person_id),
                        client_id: Some(&flow.request.client_id),
                        data: json!({}),
                    },
                    now,
                )
                .await?;
            }
            PasswordCheck::Wrong
        }
        PasswordCheck::Accepted => {
            // The lock is read again inside the transaction: guesses counted while this one
            // was being hashed may have locked the password, and then it is not accepted.
            // Not skipped when the count read before hashing was 0: a wrong guess may have
            // been counted meanwhile, and a right password ends the run.
            if persons::password_accepted(c, person_id).await? {
                PasswordCheck::Accepted
            } else {
                PasswordCheck::Locked
            }
        }
        other => other,
    };
    Ok(flow.password_checked(check, now))
}

/// Completes a login: session, authorization code, audit. Returns the session cookie. An
/// activation flow gets its activation code instead, and no session.
async fn finish(
    st: &AppState,
    c: &mut impl Db,
    flow_id: &str,
    flow: &mut LoginFlow,
    known_person: Option<String>,
    now: i64,
) -> Result<Option<Cookie<'static>>, ApiError> {
    let person = match known_person {
        Some(p) => p,
        None => person_of(c, flow)
            .await?
            .ok_or_else(|| ApiError::Internal("finished login without a person".into()))?,
    };
    match flow.purpose {
        Purpose::AppActivation => {
            crate::activation_page::finish(st, c, flow_id, flow, &person, now).await?;
            return Ok(None);
        }
        // A signature is no login: no session, no code.
        Purpose::Sign => {
            crate::sign::approved(c, flow_id, flow, &person, now).await?;
            return Ok(None);
        }
        Purpose::Portal => {
            return crate::portal::finish(st, c, flow, &person, now)
                .await
                .map(Some);
        }
        // Nothing happens yet: the person confirms on the next page.
        Purpose::Block | Purpose::PasswordReset => {
            crate::self_service::finish(flow_id, flow);
            return Ok(None);
        }
        Purpose::Login => {}
    }
    let auth_time = flow.auth_time.unwrap_or(now);
    let acr = flow.acr();
    let (session, cookie) = oidc::new_session(st, &person, auth_time, acr, &flow.amr);
    let (code, url) = oidc::new_code(st, &flow.request, &person, auth_time, acr, &flow.amr, now)?;
    let event = Event {
        event: "login.success",
        subject: Some(&person),
        client_id: Some(&flow.request.client_id),
        data: json!({"amr": flow.amr, "acr": acr}),
    };
    segl_store::grants::record_login(c, &session, &code, &event, now).await?;
    flow.redirect_to = Some(url);
    Ok(Some(cookie))
}

// ---------------------------------------------------------------------------------------
// JSON handlers

/// JSON body whose rejections are problem+json with precise codes.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => {
                let status = rej.status();
                Err(match status {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::problem(
                        status,
                        "payload_too_large",
                        "the request body is too large",
                    ),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::problem(
                        status,
                        "unsupported_media_type",
                        "send the body as application/json",
                    ),
                    _ => ApiError::problem(
                        StatusCode::BAD_REQUEST,
                        "malformed_request",
                        rej.body_text(),
                    ),
                })
            }
        }
    }
}

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

fn respond(s: Stepped) -> Response {
    let mut resp = (
        [(header::CACHE_CONTROL, "no-store")],
        Json(view(&s.row, &s.flow)),
    )
        .into_response();
    for c in s.cookies {
        if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn get_flow(
    State(st): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (row, flow) = load_for_browser(&st, &jar, &id).await?;
    if flow.is_expired(st.now()) && !matches!(flow.state, LoginState::Done | LoginState::Failed) {
        return Err(FlowError::Expired.into());
    }
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(view(&row, &flow)),
    )
        .into_response())
}

#[derive(Deserialize)]
struct NinBody {
    nin: String,
}
#[derive(Deserialize)]
struct MethodBody {
    method: String,
}
#[derive(Deserialize)]
struct OtpBody {
    otp: String,
}
#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}
#[derive(Deserialize)]
struct AnswersBody {
    answers: Vec<String>,
}
#[derive(Deserialize)]
struct Empty {}

macro_rules! api_step {
    ($name:ident, $body:ty, |$b:ident| $step:expr) => {
        async fn $name(
            State(st): State<AppState>,
            jar: CookieJar,
            headers: HeaderMap,
            Path(id): Path<String>,
            ApiJson($b): ApiJson<$body>,
        ) -> Result<Response, ApiError> {
            let s = run_step(
                &st,
                &id,
                jar.get(BROWSER_COOKIE).map(|c| c.value()),
                csrf_header(&headers),
                $step,
            )
            .await?;
            Ok(respond(s))
        }
    };
}

api_step!(api_identify, NinBody, |b| Step::Identify(b.nin));
api_step!(api_method, MethodBody, |b| Step::Method(b.method));
api_step!(api_otp, OtpBody, |b| Step::Otp(b.otp));
api_step!(api_password, PasswordBody, |b| Step::Password(b.password));
api_step!(api_answers, AnswersBody, |b| Step::Answers(b.answers));
api_step!(api_cancel, Empty, |_b| Step::Cancel);
api_step!(api_app, Empty, |_b| Step::AppCollect);
