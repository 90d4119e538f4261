//! `segl app …`: the reference app, as a phone would run it. Its device key lives in a
//! vault file under a PIN (`segl_app::vault`); the server knows only the public key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use segl_app::device::DeviceKey;
use segl_app::vault::{Vault, VaultError};
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
    /// Deactivate this app at the server (PIN from the first line of standard input).
    Deactivate {
        /// The vault file.
        #[arg(long, env = "SEGL_APP_VAULT", default_value = "segl-app/vault.json")]
        vault: PathBuf,
    },
}

/// `segl app …`
pub async fn app(g: &Global, cmd: AppCmd) -> Result<ExitCode, CliError> {
    match cmd {
        AppCmd::Activate {
            server,
            code,
            label,
            vault,
        } => activate(g, &server, &code, label.as_deref(), &vault).await,
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
    }
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

/// A call to the device API signed with the vault's key (unlocked with the PIN on stdin).
async fn signed_call(
    vault: &std::path::Path,
    method: reqwest::Method,
    path: &str,
) -> Result<Value, CliError> {
    let state = Vault::status(vault).map_err(vault_error)?;
    let pin = read_stdin_line("PIN")?;
    let key = Vault::unlock(vault, &pin).map_err(vault_error)?;
    let url = url::Url::parse(&state.server)
        .and_then(|u| u.join(path))
        .map_err(|e| CliError::Failure(format!("the vault's server URL is unusable: {e}")))?;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let body_sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"").into();
    let nonce = data_encoding::BASE64URL_NOPAD.encode(&segl_crypto::random::random_bytes::<18>());
    let request = segl_core::app::DeviceRequest {
        app_id: &state.app_id,
        nonce: &nonce,
        method: method.as_str(),
        path: url.path(),
        timestamp,
        body_sha256,
    };
    let signature = key
        .sign_request(&request)
        .map_err(|e| CliError::Failure(e.to_string()))?;
    let resp = http()?
        .request(method, url.clone())
        .header("x-segl-app-id", &state.app_id)
        .header("x-segl-nonce", &nonce)
        .header("x-segl-timestamp", timestamp.to_string())
        .header(
            "x-segl-signature",
            data_encoding::BASE64URL_NOPAD.encode(&signature),
        )
        .send()
        .await
        .map_err(|e| CliError::Failure(format!("cannot reach {}: {e}", state.server)))?;
    answer(resp, path).await
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
