//! The published side of the CA: CA certificates, CRLs and the OCSP responder (RFC 6960)
//! at `/pki/…`.
//!
//! OCSP answers are pre-signed: the first request for a certificate signs a response valid
//! for `ocsp_validity_secs`, and later requests get the same bytes from memory until half
//! of that has passed. A revocation reaches the cache within seconds on every node: each
//! node reads the revocations of the last moments every [`SWEEP`] and drops their cached
//! answers (a CLI on the same database revokes too, and it cannot push to a server). A
//! request with a nonce is signed fresh, since its answer must carry the nonce.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use segl_pki::RevocationReason;
use segl_pki::ocsp::{
    self, CertStatus, HashAlg, IssuerId, OcspErrorStatus, Responder, SingleAnswer,
};
use segl_store::Store;
use segl_store::pki as rows;
use time::OffsetDateTime;

use crate::AppState;
use crate::ca::{self, KeySigner, PERSONS, PERSONS_OCSP, Pki};
use crate::error::ApiError;

/// How often each node looks for new revocations.
pub const SWEEP: Duration = Duration::from_secs(2);
/// Largest OCSP request accepted over POST, bytes.
const MAX_OCSP_REQUEST: usize = 16 * 1024;
/// Cached answers kept at most; past it the cache starts over (a flood of requests for
/// many serials costs signatures, not memory).
const MAX_CACHED: usize = 1 << 20;

/// The routes under `/pki`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pki/ca/{file}", get(ca_cert))
        .route("/pki/crl/{file}", get(crl))
        .route("/pki/ocsp", axum::routing::post(ocsp_post))
        .route("/pki/ocsp/{*request}", get(ocsp_get))
}

/// The few layers the PKI routes need: requests bounded in size, `nosniff`, and a panic
/// answered as a server error rather than a dropped connection.
pub fn layers(routes: Router<AppState>) -> Router<AppState> {
    routes
        .layer(axum::extract::DefaultBodyLimit::max(4 * MAX_OCSP_REQUEST))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            crate::error::problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the server could not complete this request",
                None,
            )
        }))
}

/// The OCSP responder of the persons CA, with its cache of pre-signed answers.
pub struct PkiService {
    /// The CA.
    pub pki: Pki,
    responder: RwLock<Arc<ResponderKeys>>,
    cache: RwLock<HashMap<(HashAlg, Vec<u8>), Cached>>,
}

struct ResponderKeys {
    issuer: IssuerId,
    responder: Responder,
    signer: KeySigner,
}

