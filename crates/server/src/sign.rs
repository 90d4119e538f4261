//! Signing orders: the relying parties' REST API (`/api/v1/sign/orders`) and the person's
//! side (`/sign/{id}`).
//!
//! A relying party sends the text the person sees and its documents (PDFs, or SHA-256
//! digests of other files). The person opens the sign page, which is a flow with
//! [`Purpose::Sign`] on the ordinary login pages: they prove who they are with the app or
//! with code device and password, and that approval (in the flow's transaction) moves the
//! order to `approved`. The signatures are then made outside that transaction, with the
//! person's key in the key store: a detached CAdES-B CMS per document, a PAdES B-B
//! incremental update per PDF, both carrying a fresh OCSP response for the certificate.
//! An order left `approved` by a crash is completed when the relying party asks for it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use segl_core::flow::{FailureReason, LoginFlow, LoginState, Method, Purpose};
use segl_core::nin::Nin;
use segl_core::oidc::{ACR_SUBSTANTIAL, AuthRequest};
use segl_core::sign::{self as rules, OrderState, SignError, SignPolicy};
use segl_crypto::random::{ct_eq, random_token, sha256_b64url};
use segl_store::apps;
use segl_store::audit::{self, Event};
use segl_store::clients::{AuthMethod, Client};
use segl_store::db::Db;
use segl_store::persons;
use segl_store::pki as certs;
use segl_store::sign::{self as rows, Document, Order, Signed};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::flow::rfc3339;
use crate::i18n::Lang;
use crate::pages;

/// The routes; the order endpoint reads bodies up to [`SignPolicy::max_body_bytes`].
pub fn routes(policy: &SignPolicy) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/sign/orders",
            axum::routing::post(create).layer(DefaultBodyLimit::max(policy.max_body_bytes())),
        )
        .route("/api/v1/sign/orders/{id}", get(show).delete(cancel))
        .route("/sign/{id}", get(open))
        .route("/sign/{id}/done", get(done))
}

fn problem(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::problem(status, code, detail)
}

impl From<SignError> for ApiError {
    fn from(e: SignError) -> Self {
        let code = match &e {
            SignError::InvalidText(_) => "invalid_text",
            SignError::InvalidDocuments(_) => "invalid_documents",
            SignError::InvalidDigest(_) => "invalid_digest",
            _ => "invalid_request",
        };
        problem(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// Client authentication

/// The relying party, from HTTP Basic credentials of a confidential client with a secret
/// (`client_secret_basic` or `client_secret_post` in the registry).
async fn relying_party(st: &AppState, headers: &HeaderMap) -> Result<Client, Response> {
    let refuse = |detail: &str| {
        let mut resp =
            ApiError::problem(StatusCode::UNAUTHORIZED, "invalid_client", detail).into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"segl signing API\""),
        );
        resp
    };
    let (id, secret) = match crate::oidc::basic_credentials(headers) {
        Ok(Some(creds)) => creds,
        Ok(None) => {
            return Err(refuse(
                "authenticate with HTTP Basic: client_id and client_secret",
            ));
        }
        Err(e) => return Err(refuse(e)),
    };
    let client = match st.store.client(&id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(refuse("unknown client")),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    if !matches!(
        client.auth_method,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
    ) {
        return Err(refuse(
            "the signing API is for confidential clients with a client secret",
        ));
    }
    let stored = client.secret_hash.clone().unwrap_or_default();
    if !ct_eq(
        sha256_b64url(secret.as_bytes()).as_bytes(),
        stored.as_bytes(),
    ) {
        return Err(refuse("wrong client secret"));
    }
    Ok(client)
}

// ---------------------------------------------------------------------------------------
// Creating an order

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    text: String,
    documents: Vec<NewDocument>,
    login_hint: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDocument {
    name: String,
    pdf: Option<String>,
    sha256: Option<String>,
}

fn body_error(rej: BytesRejection) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the signing API reads",
        )
    } else {
        problem(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            rej.body_text(),
        )
    }
}

