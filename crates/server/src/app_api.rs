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
use segl_crypto::random::{random_digits, sha256_b64url};
use segl_store::apps::{self, AppDevice, AppDeviceState, CodeCheck, Deactivation, NewAppDevice};
use segl_store::audit::{self, Event};
use segl_store::grants;
use segl_store::persons;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::flow::{ApiJson, rfc3339};

/// The device API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/app/activations", post(activate))
        .route("/api/v1/app/status", get(status))
        .route("/api/v1/app/deactivate", post(deactivate))
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
    let now = st.now();
    let policy = &st.settings.policy.app;
    let mut tx = st.store.begin().await?;
    let id = match apps::check_code(
        &mut tx,
        &hash,
        None,
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
        CodeCheck::Ended => return Err(ended()),
        CodeCheck::WrongSecondCode { .. } => {
            return Err(ApiError::problem(
                StatusCode::UNAUTHORIZED,
                "wrong_second_code",
                "this activation needs its second code",
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
    Ok((
        StatusCode::CREATED,
        Json(json!({"app_id": app_id, "replaced_app_id": replaced})),
    )
        .into_response())
}

/// A refused device call: the error, and what to audit once the caller has let go of its
/// connection (on SQLite there is one, and the audit needs it).
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
        if let Some((device, reason)) = &self.audit {
            let event = Event {
                event: "app.auth_failure",
                subject: Some(&device.person_id),
                client_id: None,
                data: json!({"app_id": device.app_id, "reason": reason}),
            };
            let written = match st.store.conn().await {
                Ok(mut c) => audit::append(&mut c, &event, st.now()).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::error!(error = %e, "cannot record a refused device call");
            }
        }
        self.error
    }
}

/// Checks a signed device-API call and returns its device (active or not).
///
/// Refused, each with its own code: missing or malformed headers, a clock more than
/// [`DEVICE_REQUEST_MAX_SKEW_SECS`] away, an unknown app, a signature that does not verify,
/// and the same signed message (app, nonce, method, path, time and body) a second time. A bad signature
/// or a replay from a known app is audited.
async fn authenticate(
    st: &AppState,
    c: &mut segl_store::Conn,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<AppDevice, Refused> {
    let unauth = |code: &'static str, detail: &str| {
        ApiError::problem(StatusCode::UNAUTHORIZED, code, detail.to_string())
    };
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(app_id), Some(nonce), Some(ts), Some(sig)) = (
        h("x-segl-app-id"),
        h("x-segl-nonce"),
        h("x-segl-timestamp"),
        h("x-segl-signature"),
    ) else {
        return Err(unauth(
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
        return Err(unauth(
            "malformed_device_auth",
            "X-Segl-Nonce is 16 to 64 base64url characters",
        )
        .into());
    }
    let timestamp: i64 = ts
        .parse()
        .map_err(|_| unauth("malformed_device_auth", "X-Segl-Timestamp is unix seconds"))?;
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .map_err(|_| unauth("malformed_device_auth", "X-Segl-Signature is base64url"))?;
    let now = st.now();
    if (now - timestamp).abs() > DEVICE_REQUEST_MAX_SKEW_SECS {
        return Err(unauth(
            "stale_device_request",
            "the device's clock is more than 60 seconds from the server's",
        )
        .into());
    }
    let device = apps::by_app_id(c, app_id)
        .await?
        .ok_or_else(|| unauth("unknown_app", "no app has this app ID"))?;
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
            error: unauth("bad_device_signature", &e.to_string()),
            audit: Some((device, "bad_signature")),
        });
    }
    // Keyed by what was signed, not by the signature: an ECDSA signature has a twin that
    // also verifies, and it must not let the same call through twice.
    let key = format!("dev:{}", sha256_b64url(&request.to_signed_bytes()));
    if !grants::use_jti(c, &key, timestamp + 2 * DEVICE_REQUEST_MAX_SKEW_SECS).await? {
        return Err(Refused {
            error: unauth(
                "replayed_device_request",
                "this signed call was already made",
            ),
            audit: Some((device, "replay")),
        });
    }
    Ok(device)
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
    let mut c = st.store.conn().await?;
    let checked = authenticate(&st, &mut c, &method, &uri, &headers, &body).await;
    drop(c);
    match checked {
        Ok(device) => Ok(Json(device_view(&device)).into_response()),
        Err(r) => Err(r.recorded(&st).await),
    }
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
    let mut tx = st.store.begin().await?;
    let device = match authenticate(&st, &mut tx, &method, &uri, &headers, &body).await {
        Ok(d) => d,
        Err(r) => {
            drop(tx);
            return Err(r.recorded(&st).await);
        }
    };
    if device.state != AppDeviceState::Active
        || !apps::deactivate(&mut tx, &device.app_id, Deactivation::ByPerson, now).await?
    {
        return Err(ApiError::problem(
            StatusCode::GONE,
            "app_deactivated",
            format!(
                "this app is no longer active ({})",
                device.deactivated_why.as_deref().unwrap_or("deactivated")
            ),
        ));
    }
    audit::append(
        &mut tx,
        &Event {
            event: "app.deactivated",
            subject: Some(&device.person_id),
            client_id: None,
            data: json!({"app_id": device.app_id, "why": Deactivation::ByPerson.as_str(), "by": "app"}),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(segl_store::StoreError::from)?;
    let after = AppDevice {
        state: AppDeviceState::Deactivated,
        deactivated_at: Some(now),
        deactivated_why: Some(Deactivation::ByPerson.as_str().into()),
        ..device
    };
    Ok(Json(device_view(&after)).into_response())
}

fn ended() -> ApiError {
    ApiError::problem(
        StatusCode::GONE,
        "activation_ended",
        "this activation code has been used, has expired or was cancelled",
    )
}
