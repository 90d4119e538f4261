//! Self-service without a working eID, through the pages and the flow API: blocking one's
//! own eID with one remaining credential (the code device, or the password alone), and a
//! forgotten password reset with the code device and the control questions. Each with its
//! error paths: wrong control answers, a missing reason, a wrong CSRF token, a page used
//! twice, passwords that differ or are too weak.

#[macro_use]
mod common;

use common::*;
use serde_json::{Value, json};

backend_tests!(
    a_person_blocks_their_own_eid_with_one_credential,
    a_forgotten_password_is_reset_with_the_code_device_and_control_questions,
    the_app_with_its_pin_alone_resets_a_password,
);

const URLENC: &str = "application/x-www-form-urlencoded";

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the page")
        .to_string()
}

/// Starts `path`'s flow and identifies; returns the flow in `choose_method`.
async fn start(b: &mut Browser, path: &str, nin: &str) -> Value {
    let flow = b.open_flow(path, path).await;
    let r = b.step(&flow, "identify", json!({ "nin": nin })).await;
    r.expect_status(200);
    let v = r.json();
    assert_eq!(v["state"], "choose_method", "{v}");
    v
}

async fn a_person_blocks_their_own_eid_with_one_credential(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    // The phone is lost; the code device is at hand.
    let mut b = Browser::new(&fx.server);
    let flow = start(&mut b, "/block", NIN).await;
    assert_eq!(flow["methods"], json!(["otp", "app", "password"]), "{flow}");
    let r = b.step(&flow, "method", json!({"method": "otp"})).await;
    let flow = r.json();
    let r = b
        .step(&flow, "otp", json!({"otp": fx.device.next_code()}))
        .await;
    r.expect_status(200);
    let done = r.json();
    assert_eq!(done["state"], "done", "one credential is enough: {done}");
    let page_url = done["redirect_to"].as_str().unwrap().to_string();
    assert!(page_url.starts_with("/block/"), "{done}");
    assert_eq!(
        fx.segl.audit_count("person.blocked"),
        0,
        "nothing blocked yet"
    );

    let page = b.get(&page_url).await;
    page.expect_status(200);
    assert!(
        page.body.contains(NAME),
        "the page names whose eID it blocks"
    );
    let csrf = csrf_of(&page.body);
    // Another browser cannot use the page.
    let mut other = Browser::new(&fx.server);
    assert_ne!(other.get(&page_url).await.status.as_u16(), 200);
    // No reason: the field is named; a wrong token: refused. Nothing happens.
    let r = b
        .post_raw(&page_url, URLENC, form(&[("csrf_token", &csrf)]), None)
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
    assert!(r.body.contains("reason-error"), "{}", r.body);
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            form(&[("csrf_token", "nope"), ("reason", "lost")]),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            form(&[("csrf_token", &csrf), ("reason", "deceased")]),
            None,
        )
        .await;
    assert_eq!(
        r.status.as_u16(),
        400,
        "self-service does not declare a death"
    );
    assert_eq!(fx.segl.audit_count("person.blocked"), 0);

    let r = b
        .post_raw(
            &page_url,
            URLENC,
            form(&[("csrf_token", &csrf), ("reason", "lost")]),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "person.blocked")
        .expect("an audit entry");
    assert_eq!(entry["data"]["by"], "self-service", "{entry}");
    assert_eq!(entry["data"]["reason"], "lost", "{entry}");
    let certs = fx.segl.json(&["cert", "list", "--nin", NIN, "--json"]);
    assert!(
        certs
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "revoked"),
        "{certs}"
    );
    // The page works once; the eID no longer logs in.
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            form(&[("csrf_token", &csrf), ("reason", "lost")]),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 410);
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let mut b2 = Browser::new(&fx.server);
    let flow = b2
        .start_flow(authorize(&client, &["profile"], &[]).url.as_str())
        .await;
    let flow = b2.identify(&flow, NIN).await;
    let r = b2
        .step(&flow, "otp", json!({"otp": fx.device.next_code()}))
        .await;
    assert_problem(&r, 423, "device_blocked");

    // The way back is a new order: a new identity check and a new activation lift the
    // block, with a new code device (the blocked one stays blocked).
    let mrz = passport("NORDMANN", "KARI", "850515", "341231", NIN);
    let mut order = order_form(NIN, NAME, json!({"mrz": mrz}));
    order["kind"] = json!("card");
    let before = outbox(&fx.segl, 0).len();
    let r = post_json(&fx.server, "/api/v1/orders", &order).await;
    assert_eq!(r.json()["state"], "approved", "{}", r.json());
    let number = r.json()["number"].as_str().unwrap().to_string();
    let (sms, email) = sms_email_codes(&fx.segl, before);
    let r = post_json(
        &fx.server,
        &format!("/api/v1/orders/{number}/activate"),
        &json!({"code": sms, "second_code": email, "password": NEW_PASSWORD, "questions": questions()}),
    )
    .await;
    r.expect_status(200);
    let serial = r.json()["code_device"].as_str().unwrap().to_string();
    assert_ne!(serial, SERIAL, "a new device");
    // Support finds the person by the order's number; the order's phone and email are
    // now the person's.
    let shown = fx
        .segl
        .json(&["person", "show", "--order", &number, "--json"]);
    assert_eq!(shown["name"], NAME, "{shown}");
    assert_eq!(shown["phone"], "+4741234567", "{shown}");
    assert_eq!(shown["email"], "kari@example.no", "{shown}");
    let out = fx
        .segl
        .cmd(&["person", "show", "--order", "1234 5678 9013"]);
    assert_input_error(&out, "person show --order with a typo", "check digit");
    let certs = fx.segl.json(&["cert", "list", "--nin", NIN, "--json"]);
    // (Issued in the same second as the block's revocation: the list's order between them
    // is not defined.)
    let valid = certs
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "valid");
    assert_eq!(valid.count(), 1, "a new certificate: {certs}");
    assert!(r.json().get("person_id").is_none(), "{}", r.json());
    let mut device = Hotp::new(&serial);
    let mut b4 = Browser::new(&fx.server);
    let flow = b4
        .start_flow(authorize(&client, &["profile"], &[]).url.as_str())
        .await;
    let flow = b4.identify(&flow, NIN).await;
    let flow = b4.otp_ok(&flow, &device.next_code()).await;
    b4.password_ok(&flow, NEW_PASSWORD).await;

    // Someone who lost both phone and code device blocks with the password alone.
    let nin2 = nin_born(1979, 9, 9, 0);
    fx.segl.add_person(&nin2, "Lise Berg", PASSWORD);
    let mut b = Browser::new(&fx.server);
    let flow = start(&mut b, "/block", &nin2).await;
    let flow = b
        .step(&flow, "method", json!({"method": "password"}))
        .await
        .json();
    assert_eq!(flow["state"], "password", "{flow}");
    let r = b
        .step(&flow, "password", json!({"password": "not-it-at-all"}))
        .await;
    assert_problem(&r, 401, "wrong_password");
    let flow = b.flow(flow["id"].as_str().unwrap()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    let page_url = done["redirect_to"].as_str().unwrap().to_string();
    let csrf = csrf_of(&b.get(&page_url).await.body);
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            form(&[("csrf_token", &csrf), ("reason", "stolen")]),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(fx.segl.audit_count("person.blocked"), 2);
    // A login flow never offers the password alone.
    let mut b3 = Browser::new(&fx.server);
    let flow = b3
        .start_flow(authorize(&client, &["profile"], &[]).url.as_str())
        .await;
    let r = b3.step(&flow, "identify", json!({"nin": NIN})).await;
    let v = r.json();
    let r = b3.step(&v, "method", json!({"method": "password"})).await;
    assert_problem(&r, 400, "unsupported_method");
}

