//! Benchmarks for taskwire. Each prints its figures beside a raw baseline measured in the same
//! run on the same machine, so the ratio means something wherever it runs. Benchmarks measure;
//! tests assert.

use std::time::Duration;

/// Percentile of sorted durations (p in 0..=100).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Reads a positive integer from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}
