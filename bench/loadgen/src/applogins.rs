//! Logins with the app, end to end, with the apps connected to their event streams:
//!
//! 1. `GET /oauth2/authorize` and the flow view (as `logins` does);
//! 2. `POST …/identify`, then `POST …/method {"method":"app"}`: segl opens an approval
//!    request and pushes it to the person's app;
//! 3. the app (a task here, one per app, holding `GET /api/v1/app/events`) receives the
//!    request in a `requests` event, checks its verification code against the browser's and
//!    answers "approve" with user verification `pin`, signed with its device key
//!    (`POST /api/v1/app/requests/{id}/answer`, itself a signed device call);
//! 4. the browser posts the collect step (`POST …/app {}`) once the answer has been
//!    accepted; the flow is `done`;
//! 5. `POST /oauth2/token`; the ID token must say LoA substantial with `pin` in its `amr`.
//!
//! The push latency of each login is the time from just before the method step's request
//! is sent to the moment the app's task has read the event that lists the new request.
//!
//! Two ways to drive it: `--concurrency N` keeps N logins in flight (the most logins per
//! second); `--rate R` starts R logins per second, evenly spaced, whatever the answers'
//! times (the latency at a given load). Each app takes part in one login at a time.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::apps::{Apps, Device, EventStream};
use crate::logins::{Fail, Oidc, fail};
use crate::stats::Record;

#[derive(clap::Args)]
pub struct AppLoginArgs {
    /// segl's base URL (its issuer).
    #[arg(long)]
    base: String,
    /// The apps file written by `setup-apps`.
    #[arg(long)]
    apps: PathBuf,
    /// How many of the apps connect and take part (default: all).
    #[arg(long)]
    connect: Option<usize>,
    /// Client id.
    #[arg(long)]
    client_id: String,
    /// Client secret (client_secret_basic).
    #[arg(long)]
    client_secret: String,
    /// Registered redirect URI.
    #[arg(long)]
    redirect_uri: String,
    /// Scopes asked for.
    #[arg(long, default_value = "openid")]
    scope: String,
    /// Logins in flight (with --rate: at most this many).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Start this many logins per second, evenly spaced (open loop) instead of keeping
    /// --concurrency in flight.
    #[arg(long)]
    rate: Option<f64>,
    /// How long to start new logins.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// How long a login waits for its request to reach the app.
    #[arg(long, default_value_t = 10.0)]
    push_timeout: f64,
    /// PID of the server, to report the CPU time it used.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// A connected app: its key, and the requests its event stream has brought.
struct App {
    dev: Device,
    /// New requests (each once), with the moment the event was read.
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Value, Instant)>>,
}

struct Ctx {
    oidc: Oidc,
    http: reqwest::Client,
    base: String,
    push_timeout: Duration,
}

/// What one or more logins recorded.
#[derive(Default)]
struct Out {
    rec: Record,
    push_us: Vec<u64>,
    /// Collect steps that found the flow still waiting (the answer is durable before the
    /// app hears 200, so this should stay 0).
    collect_again: u64,
}

impl Out {
    fn merge(&mut self, o: Out) {
        self.rec.merge(o.rec);
        self.push_us.extend(o.push_us);
        self.collect_again += o.collect_again;
    }
}

