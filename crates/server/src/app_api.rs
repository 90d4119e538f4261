//! The device API (`/api/v1/app/…`): what the phone app calls.
//!
//! - Activation: the app has made its device key (ECDSA P-256) and holds a one-time
//!   activation code; it sends the code and its public key, and gets the app ID it will
//!   show. The code is checked against its security period and completion window
//!   (`[policy.app]`), the person's previous app is deactivated in the same transaction,
//!   and the code cannot be used again.
//! - Every other call is signed with the device key (`segl_core::app::DeviceRequest`):
//!   headers `X-Segl-App-Id`, `X-Segl-Nonce` (fresh, 16–64 base64url characters),
//!   `X-Segl-Timestamp` (unix seconds) and `X-Segl-Signature` (base64url `r || s`). A
//!   deactivated app can still ask its status, so it learns it was replaced; it can do
//!   nothing else.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use segl_core::app::{DEVICE_REQUEST_MAX_SKEW_SECS, DeviceRequest};
use segl_crypto::random::{random_digits, random_token, sha256_b64url};
use segl_store::apps::{self, AppDevice, AppDeviceState, CodeCheck, Deactivation, NewAppDevice};
use segl_store::audit::{self, Event};
use segl_store::db::Db;
use segl_store::persons;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{ApiJson, rfc3339};
use crate::push;

/// The device API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/app/activations", post(activate))
        .route("/api/v1/app/status", get(status))
        .route("/api/v1/app/deactivate", post(deactivate))
        .route("/api/v1/app/requests", get(requests))
        .route("/api/v1/app/requests/{id}/answer", post(answer))
        .route("/api/v1/app/events", get(events))
        .route("/api/v1/app/scan", post(scan))
        .route("/api/v1/app/transfers", post(transfer))
        .route(
            "/api/v1/app/activations/by-sms-email",
            post(start_by_sms_email),
        )
}

/// The stored form of a code: the SHA-256 of its normalized form, so a copy of the
/// database holds no usable code.
pub fn code_hash(code: &str) -> Option<String> {
    segl_core::app::normalize_activation_code(code).map(|c| sha256_b64url(c.as_bytes()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    /// The one-time activation code.
    activation_code: String,
    /// The device's public key: the uncompressed P-256 point, base64url.
    public_key: String,
    /// A name for the device ("Kari's phone").
    #[serde(default)]
    label: Option<String>,
    /// The second code, for an activation with codes by SMS and email (the email's code).
    #[serde(default)]
    second_code: Option<String>,
}

const MAX_LABEL: usize = 64;

async fn activate(
    State(st): State<AppState>,
    ApiJson(b): ApiJson<ActivateBody>,
) -> Result<Response, ApiError> {
    let bad = |code: &'static str, detail: &str| {
        ApiError::problem(StatusCode::BAD_REQUEST, code, detail.to_string())
    };
    let hash = code_hash(&b.activation_code).ok_or_else(|| {
        bad(
            "malformed_activation_code",
            "an activation code is 16 letters and digits, as ABCD-EFGH-JKMN-PQRS",
        )
    })?;
    // Decoded strictly (no padding, no stray bits), so the text stored is canonical.
    segl_crypto::device::public_key_from_b64url(&b.public_key)
        .map_err(|e| bad("malformed_public_key", &e.to_string()))?;
    let label = b.label.filter(|l| !l.trim().is_empty());
    if label
        .as_ref()
        .is_some_and(|l| l.chars().count() > MAX_LABEL || l.chars().any(char::is_control))
    {
        return Err(bad(
            "malformed_label",
            "the label is at most 64 characters, without control characters",
        ));
    }
    let second_hash = match &b.second_code {
        None => None,
        Some(c) => Some(code_hash(c).ok_or_else(|| {
            bad(
                "malformed_second_code",
                "the second code is 16 letters and digits, as ABCD-EFGH-JKMN-PQRS",
            )
        })?),
    };
    let now = st.now();
    let policy = &st.settings.policy.app;
    let mut tx = st.store.begin().await?;
    let id = match apps::check_code(
        &mut tx,
        &hash,
        second_hash.as_deref(),
        &policy.activation(),
        i64::from(policy.second_code_max_failures),
        now,
    )
    .await?
    {
        CodeCheck::Ready(id) => id,
        CodeCheck::Unknown => {
            return Err(ApiError::problem(
                StatusCode::NOT_FOUND,
                "activation_code_unknown",
                "no activation has this code; check it against the letter",
            ));
        }
        CodeCheck::NotYet { opens_at } => {
            return Err(ApiError::problem(
                StatusCode::CONFLICT,
                "activation_not_open",
                format!(
                    "for your safety the activation opens at {} (UTC); try again then",
                    rfc3339(opens_at)
                ),
            ));
        }
        CodeCheck::Ended => {
            // A wrong second code may just have ended it: that count must stay.
            tx.commit().await.map_err(segl_store::StoreError::from)?;
            return Err(ended());
        }
        CodeCheck::WrongSecondCode { remaining } => {
            // The failure is counted (and audited) even though the activation is refused.
            audit::append(
                &mut tx,
                &Event {
                    event: "app.activation_failure",
                    subject: None,
                    client_id: None,
                    data: json!({"reason": "wrong_second_code", "remaining": remaining}),
                },
                now,
            )
            .await?;
            tx.commit().await.map_err(segl_store::StoreError::from)?;
            return Err(ApiError::problem(
                StatusCode::UNAUTHORIZED,
                "wrong_second_code",
                format!(
                    "this activation needs both codes, from the SMS and the email; {remaining} attempts left"
                ),
            ));
        }
    };
    let activation = apps::activation(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::Internal("a ready activation vanished".into()))?;
    let person = persons::by_id(&mut tx, &activation.person_id)
        .await?
        .ok_or_else(|| ApiError::Internal("an activation without its person".into()))?;
    let has_mobile = person
        .phone
        .as_deref()
        .is_some_and(|p| segl_core::app::MobileNumber::parse(p).is_ok());
    if policy.require_mobile && !has_mobile {
        return Err(ApiError::problem(
            StatusCode::CONFLICT,
            "mobile_number_required",
            "the app needs a Norwegian mobile number (+47) on file; ask support to add it",
        ));
    }
    let app_id = random_digits(12);
    let replaced = apps::activate(
        &mut tx,
        &NewAppDevice {
            app_id: &app_id,
            person_id: &person.id,
            public_key: &b.public_key,
            label: label.as_deref(),
        },
        now,
    )
    .await?;
    if !apps::complete_activation(&mut tx, &id, &app_id, now).await? {
        return Err(ended());
    }
    crate::notify::sms(
        &mut tx,
        &st.store,
        &person,
        "app.activated",
        &crate::notify::activation_completed_text(label.as_deref()),
        now,
    )
    .await?;
    audit::append(
        &mut tx,
        &Event {
            event: "app.activated",
            subject: Some(&person.id),
            client_id: None,
            data: json!({
                "app_id": app_id,
                "method": activation.method.as_str(),
                "replaced": replaced,
            }),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(segl_store::StoreError::from)?;
    // An active eID gets its certificate now (a password and the app make it active); a
    // failure here only delays it to the first signing, which issues it too.
    if let Some(pki) = &st.pki
        && let Err(e) = pki
            .pki
            .ensure_person_certificate(&st.store, &person.id, now)
            .await
    {
        crate::error::log_fault(&e);
    }
    // The replaced app hears it at once if it is connected.
    if let Some(old) = &replaced {
        st.push.publish(&push::app_key(old)).await;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"app_id": app_id, "replaced_app_id": replaced})),
    )
        .into_response())
}

