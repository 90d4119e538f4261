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
    Status {
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
        AppCmd::Status { vault } => status(g, &vault),
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
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Failure(format!("cannot start an HTTP client: {e}")))?;
    let resp = http
        .post(url)
        .json(&json!({
            "activation_code": code,
            "public_key": key.public_key_b64url(),
            "label": label,
        }))
        .send()
        .await
        .map_err(|e| CliError::Failure(format!("cannot reach {server}: {e}")))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        // The server's problem+json says why; its code is for scripts.
        let detail = body["detail"].as_str().unwrap_or("no detail");
        let code = body["code"]
            .as_str()
            .or(body["type"].as_str())
            .unwrap_or("");
        let msg = format!("activation refused ({status}, {code}): {detail}");
        return Err(if status.is_client_error() {
            CliError::Input(msg)
        } else {
            CliError::Failure(msg)
        });
    }
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
