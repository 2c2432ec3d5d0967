//! Executor benchmark: jobs/s for `/bin/true` with 16 in flight, and MB/s for one job writing
//! 200 MB, each beside raw `tokio::process` measured in the same run.
//!
//! Run: `cargo run --release -p taskwire-loadtests --bin executor-bench`
//! (BENCH_JOBS=2000 BENCH_INFLIGHT=16 BENCH_MB=200 to change the sizes; BENCH_CGROUP=off to
//! contain jobs by process group instead of a cgroup each).

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskwire_core::Namespace;
use taskwire_core::auth::roles::Role;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::{self, TopologyConfig};
use taskwire_core::wire::{EventKind, JobEvent, JobSpec, JobState, Target, Via};
use taskwire_executor::{CgroupMode, Executor, ExecutorConfig, ExecutorOptions};
use taskwire_loadtests::{BenchNats, env_usize};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, oneshot};

#[tokio::main]
async fn main() {
    let jobs = env_usize("BENCH_JOBS", 2000);
    let inflight = env_usize("BENCH_INFLIGHT", 16);
    let mb = env_usize("BENCH_MB", 200);
    println!(
        "executor benchmark: {jobs} jobs of /bin/true with {inflight} in flight; one job writing {mb} MB"
    );
    println!("machine: {} cores", taskwire_loadtests::cores());

    let raw_rate = raw_spawn_rate(jobs, inflight).await;
    let raw_mbps = raw_output_rate(mb).await;

    // Each mode is measured `BENCH_REPEAT` times, alternating, and its median reported: a
    // 2-core machine's noise is larger than what authentication costs.
    let repeat = env_usize("BENCH_REPEAT", 3);
    let modes = taskwire_loadtests::auth_modes();
    let mut runs: Vec<(bool, f64, f64)> = Vec::new();
    for _ in 0..repeat {
        for &auth in &modes {
            let (rate, mbps) = measure(auth, jobs, inflight, mb).await;
            runs.push((auth, rate, mbps));
        }
    }
    println!();
    println!(
        "| measure (median of {repeat}, alternating) | raw tokio::process | NATS auth | taskwire | ratio |"
    );
    println!("| --- | ---: | --- | ---: | ---: |");
    for &auth in &modes {
        let mine = |f: fn(&(bool, f64, f64)) -> f64| {
            taskwire_loadtests::median(runs.iter().filter(|r| r.0 == auth).map(f).collect())
        };
        let (tw_rate, tw_mbps) = (mine(|r| r.1), mine(|r| r.2));
        let mode = if auth { "on" } else { "off" };
        println!(
            "| /bin/true jobs/s, {inflight} in flight | {raw_rate:.0} | {mode} | {tw_rate:.0} | {:.0}% |",
            100.0 * tw_rate / raw_rate
        );
        println!(
            "| one job writing {mb} MB, MB/s (submit to exited, stored in JetStream) | {raw_mbps:.0} | {mode} | {tw_mbps:.0} | {:.0}% |",
            100.0 * tw_mbps / raw_mbps
        );
    }
}

