//! Harness for segl's end-to-end tests: each test gets its own data directory and (for
//! PostgreSQL) its own database, starts the real `segl` binary on 127.0.0.1:0 and drives it
//! as outside clients would: the CLI as an operator, the flow API as a browser, the OIDC
//! endpoints through the `openidconnect` crate as a relying party.
//!
//! - [`Backend`], [`Segl`], [`Server`]: databases, CLI runs and server processes.
//! - [`hotp`], [`totp`], [`Hotp`]: an OTP implementation of the tests' own (not segl's).
//! - [`Browser`]: a cookie-carrying HTTP client that never follows redirects.
//! - [`Rp`], [`discover`], [`AuthStart`]: the relying party side of the code flow.
//! - [`Fixture`]: a running server with one person, one code device and one client.
//! - [`AppFx`], [`ActivatedApp`], [`Watch`], [`collect_app`]: the reference app (`segl app …`).
//! - [`openssl_present`], [`openssl`]: the `openssl` tool (in `openssl.rs`).
//! - [`browser_prerequisites`], [`NodeScript`]: Chromium and the node scripts of
//!   `tests/browser` (in `chromium.rs`).
//!
//! Each test binary uses a different part of this module, hence the `dead_code` and
//! `unused_macros` allowances.
#![allow(dead_code, unused_macros)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreTokenResponse,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha1::Sha1;
use url::Url;

mod chromium;
mod openssl;
mod orders;
// Like the rest of this module, not used by every test binary.
#[allow(unused_imports)]
pub use chromium::*;
#[allow(unused_imports)]
pub use openssl::*;
#[allow(unused_imports)]
pub use orders::*;

/// How long a server may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

/// Whether this run is CI's (env `CI` set and not `false`/`0`): there nothing is skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips a part of a test with a printed reason, or fails it in CI, where nothing may be
/// skipped. Returns normally only when skipping is allowed.
pub fn skip(what: &str, reason: &str) {
    if in_ci() {
        panic!("{what} is required in CI (CI is set), but {reason}");
    }
    println!("skipping {what}: {reason}");
    eprintln!("skipping {what}: {reason}");
}

/// A database backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a SQLite file in the data directory.
    Sqlite,
    /// PostgreSQL at `SEGL_TEST_POSTGRES_URL`, one fresh database per test.
    Postgres,
}

impl Backend {
    /// PostgreSQL when `SEGL_TEST_POSTGRES_URL` is set; otherwise prints why it is
    /// skipped (or fails in CI).
    pub fn postgres() -> Option<Backend> {
        if postgres_admin_url().is_some() {
            Some(Backend::Postgres)
        } else {
            skip("PostgreSQL", "SEGL_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// The backends to test: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    v.extend(Backend::postgres());
    v
}

/// The admin URL of the test PostgreSQL server, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("SEGL_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Generates one `#[tokio::test]` per backend for each named `async fn name(Backend)`:
/// `name::sqlite` and `name::postgres`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(crate::common::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(b) = crate::common::Backend::postgres() {
                        super::$name(b).await;
                    }
                }
            }
        )*
    };
}

/// The value of an unlabelled counter sample in a Prometheus/OpenMetrics text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{text}"))
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("sample {name} is no number ({e}):\n{text}")) as u64
}

/// A server's `/metrics` text.
pub async fn metrics(server: &Server) -> String {
    let url = server.url("/metrics");
    let r = Resp::fetch(no_redirect_client().get(&url), format!("GET {url}")).await;
    r.expect_status(200);
    r.body
}

/// Runs an async block on a runtime of its own in a fresh thread, so it can be used from
/// `Drop` and from inside another runtime alike.
fn on_own_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(f)
    })
    .join()
    .expect("database admin thread panicked")
}

/// A PostgreSQL database made for one test and dropped (with force) after it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// The URL segl connects to.
    pub url: String,
}

impl PgDatabase {
    /// Creates `segl_test_<pid>_<random>` through the admin URL.
    pub fn create(admin_url: &str) -> PgDatabase {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let rand = u64::from(nanos) ^ (SEQ.fetch_add(1, Ordering::Relaxed) << 32) ^ random_u64();
        let name = format!("segl_test_{}_{:x}", std::process::id(), rand);
        let mut url = Url::parse(admin_url).expect("SEGL_TEST_POSTGRES_URL is not a URL");
        url.set_path(&format!("/{name}"));
        let admin = admin_url.to_string();
        let sql = format!("CREATE DATABASE \"{name}\"");
        on_own_runtime(async move { admin_exec(&admin, &sql).await }).unwrap_or_else(|e| {
            panic!("cannot create test database {name} via SEGL_TEST_POSTGRES_URL: {e}")
        });
        PgDatabase {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = on_own_runtime(async move { admin_exec(&admin, &sql).await }) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

async fn admin_exec(admin_url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await?;
    c.close().await
}

fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    u64::from_le_bytes(buf)
}

// ---------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------

/// A segl installation for one test: its own data directory and database.
pub struct Segl {
    /// The backend.
    pub backend: Backend,
    dir: tempfile::TempDir,
    db: Option<PgDatabase>,
}

impl Segl {
    /// A fresh, empty installation.
    pub fn new(backend: Backend) -> Segl {
        let dir = tempfile::Builder::new()
            .prefix("segl-e2e-")
            .tempdir()
            .expect("temp dir");
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create(
                &postgres_admin_url().expect("SEGL_TEST_POSTGRES_URL is not set"),
            )),
        };
        Segl { backend, dir, db }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A connection of the test's own to the installation's database (SQLite file or
    /// PostgreSQL), for what no command shows or to break things on purpose.
    pub async fn db_connect(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = match &self.db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("segl.db").display()),
        };
        sqlx::AnyConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the database {url}: {e}"))
    }

