//! Login with the app, end to end: a relying party starts a login, the person chooses the
//! app, the reference app (`segl app watch/approve/deny`) gets the request pushed and
//! answers with its device key, and the browser's collect step finishes the login. The
//! answers' refusals (replay, race, late, another app's, a cancelled flow, a deactivated
//! app, a forged signature) are driven with the device key directly. On PostgreSQL a
//! second node carries the app's connection (LISTEN/NOTIFY fan-out).

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

backend_tests!(
    the_app_approves_a_login_pushed_to_it,
    without_user_verification_the_password_follows,
    no_thats_not_me_ends_the_login_and_records_a_block_request,
    answers_are_checked_once_and_refused_precisely,
    the_animated_qr_code_is_fresh_for_seconds_only,
    an_app_gets_at_most_three_requests_at_once,
);

const PIN: &str = APP_PIN;

// What these tests do with the app of common's `AppFx`.
impl AppFx {
    /// `segl app ARGS… --vault V --json` with the PIN on stdin.
    fn app(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["app"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--vault", self.app.vault(), "--json"]);
        self.segl.cmd_stdin(&all, Some(&format!("{PIN}\n")))
    }

    fn app_ok(&self, args: &[&str]) -> Value {
        let out = self.app(args);
        assert_success(&out, args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// The device key, as the app holds it.
    fn key(&self) -> segl_app::device::DeviceKey {
        segl_app::vault::Vault::unlock(&self.app.vault, PIN).expect("unlock the vault")
    }

    /// The verified ID token claims of a login that ended at `redirect_to`.
    async fn claims_after(
        &self,
        client: &OidcClient,
        start: AuthStart,
        redirect_to: &str,
    ) -> Value {
        let code = code_from(redirect_to, &self.rp, &start, &self.server.issuer());
        let tokens = exchange(client, code, start.verifier).await;
        let id_token = openidconnect::TokenResponse::id_token(&tokens)
            .expect("an ID token")
            .to_string();
        verified_claims(client, &id_token, &start.nonce)
    }

    /// Starts a login in a new browser and chooses the app: the flow in `app_pending`.
    async fn start_app_login(
        &self,
        extra: &[(&str, &str)],
    ) -> (Browser, OidcClient, AuthStart, Value) {
        let (_, client) = discover(&self.server, &self.rp).await;
        let start = authorize(&client, &[], extra);
        let mut b = Browser::new(&self.server);
        let flow = b.start_flow(start.url.as_str()).await;
        let r = b.step(&flow, "identify", json!({"nin": APP_NIN})).await;
        r.expect_status(200);
        let v = r.json();
        assert_eq!(v["state"], "choose_method", "{v}");
        assert_eq!(v["methods"], json!(["otp", "app"]), "{v}");
        let r = b.step(&v, "method", json!({"method": "app"})).await;
        r.expect_status(200);
        let v = r.json();
        assert_eq!(v["state"], "app_pending", "{v}");
        let code = v["app"]["verification_code"].as_str().unwrap_or_default();
        assert_eq!(code.split(' ').count(), 2, "two words: {v}");
        (b, client, start, v)
    }
}

/// Posts the collect step until the flow leaves `app_pending` (the answer is already
/// recorded, so this returns at once or after one more round).
async fn collect(b: &mut Browser, flow: &Value) -> Resp {
    collect_app(b, flow, 50).await
}

async fn the_app_approves_a_login_pushed_to_it(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    // On PostgreSQL the app holds its connection to a second node: the request made on
    // the first reaches it through LISTEN/NOTIFY, and its answer finishes the login there.
    let second = match backend {
        Backend::Postgres => Some(Server::start(&fx.segl, &[])),
        Backend::Sqlite => None,
    };
    let watch_node = second.as_ref().unwrap_or(&fx.server);
    if second.is_some() {
        // The vault holds the server it was activated with; this app talks to node 2.
        rewrite_vault_server(&fx.app.vault, &watch_node.issuer());
    }
    let watch = Watch::start(&fx.segl, fx.app.vault());
    // Let the watch connect before the request is made, so this is a push, not the list
    // sent on connect. (Either way the request must arrive.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut b, client, start, flow) = fx.start_app_login(&[]).await;
    let code = flow["app"]["verification_code"]
        .as_str()
        .unwrap()
        .to_string();

    // The app shows what the browser shows.
    let q = watch.request(Duration::from_secs(30));
    assert_eq!(q["rp"], "Nettbanken", "{q}");
    assert_eq!(q["verification_code"], code.as_str(), "{q}");
    assert_eq!(q["text"], "Logg inn hos Nettbanken", "{q}");

    // The page's QR code is an SVG image for this browser only.
    let qr = b.get(flow["app"]["qr_url"].as_str().unwrap()).await;
    qr.expect_status(200);
    assert!(
        qr.content_type().starts_with("image/svg+xml"),
        "{}",
        qr.what
    );
    let stranger = Browser::new(&fx.server)
        .get(flow["app"]["qr_url"].as_str().unwrap())
        .await;
    assert_problem(&stranger, 403, "flow_binding");

    // Still waiting: collect leaves the flow as it is.
    let r = b.step(&flow, "app", json!({})).await;
    r.expect_status(200);
    assert_eq!(r.json()["state"], "app_pending");

    // `--request=ID` in one argument: a request id (base64url) may start with '-'.
    let answered = fx.app_ok(&[
        "approve",
        &format!("--request={}", q["id"].as_str().unwrap()),
    ]);
    assert_eq!(answered["result"]["state"], "approved", "{answered}");

    let r = collect(&mut b, &flow).await;
    r.expect_status(200);
    let done = r.json();
    assert_eq!(done["state"], "done", "{done}");
    let redirect_to = done["redirect_to"].as_str().unwrap();
    let claims = fx.claims_after(&client, start, redirect_to).await;
    assert_eq!(claims["amr"], json!(["swk", "pin", "mfa"]), "{claims}");
    assert_eq!(
        claims["acr"], "http://eidas.europa.eu/LoA/substantial",
        "{claims}"
    );

    // The request is used up: a second approval is refused.
    let again = fx.app(&[
        "approve",
        &format!("--request={}", q["id"].as_str().unwrap()),
    ]);
    assert_input_error(&again, "an answered request", "not waiting");

    // The browser remembers the app: with a login_hint the next login goes straight to
    // the app, whose request went out with the authorize redirect.
    let start2 = authorize(
        &client,
        &[],
        &[("login_hint", APP_NIN), ("prompt", "login")],
    );
    let r = b.get(start2.url.as_str()).await;
    let id = login_flow_id(&r);
    let v = b.flow(&id).await;
    assert_eq!(v["state"], "app_pending", "{v}");
    let listed = fx.app_ok(&["approve", "--uv", "face"]);
    assert_eq!(
        listed["request"]["verification_code"], v["app"]["verification_code"],
        "{listed}"
    );
    let r = collect(&mut b, &v).await;
    r.expect_status(200);
    assert_eq!(r.json()["state"], "done");

    let audit = fx.segl.audit();
    let approved: Vec<_> = audit
        .iter()
        .filter(|e| e["event"] == "app.approved")
        .collect();
    assert_eq!(approved.len(), 2, "{audit:?}");
    assert_eq!(approved[0]["data"]["app_id"], fx.app.app_id.as_str());
    assert_eq!(approved[0]["data"]["possible_fraud"], false);
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "login.success"
                && e["data"]["amr"] == json!(["swk", "face", "mfa"])),
        "{audit:?}"
    );
    fx.segl.audit_ok();
}

/// Points the vault at another node of the same installation.
fn rewrite_vault_server(vault: &std::path::Path, server: &str) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(vault).unwrap()).unwrap();
    v["server"] = json!(server);
    std::fs::write(vault, serde_json::to_vec(&v).unwrap()).unwrap();
}