/// Decodes and checks the documents: names, digests, base64, size and PDF structure.
/// CPU work (a PDF parse per document): run off the async threads.
fn prepare_documents(
    docs: Vec<NewDocument>,
    policy: &SignPolicy,
) -> Result<Vec<Document>, ApiError> {
    rules::check_names(docs.iter().map(|d| d.name.as_str()), policy)?;
    let mut out = Vec::with_capacity(docs.len());
    for (i, d) in docs.into_iter().enumerate() {
        let idx = i as i64;
        let doc = match (d.pdf, d.sha256) {
            (Some(b64), None) => {
                // Refused before decoding when the base64 alone says it is too large.
                let too_large = || {
                    problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "document_too_large",
                        format!(
                            "document '{}' is larger than {} bytes",
                            d.name, policy.max_document_bytes
                        ),
                    )
                };
                if b64.len() / 4 * 3 > policy.max_document_bytes + 2 {
                    return Err(too_large());
                }
                let pdf = BASE64.decode(b64.as_bytes()).map_err(|e| {
                    problem(
                        StatusCode::BAD_REQUEST,
                        "invalid_pdf",
                        format!("document '{}': pdf is not base64: {e}", d.name),
                    )
                })?;
                if pdf.len() > policy.max_document_bytes {
                    return Err(too_large());
                }
                segl_pki::pades::inspect(&pdf).map_err(|e| {
                    problem(
                        StatusCode::BAD_REQUEST,
                        "invalid_pdf",
                        format!("document '{}' is not a PDF segl can sign: {e}", d.name),
                    )
                })?;
                Document {
                    idx,
                    name: d.name,
                    kind: "pdf".into(),
                    digest: Sha256::digest(&pdf).to_vec(),
                    content: Some(pdf),
                    cms: None,
                    signed_pdf: None,
                }
            }
            (None, Some(hex)) => Document {
                digest: rules::parse_digest(&d.name, &hex)?.to_vec(),
                idx,
                name: d.name,
                kind: "digest".into(),
                content: None,
                cms: None,
                signed_pdf: None,
            },
            _ => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_documents",
                    format!("document '{}' needs exactly one of pdf and sha256", d.name),
                ));
            }
        };
        out.push(doc);
    }
    Ok(out)
}

/// Why a person cannot sign now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// No active eID (no password, or neither code device nor app).
    NoEid,
    /// Blocked: a blocked eID, a revoked certificate without a valid successor, or a block
    /// request.
    Blocked,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::NoEid => "no_eid",
            Refusal::Blocked => "person_blocked",
        }
    }
    fn detail(self) -> &'static str {
        match self {
            Refusal::NoEid => "this person has no active eID",
            Refusal::Blocked => "this person's eID is blocked",
        }
    }
}

/// Whether the person may sign at `now`. A certificate revoked (not superseded) with no
/// valid one after it is a block: a new certificate is never issued behind it.
async fn signable(c: &mut impl Db, person_id: &str, now: i64) -> Result<Option<Refusal>, ApiError> {
    if persons::blocked(c, person_id).await?.is_some()
        || !apps::block_requests(c, person_id).await?.is_empty()
    {
        return Ok(Some(Refusal::Blocked));
    }
    if !crate::ca::eid_active(c, person_id).await? {
        return Ok(Some(Refusal::NoEid));
    }
    if certs::current_for_person(c, person_id, now)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let blocked = crate::ca::blocked_by_revocation(c, person_id).await?;
    Ok(blocked.then_some(Refusal::Blocked))
}