    /// Writes `segl.toml` into the data directory (read by every command and `serve`).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.data_dir().join("segl.toml"), toml).expect("write segl.toml");
    }

    /// `--data-dir DIR [--database-url URL]`.
    pub fn location_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["--data-dir".into(), self.data_dir().into()];
        if let Some(db) = &self.db {
            v.push("--database-url".into());
            v.push(db.url.clone().into());
        }
        v
    }

    /// The `segl` command with the given arguments and this installation's location.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(self.data_dir(), args)
    }

    /// [`Segl::command`] with the data directory `dir` instead (e.g. one not made yet).
    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut location = self.location_args();
        location[1] = dir.into();
        let mut c = Command::new(env!("CARGO_BIN_EXE_segl"));
        c.args(args).args(location);
        // Only what the test says counts: no location or config from the caller's shell.
        for var in ["SEGL_DATA_DIR", "SEGL_DATABASE_URL", "SEGL_CONFIG"] {
            c.env_remove(var);
        }
        c.current_dir(self.data_dir());
        c
    }

    /// Runs `segl ARGS…` with no input and returns its output.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_stdin(args, None)
    }

    /// Runs `segl ARGS…`, writing `input` to its standard input.
    pub fn cmd_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        run_stdin(self.command(args), input)
    }

    /// Runs a command that must succeed and print JSON; returns the JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        self.json_stdin(args, None)
    }

    /// As [`Segl::json`], with standard input.
    pub fn json_stdin(&self, args: &[&str], input: Option<&str>) -> Value {
        let out = self.cmd_stdin(args, input);
        assert_success(&out, args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "`segl {}` printed no JSON ({e}):\nstdout: {}\nstderr: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert_success(&out, args);
        out
    }

    /// `segl person add --nin … --name … --password-stdin --json`.
    pub fn add_person(&self, nin: &str, name: &str, password: &str) -> Value {
        self.json_stdin(
            &[
                "person",
                "add",
                "--nin",
                nin,
                "--name",
                name,
                "--password-stdin",
                "--json",
            ],
            Some(&format!("{password}\n")),
        )
    }

    /// `segl person show --nin … --json`.
    pub fn person(&self, nin: &str) -> Value {
        self.json(&["person", "show", "--nin", nin, "--json"])
    }

    /// `segl token import FILE --json` of a fixture.
    pub fn import_tokens(&self, fixture_name: &str) -> Value {
        let path = fixture(fixture_name);
        self.json(&["token", "import", path.to_str().unwrap(), "--json"])
    }

    /// `segl token resync --serial S --code1 C1 --code2 C2 --json`, succeeding or not.
    pub fn resync(&self, serial: &str, code1: &str, code2: &str) -> Output {
        self.cmd(&[
            "token", "resync", "--serial", serial, "--code1", code1, "--code2", code2, "--json",
        ])
    }

    /// [`Segl::resync`] that must succeed; its JSON.
    pub fn resync_ok(&self, serial: &str, code1: &str, code2: &str) -> Value {
        self.json(&[
            "token", "resync", "--serial", serial, "--code1", code1, "--code2", code2, "--json",
        ])
    }

    /// `segl token assign --serial S --nin NIN`.
    pub fn assign(&self, serial: &str, nin: &str) -> Value {
        self.json(&[
            "token", "assign", "--serial", serial, "--nin", nin, "--json",
        ])
    }

    /// `segl token list --json`.
    pub fn tokens(&self) -> Vec<Value> {
        match self.json(&["token", "list", "--json"]) {
            Value::Array(v) => v,
            other => panic!("`segl token list --json` is not an array: {other}"),
        }
    }

    /// The code device with this serial from `segl token list --json`.
    pub fn token(&self, serial: &str) -> Value {
        self.tokens()
            .into_iter()
            .find(|t| t["serial"] == serial)
            .unwrap_or_else(|| panic!("no code device {serial} in `segl token list`"))
    }

    /// `segl rp add --name … --redirect-uri … EXTRA… --json`.
    pub fn add_rp(&self, name: &str, redirect_uri: &str, extra: &[&str]) -> Rp {
        let mut args = vec!["rp", "add", "--name", name, "--redirect-uri", redirect_uri];
        args.extend_from_slice(extra);
        args.push("--json");
        let v = self.json(&args);
        Rp {
            client_id: v["client_id"]
                .as_str()
                .unwrap_or_else(|| panic!("rp add: no client_id in {v}"))
                .to_string(),
            client_secret: v["client_secret"].as_str().map(str::to_string),
            redirect_uri: redirect_uri.to_string(),
        }
    }

    /// `segl audit verify --json`, asserting the chain is intact; returns the entry count.
    pub fn audit_ok(&self) -> u64 {
        let v = self.json(&["audit", "verify", "--json"]);
        assert_eq!(v["ok"], json!(true), "audit chain is broken: {v}");
        v["entries"]
            .as_u64()
            .unwrap_or_else(|| panic!("audit verify: no entries count in {v}"))
    }

    /// All audit entries (`segl audit list --json`).
    pub fn audit(&self) -> Vec<Value> {
        match self.json(&["audit", "list", "--limit", "10000", "--json"]) {
            Value::Array(v) => v,
            other => panic!("`segl audit list --json` is not an array: {other}"),
        }
    }

    /// How many audit entries carry this event name.
    pub fn audit_count(&self, event: &str) -> usize {
        self.audit().iter().filter(|e| e["event"] == event).count()
    }
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "`segl {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The path of a file in `tests/data`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A running `segl serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, also the issuer.
    pub base_url: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `segl serve --listen 127.0.0.1:0 EXTRA…` and waits for
    /// `segl listening on http://ADDR`.
    pub fn start(segl: &Segl, extra_args: &[&str]) -> Server {
        Server::start_with_env(segl, extra_args, &[])
    }

    /// As [`Server::start`], with extra environment variables.
    pub fn start_with_env(segl: &Segl, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra_args);
        let mut c = segl.command(&args);
        c.envs(env.iter().copied());
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("cannot start `segl serve`");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let err_buf = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });

        let (tx, rx) = mpsc::channel::<String>();
        let out_pipe = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(addr) = line.trim().strip_prefix("segl listening on ") {
                    let _ = tx.send(addr.to_string());
                    sent = true;
                }
                // Keep draining stdout so the server never blocks on a full pipe.
            }
        });

        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => {
                    let base_url = url.trim_end_matches('/').to_string();
                    assert!(
                        base_url.starts_with("http://127.0.0.1:"),
                        "server listens on {base_url}, expected http://127.0.0.1:PORT"
                    );
                    return Server {
                        child,
                        base_url,
                        stderr,
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "`segl {}` exited ({status}) before listening; stderr:\n{}",
                    args.join(" "),
                    stderr.lock().unwrap()
                );
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`segl {}` did not print `segl listening on http://ADDR` within {:?}; stderr:\n{}",
                    args.join(" "),
                    START_TIMEOUT,
                    stderr.lock().unwrap()
                );
            }
        }
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The issuer (the base URL, as segl defaults it).
    pub fn issuer(&self) -> String {
        self.base_url.clone()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed: {st}");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the stderr reader take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "segl serve still runs {within:?} after SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- segl serve stderr ----\n{}\n---- end ----",
                self.stderr()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// One-time codes, computed independently of segl (RFC 4226 / RFC 6238)
// ---------------------------------------------------------------------------------------

/// The secret of every code device in the PSKC fixtures (the RFC 4226 test secret).
pub const OTP_SECRET: &[u8] = b"12345678901234567890";

/// HOTP (RFC 4226) with HMAC-SHA1.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// TOTP (RFC 6238) with HMAC-SHA1 at unix time `t`.
pub fn totp(secret: &[u8], t: u64, step: u64, digits: u32) -> String {
    hotp(secret, t / step, digits)
}

/// Now, in unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A HOTP code device as its holder has it: it shows the next code each time.
#[derive(Clone, Debug)]
pub struct Hotp {
    /// Serial number.
    pub serial: String,
    /// The counter of the next code.
    pub counter: u64,
}

impl Hotp {
    /// A device of the fixtures at counter 0.
    pub fn new(serial: &str) -> Hotp {
        Hotp {
            serial: serial.to_string(),
            counter: 0,
        }
    }

    /// The next code (the button press), advancing the counter.
    pub fn next_code(&mut self) -> String {
        let c = hotp(OTP_SECRET, self.counter, 6);
        self.counter += 1;
        c
    }

    /// A code that is no valid code of this device in the next thousand presses.
    pub fn wrong_code(&self) -> String {
        let valid: Vec<String> = (0..self.counter + 1000)
            .map(|c| hotp(OTP_SECRET, c, 6))
            .collect();
        (0..1_000_000u32)
            .map(|n| format!("{n:06}"))
            .find(|c| !valid.contains(c))
            .expect("some 6-digit string is not a code")
    }
}

// ---------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
    /// What was asked, for messages.
    pub what: String,
}

