//! `segl app …`: the reference app, as a phone would run it. Its device key lives in a
//! vault file under a PIN (`segl_app::vault`); the server knows only the public key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use segl_app::device::DeviceKey;
use segl_app::vault::{Vault, VaultError};
use segl_core::app::{ApprovalPayload, Decision, UserVerification};
use serde_json::{Value, json};

use crate::commands::{print_json, read_stdin_line};
use crate::{CliError, Global};

/// `segl app …`
#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Activate this app with a one-time activation code: make a device key, register its
    /// public key with the server, and keep the key in the vault under a PIN (4–12 digits,
    /// read from the first line of standard input).
    Activate {
        /// The server's base URL (its OpenID Connect issuer).
        #[arg(long)]
        server: String,
        /// The activation code (from the letter, or from the "Activate the app" page).
        #[arg(long)]
        code: String,
        /// A name for this device.
        #[arg(long)]
        label: Option<String>,
        /// The second code, for an activation with codes by SMS and email (the email's).
        #[arg(long)]
        second_code: Option<String>,
        /// The vault file.
        #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
        vault: PathBuf,
    },
    /// Show this app's id, server and PIN state (reads the vault only; no PIN needed).
    /// With `--online`, also ask the server, signing with the device key (PIN from the
    /// first line of standard input): a replaced app learns it here.
    Status {
        /// The vault file.
        #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
        vault: PathBuf,
        /// Also ask the server for the app's state.
        #[arg(long)]
        online: bool,
    },
    /// Move the app to a new phone: approve, from this (old) phone, an activation of the
    /// new one, and print its activation code (PIN from the first line of standard input).
    Transfer {
        /// The vault file.
        #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
        vault: PathBuf,
    },
    /// Deactivate this app at the server (PIN from the first line of standard input).
    Deactivate {
        /// The vault file.
        #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
        vault: PathBuf,
    },
    /// Hold the push connection and print each request as it arrives (PIN from the first
    /// line of standard input). Ends when the app is deactivated.
    Watch {
        /// The vault file.
        #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
        vault: PathBuf,
        /// Stop after the first request.
        #[arg(long)]
        once: bool,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// "Yes, it's me": approve a waiting request, signed with the device key (PIN from the
    /// first line of standard input).
    Approve {
        #[command(flatten)]
        pick: PickRequest,
        /// How the app verified you: the PIN you typed (`pin`), `face`, `fpt`, or `none`
        /// (then the password follows in the browser).
        #[arg(long, default_value = "pin")]
        uv: String,
    },
    /// "No, that's not me": deny a waiting request (PIN from the first line of standard
    /// input). With `--block`, also ask to block your eID.
    Deny {
        #[command(flatten)]
        pick: PickRequest,
        /// Also ask to block the eID.
        #[arg(long)]
        block: bool,
    },
}

