//! Full logins through segl's flow API, as docs/interfaces.md describes it, by browsers
//! without a single sign-on session (no `segl_sid` is ever sent, so no login is skipped):
//!
//! 1. `GET /oauth2/authorize` (code flow, PKCE S256) → redirect to `/login?flow=ID`, which
//!    sets the flow cookie `segl_flow`;
//! 2. `GET /api/v1/flows/ID` → the flow view with its CSRF token;
//! 3. `POST …/identify`, `…/otp`, `…/password`, each with the cookie and `X-CSRF-Token`,
//!    until the flow is `done` and names the redirect with the code; with `--first-visit`
//!    also `…/method` (`otp`) after identify;
//! 4. `POST /oauth2/token` (authorization_code, client_secret_basic, code_verifier).
//!
//! The browsers are returning ones by default: they send the `segl_method=otp` cookie that
//! the login page set at their last login, so segl skips the choice of method, as the
//! issue's definition of a login (authorize → identify → OTP → password → token) has it.
//! With `--first-visit` they have no such cookie and choose the method each time.
//!
//! Each worker owns a disjoint set of persons, so one person's HOTP counter is only ever
//! advanced by one worker; the counters are written back to the people file at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::setup::{People, Person};
use crate::stats::Record;

#[derive(clap::Args)]
pub struct LoginArgs {
    /// segl's base URL (its issuer), e.g. http://127.0.0.1:PORT.
    #[arg(long)]
    base: String,
    /// The people file written by `setup`.
    #[arg(long)]
    people: PathBuf,
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
    #[arg(long, default_value = "openid offline_access")]
    scope: String,
    /// Concurrent logins (each worker owns people/concurrency persons).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to start new logins.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Also send prompt=login.
    #[arg(long)]
    prompt_login: bool,
    /// Browsers on their first visit: no remembered method (no `segl_method` cookie), so
    /// each login also takes the method step.
    #[arg(long)]
    first_visit: bool,
    /// PID of the server, to report the CPU time it used.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append the refresh tokens received to this file, one per line.
    #[arg(long)]
    save_refresh: Option<PathBuf>,
}

struct Ctx {
    oidc: Oidc,
    want_refresh: bool,
}

/// A client of segl's authorization endpoint and flow API: what each login needs.
pub struct Oidc {
    pub http: reqwest::Client,
    pub base: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub basic: String,
    pub prompt_login: bool,
    /// The browser's remembered method (`segl_method`), sent with the authorization request.
    pub remembered_method: Option<&'static str>,
}

/// Why a login failed: the stage, and a kind for counting.
pub struct Fail {
    pub kind: String,
    pub detail: String,
}

pub fn fail(stage: &str, what: impl std::fmt::Display) -> Fail {
    let what = what.to_string();
    Fail {
        kind: format!("{stage}: {}", what.chars().take(60).collect::<String>()),
        detail: format!("{stage}: {what}"),
    }
}

pub async fn run(a: LoginArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.people)
        .with_context(|| format!("read {}", a.people.display()))?;
    let people: People = serde_json::from_str(&text).context("people file")?;
    let n = a.concurrency.max(1);
    if people.people.len() < n {
        bail!(
            "{} persons for {n} workers: each worker needs its own",
            people.people.len()
        );
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(n)
        .timeout(Duration::from_secs(60))
        .build()?;
    let ctx = std::sync::Arc::new(Ctx {
        oidc: Oidc {
            http,
            base: a.base.trim_end_matches('/').to_string(),
            client_id: a.client_id.clone(),
            redirect_uri: a.redirect_uri.clone(),
            scope: a.scope.clone(),
            basic: crate::basic_auth(&a.client_id, &a.client_secret),
            prompt_login: a.prompt_login,
            remembered_method: (!a.first_visit).then_some("otp"),
        },
        want_refresh: a.scope.split(' ').any(|s| s == "offline_access"),
    });
    // Worker w owns persons w, w+n, w+2n, …
    let mut shares: Vec<Vec<(usize, Person)>> = vec![Vec::new(); n];
    for (i, p) in people.people.iter().cloned().enumerate() {
        shares[i % n].push((i, p));
    }
    let cpu_before = crate::cpu_before(a.server_pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::new();
    for share in shares {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(
            async move { worker(ctx, share, deadline).await },
        ));
    }
    let mut rec = Record::default();
    let mut all = people.people.clone();
    let mut refresh_tokens = Vec::new();
    for t in tasks {
        let (r, share, rts) = t.await?;
        rec.merge(r);
        for (i, p) in share {
            all[i] = p;
        }
        refresh_tokens.extend(rts);
    }
    let elapsed = start.elapsed();
    let cpu = crate::cpu_fields(a.server_pid, cpu_before, rec.latencies_us.len());
    crate::write_atomic(
        &a.people,
        serde_json::to_string_pretty(&People { people: all })?.as_bytes(),
    )?;
    if let Some(path) = &a.save_refresh {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for t in &refresh_tokens {
            writeln!(f, "{t}")?;
        }
    }
    let mut extra = json!({"concurrency": n, "people": people.people.len(), "scope": a.scope,
        "first_visit": a.first_visit});
    if let (Some(x), Some(c)) = (extra.as_object_mut(), cpu.as_object()) {
        x.extend(c.clone());
    }
    println!("{}", crate::stats::summary("logins", rec, elapsed, extra));
    Ok(())
}