/// A refused device call: the error, and the known app to audit it on.
struct Refused {
    error: ApiError,
    audit: Option<(AppDevice, &'static str)>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused { error, audit: None }
    }
}

impl From<segl_store::StoreError> for Refused {
    fn from(e: segl_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl Refused {
    /// Records a refused call from a known app, in a transaction of its own.
    async fn recorded(self, st: &AppState) -> ApiError {
        if let Some((device, reason)) = self.audit {
            audit_apart(
                st,
                "app.auth_failure",
                device.person_id,
                json!({"app_id": device.app_id, "reason": reason}),
            )
            .await;
        }
        self.error
    }
}

/// Records a refusal about `subject` in a transaction of its own: the refused call's own
/// transaction, if it had one, was undone. A failure to record is logged: the refusal
/// stands.
async fn audit_apart(st: &AppState, event: &'static str, subject: String, data: serde_json::Value) {
    if let Err(e) = audit_alone(st, event, subject, data).await {
        tracing::error!(error = %e, event, "cannot record a refused device call");
    }
}

/// Appends one audit event about `subject`, as a durable transaction of its own (on
/// SQLite, a job of the writer thread).
async fn audit_alone(
    st: &AppState,
    event: &'static str,
    subject: String,
    data: serde_json::Value,
) -> segl_store::Result<()> {
    let now = st.now();
    st.store
        .transact(move |mut tx| {
            Box::pin(async move {
                let e = Event {
                    event,
                    subject: Some(&subject),
                    client_id: None,
                    data,
                };
                audit::append(&mut tx, &e, now).await.map(drop)
            })
        })
        .await
}

fn unauthorized(code: &'static str, detail: &str) -> ApiError {
    ApiError::problem(StatusCode::UNAUTHORIZED, code, detail.to_string())
}

/// A signed device call whose signature verified, from a known app (active or not). What
/// the call does runs in a transaction that first records its replay key
/// ([`SignedCall::record`]), so a refused call can be made again and gets the same answer.
struct SignedCall {
    /// The calling app, as read before the transaction: its key never changes, its state
    /// may (a write that needs it active checks again inside the transaction).
    device: AppDevice,
    /// The device's public key, decoded and checked.
    public_key: Vec<u8>,
    /// What was signed, hashed: the same call a second time has the same key.
    replay_key: String,
    /// Until when the key is kept: past any time the call's timestamp is accepted.
    replay_until: i64,
}

/// Checks a signed device-API call without writing anything: the device and its key are
/// read through the read pool and the signature is checked here, so the transaction (on
/// SQLite, a job of the single writer thread) only runs SQL.
///
/// Refused, each with its own code: missing or malformed headers, a clock more than
/// [`DEVICE_REQUEST_MAX_SKEW_SECS`] away, an unknown app, a signature that does not verify
/// (audited), and, from [`SignedCall::record`], the same signed message (app, nonce,
/// method, path, time and body) a second time (audited).
async fn verify_call(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SignedCall, Refused> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(app_id), Some(nonce), Some(ts), Some(sig)) = (
        h("x-segl-app-id"),
        h("x-segl-nonce"),
        h("x-segl-timestamp"),
        h("x-segl-signature"),
    ) else {
        return Err(unauthorized(
            "device_auth_required",
            "sign the call with the device key: X-Segl-App-Id, X-Segl-Nonce, X-Segl-Timestamp, X-Segl-Signature",
        )
        .into());
    };
    if !(16..=64).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(unauthorized(
            "malformed_device_auth",
            "X-Segl-Nonce is 16 to 64 base64url characters",
        )
        .into());
    }
    let timestamp: i64 = ts
        .parse()
        .map_err(|_| unauthorized("malformed_device_auth", "X-Segl-Timestamp is unix seconds"))?;
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .map_err(|_| unauthorized("malformed_device_auth", "X-Segl-Signature is base64url"))?;
    let now = st.now();
    if (now - timestamp).abs() > DEVICE_REQUEST_MAX_SKEW_SECS {
        return Err(unauthorized(
            "stale_device_request",
            "the device's clock is more than 60 seconds from the server's",
        )
        .into());
    }
    let device = {
        let mut c = st.store.read().await?;
        apps::by_app_id(&mut c, app_id).await?
    }
    .ok_or_else(|| unauthorized("unknown_app", "no app has this app ID"))?;
    let public_key = segl_crypto::device::public_key_from_b64url(&device.public_key)
        .map_err(|e| ApiError::Internal(format!("stored device key: {e}")))?;
    let body_sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(body).into();
    let request = DeviceRequest {
        app_id,
        nonce,
        method: method.as_str(),
        path: uri.path(),
        timestamp,
        body_sha256,
    };
    if let Err(e) = segl_crypto::device::verify_request(&public_key, &request, &signature) {
        return Err(Refused {
            error: unauthorized("bad_device_signature", &e.to_string()),
            audit: Some((device, "bad_signature")),
        });
    }
    Ok(SignedCall {
        device,
        public_key,
        // Keyed by what was signed, not by the signature: an ECDSA signature has a twin
        // that also verifies, and it must not let the same call through twice.
        replay_key: format!("dev:{}", sha256_b64url(&request.to_signed_bytes())),
        replay_until: timestamp + 2 * DEVICE_REQUEST_MAX_SKEW_SECS,
    })
}