impl Resp {
    /// Sends `req` (no cookies of a browser) and reads the response whole.
    pub async fn fetch(req: reqwest::RequestBuilder, what: String) -> Resp {
        let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        Resp::read(resp, what).await
    }

    /// Reads a response whole.
    pub async fn read(resp: reqwest::Response, what: String) -> Resp {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e}"));
        Resp {
            status,
            headers,
            body,
            what,
        }
    }

    /// The body as JSON (panics with the body otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.body))
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::LOCATION)
            .map(|v| v.to_str().expect("Location is ASCII").to_string())
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> String {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// Asserts the status, with the body in the message.
    pub fn expect_status(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: expected status {status}, got {} with body {}",
            self.what,
            self.status,
            self.body
        );
        self
    }
}

/// Asserts an RFC 9457 problem with this status and code; returns the problem.
pub fn assert_problem(r: &Resp, status: u16, code: &str) -> Value {
    r.expect_status(status);
    assert!(
        r.content_type().starts_with("application/problem+json"),
        "{}: content type {:?} is not application/problem+json (body {})",
        r.what,
        r.content_type(),
        r.body
    );
    let p = r.json();
    assert_eq!(p["code"], code, "{}: wrong problem code in {p}", r.what);
    assert_eq!(
        p["type"],
        format!("urn:segl:problem:{code}"),
        "{}: wrong type in {p}",
        r.what
    );
    assert_eq!(p["status"], status, "{}: wrong status field in {p}", r.what);
    assert!(p["title"].is_string(), "{}: no title in {p}", r.what);
    assert!(p["detail"].is_string(), "{}: no detail in {p}", r.what);
    p
}

