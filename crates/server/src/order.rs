//! Ordering an eID (the rules are `segl_core::order`): the API a page or an app submits an
//! order to, the identity check (the MRZ of a passport or ID card, or support's manual
//! review), a guardian's approval of a minor's order, the activation codes (letter, or SMS
//! and email), and the activation that sets the password and control questions.
//!
//! Every decision is one transaction, conditional on the order's state, and audited. An
//! approval creates the person (or keeps a blocked person's record: a new order is how a
//! blocked eID comes back, after a new identity check) and queues the codes in the outbox;
//! the codes themselves are stored only as hashes.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use segl_core::maintenance::Channel;
use segl_core::nin::Nin;
use segl_core::order::{
    self as rules, AgeRule, Delivery, OrderForm, OrderKind, OrderNumber, OrderState,
};
use segl_crypto::random::{activation_code, ct_eq, random_digits};
use segl_store::audit::{self, Event};
use segl_store::db::Db;
use segl_store::orders::{self, CodeHashes, ControlQuestion, Order, Transition};
use segl_store::outbox::{self, NewMessage};
use segl_store::persons::{self, Person};
use segl_store::{Store, devices};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{ApiJson, rfc3339};
use crate::i18n::Texts;
use crate::identity::Verdict;
use crate::{pages, portal};

/// How long codes sent by letter work: post takes days.
pub const LETTER_CODE_TTL_SECS: i64 = 30 * 86_400;
/// How long codes sent by SMS and email work.
pub const SMS_EMAIL_CODE_TTL_SECS: i64 = 7 * 86_400;
/// Wrong activation codes before the codes stop working (support sends new ones).
pub const MAX_CODE_FAILURES: i64 = 5;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orders", post(submit_api))
        .route("/api/v1/orders/{number}", get(status_api))
        .route("/api/v1/orders/{number}/activate", post(activate_api))
        .route("/order/guardian", get(guardian_page))
        .route("/order/guardian/{number}", post(guardian_post))
}

fn today(now: i64) -> time::Date {
    OffsetDateTime::from_unix_timestamp(now)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN)
}

fn bad(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::problem(StatusCode::BAD_REQUEST, code, detail)
}

/// The public view of an order: no personal data beyond what the orderer typed.
pub fn view(o: &Order) -> Value {
    json!({
        "number": o.number,
        "state": o.state,
        "reason": o.reason,
        "kind": o.kind,
        "delivery": o.delivery,
        "evidence": o.evidence,
        "created_at": rfc3339(o.created_at),
        "codes_expire_at": o.code_expires_at.map(rfc3339),
        "activated_at": o.activated_at.map(rfc3339),
    })
}

// ---------------------------------------------------------------------------------------
// Submitting

/// What a submission answers.
#[derive(Clone, Debug, Serialize)]
pub struct Submitted {
    /// The order number, for the person and support.
    pub number: String,
    /// Where the order stands.
    pub state: OrderState,
    /// Why it was rejected.
    pub reason: Option<String>,
}

