//! segl-server: the HTTP face of segl.
//!
//! - [`oidc`]: the OpenID Connect provider (discovery, authorize, PAR, token, userinfo,
//!   JWKS, logout).
//! - [`flow`]: the flow API (`/api/v1/flows/…`) and the steps it shares with the pages.
//! - [`pages`]: server-rendered login pages in bokmål, nynorsk and English.
//! - [`demo`]: the demo relying party at `/demo` (only with `--demo`).
//! - [`error`]: one error type, rendered as problem+json, OAuth errors or an HTML page.
//! - [`ops`]: `/healthz`, `/metrics` and security headers.
//! - [`order`], [`order_page`], [`identity`]: ordering an eID (API, identity verifiers,
//!   support's decisions, a guardian's approval, activation) and its pages.
//! - [`portal`]: the login to segl's own pages; [`my_page`]: "My page".
//! - [`self_service`]: blocking one's own eID and a forgotten password.
//! - [`lifecycle`]: blocking; [`maintenance`]: maintenance windows; [`notify`]: messages.
//!
//! Handlers are thin: they parse, call `segl_core` for the rules and `segl_store` for the
//! data, in one transaction per step.
#![forbid(unsafe_code)]

pub mod activation_page;
pub mod app_api;
pub mod app_events;
pub mod app_login;
pub mod ca;
pub mod demo;
pub mod error;
pub mod flow;
pub mod hashing;
pub mod i18n;
pub mod identity;
pub mod lifecycle;
pub mod maintenance;
pub mod my_page;
pub mod notify;
pub mod oidc;
pub mod ops;
pub mod order;
pub mod order_page;
pub mod pages;
pub mod pki_http;
pub mod portal;
pub mod push;
pub mod self_service;
pub mod sign;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use segl_core::policy::Policy;
use segl_crypto::jose::KeyRing;
use segl_crypto::password::PasswordHasher;
use segl_store::Store;

/// Settings the server needs, already validated by the CLI.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Issuer URL, without a trailing slash.
    pub issuer: String,
    /// Limits and lifetimes.
    pub policy: Policy,
    /// Mark cookies `Secure` (on whenever the issuer is https).
    pub cookie_secure: bool,
    /// Largest request body of the JSON APIs, bytes.
    pub max_body_bytes: usize,
    /// Limits of the signing API.
    pub sign: segl_core::sign::SignPolicy,
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Token-signing keys.
    pub keys: Arc<KeyRing>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Password hashing at the configured parameters.
    pub hasher: Arc<PasswordHasher>,
    /// Password hashing, one thread per core (see [`hashing`]).
    pub hash_pool: Arc<hashing::HashPool>,
    /// Prometheus metrics.
    pub metrics: Arc<ops::Metrics>,
    /// The demo relying party, when serving with `--demo`.
    pub demo: Option<Arc<demo::Demo>>,
    /// The clock (unix seconds); tests may replace it.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Wakes apps and browsers waiting for news, across nodes on PostgreSQL.
    pub push: push::Hub,
    /// The CA's published side (OCSP, CRLs), when serving.
    pub pki: Option<Arc<pki_http::PkiService>>,
    /// The identity verifiers of eID orders, tried in order (see [`identity`]).
    pub verifiers: Arc<[Arc<dyn identity::IdentityVerifier>]>,
    /// Maintenance windows as this node last read them (the pages' banner).
    pub maintenance: Arc<maintenance::Cache>,
}

impl AppState {
    /// Builds the state with the system clock.
    pub fn new(
        store: Store,
        keys: KeyRing,
        settings: Settings,
        hasher: PasswordHasher,
    ) -> AppState {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            push: push::Hub::new(store.clone()),
            store,
            keys: Arc::new(keys),
            settings: Arc::new(settings),
            hasher: Arc::new(hasher),
            hash_pool: Arc::new(hashing::HashPool::new(cores, 4096)),
            metrics: Arc::new(ops::Metrics::new()),
            demo: None,
            clock: Arc::new(system_now),
            pki: None,
            verifiers: identity::built_in().into(),
            maintenance: Arc::default(),
        }
    }

    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// The system clock in unix seconds.
pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .merge(oidc::routes())
        .merge(flow::routes())
        .merge(app_api::routes())
        .merge(activation_page::routes())
        .merge(my_page::routes())
        .merge(sign::routes(&state.settings.sign))
        .merge(order::routes())
        .merge(order_page::routes())
        .merge(self_service::routes())
        .merge(pages::routes())
        .merge(maintenance::routes())
        .merge(ops::routes());
    if state.demo.is_some() {
        app = app.merge(demo::routes());
    }
    // Every page shows the maintenance windows; the layer hands them to the templates.
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        maintenance::layer,
    ));
    // The PKI's published side is read by machines at high rates: it skips the pages' and
    // APIs' layers (a span and a timer per request cost a third of an OCSP answer).
    let pki = pki_http::layers(pki_http::routes()).with_state(state.clone());
    ops::layers(app, &state).with_state(state).merge(pki)
}
