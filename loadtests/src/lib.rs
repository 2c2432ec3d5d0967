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

/// The median of `values` (0 when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Reads a positive integer from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// A nats-server for a benchmark, with NATS authentication on (every service its own key and
/// permissions, as `taskwire up` runs it) or off, and the dispatch signing key either way.
#[derive(Debug)]
pub struct BenchNats {
    pub server: taskwire_testkit::NatsServer,
    pub keys: taskwire_core::auth::keys::KeyDir,
    pub auth: bool,
    pub executors: Vec<taskwire_core::topology::ExecutorEntry>,
    _dir: tempfile::TempDir,
}

impl BenchNats {
    /// Starts a server that knows the executors with state in `executor_states` (each serving
    /// the default channel), then makes the streams, buckets and consumers as the admin.
    pub async fn start(
        auth: bool,
        topology: &taskwire_core::topology::TopologyConfig,
        executor_states: &[&std::path::Path],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = taskwire_core::Namespace::root();
        let executors: Vec<_> = executor_states
            .iter()
            .map(|d| taskwire_core::topology::ExecutorEntry {
                guid: taskwire_executor::identity::load_or_create(d).expect("guid"),
                channels: vec!["default".into()],
            })
            .collect();
        let conf =
            taskwire_core::auth::provision(dir.path(), &ns, &executors, false).expect("keys");
        let server = taskwire_testkit::NatsServer::start_with(auth.then_some(conf.as_path()));
        let keys = taskwire_core::auth::keys::KeyDir::open(dir.path()).expect("keys");
        let b = Self {
            server,
            keys,
            auth,
            executors,
            _dir: dir,
        };
        taskwire_core::auth::setup(
            &b.endpoint(&taskwire_core::auth::roles::Role::Admin),
            &ns,
            topology,
            &b.executors,
        )
        .await
        .expect("setup");
        b
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `role`'s key file, when authentication is on.
    pub fn credentials(
        &self,
        role: &taskwire_core::auth::roles::Role,
    ) -> Option<std::path::PathBuf> {
        self.auth.then(|| self.keys.path(role))
    }

    /// Where `role` connects.
    pub fn endpoint(
        &self,
        role: &taskwire_core::auth::roles::Role,
    ) -> taskwire_core::nats::Endpoint {
        taskwire_core::nats::Endpoint::new(self.url(), self.credentials(role))
            .with_inbox(role.inbox_prefix())
    }

    /// The role of the `i`th executor.
    pub fn executor(&self, i: usize) -> taskwire_core::auth::roles::Role {
        let e = &self.executors[i];
        taskwire_core::auth::roles::Role::Executor {
            guid: e.guid,
            channels: e.channels.clone(),
        }
    }

    /// The gateway's dispatch signer (executors trust [`BenchNats::trusted`]).
    pub fn signer(&self) -> std::sync::Arc<taskwire_core::sign::DispatchSigner> {
        std::sync::Arc::new(
            taskwire_core::sign::DispatchSigner::from_file(&self.keys.signing_path())
                .expect("signing key"),
        )
    }

    /// The public keys executors trust.
    pub fn trusted(&self) -> Vec<String> {
        vec![self.keys.signing_public().expect("public key")]
    }
}

/// The authentication modes to measure, from `BENCH_AUTH` (`off`, `on`, or `off,on`, the
/// default: both in the same run).
pub fn auth_modes() -> Vec<bool> {
    std::env::var("BENCH_AUTH")
        .unwrap_or_else(|_| "off,on".into())
        .split(',')
        .filter_map(|m| match m.trim() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        })
        .collect()
}