/// A browser: keeps cookies (by name, for the one server it talks to), never follows
/// redirects, so each hop can be checked.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    /// Cookies by name.
    pub cookies: BTreeMap<String, String>,
}

/// The cookie binding a browser to its flows.
pub const FLOW_COOKIE: &str = "segl_flow";

impl Browser {
    /// A browser with no cookies.
    pub fn new(server: &Server) -> Browser {
        Browser {
            http: no_redirect_client(),
            base: server.base_url.clone(),
            cookies: BTreeMap::new(),
        }
    }

    /// The same browser (its cookies) talking to another server, e.g. one restarted on
    /// the same data directory.
    pub fn moved_to(&mut self, server: &Server) {
        self.base = server.base_url.clone();
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{}", self.base, url)
        }
    }

    fn cookie_header(&self) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        let s = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        Some(HeaderValue::from_str(&s).expect("cookie header"))
    }

    fn take_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            let v = v.to_str().expect("Set-Cookie is ASCII");
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
                continue;
            };
            let removed = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0"
                    || a.starts_with("max-age=-")
                    || a.starts_with("expires=thu, 01 jan 1970")
            });
            if removed || value.is_empty() {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    /// Sends a request with this browser's cookies and stores the cookies it gets back.
    pub async fn send(&mut self, req: reqwest::RequestBuilder, what: String) -> Resp {
        let req = match self.cookie_header() {
            Some(c) => req.header(reqwest::header::COOKIE, c),
            None => req,
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
        let resp = Resp::read(resp, what).await;
        self.take_cookies(&resp.headers);
        resp
    }

    /// GET a URL or a path on the server.
    pub async fn get(&mut self, url: &str) -> Resp {
        let url = self.absolute(url);
        let req = self.http.get(&url);
        self.send(req, format!("GET {url}")).await
    }

    /// POST raw bytes with a content type and an optional `X-CSRF-Token`.
    pub async fn post_raw(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        csrf: Option<&str>,
    ) -> Resp {
        let url = self.absolute(path);
        let mut req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(t) = csrf {
            req = req.header("X-CSRF-Token", t);
        }
        self.send(req, format!("POST {url}")).await
    }

    /// POST JSON to a flow step with the flow's CSRF token.
    pub async fn step(&mut self, flow: &Value, step: &str, body: Value) -> Resp {
        let id = flow_id(flow);
        let csrf = flow["csrf_token"]
            .as_str()
            .expect("flow view has csrf_token")
            .to_string();
        self.post_raw(
            &format!("/api/v1/flows/{id}/{step}"),
            "application/json",
            body.to_string().into_bytes(),
            Some(&csrf),
        )
        .await
    }

    /// GET the flow view.
    pub async fn flow(&mut self, id: &str) -> Value {
        let r = self.get(&format!("/api/v1/flows/{id}")).await;
        r.expect_status(200);
        let v = r.json();
        assert_eq!(v["id"], id, "flow view of another flow: {v}");
        v
    }

    /// Follows an authorize URL as a browser would: expects `303` to `/login?flow=ID` and
    /// returns the flow view (with its `csrf_token`).
    pub async fn start_flow(&mut self, authorize_url: &str) -> Value {
        let v = self.open_flow(authorize_url, "authorize").await;
        assert_eq!(v["kind"], "login", "{v}");
        assert_eq!(v["state"], "identify", "a new flow starts at identify: {v}");
        v
    }

    /// GET a URL that starts a flow (`what` names it in messages): expects `303` to
    /// `/login?flow=ID` with the flow cookie, and returns the flow view with its
    /// `csrf_token`.
    pub async fn open_flow(&mut self, url: &str, what: &str) -> Value {
        let r = self.get(url).await;
        let id = login_flow_id(&r);
        assert!(
            self.cookies.contains_key(FLOW_COOKIE),
            "{what} did not set the {FLOW_COOKIE} cookie"
        );
        let v = self.flow(&id).await;
        assert!(
            v["csrf_token"].as_str().is_some_and(|t| !t.is_empty()),
            "no csrf_token: {v}"
        );
        v
    }

    /// Identifies, chooses the code device if asked; returns the view in state `otp`.
    pub async fn identify(&mut self, flow: &Value, nin: &str) -> Value {
        let v = self.identify_choosing(flow, nin, "otp").await;
        assert_eq!(v["state"], "otp", "after identify: {v}");
        v
    }

    /// Identifies, chooses `method` (`otp` or `app`) if asked and asserts it was offered;
    /// returns the view that follows.
    pub async fn identify_choosing(&mut self, flow: &Value, nin: &str, method: &str) -> Value {
        let r = self.step(flow, "identify", json!({ "nin": nin })).await;
        r.expect_status(200);
        let mut v = r.json();
        if v["state"] == "choose_method" {
            let name = match method {
                "otp" => "the code device",
                "app" => "the app",
                other => other,
            };
            assert!(
                v["methods"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!(method))),
                "{name} is not offered: {v}"
            );
            let r = self.step(&v, "method", json!({ "method": method })).await;
            r.expect_status(200);
            v = r.json();
        }
        v
    }

    /// Sends a one-time code that must be accepted; returns the view in state `password`.
    pub async fn otp_ok(&mut self, flow: &Value, code: &str) -> Value {
        let r = self.step(flow, "otp", json!({ "otp": code })).await;
        r.expect_status(200);
        let v = r.json();
        assert_eq!(v["state"], "password", "after a right code: {v}");
        v
    }

    /// Sends the right password; returns the view in state `done`.
    pub async fn password_ok(&mut self, flow: &Value, password: &str) -> Value {
        let r = self
            .step(flow, "password", json!({ "password": password }))
            .await;
        r.expect_status(200);
        let v = r.json();
        assert_eq!(v["state"], "done", "after the right password: {v}");
        v
    }

    /// A whole login from the authorize URL to `redirect_to`.
    pub async fn login(
        &mut self,
        authorize_url: &str,
        nin: &str,
        device: &mut Hotp,
        password: &str,
    ) -> String {
        let flow = self.start_flow(authorize_url).await;
        let flow = self.identify(&flow, nin).await;
        let flow = self.otp_ok(&flow, &device.next_code()).await;
        let done = self.password_ok(&flow, password).await;
        done["redirect_to"]
            .as_str()
            .unwrap_or_else(|| panic!("state done without redirect_to: {done}"))
            .to_string()
    }
}