impl SignedCall {
    /// Records the call's replay key in the caller's transaction; refused (and audited)
    /// when the same call was made before.
    async fn record(&self, tx: &mut impl Db) -> Result<(), Refused> {
        if apps::use_call_key(tx, &self.replay_key, self.replay_until).await? {
            return Ok(());
        }
        Err(Refused {
            error: unauthorized(
                "replayed_device_request",
                "this signed call was already made",
            ),
            audit: Some((self.device.clone(), "replay")),
        })
    }
}

fn device_view(d: &AppDevice) -> serde_json::Value {
    json!({
        "app_id": d.app_id,
        "state": d.state,
        "label": d.label,
        "activated_at": rfc3339(d.activated_at),
        "deactivated_at": d.deactivated_at.map(rfc3339),
        "deactivated_why": d.deactivated_why,
    })
}

/// The app's own state: a replaced or deactivated app learns it here.
async fn status(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let device = device_of(&st, &method, &uri, &headers, &body).await?;
    Ok(Json(device_view(&device)).into_response())
}

/// The person deactivates this app from the app itself.
async fn deactivate(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = st.now();
    let done = match verify_call(&st, &method, &uri, &headers, &body).await {
        Ok(call) => {
            st.store
                .transact(move |mut tx| {
                    Box::pin(async move { deactivate_caller(&mut tx, call, now).await })
                })
                .await
        }
        Err(r) => Err(r),
    };
    let device = match done {
        Ok(d) => d,
        Err(r) => return Err(r.recorded(&st).await),
    };
    st.push.publish(&push::app_key(&device.app_id)).await;
    let after = AppDevice {
        state: AppDeviceState::Deactivated,
        deactivated_at: Some(now),
        deactivated_why: Some(Deactivation::ByPerson.as_str().into()),
        ..device
    };
    Ok(Json(device_view(&after)).into_response())
}

/// Deactivates the calling app in the caller's transaction, after recording the call's
/// replay key; refused when the app is no longer active at that moment.
async fn deactivate_caller(
    tx: &mut impl Db,
    call: SignedCall,
    now: i64,
) -> Result<AppDevice, Refused> {
    call.record(tx).await?;
    let device = call.device;
    // The guarded UPDATE checks the state at the moment of the write.
    if device.state != AppDeviceState::Active
        || !apps::deactivate(tx, &device.app_id, Deactivation::ByPerson, now).await?
    {
        return Err(ApiError::problem(
            StatusCode::GONE,
            "app_deactivated",
            format!(
                "this app is no longer active ({})",
                device.deactivated_why.as_deref().unwrap_or("deactivated")
            ),
        )
        .into());
    }
    audit::append(
        tx,
        &Event {
            event: "app.deactivated",
            subject: Some(&device.person_id),
            client_id: None,
            data: json!({"app_id": device.app_id, "why": Deactivation::ByPerson.as_str(), "by": "app"}),
        },
        now,
    )
    .await?;
    Ok(device)
}

/// An activation just started: the codes to hand over (shown once; segl keeps hashes).
#[derive(Debug)]
pub struct Started {
    /// The activation's id.
    pub id: String,
    /// The activation code (for the letter, the page, the SMS, or the old phone).
    pub code: String,
    /// The second code (sent by email), for an activation by SMS and email.
    pub second_code: Option<String>,
    /// When it may be completed (unix seconds).
    pub opens_at: i64,
    /// When it lapses.
    pub expires_at: i64,
    /// Earlier pending activations it replaced.
    pub cancelled: u64,
}