async fn worker(
    ctx: std::sync::Arc<Ctx>,
    mut share: Vec<(usize, Person)>,
    deadline: Instant,
) -> (Record, Vec<(usize, Person)>, Vec<String>) {
    let mut rec = Record::default();
    let mut rts = Vec::new();
    let mut turn = 0usize;
    while Instant::now() < deadline {
        let k = turn % share.len();
        turn += 1;
        let t = Instant::now();
        match login(&ctx, &mut share[k].1, &mut rec).await {
            Ok(rt) => {
                rec.latencies_us.push(t.elapsed().as_micros() as u64);
                rts.extend(rt);
            }
            Err(f) => rec.error(f.kind, f.detail),
        }
    }
    (rec, share, rts)
}

/// The `segl_flow` value among the Set-Cookie headers.
fn flow_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("segl_flow="))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

/// One problem+json (or other) error response as a short kind.
pub async fn problem(stage: &str, resp: reqwest::Response) -> Fail {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("code")
                .or(v.get("error"))
                .and_then(|c| c.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    Fail {
        kind: format!("{stage}: {} {code}", status.as_u16()),
        detail: format!(
            "{stage}: {status} {}",
            body.chars().take(300).collect::<String>()
        ),
    }
}

/// A login flow that has been started: what its steps and its end need.
pub struct Started {
    /// `segl_flow=…`, sent with every step.
    pub cookie: String,
    /// `{base}/api/v1/flows/{id}`.
    pub flow_url: String,
    /// The flow view after the last step.
    pub view: Value,
    state: String,
    verifier: String,
}

impl Oidc {
    /// Steps 1 and 2: `GET /oauth2/authorize` (PKCE S256), then the flow view.
    pub async fn start(&self, rec: &mut Record) -> Result<Started, Fail> {
        let verifier = crate::random_token(32);
        let challenge = data_encoding::BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
        let state = crate::random_token(12);
        let nonce = crate::random_token(12);
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", self.scope.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if self.prompt_login {
            q.push(("prompt", "login"));
        }
        let url = Url::parse_with_params(&format!("{}/oauth2/authorize", self.base), &q)
            .map_err(|e| fail("authorize", e))?;

        // 1. authorize
        let t = Instant::now();
        let mut req = self.http.get(url);
        if let Some(m) = self.remembered_method {
            req = req.header("cookie", format!("segl_method={m}"));
        }
        let resp = req.send().await.map_err(|e| fail("authorize", e))?;
        if !resp.status().is_redirection() {
            return Err(problem("authorize", resp).await);
        }
        let cookie =
            flow_cookie(resp.headers()).ok_or_else(|| fail("authorize", "no segl_flow cookie"))?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| fail("authorize", "no Location"))?;
        let location = Url::parse(&self.base)
            .and_then(|b| b.join(location))
            .map_err(|e| fail("authorize", e))?;
        let flow_id = location
            .query_pairs()
            .find(|(k, _)| k == "flow")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| fail("authorize", format!("no flow id in {location}")))?;
        rec.stage("1_authorize", t.elapsed());
        let cookie = format!("segl_flow={cookie}");
        let flow_url = format!("{}/api/v1/flows/{flow_id}", self.base);

        // 2. the flow view
        let t = Instant::now();
        let resp = self
            .http
            .get(&flow_url)
            .header("cookie", &cookie)
            .send()
            .await
            .map_err(|e| fail("flow", e))?;
        if resp.status() != StatusCode::OK {
            return Err(problem("flow", resp).await);
        }
        let view: Value = resp.json().await.map_err(|e| fail("flow", e))?;
        rec.stage("2_flow", t.elapsed());
        Ok(Started {
            cookie,
            flow_url,
            view,
            state,
            verifier,
        })
    }

    /// One step of the flow (`POST …/{step}` with the cookie and the CSRF token of the last
    /// view); the new view replaces the old one. Its time is recorded as `stage`.
    pub async fn step(
        &self,
        s: &mut Started,
        step: &str,
        stage: &'static str,
        body: &Value,
        rec: &mut Record,
    ) -> Result<(), Fail> {
        let csrf = s.view["csrf_token"].as_str().unwrap_or("").to_string();
        let t = Instant::now();
        let resp = self
            .http
            .post(format!("{}/{step}", s.flow_url))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", csrf)
            .json(body)
            .send()
            .await
            .map_err(|e| fail(step, e))?;
        if !resp.status().is_success() {
            return Err(problem(step, resp).await);
        }
        s.view = resp.json().await.map_err(|e| fail(step, e))?;
        rec.stage(stage, t.elapsed());
        Ok(())
    }

    /// The end of a login: the flow is `done`; its redirect carries the code and the state,
    /// which is exchanged at the token endpoint (client_secret_basic, code_verifier).
    /// Returns the token response.
    pub async fn finish(
        &self,
        s: &Started,
        stage: &'static str,
        rec: &mut Record,
    ) -> Result<Value, Fail> {
        let view = &s.view;
        if view["state"] != "done" {
            return Err(fail(
                "flow",
                format!("not done after the steps: {}", view["state"]),
            ));
        }
        let redirect = view["redirect_to"]
            .as_str()
            .ok_or_else(|| fail("flow", "done without redirect_to"))?;
        let redirect = Url::parse(redirect).map_err(|e| fail("flow", e))?;
        let param = |name: &str| {
            redirect
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let Some(err) = param("error") {
            return Err(fail("flow", format!("redirected with error {err}")));
        }
        if param("state").as_deref() != Some(s.state.as_str()) {
            return Err(fail("flow", "state does not round-trip"));
        }
        let code = param("code").ok_or_else(|| fail("flow", "no code in redirect_to"))?;

        // token exchange
        let t = Instant::now();
        let resp = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .header("authorization", &self.basic)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("code_verifier", s.verifier.as_str()),
            ])
            .send()
            .await
            .map_err(|e| fail("token", e))?;
        if resp.status() != StatusCode::OK {
            return Err(problem("token", resp).await);
        }
        let tokens: Value = resp.json().await.map_err(|e| fail("token", e))?;
        rec.stage(stage, t.elapsed());
        if !tokens["access_token"].is_string() || !tokens["id_token"].is_string() {
            return Err(fail("token", "no access_token or id_token"));
        }
        Ok(tokens)
    }
}

