//! `segl`: run and administer the segl eID provider.
//!
//! Every command opens (and if needed initialises) the data directory and database the
//! same way `serve` does, so an operator can seed people, code devices and clients before
//! the first start. Output is for people by default and JSON with `--json`. Bad input
//! exits with code 2 and writes nothing; other failures exit with 1.

mod app;
mod commands;
mod config;
mod maintenance;
mod order;
mod outbox;
mod pki;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Errors of the command line, each with its exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The input was wrong (exit code 2).
    #[error("{0}")]
    Input(String),
    /// Something failed (exit code 1).
    #[error("{0}")]
    Failure(String),
}

impl From<segl_store::StoreError> for CliError {
    fn from(e: segl_store::StoreError) -> Self {
        match e {
            segl_store::StoreError::Duplicate(_) | segl_store::StoreError::NotFound(_) => {
                CliError::Input(e.to_string())
            }
            e => CliError::Failure(e.to_string()),
        }
    }
}

#[derive(Parser)]
#[command(
    name = "segl",
    version,
    about = "segl: an open-source electronic identity (eID) provider",
    long_about = "segl: an open-source electronic identity (eID) provider.\n\nStart with `segl serve --demo` and open the printed /demo URL.",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// Data directory: database, keys and segl.toml.
    #[arg(
        long,
        global = true,
        env = "SEGL_DATA_DIR",
        default_value = "./segl-data"
    )]
    pub data_dir: PathBuf,
    /// Database URL (sqlite://… or postgres://…); default: SQLite in the data directory.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Configuration file (default: segl.toml in the data directory, if present).
    #[arg(long, global = true, env = "SEGL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(commands::ServeArgs),
    /// Manage persons.
    #[command(subcommand)]
    Person(commands::PersonCmd),
    /// Manage code devices (HOTP/TOTP tokens).
    #[command(subcommand)]
    Token(commands::TokenCmd),
    /// Manage relying parties (OIDC clients).
    #[command(subcommand)]
    Rp(commands::RpCmd),
    /// Manage token-signing keys.
    #[command(subcommand)]
    Keys(commands::KeysCmd),
    /// Read and check the audit log.
    #[command(subcommand)]
    Audit(commands::AuditCmd),
    /// Show the configuration.
    #[command(subcommand)]
    Config(commands::ConfigCmd),
    /// The reference app: a device key under a PIN, as a phone holds it.
    #[command(subcommand)]
    App(app::AppCmd),
    /// The CA hierarchy: create, list, export.
    #[command(subcommand)]
    Ca(pki::CaCmd),
    /// Person certificates: list, issue, revoke.
    #[command(subcommand)]
    Cert(pki::CertCmd),
    /// Maintenance windows: close ordering on a channel for a while, with a message.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCmd),
    /// Check a detached CMS signature, or the signatures in a PDF (`--pdf`), with the chain
    /// and the signer's revocation status.
    Verify(pki::VerifyArgs),
    /// Messages to people (SMS, email, letter): delivery state and resend.
    #[command(subcommand)]
    Outbox(outbox::OutboxCmd),
    /// eID orders: find, review (manual identity check), send new activation codes.
    #[command(subcommand)]
    Order(order::OrderCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(a) => commands::serve(&cli.global, a).await,
            Command::Person(c) => commands::person(&cli.global, c).await,
            Command::Token(c) => commands::token(&cli.global, c).await,
            Command::Rp(c) => commands::rp(&cli.global, c).await,
            Command::Keys(c) => commands::keys(&cli.global, c).await,
            Command::Audit(c) => commands::audit(&cli.global, c).await,
            Command::Config(c) => commands::config(&cli.global, c).await,
            Command::App(c) => app::app(&cli.global, c).await,
            Command::Ca(c) => pki::ca(&cli.global, c).await,
            Command::Cert(c) => pki::cert(&cli.global, c).await,
            Command::Verify(a) => pki::verify(&cli.global, a).await,
            Command::Outbox(c) => outbox::outbox(&cli.global, c).await,
            Command::Order(c) => order::order(&cli.global, c).await,
            Command::Maintenance(c) => maintenance::maintenance(&cli.global, c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                CliError::Input(_) => ExitCode::from(2),
                CliError::Failure(_) => ExitCode::from(1),
            }
        }
    }
}