/// Starts an app activation for `person` by `method`, in the caller's transaction: new
/// codes (any pending activation is cancelled), an audit event, and the owner's SMS about
/// it; for [`ActivationMethod::SmsAndEmail`] the codes themselves go out by SMS and email.
/// Refused without a Norwegian mobile number when the policy asks for one.
pub async fn start_activation(
    c: &mut impl segl_store::db::Db,
    store: &segl_store::Store,
    policy: &segl_core::app::AppPolicy,
    person: &persons::Person,
    method: apps::ActivationMethod,
    by: &str,
    now: i64,
) -> Result<Started, ApiError> {
    use apps::ActivationMethod as M;
    if persons::blocked(c, &person.id).await?.is_some() {
        return Err(ApiError::problem(
            StatusCode::CONFLICT,
            "person_blocked",
            "this eID is blocked; a new identity check comes before a new activation",
        ));
    }
    if policy.require_mobile
        && person
            .phone
            .as_deref()
            .is_none_or(|p| segl_core::app::MobileNumber::parse(p).is_err())
    {
        return Err(mobile_required());
    }
    let code = segl_crypto::random::activation_code();
    let second_code = (method == M::SmsAndEmail).then(segl_crypto::random::activation_code);
    let hash = code_hash(&code)
        .ok_or_else(|| ApiError::Internal("a new activation code did not normalize".into()))?;
    let second_hash = second_code.as_deref().and_then(code_hash);
    let id = uuid::Uuid::new_v4().to_string();
    let cancelled = apps::start_activation(
        c,
        &apps::NewActivation {
            id: &id,
            person_id: &person.id,
            method,
            code_hash: &hash,
            second_code_hash: second_hash.as_deref(),
        },
        now,
    )
    .await?;
    let timing = policy.activation();
    let opens_at = if method.skips_security_period() {
        now
    } else {
        now + timing.security_period_secs
    };
    let expires_at = opens_at + timing.completion_window_secs;
    audit::append(
        c,
        &Event {
            event: "app.activation_started",
            subject: Some(&person.id),
            client_id: None,
            data: json!({"activation": id, "method": method.as_str(), "cancelled": cancelled, "by": by}),
        },
        now,
    )
    .await?;
    let how = match method {
        M::Eid => "med kodebrikke og passord",
        M::SmsAndEmail => "med koder på SMS og e-post",
        M::OldDevice => "fra den gamle telefonen",
        M::Letter => "med kode i brev",
        M::Order => "ved aktivering av ny eID",
    };
    let opens = (!method.skips_security_period()).then(|| rfc3339(opens_at));
    crate::notify::sms(
        c,
        store,
        person,
        "app.activation_started",
        &crate::notify::activation_started_text(how, opens.as_deref()),
        now,
    )
    .await?;
    if let Some(second) = &second_code {
        let sms = crate::notify::sms(
            c,
            store,
            person,
            "app.activation_code",
            &format!("segl: Aktiveringskode 1 av 2 for segl-appen: {code}. Kode 2 kommer på e-post. Gi aldri kodene til andre."),
            now,
        )
        .await?;
        let mail = crate::notify::email(
            c,
            store,
            person,
            "app.activation_second_code",
            &format!("Aktiveringskode 2 av 2 for segl-appen: {second}\n\nKode 1 kom på SMS. Gi aldri kodene til andre, heller ikke til noen som sier de ringer fra banken."),
            now,
        )
        .await?;
        if !(sms && mail) {
            return Err(ApiError::problem(
                StatusCode::CONFLICT,
                "contact_missing",
                "activation by SMS and email needs both a mobile number and an email address on file",
            ));
        }
    }
    Ok(Started {
        id,
        code,
        second_code,
        opens_at,
        expires_at,
        cancelled,
    })
}

/// Refuses a password change while an app activation is pending (waiting out its security
/// period or open): someone who took over the password must not also lock the owner out
/// of the password before the owner, warned by SMS, can stop the activation.
pub async fn password_change_allowed(
    c: &mut segl_store::Conn,
    policy: &segl_core::app::AppPolicy,
    person_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    use segl_core::app::{ActivationPhase, activation_phase};
    let Some(a) = apps::pending_activation(c, person_id).await? else {
        return Ok(());
    };
    let from_old = a.method.skips_security_period();
    match activation_phase(&policy.activation(), a.started_at, now, from_old) {
        ActivationPhase::Expired => Ok(()),
        ActivationPhase::Waiting { .. } | ActivationPhase::Open { .. } => Err(ApiError::problem(
            StatusCode::CONFLICT,
            "activation_pending",
            format!(
                "the password cannot be changed while an app activation is pending (started {} by {}); \
                 it must be completed or stopped first",
                rfc3339(a.started_at),
                a.method.as_str()
            ),
        )),
    }
}

fn mobile_required() -> ApiError {
    ApiError::problem(
        StatusCode::CONFLICT,
        "mobile_number_required",
        "the app needs a Norwegian mobile number (+47) on file; ask support to add it",
    )
}

fn ended() -> ApiError {
    ApiError::problem(
        StatusCode::GONE,
        "activation_ended",
        "this activation code has been used, has expired or was cancelled",
    )
}

// ---------------------------------------------------------------------------------------
// Approval requests: push, polling, answers, QR codes

/// A request as the app shows it. The app signs `id`, `rp` and `verification_code` exactly
/// as given here, with the SHA-256 of `text` (see `segl_core::app::ApprovalPayload`).
fn request_view(q: &apps::AppRequest) -> serde_json::Value {
    json!({
        "id": q.id,
        "rp": q.rp_name,
        "text": q.text,
        "verification_code": q.verification_code,
        "expires_at": rfc3339(q.expires_at),
    })
}

