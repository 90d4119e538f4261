//! Signing orders end to end: a relying party posts an order (a text, PDFs and digests of
//! other files) to `/api/v1/sign/orders`, the person signs it in the browser with the code
//! device and password or with the app, and the relying party fetches the results, which
//! are checked with tools other than segl's own where there are any: `openssl cms` for the
//! detached CAdES signatures, `openssl ocsp` for the OCSP response, `openssl dgst` for the
//! app's signed approval and pyHanko for the PAdES signature; `segl verify` as well. Bad
//! orders are refused with the precise problem and create nothing; orders expire and can be
//! cancelled, and then nobody can sign them.
//!
//! The PDFs are fixtures written by `tests/data/sign-pdfs.py`, not by segl.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

backend_tests!(
    signing_with_code_device_and_password_gives_signatures_that_verify,
    signing_with_the_app_keeps_its_signed_approval_and_no_ends_it,
    bad_orders_are_refused_precisely_and_create_nothing,
    orders_expire_and_cancelled_orders_cannot_be_signed,
);

/// The text of the orders.
const TEXT: &str = "I accept the loan agreement of 2 December";
/// The order endpoint.
const ORDERS: &str = "/api/v1/sign/orders";
/// The PDF fixture every order signs.
const LOAN_PDF: &str = "sign-loan.pdf";
/// A second person, whose certificate gets revoked.
const BLOCKED_NIN: &str = "01010050053";
/// A third, with a password but no code device: no active eID.
const NO_EID_NIN: &str = "01010050134";
/// A valid number nobody here has.
const UNKNOWN_NIN: &str = "01010050215";
/// The order lifetime of the expiry test. The contract allows any value through
/// `SEGL_SIGN__ORDER_TTL_SECS`; segl-core's `SignPolicy::validate` refuses less than 10.
const SHORT_TTL_SECS: u64 = 10;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// A base64 field of a JSON answer, decoded.
fn unb64(v: &Value, what: &str) -> Vec<u8> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    data_encoding::BASE64
        .decode(s.as_bytes())
        .unwrap_or_else(|e| panic!("{what} is not standard base64 ({e}): {s}"))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Parses an RFC 3339 time of an answer.
