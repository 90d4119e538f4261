//! Operations: `/healthz`, Prometheus `/metrics`, and the layers every response passes
//! (body limit, timeouts, security headers, request tracing).

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;

/// Counters exported at `/metrics`.
pub struct Metrics {
    registry: Registry,
    /// Login flows started.
    pub flows_started: Counter,
    /// Logins completed.
    pub logins_ok: Counter,
    /// Logins that ended in failure.
    pub logins_failed: Counter,
    /// Wrong one-time codes.
    pub otp_failures: Counter,
    /// Authorizations answered from a single sign-on session.
    pub sso_total: Counter,
    /// ID and access tokens issued (code and refresh grants).
    pub tokens_issued: Counter,
    /// Refresh-token grants.
    pub refresh_total: Counter,
    /// Reused refresh tokens (families revoked).
    pub refresh_reuse: Counter,
    /// Reused authorization codes.
    pub code_reuse: Counter,
    /// Signing orders created by relying parties.
    pub sign_orders: Counter,
    /// Signing orders signed.
    pub sign_completed: Counter,
    /// Signing orders that ended without signatures.
    pub sign_failed: Counter,
    /// eID orders taken (stored; refused forms are not counted).
    pub orders: Counter,
    /// eID orders approved (by the MRZ check, support or after a guardian).
    pub orders_approved: Counter,
    /// eID orders rejected (document mismatch, support, already an eID).
    pub orders_rejected: Counter,
    /// eID orders activated.
    pub orders_activated: Counter,
    /// Self-service blocks and password resets completed.
    pub self_service: Counter,
    /// Open push streams (apps and browsers waiting) on this node.
    pub push_streams: prometheus_client::metrics::gauge::Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every counter.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("segl");
        let m = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        Metrics {
            flows_started: m(&mut registry, "login_flows_started", "Login flows started"),
            logins_ok: m(&mut registry, "logins_succeeded", "Logins completed"),
            logins_failed: m(
                &mut registry,
                "logins_failed",
                "Logins that failed or were cancelled",
            ),
            otp_failures: m(&mut registry, "otp_failures", "Wrong one-time codes"),
            sso_total: m(
                &mut registry,
                "sso_authorizations",
                "Authorizations answered from a session",
            ),
            tokens_issued: m(&mut registry, "tokens_issued", "Token responses issued"),
            refresh_total: m(&mut registry, "refresh_grants", "Refresh-token grants"),
            refresh_reuse: m(
                &mut registry,
                "refresh_token_reuse",
                "Reused refresh tokens",
            ),
            code_reuse: m(
                &mut registry,
                "authorization_code_reuse",
                "Reused authorization codes",
            ),
            sign_orders: m(&mut registry, "sign_orders", "Signing orders created"),
            sign_completed: m(&mut registry, "sign_orders_signed", "Signing orders signed"),
            sign_failed: m(
                &mut registry,
                "sign_orders_failed",
                "Signing orders that ended without signatures",
            ),
            orders: m(&mut registry, "orders", "eID orders taken"),
            orders_approved: m(&mut registry, "orders_approved", "eID orders approved"),
            orders_rejected: m(&mut registry, "orders_rejected", "eID orders rejected"),
            orders_activated: m(&mut registry, "orders_activated", "eID orders activated"),
            self_service: m(
                &mut registry,
                "self_service",
                "Self-service blocks and password resets completed",
            ),
            push_streams: {
                let g = prometheus_client::metrics::gauge::Gauge::default();
                registry.register(
                    "push_streams",
                    "Open push streams (apps and browsers waiting) on this node",
                    g.clone(),
                );
                g
            },
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The operations routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.store.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            let id = crate::error::log_fault(&e);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error_id": id})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    st.metrics
        .push_streams
        .set(i64::try_from(st.push.subscriptions()).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

/// The headers every answer carries unless its handler set them. Also written by the apps'
/// event-stream listener (`crate::app_events`), which answers without these layers.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    // No referrer: authorization codes in URLs must not leak to other sites.
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// Layers for every route.
pub fn layers(app: Router<AppState>, st: &AppState) -> Router<AppState> {
    let app = app
        .layer(DefaultBodyLimit::max(st.settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ));
    let app = SECURITY_HEADERS.iter().fold(app, |app, &(name, value)| {
        app.layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ))
    });
    app
        // Spans carry the path only: queries may hold a national identity number
        // (login_hint) or a code, which must not reach the logs.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            crate::error::problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the server could not complete this request",
                None,
            )
        }))
}