/// Authenticates a call that changes nothing (the app's status, its waiting requests, its
/// event stream, a scanned QR code), auditing a refusal.
///
/// Its replay key is recorded with [`segl_store::Store::relaxed`]: on SQLite without
/// waiting for the disk, so reconnecting streams do not each cost an fsync. A power cut
/// may take the last keys back; a call made in the two minutes before it could then be
/// replayed once, which shows only what the call showed and changes nothing.
async fn device_of(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<AppDevice, ApiError> {
    let checked = match verify_call(st, method, uri, headers, body).await {
        Ok(call) => {
            st.store
                .relaxed(move |mut tx| {
                    Box::pin(async move {
                        call.record(&mut tx).await?;
                        Ok(call.device)
                    })
                })
                .await
        }
        Err(r) => Err(r),
    };
    match checked {
        Ok(d) => Ok(d),
        Err(r) => Err(r.recorded(st).await),
    }
}

fn inactive(d: &AppDevice) -> ApiError {
    ApiError::problem(
        StatusCode::FORBIDDEN,
        "app_deactivated",
        format!(
            "this app is no longer active ({}); activate it again",
            d.deactivated_why.as_deref().unwrap_or("deactivated")
        ),
    )
}

/// `GET /api/v1/app/requests`: the polling fallback: the requests waiting for this app.
async fn requests(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let device = device_of(&st, &method, &uri, &headers, &body).await?;
    if device.state != AppDeviceState::Active {
        return Err(inactive(&device));
    }
    let mut c = st.store.read().await?;
    let pending = apps::pending_for(&mut c, &device.app_id, st.now()).await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({"requests": pending.iter().map(request_view).collect::<Vec<_>>()})),
    )
        .into_response())
}

/// What the app's event stream sends next.
enum Next {
    /// The current list of waiting requests (sent when it changed).
    Requests(String),
    /// The app was deactivated; the stream ends.
    Deactivated(String),
}

/// One server-sent event of an app's stream.
pub(crate) enum Frame {
    /// `requests`: the list of waiting requests, as JSON on one line.
    Requests(String),
    /// `deactivated`: the app's state; the stream ends after it.
    Deactivated(String),
    /// A comment, so proxies and the app see the connection is alive.
    KeepAlive,
}

impl Frame {
    /// The event in the `text/event-stream` format. The JSON of `serde_json` has no raw
    /// line breaks, so one `data:` line holds it.
    pub(crate) fn to_wire(&self) -> String {
        match self {
            Frame::Requests(d) => format!("event: requests\ndata: {d}\n\n"),
            Frame::Deactivated(d) => format!("event: deactivated\ndata: {d}\n\n"),
            Frame::KeepAlive => ":\n\n".to_string(),
        }
    }
}

/// Silence longer than this gets a keep-alive comment.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);
/// A request that lapses is dropped from the list without a push: look again at least
/// this often.
const REREAD: std::time::Duration = std::time::Duration::from_secs(30);

/// An open event stream of one app, after its signed call was checked. Shared by the
/// route below and the small listener of [`crate::app_events`], which serves the same
/// stream with far less memory per connection.
pub(crate) struct EventFeed {
    st: AppState,
    app_id: String,
    sub: push::Subscription,
    /// The last list sent, so an unchanged list is not sent again.
    last: Option<String>,
    /// When the list was last read.
    read_at: Option<tokio::time::Instant>,
    /// When the last frame was sent.
    sent_at: tokio::time::Instant,
    done: bool,
}

impl EventFeed {
    /// Checks the signed call and subscribes; refused like any device call, and with
    /// `app_deactivated` for an app that is no longer active.
    pub(crate) async fn open(
        st: &AppState,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<EventFeed, ApiError> {
        let device = device_of(st, method, uri, headers, body).await?;
        if device.state != AppDeviceState::Active {
            return Err(inactive(&device));
        }
        // Subscribed before the first read, so nothing published in between is missed.
        let sub = st.push.subscribe(push::app_key(&device.app_id));
        Ok(EventFeed {
            st: st.clone(),
            app_id: device.app_id,
            sub,
            last: None,
            read_at: None,
            sent_at: tokio::time::Instant::now(),
            done: false,
        })
    }

    /// The next frame; `None` when the stream ends (after `deactivated`, at shutdown, or
    /// when the database cannot be read: the app reconnects or polls, nothing is lost).
    /// Cancelling it loses nothing but a wake-up's read, which the next re-read makes up.
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        if self.done {
            return None;
        }
        loop {
            if let Some(read_at) = self.read_at {
                if self.sent_at.elapsed() >= KEEP_ALIVE {
                    self.sent_at = tokio::time::Instant::now();
                    return Some(Frame::KeepAlive);
                }
                let until_reread = REREAD.saturating_sub(read_at.elapsed());
                if !until_reread.is_zero() {
                    let until_keep_alive = KEEP_ALIVE.saturating_sub(self.sent_at.elapsed());
                    let quiet = until_keep_alive.min(until_reread);
                    match tokio::time::timeout(quiet, self.sub.wait()).await {
                        Ok(false) => return None,
                        Ok(true) => {}
                        // A deadline passed: the checks above say which.
                        Err(_) => continue,
                    }
                }
            }
            self.read_at = Some(tokio::time::Instant::now());
            // Boxed: the read's future is large and lives only while it runs, not in every
            // idle connection's state.
            let next = match Box::pin(next_for(&self.st, &self.app_id)).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "app event stream: cannot read; closing");
                    return None;
                }
            };
            match next {
                Next::Requests(list) if self.last.as_deref() == Some(list.as_str()) => continue,
                Next::Requests(list) => {
                    self.last = Some(list.clone());
                    self.sent_at = tokio::time::Instant::now();
                    return Some(Frame::Requests(list));
                }
                Next::Deactivated(view) => {
                    self.done = true;
                    return Some(Frame::Deactivated(view));
                }
            }
        }
    }
}