async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let client = match relying_party(&st, &headers).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    match create_order(&st, &client, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn create_order(
    st: &AppState,
    client: &Client,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the order as application/json",
        ));
    }
    let order: NewOrder = serde_json::from_slice(&body)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, "malformed_request", e.to_string()))?;
    drop(body);
    let policy = st.settings.sign.clone();
    rules::check_text(&order.text, &policy)?;
    if let Some(uri) = &order.redirect_uri
        && !client.redirect_uris.iter().any(|r| r == uri)
    {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uri is not one of this client's registered redirect URIs",
        ));
    }
    if order.state.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "state is longer than 512 bytes",
        ));
    }
    let ui_locales: Vec<&str> = order
        .ui_locales
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .take(10)
        .filter(|t| t.len() <= 35)
        .collect();
    let hint = match &order.login_hint {
        Some(h) => Some(Nin::parse(h).map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                "invalid_login_hint",
                format!("login_hint: {e}"),
            )
        })?),
        None => None,
    };
    let docs = {
        let (docs, policy) = (order.documents, policy.clone());
        tokio::task::spawn_blocking(move || prepare_documents(docs, &policy))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let now = st.now();
    let row = Order {
        id: random_token(18),
        client_id: client.client_id.clone(),
        state: "pending".into(),
        text: order.text,
        login_hint: hint.as_ref().map(|n| n.as_str().to_string()),
        redirect_uri: order.redirect_uri,
        rp_state: order.state,
        ui_locales: ui_locales.join(" "),
        flow_id: None,
        person_id: None,
        method: None,
        amr: None,
        approval: None,
        cert_serial: None,
        ocsp_der: None,
        error: None,
        created_at: now,
        expires_at: now + policy.order_ttl_secs,
        signed_at: None,
    };
    let text_sha256 = hex(&Sha256::digest(row.text.as_bytes()));
    let row = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move {
                let mut subject = None;
                if let Some(nin) = &row.login_hint {
                    let person = persons::by_nin(&mut tx, nin).await?;
                    let refusal = match &person {
                        Some(p) => signable(&mut tx, &p.id, now).await?,
                        None => Some(Refusal::NoEid),
                    };
                    if let Some(r) = refusal {
                        return Err(problem(StatusCode::CONFLICT, r.code(), r.detail()));
                    }
                    subject = person.map(|p| p.id);
                }
                rows::insert(&mut tx, &row, &docs).await?;
                audit::append(
                    &mut tx,
                    &Event {
                        event: "sign.order_created",
                        subject: subject.as_deref(),
                        client_id: Some(&row.client_id),
                        data: json!({
                            "order": row.id,
                            "documents": docs.iter().map(|d| json!({"name": d.name, "kind": d.kind, "sha256": hex(&d.digest)})).collect::<Vec<_>>(),
                            "text_sha256": text_sha256,
                        }),
                    },
                    now,
                )
                .await?;
                Ok::<_, ApiError>(row)
            })
        })
        .await?;
    st.metrics.sign_orders.inc();
    let url = sign_url(st, &row.id);
    let mut resp = (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "id": row.id,
            "state": "pending",
            "sign_url": url,
            "expires_at": rfc3339(row.expires_at),
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/sign/orders/{}", row.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn sign_url(st: &AppState, id: &str) -> String {
    format!("{}/sign/{id}", st.settings.issuer)
}

fn hex(bytes: &[u8]) -> String {
    segl_pki::profile::hex(bytes)
}

// ---------------------------------------------------------------------------------------
// Reading and cancelling

async fn load_own(st: &AppState, client: &Client, id: &str) -> Result<Order, ApiError> {
    let order = rows::order(&mut *st.store.read().await?, id).await?;
    match order {
        Some(o) if o.client_id == client.client_id => Ok(o),
        _ => Err(problem(
            StatusCode::NOT_FOUND,
            "order_not_found",
            "no such signing order for this client",
        )),
    }
}

async fn show(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let client = match relying_party(&st, &headers).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let result = async {
        let mut order = load_own(&st, &client, &id).await?;
        if order.state == "approved" {
            // Approved but not signed: the signing after the approval did not finish (a
            // restart); it is idempotent, so do it now.
            complete(&st, &id).await;
            order = load_own(&st, &client, &id).await?;
        }
        let docs = rows::documents(&mut *st.store.read().await?, &id, false).await?;
        view(&st, &order, &docs).await
    }
    .await;
    json_answer(result)
}

