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

/// The cores this machine offers (each benchmark prints them beside its figures).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

/// The resident memory (`VmRSS` of `/proc/<pid>/status`) of process `pid` in bytes, or `None`
/// when it is gone.
pub fn rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The state letter of process `pid` (`R`, `S`, `Z`, ...) from `/proc/<pid>/stat`, or `None`
/// when its entry is gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.chars().next()
}

/// One sample of [`RssSampler`]: when, and the resident bytes of each watched process (0 when
/// it was gone).
pub type RssSample = (std::time::Instant, Vec<u64>);

/// A thread that samples the resident memory of some processes at a fixed interval, keeping
/// every sample, until dropped.
#[derive(Debug)]
pub struct RssSampler {
    samples: std::sync::Arc<std::sync::Mutex<Vec<RssSample>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Samples `pids` every `every` from a thread of its own.
    pub fn start(pids: Vec<i32>, every: Duration) -> Self {
        let samples: std::sync::Arc<std::sync::Mutex<Vec<RssSample>>> = Default::default();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let samples = samples.clone();
            let stop = stop.clone();
            move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = std::time::Instant::now();
                    let v = pids.iter().map(|p| rss_bytes(*p).unwrap_or(0)).collect();
                    samples.lock().expect("samples").push((now, v));
                    std::thread::sleep(every);
                }
            }
        });
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The samples taken from `from` to `to`.
    pub fn between(&self, from: std::time::Instant, to: std::time::Instant) -> Vec<RssSample> {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .cloned()
            .collect()
    }

    /// The highest figure of each process from `from` to `to` (0 without samples).
    pub fn peak_between(&self, from: std::time::Instant, to: std::time::Instant) -> Vec<u64> {
        let s = self.between(from, to);
        let n = s.first().map_or(0, |(_, v)| v.len());
        (0..n)
            .map(|i| s.iter().map(|(_, v)| v[i]).max().unwrap_or(0))
            .collect()
    }

    /// The median figure of each process from `from` to `to` (0 without samples).
    pub fn median_between(&self, from: std::time::Instant, to: std::time::Instant) -> Vec<u64> {
        let s = self.between(from, to);
        let n = s.first().map_or(0, |(_, v)| v.len());
        (0..n)
            .map(|i| median(s.iter().map(|(_, v)| v[i] as f64).collect()) as u64)
            .collect()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many bytes padded standard base64 text of this length decodes to, without decoding
/// it (`text` is only looked at for its trailing `=`).
pub fn base64_decoded_len(text: &[u8]) -> usize {
    let pad = text.iter().rev().take(2).filter(|b| **b == b'=').count();
    (text.len() / 4 * 3).saturating_sub(pad)
}

/// The exact length of `head -c N /dev/zero | base64` (GNU base64: lines of 76 characters,
/// each ended by a newline, the last one too).
pub fn base64_wrapped_len(n: u64) -> u64 {
    let enc = n.div_ceil(3) * 4;
    enc + enc.div_ceil(76)
}