async fn submit_api(State(st): State<AppState>, ApiJson(form): ApiJson<OrderForm>) -> Response {
    match submit(&st, form).await {
        Ok(s) => (StatusCode::CREATED, axum::Json(s)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Takes an order: checks the form, the maintenance windows, the identity document, and
/// the age rules; stores it (unless refused outright); approves it at once when the MRZ
/// matches an adult's order.
pub async fn submit(st: &AppState, form: OrderForm) -> Result<Submitted, ApiError> {
    let out = submit_in_store(st, form).await?;
    st.metrics.orders.inc();
    match out.state {
        OrderState::Approved => st.metrics.orders_approved.inc(),
        OrderState::Rejected => st.metrics.orders_rejected.inc(),
        _ => 0,
    };
    Ok(out)
}

async fn submit_in_store(st: &AppState, form: OrderForm) -> Result<Submitted, ApiError> {
    let now = st.now();
    let today = today(now);
    let v = rules::validate(&form, today)
        .map_err(|e| ApiError::problem(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    let channel = match v.kind {
        OrderKind::App => Channel::OrderApp,
        OrderKind::Card => Channel::OrderCard,
    };
    // Said before any field or document error (a closed channel is the first thing to
    // know), and checked again inside the write so that the check and the order are one.
    crate::maintenance::ensure_open(st, channel).await?;
    if v.delivery == Delivery::Letter {
        let mut envelope = vec![v.name.clone()];
        envelope.extend(v.address.iter().cloned());
        crate::notify::letter::parse_address(&envelope.join("\n"))
            .map_err(|e| bad("invalid_address", format!("address: {e}")))?;
    }
    // Evidence that is bad input refuses the order (nothing stored); evidence that does
    // not fit it is a rejection the person sees, and support too.
    let verifier = st
        .verifiers
        .iter()
        .find(|x| x.accepts(&v.evidence))
        .ok_or_else(|| {
            bad(
                "unsupported_evidence",
                "evidence: no identity verifier takes this kind of evidence",
            )
        })?;
    let evidence = verifier.name();
    let (verified, summary, mismatch) = match verifier.verify(&v, today).await? {
        Verdict::Verified { summary } => (true, Some(summary), None),
        Verdict::Mismatch { reason, summary } => (false, summary, Some(reason)),
        Verdict::NeedsReview => (false, None, None),
    };
    let state = match (&mismatch, v.age_rule, verified) {
        (Some(_), _, _) => OrderState::Rejected,
        (None, AgeRule::NeedsGuardian, _) => OrderState::AwaitingGuardian,
        // A verified adult's order is approved below, in the same transaction.
        (None, _, _) => OrderState::PendingReview,
    };
    let approve_now = verified && v.age_rule == AgeRule::Adult;
    let number = OrderNumber::from_body(&random_digits(rules::ORDER_NUMBER_DIGITS - 1))
        .ok_or_else(|| ApiError::Internal("an order number of 11 random digits".into()))?;
    let order = Order {
        id: uuid::Uuid::now_v7().to_string(),
        number: number.as_str().to_string(),
        nin: v.nin.as_str().to_string(),
        name: v.name.clone(),
        phone: v.phone.clone(),
        email: v.email.clone(),
        address: v.address.clone(),
        kind: v.kind.as_str().into(),
        delivery: v.delivery.as_str().into(),
        guardian_nin: v.guardian.as_ref().map(|g| g.as_str().to_string()),
        state: state.as_str().into(),
        reason: mismatch.clone(),
        evidence: evidence.into(),
        evidence_summary: summary,
        identity_verified: verified,
        decided_by: mismatch.as_ref().map(|_| evidence.to_string()),
        guardian_person_id: None,
        guardian_decided_at: None,
        person_id: None,
        code_expires_at: None,
        code_failures: 0,
        device_serial: None,
        created_at: now,
        updated_at: now,
        activated_at: None,
    };
    let store = st.store.clone();
    st.store
        .transact(move |mut tx| {
            Box::pin(async move {
                crate::maintenance::ensure_open_in(&mut tx, channel, now).await?;
                if orders::open_for_nin(&mut tx, &order.nin, now).await?.is_some() {
                    return Err(ApiError::problem(
                        StatusCode::CONFLICT,
                        "order_open",
                        "an order for this person is already under way; support can find it by its number",
                    ));
                }
                orders::insert(&mut tx, &order).await?;
                audit_order(&mut tx, "order.submitted", &order, json!({"state": order.state}), now)
                    .await?;
                let mut out = Submitted {
                    number: order.number.clone(),
                    state,
                    reason: order.reason.clone(),
                };
                if approve_now {
                    match approve_in(&mut tx, &store, &order, evidence, now).await? {
                        Approval::Approved => out.state = OrderState::Approved,
                        Approval::Rejected(r) => {
                            out.state = OrderState::Rejected;
                            out.reason = Some(r);
                        }
                        Approval::Waiting(r) => out.reason = Some(r),
                    }
                }
                Ok(out)
            })
        })
        .await
}

async fn audit_order(
    c: &mut impl Db,
    event: &'static str,
    o: &Order,
    mut data: Value,
    now: i64,
) -> Result<(), ApiError> {
    data["number"] = json!(o.number);
    data["kind"] = json!(o.kind);
    audit::append(
        c,
        &Event {
            event,
            subject: o.person_id.as_deref(),
            client_id: None,
            data,
        },
        now,
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Approving

/// What an approval came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Approved; the codes are on their way.
    Approved,
    /// Rejected with this reason.
    Rejected(String),
    /// Left for support, for this reason (no code device in stock).
    Waiting(String),
}

/// Approves an order whose identity is checked: the person (created, or a blocked
/// person's record kept), a code device reserved for a `card` order, new activation codes,
/// and the messages that carry them. The order must be in `pending_review` or
/// `awaiting_guardian`.
pub async fn approve_in(
    c: &mut impl Db,
    store: &Store,
    o: &Order,
    by: &str,
    now: i64,
) -> Result<Approval, ApiError> {
    let from = o.state.as_str();
    let person = match persons::by_nin(c, &o.nin).await? {
        Some(p) => {
            let blocked = persons::blocked(c, &p.id).await?.is_some();
            // An eID is theirs once activated (a password set) or holding a credential;
            // a new one comes only after the old is blocked.
            let has_eid = persons::password(c, &p.id).await?.is_some()
                || crate::ca::eid_active(c, &p.id).await?;
            if !blocked && has_eid {
                let reason = "this person already has an eID: use it, or block it first";
                reject_in(c, o, reason, by, now).await?;
                return Ok(Approval::Rejected(reason.into()));
            }
            p
        }
        None => {
            let nin = Nin::parse(&o.nin).map_err(|e| ApiError::Internal(e.to_string()))?;
            let p = Person {
                id: uuid::Uuid::new_v4().to_string(),
                sub: uuid::Uuid::new_v4().to_string(),
                nin: o.nin.clone(),
                name: o.name.clone(),
                birthdate: nin.birth_date().to_string(),
                phone: o.phone.clone(),
                email: o.email.clone(),
                created_at: now,
            };
            persons::insert(c, &p).await?;
            p
        }
    };
    let serial = if o.kind == OrderKind::Card.as_str() {
        match devices::first_free(c).await? {
            Some(s) => Some(s),
            None => {
                let reason = "waiting for a code device in stock";
                if from != OrderState::PendingReview.as_str() {
                    orders::transition(
                        c,
                        &o.id,
                        &Transition {
                            from,
                            to: OrderState::PendingReview.as_str(),
                            reason: Some(reason),
                            decided_by: None,
                        },
                        now,
                    )
                    .await?;
                }
                return Ok(Approval::Waiting(reason.into()));
            }
        }
    } else {
        None
    };
    if !orders::transition(
        c,
        &o.id,
        &Transition {
            from,
            to: OrderState::Approved.as_str(),
            reason: None,
            decided_by: Some(by),
        },
        now,
    )
    .await?
    {
        return Err(not_open(from));
    }
    let o = Order {
        person_id: Some(person.id.clone()),
        device_serial: serial.clone().or_else(|| o.device_serial.clone()),
        ..o.clone()
    };
    send_codes(c, store, &o, &person.id, now).await?;
    audit_order(
        c,
        "order.approved",
        &o,
        json!({"by": by, "device": serial}),
        now,
    )
    .await?;
    Ok(Approval::Approved)
}

fn not_open(state: &str) -> ApiError {
    ApiError::problem(
        StatusCode::CONFLICT,
        "order_not_open",
        format!("the order is {state}, not waiting for this decision"),
    )
}

/// New activation codes for an approved order (its hashes stored, the earlier codes no
/// longer valid), queued by letter or by SMS and email.
async fn send_codes(
    c: &mut impl Db,
    store: &Store,
    o: &Order,
    person_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let delivery = Delivery::parse(&o.delivery)
        .ok_or_else(|| ApiError::Internal(format!("order delivery '{}'", o.delivery)))?;
    let code = activation_code();
    let second = (delivery == Delivery::SmsEmail).then(activation_code);
    let hash = |c: &str| {
        crate::app_api::code_hash(c)
            .ok_or_else(|| ApiError::Internal("a new activation code did not normalize".into()))
    };
    let hashes = CodeHashes {
        code: hash(&code)?,
        second: second.as_deref().map(hash).transpose()?,
    };
    let ttl = match delivery {
        Delivery::Letter => LETTER_CODE_TTL_SECS,
        Delivery::SmsEmail => SMS_EMAIL_CODE_TTL_SECS,
    };
    let expires = now + ttl;
    orders::set_codes(
        c,
        &o.id,
        person_id,
        &hashes,
        expires,
        o.device_serial.as_deref(),
        now,
    )
    .await?;
    let number = OrderNumber::parse(&o.number)
        .map(|n| n.grouped())
        .unwrap_or_else(|_| o.number.clone());
    let until = rfc3339(expires);
    let device = o
        .device_serial
        .as_deref()
        .map(|s| format!(" Your code device (serial {s}) comes in a separate parcel."))
        .unwrap_or_default();
    match (delivery, second) {
        (Delivery::Letter, _) => {
            let mut to = vec![o.name.clone()];
            to.extend(o.address.iter().cloned());
            let body = format!(
                "Your eID order {number} is approved.{device}\n\nActivation code: {code}\n\n\
                 Activate your eID with the order number and this code before {until}. \
                 Did you not order an eID? Contact us at once."
            );
            queue(c, store, person_id, "letter", &to.join("\n"), &body, now).await?;
        }
        (Delivery::SmsEmail, Some(second)) => {
            let (Some(phone), Some(email)) = (o.phone.clone(), o.email.clone()) else {
                return Err(ApiError::Internal(
                    "an SMS + email order without phone or email".into(),
                ));
            };
            queue(
                c,
                store,
                person_id,
                "sms",
                &phone,
                &format!(
                    "segl: eID order {number} approved. Code 1 of 2: {code}. Code 2 is in your email. Valid to {until}."
                ),
                now,
            )
            .await?;
            queue(
                c,
                store,
                person_id,
                "email",
                &email,
                &format!(
                    "Your eID order {number} is approved.{device}\n\nCode 2 of 2: {second}\n\n\
                     Code 1 came by SMS. Activate your eID with the order number and both codes \
                     before {until}. Did you not order an eID? Contact us at once."
                ),
                now,
            )
            .await?;
        }
        (Delivery::SmsEmail, None) => {
            return Err(ApiError::Internal(
                "SMS + email without a second code".into(),
            ));
        }
    }
    Ok(())
}

/// Queues one message carrying activation codes.
async fn queue(
    c: &mut impl Db,
    store: &Store,
    person_id: &str,
    channel: &str,
    recipient: &str,
    body: &str,
    now: i64,
) -> Result<(), ApiError> {
    outbox::enqueue(
        c,
        store.seal(),
        &NewMessage {
            person_id: Some(person_id),
            channel,
            recipient,
            kind: "order.activation_code",
            body,
        },
        now,
    )
    .await?;
    Ok(())
}

async fn reject_in(
    c: &mut impl Db,
    o: &Order,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<(), ApiError> {
    if !orders::transition(
        c,
        &o.id,
        &Transition {
            from: &o.state,
            to: OrderState::Rejected.as_str(),
            reason: Some(reason),
            decided_by: Some(by),
        },
        now,
    )
    .await?
    {
        return Err(not_open(&o.state));
    }
    audit_order(
        c,
        "order.rejected",
        o,
        json!({"by": by, "reason": reason}),
        now,
    )
    .await
}

/// Support's decision on an order in the manual review queue.
pub async fn review(
    store: &Store,
    number: &str,
    approve: bool,
    reason: Option<&str>,
    by: &str,
    now: i64,
) -> Result<(Order, Approval), ApiError> {
    let number =
        OrderNumber::parse(number).map_err(|e| bad("invalid_order_number", e.to_string()))?;
    let reason = match (approve, reason) {
        (false, Some(r)) => Some(rules::check_reason(r).map_err(|e| bad(e.code(), e.to_string()))?),
        (false, None) => return Err(bad("invalid_reason", "a rejection needs a reason")),
        (true, _) => None,
    };
    let (store2, by) = (store.clone(), by.to_string());
    store
        .transact(move |mut tx| {
            Box::pin(async move {
                let o = load(&mut tx, &number).await?;
                if o.state != OrderState::PendingReview.as_str() {
                    return Err(not_open(&o.state));
                }
                let outcome = match reason {
                    None => approve_in(&mut tx, &store2, &o, &by, now).await?,
                    Some(r) => {
                        reject_in(&mut tx, &o, &r, &by, now).await?;
                        Approval::Rejected(r)
                    }
                };
                let o = load(&mut tx, &number).await?;
                Ok((o, outcome))
            })
        })
        .await
}

/// New activation codes for an approved order (lost letter, codes locked after wrong
/// tries): the old codes stop working, the count of wrong codes starts again, and the
/// validity starts again.
pub async fn resend_codes(
    store: &Store,
    number: &str,
    by: &str,
    now: i64,
) -> Result<Order, ApiError> {
    let number =
        OrderNumber::parse(number).map_err(|e| bad("invalid_order_number", e.to_string()))?;
    let (store2, by) = (store.clone(), by.to_string());
    store
        .transact(move |mut tx| {
            Box::pin(async move {
                let o = load(&mut tx, &number).await?;
                let (true, Some(person)) = (
                    o.state == OrderState::Approved.as_str(),
                    o.person_id.clone(),
                ) else {
                    return Err(ApiError::problem(
                        StatusCode::CONFLICT,
                        "order_not_approved",
                        format!("the order is {}: only an approved order has codes", o.state),
                    ));
                };
                send_codes(&mut tx, &store2, &o, &person, now).await?;
                audit_order(&mut tx, "order.codes_resent", &o, json!({"by": by}), now).await?;
                load(&mut tx, &number).await
            })
        })
        .await
}

async fn load(c: &mut impl Db, number: &OrderNumber) -> Result<Order, ApiError> {
    orders::by_number(c, number.as_str()).await?.ok_or_else(|| {
        ApiError::problem(
            StatusCode::NOT_FOUND,
            "order_not_found",
            "no order has this number",
        )
    })
}

async fn status_api(State(st): State<AppState>, Path(number): Path<String>) -> Response {
    let result = async {
        let number =
            OrderNumber::parse(&number).map_err(|e| bad("invalid_order_number", e.to_string()))?;
        let mut c = st.store.read().await?;
        let o = load(&mut c, &number).await?;
        Ok::<_, ApiError>(view(&o))
    }
    .await;
    match result {
        Ok(v) => {
            let mut r = axum::Json(v).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Activating

/// A control question and its answer, as the person types them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionAnswer {
    /// The question.
    pub question: String,
    /// The answer.
    pub answer: String,
}

/// The activation of an approved order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateBody {
    /// The code from the letter or the SMS.
    pub code: String,
    /// The code from the email (SMS + email delivery).
    #[serde(default)]
    pub second_code: Option<String>,
    /// The new eID password.
    pub password: String,
    /// Control questions for a forgotten password.
    pub questions: Vec<QuestionAnswer>,
}

async fn activate_api(
    State(st): State<AppState>,
    Path(number): Path<String>,
    ApiJson(body): ApiJson<ActivateBody>,
) -> Response {
    match activate(&st, &number, body).await {
        Ok(v) => {
            let mut r = axum::Json(v).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

fn check_questions(qs: &[QuestionAnswer]) -> Result<(), ApiError> {
    let pairs: Vec<(&str, &str)> = qs
        .iter()
        .map(|q| (q.question.as_str(), q.answer.as_str()))
        .collect();
    rules::check_questions(&pairs).map_err(|e| bad(e.code(), e.to_string()))
}

/// Activates an approved order: the codes must match (constant time; five wrong and they
/// stop working), the password must follow the policy; then the person's password and
/// control questions are set, a blocked eID is unblocked, a `card` order's code device is
/// assigned, and an `app` order gets an activation code for the app, open at once.
pub async fn activate(st: &AppState, number: &str, body: ActivateBody) -> Result<Value, ApiError> {
    let out = activate_in_store(st, number, body).await?;
    st.metrics.orders_activated.inc();
    // A code device makes the eID active now: its certificate follows (an app's comes with
    // the app's activation). A failure here leaves the eID usable for login; the next
    // issuance (`segl cert issue`, or My page) makes it.
    if out["code_device"].is_string()
        && let (Some(service), Some(person)) = (&st.pki, out["person_id"].as_str())
        && let Err(e) = service
            .pki
            .ensure_person_certificate(&st.store, person, st.now())
            .await
    {
        tracing::warn!(error = %e.parts().2, "order: no certificate at activation");
    }
    let mut out = out;
    if let Some(o) = out.as_object_mut() {
        o.remove("person_id");
    }
    Ok(out)
}

async fn activate_in_store(
    st: &AppState,
    number: &str,
    body: ActivateBody,
) -> Result<Value, ApiError> {
    let now = st.now();
    let number =
        OrderNumber::parse(number).map_err(|e| bad("invalid_order_number", e.to_string()))?;
    check_questions(&body.questions)?;
    let given = (
        crate::app_api::code_hash(&body.code),
        body.second_code.as_deref().map(crate::app_api::code_hash),
    );
    // The order's state and the codes first: hashing the password and three answers costs
    // a few hundred milliseconds of a core, so a wrong guess costs none (and is counted at
    // once).
    let (pre, pre_given) = (number.clone(), given.clone());
    let o = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move {
                let o = load(&mut tx, &pre).await?;
                let checked = activatable(&mut tx, &o, &pre_given, now).await?;
                Ok::<_, ApiError>(checked.map(|()| o))
            })
        })
        .await??;
    let nin = Nin::parse(&o.nin).map_err(|e| ApiError::Internal(e.to_string()))?;
    segl_core::password::check_new_password(
        &body.password,
        &st.settings.policy.password,
        Some(&nin),
    )
    .map_err(|e| bad("invalid_password", format!("password: {e}")))?;
    let hasher = st.hasher.clone();
    let (password, answers) = (body.password.clone(), body.questions.clone());
    let hashed = st
        .hash_pool
        .run(move || {
            let pw = hasher.hash(&password)?;
            let answers = answers
                .iter()
                .map(|q| hasher.hash(&rules::normalize_answer(&q.answer)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, segl_crypto::password::PasswordError>((pw, answers))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("hashing: {e}")))?
        .map_err(|e| ApiError::Internal(format!("hashing: {e}")))?;
    let questions: Vec<ControlQuestion> = body
        .questions
        .iter()
        .zip(hashed.1)
        .enumerate()
        .map(|(i, (q, phc))| ControlQuestion {
            idx: i as i64,
            question: q.question.trim().to_string(),
            answer_phc: phc,
        })
        .collect();
    let (st2, pw_phc) = (st.clone(), hashed.0);
    st.store
        .transact(move |mut tx| {
            Box::pin(async move {
                let o = load(&mut tx, &number).await?;
                // Again inside the write: support may have sent new codes meanwhile.
                if let Err(refused) = activatable(&mut tx, &o, &given, now).await? {
                    return Ok(Err(refused));
                }
                let Some(person_id) = o.person_id.clone() else {
                    return Err(ApiError::Internal(
                        "an approved order without a person".into(),
                    ));
                };
                if !orders::activated(&mut tx, &o.id, now).await? {
                    return Ok(Err(ApiError::problem(
                        StatusCode::CONFLICT,
                        "order_not_approved",
                        "the order was activated meanwhile",
                    )));
                }
                persons::unblock(&mut tx, &person_id).await?;
                // The codes reached the order's phone and email: from now on they are the
                // person's (an earlier person record may hold old ones).
                if let Some(phone) = &o.phone {
                    persons::set_phone(&mut tx, &person_id, Some(phone)).await?;
                }
                if let Some(email) = &o.email {
                    persons::set_email(&mut tx, &person_id, Some(email)).await?;
                }
                persons::set_password(&mut tx, &person_id, &pw_phc, now).await?;
                orders::set_questions(&mut tx, &person_id, &questions, now).await?;
                let mut out = json!({"number": o.number, "state": "activated", "kind": o.kind, "person_id": person_id});
                if let Some(serial) = &o.device_serial {
                    devices::assign(&mut tx, serial, &person_id).await?;
                    out["code_device"] = json!(serial);
                }
                if o.kind == OrderKind::App.as_str() {
                    let person = persons::by_id(&mut tx, &person_id)
                        .await?
                        .ok_or_else(|| ApiError::Internal("the order's person vanished".into()))?;
                    let started = crate::app_api::start_activation(
                        &mut tx,
                        &st2.store,
                        &st2.settings.policy.app,
                        &person,
                        segl_store::apps::ActivationMethod::Order,
                        "order",
                        now,
                    )
                    .await?;
                    out["app_activation_code"] = json!(started.code);
                    out["app_activation_expires_at"] = json!(rfc3339(started.expires_at));
                }
                let o = Order {
                    person_id: Some(person_id.clone()),
                    ..o
                };
                audit_order(&mut tx, "order.activated", &o, json!({}), now).await?;
                Ok(Ok(out))
            })
        })
        .await?
}

/// Whether this order can be activated with these codes: approved, and the codes right
/// ([`check_codes`]).
async fn activatable(
    c: &mut impl Db,
    o: &Order,
    given: &(Option<String>, Option<Option<String>>),
    now: i64,
) -> Result<Result<(), ApiError>, ApiError> {
    if o.state != OrderState::Approved.as_str() {
        return Ok(Err(ApiError::problem(
            StatusCode::CONFLICT,
            "order_not_approved",
            format!(
                "the order is {}; only an approved order can be activated",
                o.state
            ),
        )));
    }
    check_codes(c, o, given, now).await
}

/// The codes given for an approved order, checked in constant time: expired, locked or
/// wrong ones are refused, and a wrong one is counted (and audited) in the caller's
/// transaction. The outer error is a fault; the inner one the refusal to answer with.
async fn check_codes(
    c: &mut impl Db,
    o: &Order,
    given: &(Option<String>, Option<Option<String>>),
    now: i64,
) -> Result<Result<(), ApiError>, ApiError> {
    if o.code_expires_at.is_none_or(|t| t <= now) {
        return Ok(Err(ApiError::problem(
            StatusCode::GONE,
            "codes_expired",
            "the activation codes have expired: ask support for new ones",
        )));
    }
    if o.code_failures >= MAX_CODE_FAILURES {
        return Ok(Err(codes_locked()));
    }
    let stored = orders::codes(c, &o.id).await?;
    let right = match (&stored, given) {
        (Some(s), (Some(c1), c2)) => {
            let first = ct_eq(s.code.as_bytes(), c1.as_bytes());
            let second = match (&s.second, c2) {
                (None, None) => true,
                (Some(s2), Some(Some(c2))) => ct_eq(s2.as_bytes(), c2.as_bytes()),
                _ => false,
            };
            first & second
        }
        _ => false,
    };
    if !right {
        let failures = orders::code_failed(c, &o.id).await?;
        audit_order(
            c,
            "order.code_failed",
            o,
            json!({"failures": failures}),
            now,
        )
        .await?;
        return Ok(Err(if failures >= MAX_CODE_FAILURES {
            codes_locked()
        } else {
            bad(
                "wrong_code",
                format!(
                    "code: the activation code is wrong ({} tries left)",
                    MAX_CODE_FAILURES - failures
                ),
            )
        }));
    }
    Ok(Ok(()))
}

fn codes_locked() -> ApiError {
    ApiError::problem(
        StatusCode::LOCKED,
        "codes_locked",
        "too many wrong activation codes: ask support for new ones",
    )
}

// ---------------------------------------------------------------------------------------
// The guardian's page

#[derive(Template)]
#[template(path = "guardian.html")]
struct GuardianPage<'a> {
    lang: &'static str,
    t: &'static Texts,
    csrf: &'a str,
    orders: Vec<GuardianRow>,
    notice: &'a str,
}

struct GuardianRow {
    number: String,
    grouped: String,
    name: String,
    birthdate: String,
    kind: &'static str,
    ordered: String,
}

async fn guardian_page(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let lang = portal::lang(&headers);
    let session = match portal::current(&st, &jar).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return portal::start_login(
                &st,
                &jar,
                &headers,
                lang.t().guardian_title,
                "/order/guardian",
            )
            .await;
        }
        Err(e) => return e.into_response(),
    };
    let result = async {
        let mut c = st.store.read().await?;
        let me = persons::by_id(&mut c, &session.person_id)
            .await?
            .ok_or_else(|| ApiError::Internal("a session's person vanished".into()))?;
        Ok::<_, ApiError>(orders::awaiting_guardian(&mut c, &me.nin).await?)
    }
    .await;
    let list = match result {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let t = lang.t();
    let rows = list
        .into_iter()
        .map(|o| GuardianRow {
            grouped: OrderNumber::parse(&o.number)
                .map(|n| n.grouped())
                .unwrap_or_else(|_| o.number.clone()),
            number: o.number,
            name: o.name,
            birthdate: Nin::parse(&o.nin)
                .map(|n| n.birth_date().to_string())
                .unwrap_or_default(),
            kind: if o.kind == "app" {
                t.order_kind_app
            } else {
                t.order_kind_card
            },
            ordered: rfc3339(o.created_at),
        })
        .collect();
    let notice = match q.get("done").map(String::as_str) {
        Some("approved") => t.guardian_approved,
        Some("refused") => t.guardian_refused,
        _ => "",
    };
    let csrf = portal::csrf_token(&jar);
    render(&GuardianPage {
        lang: lang.tag(),
        t,
        csrf: &csrf,
        orders: rows,
        notice,
    })
}

fn render(page: &impl Template) -> Response {
    pages::html(StatusCode::OK, page.render())
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct GuardianForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn guardian_post(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(number): Path<String>,
    Form(form): Form<GuardianForm>,
) -> Response {
    let langs = pages::langs_from(None, &headers);
    let session = match portal::current(&st, &jar).await {
        Ok(Some(s)) if portal::csrf_ok(&jar, &form.csrf) => s,
        Ok(Some(_)) => {
            return pages::error_page(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is wrong",
                &langs,
            );
        }
        Ok(None) => return Redirect::to("/order/guardian").into_response(),
        Err(e) => return e.into_response(),
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "refuse" => false,
        _ => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "decision: must be approve or refuse",
                &langs,
            );
        }
    };
    let reason = (!approve).then(|| {
        let r = form.reason.trim();
        if r.is_empty() {
            "refused by the guardian".to_string()
        } else {
            r.to_string()
        }
    });
    match guardian_decide(&st, &session.person_id, &number, approve, reason.as_deref()).await {
        Ok(_) => Redirect::to(if approve {
            "/order/guardian?done=approved"
        } else {
            "/order/guardian?done=refused"
        })
        .into_response(),
        Err(e) => {
            let (status, _, detail, _) = e.parts();
            pages::error_page(status, &detail, &langs)
        }
    }
}

/// A guardian's decision on a minor's order: only the guardian the order names, logged in
/// with their own eID, may make it. On approval an order with a checked document is
/// approved; one that needs a manual check goes to support's queue.
pub async fn guardian_decide(
    st: &AppState,
    guardian_person_id: &str,
    number: &str,
    approve: bool,
    reason: Option<&str>,
) -> Result<OrderState, ApiError> {
    let now = st.now();
    let number =
        OrderNumber::parse(number).map_err(|e| bad("invalid_order_number", e.to_string()))?;
    let reason = reason
        .map(|r| rules::check_reason(r).map_err(|e| bad(e.code(), e.to_string())))
        .transpose()?;
    let (store, gid) = (st.store.clone(), guardian_person_id.to_string());
    st.store
        .transact(move |mut tx| {
            Box::pin(async move {
                let o = load(&mut tx, &number).await?;
                let guardian = persons::by_id(&mut tx, &gid)
                    .await?
                    .ok_or_else(|| ApiError::Internal("a session's person vanished".into()))?;
                let named = o
                    .guardian_nin
                    .as_deref()
                    .is_some_and(|g| ct_eq(g.as_bytes(), guardian.nin.as_bytes()));
                if !named {
                    return Err(ApiError::problem(
                        StatusCode::FORBIDDEN,
                        "not_guardian",
                        "this order does not name you as guardian",
                    ));
                }
                if o.state != OrderState::AwaitingGuardian.as_str() {
                    return Err(not_open(&o.state));
                }
                orders::guardian_decided(&mut tx, &o.id, &gid, now).await?;
                let event = if approve {
                    "order.guardian_approved"
                } else {
                    "order.guardian_refused"
                };
                audit_order(
                    &mut tx,
                    event,
                    &o,
                    json!({"guardian": gid, "reason": reason}),
                    now,
                )
                .await?;
                if !approve {
                    orders::transition(
                        &mut tx,
                        &o.id,
                        &Transition {
                            from: &o.state,
                            to: OrderState::Refused.as_str(),
                            reason: reason.as_deref(),
                            decided_by: Some("guardian"),
                        },
                        now,
                    )
                    .await?;
                    return Ok(OrderState::Refused);
                }
                if o.identity_verified {
                    return Ok(
                        match approve_in(&mut tx, &store, &o, "guardian", now).await? {
                            Approval::Approved => OrderState::Approved,
                            Approval::Rejected(_) => OrderState::Rejected,
                            Approval::Waiting(_) => OrderState::PendingReview,
                        },
                    );
                }
                orders::transition(
                    &mut tx,
                    &o.id,
                    &Transition {
                        from: &o.state,
                        to: OrderState::PendingReview.as_str(),
                        reason: None,
                        decided_by: None,
                    },
                    now,
                )
                .await?;
                Ok(OrderState::PendingReview)
            })
        })
        .await
}