async fn without_user_verification_the_password_follows(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let (mut b, client, start, flow) = fx.start_app_login(&[]).await;
    let a = fx.app_ok(&["approve", "--uv", "none", "--wait", "10"]);
    assert_eq!(a["result"]["state"], "approved", "{a}");
    let r = collect(&mut b, &flow).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["state"], "password", "{v}");
    let done = b.password_ok(&v, PASSWORD).await;
    let claims = fx
        .claims_after(&client, start, done["redirect_to"].as_str().unwrap())
        .await;
    assert_eq!(claims["amr"], json!(["swk", "pwd", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], "http://eidas.europa.eu/LoA/high", "{claims}");

    // A client that asks for LoA high gets the password after the app's PIN too.
    let (mut b, client, start, flow) = fx
        .start_app_login(&[("acr_values", "http://eidas.europa.eu/LoA/high")])
        .await;
    fx.app_ok(&["approve", "--wait", "10"]);
    let v = collect(&mut b, &flow).await.json();
    assert_eq!(v["state"], "password", "{v}");
    let done = b.password_ok(&v, PASSWORD).await;
    let claims = fx
        .claims_after(&client, start, done["redirect_to"].as_str().unwrap())
        .await;
    assert_eq!(
        claims["amr"],
        json!(["swk", "pin", "pwd", "mfa"]),
        "{claims}"
    );
    assert_eq!(claims["acr"], "http://eidas.europa.eu/LoA/high", "{claims}");
}