fn rfc3339(v: &Value, what: &str) -> time::OffsetDateTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{what} is not RFC 3339 ({e}): {s}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// A command's exit code and output, for messages.
fn run(c: &mut Command) -> (Option<i32>, String) {
    let out = c.output().expect("run command");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(url).await.expect(url);
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

/// Downloads the root and persons CA certificates into `dir`: (root.pem, persons.pem).
async fn ca_files(server: &Server, dir: &Path) -> (String, String) {
    let (s, root) = get_bytes(&server.url("/pki/ca/root.pem")).await;
    assert_eq!(s, 200, "GET /pki/ca/root.pem");
    let (s, persons) = get_bytes(&server.url("/pki/ca/persons.pem")).await;
    assert_eq!(s, 200, "GET /pki/ca/persons.pem");
    (
        write(dir, "root.pem", &root),
        write(dir, "persons.pem", &persons),
    )
}

/// PEM text without line-ending differences, to compare certificates.
fn pem_norm(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// `segl cert list --nin NIN --json`.
fn certs(segl: &Segl, nin: &str) -> Vec<Value> {
    match segl.json(&["cert", "list", "--nin", nin, "--json"]) {
        Value::Array(v) => v,
        other => panic!("`segl cert list --json` is not an array: {other}"),
    }
}

/// [`Fixture`] with environment variables for the server (the `[sign]` overrides).
fn fixture_with_env(backend: Backend, env: &[(&str, &str)]) -> Fixture {
    let fx = Fixture::with_env(Segl::new(backend), &[], env);
    let listed = certs(&fx.segl, NIN);
    assert_eq!(
        listed.len(),
        1,
        "the active eID should have a certificate: {listed:?}"
    );
    fx
}

// ---------------------------------------------------------------------------------------
// The order API
// ---------------------------------------------------------------------------------------

/// HTTP Basic credentials, if any.
type Auth<'a> = Option<(&'a str, Option<&'a str>)>;

fn rp_auth(rp: &Rp) -> Auth<'_> {
    Some((rp.client_id.as_str(), rp.client_secret.as_deref()))
}

/// A call of the order API as the relying party's backend makes it.
async fn api(
    server: &Server,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let url = server.url(path);
    let mut req = no_redirect_client().request(method.clone(), &url);
    if let Some((id, secret)) = auth {
        req = req.basic_auth(id, secret);
    }
    let mut what = format!("{method} {path}");
    if let Some((ct, bytes)) = body {
        what = format!("{what} ({} bytes)", bytes.len());
        req = req.header(reqwest::header::CONTENT_TYPE, ct).body(bytes);
    }
    Resp::fetch(req, what).await
}

/// POST an order (JSON) with these credentials.
async fn post_order(server: &Server, auth: Auth<'_>, body: &Value) -> Resp {
    api(
        server,
        Method::POST,
        ORDERS,
        auth,
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

/// POST an order that must be accepted; checks the answer and returns it.
async fn create_ok(server: &Server, rp: &Rp, body: &Value) -> Value {
    let r = post_order(server, rp_auth(rp), body).await;
    r.expect_status(201);
    let v = r.json();
    let id = order_id(&v);
    assert_eq!(v["state"], "pending", "a new order: {v}");
    assert_eq!(
        v["sign_url"],
        format!("{}/sign/{id}", server.issuer()),
        "sign_url: {v}"
    );
    rfc3339(&v["expires_at"], "expires_at");
    v
}

fn order_id(v: &Value) -> String {
    v["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no order id in {v}"))
        .to_string()
}

async fn get_order(server: &Server, auth: Auth<'_>, id: &str) -> Resp {
    api(server, Method::GET, &format!("{ORDERS}/{id}"), auth, None).await
}

/// GET an order that must be there.
async fn order(server: &Server, rp: &Rp, id: &str) -> Value {
    let r = get_order(server, rp_auth(rp), id).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["id"], id, "another order: {v}");
    v
}

async fn cancel(server: &Server, auth: Auth<'_>, id: &str) -> Resp {
    api(
        server,
        Method::DELETE,
        &format!("{ORDERS}/{id}"),
        auth,
        None,
    )
    .await
}

/// Asserts that an order that is not signed shows nothing of a signature.
fn assert_nothing_signed(v: &Value) {
    for field in [
        "signer",
        "signed_at",
        "chain",
        "ocsp_response",
        "app_approval",
    ] {
        assert!(
            v.get(field).is_none_or(Value::is_null),
            "an order in state {} has {field}: {v}",
            v["state"]
        );
    }
    for d in v["documents"].as_array().into_iter().flatten() {
        for field in ["cms", "signed_pdf"] {
            assert!(
                d.get(field).is_none_or(Value::is_null),
                "a document of an order in state {} has {field}: {v}",
                v["state"]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The person's side
// ---------------------------------------------------------------------------------------

/// Opens the sign URL as the person's browser: `303` to `/login?flow=ID` with the flow
/// cookie; returns the flow view.
async fn open_sign_page(b: &mut Browser, sign_url: &str) -> Value {
    b.open_flow(sign_url, &format!("GET {sign_url}")).await
}

/// The login page of the flow shows what is to be signed.
async fn assert_page_shows(b: &mut Browser, flow: &Value, needles: &[&str]) {
    let r = b.get(&format!("/login?flow={}", flow_id(flow))).await;
    r.expect_status(200);
    for n in needles {
        assert!(
            r.body.contains(n),
            "the login page of the sign flow does not show {n:?}:\n{}",
            r.body
        );
    }
}

/// From a flow started with a `login_hint`: chooses the code device if asked; the view in
/// state `otp`.
async fn hinted_to_otp(b: &mut Browser, flow: Value) -> Value {
    let mut v = flow;
    assert_ne!(
        v["state"], "identify",
        "with a login_hint the flow skips identify: {v}"
    );
    if v["state"] == "choose_method" {
        let r = b.step(&v, "method", json!({"method": "otp"})).await;
        r.expect_status(200);
        v = r.json();
    }
    assert_eq!(v["state"], "otp", "{v}");
    v
}

/// Tries to sign through `flow` with the code device and the password; returns what
/// stopped it. Panics if the flow reaches `done`.
async fn try_to_sign(b: &mut Browser, flow: Value, device: &mut Hotp) -> String {
    let mut v = flow;
    for _ in 0..8 {
        let state = v["state"].as_str().unwrap_or_default().to_string();
        let (step, body) = match state.as_str() {
            "identify" => ("identify", json!({"nin": NIN})),
            "choose_method" => ("method", json!({"method": "otp"})),
            "otp" => ("otp", json!({"otp": device.next_code()})),
            "password" => ("password", json!({"password": PASSWORD})),
            "done" => panic!("the flow of an order that cannot be signed reached done: {v}"),
            other => return format!("the flow ended in state {other}: {v}"),
        };
        let r = b.step(&v, step, body).await;
        if r.status != 200 {
            return format!("step {step} refused: {} {}", r.status, r.body);
        }
        let next = r.json();
        if next.get("csrf_token").is_none() {
            // Keep the token of the view the flow came from.
            let mut merged = next;
            merged["csrf_token"] = v["csrf_token"].clone();
            v = merged;
        } else {
            v = next;
        }
    }
    panic!("the flow went on for eight steps: {v}");
}

// ---------------------------------------------------------------------------------------
// 1. Code device and password
// ---------------------------------------------------------------------------------------

async fn signing_with_code_device_and_password_gives_signatures_that_verify(backend: Backend) {
    if !openssl_present("the signing tests") {
        return;
    }
    let mut fx = Fixture::new(backend, &[]);
    let server = &fx.server;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pdf = std::fs::read(fixture(LOAN_PDF)).unwrap();
    let terms: &[u8] = b"General terms of Nettbanken ASA, version 7.\nNo fees.\n";
    let pdf_path = write(dir, "loan.pdf", &pdf);
    let terms_path = write(dir, "terms.txt", terms);

    // The digest in upper case: either case is accepted.
    let created = create_ok(
        server,
        &fx.rp,
        &json!({
            "text": TEXT,
            "documents": [
                {"name": "loan.pdf", "pdf": b64(&pdf)},
                {"name": "terms.txt", "sha256": hex(&sha256(terms)).to_uppercase()},
            ],
            "login_hint": NIN,
            "redirect_uri": REDIRECT_URI,
            "state": "xyz",
            "ui_locales": "nb en",
        }),
    )
    .await;
    let id = order_id(&created);
    let expires = rfc3339(&created["expires_at"], "expires_at");
    let ttl = expires - time::OffsetDateTime::now_utc();
    assert!(
        ttl > time::Duration::seconds(800) && ttl <= time::Duration::seconds(905),
        "the default lifetime is 900 s, expires_at is {ttl} away: {created}"
    );
    assert_eq!(fx.segl.audit_count("sign.order_created"), 1);

    let pending = order(server, &fx.rp, &id).await;
    assert_eq!(pending["state"], "pending", "{pending}");
    assert_eq!(pending["text"], TEXT, "{pending}");
    assert_eq!(pending["sign_url"], created["sign_url"], "{pending}");
    rfc3339(&pending["created_at"], "created_at");
    assert_nothing_signed(&pending);

    // The person: the page shows what is signed; the code device and the password sign.
    let mut b = fx.browser();
    let flow = open_sign_page(&mut b, created["sign_url"].as_str().unwrap()).await;
    assert_page_shows(&mut b, &flow, &[TEXT, "loan.pdf", "terms.txt"]).await;
    let flow = hinted_to_otp(&mut b, flow).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    let redirect_to = done["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("done without redirect_to: {done}"));
    let url = url::Url::parse(redirect_to)
        .unwrap_or_else(|e| panic!("redirect_to {redirect_to:?} is no URL: {e}"));
    let mut base = url.clone();
    base.set_query(None);
    assert_eq!(base.as_str(), REDIRECT_URI, "{redirect_to}");
    let query: std::collections::BTreeMap<String, String> = url
        .query_pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(query.get("sign_order"), Some(&id), "{redirect_to}");
    assert_eq!(
        query.get("state").map(String::as_str),
        Some("xyz"),
        "{redirect_to}"
    );

    // The relying party: signed, by whom and how.
    let v = order(server, &fx.rp, &id).await;
    assert_eq!(v["state"], "signed", "{v}");
    assert_eq!(v["text"], TEXT, "{v}");
    let signed_at = rfc3339(&v["signed_at"], "signed_at");
    assert!(signed_at <= time::OffsetDateTime::now_utc() + time::Duration::seconds(5));
    let signer = &v["signer"];
    assert_eq!(signer["sub"], fx.sub.as_str(), "{v}");
    assert_eq!(signer["name"], NAME, "{v}");
    assert_eq!(signer["method"], "otp", "{v}");
    let amr = signer["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("no amr: {v}"));
    for m in ["otp", "pwd"] {
        assert!(amr.contains(&json!(m)), "amr has no {m}: {v}");
    }
    assert!(
        v.get("app_approval").is_none_or(Value::is_null),
        "no app was used: {v}"
    );
    let listed = certs(&fx.segl, NIN);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        signer["certificate_serial"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(listed[0]["serial"].as_str().unwrap())),
        "certificate_serial is not the person's certificate {}: {v}",
        listed[0]["serial"]
    );
    let cert_pem = signer["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("no certificate: {v}"));
    assert_eq!(
        pem_norm(cert_pem),
        pem_norm(listed[0]["pem"].as_str().unwrap()),
        "the signer certificate is not the person's"
    );

    let (root, persons) = ca_files(server, dir).await;
    let chain = v["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("no chain: {v}"));
    assert_eq!(chain.len(), 1, "the chain is the persons CA: {v}");
    assert_eq!(
        pem_norm(chain[0].as_str().unwrap()),
        pem_norm(&std::fs::read_to_string(&persons).unwrap()),
        "chain[0] is not /pki/ca/persons.pem"
    );
    let signer_pem = write(dir, "signer.pem", cert_pem.as_bytes());
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &root,
        "-untrusted",
        &persons,
        &signer_pem,
    ]);
    assert!(
        ok,
        "the signer certificate does not chain to the root: {out}"
    );

    // The OCSP response at signing time: signed by the responder, good.
    let ocsp = write(
        dir,
        "ocsp.der",
        &unb64(&v["ocsp_response"], "ocsp_response"),
    );
    let (ok, out) = openssl(&[
        "ocsp",
        "-respin",
        &ocsp,
        "-issuer",
        &persons,
        "-cert",
        &signer_pem,
        "-CAfile",
        &root,
        "-verify_other",
        &persons,
        "-resp_text",
    ]);
    assert!(ok, "openssl ocsp -respin failed:\n{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{signer_pem}: good")), "{out}");

    // The documents.
    let docs = v["documents"]
        .as_array()
        .unwrap_or_else(|| panic!("no documents: {v}"));
    assert_eq!(docs.len(), 2, "{v}");
    let (pdf_doc, terms_doc) = (&docs[0], &docs[1]);
    assert_eq!(pdf_doc["name"], "loan.pdf", "{v}");
    assert_eq!(pdf_doc["kind"], "pdf", "{v}");
    assert_eq!(terms_doc["name"], "terms.txt", "{v}");
    assert_eq!(terms_doc["kind"], "digest", "{v}");
    assert!(
        terms_doc.get("signed_pdf").is_none_or(Value::is_null),
        "a digest document has no signed PDF: {v}"
    );
    for (doc, content, path) in [
        (pdf_doc, &pdf[..], &pdf_path),
        (terms_doc, terms, &terms_path),
    ] {
        let name = doc["name"].as_str().unwrap();
        assert!(
            doc["sha256"]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&hex(&sha256(content)))),
            "{name}: sha256 is not the content's: {doc}"
        );
        let cms_der = unb64(&doc["cms"], &format!("{name}: cms"));
        let cms = write(dir, &format!("{name}.cms"), &cms_der);
        assert_cades(&cms_der, name);

        // openssl: the detached signature over the original bytes, to the root.
        let (ok, out) = cms_verify(&cms, path, &root, &persons);
        assert!(
            ok,
            "{name}: openssl cms -verify failed:
{out}"
        );
        // A changed byte in the middle: refused.
        let mut changed = content.to_vec();
        let at = changed.len() / 2;
        changed[at] ^= 0x01;
        let changed_path = write(dir, &format!("changed-{name}"), &changed);
        let (ok, out) = cms_verify(&cms, &changed_path, &root, &persons);
        assert!(
            !ok,
            "{name}: openssl verified the signature over changed content:\n{out}"
        );

        // segl verify: valid, revocation from the embedded OCSP response.
        let (code, text) = run(&mut fx
            .segl
            .command(&["verify", "--cms", &cms, "--content", path]));
        assert_eq!(code, Some(0), "{name}: segl verify --cms: {text}");
        let rep = fx
            .segl
            .json(&["verify", "--json", "--cms", &cms, "--content", path]);
        assert_eq!(rep["valid"], true, "{name}: {rep}");
        assert_eq!(rep["revocation"]["status"], "good", "{name}: {rep}");
        assert_eq!(
            rep["revocation"]["source"], "ocsp",
            "{name}: the OCSP response is embedded in the signature: {rep}"
        );
        assert!(
            rep["serial"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(listed[0]["serial"].as_str().unwrap())),
            "{name}: {rep}"
        );
        let out = fx
            .segl
            .cmd(&["verify", "--cms", &cms, "--content", &changed_path]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: segl verify of changed content: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The PAdES signature: an incremental update of the original PDF.
    let signed_pdf = unb64(&pdf_doc["signed_pdf"], "signed_pdf");
    assert!(
        signed_pdf.len() > pdf.len() && signed_pdf.starts_with(&pdf),
        "the signed PDF ({} bytes) does not start with the original's {} bytes",
        signed_pdf.len(),
        pdf.len()
    );
    let update = String::from_utf8_lossy(&signed_pdf[pdf.len()..]).to_string();
    for needle in ["/ByteRange", "/ETSI.CAdES.detached", "%%EOF"] {
        assert!(
            update.contains(needle),
            "the incremental update has no {needle}"
        );
    }
    let signed_path = write(dir, "loan-signed.pdf", &signed_pdf);
    // The same with a changed byte of the original part.
    let mut tampered = signed_pdf.clone();
    tampered[pdf.len() / 2] ^= 0x01;
    let tampered_path = write(dir, "loan-tampered.pdf", &tampered);
    pyhanko_validates(&signed_path, &tampered_path, &root, &persons);
    let (code, out) = run(&mut fx.segl.command(&["verify", "--pdf", &signed_path]));
    assert_eq!(code, Some(0), "segl verify --pdf: {out}");
    // The changed one: refused.
    let (code, out) = run(&mut fx.segl.command(&["verify", "--pdf", &tampered_path]));
    assert_eq!(code, Some(1), "segl verify --pdf of a changed PDF: {out}");

    assert_eq!(fx.segl.audit_count("sign.order_created"), 1);
    assert_eq!(fx.segl.audit_count("sign.completed"), 1);
    assert_eq!(fx.segl.audit_count("sign.failed"), 0);
    fx.segl.audit_ok();
}

/// The CAdES-B parts of a detached CMS signature, found by their DER-encoded OIDs:
/// signing time, signing-certificate-v2 and an OCSP response as other revocation info
/// (RFC 5940).
fn assert_cades(cms: &[u8], name: &str) {
    let has = |oid: &[u8]| cms.windows(oid.len()).any(|w| w == oid);
    assert_eq!(cms.first(), Some(&0x30), "{name}: the CMS is not DER");
    // 1.2.840.113549.1.7.2 signedData
    assert!(
        has(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
        ]),
        "{name}: not a SignedData"
    );
    // 1.2.840.113549.1.9.5 signingTime
    assert!(
        has(&[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05
        ]),
        "{name}: no signing time"
    );
    // 1.2.840.113549.1.9.16.2.47 id-aa-signingCertificateV2
    assert!(
        has(&[
            0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x2f
        ]),
        "{name}: no signing-certificate-v2"
    );
    // 1.3.6.1.5.5.7.16.2 id-ri-ocsp-response
    assert!(
        has(&[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x10, 0x02]),
        "{name}: no OCSP response as RFC 5940 revocation info"
    );
}

/// `openssl cms -verify` of a detached DER signature over `content`, to the root, with
/// the persons CA as an intermediate: (verified, output).
fn cms_verify(cms: &str, content: &str, root: &str, persons: &str) -> (bool, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let (ok, text) = openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        cms,
        "-content",
        content,
        "-CAfile",
        root,
        "-certfile",
        persons,
        "-purpose",
        "any",
        "-out",
        out.path().to_str().unwrap(),
    ]);
    (ok && text.contains("Verification successful"), text)
}

/// `openssl dgst -sha256 -verify` of the signature in `sig` over `data` with the public key
/// in `pub_pem`: (success, output).
fn dgst_verify(pub_pem: &Path, sig: &str, data: &str) -> (bool, String) {
    openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        pub_pem.to_str().unwrap(),
        "-signature",
        sig,
        data,
    ])
}