async fn login(ctx: &Ctx, p: &mut Person, rec: &mut Record) -> Result<Option<String>, Fail> {
    let o = &ctx.oidc;
    let mut s = o.start(rec).await?;

    // 3. the steps, as the flow asks for them
    for _ in 0..8 {
        let state_now = s.view["state"].as_str().unwrap_or("").to_string();
        let (step, stage, body) = match state_now.as_str() {
            "done" => break,
            "identify" => ("identify", "3_identify", json!({"nin": p.nin})),
            "choose_method" => ("method", "4_method", json!({"method": "otp"})),
            "otp" => {
                let secret = data_encoding::HEXLOWER
                    .decode(p.secret_hex.as_bytes())
                    .map_err(|e| fail("otp", e))?;
                let code = crate::hotp::hotp(&secret, p.counter, p.digits);
                // Advance whatever happens: a code sent once is spent or at worst skipped,
                // which segl's look-ahead window absorbs.
                p.counter += 1;
                ("otp", "5_otp", json!({"otp": code}))
            }
            "password" => ("password", "6_password", json!({"password": p.password})),
            other => return Err(fail("flow", format!("state {other}: {}", s.view["error"]))),
        };
        o.step(&mut s, step, stage, &body, rec).await?;
    }

    // 4. token exchange
    let tokens = o.finish(&s, "7_token", rec).await?;
    let rt = tokens["refresh_token"].as_str().map(str::to_string);
    if ctx.want_refresh && rt.is_none() {
        return Err(fail(
            "token",
            "offline_access asked for but no refresh_token",
        ));
    }
    Ok(rt)
}
