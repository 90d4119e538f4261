//! `loadgen`: the load generator and limit probes behind `bench/run.sh`.
//!
//! - `argon2`: Argon2id hashes per second at segl's parameters, on N threads (the limit of
//!   full logins: each costs one password verification).
//! - `fsync`: durable 4 KiB appends per second on one file (the limit of durable commits of
//!   one writer without group commit).
//! - `setup`: K persons with a password and an HOTP code device each, and one confidential
//!   client, made through segl's own CLI; writes `people.json`.
//! - `logins`: full logins through the flow API (authorize → identify → method → OTP →
//!   password → token exchange), as a browser without a single sign-on session would.
//! - `refresh`: refresh-token grants; each worker follows the rotation of one token chain.
//!
//! Each measuring subcommand prints one JSON line on stdout: count, seconds, rate, p50/p99
//! latency (ms) and errors. Nothing here asserts on timing; the figures are for the report.
//!
//! The OTP codes are computed here (RFC 4226, HMAC-SHA-1), independently of segl's code.

mod hotp;
mod limits;
mod logins;
mod nin;
mod refresh;
mod setup;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator for segl's benchmarks (bench/run.sh)")]
struct Cli {
    /// Threads of the load generator's own runtime (1: a current-thread runtime, so the
    /// generator takes at most one core from the server under test).
    #[arg(long, global = true, default_value_t = 1)]
    runtime_threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Argon2id hashes per second with the `argon2` crate.
    Argon2(limits::Argon2Args),
    /// Durable (fdatasync'd) 4 KiB appends per second, one writer.
    Fsync(limits::FsyncArgs),
    /// Create persons, code devices and a client through the segl CLI.
    Setup(setup::SetupArgs),
    /// Full logins per second through the flow API.
    Logins(logins::LoginArgs),
    /// Refresh-token grants per second, following rotation.
    Refresh(refresh::RefreshArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Argon2(a) => limits::argon2(&a),
        Cmd::Fsync(a) => limits::fsync(&a),
        Cmd::Setup(a) => setup::run(&a),
        Cmd::Logins(a) => runtime(cli.runtime_threads).and_then(|rt| rt.block_on(logins::run(a))),
        Cmd::Refresh(a) => runtime(cli.runtime_threads).and_then(|rt| rt.block_on(refresh::run(a))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    Ok(rt)
}

/// Random bytes from the kernel.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom is readable");
    buf
}

/// A random URL-safe token of `n` random bytes.
pub fn random_token(n: usize) -> String {
    data_encoding::BASE64URL_NOPAD.encode(&random_bytes(n))
}

/// Writes a file atomically (temporary file, then rename).
pub fn write_atomic(path: &PathBuf, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `Authorization: Basic` for a client, with both parts form-urlencoded (RFC 6749 2.3.1).
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(client_id), enc(secret));
    format!("Basic {}", data_encoding::BASE64.encode(raw.as_bytes()))
}
