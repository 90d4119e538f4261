//! The app in the login flow, on the browser's side: opening the approval request when the
//! flow starts waiting for the app, collecting the answer, the live updates and the
//! animated QR code. The app's side (answering, push to the device) is in
//! [`crate::app_api`].
//!
//! A person with no active app gets the same page, verification code and QR code as one
//! with an app, and the flow lapses the same way when nobody answers: the login page does
//! not tell who has an app.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use futures_util::stream;
use segl_core::app::{UserVerification, qr_time_step, verification_code};
use segl_core::flow::{AppAnswer, AppWait, FlowError, LoginFlow, LoginState};
use segl_crypto::random::{random_bytes, random_token};
use segl_store::apps::{self, AppRequest, RequestState};
use segl_store::audit::{self, Event};
use segl_store::db::Db;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{load_for_browser, person_of};
use crate::i18n::Lang;
use crate::push;

/// Requests a device may have waiting at once.
pub const MAX_PENDING_PER_APP: i64 = 3;

/// Opens the request a flow in `app_pending` waits for: sent to the person's active app,
/// or, without one, only recorded on the flow. Returns the app to push to.
pub(crate) async fn open_request(
    st: &AppState,
    tx: &mut impl Db,
    flow_id: &str,
    flow: &mut LoginFlow,
    now: i64,
) -> Result<Option<String>, ApiError> {
    let policy = &st.settings.policy.app;
    let person = person_of(tx, flow).await?;
    let device = match &person {
        Some(p) => apps::active_for(tx, p).await?,
        None => None,
    };
    let wait = AppWait {
        request_id: random_token(18),
        verification_code: verification_code(policy.verification_code, random_bytes::<4>()),
        started_at: now,
        // Never beyond the flow's own end.
        expires_at: (now + policy.request_ttl_secs).min(flow.expires_at),
        qr_secret: random_token(32),
    };
    // Against push bombing: a device with this many requests waiting gets no more until
    // some are answered or lapse. The page looks the same; the request just never arrives.
    let device = match device {
        Some(d) if apps::pending_count(tx, &d.app_id, now).await? >= MAX_PENDING_PER_APP => {
            audit::append(
                tx,
                &Event {
                    event: "app.request_suppressed",
                    subject: Some(&d.person_id),
                    client_id: Some(&flow.request.client_id),
                    data: json!({"app_id": d.app_id, "pending": MAX_PENDING_PER_APP}),
                },
                now,
            )
            .await?;
            None
        }
        d => d,
    };
    let mut pushed = None;
    if let (Some(person), Some(device)) = (person, device) {
        let lang =
            Lang::pick(flow.request.ui_locales.iter().map(String::as_str)).unwrap_or(Lang::Nb);
        // A signing order shows its own text, and the app's signature covers its hash.
        let text = match crate::sign::app_text(tx, flow).await? {
            Some(t) => t,
            None => format!("{} {}", lang.t().app_request_text, flow.request.client_name),
        };
        apps::insert_request(
            tx,
            &AppRequest {
                id: wait.request_id.clone(),
                person_id: person,
                app_id: device.app_id.clone(),
                flow_id: flow_id.to_string(),
                rp_name: flow.request.client_name.clone(),
                text,
                verification_code: wait.verification_code.clone(),
                created_at: now,
                expires_at: wait.expires_at,
                state: RequestState::Pending,
                decided_at: None,
                user_verification: None,
                signature: None,
            },
        )
        .await?;
        pushed = Some(device.app_id);
    }
    flow.wait_for_app(wait, now)?;
    Ok(pushed)
}

/// The collect step: the app's answer, if there is one yet, moves the flow on. Still
/// waiting leaves the flow as it is.
pub(crate) async fn collect(
    tx: &mut impl Db,
    flow: &mut LoginFlow,
    now: i64,
) -> Result<Result<(), FlowError>, ApiError> {
    if let Err(e) = flow.expect_app_answer(now) {
        return Ok(Err(e));
    }
    let Some(wait) = flow.app.clone() else {
        return Ok(Err(FlowError::InvalidState(flow.state.as_str())));
    };
    let request = apps::request(tx, &wait.request_id).await?;
    let answer = match request.map(|q| (q.state, q.user_verification)) {
        Some((RequestState::Approved, uv)) => {
            AppAnswer::Approved(uv.as_deref().and_then(UserVerification::parse))
        }
        Some((RequestState::Denied, _)) => AppAnswer::Denied,
        _ if now >= wait.expires_at => AppAnswer::Expired,
        _ => return Ok(Ok(())),
    };
    Ok(flow.app_answered(answer, now))
}

/// `GET /api/v1/flows/{id}/events`: server-sent events for the browser's page. An `update`
/// event means the app has answered (or the request was withdrawn): the page then posts the
/// collect step. Comments keep the connection open through proxies.
pub async fn flow_events(
    State(st): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Subscribed before the flow is read, so an answer in between is not missed.
    let sub = st.push.subscribe(push::flow_key(&id));
    let (_, flow) = load_for_browser(&st, &jar, &id).await?;
    // An answer that came before the page connected is announced at once.
    let answered = match &flow.app {
        Some(a) if flow.state == LoginState::AppPending => {
            let mut c = st.store.read().await?;
            apps::request(&mut c, &a.request_id)
                .await?
                .is_some_and(|q| q.state != RequestState::Pending)
        }
        _ => false,
    };
    let first = stream::iter(
        answered
            .then(update_event)
            .map(Ok::<_, std::convert::Infallible>),
    );
    let rest = stream::unfold(sub, |mut sub| async move {
        sub.wait().await.then(|| (Ok(update_event()), sub))
    });
    use futures_util::StreamExt;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(first.chain(rest)).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

fn update_event() -> SseEvent {
    SseEvent::default().event("update").data("{}")
}

/// `GET /api/v1/flows/{id}/qr`: the animated QR code as it is this second, as SVG. Only the
/// browser bound to the flow gets it; the page reloads it every second.
pub async fn flow_qr(
    State(st): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, flow) = load_for_browser(&st, &jar, &id).await?;
    let now = st.now();
    let wait = match &flow.app {
        Some(a) if flow.state == LoginState::AppPending && now < a.expires_at => a,
        _ => {
            return Err(ApiError::problem(
                StatusCode::CONFLICT,
                "no_app_request",
                "this login is not waiting for the app",
            ));
        }
    };
    let secret = data_encoding::BASE64URL_NOPAD
        .decode(wait.qr_secret.as_bytes())
        .map_err(|e| ApiError::Internal(format!("stored QR secret: {e}")))?;
    let payload = segl_crypto::qr::qr_payload(
        &wait.request_id,
        &secret,
        qr_time_step(wait.started_at, now),
    );
    let svg = qr_svg(&payload)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// A QR code as SVG (error correction M; the payload is about 110 ASCII characters).
pub fn qr_svg(payload: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M)
        .map_err(|e| ApiError::Internal(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}