fn json_answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn view(st: &AppState, o: &Order, docs: &[Document]) -> Result<Value, ApiError> {
    let now = st.now();
    let state = OrderState::at(&o.state, o.expires_at, now).ok_or_else(|| {
        ApiError::Internal(format!("order {} in unknown state {}", o.id, o.state))
    })?;
    let mut v = json!({
        "id": o.id,
        "state": state.as_str(),
        "text": o.text,
        "created_at": rfc3339(o.created_at),
        "expires_at": rfc3339(o.expires_at),
        "sign_url": sign_url(st, &o.id),
    });
    if let Some(e) = &o.error {
        v["error"] = json!({"code": e, "message": error_message(e)});
    }
    if state != OrderState::Signed {
        v["documents"] = docs
            .iter()
            .map(|d| json!({"name": d.name, "kind": d.kind, "sha256": hex(&d.digest)}))
            .collect();
        return Ok(v);
    }
    let mut c = st.store.read().await?;
    let person = match &o.person_id {
        Some(p) => persons::by_id(&mut *c, p).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::Internal(format!("signed order {} has no person", o.id)))?;
    let cert = match &o.cert_serial {
        Some(s) => certs::certificate(&mut *c, s).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::Internal(format!("signed order {} has no certificate", o.id)))?;
    let ca = certs::ca(&mut *c, crate::ca::PERSONS)
        .await?
        .ok_or_else(|| ApiError::Internal("the persons CA is missing".into()))?;
    let pem =
        |der: &[u8]| segl_pki::profile::to_pem(der).map_err(|e| ApiError::Internal(e.to_string()));
    v["signed_at"] = json!(o.signed_at.map(rfc3339));
    v["signer"] = json!({
        "sub": person.sub,
        "name": person.name,
        "method": o.method,
        "amr": o.amr.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
        "certificate": pem(&cert.cert_der)?,
        "certificate_serial": cert.serial,
    });
    v["chain"] = json!([pem(&ca.cert_der)?]);
    v["ocsp_response"] = json!(o.ocsp_der.as_deref().map(|d| BASE64.encode(d)));
    v["app_approval"] = o
        .approval
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(Value::Null);
    v["documents"] = docs
        .iter()
        .map(|d| {
            let mut j = json!({
                "name": d.name,
                "kind": d.kind,
                "sha256": hex(&d.digest),
                "cms": d.cms.as_deref().map(|b| BASE64.encode(b)),
            });
            if let Some(pdf) = &d.signed_pdf {
                j["signed_pdf"] = json!(BASE64.encode(pdf));
            }
            j
        })
        .collect();
    Ok(v)
}

fn error_message(code: &str) -> &'static str {
    match code {
        "denied_in_app" => "the person answered no in the app",
        "too_many_attempts" => "too many failed attempts",
        "cancelled" => "the person cancelled",
        "device_blocked" => "the person's code device is blocked",
        "password_locked" => "the person's password is locked",
        "person_blocked" => "the person's eID is blocked",
        "no_eid" => "the person has no active eID",
        "certificate_revoked" => "the person's certificate is revoked",
        "signing_failed" => "the signatures could not be made; see the server's log",
        _ => "the order ended without signatures",
    }
}

async fn cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let client = match relying_party(&st, &headers).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let result = async {
        load_own(&st, &client, &id).await?;
        let now = st.now();
        let (order_id, client_id) = (id.clone(), client.client_id.clone());
        let cancelled = st
            .store
            .transact(move |mut tx| {
                Box::pin(async move {
                    let ok = rows::cancel(&mut tx, &order_id, now).await?;
                    if ok {
                        audit::append(
                            &mut tx,
                            &Event {
                                event: "sign.cancelled",
                                subject: None,
                                client_id: Some(&client_id),
                                data: json!({"order": order_id}),
                            },
                            now,
                        )
                        .await?;
                    }
                    Ok::<_, ApiError>(ok)
                })
            })
            .await?;
        if !cancelled {
            return Err(problem(
                StatusCode::CONFLICT,
                "order_not_pending",
                "only a pending order can be cancelled",
            ));
        }
        let order = load_own(&st, &client, &id).await?;
        let docs = rows::documents(&mut *st.store.read().await?, &id, false).await?;
        view(&st, &order, &docs).await
    }
    .await;
    json_answer(result)
}

// ---------------------------------------------------------------------------------------
// The person's side

