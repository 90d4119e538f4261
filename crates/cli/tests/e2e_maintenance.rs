//! Maintenance windows (issue 5) with `segl maintenance add|list|remove`: a window shows as
//! a banner on the pages (upcoming ones as "Planlagt vedlikehold fra … til …") and in
//! `GET /api/v1/maintenance`, on every node within the cache time; removing it takes the
//! banner away; logins work during a window; bad input is refused with exit code 2 and
//! nothing stored. (The refusal of orders, `ensure_open`, is tested in segl-server.)

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

backend_tests!(
    windows_show_on_every_node_and_go_when_removed,
    bad_input_is_refused_and_nothing_is_stored,
);

/// How long a node may serve windows it read earlier (the server caches 5 s).
const WITHIN: Duration = Duration::from_secs(15);

const ACTIVE: &str = "Bestilling av segl-appen er stengt for vedlikehold";
const PLANNED: &str = "Bestilling med kodebrikke stenges for oppgradering";

fn rfc3339(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The login page's maintenance banner (`role="status"`), or "" when there is none.
fn banner(page: &str) -> String {
    let Some(start) = page.find("class=\"banner maintenance\"") else {
        return String::new();
    };
    let rest = &page[start..];
    let end = rest.find("</div>").expect("the banner ends");
    rest[..end].to_string()
}

/// Reloads `path` in `b` until `done(banner)` holds, within [`WITHIN`]; the last banner.
async fn wait_banner(
    b: &mut Browser,
    path: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        // Error pages (an unknown flow) show the banner too.
        let page = b.get(path).await;
        let found = banner(&page.body);
        if done(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WITHIN:?}; banner now: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn api(server: &Server) -> Vec<Value> {
    let r = Resp::fetch(
        reqwest::Client::new().get(server.url("/api/v1/maintenance")),
        "GET /api/v1/maintenance".into(),
    )
    .await;
    r.expect_status(200);
    assert!(r.content_type().starts_with("application/json"), "{r:?}");
    r.json()["windows"]
        .as_array()
        .unwrap_or_else(|| panic!("no windows array: {}", r.body))
        .clone()
}

async fn windows_show_on_every_node_and_go_when_removed(backend: Backend) {
    let fx = Fixture::new(backend, &[]);
    // A second node on the same database (PostgreSQL is the scale-out backend).
    let other = (backend == Backend::Postgres).then(|| Server::start(&fx.segl, &[]));

    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &["profile"], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let page = format!("/login?flow={}", flow_id(&flow));
    let first = b.get(&page).await;
    first.expect_status(200);
    assert_eq!(banner(&first.body), "", "no window yet");
    assert!(api(&fx.server).await.is_empty());

    // An active window on the app channel.
    let now = unix_now();
    let to = rfc3339(now + 3600);
    let added = fx.segl.json(&[
        "maintenance",
        "add",
        "--channel",
        "order-app",
        "--from",
        "now",
        "--to",
        &to,
        "--message",
        ACTIVE,
        "--by",
        "ops-1",
        "--json",
    ]);
    let active_id = added["id"].as_str().expect("an id").to_string();
    assert_eq!(added["channel"], "order-app", "{added}");
    assert_eq!(added["to"], to, "{added}");
    assert_eq!(added["message"], ACTIVE, "{added}");
    assert_eq!(added["active"], true, "{added}");
    assert_eq!(added["created_by"], "ops-1", "{added}");

    let shown = wait_banner(&mut b, &page, "the active window's banner", |s| {
        s.contains(ACTIVE)
    })
    .await;
    assert!(shown.contains("role=\"status\""), "{shown}");
    assert!(
        !shown.contains("Planlagt"),
        "an active window is not 'planned': {shown}"
    );

    // A window in two hours, on every ordering channel: announced as upcoming.
    let planned = fx.segl.json(&[
        "maintenance",
        "add",
        "--channel",
        "order",
        "--from",
        &rfc3339(now + 7200),
        "--to",
        &rfc3339(now + 10_800),
        "--message",
        PLANNED,
        "--json",
    ]);
    let planned_id = planned["id"].as_str().expect("an id").to_string();
    assert_eq!(planned["active"], false, "{planned}");
    let shown = wait_banner(&mut b, &page, "the upcoming window's banner", |s| {
        s.contains(PLANNED)
    })
    .await;
    assert!(shown.contains(ACTIVE), "{shown}");
    assert!(
        shown.contains("Planlagt vedlikehold fra") && shown.contains("(norsk tid)"),
        "an upcoming window says when: {shown}"
    );
    let en = b.get(&format!("{page}&lang=en")).await;
    assert!(
        banner(&en.body).contains("Planned maintenance from"),
        "{}",
        en.body
    );
    b.get(&format!("{page}&lang=nb")).await.expect_status(200);

    let listed = api(&fx.server).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["id"], active_id.as_str());
    assert_eq!(listed[0]["channel"], "order-app");
    assert_eq!(listed[0]["active"], true);
    assert_eq!(listed[0]["message"], ACTIVE);
    assert_eq!(listed[1]["id"], planned_id.as_str());
    assert_eq!(listed[1]["channel"], "order");
    assert_eq!(listed[1]["active"], false);
    assert_eq!(listed[1]["from"], rfc3339(now + 7200));

    let cli = fx.segl.json(&["maintenance", "list", "--json"]);
    assert_eq!(cli.as_array().map(Vec::len), Some(2), "{cli}");
    let text = fx.segl.ok(&["maintenance", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&active_id) && text.contains("ACTIVE"),
        "{text}"
    );

    if let Some(other) = &other {
        let mut ob = Browser::new(other);
        wait_banner(&mut ob, "/login?flow=x", "the second node's banner", |s| {
            s.contains(ACTIVE) && s.contains(PLANNED)
        })
        .await;
        assert_eq!(api(other).await.len(), 2);
    }

    // Logging in works as usual during the window.
    let flow = b.identify(&flow, NIN).await;
    let mut device = Hotp::new(SERIAL);
    let flow = b.otp_ok(&flow, &device.next_code()).await;
    b.password_ok(&flow, PASSWORD).await;

    // Removed: the banner goes within the cache time.
    let removed = fx
        .segl
        .json(&["maintenance", "remove", &active_id, "--json"]);
    assert_eq!(removed["removed"]["id"], active_id.as_str(), "{removed}");
    let shown = wait_banner(
        &mut b,
        &page,
        "the banner without the removed window",
        |s| !s.contains(ACTIVE),
    )
    .await;
    assert!(shown.contains(PLANNED), "{shown}");
    fx.segl
        .ok(&["maintenance", "remove", &planned_id, "--by", "ops-2"]);
    wait_banner(&mut b, &page, "no banner", str::is_empty).await;
    if let Some(other) = &other {
        let mut ob = Browser::new(other);
        wait_banner(
            &mut ob,
            "/login?flow=x",
            "no banner on the second node",
            str::is_empty,
        )
        .await;
    }
    let deadline = Instant::now() + WITHIN;
    while !api(&fx.server).await.is_empty() {
        assert!(Instant::now() < deadline, "the API still lists windows");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = fx.segl.json(&["maintenance", "list", "--all", "--json"]);
    assert_eq!(all, serde_json::json!([]), "removed windows are gone");

    let out = fx.segl.cmd(&["maintenance", "remove", &active_id]);
    assert_input_error(&out, "removing it twice", "not found");

    assert_eq!(fx.segl.audit_count("maintenance.added"), 2);
    assert_eq!(fx.segl.audit_count("maintenance.removed"), 2);
    let entry = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "maintenance.removed" && e["data"]["id"] == planned_id.as_str())
        .expect("the removal's audit entry");
    assert_eq!(entry["data"]["by"], "ops-2", "{entry}");
    assert_eq!(entry["data"]["channel"], "order", "{entry}");
    fx.segl.audit_ok();
}

async fn bad_input_is_refused_and_nothing_is_stored(backend: Backend) {
    let segl = Segl::new(backend);
    let now = unix_now();
    let later = rfc3339(now + 3600);
    let later2 = rfc3339(now + 7200);
    let past = rfc3339(now - 3600);
    let long = "x".repeat(501);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--channel",
                "order-phone",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                "m",
            ],
            "--channel 'order-phone'",
        ),
        (
            vec![
                "--channel",
                "",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                "m",
            ],
            "--channel",
        ),
        (
            vec![
                "--channel",
                "order-app",
                "--from",
                "tomorrow",
                "--to",
                &later,
                "--message",
                "m",
            ],
            "--from 'tomorrow' is not a time",
        ),
        (
            vec![
                "--channel",
                "order-app",
                "--from",
                "now",
                "--to",
                "2026-13-01T00:00:00Z",
                "--message",
                "m",
            ],
            "--to '2026-13-01T00:00:00Z' is not a time",
        ),
        (
            vec![
                "--channel",
                "order-app",
                "--from",
                "now",
                "--to",
                "2026-12-24",
                "--message",
                "m",
            ],
            "RFC 3339",
        ),
        (
            vec![
                "--channel",
                "order-app",
                "--from",
                &later,
                "--to",
                &later,
                "--message",
                "m",
            ],
            "must be later than --from",
        ),
        (
            vec![
                "--channel",
                "order-app",
                "--from",
                &later2,
                "--to",
                &later,
                "--message",
                "m",
            ],
            "must be later than --from",
        ),
        (
            vec![
                "--channel",
                "order-app",
                "--from",
                "2020-01-01T00:00:00Z",
                "--to",
                &past,
                "--message",
                "m",
            ],
            "in the past",
        ),
        (
            vec![
                "--channel",
                "order",
                "--from",
                "now",
                "--to",
                "now",
                "--message",
                "m",
            ],
            "must be later than --from",
        ),
        (
            vec![
                "--channel",
                "order-card",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                "",
            ],
            "--message is empty",
        ),
        (
            vec![
                "--channel",
                "order-card",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                "   ",
            ],
            "--message is empty",
        ),
        (
            vec![
                "--channel",
                "order-card",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                &long,
            ],
            "501 characters",
        ),
        (
            vec![
                "--channel",
                "order-card",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                "two\nlines",
            ],
            "control character",
        ),
        (
            vec![
                "--channel",
                "order-card",
                "--from",
                "now",
                "--to",
                &later,
                "--message",
                "m",
                "--by",
                " ",
            ],
            "--by",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["maintenance", "add"];
        full.extend(args);
        let out = segl.cmd(&full);
        assert_input_error(&out, &format!("{full:?}"), needle);
    }
    let out = segl.cmd(&["maintenance", "remove", "no-such-window"]);
    assert_input_error(
        &out,
        "remove an unknown id",
        "maintenance window no-such-window not found",
    );

    let all = segl.json(&["maintenance", "list", "--all", "--json"]);
    assert_eq!(all, serde_json::json!([]), "nothing stored");
    assert_eq!(segl.audit_count("maintenance.added"), 0);
    assert_eq!(segl.audit_count("maintenance.removed"), 0);

    // The same input, right, is accepted.
    let ok = segl.json(&[
        "maintenance",
        "add",
        "--channel",
        "order-card",
        "--from",
        "now",
        "--to",
        &later,
        "--message",
        "  Vedlikehold  ",
        "--json",
    ]);
    assert_eq!(ok["message"], "Vedlikehold", "trimmed: {ok}");
    assert_eq!(segl.audit_count("maintenance.added"), 1);
    segl.audit_ok();
}
