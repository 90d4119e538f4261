//! Idle app connections held by one node, and segl's resident memory per connection.
//!
//! Opens signed event streams (`GET /api/v1/app/events`) in steps (0, 1,000, 5,000, …);
//! a connection counts once its first `requests` event has been read, and then stays open,
//! reading keep-alives. After each step, and a settling pause, it reads the server's
//! `VmRSS`, `VmHWM`, `RssAnon` and open file descriptors from `/proc/PID/`. The slope of
//! `VmRSS` over the connections (least squares over the steps from 1,000 up) is the memory
//! per connection; its line at 50,000 is the extrapolation. At the last step it can also
//! measure the CPU segl spends on idle connections (keep-alives and periodic re-reads).
//!
//! Connection i signs as app i mod K (K apps in the apps file), with a fresh nonce each.
//! The steps stop below the file-descriptor limits of the server and of this process
//! (`/proc/PID/limits`), keeping `--fd-headroom` free. With `--source-ips M`, connections
//! come from 127.0.0.1 … 127.0.0.M in turn (about 28,000 ephemeral ports per source).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::apps::{Apps, Device, EventStream};

#[derive(clap::Args)]
pub struct AppIdleArgs {
    /// segl's base URL.
    #[arg(long)]
    base: String,
    /// The apps file written by `setup-apps`.
    #[arg(long)]
    apps: PathBuf,
    /// PID of `segl serve` (its memory is read from /proc).
    #[arg(long)]
    server_pid: u32,
    /// Connection counts to measure at, comma-separated; `max` stands for the most the file
    /// descriptor limits allow.
    #[arg(long, default_value = "0,1000,5000,10000,15000,max")]
    steps: String,
    /// File descriptors left free below the lower of the two processes' limits.
    #[arg(long, default_value_t = 400)]
    fd_headroom: u64,
    /// Pause after each step before reading the memory.
    #[arg(long, default_value_t = 3.0)]
    settle_secs: f64,
    /// At the last step, measure segl's CPU over this long (0: skip). 30 s covers one
    /// full round of the event streams' periodic re-reads.
    #[arg(long, default_value_t = 30.0)]
    idle_cpu_secs: f64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    open_concurrency: usize,
    /// Spread the connections over source addresses 127.0.0.1 … 127.0.0.M.
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
}

/// `Max open files` (soft) of a process, from /proc/PID/limits.
fn fd_limit(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// VmRSS, VmHWM and RssAnon of a process, kB.
fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status: is segl running?"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:"), field("RssAnon:")))
}

/// Least squares: (slope, intercept) of y over x.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