async fn no_thats_not_me_ends_the_login_and_records_a_block_request(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let (mut b, _client, start, flow) = fx.start_app_login(&[]).await;
    let d = fx.app_ok(&["deny", "--block", "--wait", "10"]);
    assert_eq!(d["result"]["state"], "denied", "{d}");
    let r = collect(&mut b, &flow).await;
    assert_problem(&r, 403, "denied_in_app");
    let v = b.flow(&flow_id(&flow)).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "denied_in_app", "{v}");
    let q = callback_params(
        v["redirect_to"].as_str().unwrap(),
        &fx.rp,
        start.state.secret(),
        &fx.server.issuer(),
    );
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert!(!q.contains_key("code"));

    let audit = fx.segl.audit();
    let denied = audit
        .iter()
        .find(|e| e["event"] == "app.denied")
        .unwrap_or_else(|| panic!("no app.denied: {audit:?}"));
    assert_eq!(denied["data"]["possible_fraud"], true, "{denied}");
    assert_eq!(denied["data"]["block_requested"], true, "{denied}");
    assert_eq!(fx.segl.audit_count("eid.block_requested"), 1);
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "login.failure" && e["data"]["reason"] == "denied_in_app"),
        "{audit:?}"
    );
    // Approving with "block" makes no sense and is refused before anything is sent.
    let (_b, _c, _s, _f) = fx.start_app_login(&[]).await;
    let r = answer_raw(
        &fx,
        &pending(&fx).await[0],
        "approve",
        json!({"block": true}),
        None,
    )
    .await;
    assert_problem(&r, 400, "malformed_answer");
    fx.segl.audit_ok();
}

/// The requests waiting for the app, through the polling call.
async fn pending(fx: &AppFx) -> Vec<Value> {
    let r = signed(fx, "GET", "/api/v1/app/requests", b"").await;
    r.expect_status(200);
    r.json()["requests"].as_array().cloned().unwrap_or_default()
}

/// A device-API call signed with the app's key.
async fn signed(fx: &AppFx, method: &str, path: &str, body: &[u8]) -> Resp {
    let key = fx.key();
    let timestamp = unix_now() as i64;
    let nonce = data_encoding::BASE64URL_NOPAD.encode(&segl_crypto::random::random_bytes::<16>());
    let request = segl_core::app::DeviceRequest {
        app_id: &fx.app.app_id,
        nonce: &nonce,
        method,
        path,
        timestamp,
        body_sha256: <sha2::Sha256 as sha2::Digest>::digest(body).into(),
    };
    let sig = key.sign_request(&request).expect("sign");
    let http = reqwest::Client::new();
    let req = http
        .request(method.parse().unwrap(), fx.server.url(path))
        .header("x-segl-app-id", &fx.app.app_id)
        .header("x-segl-nonce", nonce)
        .header("x-segl-timestamp", timestamp.to_string())
        .header(
            "x-segl-signature",
            data_encoding::BASE64URL_NOPAD.encode(&sig),
        )
        .header("content-type", "application/json")
        .body(body.to_vec());
    Resp::fetch(req, format!("{method} {path}")).await
}