/// The flow's id.
pub fn flow_id(flow: &Value) -> String {
    flow["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no flow id in {flow}"))
        .to_string()
}

/// From an authorize response: asserts `303` to `/login?flow=ID` and returns the id.
pub fn login_flow_id(r: &Resp) -> String {
    r.expect_status(303);
    let loc = r
        .location()
        .unwrap_or_else(|| panic!("{}: 303 without Location", r.what));
    let url = Url::parse("http://x.invalid")
        .unwrap()
        .join(&loc)
        .expect("Location is a URL");
    assert_eq!(
        url.path(),
        "/login",
        "{}: redirected to {loc}, not /login",
        r.what
    );
    url.query_pairs()
        .find(|(k, _)| k == "flow")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{}: no flow id in {loc}", r.what))
}

/// A reqwest client that never follows redirects.
pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

// ---------------------------------------------------------------------------------------
// The relying party (openidconnect crate over reqwest 0.13)
// ---------------------------------------------------------------------------------------

/// An error of the HTTP adapter.
#[derive(Debug)]
pub struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// What the adapter returns per request.
pub type HttpFuture =
    Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send>>;

/// The openidconnect `AsyncHttpClient`: reqwest 0.13 without redirects (openidconnect's
/// own reqwest feature would bring reqwest 0.12 and ring).
pub fn oidc_http() -> impl Fn(HttpRequest) -> HttpFuture {
    let client = no_redirect_client();
    move |req: HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            let mut out = openidconnect::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let body = resp.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            out.body(body.to_vec())
                .map_err(|e| HttpError(e.to_string()))
        }) as HttpFuture
    }
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct Rp {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret` (confidential clients).
    pub client_secret: Option<String>,
    /// The registered redirect URI.
    pub redirect_uri: String,
}

/// The client type `from_provider_metadata` makes.
pub type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovery, and a client for `rp` built from the provider's metadata.
pub async fn discover(server: &Server, rp: &Rp) -> (CoreProviderMetadata, OidcClient) {
    let http = oidc_http();
    let issuer = IssuerUrl::new(server.issuer()).expect("issuer URL");
    let meta = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .unwrap_or_else(|e| panic!("discovery failed: {e:?}"));
    let client = CoreClient::from_provider_metadata(
        meta.clone(),
        ClientId::new(rp.client_id.clone()),
        rp.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(rp.redirect_uri.clone()).expect("redirect URI"));
    (meta, client)
}

/// An authorization request in progress.
pub struct AuthStart {
    /// The authorize URL.
    pub url: Url,
    /// `state`.
    pub state: CsrfToken,
    /// `nonce`.
    pub nonce: Nonce,
    /// The PKCE verifier.
    pub verifier: PkceCodeVerifier,
}

/// An authorize URL with PKCE S256, a nonce, state and these scopes (besides `openid`),
/// plus extra parameters.
pub fn authorize(client: &OidcClient, scopes: &[&str], extra: &[(&str, &str)]) -> AuthStart {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_string()));
    }
    for (k, v) in extra {
        req = req.add_extra_param(*k, *v);
    }
    let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
    AuthStart {
        url,
        state,
        nonce,
        verifier,
    }
}

/// The query of a redirect to the client, checked: it goes to the registered redirect URI,
/// carries our `state` and the issuer in `iss` (RFC 9207).
pub fn callback_params(
    redirect_to: &str,
    rp: &Rp,
    state: &str,
    issuer: &str,
) -> BTreeMap<String, String> {
    let url = Url::parse(redirect_to)
        .unwrap_or_else(|e| panic!("redirect {redirect_to:?} is no URL: {e}"));
    let base = {
        let mut u = url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    };
    assert_eq!(
        base, rp.redirect_uri,
        "redirect goes elsewhere than the redirect URI: {redirect_to}"
    );
    let q: BTreeMap<String, String> = url
        .query_pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        q.get("state").map(String::as_str),
        Some(state),
        "state not returned: {redirect_to}"
    );
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(issuer),
        "iss (RFC 9207) wrong: {redirect_to}"
    );
    q
}

/// The authorization code from a successful redirect.
pub fn code_from(redirect_to: &str, rp: &Rp, start: &AuthStart, issuer: &str) -> AuthorizationCode {
    let q = callback_params(redirect_to, rp, start.state.secret(), issuer);
    assert!(!q.contains_key("error"), "error redirect: {redirect_to}");
    AuthorizationCode::new(
        q.get("code")
            .unwrap_or_else(|| panic!("no code in {redirect_to}"))
            .clone(),
    )
}

/// Exchanges a code with the start's PKCE verifier.
pub async fn exchange(
    client: &OidcClient,
    code: AuthorizationCode,
    verifier: PkceCodeVerifier,
) -> CoreTokenResponse {
    let http = oidc_http();
    client
        .exchange_code(code)
        .expect("token endpoint in discovery")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange failed: {}", token_error(&e)))
}

/// A refresh-token grant through the `openidconnect` crate: the token response, or the
/// OAuth `error` of a refusal.
pub async fn refresh_grant(
    client: &OidcClient,
    rt: &openidconnect::RefreshToken,
) -> Result<CoreTokenResponse, String> {
    client
        .exchange_refresh_token(rt)
        .expect("token endpoint in discovery")
        .request_async(&oidc_http())
        .await
        .map_err(|e| oauth_error(&e))
}

/// A readable form of a token endpoint error.
pub fn token_error<E: std::error::Error>(
    e: &openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => format!("server said {r:?}"),
        other => format!("{other:?}"),
    }
}

/// The OAuth `error` of a failed token request.
pub fn oauth_error<E: std::error::Error>(
    e: &openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => r.error().to_string(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

/// The algorithms segl signs ID tokens with.
pub fn segl_algs() -> Vec<CoreJwsSigningAlgorithm> {
    vec![
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    ]
}

/// A JWT's header and payload as JSON (no verification: use after the library verified it).
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    let mut it = jwt.split('.');
    let mut decode = |what: &str| -> Value {
        let part = it.next().unwrap_or_else(|| panic!("JWT has no {what}"));
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(part.as_bytes())
            .unwrap_or_else(|e| panic!("JWT {what} is not base64url: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT {what} is not JSON: {e}"))
    };
    let header = decode("header");
    let payload = decode("payload");
    (header, payload)
}

/// The raw claims of a verified ID token.
pub fn id_token_claims(token: &CoreIdToken) -> Value {
    jwt_parts(&token.to_string()).1
}

/// An ID token verified by the `openidconnect` crate with the client's verifier and this
/// nonce (signature against the JWKS, issuer, audience, expiry); returns its raw claims.
pub fn verified_claims(client: &OidcClient, id_token: &str, nonce: &Nonce) -> Value {
    let token: CoreIdToken = id_token
        .parse()
        .unwrap_or_else(|e| panic!("not an ID token ({e:?}): {id_token}"));
    let verifier = client.id_token_verifier().set_allowed_algs(segl_algs());
    token
        .claims(&verifier, nonce)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e:?}"));
    jwt_parts(id_token).1
}

/// GET userinfo with a bearer token.
pub async fn userinfo_raw(server: &Server, access_token: &str) -> Resp {
    let req = no_redirect_client()
        .get(server.url("/oauth2/userinfo"))
        .bearer_auth(access_token);
    Resp::fetch(req, "GET /oauth2/userinfo".into()).await
}

/// POST a form to the token endpoint with client_secret_basic; returns the response.
pub async fn token_raw(server: &Server, rp: &Rp, form: &[(&str, &str)]) -> Resp {
    let req = no_redirect_client()
        .post(server.url("/oauth2/token"))
        .basic_auth(&rp.client_id, rp.client_secret.as_deref())
        .form(form);
    Resp::fetch(req, "POST /oauth2/token".into()).await
}

// ---------------------------------------------------------------------------------------
// A ready installation
// ---------------------------------------------------------------------------------------

/// The person most tests log in as.
pub const NIN: &str = "15058500027";
/// Their name.
pub const NAME: &str = "Kari Nordmann";
/// Their password (long, not a common one).
pub const PASSWORD: &str = "Fjordhest-Multebaer-1905";
/// Their code device (HOTP, counter 0, from `hotp-plain.pskcxml`).
pub const SERIAL: &str = "600000000";
/// Where the test client's browser is sent back to (nothing listens there; the redirect
/// is read, never followed).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

/// A running server with one person (with code device and password) and one client.
pub struct Fixture {
    /// The installation (CLI).
    pub segl: Segl,
    /// The server.
    pub server: Server,
    /// The person's `sub` as `person add` printed it.
    pub sub: String,
    /// The person's code device.
    pub device: Hotp,
    /// A confidential client with client_secret_basic.
    pub rp: Rp,
}

impl Fixture {
    /// Starts a server (with `serve_args`) and seeds it through the CLI.
    pub fn new(backend: Backend, serve_args: &[&str]) -> Fixture {
        Fixture::with_segl(Segl::new(backend), serve_args)
    }

    /// As [`Fixture::new`] on a prepared installation (e.g. with a `segl.toml`).
    pub fn with_segl(segl: Segl, serve_args: &[&str]) -> Fixture {
        Fixture::with_env(segl, serve_args, &[])
    }

    /// As [`Fixture::with_segl`], with environment variables for the server (see
    /// [`Server::start_with_env`]).
    pub fn with_env(segl: Segl, serve_args: &[&str], env: &[(&str, &str)]) -> Fixture {
        let server = Server::start_with_env(&segl, serve_args, env);
        let person = segl.add_person(NIN, NAME, PASSWORD);
        assert_eq!(person["name"], NAME, "person add: {person}");
        assert_eq!(person["birthdate"], "1985-05-15", "person add: {person}");
        let sub = person["sub"]
            .as_str()
            .unwrap_or_else(|| panic!("no sub in {person}"))
            .to_string();
        assert_ne!(sub, NIN, "sub must not be the national identity number");
        let imported = segl.import_tokens("hotp-plain.pskcxml");
        assert_eq!(imported["imported"], 3, "token import: {imported}");
        let assigned = segl.assign(SERIAL, NIN);
        assert_eq!(assigned["serial"], SERIAL, "token assign: {assigned}");
        let rp = segl.add_rp("Test", REDIRECT_URI, &[]);
        assert!(
            rp.client_secret.is_some(),
            "a confidential client gets a secret"
        );
        Fixture {
            segl,
            server,
            sub,
            device: Hotp::new(SERIAL),
            rp,
        }
    }

    /// A new browser for this server.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.server)
    }

    /// Discovers the server, logs the person in with `scopes` in a new browser and
    /// exchanges the code: the client and its token response.
    pub async fn login_tokens(&mut self, scopes: &[&str]) -> (OidcClient, CoreTokenResponse) {
        let issuer = self.server.issuer();
        let (_, client) = discover(&self.server, &self.rp).await;
        let start = authorize(&client, scopes, &[]);
        let mut b = self.browser();
        let redirect_to = b
            .login(start.url.as_str(), NIN, &mut self.device, PASSWORD)
            .await;
        let code = code_from(&redirect_to, &self.rp, &start, &issuer);
        let tokens = exchange(&client, code, start.verifier).await;
        (client, tokens)
    }
}

/// The messages the file transport delivered to the data directory's outbox, oldest
/// first, waiting up to five seconds for at least `n`.
pub fn outbox(segl: &Segl, n: usize) -> Vec<Value> {
    let dir = segl.data_dir().join("outbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut msgs: Vec<Value> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
            .collect();
        msgs.sort_by_key(|m| (m["created_at"].as_i64(), m["id"].as_str().map(String::from)));
        if msgs.len() >= n || std::time::Instant::now() > deadline {
            return msgs;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts a refusal for bad input: exit code 2, one line `error: …` naming `needle` on
/// stderr, nothing on stdout.
pub fn assert_input_error(out: &Output, what: &str, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit code 2 for bad input expected, got {}; stderr: {stderr}",
        out.status
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{what}: no `error: …` line on stderr: {stderr}"));
    assert!(
        line.contains(needle),
        "{what}: the message must name {needle}: {line}"
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: nothing on stdout on error: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------

/// A person the app tests use: with a Norwegian mobile number, which the app needs.
pub const APP_NIN: &str = "01019010046";
/// The app PIN the tests' reference apps use.
pub const APP_PIN: &str = "482916";

/// Adds a person with the mobile number +4791234567 and [`PASSWORD`]; returns `person add`'s
/// answer.
pub fn add_app_person(segl: &Segl, nin: &str, name: &str) -> Value {
    let p = segl.json_stdin(
        &[
            "person",
            "add",
            "--nin",
            nin,
            "--name",
            name,
            "--phone",
            "+4791234567",
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(p["name"], name, "person add: {p}");
    p
}

/// `segl person activation-code --nin NIN`: the letter's one-time code.
pub fn activation_code(segl: &Segl, nin: &str) -> String {
    let v = segl.json(&["person", "activation-code", "--nin", nin, "--json"]);
    v["activation_code"]
        .as_str()
        .unwrap_or_else(|| panic!("activation-code: {v}"))
        .to_string()
}

/// `segl app activate` against `server` with [`APP_PIN`] on stdin (and the email's second
/// code, if any).
pub fn app_activate(
    segl: &Segl,
    server: &Server,
    code: &str,
    second: Option<&str>,
    vault: &Path,
) -> Output {
    let issuer = server.issuer();
    let mut args = vec![
        "app",
        "activate",
        "--server",
        &issuer,
        "--code",
        code,
        "--vault",
        vault.to_str().expect("utf-8 path"),
        "--json",
    ];
    if let Some(s) = second {
        args.extend_from_slice(&["--second-code", s]);
    }
    segl.cmd_stdin(&args, Some(&format!("{APP_PIN}\n")))
}

/// An app activated with a letter code: its vault, in a temporary directory that lives as
/// long as this, and its id.
pub struct ActivatedApp {
    _dir: tempfile::TempDir,
    /// The vault file.
    pub vault: PathBuf,
    /// The app id `segl app activate` printed.
    pub app_id: String,
}

impl ActivatedApp {
    /// Activates an app for `nin` against `server` with a new letter code and [`APP_PIN`].
    /// The code is used after 2.1 s, so the security period must be 1 s
    /// (`[policy.app] security_period_secs = 1`).
    pub fn new(segl: &Segl, server: &Server, nin: &str) -> ActivatedApp {
        let code = activation_code(segl, nin);
        std::thread::sleep(Duration::from_millis(2100));
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.json");
        let out = app_activate(segl, server, &code, None, &vault);
        assert_success(&out, &["app", "activate"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        ActivatedApp {
            app_id: v["app_id"].as_str().expect("app_id").to_string(),
            _dir: dir,
            vault,
        }
    }

    /// The vault file, for `--vault`.
    pub fn vault(&self) -> &str {
        self.vault.to_str().unwrap()
    }
}

/// The name of [`AppFx`]'s client, which the app shows.
pub const APP_RP: &str = "Nettbanken";

/// A server with Ola ([`APP_NIN`], see [`add_app_person`]), his app activated, and the
/// client [`APP_RP`]. The test files add the methods they need.
pub struct AppFx {
    pub segl: Segl,
    pub server: Server,
    pub rp: Rp,
    pub app: ActivatedApp,
}

impl AppFx {
    /// The security period is 1 s, and `policy` is added to `[policy.app]`. With
    /// `code_device`, Ola gets the code device [`SERIAL`] before the app, so his eID is
    /// active and has a certificate whatever the app adds to it.
    pub fn new(backend: Backend, policy: &str, code_device: bool) -> AppFx {
        let segl = Segl::new(backend);
        segl.write_config(&format!("[policy.app]\nsecurity_period_secs = 1\n{policy}"));
        let server = Server::start(&segl, &[]);
        add_app_person(&segl, APP_NIN, "Ola Nordmann");
        if code_device {
            segl.import_tokens("hotp-plain.pskcxml");
            segl.assign(SERIAL, APP_NIN);
        }
        let rp = segl.add_rp(APP_RP, REDIRECT_URI, &[]);
        let app = ActivatedApp::new(&segl, &server, APP_NIN);
        AppFx {
            segl,
            server,
            rp,
            app,
        }
    }
}

/// `segl app watch --once` with [`APP_PIN`], started in the background; what it prints is
/// the request.
pub struct Watch {
    child: Child,
    out: mpsc::Receiver<String>,
}

impl Watch {
    /// Starts the watch of the app whose vault is `vault` (the vault names the server).
    pub fn start(segl: &Segl, vault: &str) -> Watch {
        let mut c = segl.command(&[
            "app",
            "watch",
            "--once",
            "--timeout",
            "60",
            "--vault",
            vault,
            "--json",
        ]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("segl app watch");
        {
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{APP_PIN}").unwrap();
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
            }
            let _ = tx.send(all);
        });
        Watch { child, out: rx }
    }

    /// The request it printed (JSON), within `within`; if nothing came, the watch is
    /// stopped and the test fails.
    pub fn request(mut self, within: Duration) -> Value {
        let out = match self.out.recv_timeout(within) {
            Ok(out) => out,
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("segl app watch printed nothing within {within:?}");
            }
        };
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "segl app watch failed: {status}: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("watch output {out:?}: {e}"))
    }
}

/// Posts the collect step of an app flow until the flow leaves `app_pending`, at most
/// `rounds` times, 100 ms apart; the answer to the last.
pub async fn collect_app(b: &mut Browser, flow: &Value, rounds: u32) -> Resp {
    for _ in 0..rounds {
        let r = b.step(flow, "app", json!({})).await;
        if r.status != 200 || r.json()["state"] != "app_pending" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the flow stayed in app_pending");
}

/// Runs `c`, writing `input` to its standard input; returns its output.
pub fn run_stdin(mut c: Command, input: Option<&str>) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = c.spawn().expect("cannot run the segl binary");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("segl did not finish")
}