/// `GET /api/v1/app/events`: server-sent events for the app. `requests` carries the list of
/// requests waiting for the app, sent on connect and whenever it changes (a new request,
/// one answered, withdrawn or lapsed); `deactivated` tells a replaced or deactivated app,
/// and ends the stream. The list is read from the database on every wake-up, so a missed
/// push only delays it to the next one, and `GET /api/v1/app/requests` shows the same.
///
/// A connection whose first request is this one is served by [`crate::app_events`]
/// instead; this route serves the rest (a connection reused from other calls, HTTP/2).
async fn events(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let feed = EventFeed::open(&st, &method, &uri, &headers, &body).await?;
    // The same bytes as the small listener writes ([`Frame::to_wire`]).
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let frame = feed.next().await?;
        Some((Ok::<_, std::convert::Infallible>(frame.to_wire()), feed))
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

async fn next_for(st: &AppState, app_id: &str) -> Result<Next, ApiError> {
    let mut c = st.store.read().await?;
    // One query while the app is active (every wake-up of every stream); the device's
    // whole record only when it is not.
    if let Some(pending) = apps::pending_if_active(&mut c, app_id, st.now()).await? {
        let list: Vec<_> = pending.iter().map(request_view).collect();
        return Ok(Next::Requests(json!({"requests": list}).to_string()));
    }
    let device = apps::by_app_id(&mut c, app_id)
        .await?
        .ok_or_else(|| ApiError::Internal("a connected app vanished".into()))?;
    Ok(Next::Deactivated(device_view(&device).to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    /// `approve` or `deny`.
    decision: segl_core::app::Decision,
    /// `pin`, `face` or `fpt`; absent or null when the app did not verify its user.
    #[serde(default)]
    user_verification: Option<segl_core::app::UserVerification>,
    /// The device key's signature over the `segl_core::app::ApprovalPayload`, base64url.
    signature: String,
    /// With a denial: the person also asks to block their eID.
    #[serde(default)]
    block: bool,
}

/// A refused answer, with the reason the audit log records (`None`: nothing to audit).
struct Refusal {
    error: ApiError,
    reason: Option<&'static str>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            reason: None,
        }
    }
}

impl From<segl_store::StoreError> for Refusal {
    fn from(e: segl_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

fn device_inactive(d: &AppDevice) -> Refusal {
    Refusal {
        error: inactive(d),
        reason: Some("device_inactive"),
    }
}

fn unknown_request() -> Refusal {
    refuse(
        StatusCode::NOT_FOUND,
        "request_unknown",
        "unknown_request",
        "no request has this id",
    )
}

fn wrong_device() -> Refusal {
    refuse(
        StatusCode::FORBIDDEN,
        "request_not_for_this_app",
        "wrong_device",
        "this request was sent to another app",
    )
}

fn refuse(status: StatusCode, code: &'static str, reason: &'static str, detail: &str) -> Refusal {
    Refusal {
        error: ApiError::problem(status, code, detail.to_string()),
        reason: Some(reason),
    }
}

/// `POST /api/v1/app/requests/{id}/answer`: "Yes, it's me" or "No". The call is signed
/// like every device call, and the answer itself carries the device key's signature over
/// the request (kept as evidence). Refused, each with its own code and an audit event: a
/// deactivated app, an unknown request, another app's request, a malformed body or
/// signature, a signature that does not match the request, an answer to a request already
/// answered (exactly one of two racing answers wins), withdrawn or lapsed.
///
/// Both signatures are checked before the transaction, against the request as read
/// through the read pool (what the app signed never changes once stored); the transaction
/// records the call's replay key and the answer, whose guarded UPDATE checks at that moment
/// that the request still waits and the app is still active.
async fn answer(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = st.now();
    let call = match verify_call(&st, &method, &uri, &headers, &body).await {
        Ok(c) => c,
        Err(r) => return Err(r.recorded(&st).await),
    };
    let (person_id, app_id) = (call.device.person_id.clone(), call.device.app_id.clone());
    let done = match check_answer(&st, &call, &id, &body).await {
        Ok(checked) => {
            st.store
                .transact(move |mut tx| {
                    Box::pin(async move {
                        call.record(&mut tx).await.map_err(Undone::Call)?;
                        record_answer(&mut tx, &call.device, &checked, now)
                            .await
                            .map_err(Undone::Answer)
                    })
                })
                .await
        }
        Err(r) => Err(Undone::Answer(r)),
    };
    match done {
        Ok((state, flow_id)) => {
            // The browser waiting on the flow collects the answer; the app's other
            // connections drop the request from their list.
            st.push.publish(&push::flow_key(&flow_id)).await;
            st.push.publish(&push::app_key(&app_id)).await;
            Ok(Json(json!({"id": id, "state": state})).into_response())
        }
        Err(Undone::Call(r)) => Err(r.recorded(&st).await),
        Err(Undone::Answer(r)) => {
            if let Some(reason) = r.reason {
                audit_apart(
                    &st,
                    "app.answer_refused",
                    person_id,
                    json!({"app_id": app_id, "request_id": id, "reason": reason}),
                )
                .await;
            }
            Err(r.error)
        }
    }
}

/// Why an answer's transaction was undone: the signed call was refused (a replay), or the
/// answer was.
enum Undone {
    /// The call itself: audited as `app.auth_failure`.
    Call(Refused),
    /// The answer: audited as `app.answer_refused` when it has a reason.
    Answer(Refusal),
}

impl From<segl_store::StoreError> for Undone {
    fn from(e: segl_store::StoreError) -> Self {
        Undone::Answer(e.into())
    }
}

/// An answer whose body and approval signature were checked against its request.
struct CheckedAnswer {
    body: AnswerBody,
    request: apps::AppRequest,
}

/// Checks an answer without writing anything: its body, the app's state as read, the
/// request (read through the read pool) and the approval signature.
async fn check_answer(
    st: &AppState,
    call: &SignedCall,
    id: &str,
    body: &[u8],
) -> Result<CheckedAnswer, Refusal> {
    use segl_core::app::{ApprovalPayload, Decision};
    let device = &call.device;
    let b: AnswerBody = serde_json::from_slice(body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "malformed_answer",
            "malformed_answer",
            &format!("the answer is not valid: {e}"),
        )
    })?;
    if b.block && b.decision == Decision::Approve {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "malformed_answer",
            "malformed_answer",
            "block goes with deny only",
        ));
    }
    if device.state != AppDeviceState::Active {
        return Err(device_inactive(device));
    }
    let q = {
        let mut c = st.store.read().await?;
        apps::request(&mut c, id).await?
    };
    let Some(q) = q else {
        return Err(unknown_request());
    };
    if q.app_id != device.app_id {
        return Err(wrong_device());
    }
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(b.signature.as_bytes())
        .map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                "malformed_answer",
                "malformed_signature",
                "signature is base64url without padding",
            )
        })?;
    let payload = ApprovalPayload {
        request_id: q.id.clone(),
        rp: q.rp_name.clone(),
        verification_code: q.verification_code.clone(),
        text_sha256: segl_crypto::random::sha256(q.text.as_bytes()),
        decision: b.decision,
        user_verification: b.user_verification,
    };
    if let Err(e) = segl_crypto::device::verify_approval(&call.public_key, &payload, &signature) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_approval_signature",
            "bad_signature",
            &format!("the answer's signature does not match this request: {e}"),
        ));
    }
    Ok(CheckedAnswer {
        body: b,
        request: q,
    })
}