/// Answers request `q` (as listed) with `decision`, signing the approval over `sign_for`
/// (default: `q` itself); `extra` fields are added to the body.
async fn answer_raw(
    fx: &AppFx,
    q: &Value,
    decision: &str,
    extra: Value,
    sign_for: Option<&Value>,
) -> Resp {
    let s = sign_for.unwrap_or(q);
    let field = |k: &str| s[k].as_str().unwrap().to_string();
    let decision_v = if decision == "approve" {
        segl_core::app::Decision::Approve
    } else {
        segl_core::app::Decision::Deny
    };
    let payload = segl_core::app::ApprovalPayload {
        request_id: field("id"),
        rp: field("rp"),
        verification_code: field("verification_code"),
        text_sha256: <sha2::Sha256 as sha2::Digest>::digest(field("text").as_bytes()).into(),
        decision: decision_v,
        user_verification: Some(segl_core::app::UserVerification::Pin),
    };
    let sig = fx.key().sign(&payload).expect("sign");
    let mut body = json!({
        "decision": decision,
        "user_verification": "pin",
        "signature": data_encoding::BASE64URL_NOPAD.encode(&sig),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let path = format!("/api/v1/app/requests/{}/answer", q["id"].as_str().unwrap());
    signed(fx, "POST", &path, body.to_string().as_bytes()).await
}

async fn answers_are_checked_once_and_refused_precisely(backend: Backend) {
    // Requests lapse after two seconds here, so the late answer is quick to make.
    let fx = AppFx::new(backend, "request_ttl_secs = 2\n", false);

    // Two approvals of one request at once: exactly one wins.
    let (_b1, _c1, _s1, _f1) = fx.start_app_login(&[]).await;
    let q1 = pending(&fx).await.remove(0);
    let (r1, r2) = tokio::join!(
        answer_raw(&fx, &q1, "approve", json!({}), None),
        answer_raw(&fx, &q1, "approve", json!({}), None)
    );
    let mut statuses = [r1.status.as_u16(), r2.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", r1.body, r2.body);
    let loser = if r1.status == 409 { &r1 } else { &r2 };
    assert_problem(loser, 409, "request_already_answered");
    // A replay of the answer, freshly signed: refused the same way.
    let r = answer_raw(&fx, &q1, "deny", json!({}), None).await;
    assert_problem(&r, 409, "request_already_answered");

    // An answer signed for one request and sent for another ("another flow").
    let (_b2, _c2, _s2, _f2) = fx.start_app_login(&[]).await;
    let q2 = pending(&fx).await.remove(0);
    let r = answer_raw(&fx, &q2, "approve", json!({}), Some(&q1)).await;
    assert_problem(&r, 400, "bad_approval_signature");
    // Malformed: a signature that is not base64url, an unknown field, a wrong decision.
    let r = answer_raw(&fx, &q2, "approve", json!({"signature": "***"}), None).await;
    assert_problem(&r, 400, "malformed_answer");
    let r = answer_raw(&fx, &q2, "approve", json!({"extra": 1}), None).await;
    assert_problem(&r, 400, "malformed_answer");
    let r = answer_raw(&fx, &q2, "maybe", json!({}), None).await;
    assert_problem(&r, 400, "malformed_answer");
    // Unsigned: the device-API headers are missing.
    let r = Resp::fetch(
        reqwest::Client::new()
            .post(fx.server.url(&format!(
                "/api/v1/app/requests/{}/answer",
                q2["id"].as_str().unwrap()
            )))
            .json(&json!({"decision": "approve", "signature": "AA"})),
        "unsigned answer".into(),
    )
    .await;
    assert_problem(&r, 401, "device_auth_required");
    // None of that decided q2; it lapses unanswered: a late answer is refused.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = answer_raw(&fx, &q2, "approve", json!({}), None).await;
    assert_problem(&r, 410, "request_expired");
    assert!(
        pending(&fx).await.is_empty(),
        "a lapsed request is not listed"
    );

    // The flow lapses too: collecting counts it as a failure and goes back to choosing.
    let (mut b3, _c3, _s3, f3) = fx.start_app_login(&[]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = b3.step(&f3, "app", json!({})).await;
    assert_problem(&r, 409, "app_request_expired");
    let v = b3.flow(&flow_id(&f3)).await;
    assert_eq!(v["state"], "choose_method", "{v}");
    assert_eq!(v["failures"], 1, "{v}");

    // A cancelled flow: its request is withdrawn and cannot be approved.
    let (mut b4, _c4, _s4, f4) = fx.start_app_login(&[]).await;
    let q4 = pending(&fx).await.remove(0);
    let r = b4.step(&f4, "cancel", json!({})).await;
    r.expect_status(200);
    assert!(
        pending(&fx).await.is_empty(),
        "a withdrawn request is not listed"
    );
    let r = answer_raw(&fx, &q4, "approve", json!({}), None).await;
    assert_problem(&r, 409, "request_cancelled");
    // Choosing another method withdraws it the same way.
    let (mut b5, _c5, _s5, f5) = fx.start_app_login(&[]).await;
    let q5 = pending(&fx).await.remove(0);
    let r = b5.step(&f5, "method", json!({"method": "otp"})).await;
    assert_eq!(r.json()["state"], "otp", "{}", r.body);
    let r = answer_raw(&fx, &q5, "approve", json!({}), None).await;
    assert_problem(&r, 409, "request_cancelled");

    // An unknown request.
    let fake = json!({"id": "no-such-request", "rp": "x", "verification_code": "x", "text": "x"});
    let r = answer_raw(&fx, &fake, "approve", json!({}), None).await;
    assert_problem(&r, 404, "request_unknown");

    // A deactivated app: its answers are refused.
    let (_b6, _c6, _s6, _f6) = fx.start_app_login(&[]).await;
    let q6 = pending(&fx).await.remove(0);
    fx.app_ok(&["deactivate"]);
    let r = answer_raw(&fx, &q6, "approve", json!({}), None).await;
    assert_problem(&r, 403, "app_deactivated");

    let audit = fx.segl.audit();
    let reasons: Vec<&str> = audit
        .iter()
        .filter(|e| e["event"] == "app.answer_refused")
        .filter_map(|e| e["data"]["reason"].as_str())
        .collect();
    for reason in [
        "already_answered",
        "bad_signature",
        "malformed_signature",
        "malformed_answer",
        "expired",
        "cancelled",
        "unknown_request",
        "device_inactive",
    ] {
        assert!(
            reasons.contains(&reason),
            "no refusal for {reason}: {reasons:?}"
        );
    }
    assert_eq!(
        fx.segl.audit_count("app.approved"),
        1,
        "one of the racing two"
    );
    fx.segl.audit_ok();
}

/// Decodes the QR code in an SVG drawn by segl (the `qrcode` crate's rectangles), with an
/// independent decoder (`rqrr`).
fn decode_qr(svg: &str) -> String {
    let attr = |name: &str| -> usize {
        let i = svg.find(&format!(" {name}=\"")).expect("svg size") + name.len() + 3;
        svg[i..]
            .split('"')
            .next()
            .unwrap()
            .parse()
            .expect("svg size is a number")
    };
    let (w, h) = (attr("width"), attr("height"));
    let mut img = vec![255u8; w * h];
    let d = svg
        .split(" d=\"")
        .nth(1)
        .expect("a path")
        .split('"')
        .next()
        .unwrap();
    for rect in d.split('M').skip(1) {
        // "{left} {top}h{width}v{height}H{left}V{top}"
        let nums: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let (l, t, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
        for y in t..t + rh {
            for x in l..l + rw {
                img[y * w + x] = 0;
            }
        }
    }
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| img[y * w + x]);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

async fn the_animated_qr_code_is_fresh_for_seconds_only(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let (mut b, _client, _start, flow) = fx.start_app_login(&[]).await;
    let qr_url = flow["app"]["qr_url"].as_str().unwrap().to_string();
    let fx = &fx;
    let scan = |qr: String| async move {
        signed(
            fx,
            "POST",
            "/api/v1/app/scan",
            json!({"qr": qr}).to_string().as_bytes(),
        )
        .await
    };
    let first = decode_qr(&b.get(&qr_url).await.body);
    let parts: Vec<&str> = first.split('.').collect();
    assert_eq!(parts.len(), 4, "{first}");
    assert_eq!(parts[0], "segl-qr");
    // The code changes from second to second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = decode_qr(&b.get(&qr_url).await.body);
    assert_ne!(first, second, "the QR code is animated");

    // A forged code: refused.
    let mut forged = second.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_problem(&scan(forged).await, 400, "malformed_qr");
    assert_problem(&scan("segl-qr.x".into()).await, 400, "malformed_qr");

    // A photographed code relayed later: stale.
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    assert_problem(&scan(first).await, 400, "qr_stale");

    // The code shown now works: the app gets the request and approves it.
    let fresh = decode_qr(&b.get(&qr_url).await.body);
    let r = scan(fresh.clone()).await;
    r.expect_status(200);
    let q = r.json();
    assert_eq!(
        q["verification_code"], flow["app"]["verification_code"],
        "{q}"
    );
    let a = fx.app_ok(&["approve", "--qr", &fresh]);
    assert_eq!(a["result"]["state"], "approved", "{a}");
    let r = collect(&mut b, &flow).await;
    r.expect_status(200);
    assert_eq!(r.json()["state"], "done");
    // Once answered the code shows nothing more.
    let r = b.get(&qr_url).await;
    assert_problem(&r, 409, "no_app_request");
}

async fn an_app_gets_at_most_three_requests_at_once(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let mut flows = Vec::new();
    for _ in 0..4 {
        flows.push(fx.start_app_login(&[]).await);
    }
    // The fourth page looks like the others, but its request never reached the app.
    let codes: Vec<&Value> = flows
        .iter()
        .map(|f| &f.3["app"]["verification_code"])
        .collect();
    assert!(codes.iter().all(|c| c.is_string()), "{codes:?}");
    let waiting = pending(&fx).await;
    assert_eq!(waiting.len(), 3, "{waiting:?}");
    assert_eq!(fx.segl.audit_count("app.request_suppressed"), 1);
    // Answering one makes room again.
    let r = answer_raw(&fx, &waiting[0], "deny", json!({}), None).await;
    r.expect_status(200);
    let _fifth = fx.start_app_login(&[]).await;
    assert_eq!(pending(&fx).await.len(), 3);
    fx.segl.audit_ok();
}
