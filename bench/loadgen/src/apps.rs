//! The phone app's side, for the app benchmarks (issue 3):
//!
//! - `setup-apps`: K persons with a Norwegian mobile number and no password, made with
//!   segl's CLI (`segl person add`, `segl person activation-code`, several at a time), and
//!   one app per person activated over HTTP (`POST /api/v1/app/activations`) with a
//!   device key made here; writes `apps.json` (NIN, app ID, the key as PKCS#8).
//! - [`Device`]: a device-API call signed as the app signs it (`X-Segl-App-Id`,
//!   `X-Segl-Nonce`, `X-Segl-Timestamp`, `X-Segl-Signature` over
//!   `segl_core::app::DeviceRequest`).
//! - [`EventStream`]: the app's server-sent-events connection (`GET /api/v1/app/events`),
//!   with a minimal SSE parser.
//!
//! The signed bytes come from segl-core and the key from segl-app, as in segl's reference
//! app (`segl app`): the wire format has fixed vectors checked against an independent
//! implementation in segl's own tests.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use data_encoding::BASE64URL_NOPAD;
use segl_app::device::DeviceKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(clap::Args)]
pub struct SetupAppsArgs {
    /// The segl binary.
    #[arg(long)]
    segl: PathBuf,
    /// segl's data directory (its segl.toml should set a short
    /// `[policy.app] security_period_secs`, or the activations wait for it).
    #[arg(long)]
    data_dir: PathBuf,
    /// segl's database URL (default: SQLite in the data directory).
    #[arg(long)]
    database_url: Option<String>,
    /// The running `segl serve` (its issuer), for the activations.
    #[arg(long)]
    base: String,
    /// How many persons (each with one app).
    #[arg(long, default_value_t = 1000)]
    people: usize,
    /// Where to write the apps.
    #[arg(long)]
    out: PathBuf,
    /// Redirect URI of the benchmark client.
    #[arg(long, default_value = "http://127.0.0.1:9/cb")]
    redirect_uri: String,
    /// segl CLI processes run at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Activations sent at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// A person and their activated app.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppPerson {
    /// National identity number.
    pub nin: String,
    /// The app ID segl gave at activation.
    pub app_id: String,
    /// The device key, PKCS#8 DER, base64url.
    pub pkcs8: String,
}

/// The file `setup-apps` writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Apps {
    /// The persons with their apps.
    pub apps: Vec<AppPerson>,
}

impl Apps {
    /// Reads the apps file.
    pub fn read(path: &PathBuf) -> anyhow::Result<Apps> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text).context("apps file")
    }
}

/// An activated app: its ID and its device key.
pub struct Device {
    pub nin: String,
    pub app_id: String,
    pub key: DeviceKey,
}