/// jobs/s of `/bin/true` and MB/s of one big job, on a NATS with authentication on or off.
async fn measure(auth: bool, jobs: usize, inflight: usize, mb: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[commands.true]\nprogram = \"/bin/true\"\n\n[commands.flood]\nprogram = \"/usr/bin/head\"\nargs = [\"-c\", \"{}\", \"/dev/zero\"]\noutput_cap = \"4GiB\"\n",
            mb << 20
        ),
    )
    .expect("catalog");
    let topo_cfg = TopologyConfig {
        output_max_bytes: 4 << 30,
        ..TopologyConfig::default()
    };
    let nats = BenchNats::start(auth, &topo_cfg, &[&dir.path().join("state")]).await;
    let exec = Executor::start(ExecutorOptions {
        nats_url: nats.url(),
        nats_credentials: nats.credentials(&nats.executor(0)),
        namespace: Namespace::root(),
        state_dir: dir.path().join("state"),
        topology: topo_cfg.clone(),
        config: ExecutorConfig {
            catalog,
            slots: inflight as u32,
            cgroup: if std::env::var("BENCH_CGROUP").as_deref() == Ok("off") {
                CgroupMode::Off
            } else {
                CgroupMode::Auto
            },
            dispatch_trusted_keys: nats.trusted(),
            ..ExecutorConfig::default()
        },
    })
    .await
    .expect("executor");

    // Submits as the gateway does (signed), on the admin's connection (it reads every event).
    let client = taskwire_core::nats::connect_to(&nats.endpoint(&Role::Admin), "bench")
        .await
        .expect("connect");
    let js = taskwire_core::nats::jetstream(client.clone());
    let topo = topology::open(&js, &Namespace::root())
        .await
        .expect("topology");
    let store = JobStore::new(js, topo.jobs.clone(), Namespace::root()).with_signer(nats.signer());
    let waiters: Arc<Mutex<HashMap<uuid::Uuid, oneshot::Sender<JobState>>>> = Default::default();
    let mut sub = client
        .subscribe(Namespace::root().event_all())
        .await
        .expect("subscribe");
    tokio::spawn({
        let waiters = waiters.clone();
        async move {
            while let Some(m) = sub.next().await {
                if let Ok(e) = serde_json::from_slice::<JobEvent>(&m.payload)
                    && let EventKind::Exited { state, .. } = e.kind
                    && let Some(tx) = waiters.lock().expect("lock").remove(&e.job_id)
                {
                    let _ = tx.send(state);
                }
            }
        }
    });

    // Warm-up: consumers, connections and page cache.
    for _ in 0..20 {
        run_job(&store, &waiters, "true").await;
    }
    let gate = Arc::new(Semaphore::new(inflight));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let store = store.clone();
        let waiters = waiters.clone();
        set.spawn(async move {
            let state = run_job(&store, &waiters, "true").await;
            drop(permit);
            state
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        ok += (r.expect("join") == JobState::Succeeded) as usize;
    }
    let tw_rate = jobs as f64 / start.elapsed().as_secs_f64();
    assert_eq!(ok, jobs, "every job succeeded");

    let start = Instant::now();
    let state = run_job(&store, &waiters, "flood").await;
    let tw_secs = start.elapsed().as_secs_f64();
    assert_eq!(state, JobState::Succeeded);
    let tw_mbps = mb as f64 * 1.048576 / tw_secs;

    exec.drain().await.expect("drain");
    (tw_rate, tw_mbps)
}

async fn run_job(
    store: &JobStore,
    waiters: &Mutex<HashMap<uuid::Uuid, oneshot::Sender<JobState>>>,
    command: &str,
) -> JobState {
    let spec = JobSpec::new(
        command,
        Target::Channel("default".into()),
        "bench",
        Via::Nats,
    );
    let (tx, rx) = oneshot::channel();
    waiters.lock().expect("lock").insert(spec.job_id, tx);
    store.submit(spec).await.expect("submit");
    tokio::time::timeout(Duration::from_secs(600), rx)
        .await
        .expect("job finished in time")
        .expect("exited event")
}

/// Raw baseline: spawn and reap `/bin/true` with `inflight` at once.
async fn raw_spawn_rate(jobs: usize, inflight: usize) -> f64 {
    let gate = Arc::new(Semaphore::new(inflight));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let permit = gate.clone().acquire_owned().await.expect("gate");
        set.spawn(async move {
            let s = tokio::process::Command::new("/bin/true")
                .status()
                .await
                .expect("spawn /bin/true");
            drop(permit);
            s.success()
        });
    }
    while let Some(r) = set.join_next().await {
        assert!(r.expect("join"));
    }
    jobs as f64 / start.elapsed().as_secs_f64()
}

/// Raw baseline: read `mb` MB from a child's stdout pipe.
async fn raw_output_rate(mb: usize) -> f64 {
    let start = Instant::now();
    let mut child = tokio::process::Command::new("/usr/bin/head")
        .args(["-c", &(mb << 20).to_string(), "/dev/zero"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn head");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = out.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        total += n;
    }
    child.wait().await.expect("wait");
    assert_eq!(total, mb << 20);
    mb as f64 * 1.048576 / start.elapsed().as_secs_f64()
}
