//! The login pages as a browser without JavaScript uses them: HTML forms that post and
//! redirect back, in bokmål, nynorsk and English, with labels, and with the same rules as
//! the flow API (CSRF token, browser binding).

#[macro_use]
mod common;

use common::*;

backend_tests!(
    login_with_forms_only,
    pages_speak_the_asked_language,
    form_without_csrf_token_is_refused_and_changes_nothing,
);

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

fn authorize_url(fx: &Fixture, extra: &[(&str, &str)]) -> String {
    let (challenge, _) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let mut url = url::Url::parse(&fx.server.url("/oauth2/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &fx.rp.client_id)
            .append_pair("redirect_uri", &fx.rp.redirect_uri)
            .append_pair("scope", "openid profile")
            .append_pair("state", "st4te")
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
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

async fn login_with_forms_only(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let mut b = fx.browser();
    let r = b.get(&authorize_url(&fx, &[("ui_locales", "en")])).await;
    let id = login_flow_id(&r);
    let page = b.get(&format!("/login?flow={id}")).await;
    page.expect_status(200);
    assert!(page.body.contains("<label for=\"nin\">"), "{}", page.body);
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
    let csrf = hidden(&page.body, "csrf_token");

    let step = |s: &str| format!("/login/{id}/{s}");
    let back = format!("/login?flow={id}");
    let r = post_form(
        &mut b,
        &step("identify"),
        &[("csrf_token", &csrf), ("nin", NIN)],
    )
    .await;
    r.expect_status(303);
    assert_eq!(r.location().as_deref(), Some(back.as_str()));
    let page = b.get(&back).await;
    assert!(
        page.body.contains("name=\"method\" value=\"otp\""),
        "{}",
        page.body
    );
    let r = post_form(
        &mut b,
        &step("method"),
        &[("csrf_token", &csrf), ("method", "otp")],
    )
    .await;
    r.expect_status(303);
    let page = b.get(&back).await;
    assert!(page.body.contains("<label for=\"otp\">"), "{}", page.body);

    // A wrong code shows the step again with the error, in the page's language.
    let wrong = fx.device.wrong_code();
    let r = post_form(
        &mut b,
        &step("otp"),
        &[("csrf_token", &csrf), ("otp", &wrong)],
    )
    .await;
    r.expect_status(401);
    assert!(r.body.contains("id=\"error\" role=\"alert\""), "{}", r.body);
    assert!(r.body.contains("Wrong one-time code"), "{}", r.body);
    assert!(r.body.contains("aria-invalid=\"true\""), "{}", r.body);

    let code = fx.device.next_code();
    let r = post_form(
        &mut b,
        &step("otp"),
        &[("csrf_token", &csrf), ("otp", &code)],
    )
    .await;
    r.expect_status(303);
    let page = b.get(&back).await;
    assert!(page.body.contains("type=\"password\""), "{}", page.body);
    let r = post_form(
        &mut b,
        &step("password"),
        &[("csrf_token", &csrf), ("password", PASSWORD)],
    )
    .await;
    r.expect_status(303);
    let to = r.location().expect("a redirect to the client");
    assert!(to.starts_with(&fx.rp.redirect_uri), "{to}");
    let url = url::Url::parse(&to).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(q.get("code").is_some_and(|c| !c.is_empty()), "{to}");
    assert_eq!(q.get("state").map(String::as_str), Some("st4te"));
    assert_eq!(q.get("iss"), Some(&fx.server.issuer()));
    // The session and remembered-method cookies were set.
    assert!(b.cookies.contains_key("segl_sid"), "{:?}", b.cookies);
    assert_eq!(
        b.cookies.get("segl_method").map(String::as_str),
        Some("otp")
    );
    assert_eq!(fx.segl.audit_count("login.success"), 1);
}

async fn pages_speak_the_asked_language(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    for (locales, accept, lang, label) in [
        (Some("nn"), None, "nn", "Fødselsnummer (11 siffer)"),
        (Some("en nb"), None, "en", "National identity number"),
        (
            None,
            Some("en-GB,en;q=0.8"),
            "en",
            "National identity number",
        ),
        (None, Some("nn-NO"), "nn", "Vel ein annan metode"),
        (None, None, "nb", "Fødselsnummer (11 siffer)"),
    ] {
        let mut b = fx.browser();
        let extra: Vec<(&str, &str)> = locales.map(|l| vec![("ui_locales", l)]).unwrap_or_default();
        let r = b.get(&authorize_url(&fx, &extra)).await;
        let id = login_flow_id(&r);
        let http = no_redirect_client();
        let mut req = http.get(fx.server.url(&format!("/login?flow={id}")));
        req = req.header(
            "cookie",
            format!("{FLOW_COOKIE}={}", b.cookies.get(FLOW_COOKIE).unwrap()),
        );
        if let Some(a) = accept {
            req = req.header("accept-language", a);
        }
        let mut page = req.send().await.unwrap().text().await.unwrap();
        if label == "Vel ein annan metode" {
            // Reach the code step to see a nynorsk text that differs from bokmål.
            let csrf = hidden(&page, "csrf_token");
            let body = format!("csrf_token={csrf}&nin={NIN}");
            let mut req = http
                .post(fx.server.url(&format!("/login/{id}/identify")))
                .header("content-type", "application/x-www-form-urlencoded")
                .header(
                    "cookie",
                    format!("{FLOW_COOKIE}={}", b.cookies.get(FLOW_COOKIE).unwrap()),
                )
                .body(body);
            req = req.header("accept-language", accept.unwrap());
            assert_eq!(req.send().await.unwrap().status().as_u16(), 303);
            let body = format!("csrf_token={csrf}&method=otp");
            let req = http
                .post(fx.server.url(&format!("/login/{id}/method")))
                .header("content-type", "application/x-www-form-urlencoded")
                .header(
                    "cookie",
                    format!("{FLOW_COOKIE}={}", b.cookies.get(FLOW_COOKIE).unwrap()),
                )
                .body(body);
            assert_eq!(req.send().await.unwrap().status().as_u16(), 303);
            page = http
                .get(fx.server.url(&format!("/login?flow={id}")))
                .header(
                    "cookie",
                    format!("{FLOW_COOKIE}={}", b.cookies.get(FLOW_COOKIE).unwrap()),
                )
                .header("accept-language", accept.unwrap())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        }
        assert!(
            page.contains(&format!("<html lang=\"{lang}\">")),
            "{locales:?}/{accept:?}: {page}"
        );
        assert!(
            page.contains(label),
            "{locales:?}/{accept:?} should show {label:?}: {page}"
        );
    }
    // A language picked on the page wins over the request's.
    let mut b = fx.browser();
    let r = b.get(&authorize_url(&fx, &[("ui_locales", "nb")])).await;
    let id = login_flow_id(&r);
    let page = b.get(&format!("/login?flow={id}&lang=en")).await;
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
    let page = b.get(&format!("/login?flow={id}")).await;
    assert!(
        page.body.contains("<html lang=\"en\">"),
        "the choice is remembered: {}",
        page.body
    );
}

async fn form_without_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    let mut b = fx.browser();
    let r = b.get(&authorize_url(&fx, &[])).await;
    let id = login_flow_id(&r);
    let before = fx.segl.audit_ok();
    let r = post_form(&mut b, &format!("/login/{id}/identify"), &[("nin", NIN)]).await;
    r.expect_status(403);
    assert!(r.location().is_none());
    let r = post_form(
        &mut b,
        &format!("/login/{id}/identify"),
        &[("csrf_token", "forged"), ("nin", NIN)],
    )
    .await;
    r.expect_status(403);
    // Another browser with the right token is refused too (the flow is bound).
    let page = b.get(&format!("/login?flow={id}")).await;
    let csrf = hidden(&page.body, "csrf_token");
    let mut other = fx.browser();
    let r = post_form(
        &mut other,
        &format!("/login/{id}/identify"),
        &[("csrf_token", &csrf), ("nin", NIN)],
    )
    .await;
    r.expect_status(403);
    let view = b.flow(&id).await;
    assert_eq!(view["state"], "identify", "nothing changed: {view}");
    assert_eq!(fx.segl.audit_ok(), before);
}
