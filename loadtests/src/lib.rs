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

/// What `taskwire up`'s admin step does before the services start: the streams, buckets and
/// durable consumers (the audit writers', and those of the executor with state in
/// `executor_state` serving the default channel). On a NATS without authentication.
pub async fn prepare(
    nats_url: &str,
    topology: &taskwire_core::topology::TopologyConfig,
    executor_state: Option<&std::path::Path>,
) -> taskwire_core::topology::Topology {
    use taskwire_core::topology::{self, ExecutorEntry};
    let ns = taskwire_core::Namespace::root();
    let client = taskwire_core::nats::connect(nats_url, "bench-setup")
        .await
        .expect("connect");
    let js = taskwire_core::nats::jetstream(client);
    let topo = topology::ensure(&js, &ns, topology)
        .await
        .expect("topology");
    let executors: Vec<ExecutorEntry> = executor_state
        .map(|dir| ExecutorEntry {
            guid: taskwire_executor::identity::load_or_create(dir).expect("guid"),
            channels: vec!["default".into()],
        })
        .into_iter()
        .collect();
    topology::ensure_consumers(&topo, &ns, &executors)
        .await
        .expect("consumers");
    topo
}