/// Records a checked answer in the caller's transaction (a job of the SQLite writer: SQL
/// only); returns the new state and the flow to wake.
async fn record_answer(
    tx: &mut impl Db,
    device: &AppDevice,
    a: &CheckedAnswer,
    now: i64,
) -> Result<(&'static str, String), Refusal> {
    use segl_core::app::Decision;
    let (b, q) = (&a.body, &a.request);
    let answer = apps::Answer {
        approve: b.decision == Decision::Approve,
        user_verification: b.user_verification.as_ref().map(|u| u.amr()),
        signature: &b.signature,
    };
    let decided = apps::decide(tx, &q.id, &device.app_id, &answer, now).await?;
    let state = match decided {
        apps::Decided::Recorded(s) => s,
        apps::Decided::AlreadyDecided(apps::RequestState::Cancelled) => {
            return Err(refuse(
                StatusCode::CONFLICT,
                "request_cancelled",
                "cancelled",
                "the login was cancelled or moved on before your answer",
            ));
        }
        apps::Decided::AlreadyDecided(_) => {
            return Err(refuse(
                StatusCode::CONFLICT,
                "request_already_answered",
                "already_answered",
                "this request has already been answered",
            ));
        }
        apps::Decided::Expired => {
            return Err(refuse(
                StatusCode::GONE,
                "request_expired",
                "expired",
                "the request expired before your answer; start again from the service",
            ));
        }
        apps::Decided::WrongDevice => {
            return Err(wrong_device());
        }
        apps::Decided::DeviceInactive => {
            return Err(device_inactive(device));
        }
        apps::Decided::Unknown => {
            return Err(unknown_request());
        }
    };
    let denied = b.decision == Decision::Deny;
    audit::append(
        tx,
        &Event {
            event: if denied { "app.denied" } else { "app.approved" },
            subject: Some(&device.person_id),
            client_id: None,
            data: json!({
                "app_id": device.app_id,
                "request_id": q.id,
                "flow_id": q.flow_id,
                "rp": q.rp_name,
                "user_verification": answer.user_verification,
                // "No, that's not me": someone else may have started this login.
                "possible_fraud": denied,
                "block_requested": b.block,
            }),
        },
        now,
    )
    .await?;
    if b.block {
        apps::record_block_request(tx, &random_token(18), &device.person_id, &q.id, now).await?;
        audit::append(
            tx,
            &Event {
                event: "eid.block_requested",
                subject: Some(&device.person_id),
                client_id: None,
                data: json!({"source": "app_denial", "app_id": device.app_id, "request_id": q.id}),
            },
            now,
        )
        .await?;
    }
    Ok((state.as_str(), q.flow_id.clone()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    /// The scanned text, `segl-qr.{request}.{seconds}.{auth_code}`.
    qr: String,
}

/// `POST /api/v1/app/scan`: the app scanned the animated QR code on the login page; the
/// answer is the request to show. Refused when the code is malformed, stale (older than
/// `QR_MAX_AGE_SECS`), forged, or belongs to another person's login.
async fn scan(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let device = device_of(&st, &method, &uri, &headers, &body).await?;
    if device.state != AppDeviceState::Active {
        return Err(inactive(&device));
    }
    let b: ScanBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::problem(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("the body is not valid: {e}"),
        )
    })?;
    let bad_qr = |code: &'static str, detail: String| {
        ApiError::problem(StatusCode::BAD_REQUEST, code, detail)
    };
    let parts =
        segl_crypto::qr::qr_parse(&b.qr).map_err(|e| bad_qr("malformed_qr", e.to_string()))?;
    let now = st.now();
    let mut c = st.store.read().await?;
    let unknown = || {
        ApiError::problem(
            StatusCode::NOT_FOUND,
            "qr_unknown",
            "this QR code belongs to no login waiting for the app",
        )
    };
    let q = apps::request(&mut c, parts.flow_ref)
        .await?
        .filter(|q| q.state == apps::RequestState::Pending && q.expires_at > now)
        .ok_or_else(unknown)?;
    let row = segl_store::flows::get(&mut c, &q.flow_id)
        .await?
        .ok_or_else(unknown)?;
    let flow: segl_core::flow::LoginFlow = serde_json::from_str(&row.data)
        .map_err(|e| ApiError::Store(segl_store::StoreError::Corrupt(e.to_string())))?;
    let wait = flow
        .app
        .filter(|a| a.request_id == q.id)
        .ok_or_else(unknown)?;
    let secret = data_encoding::BASE64URL_NOPAD
        .decode(wait.qr_secret.as_bytes())
        .map_err(|e| ApiError::Internal(format!("stored QR secret: {e}")))?;
    segl_crypto::qr::qr_verify(
        &b.qr,
        &q.id,
        &secret,
        segl_core::app::qr_time_step(wait.started_at, now),
        segl_core::app::QR_MAX_AGE_SECS,
    )
    .map_err(|e| match e {
        segl_crypto::qr::QrError::TooOld { .. } | segl_crypto::qr::QrError::FromTheFuture => {
            bad_qr("qr_stale", e.to_string())
        }
        e => bad_qr("malformed_qr", e.to_string()),
    })?;
    drop(c);
    if q.app_id != device.app_id {
        // A valid, fresh code scanned by someone else's app: a relayed QR code, or a
        // mistake. Recorded on the person the login is for.
        audit_alone(
            &st,
            "app.qr_refused",
            q.person_id.clone(),
            json!({"request_id": q.id, "scanned_by_app": device.app_id}),
        )
        .await?;
        // The same answer as for a login waiting for no app, so scanning does not tell
        // whether the person logging in has one.
        return Err(unknown());
    }
    Ok(Json(request_view(&q)).into_response())
}