impl Device {
    pub fn from_person(p: &AppPerson) -> anyhow::Result<Device> {
        let der = BASE64URL_NOPAD
            .decode(p.pkcs8.as_bytes())
            .context("pkcs8 is not base64url")?;
        Ok(Device {
            nin: p.nin.clone(),
            app_id: p.app_id.clone(),
            key: DeviceKey::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("device key: {e}"))?,
        })
    }

    /// The four device-API headers for `method path` with `body` (fresh nonce, now).
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<[(&'static str, String); 4]> {
        let nonce = crate::random_token(18);
        let timestamp = unix_now();
        let request = segl_core::app::DeviceRequest {
            app_id: &self.app_id,
            nonce: &nonce,
            method,
            path,
            timestamp,
            body_sha256: Sha256::digest(body).into(),
        };
        let sig = self
            .key
            .sign_request(&request)
            .map_err(|e| anyhow::anyhow!("sign: {e}"))?;
        Ok([
            ("x-segl-app-id", self.app_id.clone()),
            ("x-segl-nonce", nonce),
            ("x-segl-timestamp", timestamp.to_string()),
            ("x-segl-signature", BASE64URL_NOPAD.encode(&sig)),
        ])
    }

    /// A signed request (`path` starts with `/`); a body is sent as JSON.
    pub fn request(
        &self,
        http: &reqwest::Client,
        base: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut rb = http.request(method.clone(), format!("{base}{path}"));
        for (k, v) in self.headers(method.as_str(), path, bytes.as_bytes())? {
            rb = rb.header(k, v);
        }
        if body.is_some() {
            rb = rb.header("content-type", "application/json").body(bytes);
        }
        Ok(rb)
    }

    /// "Yes, it's me", unlocked with the PIN: the signed answer to request `q` (as listed
    /// by the event stream), sent signed. Returns the request's new state.
    pub async fn approve(
        &self,
        http: &reqwest::Client,
        base: &str,
        q: &Value,
    ) -> Result<String, crate::logins::Fail> {
        use crate::logins::{fail, problem};
        let field = |k: &str| q[k].as_str().unwrap_or_default().to_string();
        let payload = segl_core::app::ApprovalPayload {
            request_id: field("id"),
            rp: field("rp"),
            verification_code: field("verification_code"),
            text_sha256: Sha256::digest(field("text").as_bytes()).into(),
            decision: segl_core::app::Decision::Approve,
            user_verification: Some(segl_core::app::UserVerification::Pin),
        };
        let sig = self.key.sign(&payload).map_err(|e| fail("answer", e))?;
        let body = json!({
            "decision": "approve",
            "user_verification": "pin",
            "signature": BASE64URL_NOPAD.encode(&sig),
        });
        let path = format!("/api/v1/app/requests/{}/answer", payload.request_id);
        let resp = self
            .request(http, base, reqwest::Method::POST, &path, Some(&body))
            .map_err(|e| fail("answer", e))?
            .send()
            .await
            .map_err(|e| fail("answer", e))?;
        if !resp.status().is_success() {
            return Err(problem("answer", resp).await);
        }
        let v: Value = resp.json().await.map_err(|e| fail("answer", e))?;
        Ok(v["state"].as_str().unwrap_or("").to_string())
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One server-sent event.
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// The app's event stream, `GET /api/v1/app/events`, signed.
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl EventStream {
    /// Connects and checks the answer is 200.
    pub async fn connect(
        http: &reqwest::Client,
        base: &str,
        dev: &Device,
    ) -> anyhow::Result<EventStream> {
        let resp = dev
            .request(http, base, reqwest::Method::GET, "/api/v1/app/events", None)?
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            bail!(
                "events: {status} {}",
                body.chars().take(200).collect::<String>()
            );
        }
        Ok(EventStream {
            resp,
            buf: Vec::new(),
        })
    }

    /// The next event with a name or data (keep-alive comments are skipped); `None` when
    /// the server closed the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(end) = find(&self.buf, b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let mut event = String::new();
                let mut data: Vec<&str> = Vec::new();
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue;
                }
                if event.is_empty() {
                    event = "message".into();
                }
                return Ok(Some(SseEvent {
                    event,
                    data: data.join("\n"),
                }));
            }
            match self.resp.chunk().await? {
                Some(c) => self.buf.extend_from_slice(&c),
                None => return Ok(None),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// setup-apps

/// Runs `segl --data-dir … [--database-url …] --json ARGS` and returns its JSON output.
fn segl(a: &SetupAppsArgs, args: &[&str]) -> anyhow::Result<Value> {
    let mut cmd = Command::new(&a.segl);
    cmd.arg("--data-dir").arg(&a.data_dir);
    if let Some(u) = &a.database_url {
        cmd.arg("--database-url").arg(u);
    }
    cmd.arg("--json").args(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", a.segl.display()))?;
    if !out.status.success() {
        bail!(
            "segl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("segl {}: output is not JSON: {text}", args.join(" ")))
}

/// Runs `f(i)` for i in 0..n on `threads` threads; the results in order, or the first error.
fn parallel<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    let first_err: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || first_err.lock().expect("lock").is_some() {
                        return;
                    }
                    match f(i) {
                        Ok(v) => out.lock().expect("lock")[i] = Some(v),
                        Err(e) => {
                            first_err.lock().expect("lock").get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().expect("lock") {
        return Err(e);
    }
    Ok(out
        .into_inner()
        .expect("lock")
        .into_iter()
        .map(|v| v.expect("every index ran"))
        .collect())
}

/// Creates the persons, their activation codes and the client with segl's CLI, activates
/// one app per person over HTTP, writes the apps file and prints
/// `{"client_id","client_secret","redirect_uri","apps","apps_file","setup_seconds"}`.
pub fn setup(a: &SetupAppsArgs) -> anyhow::Result<()> {
    if a.people == 0 {
        bail!("--people must be at least 1");
    }
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.data_dir)?;
    let seed = crate::random_bytes(8);
    let mut x = u64::from_le_bytes(seed.try_into().expect("8 bytes")) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seen = HashSet::new();
    let nins: Vec<String> = (0..a.people)
        .map(|_| {
            loop {
                let n = crate::nin::generate(&mut next);
                if crate::nin::is_valid(&n) && seen.insert(n.clone()) {
                    break n;
                }
            }
        })
        .collect();
    // Persons with a mobile number (the app needs one) and no password: no hash on the
    // login path, and none spent here.
    parallel(a.people, a.parallel, |i| {
        let name = format!("Bench App{i}");
        let phone = format!("+479{:07}", i % 10_000_000);
        segl(
            a,
            &[
                "person", "add", "--nin", &nins[i], "--name", &name, "--phone", &phone,
            ],
        )
        .map(drop)
    })?;
    let codes = parallel(a.people, a.parallel, |i| {
        let v = segl(a, &["person", "activation-code", "--nin", &nins[i]])?;
        let code = v["activation_code"]
            .as_str()
            .context("activation-code: no activation_code")?
            .to_string();
        let opens_at = v["opens_at"]
            .as_i64()
            .context("activation-code: no opens_at")?;
        Ok((code, opens_at))
    })?;
    let rp = segl(
        a,
        &[
            "rp",
            "add",
            "--name",
            "segl app benchmark",
            "--redirect-uri",
            &a.redirect_uri,
            "--auth-method",
            "client_secret_basic",
            "--id-token-alg",
            "ES256",
        ],
    )?;
    let client_id = rp["client_id"]
        .as_str()
        .context("rp add: no client_id")?
        .to_string();
    let client_secret = rp["client_secret"]
        .as_str()
        .context("rp add: no client_secret")?
        .to_string();
    let cli_secs = t0.elapsed().as_secs_f64();

    // The codes open after the security period.
    let opens = codes.iter().map(|c| c.1).max().unwrap_or(0);
    while unix_now() < opens {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let apps = rt.block_on(activate_all(a, &nins, codes))?;
    crate::write_atomic(
        &a.out,
        serde_json::to_string_pretty(&Apps { apps })?.as_bytes(),
    )?;
    println!(
        "{}",
        json!({
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": a.redirect_uri,
            "apps": a.people,
            "apps_file": a.out.display().to_string(),
            "cli_seconds": (cli_secs * 10.0).round() / 10.0,
            "setup_seconds": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    );
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Activates one app per code, `concurrency` at a time, each with a fresh device key.
async fn activate_all(
    a: &SetupAppsArgs,
    nins: &[String],
    codes: Vec<(String, i64)>,
) -> anyhow::Result<Vec<AppPerson>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let base = a.base.trim_end_matches('/').to_string();
    let work: Arc<Mutex<Vec<(usize, String)>>> = Arc::new(Mutex::new(
        codes.into_iter().map(|c| c.0).enumerate().rev().collect(),
    ));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (http, base, work) = (http.clone(), base.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let Some((i, code)) = work.lock().expect("lock").pop() else {
                    return Ok::<_, anyhow::Error>(done);
                };
                let key = DeviceKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut tries = 0;
                let app_id = loop {
                    let resp = http
                        .post(format!("{base}/api/v1/app/activations"))
                        .json(&json!({
                            "activation_code": code,
                            "public_key": key.public_key_b64url(),
                            "label": "loadgen",
                        }))
                        .send()
                        .await?;
                    let status = resp.status();
                    let v: Value = resp.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        break v["app_id"]
                            .as_str()
                            .context("activation: no app_id")?
                            .to_string();
                    }
                    // Not open yet (clocks round to the second): wait a little.
                    tries += 1;
                    if v["code"] == "activation_not_open" && tries < 20 {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    bail!("activation: {status} {v}");
                };
                let pkcs8 = key.to_pkcs8().map_err(|e| anyhow::anyhow!("{e}"))?;
                done.push((
                    i,
                    AppPerson {
                        nin: String::new(),
                        app_id,
                        pkcs8: BASE64URL_NOPAD.encode(&pkcs8),
                    },
                ));
            }
        }));
    }
    let mut all: Vec<Option<AppPerson>> = vec![None; nins.len()];
    for t in tasks {
        for (i, mut p) in t.await?? {
            p.nin = nins[i].clone();
            all[i] = Some(p);
        }
    }
    all.into_iter()
        .enumerate()
        .map(|(i, p)| p.with_context(|| format!("person {i} has no app")))
        .collect()
}