pub async fn run(a: AppIdleArgs) -> anyhow::Result<()> {
    let file = Apps::read(&a.apps)?;
    if file.apps.is_empty() {
        bail!("no apps in {}", a.apps.display());
    }
    let devices: Vec<Arc<Device>> = file
        .apps
        .iter()
        .map(|p| Device::from_person(p).map(Arc::new))
        .collect::<anyhow::Result<_>>()?;
    let base = a.base.trim_end_matches('/').to_string();
    let server_fds = fd_limit(&a.server_pid.to_string()).unwrap_or(1024);
    let own_fds = fd_limit("self").unwrap_or(1024);
    let base_fds = fd_count(a.server_pid).unwrap_or(0) as u64;
    let max = server_fds
        .saturating_sub(base_fds + a.fd_headroom)
        .min(own_fds.saturating_sub(a.fd_headroom + 64));
    let mut steps: Vec<u64> = Vec::new();
    for s in a.steps.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let n = if s == "max" {
            max
        } else {
            s.parse::<u64>()
                .with_context(|| format!("step {s} is not a number"))?
        };
        if n > max {
            eprintln!("loadgen: app_idle: step {n} is beyond the fd limits; stopping at {max}");
        }
        let n = n.min(max);
        if steps.last().is_none_or(|&l| n > l) {
            steps.push(n);
        }
    }
    let clients: Vec<reqwest::Client> = (0..a.source_ips.max(1))
        .map(|i| {
            let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
            if a.source_ips > 1 {
                b = b.local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i)));
            }
            b.build()
        })
        .collect::<Result<_, _>>()?;

    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let gate = Arc::new(Semaphore::new(a.open_concurrency.max(1)));
    let mut holders = Vec::new();
    let mut points = Vec::new();
    let mut errors = 0u64;
    let mut samples: Vec<String> = Vec::new();
    let mut open = 0u64;
    let t_all = Instant::now();
    for &target in &steps {
        let t = Instant::now();
        let want = target.saturating_sub(open);
        for k in open..target {
            let dev = devices[(k as usize) % devices.len()].clone();
            let http = clients[(k as usize) % clients.len()].clone();
            let (base, done, gate) = (base.clone(), done_tx.clone(), gate.clone());
            holders.push(tokio::spawn(async move {
                let permit = gate.acquire_owned().await;
                let mut stream = match EventStream::connect(&http, &base, &dev).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = done.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                match stream.next().await {
                    Ok(Some(ev)) if ev.event == "requests" => {
                        let _ = done.send(Ok(()));
                    }
                    other => {
                        let what = match other {
                            Ok(Some(ev)) => format!("first event {}", ev.event),
                            Ok(None) => "closed before its first event".into(),
                            Err(e) => format!("{e:#}"),
                        };
                        let _ = done.send(Err(what));
                        return;
                    }
                }
                drop(permit);
                // Idle: read keep-alives until the run ends (the task is aborted).
                while let Ok(Some(_)) = stream.next().await {}
            }));
        }
        let mut ok = 0u64;
        for _ in 0..want {
            match done_rx.recv().await {
                Some(Ok(())) => ok += 1,
                Some(Err(e)) => {
                    errors += 1;
                    if samples.len() < 3 {
                        samples.push(e);
                    }
                }
                None => break,
            }
        }
        open += want;
        let open_secs = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(a.settle_secs)).await;
        let (rss, hwm, anon) = memory_kb(a.server_pid)?;
        let point = json!({
            "conns": open - errors,
            "rss_kb": rss,
            "hwm_kb": hwm,
            "anon_kb": anon,
            "server_fds": fd_count(a.server_pid),
            "open_seconds": (open_secs * 100.0).round() / 100.0,
            "opened_per_s": if want > 0 { (ok as f64 / open_secs).round() } else { 0.0 },
        });
        eprintln!("loadgen: app_idle: {point}");
        points.push(point);
        if errors > 0 {
            // Past a failure, the counts no longer say what they mean.
            break;
        }
    }
    let mut idle_cpu = Value::Null;
    if a.idle_cpu_secs > 0.0 && open > 0 {
        let before = crate::cpu_seconds(Some(a.server_pid));
        tokio::time::sleep(Duration::from_secs_f64(a.idle_cpu_secs)).await;
        let after = crate::cpu_seconds(Some(a.server_pid));
        if let (Some(b0), Some(b1)) = (before, after) {
            let cores = (b1 - b0) / a.idle_cpu_secs;
            idle_cpu = json!({
                "conns": open - errors,
                "seconds": a.idle_cpu_secs,
                "server_cores": (cores * 1000.0).round() / 1000.0,
                "server_cores_per_10k": (cores / (open - errors).max(1) as f64 * 1e4 * 1000.0).round() / 1000.0,
            });
        }
    }
    let held = open - errors;
    for h in &holders {
        h.abort();
    }
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p["conns"].as_u64().unwrap_or(0) >= 1000)
        .map(|p| {
            (
                p["conns"].as_f64().unwrap_or(0.0),
                p["rss_kb"].as_f64().unwrap_or(0.0) * 1024.0,
            )
        })
        .collect();
    let (slope, intercept) = fit(&xy).unwrap_or((f64::NAN, f64::NAN));
    let rss0 = points
        .first()
        .and_then(|p| p["rss_kb"].as_f64())
        .unwrap_or(0.0)
        * 1024.0;
    let rss_top = points
        .last()
        .and_then(|p| p["rss_kb"].as_f64())
        .unwrap_or(0.0)
        * 1024.0;
    let v = json!({
        "bench": "app_idle",
        "max_conns": held,
        "fd_limit_server": server_fds,
        "fd_limit_loadgen": own_fds,
        "source_ips": a.source_ips.max(1),
        "apps": devices.len(),
        "points": points,
        "slope_bytes_per_conn": slope.round(),
        "intercept_mb": (intercept / 1e6 * 100.0).round() / 100.0,
        "avg_bytes_per_conn": if held > 0 { ((rss_top - rss0) / held as f64).round() } else { 0.0 },
        "extrapolated_50k_mb": ((intercept + slope * 50_000.0) / 1e6 * 10.0).round() / 10.0,
        "idle_cpu": idle_cpu,
        "errors": errors,
        "seconds": (t_all.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    });
    for s in &samples {
        eprintln!("loadgen: app_idle: error: {s}");
    }
    println!("{v}");
    Ok(())
}