/// The pyHanko of `tests/.venv-pki`, if it is installed.
fn pyhanko() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/.venv-pki/bin/pyhanko");
    p.exists().then_some(p)
}

/// pyHanko validates the PAdES signature of `pdf` against the root (revocation not
/// checked: a B-B signature carries none for the PDF reader, and nothing is fetched), and
/// refuses `tampered`.
fn pyhanko_validates(pdf: &str, tampered: &str, root: &str, persons: &str) {
    let Some(bin) = pyhanko() else {
        skip(
            "the pyHanko validation of the signed PDF",
            "tests/.venv-pki/bin/pyhanko is not installed",
        );
        return;
    };
    let validate = |file: &str| {
        run(Command::new(&bin).args([
            "sign",
            "validate",
            "--pretty-print",
            "--trust",
            root,
            "--trust-replace",
            "--other-certs",
            persons,
            "--no-revocation-check",
            file,
        ]))
    };
    let (code, out) = validate(pdf);
    assert_eq!(code, Some(0), "pyhanko sign validate failed:\n{out}");
    assert!(
        out.contains("The signature is judged VALID") && !out.contains("judged INVALID"),
        "pyHanko does not judge the signature valid:\n{out}"
    );
    let (code, out) = validate(tampered);
    assert_ne!(code, Some(0), "pyHanko validated a changed PDF:\n{out}");
}

