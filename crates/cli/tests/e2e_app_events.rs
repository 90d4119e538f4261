//! The app's event stream on the wire. A connection whose first request is
//! `GET /api/v1/app/events` is served by segl's small listener (`app_events`), without
//! hyper; the same request later on a connection that asked for something else first is
//! served by the HTTP server's route. Both must send the same events and refuse the same
//! input with the same problem+json, and bad request heads must not harm the server.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

backend_tests!(
    a_stream_opened_first_is_served_apart_and_a_later_one_by_http,
    bad_request_heads_are_refused_and_change_nothing,
    shutdown_ends_the_streams_and_stops_accepting,
);

const EVENTS: &str = "/api/v1/app/events";

/// The request head of a signed `GET /api/v1/app/events` at `timestamp`, with `extra`
/// header lines (each ending in CRLF) before the blank line.
fn signed_head(fx: &AppFx, timestamp: i64, nonce: &str, extra: &str) -> String {
    let key = segl_app::vault::Vault::unlock(&fx.app.vault, APP_PIN).expect("unlock");
    let request = segl_core::app::DeviceRequest {
        app_id: &fx.app.app_id,
        nonce,
        method: "GET",
        path: EVENTS,
        timestamp,
        body_sha256: <sha2::Sha256 as sha2::Digest>::digest(b"").into(),
    };
    let sig = key.sign_request(&request).expect("sign");
    format!(
        "GET {EVENTS} HTTP/1.1\r\nHost: segl.test\r\nAccept: text/event-stream\r\n\
         X-Segl-App-Id: {}\r\nX-Segl-Nonce: {nonce}\r\nX-Segl-Timestamp: {timestamp}\r\n\
         X-Segl-Signature: {}\r\n{extra}\r\n",
        fx.app.app_id,
        data_encoding::BASE64URL_NOPAD.encode(&sig)
    )
}

async fn connect(server: &Server) -> TcpStream {
    let addr = server.base_url.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect to segl")
}

/// Opens a connection and writes `bytes`.
async fn send(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut s = connect(server).await;
    s.write_all(bytes).await.expect("write");
    s
}

/// Reads until `needle` has arrived (true) or the peer closed or `within` passed (false);
/// what was read is appended to `seen`.
async fn read_until(s: &mut TcpStream, seen: &mut String, needle: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return false,
        }
    }
    true
}

/// Everything until the peer closes (within `within`, else the test fails).
async fn read_to_close(s: &mut TcpStream, within: Duration) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

/// A whole answer of the small listener: status, lower-cased head, and the body as JSON.
fn parse_closed_answer(all: &str) -> (u16, String, Value) {
    let (head, body) = all
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {all:?}"));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line of {head:?}"));
    let head = head.to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {head:?}"));
    assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{all}");
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    (status, head, json)
}