async fn a_forgotten_password_is_reset_with_the_code_device_and_control_questions(
    backend: Backend,
) {
    let segl = Segl::new(backend);
    let server = Server::start(&segl, &[]);
    segl.import_tokens("hotp-plain.pskcxml");
    let nin = nin_born(1982, 4, 1, 0);
    let serial = activated_card_holder(&segl, &server, &nin, "Strand", "Tove").await;
    let mut device = Hotp::new(&serial);

    let mut b = Browser::new(&server);
    let flow = start(&mut b, "/password/reset", &nin).await;
    assert_eq!(flow["methods"], json!(["otp", "app"]), "{flow}");
    let flow = b
        .step(&flow, "method", json!({"method": "otp"}))
        .await
        .json();
    let r = b
        .step(&flow, "otp", json!({"otp": device.next_code()}))
        .await;
    let flow = r.json();
    assert_eq!(flow["state"], "questions", "{flow}");
    let asked: Vec<&str> = flow["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap())
        .collect();
    assert_eq!(asked[0], "What was the name of your first pet?", "{flow}");
    assert_eq!(asked.len(), 3);

    // One wrong answer: refused without saying which.
    let r = b
        .step(
            &flow,
            "answers",
            json!({"answers": ["Pusur", "Oslo", "Raspeballer"]}),
        )
        .await;
    let p = assert_problem(&r, 401, "wrong_answers");
    assert!(!p.to_string().contains("Oslo"), "{p}");
    assert_eq!(segl.audit_count("password_reset.wrong_answers"), 1);
    // Case and spaces do not matter.
    let flow = b.flow(flow["id"].as_str().unwrap()).await;
    let r = b
        .step(
            &flow,
            "answers",
            json!({"answers": ["pusur", "HØNEFOSS", " raspeballer  "]}),
        )
        .await;
    r.expect_status(200);
    let done = r.json();
    assert_eq!(done["state"], "done", "{done}");
    let page_url = done["redirect_to"].as_str().unwrap().to_string();
    assert!(page_url.starts_with("/password/reset/"), "{done}");

    let page = b.get(&page_url).await;
    page.expect_status(200);
    let csrf = csrf_of(&page.body);
    let post =
        |pw: &str, pw2: &str| form(&[("csrf_token", &csrf), ("password", pw), ("password2", pw2)]);
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            post("Ny-Sommer-Fjell-2031", "Ny-Sommer-Fjell-2032"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.body.contains("password2-error"), "{}", r.body);
    let r = b
        .post_raw(&page_url, URLENC, post("password", "password"), None)
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.body.contains("password-error"), "{}", r.body);
    let before = outbox(&segl, 0).len();
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            post("Ny-Sommer-Fjell-2031", "Ny-Sommer-Fjell-2031"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(segl.audit_count("password.reset"), 1);
    let msgs = outbox(&segl, before + 2);
    assert!(
        msgs.iter()
            .skip(before)
            .any(|m| m["kind"] == "password.changed" && m["channel"] == "email"),
        "an email says the password changed: {msgs:?}"
    );
    // Used once.
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            post("Ny-Vinter-Fjell-2032", "Ny-Vinter-Fjell-2032"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 410);

    // The new password logs in (the guardian page's login: code device and password);
    // the old one does not.
    let mut b = Browser::new(&server);
    let flow = b.open_flow("/order/guardian", "portal").await;
    let flow = b.identify(&flow, &nin).await;
    let flow = b.otp_ok(&flow, &device.next_code()).await;
    let r = b
        .step(&flow, "password", json!({"password": NEW_PASSWORD}))
        .await;
    assert_problem(&r, 401, "wrong_password");
    let flow = b.flow(flow["id"].as_str().unwrap()).await;
    b.password_ok(&flow, "Ny-Sommer-Fjell-2031").await;
}

/// `segl app approve` of the one waiting request, with the app's PIN on stdin.
fn approve_in_app(fx: &AppFx, uv: &str) -> Value {
    let args = [
        "app",
        "approve",
        "--wait",
        "20",
        "--uv",
        uv,
        "--vault",
        fx.app.vault(),
        "--json",
    ];
    let out = fx.segl.cmd_stdin(&args, Some(&format!("{APP_PIN}\n")));
    assert_success(&out, &args);
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn the_app_with_its_pin_alone_resets_a_password(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    // Without user verification the control questions follow; this person set none, so
    // no answers are right (and the flow does not say that there are none to answer).
    let mut b = Browser::new(&fx.server);
    let flow = start(&mut b, "/password/reset", APP_NIN).await;
    let flow = b
        .step(&flow, "method", json!({"method": "app"}))
        .await
        .json();
    assert_eq!(flow["state"], "app_pending", "{flow}");
    approve_in_app(&fx, "none");
    let r = b.step(&flow, "app", json!({})).await;
    let flow = r.json();
    assert_eq!(flow["state"], "questions", "{flow}");
    assert_eq!(flow["questions"], json!([]), "{flow}");
    let r = b.step(&flow, "answers", json!({"answers": []})).await;
    assert_problem(&r, 401, "wrong_answers");

    // With the PIN: done at once, and the new password is set.
    let mut b = Browser::new(&fx.server);
    let flow = start(&mut b, "/password/reset", APP_NIN).await;
    let flow = b
        .step(&flow, "method", json!({"method": "app"}))
        .await
        .json();
    let answered = approve_in_app(&fx, "pin");
    assert_eq!(answered["result"]["state"], "approved", "{answered}");
    let r = b.step(&flow, "app", json!({})).await;
    let done = r.json();
    assert_eq!(done["state"], "done", "{done}");
    let page_url = done["redirect_to"].as_str().unwrap().to_string();
    let csrf = csrf_of(&b.get(&page_url).await.body);
    let r = b
        .post_raw(
            &page_url,
            URLENC,
            form(&[
                ("csrf_token", &csrf),
                ("password", "Appen-Er-Nok-2027"),
                ("password2", "Appen-Er-Nok-2027"),
            ]),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "password.reset")
        .expect("audited");
    assert_eq!(
        entry["data"]["amr"],
        json!(["swk", "pin", "mfa"]),
        "{entry}"
    );
}