/// `GET /sign/{id}`: a sign flow bound to this browser, then the login pages.
async fn open(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let now = st.now();
    let order = match st.store.read().await {
        Ok(mut c) => rows::order(&mut *c, &id).await,
        Err(e) => Err(e),
    };
    let langs_of =
        |o: Option<&Order>| pages::langs_from(o.map(|o| o.ui_locales.as_str()), &headers);
    let order = match order {
        Ok(Some(o)) => o,
        Ok(None) => {
            return pages::error_page(
                StatusCode::NOT_FOUND,
                "no such signing order",
                &langs_of(None),
            );
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let langs = langs_of(Some(&order));
    let lang = Lang::pick(langs.iter().map(String::as_str)).unwrap_or(Lang::Nb);
    if OrderState::at(&order.state, order.expires_at, now) != Some(OrderState::Pending) {
        return pages::error_page(StatusCode::GONE, lang.t().sign_closed_text, &langs);
    }
    let client_name = match st.store.client(&order.client_id).await {
        Ok(Some(c)) => c.name,
        Ok(None) => order.client_id.clone(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let policy = &st.settings.policy;
    // Two factors either way: the app unlocked by PIN or biometrics, or code device and
    // password.
    let mut request = AuthRequest::internal(
        order.client_id.clone(),
        client_name,
        order.redirect_uri.clone().unwrap_or_default(),
        ACR_SUBSTANTIAL,
        order.login_hint.clone(),
        langs.clone(),
    );
    request.state = order.rp_state.clone();
    let remembered = jar
        .get(pages::METHOD_COOKIE)
        .and_then(|c| Method::parse(c.value()));
    let mut flow = match LoginFlow::new(
        request,
        remembered,
        now,
        policy.flow_ttl_secs,
        policy.flow_max_failures,
    ) {
        Ok(f) => f,
        Err(e) => return pages::error_page(StatusCode::BAD_REQUEST, &e.to_string(), &langs),
    };
    flow.purpose = Purpose::Sign;
    flow.order = Some(order.id.clone());
    flow.expires_at = flow.expires_at.min(order.expires_at);
    match crate::flow::start_in_browser(&st, &jar, &flow, Some(order.id)).await {
        Ok(resp) => resp,
        Err(ApiError::Problem { status, .. }) if status == StatusCode::GONE => {
            pages::error_page(StatusCode::GONE, lang.t().sign_closed_text, &langs)
        }
        Err(e) => e.into_response(),
    }
}

/// Where the browser goes when the sign flow ends: back to the relying party, or to the
/// page that says how it went.
fn result_url(order: &Order) -> String {
    match order.redirect_uri.as_deref().map(url::Url::parse) {
        Some(Ok(mut url)) => {
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("sign_order", &order.id);
                if let Some(s) = &order.rp_state {
                    q.append_pair("state", s);
                }
            }
            url.to_string()
        }
        _ => format!("/sign/{}/done", order.id),
    }
}

/// The person authenticated in a sign flow: inside the flow's transaction, `pending →
/// approved` (or `failed` when they may not sign). The signatures follow in [`complete`].
pub(crate) async fn approved(
    c: &mut impl Db,
    flow_id: &str,
    flow: &mut LoginFlow,
    person_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let order_id = flow
        .order
        .clone()
        .ok_or_else(|| ApiError::Internal("a sign flow without an order".into()))?;
    let order = rows::order(c, &order_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("sign flow for a missing order {order_id}")))?;
    flow.redirect_to = Some(result_url(&order));
    if let Some(refusal) = signable(c, person_id, now).await? {
        flow.state = LoginState::Failed;
        flow.failure = Some(FailureReason::Cancelled);
        if rows::fail(c, &order_id, "pending", refusal.code()).await? {
            failed_event(c, &order, Some(person_id), refusal.code(), now).await?;
        }
        return Ok(());
    }
    let approval = match (&flow.method, &flow.approved_request) {
        (Some(Method::App), Some(request)) => {
            Some(approval_evidence(c, request).await?.to_string())
        }
        _ => None,
    };
    let method = flow.method.map_or("otp", Method::as_str);
    let amr = serde_json::to_string(&flow.amr).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !rows::approve(
        c,
        &order_id,
        flow_id,
        person_id,
        method,
        &amr,
        approval.as_deref(),
        now,
    )
    .await?
    {
        // Cancelled, expired, or approved in another browser meanwhile: nothing to sign here.
        flow.state = LoginState::Failed;
        flow.failure = Some(FailureReason::Cancelled);
        return Ok(());
    }
    audit::append(
        c,
        &Event {
            event: "sign.approved",
            subject: Some(person_id),
            client_id: Some(&order.client_id),
            data: json!({"order": order_id, "method": method, "amr": flow.amr}),
        },
        now,
    )
    .await?;
    Ok(())
}

/// A sign flow that failed (wrong codes, "No" in the app, cancelled) ends its order, if
/// the order is still this flow's.
pub(crate) async fn flow_failed(
    c: &mut impl Db,
    flow_id: &str,
    flow: &mut LoginFlow,
    now: i64,
) -> Result<(), ApiError> {
    let Some(order_id) = flow.order.clone() else {
        return Ok(());
    };
    let Some(order) = rows::order(c, &order_id).await? else {
        return Ok(());
    };
    flow.redirect_to = Some(result_url(&order));
    if order.flow_id.as_deref() != Some(flow_id) {
        return Ok(());
    }
    let code = flow.failure.map_or("cancelled", FailureReason::as_str);
    if rows::fail(c, &order_id, "pending", code).await? {
        let person = match &flow.nin {
            Some(n) => persons::by_nin(c, n.as_str()).await?.map(|p| p.id),
            None => None,
        };
        failed_event(c, &order, person.as_deref(), code, now).await?;
    }
    Ok(())
}

async fn failed_event(
    c: &mut impl Db,
    order: &Order,
    person: Option<&str>,
    code: &str,
    now: i64,
) -> Result<(), ApiError> {
    audit::append(
        c,
        &Event {
            event: "sign.failed",
            subject: person,
            client_id: Some(&order.client_id),
            data: json!({"order": order.id, "reason": code}),
        },
        now,
    )
    .await?;
    Ok(())
}

/// What the app signed when it approved: the request as it was shown, the signed bytes,
/// the device's signature and public key in standard forms.
async fn approval_evidence(c: &mut impl Db, request_id: &str) -> Result<Value, ApiError> {
    let internal = |m: String| ApiError::Internal(m);
    let q = apps::request(c, request_id)
        .await?
        .ok_or_else(|| internal(format!("approved app request {request_id} is missing")))?;
    let device = apps::by_app_id(c, &q.app_id)
        .await?
        .ok_or_else(|| internal(format!("app {} is missing", q.app_id)))?;
    let uv = q
        .user_verification
        .as_deref()
        .and_then(segl_core::app::UserVerification::parse);
    let text_sha256: [u8; 32] = Sha256::digest(q.text.as_bytes()).into();
    let payload = segl_core::app::ApprovalPayload {
        request_id: q.id.clone(),
        rp: q.rp_name.clone(),
        verification_code: q.verification_code.clone(),
        text_sha256,
        decision: segl_core::app::Decision::Approve,
        user_verification: uv,
    };
    let signature = q
        .signature
        .as_deref()
        .and_then(|s| BASE64URL_NOPAD.decode(s.as_bytes()).ok())
        .ok_or_else(|| {
            internal(format!(
                "approved app request {request_id} has no signature"
            ))
        })?;
    let point = segl_crypto::device::public_key_from_b64url(&device.public_key)
        .map_err(|e| internal(e.to_string()))?;
    let (spki, sig_der) = segl_crypto::device::to_standard_forms(&point, &signature)
        .map_err(|e| internal(e.to_string()))?;
    Ok(json!({
        "app_id": q.app_id,
        "request_id": q.id,
        "rp": q.rp_name,
        "verification_code": q.verification_code,
        "user_verification": q.user_verification,
        "text_sha256": hex(&text_sha256),
        "signed_data": BASE64.encode(&payload.to_signed_bytes()),
        "signature": BASE64.encode(&sig_der),
        "device_public_key": BASE64.encode(&spki),
    }))
}

/// Makes the signatures of an approved order and stores them (`approved → signed`), or
/// ends it `failed`. Safe to run twice: the second store loses the race and changes
/// nothing.
pub(crate) async fn complete(st: &AppState, order_id: &str) {
    if let Err(e) = try_complete(st, order_id).await {
        crate::error::log_fault(&e);
        let now = st.now();
        let id = order_id.to_string();
        let failed = st
            .store
            .transact(move |mut tx| {
                Box::pin(async move {
                    let Some(order) = rows::order(&mut tx, &id).await? else {
                        return Ok::<_, ApiError>(false);
                    };
                    let ok = rows::fail(&mut tx, &id, "approved", "signing_failed").await?;
                    if ok {
                        failed_event(
                            &mut tx,
                            &order,
                            order.person_id.as_deref(),
                            "signing_failed",
                            now,
                        )
                        .await?;
                    }
                    Ok(ok)
                })
            })
            .await;
        match failed {
            Ok(true) => {
                st.metrics.sign_failed.inc();
            }
            Ok(false) => {}
            Err(e) => {
                crate::error::log_fault(&e);
            }
        }
    }
}

async fn try_complete(st: &AppState, order_id: &str) -> Result<(), ApiError> {
    let now = st.now();
    let service = st
        .pki
        .clone()
        .ok_or_else(|| ApiError::Internal("signing needs the CA, which is not loaded".into()))?;
    let (order, docs) = {
        let mut c = st.store.read().await?;
        let Some(order) = rows::order(&mut *c, order_id).await? else {
            return Ok(());
        };
        if order.state != "approved" {
            return Ok(());
        }
        let docs = rows::documents(&mut *c, order_id, true).await?;
        (order, docs)
    };
    let person_id = order
        .person_id
        .clone()
        .ok_or_else(|| ApiError::Internal(format!("approved order {order_id} has no person")))?;
    let refusal = {
        let mut c = st.store.read().await?;
        signable(&mut *c, &person_id, now).await?
    };
    if let Some(r) = refusal {
        return end(st, &order, r.code(), now).await;
    }
    service
        .pki
        .ensure_person_certificate(&st.store, &person_id, now)
        .await?;
    let (cert, ca) = {
        let mut c = st.store.read().await?;
        (
            certs::current_for_person(&mut *c, &person_id, now).await?,
            certs::ca(&mut *c, crate::ca::PERSONS).await?,
        )
    };
    let (Some(cert), Some(ca)) = (cert, ca) else {
        return end(st, &order, "no_eid", now).await;
    };
    let (ocsp, good) = service.status_of(&st.store, &cert.serial, now).await?;
    if !good {
        return end(st, &order, "certificate_revoked", now).await;
    }
    let signer = service.pki.cert_signer(&cert)?;
    let (cert_der, chain) = (cert.cert_der.clone(), vec![ca.cert_der]);
    let ocsp_for_cms = ocsp.clone();
    let name = match persons::by_id(&mut *st.store.read().await?, &person_id).await? {
        Some(p) => p.name,
        None => String::new(),
    };
    let signed = tokio::task::spawn_blocking(move || -> Result<Vec<Signed>, segl_pki::Error> {
        let cms = segl_pki::cms::CmsSigner::new(&cert_der, &chain)?;
        let time = time::OffsetDateTime::from_unix_timestamp(now)
            .map_err(|e| segl_pki::Error::Sign(e.to_string()))?;
        docs.iter()
            .map(|d| {
                let digest: [u8; 32] = d.digest.as_slice().try_into().map_err(|_| {
                    segl_pki::Error::Sign(format!(
                        "document {}: stored digest is not 32 bytes",
                        d.idx
                    ))
                })?;
                let detached = cms.sign(&signer, &digest, time, Some(&ocsp_for_cms))?;
                let signed_pdf = match (&d.kind[..], &d.content) {
                    ("pdf", Some(pdf)) => Some(segl_pki::pades::sign_pdf(
                        pdf,
                        &segl_pki::pades::PadesOptions {
                            signing_time: time,
                            signer_name: name.clone(),
                            reason: None,
                            field_name: None,
                        },
                        &cms,
                        &signer,
                        Some(&ocsp_for_cms),
                    )?),
                    ("pdf", None) => {
                        return Err(segl_pki::Error::Sign(format!(
                            "document {}: the PDF is no longer stored",
                            d.idx
                        )));
                    }
                    _ => None,
                };
                Ok(Signed {
                    idx: d.idx,
                    cms: detached,
                    signed_pdf,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("signing order {order_id}: {e}")))?;
    let (id, serial, client_id) = (
        order.id.clone(),
        cert.serial.clone(),
        order.client_id.clone(),
    );
    let digests: Vec<String> = signed.iter().map(|s| s.idx.to_string()).collect();
    let stored = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move {
                let ok = rows::complete(&mut tx, &id, &serial, &ocsp, &signed, now).await?;
                if ok {
                    audit::append(
                        &mut tx,
                        &Event {
                            event: "sign.completed",
                            subject: Some(&person_id),
                            client_id: Some(&client_id),
                            data: json!({"order": id, "certificate": serial, "documents": digests.len()}),
                        },
                        now,
                    )
                    .await?;
                }
                Ok::<_, ApiError>(ok)
            })
        })
        .await?;
    if stored {
        st.metrics.sign_completed.inc();
    }
    Ok(())
}

/// Ends an approved order without signatures, for a reason found when signing.
async fn end(st: &AppState, order: &Order, code: &'static str, now: i64) -> Result<(), ApiError> {
    let order = order.clone();
    let ended = st
        .store
        .transact(move |mut tx| {
            Box::pin(async move {
                let ok = rows::fail(&mut tx, &order.id, "approved", code).await?;
                if ok {
                    failed_event(&mut tx, &order, order.person_id.as_deref(), code, now).await?;
                }
                Ok::<_, ApiError>(ok)
            })
        })
        .await?;
    if ended {
        st.metrics.sign_failed.inc();
    }
    Ok(())
}

/// `GET /sign/{id}/done`: how the signing went, to the browser that did it.
async fn done(
    State(st): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let langs = pages::langs_from(None, &headers);
    let order = match st.store.read().await {
        Ok(mut c) => rows::order(&mut *c, &id).await,
        Err(e) => Err(e),
    };
    let order = match order {
        Ok(Some(o)) => o,
        Ok(None) => {
            return pages::error_page(StatusCode::NOT_FOUND, "no such signing order", &langs);
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Only the browser that signed may see the outcome.
    let flow = match &order.flow_id {
        Some(f) => crate::flow::load_for_browser(&st, &jar, f).await.ok(),
        None => None,
    };
    let Some((_, flow)) = flow else {
        return pages::error_page(StatusCode::NOT_FOUND, "no such signing order", &langs);
    };
    let lang = Lang::pick(flow.request.ui_locales.iter().map(String::as_str)).unwrap_or(Lang::Nb);
    let t = lang.t();
    match order.state.as_str() {
        "signed" => pages::message_page(StatusCode::OK, lang, t.sign_done_title, t.sign_done_text),
        _ => pages::message_page(StatusCode::OK, lang, t.sign_title, t.sign_failed_text),
    }
}

/// The sign page's box: the text and the documents' names, for a sign flow.
pub(crate) async fn page_box(st: &AppState, flow: &LoginFlow) -> Option<(String, Vec<String>)> {
    let id = flow.order.as_deref()?;
    let mut c = st.store.read().await.ok()?;
    let order = rows::order(&mut *c, id).await.ok()??;
    let names = rows::document_names(&mut *c, id).await.ok()?;
    Some((order.text, names))
}

/// The text the app shows for a sign flow's request: the order's text.
pub(crate) async fn app_text(
    c: &mut impl Db,
    flow: &LoginFlow,
) -> Result<Option<String>, ApiError> {
    match &flow.order {
        Some(id) => Ok(rows::order(c, id).await?.map(|o| o.text)),
        None => Ok(None),
    }
}
