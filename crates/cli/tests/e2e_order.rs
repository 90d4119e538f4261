//! Ordering an eID through the public API (`/api/v1/orders`), support's CLI (`segl order`)
//! and the guardian's page: an adult with a matching passport MRZ is approved at once and
//! activates with the codes sent by SMS and email; a manual check waits in support's queue
//! and a code device order goes by letter (a PDF in the print folder); a minor's order
//! waits for the guardian named in it, who logs in with their own eID; and every bad input
//! (wrong MRZ check digit, mismatched birth date, under 13, minor without guardian, a
//! maintenance window, wrong or locked codes) is refused precisely and stores nothing.

#[macro_use]
mod common;

use common::*;
use serde_json::{Value, json};

backend_tests!(
    an_adult_with_a_passport_orders_and_activates,
    bad_orders_are_refused_and_store_nothing,
    support_reviews_and_a_code_device_goes_by_letter,
    a_guardian_approves_a_minors_order,
    the_order_pages_work_without_javascript,
);

async fn an_adult_with_a_passport_orders_and_activates(backend: Backend) {
    let segl = Segl::new(backend);
    let server = Server::start(&segl, &[]);
    let nin = nin_born(1990, 3, 14, 0);
    let mrz = passport("NORDMANN", "KARI", "900314", "341231", &nin);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Kari Nordmann", json!({"mrz": mrz})),
    )
    .await;
    r.expect_status(201);
    let v = r.json();
    assert_eq!(v["state"], "approved", "{v}");
    let number = v["number"].as_str().unwrap().to_string();
    assert_eq!(number.len(), 12);

    let (sms, email) = sms_email_codes(&segl, 0);
    assert_ne!(sms, email);
    let st = get_json(&server, &format!("/api/v1/orders/{number}")).await;
    st.expect_status(200);
    assert_eq!(st.json()["state"], "approved");
    assert!(
        st.json().get("name").is_none(),
        "no personal data: {}",
        st.json()
    );

    let path = format!("/api/v1/orders/{number}/activate");
    let body = |code: &str, second: &str, pw: &str, qs: Value| json!({"code": code, "second_code": second, "password": pw, "questions": qs});
    // Bad input first: each refused, nothing changes.
    let r = post_json(
        &server,
        &path,
        &body(&sms, &email, "password1", questions()),
    )
    .await;
    assert_problem(&r, 400, "invalid_password");
    let two = json!(questions().as_array().unwrap()[..2]);
    let r = post_json(&server, &path, &body(&sms, &email, NEW_PASSWORD, two)).await;
    assert_problem(&r, 400, "invalid_questions");
    let r = post_json(
        &server,
        &path,
        &body(&email, &sms, NEW_PASSWORD, questions()),
    )
    .await;
    let p = assert_problem(&r, 400, "wrong_code");
    assert!(
        p["detail"].as_str().unwrap().contains("4 tries left"),
        "{p}"
    );
    let r = post_json(
        &server,
        &path,
        &json!({"code": sms, "password": NEW_PASSWORD, "questions": questions()}),
    )
    .await;
    assert_problem(&r, 400, "wrong_code");

    // The right codes, in lower case with spaces as people type them.
    let typed = sms.to_lowercase().replace('-', " ");
    let r = post_json(
        &server,
        &path,
        &body(&typed, &email, NEW_PASSWORD, questions()),
    )
    .await;
    r.expect_status(200);
    let done = r.json();
    assert_eq!(done["state"], "activated", "{done}");
    let app_code = done["app_activation_code"]
        .as_str()
        .expect("an app activation code");
    assert_eq!(codes_in(app_code).len(), 1, "{done}");

    // Used codes do not work again.
    let r = post_json(
        &server,
        &path,
        &body(&sms, &email, NEW_PASSWORD, questions()),
    )
    .await;
    assert_problem(&r, 409, "order_not_approved");
    let person = segl.person(&nin);
    assert_eq!(person["name"], "Kari Nordmann", "{person}");
    assert_eq!(segl.audit_count("order.activated"), 1);
    assert_eq!(segl.audit_count("order.code_failed"), 2);
    assert_eq!(
        get_json(&server, &format!("/api/v1/orders/{number}"))
            .await
            .json()["state"],
        "activated"
    );
    // A second order for someone with an eID is turned down after the document check.
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Kari Nordmann", json!({"mrz": mrz})),
    )
    .await;
    r.expect_status(201);
    assert_eq!(r.json()["state"], "rejected", "{}", r.json());
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("already has an eID")
    );
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "segl_orders_total 2",
        "segl_orders_approved_total 1",
        "segl_orders_rejected_total 1",
        "segl_orders_activated_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

