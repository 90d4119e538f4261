//! Errors as clients see them.
//!
//! - [`ApiError`]: RFC 9457 problem details for the JSON APIs.
//! - [`OAuthError`]: RFC 6749 `{error, error_description}` for the token, PAR and userinfo
//!   endpoints.
//! - A server fault shows the client an id only; the detail goes to the log under that id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use segl_core::flow::FlowError;
use segl_store::StoreError;
use serde_json::json;

/// An error of the flow API (and other JSON APIs).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A rule of the flow refused the step.
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// A specific problem with a code and a status.
    #[error("{detail}")]
    Problem {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code (`urn:segl:problem:<code>`).
        code: &'static str,
        /// What a person reads.
        detail: String,
    },
    /// Ordering is closed by a maintenance window: 503, problem code `maintenance`, the
    /// window's message as detail and `Retry-After` until ordering opens again.
    #[error("{message}")]
    Maintenance {
        /// The window's message.
        message: String,
        /// Seconds until ordering opens again.
        retry_after: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something else failed on our side.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// A problem with a code.
    pub fn problem(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// The status, code and detail a client sees.
    pub fn parts(&self) -> (StatusCode, &'static str, String, Option<u32>) {
        use FlowError as F;
        match self {
            ApiError::Flow(e) => {
                let (status, code, remaining) = match e {
                    F::Expired => (StatusCode::GONE, "flow_expired", None),
                    F::InvalidState(_) => (StatusCode::CONFLICT, "invalid_state", None),
                    F::InvalidNin(_) => (StatusCode::BAD_REQUEST, "invalid_nin", None),
                    F::UnsupportedMethod => (StatusCode::BAD_REQUEST, "unsupported_method", None),
                    F::WrongOtp { remaining } => {
                        (StatusCode::UNAUTHORIZED, "wrong_otp", Some(*remaining))
                    }
                    F::OtpReplayed { remaining } => (
                        StatusCode::UNAUTHORIZED,
                        "otp_already_used",
                        Some(*remaining),
                    ),
                    F::WrongPassword { remaining } => {
                        (StatusCode::UNAUTHORIZED, "wrong_password", Some(*remaining))
                    }
                    F::WrongAnswers { remaining } => {
                        (StatusCode::UNAUTHORIZED, "wrong_answers", Some(*remaining))
                    }
                    F::DeviceBlocked => (StatusCode::LOCKED, "device_blocked", None),
                    F::PasswordLocked => (StatusCode::LOCKED, "password_locked", None),
                    F::TooManyAttempts => {
                        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", None)
                    }
                    F::DeniedInApp => (StatusCode::FORBIDDEN, "denied_in_app", None),
                    F::AppExpired { remaining } => (
                        StatusCode::CONFLICT,
                        "app_request_expired",
                        Some(*remaining),
                    ),
                    _ => (StatusCode::BAD_REQUEST, "flow_error", None),
                };
                (status, code, e.to_string(), remaining)
            }
            ApiError::Problem {
                status,
                code,
                detail,
            } => (*status, code, detail.clone(), None),
            ApiError::Maintenance { message, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "maintenance",
                message.clone(),
                None,
            ),
            ApiError::Store(StoreError::Conflict) => (
                StatusCode::CONFLICT,
                "concurrent_update",
                "another request changed this at the same time; try again".into(),
                None,
            ),
            ApiError::Store(_) | ApiError::Internal(_) => {
                let id = log_fault(self);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    format!("the server could not complete this request (error id {id})"),
                    None,
                )
            }
        }
    }
}

/// Logs a server fault under a fresh id and returns the id.
pub fn log_fault(e: &dyn std::fmt::Display) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error_id = %id, error = %e, "request failed");
    id
}

/// Renders a problem+json response.
pub fn problem_response(
    status: StatusCode,
    code: &str,
    detail: &str,
    remaining: Option<u32>,
) -> Response {
    let mut body = json!({
        "type": format!("urn:segl:problem:{code}"),
        "title": title(status),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    if let Some(r) = remaining {
        body["remaining_attempts"] = json!(r);
    }
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail, remaining) = self.parts();
        let mut resp = problem_response(status, code, &detail, remaining);
        if let ApiError::Maintenance { retry_after, .. } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        resp
    }
}

/// An OAuth 2.0 error response (RFC 6749 section 5.2).
#[derive(Debug)]
pub struct OAuthError {
    /// HTTP status (400, or 401 for `invalid_client`).
    pub status: StatusCode,
    /// The `error` code.
    pub error: &'static str,
    /// The `error_description`.
    pub description: String,
}

impl OAuthError {
    /// A 400 with `error` and a description.
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        let id = log_fault(&e);
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: format!("error id {id}"),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"segl\""),
            );
        }
        resp
    }
}