pub async fn run(a: AppLoginArgs) -> anyhow::Result<()> {
    let file = Apps::read(&a.apps)?;
    let n = a.connect.unwrap_or(file.apps.len()).min(file.apps.len());
    let conc = a.concurrency.max(1);
    if n < conc {
        bail!("{n} apps for {conc} logins in flight: each login needs an app of its own");
    }
    let base = a.base.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(conc * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    // The event streams stay open: no overall timeout on their client.
    let sse_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let ctx = Arc::new(Ctx {
        oidc: Oidc {
            http: http.clone(),
            base: base.clone(),
            client_id: a.client_id.clone(),
            redirect_uri: a.redirect_uri.clone(),
            scope: a.scope.clone(),
            basic: crate::basic_auth(&a.client_id, &a.client_secret),
            prompt_login: false,
            // These browsers choose the app each time (the step is measured).
            remembered_method: None,
        },
        http,
        base: base.clone(),
        push_timeout: Duration::from_secs_f64(a.push_timeout),
    });

    // Connect every app and wait for each stream's first list.
    let sse_errors = Arc::new(AtomicU64::new(0));
    let mut apps = Vec::with_capacity(n);
    let mut readers = Vec::with_capacity(n);
    let mut ready = Vec::with_capacity(n);
    let t_connect = Instant::now();
    for p in file.apps.iter().take(n) {
        let dev = Device::from_person(p)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let reader_dev = Device::from_person(p)?;
        readers.push(tokio::spawn(reader(
            sse_http.clone(),
            base.clone(),
            reader_dev,
            tx,
            ready_tx,
            sse_errors.clone(),
        )));
        ready.push(ready_rx);
        apps.push(Arc::new(App {
            dev,
            rx: tokio::sync::Mutex::new(rx),
        }));
    }
    for r in ready {
        if r.await.is_err() {
            bail!("an app's event stream failed before its first event");
        }
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let idle: Arc<Mutex<VecDeque<usize>>> = Arc::new(Mutex::new((0..n).collect()));

    let cpu_before = crate::cpu_before(a.server_pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let mut out = Out::default();
    let mut skipped = 0u64;
    let mut in_flight_max = 0usize;
    match a.rate {
        None => {
            let mut tasks = Vec::new();
            for _ in 0..conc {
                let (ctx, apps, idle) = (ctx.clone(), apps.clone(), idle.clone());
                tasks.push(tokio::spawn(async move {
                    let mut out = Out::default();
                    while Instant::now() < deadline {
                        let Some(i) = idle.lock().expect("lock").pop_front() else {
                            break;
                        };
                        one(&ctx, &apps[i], &mut out).await;
                        idle.lock().expect("lock").push_back(i);
                    }
                    out
                }));
            }
            for t in tasks {
                out.merge(t.await?);
            }
            in_flight_max = conc;
        }
        Some(rate) => {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
            let mut running = tokio::task::JoinSet::new();
            while Instant::now() < deadline {
                tokio::select! {
                    _ = tick.tick() => {
                        let free = if running.len() < conc {
                            idle.lock().expect("lock").pop_front()
                        } else {
                            None
                        };
                        let Some(i) = free else {
                            skipped += 1;
                            continue;
                        };
                        let (ctx, app, idle) = (ctx.clone(), apps[i].clone(), idle.clone());
                        running.spawn(async move {
                            let mut out = Out::default();
                            one(&ctx, &app, &mut out).await;
                            idle.lock().expect("lock").push_back(i);
                            out
                        });
                        in_flight_max = in_flight_max.max(running.len());
                    }
                    Some(done) = running.join_next(), if !running.is_empty() => {
                        out.merge(done?);
                    }
                }
            }
            while let Some(done) = running.join_next().await {
                out.merge(done?);
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = crate::cpu_fields(a.server_pid, cpu_before, out.rec.latencies_us.len());
    for r in &readers {
        r.abort();
    }
    out.push_us.sort_unstable();
    let pct = |p: usize| -> f64 {
        if out.push_us.is_empty() {
            return 0.0;
        }
        let i = (out.push_us.len() * p / 100).min(out.push_us.len() - 1);
        (out.push_us[i] as f64 / 1000.0 * 1000.0).round() / 1000.0
    };
    let mut extra = json!({
        "mode": if a.rate.is_some() { "rate" } else { "closed" },
        "target_rate": a.rate,
        "concurrency": conc,
        "in_flight_max": in_flight_max,
        "apps_connected": n,
        "connect_seconds": (connect_secs * 1000.0).round() / 1000.0,
        "skipped": skipped,
        "push_count": out.push_us.len(),
        "push_p50_ms": pct(50),
        "push_p90_ms": pct(90),
        "push_p99_ms": pct(99),
        "push_max_ms": out.push_us.last().map_or(0.0, |&m| m as f64 / 1000.0),
        "collect_again": out.collect_again,
        "sse_errors": sse_errors.load(Ordering::Relaxed),
        "scope": a.scope,
    });
    if let (Some(x), Some(c)) = (extra.as_object_mut(), cpu.as_object()) {
        x.extend(c.clone());
    }
    println!(
        "{}",
        crate::stats::summary("app_logins", out.rec, elapsed, extra)
    );
    Ok(())
}

/// One login, recorded.
async fn one(ctx: &Ctx, app: &App, out: &mut Out) {
    let t = Instant::now();
    match login(ctx, app, out).await {
        Ok(()) => out.rec.latencies_us.push(t.elapsed().as_micros() as u64),
        Err(f) => out.rec.error(f.kind, f.detail),
    }
}

async fn login(ctx: &Ctx, app: &App, out: &mut Out) -> Result<(), Fail> {
    let mut rx = app.rx.lock().await;
    // Requests of an earlier, failed login of this app are not this one's.
    while rx.try_recv().is_ok() {}
    let o = &ctx.oidc;
    let rec = &mut out.rec;
    let mut s = o.start(rec).await?;
    if s.view["state"] != "identify" {
        return Err(fail(
            "flow",
            format!("state {} at the start", s.view["state"]),
        ));
    }
    o.step(
        &mut s,
        "identify",
        "3_identify",
        &json!({"nin": app.dev.nin}),
        rec,
    )
    .await?;
    if s.view["state"] != "choose_method"
        || !s.view["methods"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == "app"))
    {
        return Err(fail("identify", format!("no app to choose: {}", s.view)));
    }
    let t0 = Instant::now();
    o.step(&mut s, "method", "4_method", &json!({"method": "app"}), rec)
        .await?;
    if s.view["state"] != "app_pending" {
        return Err(fail("method", format!("state {}", s.view["state"])));
    }
    let code = s.view["app"]["verification_code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The app shows the request; the person compares the codes.
    let until = t0 + ctx.push_timeout;
    let (q, seen_at) = loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((q, at))) if q["verification_code"] == code.as_str() => break (q, at),
            Ok(Some(_)) => continue,
            Ok(None) => return Err(fail("push", "the app's event stream ended")),
            Err(_) => {
                return Err(fail(
                    "push",
                    format!("no request within {:?}", ctx.push_timeout),
                ));
            }
        }
    };
    let push = seen_at.saturating_duration_since(t0);
    out.push_us.push(push.as_micros() as u64);
    rec.stage("5_push", push);

    let t = Instant::now();
    let state = app.dev.approve(&ctx.http, &ctx.base, &q).await?;
    if state != "approved" {
        return Err(fail("answer", format!("state {state}")));
    }
    rec.stage("6_answer", t.elapsed());

    // The answer is recorded: the collect step finishes the login.
    for _ in 0..50 {
        o.step(&mut s, "app", "7_collect", &json!({}), rec).await?;
        if s.view["state"] != "app_pending" {
            break;
        }
        out.collect_again += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tokens = o.finish(&s, "8_token", rec).await?;
    let claims = tokens["id_token"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| data_encoding::BASE64URL_NOPAD.decode(p.as_bytes()).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let pin = claims["amr"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "pin"));
    if claims["acr"] != "http://eidas.europa.eu/LoA/substantial" || !pin {
        return Err(fail(
            "token",
            format!(
                "not an app login: acr {} amr {}",
                claims["acr"], claims["amr"]
            ),
        ));
    }
    Ok(())
}

/// Holds one app's event stream: each request listed for the first time goes to the app's
/// channel with the moment its event was read. The list sent on the first connect is taken
/// as already seen (earlier runs' leftovers). Reconnects after a broken stream.
async fn reader(
    http: reqwest::Client,
    base: String,
    dev: Device,
    tx: mpsc::UnboundedSender<(Value, Instant)>,
    ready: tokio::sync::oneshot::Sender<()>,
    errors: Arc<AtomicU64>,
) {
    let mut ready = Some(ready);
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let mut stream = match EventStream::connect(&http, &base, &dev).await {
            Ok(s) => s,
            Err(e) => {
                if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("loadgen: app_logins: event stream: {e:#}");
                }
                if ready.is_some() {
                    // The first connection failed: the run cannot start.
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let ev = match stream.next().await {
                Ok(Some(ev)) => ev,
                Ok(None) | Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            let at = Instant::now();
            if ev.event != "requests" {
                continue;
            }
            let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            let list = v["requests"].as_array().cloned().unwrap_or_default();
            let mut now_listed = HashSet::new();
            for q in list {
                let id = q["id"].as_str().unwrap_or_default().to_string();
                if !seen.contains(&id) && ready.is_none() {
                    let _ = tx.send((q, at));
                }
                now_listed.insert(id);
            }
            // A request leaves the list for good once answered, withdrawn or lapsed.
            seen = now_listed;
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
    }
}
