//! What the workers record and the one JSON line each run prints.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// One worker's record.
#[derive(Default)]
pub struct Record {
    /// Latency of each completed operation, microseconds.
    pub latencies_us: Vec<u64>,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    /// Time spent per stage (logins only), microseconds, and how often.
    pub stages: BTreeMap<&'static str, (u64, u64)>,
    /// A few error details for stderr.
    pub samples: Vec<String>,
}

impl Record {
    /// Records an error of `kind`, keeping the first few details.
    pub fn error(&mut self, kind: String, detail: String) {
        *self.errors.entry(kind).or_default() += 1;
        if self.samples.len() < 3 {
            self.samples.push(detail);
        }
    }

    /// Adds the time of one stage.
    pub fn stage(&mut self, name: &'static str, d: Duration) {
        let e = self.stages.entry(name).or_default();
        e.0 += d.as_micros() as u64;
        e.1 += 1;
    }

    /// Merges another worker's record into this one.
    pub fn merge(&mut self, other: Record) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, (t, n)) in other.stages {
            let e = self.stages.entry(k).or_default();
            e.0 += t;
            e.1 += n;
        }
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
    }
}

fn percentile_ms(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    round3(sorted[i] as f64 / 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The summary line: count, seconds, rate, p50/p99 (ms), errors, plus `extra` fields.
pub fn summary(bench: &str, mut rec: Record, elapsed: Duration, extra: Value) -> Value {
    rec.latencies_us.sort_unstable();
    let count = rec.latencies_us.len() as u64;
    let secs = elapsed.as_secs_f64();
    let errors: u64 = rec.errors.values().sum();
    let mut v = json!({
        "bench": bench,
        "count": count,
        "seconds": round3(secs),
        "rate": round3(count as f64 / secs),
        "p50_ms": percentile_ms(&rec.latencies_us, 50),
        "p99_ms": percentile_ms(&rec.latencies_us, 99),
        "errors": errors,
    });
    if !rec.errors.is_empty() {
        v["error_kinds"] = json!(rec.errors);
    }
    if !rec.stages.is_empty() {
        let means: BTreeMap<&str, f64> = rec
            .stages
            .iter()
            .map(|(k, (t, n))| (*k, round3(*t as f64 / (*n).max(1) as f64 / 1000.0)))
            .collect();
        v["stage_mean_ms"] = json!(means);
    }
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    for s in &rec.samples {
        eprintln!("loadgen: {bench}: error: {s}");
    }
    v
}