// ---------------------------------------------------------------------------------------
// 2. The app
// ---------------------------------------------------------------------------------------

// What these tests do with the app of common's `AppFx`.
impl AppFx {
    /// `segl app ARGS… --vault V --json` with the PIN on stdin; must succeed.
    fn app_ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["app"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--vault", self.app.vault(), "--json"]);
        self.segl.json_stdin(&all, Some(&format!("{APP_PIN}\n")))
    }

    /// Opens the order's sign page in a new browser and chooses the app: the browser and
    /// the flow in `app_pending`.
    async fn choose_app(&self, sign_url: &str) -> (Browser, Value) {
        let mut b = Browser::new(&self.server);
        let flow = open_sign_page(&mut b, sign_url).await;
        assert_eq!(flow["state"], "identify", "no login_hint: {flow}");
        let v = b.identify_choosing(&flow, APP_NIN, "app").await;
        assert_eq!(v["state"], "app_pending", "{v}");
        assert!(
            v["app"]["verification_code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "no verification code: {v}"
        );
        (b, v)
    }
}

/// The fields of an approval the device key signed (`segl-approval-v1`, see
/// `segl_core::app::ApprovalPayload::to_signed_bytes`), parsed here on their own.
#[derive(Debug)]
struct SignedApproval {
    request_id: String,
    rp: String,
    verification_code: String,
    text_sha256: Vec<u8>,
    decision: String,
    user_verification: String,
}

fn parse_signed_approval(data: &[u8]) -> SignedApproval {
    const PREFIX: &[u8] = b"segl-approval-v1\n";
    assert!(
        data.starts_with(PREFIX),
        "signed_data does not start with segl-approval-v1: {data:?}"
    );
    let mut rest = &data[PREFIX.len()..];
    let mut field = |what: &str, fixed: Option<usize>| -> Vec<u8> {
        let len = match fixed {
            Some(n) => n,
            None => {
                assert!(rest.len() >= 4, "signed_data ends before {what}");
                let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                rest = &rest[4..];
                n
            }
        };
        assert!(rest.len() >= len, "signed_data ends inside {what}");
        let v = rest[..len].to_vec();
        rest = &rest[len..];
        v
    };
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 in signed_data");
    let parsed = SignedApproval {
        request_id: text(field("request_id", None)),
        rp: text(field("rp", None)),
        verification_code: text(field("verification_code", None)),
        text_sha256: field("text_sha256", Some(32)),
        decision: text(field("decision", None)),
        user_verification: text(field("user_verification", None)),
    };
    assert!(rest.is_empty(), "signed_data has {} more bytes", rest.len());
    parsed
}

async fn signing_with_the_app_keeps_its_signed_approval_and_no_ends_it(backend: Backend) {
    if !openssl_present("the signing tests") {
        return;
    }
    let fx = AppFx::new(backend, "", true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (root, persons) = ca_files(&fx.server, dir).await;
    let contract: &[u8] = b"Loan agreement no. 4711, signed with the app.\n";
    let contract_path = write(dir, "contract.txt", contract);

    // The app is connected before the order is made, so the request is pushed to it.
    let watch = Watch::start(&fx.segl, fx.app.vault());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let created = create_ok(
        &fx.server,
        &fx.rp,
        &json!({
            "text": TEXT,
            "documents": [{"name": "contract.txt", "sha256": hex(&sha256(contract))}],
        }),
    )
    .await;
    let id = order_id(&created);
    let (mut b, flow) = fx.choose_app(created["sign_url"].as_str().unwrap()).await;
    let code = flow["app"]["verification_code"]
        .as_str()
        .unwrap()
        .to_string();

    // The app shows the text to sign and the page's verification code, and approves.
    let q = watch.request(Duration::from_secs(30));
    assert_eq!(q["text"], TEXT, "the app shows the order's text: {q}");
    assert_eq!(q["verification_code"], code.as_str(), "{q}");
    assert_eq!(q["rp"], APP_RP, "{q}");
    let request_id = q["id"].as_str().expect("request id").to_string();
    // `--request=ID` in one argument: a request id (base64url) may start with '-'.
    let answered = fx.app_ok(&["approve", &format!("--request={request_id}")]);
    assert_eq!(answered["result"]["state"], "approved", "{answered}");

    let r = collect_app(&mut b, &flow, 100).await;
    r.expect_status(200);
    let mut v = r.json();
    if v["state"] == "password" {
        // Signing may ask for the password after the app, as a login at LoA high does.
        v = b.password_ok(&v, PASSWORD).await;
    }
    assert_eq!(v["state"], "done", "{v}");
    let redirect_to = v["redirect_to"]
        .as_str()
        .unwrap_or_else(|| panic!("done without redirect_to: {v}"));
    assert!(
        redirect_to.ends_with(&format!("/sign/{id}/done")),
        "without a redirect_uri the person ends on /sign/{{id}}/done: {redirect_to}"
    );

    let o = order(&fx.server, &fx.rp, &id).await;
    assert_eq!(o["state"], "signed", "{o}");
    let signer = &o["signer"];
    assert_eq!(signer["name"], "Ola Nordmann", "{o}");
    assert_eq!(
        signer["sub"],
        fx.segl.person(APP_NIN)["sub"],
        "the signer's sub: {o}"
    );
    assert_eq!(signer["method"], "app", "{o}");
    assert!(
        signer["amr"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("swk"))),
        "amr names the app's key (swk): {o}"
    );

    // The app's approval, verified with openssl against the device key it names.
    let a = &o["app_approval"];
    assert_eq!(a["app_id"], fx.app.app_id.as_str(), "{o}");
    assert_eq!(a["request_id"], request_id.as_str(), "{o}");
    assert_eq!(a["verification_code"], code.as_str(), "{o}");
    assert_eq!(a["user_verification"], "pin", "{o}");
    let text_hash = sha256(TEXT.as_bytes());
    assert!(
        a["text_sha256"]
            .as_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(&hex(&text_hash))),
        "text_sha256 is not SHA-256 of the text: {o}"
    );
    let signed_data = unb64(&a["signed_data"], "app_approval.signed_data");
    assert!(
        signed_data.windows(32).any(|w| w == text_hash),
        "signed_data does not hold the text's hash"
    );
    let parsed = parse_signed_approval(&signed_data);
    assert_eq!(parsed.request_id, request_id, "{parsed:?}");
    assert_eq!(parsed.rp, APP_RP, "{parsed:?}");
    assert_eq!(parsed.verification_code, code, "{parsed:?}");
    assert_eq!(parsed.text_sha256, text_hash, "{parsed:?}");
    assert_eq!(parsed.decision, "approve", "{parsed:?}");
    assert_eq!(parsed.user_verification, "pin", "{parsed:?}");
    let sig = unb64(&a["signature"], "app_approval.signature");
    assert_eq!(
        sig.first(),
        Some(&0x30),
        "the approval's signature is DER (SEQUENCE), not r||s"
    );
    let spki = unb64(&a["device_public_key"], "app_approval.device_public_key");
    let key = segl_app::vault::Vault::unlock(&fx.app.vault, APP_PIN).expect("unlock the vault");
    assert_eq!(
        spki,
        key.public_key_spki_der().unwrap(),
        "device_public_key is not the app's key"
    );
    let spki_path = write(dir, "device.der", &spki);
    let pub_pem = dir.join("device.pem");
    let (ok, out) = openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        &spki_path,
        "-out",
        pub_pem.to_str().unwrap(),
    ]);
    assert!(ok, "device_public_key is no DER SPKI: {out}");
    let data_path = write(dir, "approval.bin", &signed_data);
    let sig_path = write(dir, "approval.sig", &sig);
    let (ok, out) = dgst_verify(&pub_pem, &sig_path, &data_path);
    assert!(
        ok && out.contains("Verified OK"),
        "the approval does not verify: {out}"
    );
    let mut forged = signed_data.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let forged_path = write(dir, "forged.bin", &forged);
    let (ok, out) = dgst_verify(&pub_pem, &sig_path, &forged_path);
    assert!(!ok, "a changed approval verified: {out}");

    // The document's signature verifies too.
    let docs = o["documents"]
        .as_array()
        .unwrap_or_else(|| panic!("no documents: {o}"));
    assert_eq!(docs.len(), 1, "{o}");
    let cms_der = unb64(&docs[0]["cms"], "cms");
    assert_cades(&cms_der, "contract.txt");
    let cms = write(dir, "contract.cms", &cms_der);
    let (ok, out) = cms_verify(&cms, &contract_path, &root, &persons);
    assert!(
        ok,
        "openssl cms -verify failed:
{out}"
    );

    // "No, that's not me" on another order: it fails, nothing is signed.
    let created = create_ok(
        &fx.server,
        &fx.rp,
        &json!({
            "text": "I accept the second loan agreement",
            "documents": [{"name": "contract.txt", "sha256": hex(&sha256(contract))}],
        }),
    )
    .await;
    let id2 = order_id(&created);
    let (mut b, flow) = fx.choose_app(created["sign_url"].as_str().unwrap()).await;
    let d = fx.app_ok(&["deny", "--wait", "10"]);
    assert_eq!(d["result"]["state"], "denied", "{d}");
    assert_eq!(
        d["request"]["text"], "I accept the second loan agreement",
        "{d}"
    );
    let r = collect_app(&mut b, &flow, 100).await;
    if r.status == 200 {
        assert_eq!(r.json()["state"], "failed", "after a denial: {}", r.body);
    } else {
        assert_problem(&r, 403, "denied_in_app");
    }
    let v = b.flow(&flow_id(&flow)).await;
    assert_eq!(v["state"], "failed", "{v}");
    let o2 = order(&fx.server, &fx.rp, &id2).await;
    assert_eq!(o2["state"], "failed", "{o2}");
    assert_eq!(o2["error"]["code"], "denied_in_app", "{o2}");
    assert!(o2["error"]["message"].is_string(), "{o2}");
    assert_nothing_signed(&o2);
    // The first order is untouched.
    assert_eq!(order(&fx.server, &fx.rp, &id).await["state"], "signed");

    assert_eq!(fx.segl.audit_count("sign.order_created"), 2);
    assert_eq!(fx.segl.audit_count("sign.completed"), 1);
    assert_eq!(fx.segl.audit_count("sign.failed"), 1);
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 3. Bad orders
// ---------------------------------------------------------------------------------------

