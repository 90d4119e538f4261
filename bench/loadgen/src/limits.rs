//! The limits the service figures are compared with, measured in the same run: Argon2id
//! hashes per second (logins) and durable appends per second (refresh grants).

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::json;

#[derive(clap::Args)]
pub struct Argon2Args {
    /// Hashing threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// How long to hash.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Memory, KiB.
    #[arg(long, default_value_t = 19_456)]
    m_cost: u32,
    /// Passes.
    #[arg(long, default_value_t = 2)]
    t_cost: u32,
    /// Lanes.
    #[arg(long, default_value_t = 1)]
    p_cost: u32,
    /// Hash with fresh memory each time (`argon2::Argon2::hash_password_into`, which
    /// allocates and zeroes it) instead of segl's own verification, which keeps each
    /// thread's memory. Slower: for comparison only, not the limit.
    #[arg(long)]
    fresh_memory: bool,
}

/// Verifies a password on `threads` threads until the time is up; counts finished hashes.
/// By default each is `segl_crypto::password::PasswordHasher::verify` against a PHC string
/// at the given parameters: the work segl does for each login, in the same way (each
/// thread keeps its Argon2 memory between hashes), so no login can cost less hashing.
pub fn argon2(a: &Argon2Args) -> anyhow::Result<()> {
    let params = Params::new(a.m_cost, a.t_cost, a.p_cost, Some(32))
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let config = segl_crypto::password::Argon2Params {
        m_kib: a.m_cost,
        t: a.t_cost,
        p: a.p_cost,
    };
    let segl = segl_crypto::password::PasswordHasher::new(config)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let password = crate::random_token(18);
    let phc = segl
        .hash(&password)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let fresh = a.fresh_memory;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let handles: Vec<_> = (0..a.threads.max(1))
        .map(|_| {
            let (params, segl, password, phc) =
                (params.clone(), segl.clone(), password.clone(), phc.clone());
            let stop = stop.clone();
            std::thread::spawn(move || {
                let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let mut lat = Vec::new();
                let mut out = [0u8; 32];
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let salt = crate::random_bytes(16);
                    let t = Instant::now();
                    let done = if fresh {
                        hasher
                            .hash_password_into(password.as_bytes(), &salt, &mut out)
                            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
                    } else {
                        match segl.verify(&password, &phc) {
                            Ok(segl_crypto::password::Verification::Valid { .. }) => Ok(()),
                            Ok(other) => Err(anyhow::anyhow!("argon2: verified as {other:?}")),
                            Err(e) => Err(anyhow::anyhow!("argon2: {e}")),
                        }
                    };
                    if let Err(e) = done {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    lat.push(t.elapsed().as_micros() as u64);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut rec = crate::stats::Record::default();
    for h in handles {
        let lat = h
            .join()
            .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))??;
        rec.latencies_us.extend(lat);
    }
    let elapsed = start.elapsed();
    let extra = json!({
        "threads": a.threads,
        "m_cost_kib": a.m_cost,
        "t_cost": a.t_cost,
        "p_cost": a.p_cost,
        "what": if fresh { "argon2::Argon2::hash_password_into (fresh memory)" }
            else { "segl_crypto::password::PasswordHasher::verify (kept memory)" },
    });
    println!("{}", crate::stats::summary("argon2", rec, elapsed, extra));
    Ok(())
}

#[derive(clap::Args)]
pub struct FsyncArgs {
    /// Directory of the file (use the filesystem of the database).
    #[arg(long)]
    dir: PathBuf,
    /// How long to write.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// Appends 4 KiB and `fdatasync`s, again and again, on one file (wrapping at 64 MiB, as a
/// write-ahead log is reused): the rate of durable commits of a single writer.
pub fn fsync(a: &FsyncArgs) -> anyhow::Result<()> {
    let path = a
        .dir
        .join(format!("loadgen-fsync-{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = crate::random_bytes(4096);
    let wrap = 64 * 1024 * 1024u64;
    let mut pos = 0u64;
    let mut rec = crate::stats::Record::default();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let result = (|| -> anyhow::Result<()> {
        while Instant::now() < deadline {
            let t = Instant::now();
            if pos >= wrap {
                f.seek(SeekFrom::Start(0))?;
                pos = 0;
            }
            f.write_all(&block)?;
            f.sync_data()?;
            pos += block.len() as u64;
            rec.latencies_us.push(t.elapsed().as_micros() as u64);
        }
        Ok(())
    })();
    let elapsed = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    result?;
    let extra = json!({"dir": a.dir.display().to_string(), "block_bytes": 4096});
    println!("{}", crate::stats::summary("fsync", rec, elapsed, extra));
    Ok(())
}

#[derive(clap::Args)]
pub struct EcdsaArgs {
    /// Verifying threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// How long to verify.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// ECDSA P-256 verifications per second with segl's own check of a signed device call
/// (`segl_crypto::device::verify_request`: the stored key parsed, the signed bytes built,
/// the signature verified), on N threads. An app login makes segl verify two signatures
/// (the answer call's and the approval's), so half this rate is the most app logins per
/// second the machine could verify if it did nothing else.
pub fn ecdsa(a: &EcdsaArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.seconds);
    let handles: Vec<_> = (0..a.threads.max(1))
        .map(|_| {
            std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
                let key =
                    segl_app::device::DeviceKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
                let public = key.public_key_bytes().to_vec();
                let nonce = crate::random_token(18);
                let request = segl_core::app::DeviceRequest {
                    app_id: "123456789012",
                    nonce: &nonce,
                    method: "POST",
                    path: "/api/v1/app/requests/abcdefghijklmnopqrstuvwx/answer",
                    timestamp: crate::apps::unix_now(),
                    body_sha256: [7; 32],
                };
                let sig = key
                    .sign_request(&request)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    segl_crypto::device::verify_request(&public, &request, &sig)
                        .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
                    lat.push(t.elapsed().as_micros() as u64);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut rec = crate::stats::Record::default();
    for h in handles {
        let lat = h
            .join()
            .map_err(|_| anyhow::anyhow!("a verifying thread panicked"))??;
        rec.latencies_us.extend(lat);
    }
    let elapsed = start.elapsed();
    let extra = json!({"threads": a.threads, "what": "segl_crypto::device::verify_request"});
    println!("{}", crate::stats::summary("ecdsa", rec, elapsed, extra));
    Ok(())
}