async fn bad_orders_are_refused_and_store_nothing(backend: Backend) {
    let segl = Segl::new(backend);
    let server = Server::start(&segl, &[]);
    let nin = nin_born(1988, 11, 2, 1);
    let good = passport("HANSEN", "OLA", "881102", "330101", &nin);
    let refused = |r: &Resp, status: u16, code: &str| {
        assert_problem(r, status, code);
    };
    // One changed digit in the birth date: its check digit no longer matches.
    let bad_digit = good.replacen("881102", "881103", 1);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Ola Hansen", json!({"mrz": bad_digit})),
    )
    .await;
    refused(&r, 400, "invalid_mrz");
    assert!(
        r.json()["detail"].as_str().unwrap().contains("birth"),
        "{}",
        r.json()
    );
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Ola Hansen", json!({"mrz": "P<NOR"})),
    )
    .await;
    refused(&r, 400, "invalid_mrz");
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form("15058500028", "Ola Hansen", json!("manual")),
    )
    .await;
    refused(&r, 400, "invalid_nin");
    let mut f = order_form(&nin, "Ola Hansen", json!("manual"));
    f["phone"] = json!("22 22 22 22");
    refused(
        &post_json(&server, "/api/v1/orders", &f).await,
        400,
        "invalid_phone",
    );
    f["phone"] = json!("+4741234567");
    f["delivery"] = json!("letter");
    refused(
        &post_json(&server, "/api/v1/orders", &f).await,
        400,
        "invalid_address",
    );
    let r = Resp::fetch(
        reqwest::Client::new()
            .post(server.url("/api/v1/orders"))
            .header("content-type", "application/json")
            .body(format!("{{\"nin\": \"{}\"}}", "9".repeat(2_000_000))),
        "oversize".into(),
    )
    .await;
    r.expect_status(413);
    let r = Resp::fetch(
        reqwest::Client::new()
            .post(server.url("/api/v1/orders"))
            .header("content-type", "application/json")
            .body("{\"nin\": 1"),
        "broken JSON".into(),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400);

    // Under 13: refused, whatever the document. 13 to 17 without a guardian: refused.
    let y = this_year();
    let child = nin_born(y - 10, 1, 1, 0);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&child, "Emma Hansen", json!("manual")),
    )
    .await;
    refused(&r, 400, "too_young");
    let minor = nin_born(y - 16, 1, 1, 0);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&minor, "Emma Hansen", json!("manual")),
    )
    .await;
    refused(&r, 400, "guardian_required");
    let mut f = order_form(&minor, "Emma Hansen", json!("manual"));
    f["guardian_nin"] = json!(nin_born(y - 15, 6, 1, 0));
    refused(
        &post_json(&server, "/api/v1/orders", &f).await,
        400,
        "invalid_guardian",
    );

    assert_eq!(
        segl.json(&["order", "list", "--json"]),
        json!([]),
        "nothing stored"
    );
    assert!(outbox(&segl, 0).is_empty());

    // A document that does not fit: rejected with the reason, and the person tries again.
    let other_birth = passport("HANSEN", "OLA", "881201", "330101", &nin);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Ola Hansen", json!({"mrz": other_birth})),
    )
    .await;
    r.expect_status(201);
    assert_eq!(r.json()["state"], "rejected");
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("date of birth"),
        "{}",
        r.json()
    );
    let wrong_name = passport("HANSEN", "PER", "881102", "330101", &nin);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Ola Hansen", json!({"mrz": wrong_name})),
    )
    .await;
    assert_eq!(r.json()["state"], "rejected");
    assert!(
        r.json()["reason"].as_str().unwrap().contains("name"),
        "{}",
        r.json()
    );

    // A maintenance window on app orders closes them, not code-device orders.
    let w = segl.json(&[
        "maintenance",
        "add",
        "--channel",
        "order-app",
        "--from",
        "now",
        "--to",
        "2099-01-01T00:00:00Z",
        "--message",
        "Bestilling av app er stengt i kveld.",
        "--json",
    ]);
    let r = post_json(
        &server,
        "/api/v1/orders",
        &order_form(&nin, "Ola Hansen", json!({"mrz": good.clone()})),
    )
    .await;
    let p = assert_problem(&r, 503, "maintenance");
    assert!(
        p["detail"].as_str().unwrap().contains("stengt i kveld"),
        "{p}"
    );
    let mut card = order_form(&nin, "Ola Hansen", json!("manual"));
    card["kind"] = json!("card");
    let r = post_json(&server, "/api/v1/orders", &card).await;
    r.expect_status(201);
    assert_eq!(r.json()["state"], "pending_review");
    // One open order per person.
    let r = post_json(&server, "/api/v1/orders", &card).await;
    refused(&r, 409, "order_open");
    segl.ok(&["maintenance", "remove", w["id"].as_str().unwrap()]);

    // Order numbers: a typo is caught, an unknown number is not found.
    refused(
        &get_json(&server, "/api/v1/orders/123456789012").await,
        400,
        "invalid_order_number",
    );
    refused(
        &get_json(&server, "/api/v1/orders/1234").await,
        400,
        "invalid_order_number",
    );
    let unknown = "000000000000";
    refused(
        &get_json(&server, &format!("/api/v1/orders/{unknown}")).await,
        404,
        "order_not_found",
    );
    let out = segl.cmd(&["order", "show", "1234 5678 9013"]);
    assert_input_error(&out, "order show with a typo", "check digit");
    let out = segl.cmd(&["order", "list", "--state", "lost"]);
    assert_input_error(&out, "order list --state lost", "--state");
}

