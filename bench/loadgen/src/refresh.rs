//! Refresh-token grants. Each worker owns one token chain: it presents its refresh token,
//! takes the rotated one from the answer and presents that next. A failed grant ends the
//! worker's chain (retrying a possibly spent token would look like token theft). At the
//! end the chains' current tokens are written back over the first lines of the file, so the
//! next run continues them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stats::Record;

#[derive(clap::Args)]
pub struct RefreshArgs {
    /// The token endpoint.
    #[arg(long)]
    token_url: String,
    /// Client id.
    #[arg(long)]
    client_id: String,
    /// Client secret (client_secret_basic).
    #[arg(long)]
    client_secret: String,
    /// Refresh tokens, one per line; worker i takes line i.
    #[arg(long)]
    tokens: PathBuf,
    /// Concurrent chains.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long to start new grants.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// PID of the server, to report the CPU time it used.
    #[arg(long)]
    server_pid: Option<u32>,
}

pub async fn run(a: RefreshArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.tokens)
        .with_context(|| format!("read {}", a.tokens.display()))?;
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let n = a.concurrency.max(1);
    if lines.len() < n {
        bail!(
            "{} refresh tokens for {n} workers: each worker needs its own",
            lines.len()
        );
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(n)
        .timeout(Duration::from_secs(30))
        .build()?;
    let basic = crate::basic_auth(&a.client_id, &a.client_secret);
    let cpu_before = crate::cpu_before(a.server_pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::new();
    for token in lines.iter().take(n).cloned() {
        let http = http.clone();
        let url = a.token_url.clone();
        let basic = basic.clone();
        tasks.push(tokio::spawn(async move {
            chain(http, url, basic, token, deadline).await
        }));
    }
    let mut rec = Record::default();
    let mut dead = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let (r, token, alive) = t.await?;
        rec.merge(r);
        lines[i] = token;
        dead += usize::from(!alive);
    }
    let elapsed = start.elapsed();
    let cpu = crate::cpu_fields(a.server_pid, cpu_before, rec.latencies_us.len());
    crate::write_atomic(&a.tokens, format!("{}\n", lines.join("\n")).as_bytes())?;
    let mut extra = json!({"concurrency": n, "broken_chains": dead});
    if let (Some(x), Some(c)) = (extra.as_object_mut(), cpu.as_object()) {
        x.extend(c.clone());
    }
    println!("{}", crate::stats::summary("refresh", rec, elapsed, extra));
    Ok(())
}

async fn chain(
    http: reqwest::Client,
    url: String,
    basic: String,
    mut token: String,
    deadline: Instant,
) -> (Record, String, bool) {
    let mut rec = Record::default();
    while Instant::now() < deadline {
        let t = Instant::now();
        let resp = http
            .post(&url)
            .header("authorization", &basic)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
            ])
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                rec.error("transport".into(), e.to_string());
                return (rec, token, false);
            }
        };
        let status = resp.status();
        let body: Result<Value, _> = resp.json().await;
        match (status, body) {
            (StatusCode::OK, Ok(v)) => {
                match (v["refresh_token"].as_str(), v["access_token"].as_str()) {
                    (Some(next), Some(_)) if next != token => {
                        rec.latencies_us.push(t.elapsed().as_micros() as u64);
                        token = next.to_string();
                    }
                    (Some(_), Some(_)) => {
                        rec.error(
                            "not rotated".into(),
                            "the refresh token came back unchanged".into(),
                        );
                        return (rec, token, false);
                    }
                    _ => {
                        rec.error("no tokens in answer".into(), v.to_string());
                        return (rec, token, false);
                    }
                }
            }
            (s, body) => {
                let body = body.unwrap_or(Value::Null);
                let code = body["error"].as_str().unwrap_or("").to_string();
                rec.error(format!("{} {code}", s.as_u16()), format!("{s} {body}"));
                return (rec, token, false);
            }
        }
    }
    (rec, token, true)
}