/// Which request to answer.
#[derive(clap::Args, Debug)]
pub struct PickRequest {
    /// The vault file.
    #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
    vault: PathBuf,
    /// The request's id; without it, the one waiting request.
    #[arg(long, conflicts_with = "qr")]
    request: Option<String>,
    /// The text of the QR code on the login page (`segl-qr.…`), instead of a pushed request.
    #[arg(long)]
    qr: Option<String>,
    /// Wait up to this many seconds for a request to arrive.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

/// `segl app …`
pub async fn app(g: &Global, cmd: AppCmd) -> Result<ExitCode, CliError> {
    match cmd {
        AppCmd::Activate {
            server,
            code,
            label,
            second_code,
            vault,
        } => {
            activate(
                g,
                &server,
                &code,
                label.as_deref(),
                second_code.as_deref(),
                &vault,
            )
            .await
        }
        AppCmd::Transfer { vault } => {
            let v = Unlocked::open(&vault)?
                .call(reqwest::Method::POST, "api/v1/app/transfers", None)
                .await?;
            if g.json {
                print_json(&v);
            } else {
                println!(
                    "activation code for the new phone: {}",
                    v["activation_code"].as_str().unwrap_or("?")
                );
                println!(
                    "use it before {} (UTC); this app is deactivated when the new one is activated",
                    v["expires_at"].as_str().unwrap_or("?")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AppCmd::Status {
            vault,
            online: false,
        } => status(g, &vault),
        AppCmd::Status {
            vault,
            online: true,
        } => {
            let state = signed_call(&vault, reqwest::Method::GET, "api/v1/app/status").await?;
            show_state(g, &state, "");
            Ok(ExitCode::SUCCESS)
        }
        AppCmd::Deactivate { vault } => {
            let state = signed_call(&vault, reqwest::Method::POST, "api/v1/app/deactivate").await?;
            show_state(g, &state, "deactivated: ");
            Ok(ExitCode::SUCCESS)
        }
        AppCmd::Watch {
            vault,
            once,
            timeout,
        } => {
            let dev = Unlocked::open(&vault)?;
            let run = watch(g, &dev, once);
            match timeout {
                Some(t) => tokio::time::timeout(std::time::Duration::from_secs(t), run)
                    .await
                    .map_err(|_| CliError::Failure(format!("no request within {t} seconds")))?,
                None => run.await,
            }
        }
        AppCmd::Approve { pick, uv } => {
            let uv = match uv.as_str() {
                "none" => None,
                other => Some(UserVerification::parse(other).ok_or_else(|| {
                    CliError::Input(format!("--uv is pin, face, fpt or none, not '{other}'"))
                })?),
            };
            answer_request(g, &pick, Decision::Approve, uv, false).await
        }
        AppCmd::Deny { pick, block } => answer_request(g, &pick, Decision::Deny, None, block).await,
    }
}

/// The vault unlocked: the key and where to reach the server.
struct Unlocked {
    app_id: String,
    server: url::Url,
    key: DeviceKey,
}

impl Unlocked {
    fn open(vault: &std::path::Path) -> Result<Unlocked, CliError> {
        let state = Vault::status(vault).map_err(vault_error)?;
        let pin = read_stdin_line("PIN")?;
        let key = Vault::unlock(vault, &pin).map_err(vault_error)?;
        let server = url::Url::parse(&state.server)
            .map_err(|e| CliError::Failure(format!("the vault's server URL is unusable: {e}")))?;
        Ok(Unlocked {
            app_id: state.app_id,
            server,
            key,
        })
    }

    /// A device-API request signed with the key (headers over method, path, time, nonce
    /// and the body's hash).
    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::RequestBuilder, CliError> {
        let url = self
            .server
            .join(path)
            .map_err(|e| CliError::Failure(format!("the vault's server URL is unusable: {e}")))?;
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let body_sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(bytes.as_bytes()).into();
        let nonce =
            data_encoding::BASE64URL_NOPAD.encode(&segl_crypto::random::random_bytes::<18>());
        let request = segl_core::app::DeviceRequest {
            app_id: &self.app_id,
            nonce: &nonce,
            method: method.as_str(),
            path: url.path(),
            timestamp,
            body_sha256,
        };
        let signature = self
            .key
            .sign_request(&request)
            .map_err(|e| CliError::Failure(e.to_string()))?;
        let mut rb = client
            .request(method, url)
            .header("x-segl-app-id", &self.app_id)
            .header("x-segl-nonce", &nonce)
            .header("x-segl-timestamp", timestamp.to_string())
            .header(
                "x-segl-signature",
                data_encoding::BASE64URL_NOPAD.encode(&signature),
            );
        if body.is_some() {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        Ok(rb)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let resp = self
            .request(&http()?, method, path, body)?
            .send()
            .await
            .map_err(|e| CliError::Failure(format!("cannot reach {}: {e}", self.server)))?;
        answer(resp, path).await
    }
}

fn print_request(g: &Global, q: &Value) {
    if g.json {
        print_json(q);
    } else {
        println!(
            "request {}: {} — {} (verification code: {})",
            q["id"].as_str().unwrap_or("?"),
            q["rp"].as_str().unwrap_or("?"),
            q["text"].as_str().unwrap_or(""),
            q["verification_code"].as_str().unwrap_or("?"),
        );
    }
}

/// Holds the push connection; prints each new request. With `once`, returns after the
/// first. When the connection drops (a server restarting, a network change), it polls the
/// list every two seconds until a new connection is up, so no request is missed.
async fn watch(g: &Global, dev: &Unlocked, once: bool) -> Result<ExitCode, CliError> {
    let mut seen = std::collections::HashSet::new();
    loop {
        let why = match push_round(g, dev, once, &mut seen).await? {
            Some(code) => return Ok(code),
            None => "the server closed the push connection".to_string(),
        };
        eprintln!("{why}; polling until it is back");
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            match dev
                .call(reqwest::Method::GET, "api/v1/app/requests", None)
                .await
            {
                Ok(list) => {
                    if show_new(g, &list, once, &mut seen) {
                        return Ok(ExitCode::SUCCESS);
                    }
                    break;
                }
                // Refused (e.g. deactivated): that is the answer.
                Err(e @ CliError::Input(_)) => return Err(e),
                Err(_) => continue,
            }
        }
    }
}

/// Prints the requests of a list not printed before; true when `once` is satisfied.
fn show_new(
    g: &Global,
    list: &Value,
    once: bool,
    seen: &mut std::collections::HashSet<String>,
) -> bool {
    for q in list["requests"].as_array().into_iter().flatten() {
        let id = q["id"].as_str().unwrap_or_default().to_string();
        if seen.insert(id) {
            print_request(g, q);
            use std::io::Write;
            let _ = std::io::stdout().flush();
            if once {
                return true;
            }
        }
    }
    false
}

/// One push connection: `Some(exit code)` when done, `None` when it dropped.
async fn push_round(
    g: &Global,
    dev: &Unlocked,
    once: bool,
    seen: &mut std::collections::HashSet<String>,
) -> Result<Option<ExitCode>, CliError> {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    // No overall timeout: the connection is meant to stay open.
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| CliError::Failure(format!("cannot start an HTTP client: {e}")))?;
    let resp = match dev
        .request(&client, reqwest::Method::GET, "api/v1/app/events", None)?
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot reach {}: {e}", dev.server);
            return Ok(None);
        }
    };
    if !resp.status().is_success() {
        answer(resp, "api/v1/app/events").await?;
        return Err(CliError::Failure(
            "the server refused the push connection".into(),
        ));
    }
    let mut events = resp.bytes_stream().eventsource();
    while let Some(ev) = events.next().await {
        let Ok(ev) = ev else {
            return Ok(None);
        };
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        match ev.event.as_str() {
            "requests" if show_new(g, &data, once, seen) => {
                return Ok(Some(ExitCode::SUCCESS));
            }
            "deactivated" => {
                show_state(g, &data, "");
                return Err(CliError::Failure(
                    "this app is no longer active; activate it again".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Finds the request to answer: by QR code, by id, or the one waiting (polling up to
/// `wait` seconds).
async fn pick_request(dev: &Unlocked, pick: &PickRequest) -> Result<Value, CliError> {
    if let Some(qr) = &pick.qr {
        return dev
            .call(
                reqwest::Method::POST,
                "api/v1/app/scan",
                Some(&json!({"qr": qr})),
            )
            .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(pick.wait);
    loop {
        let list = dev
            .call(reqwest::Method::GET, "api/v1/app/requests", None)
            .await?;
        let requests = list["requests"].as_array().cloned().unwrap_or_default();
        let found = match &pick.request {
            Some(id) => requests.into_iter().find(|q| q["id"] == id.as_str()),
            None if requests.len() > 1 => {
                return Err(CliError::Input(format!(
                    "{} requests are waiting; pick one with --request",
                    requests.len()
                )));
            }
            None => requests.into_iter().next(),
        };
        if let Some(q) = found {
            return Ok(q);
        }
        if std::time::Instant::now() >= deadline {
            return Err(CliError::Input(match &pick.request {
                Some(id) => format!("request {id} is not waiting for this app"),
                None => "no request is waiting for this app".into(),
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn answer_request(
    g: &Global,
    pick: &PickRequest,
    decision: Decision,
    uv: Option<UserVerification>,
    block: bool,
) -> Result<ExitCode, CliError> {
    let dev = Unlocked::open(&pick.vault)?;
    let q = pick_request(&dev, pick).await?;
    let field = |k: &str| q[k].as_str().unwrap_or_default().to_string();
    let payload = ApprovalPayload {
        request_id: field("id"),
        rp: field("rp"),
        verification_code: field("verification_code"),
        text_sha256: segl_crypto::random::sha256(field("text").as_bytes()),
        decision,
        user_verification: uv,
    };
    let signature = dev
        .key
        .sign(&payload)
        .map_err(|e| CliError::Failure(e.to_string()))?;
    let path = format!("api/v1/app/requests/{}/answer", payload.request_id);
    let body = json!({
        "decision": decision.as_str(),
        "user_verification": uv.map(|u| u.amr()),
        "signature": data_encoding::BASE64URL_NOPAD.encode(&signature),
        "block": block,
    });
    let result = dev.call(reqwest::Method::POST, &path, Some(&body)).await?;
    if g.json {
        print_json(&json!({"request": q, "result": result}));
    } else {
        print_request(g, &q);
        println!(
            "{}{}",
            result["state"].as_str().unwrap_or("?"),
            if block { " (block requested)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn http() -> Result<reqwest::Client, CliError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Failure(format!("cannot start an HTTP client: {e}")))
}

/// The server's answer, or its problem+json as an error (bad input for a 4xx).
async fn answer(resp: reqwest::Response, what: &str) -> Result<Value, CliError> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail");
    let code = body["code"].as_str().unwrap_or("");
    let msg = format!("{what} refused ({status}, {code}): {detail}");
    Err(if status.is_client_error() {
        CliError::Input(msg)
    } else {
        CliError::Failure(msg)
    })
}

/// A call without a body to the device API, signed with the vault's key (unlocked with the
/// PIN on stdin).
async fn signed_call(
    vault: &std::path::Path,
    method: reqwest::Method,
    path: &str,
) -> Result<Value, CliError> {
    Unlocked::open(vault)?.call(method, path, None).await
}

fn show_state(g: &Global, state: &Value, lead: &str) {
    if g.json {
        print_json(state);
    } else {
        let why = state["deactivated_why"]
            .as_str()
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        println!(
            "{lead}app ID {}: {}{why}",
            state["app_id"].as_str().unwrap_or("?"),
            state["state"].as_str().unwrap_or("?"),
        );
    }
}

fn vault_error(e: VaultError) -> CliError {
    match e {
        VaultError::PinFormat | VaultError::WrongPin { .. } | VaultError::NotFound { .. } => {
            CliError::Input(e.to_string())
        }
        e => CliError::Failure(e.to_string()),
    }
}

async fn activate(
    g: &Global,
    server: &str,
    code: &str,
    label: Option<&str>,
    second_code: Option<&str>,
    vault: &std::path::Path,
) -> Result<ExitCode, CliError> {
    let base = url::Url::parse(server)
        .map_err(|e| CliError::Input(format!("invalid server URL '{server}': {e}")))?;
    let pin = read_stdin_line("PIN")?;
    // Checked before the server is asked, so a bad PIN spends no activation code.
    segl_app::vault::check_pin(&pin).map_err(vault_error)?;
    let key = DeviceKey::generate().map_err(|e| CliError::Failure(e.to_string()))?;
    let url = base
        .join("api/v1/app/activations")
        .map_err(|e| CliError::Input(format!("invalid server URL '{server}': {e}")))?;
    let resp = http()?
        .post(url)
        .json(&json!({
            "activation_code": code,
            "public_key": key.public_key_b64url(),
            "label": label,
            "second_code": second_code,
        }))
        .send()
        .await
        .map_err(|e| CliError::Failure(format!("cannot reach {server}: {e}")))?;
    let body = answer(resp, "activation").await?;
    let app_id = body["app_id"]
        .as_str()
        .ok_or_else(|| CliError::Failure("the server's answer has no app_id".into()))?;
    Vault::create(vault, app_id, base.as_str(), &key, &pin).map_err(vault_error)?;
    if g.json {
        print_json(&json!({"app_id": app_id, "vault": vault}));
    } else {
        println!("activated: app ID {app_id}");
        println!("the device key is in {} under your PIN", vault.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(g: &Global, vault: &std::path::Path) -> Result<ExitCode, CliError> {
    let s = Vault::status(vault).map_err(vault_error)?;
    if g.json {
        print_json(&json!({
            "app_id": s.app_id,
            "server": s.server,
            "failed_pin_attempts": s.failed_pin_attempts,
            "wiped": s.wiped,
        }));
    } else {
        println!("app ID: {}", s.app_id);
        println!("server: {}", s.server);
        if s.wiped {
            println!("the device key was erased after too many wrong PINs: activate again");
        } else {
            println!("wrong PINs in a row: {}", s.failed_pin_attempts);
        }
    }
    Ok(ExitCode::SUCCESS)
}
