//! My page (`/my`, issue 5) as a browser without JavaScript uses it: a portal login with
//! code device and password, the page's credentials, history and contact information,
//! forms with CSRF tokens that post and redirect back, a change of email confirmed by the
//! code from the outbox (wrong, used and expired codes refused), certificate renewal
//! (refused far from expiry, accepted near it, also in a maintenance window), a block
//! that ends the session and later logins, and logout. The single sign-on session of an
//! ordinary OIDC login does not open My page.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

backend_tests!(
    my_page_shows_the_eid_and_changes_email_with_a_code,
    renewal_near_expiry_and_a_block_from_my_page,
    the_app_is_deactivated_from_my_page,
);

const PHONE: &str = "+4791234567";
const EMAIL: &str = "kari@example.no";
const RP_NAME: &str = "Fjordbanken";

/// A server with Kari (phone, email, password, the code device [`SERIAL`]) and the
/// client [`RP_NAME`].
struct MyFx {
    segl: Segl,
    server: Server,
    rp: Rp,
    device: Hotp,
}

fn setup(backend: Backend, config: Option<&str>) -> MyFx {
    let segl = Segl::new(backend);
    if let Some(c) = config {
        segl.write_config(c);
    }
    let server = Server::start(&segl, &[]);
    segl.json_stdin(
        &[
            "person",
            "add",
            "--nin",
            NIN,
            "--name",
            NAME,
            "--phone",
            PHONE,
            "--email",
            EMAIL,
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    segl.import_tokens("hotp-plain.pskcxml");
    segl.assign(SERIAL, NIN);
    let rp = segl.add_rp(RP_NAME, REDIRECT_URI, &[]);
    MyFx {
        segl,
        server,
        rp,
        device: Hotp::new(SERIAL),
    }
}

/// The value of a hidden input in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in page: {page}"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

async fn post_form(b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Resp {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    b.post_raw(
        path,
        "application/x-www-form-urlencoded",
        body.into_bytes(),
        None,
    )
    .await
}

/// Logs in to My page: `GET /my` starts a portal login, the flow API takes the code
/// device and the password, and the browser comes back to `/my` with its portal cookie.
/// Returns the page.
async fn my_login(b: &mut Browser, server: &Server, device: &mut Hotp) -> Resp {
    my_login_as(b, server, device, NIN).await
}

async fn my_login_as(b: &mut Browser, server: &Server, device: &mut Hotp, nin: &str) -> Resp {
    let r = b.get("/my").await;
    let id = login_flow_id(&r);
    let flow = b.flow(&id).await;
    let flow = b.identify_choosing(&flow, nin, "otp").await;
    assert_eq!(flow["state"], "otp", "{flow}");
    let flow = b.otp_ok(&flow, &device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    assert_eq!(done["redirect_to"], server.url("/my"), "{done}");
    assert!(
        b.cookies.contains_key("segl_portal"),
        "no portal cookie: {:?}",
        b.cookies
    );
    let page = b.get("/my").await;
    page.expect_status(200);
    page
}

/// The newest outbox message of this kind (waiting up to five seconds for it).
fn message_of(segl: &Segl, kind: &str, to: &str, nth: usize) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let found: Vec<Value> = outbox(segl, 0)
            .into_iter()
            .filter(|m| m["kind"] == kind && m["to"] == to)
            .collect();
        if found.len() >= nth {
            return found[nth - 1].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message {nth} of kind {kind} to {to}: {:?}",
            outbox(segl, 0)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The six-digit code in a message's body.
fn code_in(m: &Value) -> String {
    let body = m["body"].as_str().expect("a body");
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no 6-digit code in {body}"))
        .to_string()
}

fn certs_of(segl: &Segl) -> Vec<Value> {
    match segl.json(&["cert", "list", "--nin", NIN, "--json"]) {
        Value::Array(v) => v,
        other => panic!("cert list: {other}"),
    }
}

async fn my_page_shows_the_eid_and_changes_email_with_a_code(backend: Backend) {
    let mut fx = setup(backend, None);
    let mut b = Browser::new(&fx.server);

    // An ordinary OIDC login: it is in the history, and its session does not open /my.
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &["profile"], &[]);
    b.login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    assert!(b.cookies.contains_key("segl_sid"), "{:?}", b.cookies);
    let r = b.get("/my").await;
    login_flow_id(&r);
    assert!(!b.cookies.contains_key("segl_portal"));

    let page = my_login(&mut b, &fx.server, &mut fx.device).await;
    let body = &page.body;
    assert_eq!(
        page.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    assert!(body.contains("<html lang=\"nb\">"), "{body}");
    assert!(body.contains("<h1>Min side</h1>"), "{body}");
    assert!(body.contains("class=\"skip\" href=\"#main\""), "{body}");
    assert!(body.contains(NAME), "{body}");
    // Credentials: the code device by serial, the password's change time, the certificate.
    assert!(
        body.contains(&format!("<th scope=\"row\" class=\"serial\">{SERIAL}</th>")),
        "{body}"
    );
    assert!(
        body.contains("id=\"password-changed\" datetime=\"20"),
        "{body}"
    );
    assert!(body.contains("Ikke sperret"), "{body}");
    let certs = certs_of(&fx.segl);
    assert_eq!(certs.len(), 1, "{certs:?}");
    let serial = certs[0]["serial"].as_str().unwrap().to_string();
    assert!(body.contains(&serial), "the certificate {serial}: {body}");
    // History: the login at the bank with its name and method, the login to My page.
    let history = &body[body.find("id=\"history\"").expect("a history table")..];
    assert!(history.contains(RP_NAME), "{history}");
    assert!(history.contains("Kodebrikke og passord"), "{history}");
    assert!(history.contains("Innlogging på Min side"), "{history}");
    // Contact information, and no secret anywhere.
    assert!(body.contains(PHONE) && body.contains(EMAIL), "{body}");
    assert!(
        !body.contains(NIN),
        "no national identity number on the page"
    );
    assert!(body.contains("id=\"session-left\""), "{body}");
    for id in ["new-phone", "new-email"] {
        assert!(
            body.contains(&format!("<label for=\"{id}\">")),
            "{id}: {body}"
        );
    }
    let csrf = hidden(body, "csrf_token");
    let entries_before = fx.segl.audit_ok();

    // Without the CSRF token, or with a wrong one: 403, nothing changed, nothing sent.
    for fields in [
        vec![("which", "email"), ("value", "ny@example.no")],
        vec![
            ("csrf_token", "forged"),
            ("which", "email"),
            ("value", "ny@example.no"),
        ],
    ] {
        let r = post_form(&mut b, "/my/contact", &fields).await;
        r.expect_status(403);
        assert!(r.location().is_none());
    }
    for path in [
        "/my/certificate/renew",
        "/my/block/confirm",
        "/my/app/deactivate",
    ] {
        post_form(&mut b, path, &[("reason", "lost")])
            .await
            .expect_status(403);
    }
    assert_eq!(fx.segl.audit_ok(), entries_before, "nothing was audited");
    assert_eq!(fx.segl.person(NIN)["email"], EMAIL);
    assert!(
        outbox(&fx.segl, 0)
            .iter()
            .all(|m| m["kind"] != "contact.code"),
        "no code sent"
    );

    // Bad input: the message by its field, nothing changed.
    let r = post_form(
        &mut b,
        "/my/contact",
        &[
            ("csrf_token", &csrf),
            ("which", "email"),
            ("value", "kari@"),
        ],
    )
    .await;
    r.expect_status(400);
    assert!(r.body.contains("id=\"new-email-error\""), "{}", r.body);
    assert!(
        r.body
            .contains("aria-describedby=\"new-email-hint new-email-error\" aria-invalid=\"true\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("href=\"#new-email\""), "{}", r.body);
    assert!(
        r.body.contains("value=\"kari@\""),
        "typed value kept: {}",
        r.body
    );
    let r = post_form(
        &mut b,
        "/my/contact",
        &[
            ("csrf_token", &csrf),
            ("which", "phone"),
            ("value", "+46 70 123 45 67"),
        ],
    )
    .await;
    r.expect_status(400);
    assert!(r.body.contains("id=\"new-phone-error\""), "{}", r.body);
    assert!(r.body.contains("norsk (+47)"), "{}", r.body);
    let r = post_form(
        &mut b,
        "/my/contact",
        &[("csrf_token", &csrf), ("which", "email"), ("value", EMAIL)],
    )
    .await;
    r.expect_status(409);
    assert!(r.body.contains("allerede registrert"), "{}", r.body);
    assert_eq!(fx.segl.person(NIN)["email"], EMAIL);
    assert_eq!(fx.segl.person(NIN)["phone"], PHONE);

    // A change of email: the code goes to the new address, nothing changes before it.
    let new = "Kari.Ny@Example.NO";
    let new_stored = "Kari.Ny@example.no";
    let r = post_form(
        &mut b,
        "/my/contact",
        &[("csrf_token", &csrf), ("which", "email"), ("value", new)],
    )
    .await;
    r.expect_status(303);
    assert_eq!(
        r.location().as_deref(),
        Some("/my?notice=code_sent#email-code")
    );
    let msg = message_of(&fx.segl, "contact.code", new_stored, 1);
    assert_eq!(msg["channel"], "email", "{msg}");
    let code = code_in(&msg);
    assert_eq!(fx.segl.person(NIN)["email"], EMAIL, "not before the code");
    let page = b.get("/my?notice=code_sent").await;
    assert!(
        page.body.contains("<label for=\"email-code\">"),
        "{}",
        page.body
    );
    assert!(page.body.contains("role=\"status\""), "{}", page.body);

    // A wrong code is refused with the tries left.
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = post_form(
        &mut b,
        "/my/contact/confirm",
        &[("csrf_token", &csrf), ("which", "email"), ("code", &wrong)],
    )
    .await;
    r.expect_status(409);
    assert!(r.body.contains("Feil kode. Forsøk igjen: 4."), "{}", r.body);
    assert!(r.body.contains("id=\"email-code-error\""), "{}", r.body);
    let r = post_form(
        &mut b,
        "/my/contact/confirm",
        &[("csrf_token", &csrf), ("which", "email"), ("code", "12a")],
    )
    .await;
    r.expect_status(400);
    assert!(r.body.contains("Koden har 6 siffer."), "{}", r.body);
    assert_eq!(fx.segl.person(NIN)["email"], EMAIL);

    // The right code applies it; the old address is told.
    let r = post_form(
        &mut b,
        "/my/contact/confirm",
        &[("csrf_token", &csrf), ("which", "email"), ("code", &code)],
    )
    .await;
    r.expect_status(303);
    assert_eq!(
        r.location().as_deref(),
        Some("/my?notice=email_changed#contact")
    );
    assert_eq!(fx.segl.person(NIN)["email"], new_stored);
    let told = message_of(&fx.segl, "contact.changed", EMAIL, 1);
    assert_eq!(told["channel"], "email", "{told}");
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "contact.changed")
        .expect("contact.changed audited");
    assert_eq!(entry["data"]["which"], "email", "{entry}");
    assert!(
        !entry.to_string().to_lowercase().contains("kari.ny"),
        "the audit names the field, not the value: {entry}"
    );
    let page = b.get("/my?notice=email_changed").await;
    assert!(page.body.contains(new_stored), "{}", page.body);
    assert!(page.body.contains("E-postadresse endret"), "{}", page.body);

    // The same code again: used.
    let r = post_form(
        &mut b,
        "/my/contact/confirm",
        &[("csrf_token", &csrf), ("which", "email"), ("code", &code)],
    )
    .await;
    r.expect_status(409);
    assert!(r.body.contains("allerede brukt"), "{}", r.body);

    // An expired code (its expiry moved into the past in the database: the server's
    // clock is the system's).
    let third = "kari3@example.no";
    let r = post_form(
        &mut b,
        "/my/contact",
        &[("csrf_token", &csrf), ("which", "email"), ("value", third)],
    )
    .await;
    r.expect_status(303);
    let code3 = code_in(&message_of(&fx.segl, "contact.code", third, 1));
    let mut db = fx.segl.db_connect().await;
    let n =
        sqlx::query("UPDATE contact_changes SET expires_at = created_at - 1 WHERE new_value = $1")
            .bind(third)
            .execute(&mut db)
            .await
            .unwrap()
            .rows_affected();
    assert_eq!(n, 1);
    let r = post_form(
        &mut b,
        "/my/contact/confirm",
        &[("csrf_token", &csrf), ("which", "email"), ("code", &code3)],
    )
    .await;
    r.expect_status(409);
    assert!(r.body.contains("utløpt"), "{}", r.body);
    assert_eq!(fx.segl.person(NIN)["email"], new_stored);

    // Five wrong codes cancel the change; the right one is refused after that.
    let fourth = "kari4@example.no";
    post_form(
        &mut b,
        "/my/contact",
        &[("csrf_token", &csrf), ("which", "email"), ("value", fourth)],
    )
    .await
    .expect_status(303);
    let code4 = code_in(&message_of(&fx.segl, "contact.code", fourth, 1));
    let wrong4 = format!("{:06}", (code4.parse::<u32>().unwrap() + 1) % 1_000_000);
    for left in (0..5).rev() {
        let r = post_form(
            &mut b,
            "/my/contact/confirm",
            &[("csrf_token", &csrf), ("which", "email"), ("code", &wrong4)],
        )
        .await;
        r.expect_status(409);
        let expected = if left > 0 {
            format!("Forsøk igjen: {left}.")
        } else {
            "Feil kode for mange ganger".to_string()
        };
        assert!(r.body.contains(&expected), "{left}: {}", r.body);
    }
    let r = post_form(
        &mut b,
        "/my/contact/confirm",
        &[("csrf_token", &csrf), ("which", "email"), ("code", &code4)],
    )
    .await;
    r.expect_status(409);
    assert!(r.body.contains("Feil kode for mange ganger"), "{}", r.body);
    assert!(r.body.contains("id=\"new-email-error\""), "{}", r.body);
    assert_eq!(fx.segl.person(NIN)["email"], new_stored);

    // The page in English, by a link on the page.
    let page = b.get("/my?lang=en").await;
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
    assert!(page.body.contains("<h1>My page</h1>"), "{}", page.body);
    assert!(
        page.body.contains("Code device and password"),
        "{}",
        page.body
    );
    let page = b.get("/my?lang=nn").await;
    assert!(page.body.contains("<h1>Mi side</h1>"), "{}", page.body);
    b.get("/my?lang=nb").await;

    // Renewal far from expiry is refused with the reason.
    let r = post_form(&mut b, "/my/certificate/renew", &[("csrf_token", &csrf)]).await;
    r.expect_status(409);
    assert!(r.body.contains("kan ikke fornyes ennå"), "{}", r.body);
    assert!(r.body.contains("id=\"renew-error\""), "{}", r.body);
    assert_eq!(certs_of(&fx.segl).len(), 1);

    // No app to deactivate.
    let r = post_form(&mut b, "/my/app/deactivate", &[("csrf_token", &csrf)]).await;
    r.expect_status(409);
    assert!(r.body.contains("ingen aktiv app"), "{}", r.body);

    // History pages: a bad `before` is refused; a valid one shows older entries only.
    b.get("/my?before=abc").await.expect_status(400);
    b.get("/my?before=1").await.expect_status(200);

    // Logout: the page asks for a login again, and the old form is refused.
    let r = post_form(&mut b, "/my/logout", &[("csrf_token", &csrf)]).await;
    r.expect_status(303);
    assert_eq!(r.location().as_deref(), Some("/my/logged-out"));
    assert!(!b.cookies.contains_key("segl_portal"), "{:?}", b.cookies);
    b.get("/my/logged-out").await.expect_status(200);
    let r = b.get("/my").await;
    login_flow_id(&r);
    let r = post_form(
        &mut b,
        "/my/contact",
        &[("csrf_token", &csrf), ("which", "email"), ("value", third)],
    )
    .await;
    r.expect_status(403);
    fx.segl.audit_ok();
}

async fn renewal_near_expiry_and_a_block_from_my_page(backend: Backend) {
    // Certificates of 30 days: within the renewal window from the start.
    let mut fx = setup(backend, Some("[pki]\nperson_cert_days = 30\n"));
    let certs = certs_of(&fx.segl);
    assert_eq!(certs.len(), 1, "{certs:?}");
    let old = certs[0]["serial"].as_str().unwrap().to_string();

    // Ordering is closed for maintenance; renewal is no order.
    let until = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let until = until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    fx.segl.ok(&[
        "maintenance",
        "add",
        "--channel",
        "order",
        "--from",
        "now",
        "--to",
        &until,
        "--message",
        "Bestilling er stengt for vedlikehold.",
    ]);

    let mut b = Browser::new(&fx.server);
    let page = my_login(&mut b, &fx.server, &mut fx.device).await;
    assert!(page.body.contains("Gyldig, utløper snart"), "{}", page.body);
    let csrf = hidden(&page.body, "csrf_token");
    let r = post_form(&mut b, "/my/certificate/renew", &[("csrf_token", &csrf)]).await;
    r.expect_status(303);
    assert_eq!(
        r.location().as_deref(),
        Some("/my?notice=renewed#certificates")
    );
    let certs = certs_of(&fx.segl);
    assert_eq!(certs.len(), 2, "{certs:?}");
    let by_serial = |s: &str| {
        certs
            .iter()
            .find(|c| c["serial"] == s)
            .unwrap_or_else(|| panic!("no certificate {s}: {certs:?}"))
            .clone()
    };
    let was = by_serial(&old);
    assert_eq!(was["status"], "revoked", "{was}");
    assert_eq!(was["reason"], "superseded", "{was}");
    let new = certs
        .iter()
        .find(|c| c["serial"] != old.as_str())
        .unwrap()
        .clone();
    assert_eq!(new["status"], "valid", "{new}");
    let page = b.get("/my?notice=renewed").await;
    assert!(
        page.body.contains("Sertifikatet er fornyet."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Erstattet av et nytt"), "{}", page.body);
    assert!(page.body.contains("Sertifikat fornyet"), "{}", page.body);
    assert_eq!(fx.segl.audit_count("certificate.renewed"), 1);

    // Block: no reason is refused by its field; the first step only asks again.
    let r = post_form(&mut b, "/my/block", &[("csrf_token", &csrf)]).await;
    r.expect_status(400);
    assert!(r.body.contains("id=\"block-reason-error\""), "{}", r.body);
    let r = post_form(
        &mut b,
        "/my/block",
        &[("csrf_token", &csrf), ("reason", "deceased")],
    )
    .await;
    r.expect_status(400);
    let r = post_form(
        &mut b,
        "/my/block",
        &[("csrf_token", &csrf), ("reason", "lost")],
    )
    .await;
    r.expect_status(200);
    assert!(r.body.contains("id=\"block-yes\""), "{}", r.body);
    assert!(
        r.body.contains("name=\"reason\" value=\"lost\""),
        "{}",
        r.body
    );
    assert_eq!(fx.segl.audit_count("person.blocked"), 0, "not yet");

    let r = post_form(
        &mut b,
        "/my/block/confirm",
        &[("csrf_token", &csrf), ("reason", "lost")],
    )
    .await;
    r.expect_status(303);
    assert_eq!(r.location().as_deref(), Some("/my/blocked"));
    assert!(!b.cookies.contains_key("segl_portal"), "{:?}", b.cookies);
    let page = b.get("/my/blocked").await;
    page.expect_status(200);
    assert!(page.body.contains("eID-en er sperret"), "{}", page.body);
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "person.blocked")
        .expect("person.blocked audited");
    assert_eq!(entry["data"]["by"], "self", "{entry}");
    assert_eq!(entry["data"]["reason"], "lost", "{entry}");
    let certs = certs_of(&fx.segl);
    assert!(
        certs.iter().all(|c| c["status"] == "revoked"),
        "every certificate revoked: {certs:?}"
    );

    // The session is over, and a new login fails at the blocked code device.
    let r = post_form(&mut b, "/my/contact", &[("csrf_token", &csrf)]).await;
    r.expect_status(403);
    let r = b.get("/my").await;
    let id = login_flow_id(&r);
    let flow = b.flow(&id).await;
    let flow = b.identify_choosing(&flow, NIN, "otp").await;
    let r = b
        .step(
            &flow,
            "otp",
            serde_json::json!({"otp": fx.device.next_code()}),
        )
        .await;
    assert_problem(&r, 423, "device_blocked");
    let _ = &fx.rp;
    fx.segl.audit_ok();
}

async fn the_app_is_deactivated_from_my_page(backend: Backend) {
    let fx = AppFx::new(backend, "", true);
    let mut device = Hotp::new(SERIAL);
    let mut b = Browser::new(&fx.server);
    let page = my_login_as(&mut b, &fx.server, &mut device, APP_NIN).await;
    let body = &page.body;
    assert!(
        body.contains(&format!(
            "<th scope=\"row\" class=\"app-id\">{}</th>",
            fx.app.app_id
        )),
        "{body}"
    );
    assert!(body.contains("Appen aktivert"), "{body}");
    assert!(body.contains("id=\"app-deactivate\""), "{body}");
    let csrf = hidden(body, "csrf_token");
    let r = post_form(&mut b, "/my/app/deactivate", &[("csrf_token", &csrf)]).await;
    r.expect_status(303);
    assert_eq!(
        r.location().as_deref(),
        Some("/my?notice=app_deactivated#app")
    );
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "app.deactivated")
        .expect("app.deactivated audited");
    assert_eq!(entry["data"]["app_id"], fx.app.app_id.as_str(), "{entry}");
    assert_eq!(entry["data"]["why"], "by_person", "{entry}");
    let page = b.get("/my?notice=app_deactivated").await;
    assert!(page.body.contains("Appen er deaktivert."), "{}", page.body);
    assert!(page.body.contains("Deaktivert"), "{}", page.body);
    assert!(
        !page.body.contains("id=\"app-deactivate\""),
        "{}",
        page.body
    );
    // Again: nothing left to deactivate.
    let r = post_form(&mut b, "/my/app/deactivate", &[("csrf_token", &csrf)]).await;
    r.expect_status(409);
    assert!(r.body.contains("ingen aktiv app"), "{}", r.body);
    fx.segl.audit_ok();
}
