//! A small listener for the apps' event streams, in front of the HTTP server.
//!
//! Every phone with the app holds one `GET /api/v1/app/events` connection open for as long
//! as it can, so a node holds tens of thousands of them, nearly all idle. Served by hyper,
//! each keeps hyper's HTTP/1 read buffer (8–16 KiB) and header write buffer (8 KiB) for
//! its whole life: about 21 KB of resident memory per connection, measured (bench/,
//! `docs/benchmarks.md`). Here a connection whose first request is the event stream is
//! answered without hyper: the request head is read into a buffer that is freed once the
//! call is checked, and what stays is the socket, the app's [`EventFeed`] and a small task.
//!
//! Every other connection goes to the HTTP server unchanged ([`SplitListener`] is what
//! `axum::serve` accepts from). The route `/api/v1/app/events` stays for a connection that
//! asks for the stream after other calls, or over HTTP/2; both serve the same
//! [`EventFeed`], so the app sees the same events either way.
//!
//! The response is HTTP/1.1 without a length, ended by closing the connection
//! (RFC 9112 section 6.3): an event stream has no end the server knows in advance, and
//! nothing follows it on the connection.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::AppState;
use crate::app_api::EventFeed;
use crate::error::ApiError;

/// What a connection must begin with to be served here.
const PREFIX: &[u8] = b"GET /api/v1/app/events";
/// The most a request head may take; the signed call's headers need well under 1 KiB.
const MAX_HEAD: usize = 8 * 1024;
/// Headers beyond this many are refused (the app sends about eight).
const MAX_HEADERS: usize = 32;
/// How long a new connection may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that makes no progress this long (the app stopped reading) ends the stream.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The headers every answer carries: a date, and what `crate::ops::layers` sets for the
/// routes.
fn common_headers() -> String {
    let mut out = format!(
        "date: {}\r\ncache-control: no-store\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    for (name, value) in crate::ops::SECURITY_HEADERS {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out
}

/// The connections for the HTTP server: all but the app event streams, which are served
/// apart as they arrive.
pub struct SplitListener {
    rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    local: SocketAddr,
}

/// Accepts on `listener` from now on: event streams are served here, the rest wait in the
/// returned listener for the HTTP server.
pub fn split(listener: TcpListener, st: AppState) -> std::io::Result<SplitListener> {
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(accept_loop(listener, tx, st));
    Ok(SplitListener { rx, local })
}

impl axum::serve::Listener for SplitListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended (it does not): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts until the server shuts down (the push hub closes, or the HTTP server stops
/// taking connections); the listener is then dropped, so new connections are refused
/// instead of accepted and reset.
async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<(TcpStream, SocketAddr)>,
    st: AppState,
) {
    let hub = st.push.clone();
    let closing = hub.closed();
    tokio::pin!(closing);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut closing => break,
            _ = tx.closed() => break,
        };
        let (io, addr) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let tx = tx.clone();
        let st = st.clone();
        tokio::spawn(async move {
            if is_event_stream(&io).await {
                // A task of its own for the stream: this one's state (the server's
                // state, the channel, the address) would otherwise stay with every idle
                // connection.
                if let Some((io, feed)) = start(io, st).await {
                    tokio::spawn(stream(io, feed));
                }
            } else {
                // The HTTP server has stopped accepting only at shutdown.
                let _ = tx.send((io, addr)).await;
            }
        });
    }
}

/// As `axum::serve` does: a connection that failed before it was accepted is nobody's
/// concern; anything else (no file descriptors left) is logged and waited out.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Whether the connection's first bytes ask for the event stream. Anything else, bytes
/// that are still on the way, or a client that says nothing in time, is the HTTP server's.
async fn is_event_stream(io: &TcpStream) -> bool {
    let mut first = [0u8; PREFIX.len() + 1];
    match tokio::time::timeout(HEAD_TIMEOUT, io.peek(&mut first)).await {
        Ok(Ok(n)) if n == first.len() => {
            first.starts_with(PREFIX) && matches!(first[PREFIX.len()], b' ' | b'?')
        }
        _ => false,
    }
}

/// A request head that could not be taken: the answer to write before closing.
struct BadHead(ApiError);