// ---------------------------------------------------------------------------------------
// Starting activations from the device API

/// `POST /api/v1/app/transfers`: the old phone approves moving the app to a new phone. The
/// call is signed with the old app's key (unlocked by its PIN), which is the approval; the
/// answer is an activation code for the new phone (shown as a QR code on the old one), open
/// at once, since the owner evidently holds the old phone. Completing it deactivates the old
/// app.
async fn transfer(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = st.now();
    let call = match verify_call(&st, &method, &uri, &headers, &body).await {
        Ok(c) => c,
        Err(r) => return Err(r.recorded(&st).await),
    };
    let st2 = st.clone();
    let started = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move { transfer_from_caller(&st2, &mut tx, call, now).await })
        })
        .await;
    let started = match started {
        Ok(s) => s,
        Err(r) => return Err(r.recorded(&st).await),
    };
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "activation_code": started.code,
            "expires_at": rfc3339(started.expires_at),
        })),
    )
        .into_response())
}

/// Starts the activation of a new phone from the calling app, in the caller's transaction,
/// after recording the call's replay key; refused when the app is no longer active at that
/// moment.
async fn transfer_from_caller(
    st: &AppState,
    tx: &mut impl Db,
    call: SignedCall,
    now: i64,
) -> Result<Started, Refused> {
    call.record(tx).await?;
    let device = apps::by_app_id(tx, &call.device.app_id)
        .await?
        .ok_or_else(|| ApiError::Internal("a signed-in app vanished".into()))?;
    if device.state != AppDeviceState::Active {
        return Err(inactive(&device).into());
    }
    let person = persons::by_id(tx, &device.person_id)
        .await?
        .ok_or_else(|| ApiError::Internal("an app without its person".into()))?;
    Ok(start_activation(
        tx,
        &st.store,
        &st.settings.policy.app,
        &person,
        apps::ActivationMethod::OldDevice,
        &format!("app:{}", device.app_id),
        now,
    )
    .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsEmailBody {
    /// The national identity number.
    nin: String,
}

/// No new codes by SMS and email within this many seconds of the last, so the endpoint
/// cannot be used to flood a person's phone.
const SMS_EMAIL_MIN_INTERVAL_SECS: i64 = 60;

/// `POST /api/v1/app/activations/by-sms-email`: activation without the old phone or the
/// code device: one code goes to the registered mobile number, the other to the registered
/// email address, and both are needed after the security period. The answer is the same
/// whether or not the number has an eID with both on file, so it tells nobody who does;
/// the owner is told by SMS either way it starts.
async fn start_by_sms_email(
    State(st): State<AppState>,
    ApiJson(b): ApiJson<SmsEmailBody>,
) -> Result<Response, ApiError> {
    let nin = segl_core::nin::Nin::parse(&b.nin).map_err(|e| {
        ApiError::problem(
            StatusCode::BAD_REQUEST,
            "invalid_nin",
            format!("invalid national identity number: {e}"),
        )
    })?;
    let now = st.now();
    let policy = &st.settings.policy.app;
    let mut tx = st.store.begin().await?;
    let outcome = match persons::by_nin(&mut tx, nin.as_str()).await? {
        None => "unknown_person",
        Some(person) => {
            let recent = apps::pending_activation(&mut tx, &person.id)
                .await?
                .filter(|a| a.method == apps::ActivationMethod::SmsAndEmail)
                .is_some_and(|a| now - a.started_at < SMS_EMAIL_MIN_INTERVAL_SECS);
            if recent {
                "too_soon"
            } else {
                match start_activation(
                    &mut tx,
                    &st.store,
                    policy,
                    &person,
                    apps::ActivationMethod::SmsAndEmail,
                    "sms_email",
                    now,
                )
                .await
                {
                    Ok(_) => "started",
                    Err(ApiError::Problem { code, .. }) => code,
                    Err(e) => return Err(e),
                }
            }
        }
    };
    if outcome == "started" {
        tx.commit().await.map_err(segl_store::StoreError::from)?;
    } else {
        // Nothing started: recorded (without the number) for the security team.
        drop(tx);
        let mut c = st.store.conn().await?;
        audit::append(
            &mut c,
            &Event {
                event: "app.activation_refused",
                subject: None,
                client_id: None,
                data: json!({"method": "sms_email", "reason": outcome}),
            },
            now,
        )
        .await?;
    }
    let opens_at = now + policy.security_period_secs;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "if this number has an eID with a mobile number and an email address on file, one code is on its way to each",
            "opens_at": rfc3339(opens_at),
            "expires_at": rfc3339(opens_at + policy.completion_window_secs),
        })),
    )
        .into_response())
}