async fn support_reviews_and_a_code_device_goes_by_letter(backend: Backend) {
    let segl = Segl::new(backend);
    let server = Server::start(&segl, &[]);
    segl.import_tokens("hotp-plain.pskcxml");
    let nin = nin_born(1975, 8, 20, 2);
    let mut form = order_form(&nin, "Per Olsen", json!("manual"));
    form["kind"] = json!("card");
    form["delivery"] = json!("letter");
    form["address"] = json!(["Storgata 1", "0155 Oslo"]);
    let r = post_json(&server, "/api/v1/orders", &form).await;
    r.expect_status(201);
    assert_eq!(r.json()["state"], "pending_review");
    let first = r.json()["number"].as_str().unwrap().to_string();

    let queue = segl.json(&["order", "list", "--state", "pending_review", "--json"]);
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    assert_eq!(queue[0]["number"], first.as_str());
    assert_eq!(queue[0]["name"], "Per Olsen");
    let out = segl.cmd(&["order", "review", &first, "--by", "agent-1"]);
    assert_input_error(&out, "review without a decision", "--approve");
    let rejected = segl.json(&[
        "order",
        "review",
        &first,
        "--reject",
        "the photo does not match",
        "--by",
        "agent-1",
        "--json",
    ]);
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["reason"], "the photo does not match");
    let out = segl.cmd(&["order", "review", &first, "--approve", "--by", "agent-1"]);
    assert_input_error(&out, "deciding twice", "order_not_open");

    // The person tries again; support approves; a code device is reserved and a letter
    // with the code is written for the print shop.
    let r = post_json(&server, "/api/v1/orders", &form).await;
    let number = r.json()["number"].as_str().unwrap().to_string();
    let approved = segl.json(&[
        "order",
        "review",
        &number,
        "--approve",
        "--by",
        "agent-2",
        "--json",
    ]);
    assert_eq!(approved["state"], "approved", "{approved}");
    let serial = approved["code_device"]
        .as_str()
        .expect("a reserved device")
        .to_string();
    let letter_code = |n: usize| {
        let dir = segl.data_dir().join("print");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut pdfs: Vec<_> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pdf"))
                .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
                .collect();
            if pdfs.len() >= n {
                pdfs.sort();
                let pdf = std::fs::read(&pdfs[n - 1].1).unwrap();
                assert!(pdf.starts_with(b"%PDF-"), "a PDF");
                let text = pdf_text(&pdf);
                assert!(text.contains("Storgata 1"), "the address is on the letter");
                let c = codes_in(&text);
                assert_eq!(c.len(), 1, "one code on the letter");
                return c[0].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no letter {n} in {}",
                dir.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let old_code = letter_code(1);
    let shown = segl.json(&["order", "show", &number, "--json"]);
    assert_eq!(shown["messages"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["messages"][0]["channel"], "letter", "{shown}");

    // The letter is lost: support sends new codes, the old one stops working.
    segl.ok(&["order", "resend-codes", &number, "--by", "agent-2"]);
    let new_code = letter_code(2);
    assert_ne!(old_code, new_code);
    let path = format!("/api/v1/orders/{number}/activate");
    let body =
        |code: &str| json!({"code": code, "password": NEW_PASSWORD, "questions": questions()});
    assert_problem(
        &post_json(&server, &path, &body(&old_code)).await,
        400,
        "wrong_code",
    );
    let r = post_json(&server, &path, &body(&new_code)).await;
    r.expect_status(200);
    assert_eq!(r.json()["code_device"], serial.as_str(), "{}", r.json());
    assert_eq!(
        segl.token(&serial)["assigned"],
        true,
        "{}",
        segl.token(&serial)
    );
    let mine = segl.json(&["token", "list", "--nin", &nin, "--json"]);
    assert_eq!(mine[0]["serial"], serial.as_str(), "{mine}");
    assert_eq!(segl.audit_count("order.codes_resent"), 1);
}

async fn a_guardian_approves_a_minors_order(backend: Backend) {
    // The guardian holds an eID (the fixture's person, code device and password).
    let mut fx = Fixture::new(backend, &[]);
    let y = this_year();
    let minor = nin_born(y - 15, 2, 2, 3);
    let mrz = passport(
        "NORDMANN",
        "ELI",
        &format!("{:02}0202", (y - 15) % 100),
        "341231",
        &minor,
    );
    let mut form = order_form(&minor, "Eli Nordmann", json!({"mrz": mrz}));
    form["guardian_nin"] = json!(NIN);
    let r = post_json(&fx.server, "/api/v1/orders", &form).await;
    r.expect_status(201);
    assert_eq!(r.json()["state"], "awaiting_guardian", "{}", r.json());
    let number = r.json()["number"].as_str().unwrap().to_string();

    // An order naming someone without an eID waits: nobody can log in as that guardian.
    let mut other = order_form(&nin_born(y - 14, 3, 3, 0), "Siri Nordmann", json!("manual"));
    other["guardian_nin"] = json!(nin_born(1970, 1, 1, 0));
    let r = post_json(&fx.server, "/api/v1/orders", &other).await;
    assert_eq!(r.json()["state"], "awaiting_guardian");
    let orphan = r.json()["number"].as_str().unwrap().to_string();
    // That guardian cannot log in to approve: no credential of theirs is accepted.
    let mut nb = Browser::new(&fx.server);
    let flow = nb.open_flow("/order/guardian", "the guardian page").await;
    let flow = nb.identify(&flow, &nin_born(1970, 1, 1, 0)).await;
    let r = nb.step(&flow, "otp", json!({"otp": "123456"})).await;
    assert_problem(&r, 401, "wrong_otp");
    assert!(!nb.cookies.contains_key("segl_portal"));

    // The guardian's page asks for a login first, then lists the order.
    let mut b = Browser::new(&fx.server);
    let flow = b.open_flow("/order/guardian", "the guardian page").await;
    let flow = b.identify(&flow, NIN).await;
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    assert!(
        done["redirect_to"]
            .as_str()
            .unwrap()
            .ends_with("/order/guardian"),
        "{done}"
    );
    assert!(b.cookies.contains_key("segl_portal"), "a portal session");
    let page = b.get("/order/guardian").await;
    page.expect_status(200);
    let html = page.body.clone();
    assert!(html.contains("Eli Nordmann"), "{html}");
    assert!(
        !html.contains("Siri Nordmann"),
        "only this guardian's orders"
    );
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token")
        .to_string();

    // Without the CSRF token: refused, nothing changes.
    let form_body = |csrf: &str, decision: &str| {
        format!("csrf={csrf}&decision={decision}&reason=").into_bytes()
    };
    let urlenc = "application/x-www-form-urlencoded";
    let r = b
        .post_raw(
            &format!("/order/guardian/{number}"),
            urlenc,
            form_body("x", "approve"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    // Not this guardian's order.
    let r = b
        .post_raw(
            &format!("/order/guardian/{orphan}"),
            urlenc,
            form_body(&csrf, "approve"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
    assert!(r.body.contains("does not name you"), "{}", r.body);
    assert_eq!(
        get_json(&fx.server, &format!("/api/v1/orders/{number}"))
            .await
            .json()["state"],
        "awaiting_guardian"
    );

    let r = b
        .post_raw(
            &format!("/order/guardian/{number}"),
            urlenc,
            form_body(&csrf, "approve"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 303, "{}", r.body);
    let v = get_json(&fx.server, &format!("/api/v1/orders/{number}"))
        .await
        .json();
    assert_eq!(v["state"], "approved", "{v}");
    assert_eq!(fx.segl.audit_count("order.guardian_approved"), 1);
    let (sms, email) = sms_email_codes(&fx.segl, 0);
    assert!(!sms.is_empty() && !email.is_empty());
    // Deciding twice is refused.
    let r = b
        .post_raw(
            &format!("/order/guardian/{number}"),
            urlenc,
            form_body(&csrf, "refuse"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 409);
    let _ = &mut fx;
}

fn hidden(html: &str, name: &str) -> String {
    html.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        .to_string()
}

fn urlencoded(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

async fn the_order_pages_work_without_javascript(backend: Backend) {
    let segl = Segl::new(backend);
    let server = Server::start(&segl, &[]);
    let mut b = Browser::new(&server);
    let page = b.get("/order").await;
    page.expect_status(200);
    assert!(b.cookies.contains_key("segl_form"), "the form's cookie");
    let csrf = hidden(&page.body, "csrf");
    let enc = "application/x-www-form-urlencoded";
    let nin = nin_born(1991, 7, 7, 0);
    let mrz = passport("BERG", "SIV", "910707", "341231", &nin);
    let fields = |csrf: &str, nin: &str| {
        urlencoded(&[
            ("csrf", csrf),
            ("nin", nin),
            ("name", "Siv Berg"),
            ("phone", "+4791234567"),
            ("email", "siv@example.no"),
            ("kind", "app"),
            ("delivery", "sms_email"),
            ("evidence", "mrz"),
            ("mrz", &mrz),
        ])
    };
    // Without the form's token: refused, nothing stored.
    let r = b
        .post_raw("/order", enc, fields("forged", &nin), None)
        .await;
    assert_eq!(r.status.as_u16(), 403);
    // A bad number: the field is named and the values come back.
    let r = b
        .post_raw("/order", enc, fields(&csrf, "15058500028"), None)
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.body.contains("id=\"nin-error\""), "{}", r.body);
    assert!(r.body.contains("Siv Berg"), "the name is kept");
    assert!(
        r.body.contains("Fødselsnummeret er ikke gyldig."),
        "in the page's language: {}",
        r.body
    );
    assert_eq!(segl.json(&["order", "list", "--json"]), json!([]));
    let r = b.post_raw("/order", enc, fields(&csrf, &nin), None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert!(r.body.contains("data-state=\"approved\""), "{}", r.body);
    let number: String = r
        .body
        .split("id=\"order-number\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .replace(' ', "");
    let (sms, email) = sms_email_codes(&segl, 0);

    let page = b.get("/order/activate").await;
    page.expect_status(200);
    let csrf = hidden(&page.body, "csrf");
    let activate = |code: &str, pw2: &str| {
        urlencoded(&[
            ("csrf", &csrf),
            ("number", &number),
            ("code", code),
            ("second_code", &email),
            ("password", NEW_PASSWORD),
            ("password2", pw2),
            ("q0", "What was the name of your first pet?"),
            ("a0", "Pusur"),
            ("q1", "In which town did you go to school?"),
            ("a1", "Gjøvik"),
            ("q2", "What is your favourite dish?"),
            ("a2", "Fårikål"),
        ])
    };
    let r = b
        .post_raw("/order/activate", enc, activate(&sms, "other"), None)
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.body.contains("password2-error"), "{}", r.body);
    let r = b
        .post_raw("/order/activate", enc, activate(&email, NEW_PASSWORD), None)
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert!(r.body.contains("id=\"code-error\""), "{}", r.body);
    let r = b
        .post_raw("/order/activate", enc, activate(&sms, NEW_PASSWORD), None)
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    let shown = r.body.split("id=\"activation-result\">").nth(1).unwrap();
    assert_eq!(
        codes_in(shown).len(),
        1,
        "the app's activation code: {}",
        r.body
    );
}