/// Asserts a refusal answered as problem+json with `status` and `code`, then the close.
async fn assert_refused(server: &Server, request: &[u8], status: u16, code: &str) -> Value {
    let mut s = send(server, request).await;
    let all = read_to_close(&mut s, Duration::from_secs(10)).await;
    let (got, head, body) = parse_closed_answer(&all);
    assert_eq!(got, status, "{all}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_eq!(body["type"], format!("urn:segl:problem:{code}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    body
}

/// The `segl_push_streams` gauge: open push subscriptions on the node.
async fn push_streams(server: &Server) -> u64 {
    let r = Resp::fetch(
        reqwest::Client::new().get(server.url("/metrics")),
        "metrics".into(),
    )
    .await;
    r.expect_status(200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix("segl_push_streams "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no segl_push_streams in {}", r.body))
}

/// Waits (up to 10 s) for the gauge to read `want`.
async fn push_streams_become(server: &Server, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = push_streams(server).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "segl_push_streams stays {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn healthz_ok(server: &Server) {
    let r = Resp::fetch(
        reqwest::Client::new().get(server.url("/healthz")),
        "healthz".into(),
    )
    .await;
    r.expect_status(200);
}

async fn a_stream_opened_first_is_served_apart_and_a_later_one_by_http(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let now = unix_now() as i64;

    // First request on its connection: the small listener. HTTP/1.1 ended by close, the
    // pages' security headers, and the waiting requests at once (none).
    let mut apart = send(
        &fx.server,
        signed_head(&fx, now, "nonce-apart-0000001", "").as_bytes(),
    )
    .await;
    let mut seen = String::new();
    assert!(
        read_until(&mut apart, &mut seen, "\n\n", Duration::from_secs(10)).await,
        "{seen}"
    );
    assert!(
        read_until(&mut apart, &mut seen, "}\n\n", Duration::from_secs(10)).await,
        "{seen}"
    );
    let (head, body) = seen.split_once("\r\n\r\n").expect("head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for h in [
        "content-type: text/event-stream",
        "cache-control: no-store",
        "connection: close",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(h), "{h} missing: {head}");
    }
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(body, "event: requests\ndata: {\"requests\":[]}\n\n");

    // The same stream asked for after another request on the connection: the route,
    // over hyper (chunked), with the same first event.
    let pipelined = format!(
        "GET /healthz HTTP/1.1\r\nHost: segl.test\r\n\r\n{}",
        signed_head(&fx, now, "nonce-routed-000001", "")
    );
    let mut routed = send(&fx.server, pipelined.as_bytes()).await;
    let mut rseen = String::new();
    assert!(
        read_until(
            &mut routed,
            &mut rseen,
            "event: requests\ndata: {\"requests\":[]}\n\n",
            Duration::from_secs(10)
        )
        .await,
        "{rseen}"
    );
    let second = rseen
        .match_indices("HTTP/1.1 200")
        .nth(1)
        .expect("two answers")
        .0;
    let routed_head = rseen[second..].to_ascii_lowercase();
    assert!(
        routed_head.contains("content-type: text/event-stream"),
        "{rseen}"
    );
    assert!(
        routed_head.contains("transfer-encoding: chunked"),
        "{rseen}"
    );

    assert_eq!(push_streams(&fx.server).await, 2);

    // The person deactivates the app: both streams say so at once, and end.
    let out = fx.segl.cmd_stdin(
        &["app", "deactivate", "--vault", fx.app.vault(), "--json"],
        Some(&format!("{APP_PIN}\n")),
    );
    assert_success(&out, &["app", "deactivate"]);
    let rest = read_to_close(&mut apart, Duration::from_secs(10)).await;
    assert!(rest.starts_with("event: deactivated\ndata: {"), "{rest:?}");
    let data = rest
        .strip_prefix("event: deactivated\ndata: ")
        .and_then(|r| r.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("one event then the close: {rest:?}"));
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["state"], "deactivated", "{v}");
    assert_eq!(v["deactivated_why"], "by_person", "{v}");
    let mut rrest = String::new();
    assert!(
        read_until(
            &mut routed,
            &mut rrest,
            "event: deactivated\n",
            Duration::from_secs(10)
        )
        .await,
        "{rrest}"
    );
    assert!(
        read_until(
            &mut routed,
            &mut rrest,
            "\r\n0\r\n\r\n",
            Duration::from_secs(10)
        )
        .await,
        "the chunked stream ends: {rrest:?}"
    );

    // Their subscriptions are gone.
    drop((apart, routed));
    push_streams_become(&fx.server, 0).await;

    // A deactivated app cannot open a stream.
    let body = assert_refused(
        &fx.server,
        signed_head(&fx, now + 1, "nonce-after-0000001", "").as_bytes(),
        403,
        "app_deactivated",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("by_person"),
        "{body}"
    );
    healthz_ok(&fx.server).await;
    fx.segl.audit_ok();
}

async fn bad_request_heads_are_refused_and_change_nothing(backend: Backend) {
    let fx = AppFx::new(backend, "", false);
    let now = unix_now() as i64;
    let failures = fx.segl.audit_count("app.auth_failure");
    let s = &fx.server;

    // Not signed; a body announced (the stream's request has none), either way.
    let unsigned = format!("GET {EVENTS} HTTP/1.1\r\nHost: segl.test\r\n\r\n");
    assert_refused(s, unsigned.as_bytes(), 401, "device_auth_required").await;
    let with_body = signed_head(&fx, now, "nonce-body-00000001", "Content-Length: 3\r\n") + "abc";
    assert_refused(s, with_body.as_bytes(), 400, "malformed_request").await;
    let chunked = signed_head(
        &fx,
        now,
        "nonce-chunk-0000001",
        "Transfer-Encoding: chunked\r\n",
    );
    assert_refused(s, chunked.as_bytes(), 400, "malformed_request").await;
    let twice = signed_head(
        &fx,
        now,
        "nonce-twice-0000001",
        "Content-Length: 0\r\nContent-Length: 5\r\n",
    ) + "12345";
    assert_refused(s, twice.as_bytes(), 400, "malformed_request").await;

    // Too large a head, too many headers, a line that is not a header.
    let pad = format!("X-Pad: {}\r\n", "a".repeat(9000));
    let body = assert_refused(
        s,
        signed_head(&fx, now, "nonce-pad-000000001", &pad).as_bytes(),
        431,
        "headers_too_large",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("8192"), "{body}");
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_refused(
        s,
        signed_head(&fx, now, "nonce-many-00000001", &many).as_bytes(),
        431,
        "headers_too_large",
    )
    .await;
    let garbled = format!("GET {EVENTS} HTTP/1.1\r\nNo colon here\r\n\r\n");
    assert_refused(s, garbled.as_bytes(), 400, "malformed_request").await;

    // Signed calls that fail their checks, as on every device call: a signature over
    // another timestamp (audited), a stale clock, then a replay (audited).
    let tampered = signed_head(&fx, now, "nonce-tamper-000001", "").replacen(
        &format!("X-Segl-Timestamp: {now}"),
        &format!("X-Segl-Timestamp: {}", now + 1),
        1,
    );
    assert_refused(s, tampered.as_bytes(), 401, "bad_device_signature").await;
    let stale = signed_head(&fx, now - 600, "nonce-stale-0000001", "");
    assert_refused(s, stale.as_bytes(), 401, "stale_device_request").await;
    let good = signed_head(&fx, now, "nonce-good-00000001", "");
    let mut first = send(s, good.as_bytes()).await;
    let mut seen = String::new();
    assert!(
        read_until(&mut first, &mut seen, "}\n\n", Duration::from_secs(10)).await,
        "{seen}"
    );
    drop(first);
    assert_refused(s, good.as_bytes(), 401, "replayed_device_request").await;
    assert_eq!(fx.segl.audit_count("app.auth_failure"), failures + 2);

    // Only the exact path is served apart; a look-alike is the HTTP server's (404).
    let mut other = send(
        s,
        b"GET /api/v1/app/eventsX HTTP/1.1\r\nHost: segl.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let all = read_to_close(&mut other, Duration::from_secs(10)).await;
    assert!(all.starts_with("HTTP/1.1 404"), "{all}");

    // A client that stops half-way through its head, or says nothing and leaves.
    drop(send(s, format!("GET {EVENTS} HTTP/1.1\r\nX-Segl-App").as_bytes()).await);
    drop(connect(s).await);

    // Nothing changed: no subscription was left behind, the server answers, the app
    // still opens its stream.
    push_streams_become(s, 0).await;
    healthz_ok(s).await;
    let mut again = send(
        s,
        signed_head(&fx, now + 1, "nonce-again-0000001", "").as_bytes(),
    )
    .await;
    let mut seen = String::new();
    assert!(
        read_until(
            &mut again,
            &mut seen,
            "event: requests\n",
            Duration::from_secs(10)
        )
        .await,
        "{seen}"
    );
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    fx.segl.audit_ok();
}

/// Also: an idle stream gets a keep-alive comment after 15 s.
async fn shutdown_ends_the_streams_and_stops_accepting(backend: Backend) {
    let mut fx = AppFx::new(backend, "", false);
    let now = unix_now() as i64;
    let mut stream = send(
        &fx.server,
        signed_head(&fx, now, "nonce-sigterm-00001", "").as_bytes(),
    )
    .await;
    let mut seen = String::new();
    assert!(
        read_until(&mut stream, &mut seen, "}\n\n", Duration::from_secs(10)).await,
        "{seen}"
    );
    // Quiet for 15 s: a keep-alive comment, and nothing else.
    let mut quiet = String::new();
    assert!(
        read_until(&mut stream, &mut quiet, ":\n\n", Duration::from_secs(25)).await,
        "no keep-alive: {quiet:?}"
    );
    assert_eq!(quiet, ":\n\n");
    // A connection still sending its head when the signal comes.
    let mut half = send(&fx.server, format!("GET {EVENTS} HTTP/1.1\r\n").as_bytes()).await;
    let addr = fx.server.base_url.trim_start_matches("http://").to_string();
    let status = fx.server.terminate(Duration::from_secs(10));
    assert!(status.success(), "segl serve after SIGTERM: {status}");
    // The open stream ended (the server closed it, nothing more was sent).
    let rest = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(!rest.contains("event:"), "{rest:?}");
    let _ = read_to_close(&mut half, Duration::from_secs(5)).await;
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "the port still accepts after shutdown"
    );
}
