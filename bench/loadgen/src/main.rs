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
//! - `ecdsa`: ECDSA P-256 verifications per second with segl's check of a signed device call
//!   (the CPU limit of logins with the app: each costs segl two verifications).
//! - `setup-apps`: K persons with a mobile number, each with an app activated over HTTP
//!   with a device key made here; writes `apps.json`.
//! - `app-logins`: logins with the app (authorize → identify → method app → the app,
//!   holding its event stream, approves with its PIN → collect → token exchange), at a
//!   steady rate or with N in flight; also the push latency (method step to the app).
//! - `app-idle`: idle app event streams held open in steps, with segl's resident memory at
//!   each step (memory per connection).
//! - `ocsp`: OCSP responses per second from pre-made DER requests, POSTed round-robin to
//!   segl's responder or to `openssl ocsp` as the peer (issue 4).
//!
//! Each measuring subcommand prints one JSON line on stdout: count, seconds, rate, p50/p99
//! latency (ms) and errors. Nothing here asserts on timing; the figures are for the report.
//!
//! The OTP codes are computed here (RFC 4226, HMAC-SHA-1), independently of segl's code.

mod appidle;
mod applogins;
mod apps;
mod hotp;
mod limits;
mod logins;
mod nin;
mod ocsp;
mod refresh;
mod setup;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for segl's benchmarks (bench/run.sh)"
)]
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
    /// ECDSA P-256 verifications per second (segl's device-call check).
    Ecdsa(limits::EcdsaArgs),
    /// Create persons with an activated app each (CLI and HTTP).
    SetupApps(apps::SetupAppsArgs),
    /// Logins with the app per second, and the push latency to the app.
    AppLogins(applogins::AppLoginArgs),
    /// Idle app connections and segl's memory per connection.
    AppIdle(appidle::AppIdleArgs),
    /// OCSP responses per second (segl's responder or a peer).
    Ocsp(ocsp::OcspArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Argon2(a) => limits::argon2(&a),
        Cmd::Fsync(a) => limits::fsync(&a),
        Cmd::Setup(a) => setup::run(&a),
        Cmd::Logins(a) => runtime(cli.runtime_threads).and_then(|rt| rt.block_on(logins::run(a))),
        Cmd::Refresh(a) => runtime(cli.runtime_threads).and_then(|rt| rt.block_on(refresh::run(a))),
        Cmd::Ecdsa(a) => limits::ecdsa(&a),
        Cmd::SetupApps(a) => apps::setup(&a),
        Cmd::AppLogins(a) => {
            runtime(cli.runtime_threads).and_then(|rt| rt.block_on(applogins::run(a)))
        }
        Cmd::AppIdle(a) => runtime(cli.runtime_threads).and_then(|rt| rt.block_on(appidle::run(a))),
        Cmd::Ocsp(a) => runtime(cli.runtime_threads).and_then(|rt| rt.block_on(ocsp::run(a))),
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
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
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

/// CPU time (user + system) of a process so far, seconds; `None` if it cannot be read.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// Busy and total jiffies of the whole machine (all CPUs), from /proc/stat.
pub fn machine_jiffies() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4)?;
    Some((total - idle, total))
}

/// CPU counters at the start of a run.
pub struct CpuBefore {
    server: Option<f64>,
    client: Option<f64>,
    machine: Option<(f64, f64)>,
}

/// Reads the CPU counters of the server under test, this process and the machine.
pub fn cpu_before(server: Option<u32>) -> CpuBefore {
    CpuBefore {
        server: cpu_seconds(server),
        client: cpu_seconds(None),
        machine: machine_jiffies(),
    }
}

/// CPU used by the server under test, by this process and by the whole machine (in busy
/// cores: 2.0 is both cores of a 2-core machine) over a run, as JSON fields.
pub fn cpu_fields(server: Option<u32>, before: CpuBefore, ops: usize) -> serde_json::Value {
    let after = (cpu_seconds(server), cpu_seconds(None));
    let before_pair = (before.server, before.client);
    let mut v = serde_json::json!({});
    if let (Some((b0, t0)), Some((b1, t1))) = (before.machine, machine_jiffies())
        && t1 > t0
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        v["machine_busy_cores"] =
            serde_json::json!(((b1 - b0) / (t1 - t0) * cores * 100.0).round() / 100.0);
    }
    let before = before_pair;
    if let (Some(a), Some(b)) = (before.0, after.0) {
        v["server_cpu_s"] = serde_json::json!(((b - a) * 100.0).round() / 100.0);
        if ops > 0 {
            v["server_cpu_ms_per_op"] =
                serde_json::json!(((b - a) * 1e6 / ops as f64).round() / 1000.0);
        }
    }
    if let (Some(a), Some(b)) = (before.1, after.1) {
        v["client_cpu_s"] = serde_json::json!(((b - a) * 100.0).round() / 100.0);
    }
    v
}

/// `Authorization: Basic` for a client, with both parts form-urlencoded (RFC 6749 2.3.1).
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(client_id), enc(secret));
    format!("Basic {}", data_encoding::BASE64.encode(raw.as_bytes()))
}