/// Asserts the problem and that no order was made.
fn refused(fx: &Fixture, r: &Resp, status: u16, code: &str) -> Value {
    let p = assert_problem(r, status, code);
    assert_eq!(
        fx.segl.audit_count("sign.order_created"),
        0,
        "{}: a refused order was recorded as created ({code})",
        r.what
    );
    p
}

/// As [`refused`], and the problem's detail names the document.
fn refused_naming(fx: &Fixture, r: &Resp, status: u16, code: &str, name: &str) {
    let p = refused(fx, r, status, code);
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains(name)),
        "{}: the detail does not name {name:?}: {p}",
        r.what
    );
}

/// Bytes that look random (deterministic), after `%PDF-1.7`.
fn pdf_lookalike(len: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn bad_orders_are_refused_precisely_and_create_nothing(backend: Backend) {
    let fx = fixture_with_env(backend, &[("SEGL_SIGN__MAX_DOCUMENT_BYTES", "50000")]);
    let server = &fx.server;
    let rp = &fx.rp;
    let auth = rp_auth(rp);
    let pdf = std::fs::read(fixture(LOAN_PDF)).unwrap();
    let loan = json!({"name": "loan.pdf", "pdf": b64(&pdf)});
    let digest = hex(&sha256(b"terms"));
    let order_with = |docs: Value| json!({"text": TEXT, "documents": docs});
    let good = order_with(json!([loan.clone()]));

    // Client authentication.
    let r = post_order(server, None, &good).await;
    refused(&fx, &r, 401, "invalid_client");
    let r = post_order(
        server,
        Some((rp.client_id.as_str(), Some("wrong-secret"))),
        &good,
    )
    .await;
    refused(&fx, &r, 401, "invalid_client");
    let r = post_order(server, Some(("no-such-client", Some("secret"))), &good).await;
    refused(&fx, &r, 401, "invalid_client");
    let public = fx.segl.add_rp("Public app", REDIRECT_URI, &["--public"]);
    let r = post_order(server, Some((public.client_id.as_str(), None)), &good).await;
    refused(&fx, &r, 401, "invalid_client");
    let r = post_order(server, Some((public.client_id.as_str(), Some(""))), &good).await;
    refused(&fx, &r, 401, "invalid_client");

    // Not JSON, fields missing or of the wrong type.
    let r = api(
        server,
        Method::POST,
        ORDERS,
        auth,
        Some(("application/json", b"{\"text\": \"unfinished".to_vec())),
    )
    .await;
    refused(&fx, &r, 400, "malformed_request");
    for (what, body) in [
        ("no text", json!({"documents": [loan.clone()]})),
        ("no documents", json!({"text": TEXT})),
        (
            "text a number",
            json!({"text": 42, "documents": [loan.clone()]}),
        ),
        (
            "documents a string",
            json!({"text": TEXT, "documents": "loan.pdf"}),
        ),
        (
            "pdf a number",
            order_with(json!([{"name": "loan.pdf", "pdf": 5}])),
        ),
        (
            "login_hint a number",
            json!({"text": TEXT, "documents": [loan.clone()], "login_hint": 15058500027u64}),
        ),
    ] {
        let r = post_order(server, auth, &body).await;
        let p = refused(&fx, &r, 400, "malformed_request");
        eprintln!("{what}: {}", p["detail"]);
    }

    // The text.
    for text in [String::new(), "x".repeat(4001)] {
        let r = post_order(
            server,
            auth,
            &json!({"text": text, "documents": [loan.clone()]}),
        )
        .await;
        refused(&fx, &r, 400, "invalid_text");
    }

    // The documents.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"name": format!("file-{i}.txt"), "sha256": digest}))
        .collect();
    for docs in [
        json!([]),
        Value::Array(many),
        json!([{"name": "", "pdf": b64(&pdf)}]),
        json!([loan.clone(), {"name": "loan.pdf", "sha256": digest}]),
        json!([{"name": "both.pdf", "pdf": b64(&pdf), "sha256": digest}]),
        json!([{"name": "neither.pdf"}]),
    ] {
        let r = post_order(server, auth, &order_with(docs)).await;
        refused(&fx, &r, 400, "invalid_documents");
    }

    // Digests: 31 bytes, not hex.
    for bad in [hex(&[0xab; 31]), format!("{}zz", &digest[..62])] {
        let r = post_order(
            server,
            auth,
            &order_with(json!([loan.clone(), {"name": "terms.txt", "sha256": bad}])),
        )
        .await;
        refused(&fx, &r, 400, "invalid_digest");
    }

    // PDFs that are not: bad base64, the fixture cut in the middle, random bytes after
    // %PDF-, a text file. Each after a good PDF, so the detail must name the bad one.
    let half = &pdf[..pdf.len() / 2];
    for (name, field) in [
        ("bad-base64.pdf", "%%% not base64 %%%".to_string()),
        ("half.pdf", b64(half)),
        ("random.pdf", b64(&pdf_lookalike(4000))),
        (
            "letter.pdf",
            b64(b"Dear customer, this is a plain text file.\n"),
        ),
    ] {
        let r = post_order(
            server,
            auth,
            &order_with(json!([loan.clone(), {"name": name, "pdf": field}])),
        )
        .await;
        refused_naming(&fx, &r, 400, "invalid_pdf", name);
    }

    // Over the configured 50,000 bytes: a 63 KB PDF, then a body over the route's limit.
    let large = std::fs::read(fixture("sign-large.pdf")).unwrap();
    assert!(large.len() > 50_000 && large.len() < 100_000);
    let r = post_order(
        server,
        auth,
        &order_with(json!([loan.clone(), {"name": "annex.pdf", "pdf": b64(&large)}])),
    )
    .await;
    refused_naming(&fx, &r, 413, "document_too_large", "annex.pdf");
    // The limit is about 2 × 4/3 × 50,000 + 1 MiB = 1.18 MB; this body is 2 MB.
    let huge = order_with(json!([{"name": "huge.pdf", "pdf": b64(&vec![b'%'; 1_500_000])}]));
    let r = post_order(server, auth, &huge).await;
    refused(&fx, &r, 413, "payload_too_large");

    // login_hint: not a number, nobody, no active eID, a revoked certificate.
    fx.segl.add_person(NO_EID_NIN, "Per Passord", PASSWORD);
    fx.segl.add_person(BLOCKED_NIN, "Berit Blokkert", PASSWORD);
    fx.segl.assign("600000001", BLOCKED_NIN);
    let blocked = certs(&fx.segl, BLOCKED_NIN);
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    let serial = blocked[0]["serial"].as_str().unwrap();
    let revoked = fx.segl.json(&[
        "cert",
        "revoke",
        "--serial",
        serial,
        "--reason",
        "key-compromise",
        "--json",
    ]);
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    for (hint, status, code) in [
        ("15058500028", 400, "invalid_login_hint"),
        ("1505850002", 400, "invalid_login_hint"),
        (UNKNOWN_NIN, 409, "no_eid"),
        (NO_EID_NIN, 409, "no_eid"),
        (BLOCKED_NIN, 409, "person_blocked"),
    ] {
        let mut body = good.clone();
        body["login_hint"] = json!(hint);
        let r = post_order(server, auth, &body).await;
        refused(&fx, &r, status, code);
    }

    // redirect_uri: only one registered for this client, exactly.
    let other = fx
        .segl
        .add_rp("Other bank", "https://other.example/cb", &[]);
    for uri in [
        "https://rp.example/signed",
        "http://127.0.0.1:9/cb/more",
        "http://127.0.0.1:9/cb?x=1",
        "https://other.example/cb",
    ] {
        let mut body = good.clone();
        body["redirect_uri"] = json!(uri);
        let r = post_order(server, auth, &body).await;
        refused(&fx, &r, 400, "invalid_redirect_uri");
    }

    // At the limits: 4,000 characters of text (8,000 bytes), 20 documents.
    let mut docs = vec![loan.clone()];
    docs.extend((1..20).map(|i| json!({"name": format!("file-{i}.txt"), "sha256": digest})));
    let created = create_ok(
        server,
        rp,
        &json!({"text": "æ".repeat(4000), "documents": docs}),
    )
    .await;
    let id = order_id(&created);
    assert_eq!(fx.segl.audit_count("sign.order_created"), 1);

    // Only its client sees it.
    let other_auth = rp_auth(&other);
    let r = get_order(server, other_auth, &id).await;
    assert_problem(&r, 404, "order_not_found");
    let r = cancel(server, other_auth, &id).await;
    assert_problem(&r, 404, "order_not_found");
    let r = get_order(server, auth, "no-such-order").await;
    assert_problem(&r, 404, "order_not_found");
    let r = get_order(
        server,
        Some((rp.client_id.as_str(), Some("wrong-secret"))),
        &id,
    )
    .await;
    assert_problem(&r, 401, "invalid_client");
    let r = get_order(server, None, &id).await;
    assert_problem(&r, 401, "invalid_client");
    let v = order(server, rp, &id).await;
    assert_eq!(
        v["state"], "pending",
        "another client's cancel did nothing: {v}"
    );
    assert_eq!(v["text"], "æ".repeat(4000));

    assert_eq!(fx.segl.audit_count("sign.order_created"), 1);
    fx.segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// 4. Expiry and cancellation
// ---------------------------------------------------------------------------------------

/// The sign page of an order that cannot be signed any more: an error page with 410, or
/// a flow that does not get to `done`. Returns what was seen.
async fn sign_page_refuses(fx: &mut Fixture, sign_url: &str) -> String {
    let mut b = fx.browser();
    let r = b.get(sign_url).await;
    if r.status.as_u16() == 410 {
        assert!(
            r.content_type().starts_with("text/html"),
            "{}: the 410 is an error page, not {}",
            r.what,
            r.content_type()
        );
        return "410".into();
    }
    let id = login_flow_id(&r);
    let flow = b.flow(&id).await;
    try_to_sign(&mut b, flow, &mut fx.device).await
}

async fn orders_expire_and_cancelled_orders_cannot_be_signed(backend: Backend) {
    let ttl = SHORT_TTL_SECS.to_string();
    let mut fx = fixture_with_env(backend, &[("SEGL_SIGN__ORDER_TTL_SECS", &ttl)]);
    let body = json!({
        "text": TEXT,
        "documents": [{"name": "terms.txt", "sha256": hex(&sha256(b"terms"))}],
    });

    // Expiry.
    let created = create_ok(&fx.server, &fx.rp, &body).await;
    let expiring = order_id(&created);
    let life = rfc3339(&created["expires_at"], "expires_at") - time::OffsetDateTime::now_utc();
    assert!(
        life <= time::Duration::seconds(SHORT_TTL_SECS as i64 + 1),
        "SEGL_SIGN__ORDER_TTL_SECS={ttl} not applied: {created}"
    );
    let expiring_url = created["sign_url"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(SHORT_TTL_SECS + 1)).await;
    let v = order(&fx.server, &fx.rp, &expiring).await;
    assert_eq!(v["state"], "expired", "{v}");
    assert_nothing_signed(&v);
    let r = fx.browser().get(&expiring_url).await;
    r.expect_status(410);
    assert!(
        r.content_type().starts_with("text/html"),
        "{}: an error page, not {}",
        r.what,
        r.content_type()
    );
    let r = cancel(&fx.server, rp_auth(&fx.rp), &expiring).await;
    assert_problem(&r, 409, "order_not_pending");

    // Cancellation: the person has the page open when the relying party withdraws it.
    let created = create_ok(&fx.server, &fx.rp, &body).await;
    let id = order_id(&created);
    let url = created["sign_url"].as_str().unwrap().to_string();
    let mut b = fx.browser();
    let flow = open_sign_page(&mut b, &url).await;
    let r = cancel(&fx.server, rp_auth(&fx.rp), &id).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["id"], id.as_str(), "{v}");
    assert_eq!(v["state"], "cancelled", "{v}");
    assert_eq!(order(&fx.server, &fx.rp, &id).await["state"], "cancelled");

    let seen = try_to_sign(&mut b, flow, &mut fx.device).await;
    eprintln!("the open page of the cancelled order: {seen}");
    let seen = sign_page_refuses(&mut fx, &url).await;
    eprintln!("the sign page of the cancelled order: {seen}");
    let v = order(&fx.server, &fx.rp, &id).await;
    assert_eq!(v["state"], "cancelled", "never signed: {v}");
    assert_nothing_signed(&v);
    let r = cancel(&fx.server, rp_auth(&fx.rp), &id).await;
    assert_problem(&r, 409, "order_not_pending");

    // A pending order still signs on the same server (the refusals above are the
    // orders', not the person's).
    let created = create_ok(&fx.server, &fx.rp, &body).await;
    let ok_id = order_id(&created);
    let mut b = fx.browser();
    let flow = open_sign_page(&mut b, created["sign_url"].as_str().unwrap()).await;
    let flow = b.identify(&flow, NIN).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    b.password_ok(&flow, PASSWORD).await;
    assert_eq!(order(&fx.server, &fx.rp, &ok_id).await["state"], "signed");

    assert_eq!(fx.segl.audit_count("sign.order_created"), 3);
    assert_eq!(fx.segl.audit_count("sign.completed"), 1);
    fx.segl.audit_ok();
}
