//! OCSP responses per second (issue 4): pre-made DER OCSP requests, one per certificate,
//! POSTed round-robin by N concurrent workers to a responder (segl's, or `openssl ocsp`
//! acting as the peer), over a small HTTP/1.1 client of its own.
//!
//! The client is this small so that it costs little CPU beside the server on a 2-core
//! machine, and so that both responders are spoken to identically: the same bytes, the
//! same headers, a new connection whenever the server does not keep one open. A response
//! counts when it is HTTP 200 and its first bytes are those of a successful OCSPResponse
//! (`30 … 0a 01 00`: responseStatus 0); signatures are not checked, for either responder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::Record;

#[derive(clap::Args)]
pub struct OcspArgs {
    /// The responder, http only (e.g. http://127.0.0.1:8080/pki/ocsp).
    #[arg(long)]
    url: String,
    /// Directory of DER OCSP requests (every `*.der` file), sent round-robin.
    #[arg(long)]
    requests: PathBuf,
    /// Concurrent workers, each with at most one request in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to start new requests.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Keep a worker's connection open between requests (`Connection: keep-alive`, used
    /// while the server agrees); false: a new connection for every request.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    keep_alive: bool,
    /// PID of the server, to report the CPU time it and its child processes used
    /// (`openssl ocsp -multi` answers in forked workers).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What one exchange gave.
struct Answer {
    status: u16,
    successful: bool,
    /// The server will read another request on this connection.
    reusable: bool,
}

pub async fn run(a: OcspArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(&a.url).with_context(|| format!("--url {}", a.url))?;
    if url.scheme() != "http" {
        bail!("--url must be http://");
    }
    let host = url.host_str().context("--url has no host")?.to_string();
    let port = url.port_or_known_default().context("--url has no port")?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.requests)
        .with_context(|| format!("read {}", a.requests.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "der"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.der requests in {}", a.requests.display());
    }
    let connection = if a.keep_alive { "keep-alive" } else { "close" };
    let mut requests = Vec::with_capacity(files.len());
    for f in &files {
        let body = std::fs::read(f).with_context(|| format!("read {}", f.display()))?;
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/ocsp-request\r\n\
             Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(&body);
        requests.push(r);
    }
    let requests = Arc::new(requests);
    let n = a.concurrency.max(1);
    let server_before = a.server_pid.and_then(tree_cpu_seconds);
    let cpu_before = crate::cpu_before(None);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::with_capacity(n);
    for w in 0..n {
        let requests = requests.clone();
        let addr = (host.clone(), port);
        let keep_alive = a.keep_alive;
        tasks.push(tokio::spawn(async move {
            worker(w, n, requests, addr, keep_alive, deadline).await
        }));
    }
    let mut rec = Record::default();
    let mut connections = 0u64;
    for t in tasks {
        let (r, c) = t.await?;
        rec.merge(r);
        connections += c;
    }
    let elapsed = start.elapsed();
    let ok = rec.latencies_us.len();
    let mut extra = json!({
        "concurrency": n,
        "keep_alive": a.keep_alive,
        "distinct_requests": files.len(),
        "connections": connections,
    });
    if let (Some(b), Some(e)) = (server_before, a.server_pid.and_then(tree_cpu_seconds)) {
        extra["server_cpu_s"] = json!(((e - b) * 100.0).round() / 100.0);
        if ok > 0 {
            extra["server_cpu_us_per_op"] = json!(((e - b) * 1e7 / ok as f64).round() / 10.0);
        }
    }
    // The machine's busy cores and this process's CPU; the server's (with its children)
    // is counted above, so `cpu_fields`' own server fields (of this process, given no
    // server) are left out.
    if let (Some(x), serde_json::Value::Object(c)) = (
        extra.as_object_mut(),
        crate::cpu_fields(None, cpu_before, ok),
    ) {
        x.extend(c.into_iter().filter(|(k, _)| !k.starts_with("server_")));
    }
    println!("{}", crate::stats::summary("ocsp", rec, elapsed, extra));
    Ok(())
}

/// Worker `w` of `n` sends requests w, w + n, w + 2n, … (wrapping) until the deadline.
/// Returns its record and how many connections it opened.
async fn worker(
    w: usize,
    n: usize,
    requests: Arc<Vec<Vec<u8>>>,
    addr: (String, u16),
    keep_alive: bool,
    deadline: Instant,
) -> (Record, u64) {
    let mut rec = Record::default();
    let mut opened = 0u64;
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut i = w % requests.len();
    while Instant::now() < deadline {
        let req = &requests[i];
        i = (i + n) % requests.len();
        let t = Instant::now();
        // A kept connection the server closed meanwhile fails before any answer byte; such
        // a request is sent once more on a new connection, as HTTP clients do.
        let mut result = Err(("closed".to_string(), String::new()));
        for attempt in 0..2 {
            let reused = conn.is_some();
            if conn.is_none() {
                match TcpStream::connect((addr.0.as_str(), addr.1)).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        opened += 1;
                        conn = Some(s);
                    }
                    Err(e) => {
                        result = Err(("connect".to_string(), e.to_string()));
                        break;
                    }
                }
            }
            let Some(s) = conn.as_mut() else { break };
            let r = tokio::time::timeout(Duration::from_secs(30), exchange(s, &mut buf, req)).await;
            result = match r {
                Ok(Ok(ans)) => Ok(ans),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(("timeout".to_string(), "no answer within 30 s".to_string())),
            };
            match &result {
                Err((kind, _)) if kind == "closed" && reused && attempt == 0 => {
                    conn = None;
                    continue;
                }
                _ => break,
            }
        }
        match result {
            Ok(ans) => {
                if !(keep_alive && ans.reusable) {
                    conn = None;
                }
                if ans.status != 200 {
                    rec.error(
                        format!("http {}", ans.status),
                        format!("HTTP {}", ans.status),
                    );
                } else if !ans.successful {
                    rec.error(
                        "not a successful OCSPResponse".into(),
                        "responseStatus is not 0".into(),
                    );
                } else {
                    rec.latencies_us.push(t.elapsed().as_micros() as u64);
                }
            }
            Err((kind, detail)) => {
                conn = None;
                rec.error(kind.clone(), format!("{kind}: {detail}"));
                if kind == "connect" {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    (rec, opened)
}

/// Writes one request and reads one response (headers, then Content-Length bytes, or up
/// to the end of the stream when there is none). Errors are (kind, detail).
async fn exchange(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    req: &[u8],
) -> Result<Answer, (String, String)> {
    let io = |e: std::io::Error| ("io".to_string(), e.to_string());
    buf.clear();
    if let Err(e) = s.write_all(req).await {
        // A kept connection the server has closed: the write may fail as well as the read.
        return Err(("closed".to_string(), e.to_string()));
    }
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(("malformed".into(), "headers over 64 KiB".into()));
        }
        if read_more(s, buf).await.map_err(io)? == 0 {
            let kind = if buf.is_empty() {
                "closed"
            } else {
                "malformed"
            };
            return Err((
                kind.into(),
                "the connection ended before the headers".into(),
            ));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ("malformed".to_string(), "headers are not UTF-8".to_string()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| {
        (
            "malformed".to_string(),
            format!("status line {status_line:?}"),
        )
    })?;
    let mut length = None;
    let mut keep = version == "HTTP/1.1";
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") {
            if v.eq_ignore_ascii_case("close") {
                keep = false;
            } else if v.eq_ignore_ascii_case("keep-alive") {
                keep = true;
            }
        }
    }
    match length {
        Some(len) => {
            while buf.len() < head_end + len {
                if read_more(s, buf).await.map_err(io)? == 0 {
                    return Err(("malformed".into(), "the body ended early".into()));
                }
            }
        }
        None => {
            keep = false;
            while read_more(s, buf).await.map_err(io)? > 0 {}
        }
    }
    let body = &buf[head_end..];
    Ok(Answer {
        status,
        successful: ocsp_successful(body),
        reusable: keep,
    })
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether DER bytes start as an OCSPResponse with responseStatus successful (0): a
/// SEQUENCE header, then ENUMERATED 0.
fn ocsp_successful(b: &[u8]) -> bool {
    let header = match (b.first(), b.get(1)) {
        (Some(0x30), Some(&l)) if l < 0x80 => 2,
        (Some(0x30), Some(&l)) if (0x81..=0x84).contains(&l) => 2 + usize::from(l - 0x80),
        _ => return false,
    };
    b.get(header..header + 3) == Some(&[0x0a, 0x01, 0x00][..])
}

/// CPU seconds (user + system) of a process, of the children it has reaped and of its
/// living children.
fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let own = stat_fields(pid)?;
    let mut ticks = own.iter().skip(11).take(4).sum::<f64>();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if p == pid {
            continue;
        }
        if let Some(f) = stat_fields(p)
            && f.get(1).copied() == Some(f64::from(pid))
        {
            ticks += f.iter().skip(11).take(2).sum::<f64>();
        }
    }
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// The numeric fields of /proc/PID/stat after the command name (field 3, the state, is
/// NaN; field 4, the parent, is index 1; utime is index 11).
fn stat_fields(pid: u32) -> Option<Vec<f64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(
        rest.split(' ')
            .map(|x| x.trim().parse::<f64>().unwrap_or(f64::NAN))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successful_status_is_read_after_short_and_long_lengths() {
        assert!(ocsp_successful(&[0x30, 0x03, 0x0a, 0x01, 0x00]));
        assert!(ocsp_successful(&[
            0x30, 0x82, 0x01, 0xd3, 0x0a, 0x01, 0x00, 0xa0
        ]));
        assert!(ocsp_successful(&[0x30, 0x81, 0x90, 0x0a, 0x01, 0x00]));
        // tryLater (3) and malformedRequest (1), as error responses are.
        assert!(!ocsp_successful(&[0x30, 0x03, 0x0a, 0x01, 0x03]));
        assert!(!ocsp_successful(&[0x30, 0x03, 0x0a, 0x01, 0x01]));
        assert!(!ocsp_successful(b"<html>"));
        assert!(!ocsp_successful(&[]));
    }
}