/// Reads and checks the request of an event stream; answers a refusal and closes, or
/// writes the head of the stream and gives back the connection and the app's feed.
async fn start(mut io: TcpStream, st: AppState) -> Option<(TcpStream, EventFeed)> {
    let feed = match open(&mut io, &st).await {
        Ok(feed) => feed,
        Err(BadHead(e)) => {
            let _ = write_error(&mut io, e).await;
            return None;
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{}connection: close\r\n\r\n",
        common_headers()
    );
    write(&mut io, head.as_bytes()).await.then_some((io, feed))
}

/// Sends the feed's events until it ends or the app goes away, then closes.
async fn stream(mut io: TcpStream, mut feed: EventFeed) {
    let mut probe = [0u8; 8];
    loop {
        let frame = tokio::select! {
            f = feed.next() => f,
            // The app sends nothing more: closing, an error or stray bytes end the stream.
            _ = io.read(&mut probe) => None,
        };
        let Some(frame) = frame else { break };
        if !write(&mut io, frame.to_wire().as_bytes()).await {
            break;
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, io.shutdown()).await;
}

/// Writes all of `bytes`; false when the connection failed or stalled.
async fn write(io: &mut TcpStream, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, io.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Reads and checks the request head, and opens the app's feed.
async fn open(io: &mut TcpStream, st: &AppState) -> Result<EventFeed, BadHead> {
    let (method, uri, headers) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(io)).await {
        Ok(head) => head?,
        Err(_) => {
            return Err(BadHead(ApiError::problem(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request head did not arrive in time",
            )));
        }
    };
    EventFeed::open(st, &method, &uri, &headers, b"")
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "app event stream refused");
            BadHead(e)
        })
}

fn malformed(detail: &str) -> BadHead {
    BadHead(ApiError::problem(
        StatusCode::BAD_REQUEST,
        "malformed_request",
        detail,
    ))
}

/// Reads the request head (`httparse`): method, target and headers. The event stream's
/// request has no body; one announced is refused.
async fn read_head(io: &mut TcpStream) -> Result<(Method, Uri, HeaderMap), BadHead> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() == MAX_HEAD {
            return Err(BadHead(ApiError::problem(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!("the request head is over {MAX_HEAD} bytes"),
            )));
        }
        let mut chunk = [0u8; 1024];
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        let n = io
            .read(&mut chunk[..room])
            .await
            .map_err(|_| malformed("the connection failed"))?;
        if n == 0 {
            return Err(malformed("the request head ended early"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(_)) => return head_parts(&req),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(BadHead(ApiError::problem(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    format!("more than {MAX_HEADERS} headers"),
                )));
            }
            Err(e) => return Err(malformed(&format!("not an HTTP/1.1 request: {e}"))),
        }
    }
}

fn head_parts(req: &httparse::Request<'_, '_>) -> Result<(Method, Uri, HeaderMap), BadHead> {
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| malformed("bad method"))?;
    let uri: Uri = req
        .path
        .unwrap_or_default()
        .parse()
        .map_err(|_| malformed("bad request target"))?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| malformed("bad header name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| malformed("bad header value"))?;
        headers.append(name, value);
    }
    let announced_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    if announced_body {
        return Err(malformed("the event stream's request has no body"));
    }
    Ok((method, uri, headers))
}

/// Writes a refusal (problem+json, as the HTTP server would) and closes.
async fn write_error(io: &mut TcpStream, e: ApiError) -> std::io::Result<()> {
    let resp = e.into_response();
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        // Written below, once each.
        let common = [
            header::CONTENT_LENGTH,
            header::CONNECTION,
            header::CACHE_CONTROL,
            header::DATE,
        ];
        if common.contains(name) || crate::ops::SECURITY_HEADERS.iter().any(|(n, _)| name == n) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(common_headers().as_bytes());
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    if !write(io, &out).await {
        return Ok(());
    }
    io.shutdown().await?;
    // Closing with unread bytes would send a reset, which may destroy the answer before
    // the client reads it: read what is left (a little, briefly) first.
    let mut sink = [0u8; 1024];
    let mut left: usize = 64 * 1024;
    let drain = async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    Ok(())
}