#[derive(Clone)]
struct Cached {
    der: Bytes,
    /// Signed again from here on (half the validity).
    refresh_at: i64,
    next_update: i64,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl PkiService {
    /// Loads the persons CA and its OCSP signer from the store.
    pub async fn load(pki: Pki, store: &Store) -> Result<PkiService, ApiError> {
        let keys = Self::responder_keys(&pki, store).await?;
        Ok(PkiService {
            pki,
            responder: RwLock::new(Arc::new(keys)),
            cache: RwLock::new(HashMap::new()),
        })
    }

    async fn responder_keys(pki: &Pki, store: &Store) -> Result<ResponderKeys, ApiError> {
        let mut c = store.conn().await?;
        let ca = rows::ca(&mut *c, PERSONS)
            .await?
            .ok_or_else(|| ApiError::Internal("the persons CA does not exist".into()))?;
        let signer_ca = rows::ca(&mut *c, PERSONS_OCSP)
            .await?
            .ok_or_else(|| ApiError::Internal("the OCSP signer does not exist".into()))?;
        let signer = pki.signer(&signer_ca)?;
        Ok(ResponderKeys {
            issuer: IssuerId::from_cert_der(&ca.cert_der).map_err(internal)?,
            responder: Responder::new(&signer_ca.cert_der, &signer).map_err(internal)?,
            signer,
        })
    }

    /// Re-reads the OCSP signer (after its renewal) and forgets the cached answers it signed.
    pub async fn reload(&self, store: &Store) -> Result<(), ApiError> {
        let keys = Self::responder_keys(&self.pki, store).await?;
        *self.responder.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    /// Drops the cached answers for these serials (hex).
    pub fn forget(&self, serials: &[String]) {
        if serials.is_empty() {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        for s in serials {
            if let Some(bytes) = ca::from_hex(s) {
                for alg in [HashAlg::Sha1, HashAlg::Sha256] {
                    cache.remove(&(alg, bytes.clone()));
                }
            }
        }
    }

    /// Answers a DER OCSP request with a DER OCSP response (also for errors, as RFC 6960
    /// wants: an OCSPResponse with an error status), and the answer's nextUpdate when the
    /// same bytes will be served again (for HTTP caching).
    pub async fn answer(&self, store: &Store, der: &[u8], now: i64) -> (Bytes, Option<i64>) {
        let req = match ocsp::parse_request(der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return (
                    ocsp::error_response(ocsp::status_for_error(&e)).into(),
                    None,
                );
            }
        };
        let single = match req.certs.as_slice() {
            [one] if req.nonce.is_none() => one.hash().map(|h| (h, one.serial().to_vec())),
            _ => None,
        };
        if let Some(key) = &single
            && let Some(hit) = self
                .cache
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
            && now < hit.refresh_at
        {
            return (hit.der.clone(), Some(hit.next_update));
        }
        match self.sign_answers(store, &req, now).await {
            Ok((der, cacheable)) => {
                let der = Bytes::from(der);
                if let (Some(key), Some(next_update)) = (single, cacheable) {
                    let validity = self.pki.settings.ocsp_validity_secs;
                    let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                    cache.insert(
                        key,
                        Cached {
                            der: der.clone(),
                            refresh_at: now + validity / 2,
                            next_update,
                        },
                    );
                    return (der, Some(next_update));
                }
                (der, None)
            }
            Err(e) => {
                crate::error::log_fault(&e);
                (
                    ocsp::error_response(OcspErrorStatus::InternalError).into(),
                    None,
                )
            }
        }
    }

    /// A fresh OCSP response (DER) about one of the persons CA's certificates and whether
    /// it says good: the revocation status a signature made now carries with it.
    pub async fn status_of(
        &self,
        store: &Store,
        serial_hex: &str,
        now: i64,
    ) -> Result<(Vec<u8>, bool), ApiError> {
        let keys = self
            .responder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let serial = ca::from_hex(serial_hex)
            .ok_or_else(|| ApiError::Internal(format!("stored serial {serial_hex} is not hex")))?;
        let req = ocsp::OcspRequest {
            certs: vec![
                keys.issuer
                    .cert_id(HashAlg::Sha1, &serial)
                    .map_err(internal)?,
            ],
            nonce: None,
        };
        let (der, _) = self.sign_answers(store, &req, now).await?;
        let good = segl_pki::verify::parse_ocsp_response(&der)
            .map_err(internal)?
            .responses
            .first()
            .is_some_and(|s| matches!(s.status, CertStatus::Good));
        Ok((der, good))
    }

    /// Looks up and signs; the second value is the nextUpdate when the answer may be
    /// cached (one certificate of ours, known to the store).
    async fn sign_answers(
        &self,
        store: &Store,
        req: &ocsp::OcspRequest,
        now: i64,
    ) -> Result<(Vec<u8>, Option<i64>), ApiError> {
        let keys = self
            .responder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let this_update = OffsetDateTime::from_unix_timestamp(now).map_err(internal)?;
        let validity = self.pki.settings.ocsp_validity_secs;
        let next_update = this_update + time::Duration::seconds(validity);
        let mut c = store.read().await?;
        let mut singles = Vec::with_capacity(req.certs.len());
        let mut all_known = true;
        for id in &req.certs {
            let status = if keys.issuer.matches(id) {
                let serial = segl_pki::profile::hex(id.serial());
                match rows::certificate(&mut *c, &serial).await? {
                    Some(cert) if cert.ca == PERSONS => match cert.revoked_at {
                        Some(at) => CertStatus::Revoked {
                            time: OffsetDateTime::from_unix_timestamp(at).map_err(internal)?,
                            reason: cert.reason.as_deref().and_then(RevocationReason::parse),
                        },
                        None => CertStatus::Good,
                    },
                    _ => CertStatus::Unknown,
                }
            } else {
                CertStatus::Unknown
            };
            all_known &= status != CertStatus::Unknown;
            singles.push(SingleAnswer {
                cert_id: id.clone(),
                status,
                this_update,
                next_update,
            });
        }
        let der = keys
            .responder
            .respond(&keys.signer, this_update, &singles, req.nonce.as_deref())
            .map_err(internal)?;
        Ok((der, all_known.then_some(next_update.unix_timestamp())))
    }
}

/// Background work of the CA on a serving node: drops cached OCSP answers of new
/// revocations every [`SWEEP`]; every ten minutes renews the OCSP signer at half its life
/// and publishes a new CRL once half of the current one's validity has passed.
pub fn spawn_tasks(state: &AppState) {
    let Some(svc) = state.pki.clone() else {
        return;
    };
    let store = state.store.clone();
    let clock = state.clock.clone();
    tokio::spawn(async move {
        let mut since = clock() - 60;
        let mut tick = tokio::time::interval(SWEEP);
        let mut rounds: u64 = 0;
        loop {
            tick.tick().await;
            let now = clock();
            // The window overlaps the previous one by a minute, so a revocation committed
            // late by a slow writer is still seen.
            let found = match store.read().await {
                Ok(mut c) => rows::revoked_since(&mut *c, since - 60).await,
                Err(e) => Err(e),
            };
            match found {
                Ok(serials) => {
                    svc.forget(&serials);
                    since = now;
                }
                Err(e) => tracing::warn!(error = %e, "revocation sweep failed"),
            }
            rounds += 1;
            if rounds % 300 == 1 {
                housekeeping(&svc, &store, now).await;
            }
        }
    });
}

async fn housekeeping(svc: &PkiService, store: &Store, now: i64) {
    match svc.pki.ensure_hierarchy(store, now).await {
        Ok(created) if created.iter().any(|c| c == PERSONS_OCSP) => {
            if let Err(e) = svc.reload(store).await {
                tracing::warn!(error = %e, "reloading the OCSP signer failed");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "CA housekeeping failed"),
    }
    for name in ca::PUBLISHED {
        let due = match store.conn().await {
            Ok(mut c) => match rows::crl(&mut *c, name).await {
                Ok(Some(crl)) => now >= crl.this_update + (crl.next_update - crl.this_update) / 2,
                Ok(None) => true,
                Err(_) => false,
            },
            Err(_) => false,
        };
        let keyed = match store.conn().await {
            Ok(mut c) => rows::ca(&mut *c, name)
                .await
                .ok()
                .flatten()
                .is_some_and(|ca| ca.key_ref.is_some()),
            Err(_) => false,
        };
        // A root kept offline publishes its CRL from there.
        if due
            && keyed
            && let Err(e) = svc.pki.regenerate_crl(store, name, now).await
        {
            tracing::warn!(ca = name, error = %e, "publishing a CRL failed");
        }
    }
}

fn not_found(what: &str) -> Response {
    ApiError::problem(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no {what} here"),
    )
    .into_response()
}

fn with_type(body: Vec<u8>, content_type: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `GET /pki/ca/{name}.pem` and `{name}.cer` (DER).
async fn ca_cert(
    State(st): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let (name, pem) = match (file.strip_suffix(".pem"), file.strip_suffix(".cer")) {
        (Some(n), _) => (n, true),
        (_, Some(n)) => (n, false),
        _ => return Ok(not_found("such file")),
    };
    if !ca::PUBLISHED.contains(&name) {
        return Ok(not_found("such CA"));
    }
    let mut c = st.store.read().await?;
    let Some(ca) = rows::ca(&mut *c, name).await? else {
        return Ok(not_found("such CA"));
    };
    Ok(if pem {
        with_type(
            segl_pki::profile::to_pem(&ca.cert_der)
                .map_err(internal)?
                .into_bytes(),
            "application/x-pem-file",
        )
    } else {
        with_type(ca.cert_der, "application/pkix-cert")
    })
}

/// `GET /pki/crl/{name}.crl` (DER).
async fn crl(State(st): State<AppState>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let Some(name) = file
        .strip_suffix(".crl")
        .filter(|n| ca::PUBLISHED.contains(n))
    else {
        return Ok(not_found("such CRL"));
    };
    let mut c = st.store.read().await?;
    let Some(crl) = rows::crl(&mut *c, name).await? else {
        return Ok(not_found("CRL for this CA yet"));
    };
    let mut resp = with_type(crl.der, "application/pkix-crl");
    let age = (crl.next_update - st.now()).clamp(0, 3600);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={age}")) {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    Ok(resp)
}

fn ocsp_response(der: impl Into<Bytes>, max_age: Option<i64>) -> Response {
    let mut resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/ocsp-response"),
        )],
        der.into(),
    )
        .into_response();
    if let Some(age) = max_age
        && let Ok(v) = HeaderValue::from_str(&format!("public, max-age={age}, no-transform"))
    {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    resp
}

/// `POST /pki/ocsp` with a DER request (`application/ocsp-request`).
async fn ocsp_post(State(st): State<AppState>, body: Bytes) -> Response {
    let Some(svc) = &st.pki else {
        return not_found("OCSP responder");
    };
    if body.len() > MAX_OCSP_REQUEST {
        return ocsp_response(
            ocsp::error_response(OcspErrorStatus::MalformedRequest),
            None,
        );
    }
    let (der, _) = svc.answer(&st.store, &body, st.now()).await;
    ocsp_response(der, None)
}

/// `GET /pki/ocsp/{base64 of the DER request}` (RFC 6960 appendix A.1), cacheable by HTTP
/// caches until the answer's nextUpdate.
async fn ocsp_get(State(st): State<AppState>, Path(request): Path<String>) -> Response {
    let Some(svc) = &st.pki else {
        return not_found("OCSP responder");
    };
    // Clients percent-encode the base64 or not; both arrive here decoded by the router,
    // but a '+' may have travelled as a space.
    let b64 = request.replace(' ', "+");
    let Ok(der) = data_encoding::BASE64.decode(b64.as_bytes()) else {
        return ocsp_response(
            ocsp::error_response(OcspErrorStatus::MalformedRequest),
            None,
        );
    };
    let now = st.now();
    let (der, next_update) = svc.answer(&st.store, &der, now).await;
    ocsp_response(der, next_update.map(|n| (n - now).max(0)))
}
