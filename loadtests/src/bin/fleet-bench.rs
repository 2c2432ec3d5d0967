//! Fleet benchmark: many executors on the local 3-node cluster of `taskwire up --cluster`.
//! The cluster is told of `BENCH_EXECUTORS` executors (their keys and NATS permissions, and
//! the admin step's channel consumers); it runs two of them as processes, and this program
//! runs the rest in-process (one NATS connection, heartbeat and pull loops each, as a real
//! one). It reports how long the admin step and the executors' start took, the JetStream
//! assets, the nodes' CPU and memory while the fleet idles and while jobs run, the registry's
//! size, and submit -> started p50/p99 through the public API for channel and instance
//! targets, beside the same figures for the two-executor cluster measured in the same run.
//!
//! Run: `cargo build --release -p taskwire -p taskwire-loadtests && \
//!       target/release/fleet-bench` (BENCH_EXECUTORS=1000 BENCH_JOBS=100, and
//!       BENCH_HEARTBEAT_SECS=2: the in-process executors' heartbeat period; needs PostgreSQL
//! at TASKWIRE_TEST_POSTGRES and nats-server at TASKWIRE_NATS_SERVER, as `ops/test` has).

use futures::StreamExt;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskwire_core::auth::keys::KeyDir;
use taskwire_core::auth::roles::Role;
use taskwire_core::topology::{ExecutorEntry, TopologyConfig};
use taskwire_executor::{CgroupMode, Executor, ExecutorConfig, ExecutorOptions};
use taskwire_loadtests::{env_usize, percentile};
use uuid::Uuid;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // Warnings of the in-process executors (TASKWIRE_LOG or RUST_LOG for more) on stderr.
    taskwire_core::telemetry::init("warn");
    let fleet = env_usize("BENCH_EXECUTORS", 1000).max(3);
    let jobs = env_usize("BENCH_JOBS", 100);
    let beat = Duration::from_secs(env_usize("BENCH_HEARTBEAT_SECS", 2) as u64);
    println!(
        "fleet benchmark: a 3-node cluster (R3) with 2 executors, then with {fleet}; {jobs} jobs per target kind; heartbeats every {} s",
        beat.as_secs()
    );
    println!("machine: {} cores", taskwire_loadtests::cores());
    let base = run(2, jobs, beat).await;
    let big = run(fleet, jobs, beat).await;
    println!();
    println!("| figure | 2 executors | {fleet} executors |");
    println!("| --- | ---: | ---: |");
    for (name, a, b) in base
        .rows()
        .into_iter()
        .zip(big.rows())
        .map(|((n, a), (_, b))| (n, a, b))
    {
        println!("| {name} | {a} | {b} |");
    }
}

/// What one run measured.
struct Figures {
    up: Duration,
    started: Duration,
    streams: usize,
    consumers: usize,
    by_stream: String,
    replicated_consumers: usize,
    registry_bytes: u64,
    registry_entries: u64,
    idle_cpu: f64,
    busy_cpu: f64,
    nats_rss_mb: f64,
    own_rss_mb: f64,
    channel: (Duration, Duration),
    instance: (Duration, Duration),
}

impl Figures {
    fn rows(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        vec![
            (
                "`taskwire up --cluster` ready (admin step included)",
                format!("{:.1} s", self.up.as_secs_f64()),
            ),
            (
                "the in-process executors serving",
                format!("{:.1} s", self.started.as_secs_f64()),
            ),
            ("streams (KV buckets included)", self.streams.to_string()),
            ("consumers", self.consumers.to_string()),
            ("consumers by stream", self.by_stream.clone()),
            (
                "replicated consumers (a Raft group each)",
                self.replicated_consumers.to_string(),
            ),
            (
                "registry entries / bytes",
                format!("{} / {}", self.registry_entries, self.registry_bytes),
            ),
            (
                "3 nodes' CPU, fleet idle (cores)",
                format!("{:.2}", self.idle_cpu),
            ),
            (
                "3 nodes' CPU, jobs running (cores)",
                format!("{:.2}", self.busy_cpu),
            ),
            (
                "3 nodes' resident memory",
                format!("{:.0} MB", self.nats_rss_mb),
            ),
            (
                "this process (the in-process executors) resident",
                format!("{:.0} MB", self.own_rss_mb),
            ),
            (
                "submit -> started, channel, p50 / p99",
                format!("{} / {}", ms(self.channel.0), ms(self.channel.1)),
            ),
            (
                "submit -> started, instance, p50 / p99",
                format!("{} / {}", ms(self.instance.0), ms(self.instance.1)),
            ),
        ]
    }
}

async fn run(fleet: usize, jobs: usize, beat: Duration) -> Figures {
    println!();
    println!("== {fleet} executors");
    let state = tempfile::Builder::new()
        .prefix("tw-fleet-")
        .tempdir()
        .expect("tempdir");
    let pg = taskwire_testkit::PgDatabase::create().await;
    // The executors the cluster is told of: the key directory's list, before it starts.
    let key_dir = state.path().join("nats-auth");
    std::fs::create_dir_all(&key_dir).expect("key dir");
    let entries: Vec<ExecutorEntry> = (0..fleet)
        .map(|_| ExecutorEntry {
            guid: Uuid::new_v4(),
            channels: vec!["default".into()],
        })
        .collect();
    taskwire_core::auth::manifest::save(&key_dir, &entries).expect("manifest");

    let began = Instant::now();
    let mut cluster = start_cluster(state.path(), &pg.url());
    let up = began.elapsed();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.path().join("cluster.json")).expect("manifest"),
    )
    .expect("manifest json");
    let urls: Vec<String> = m["nats_urls"]
        .as_array()
        .expect("urls")
        .iter()
        .map(|u| u.as_str().expect("url").to_string())
        .collect();
    let own: Vec<Uuid> = m["executors"]
        .as_array()
        .expect("executors")
        .iter()
        .map(|g| g.as_str().expect("guid").parse().expect("guid"))
        .collect();
    let http = m["http"][0].as_str().expect("http").to_string();
    let token = m["admin_token"].as_str().expect("token").to_string();
    let nats_pids: Vec<u32> = m["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("nats-")))
        .filter_map(|p| p["pid"].as_u64().map(|p| p as u32))
        .collect();
    println!("cluster up in {:.1} s", up.as_secs_f64());

    // The rest of the fleet, in-process.
    let keys = KeyDir::open(&key_dir).expect("keys");
    let trusted = vec![keys.signing_public().expect("public key")];
    let catalog = state.path().join("demo-catalog.toml");
    let topology = TopologyConfig {
        replicas: 3,
        instance_ttl: Duration::from_secs(20),
        ..TopologyConfig::default()
    };
    let began = Instant::now();
    let mine: Vec<ExecutorEntry> = entries
        .iter()
        .filter(|e| !own.contains(&e.guid))
        .cloned()
        .collect();
    let executors: Vec<Executor> = futures::stream::iter(mine.iter().map(|e| {
        let opts = ExecutorOptions {
            nats_url: urls.join(","),
            nats_credentials: Some(keys.path(&Role::Executor {
                guid: e.guid,
                channels: e.channels.clone(),
            })),
            namespace: taskwire_core::Namespace::root(),
            state_dir: state.path().join("fleet").join(e.guid.to_string()),
            topology: topology.clone(),
            config: ExecutorConfig {
                catalog: catalog.clone(),
                guid: Some(e.guid),
                slots: 1,
                cgroup: CgroupMode::Off,
                dispatch_trusted_keys: trusted.clone(),
                heartbeat_interval: beat,
                ..ExecutorConfig::default()
            },
        };
        async move { Executor::start(opts).await.expect("executor") }
    }))
    .buffer_unordered(16)
    .collect()
    .await;

    let admin = taskwire_core::nats::connect_to(
        &taskwire_core::nats::Endpoint::new(urls.join(","), Some(key_dir.join("admin.nk")))
            .with_inbox(Role::Admin.inbox_prefix()),
        "fleet-bench",
    )
    .await
    .expect("admin");
    let js = taskwire_core::nats::jetstream(admin.clone());
    let http_client = reqwest::Client::new();
    // Serving: every executor in the registry the gateway reads.
    loop {
        let n = http_client
            .get(format!("{http}/api/v1/instances"))
            .bearer_auth(&token)
            .send()
            .await
            .ok();
        let count = match n {
            Some(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v.as_array().map(Vec::len))
                .unwrap_or(0),
            None => 0,
        };
        if count >= fleet {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(900),
            "only {count} of {fleet} executors registered after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = began.elapsed();
    println!(
        "{fleet} executors serving after {:.1} s",
        started.as_secs_f64()
    );

    // Assets and the registry.
    let account = js.query_account().await.expect("account");
    // The dispatch streams' consumers at more than one replica (R1 ones have no Raft group).
    let ns = taskwire_core::Namespace::root();
    let mut replicated = 0;
    for name in [ns.stream_jobs(), ns.stream_instance_jobs()] {
        let stream = js.get_stream(&name).await.expect("dispatch stream");
        let mut names = stream.consumers();
        while let Some(c) = names.next().await {
            let c = c.expect("consumer info");
            if c.config.num_replicas == 0 || c.config.num_replicas > 1 {
                replicated += 1;
            }
        }
    }
    // Which streams hold the consumers (ephemeral ones included: KV watches, ordered reads).
    let mut counts = Vec::new();
    let mut names = js.stream_names();
    while let Some(name) = names.next().await {
        let name = name.expect("stream name");
        let mut stream = js.get_stream(&name).await.expect("stream");
        let n = stream
            .info()
            .await
            .expect("stream info")
            .state
            .consumer_count;
        if n > 0 {
            counts.push(format!("{name} {n}"));
        }
    }
    counts.sort();
    let by_stream = counts.join(", ");
    let mut registry = js
        .get_stream(format!(
            "KV_{}",
            taskwire_core::Namespace::root().bucket_instances()
        ))
        .await
        .expect("registry");
    let reg = registry.info().await.expect("registry info").state.clone();

    let idle_cpu = cpu_over(&nats_pids, Duration::from_secs(10)).await;
    let nats_rss_mb: f64 = nats_pids.iter().map(|p| rss_mb(*p)).sum();
    let own_rss_mb = rss_mb(std::process::id());

    // Submit -> started through the public API, channel and instance targets.
    let starts: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let mut events = admin.subscribe("tw.evt.>").await.expect("events");
    let seen = tokio::spawn({
        let starts = starts.clone();
        async move {
            while let Some(m) = events.next().await {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload)
                    && v["event"] == "started"
                    && let Some(id) = v["job_id"].as_str().and_then(|s| s.parse().ok())
                {
                    starts.lock().expect("lock").insert(id, Instant::now());
                }
            }
        }
    });
    let cpu_before = cpu_ticks(&nats_pids);
    let busy_began = Instant::now();
    let mut channel = Vec::new();
    let mut instance = Vec::new();
    for i in 0..jobs * 2 {
        let body = if i % 2 == 0 {
            serde_json::json!({"command": "hello", "channel": "default"})
        } else {
            let g = entries[(i * 7919) % entries.len()].guid;
            serde_json::json!({"command": "hello", "instance": g.to_string()})
        };
        let sent = Instant::now();
        let r = http_client
            .post(format!("{http}/api/v1/jobs"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("submit");
        assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
        let v: serde_json::Value = r.json().await.expect("answer");
        let id: Uuid = v["job_id"].as_str().expect("job id").parse().expect("uuid");
        let deadline = Instant::now() + Duration::from_secs(60);
        let at = loop {
            if let Some(at) = starts.lock().expect("lock").get(&id).copied() {
                break at;
            }
            if Instant::now() > deadline {
                // Keep what tells why: the cluster's logs stay in its state dir.
                stop_cluster(&mut cluster);
                let own_process = own
                    .iter()
                    .any(|g| body.to_string().contains(&g.to_string()));
                eprintln!(
                    "job {id} never started: {body} (one of the cluster's executor processes: {own_process}); the cluster's logs are in {}",
                    state.path().display()
                );
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let took = at.saturating_duration_since(sent);
        if i % 2 == 0 {
            channel.push(took);
        } else {
            instance.push(took);
        }
    }
    let busy_cpu = cpu_since(&nats_pids, cpu_before, busy_began.elapsed());
    seen.abort();
    channel.sort();
    instance.sort();

    // Down: the in-process executors, then the cluster.
    // Drained (their pulls and heartbeats end) before the cluster goes, or they would keep
    // asking a cluster that is gone.
    futures::future::join_all(executors.into_iter().map(|e| e.drain())).await;
    stop_cluster(&mut cluster);
    Figures {
        up,
        started,
        streams: account.streams as usize,
        consumers: account.consumers as usize,
        by_stream,
        replicated_consumers: replicated,
        registry_bytes: reg.bytes,
        registry_entries: reg.messages,
        idle_cpu,
        busy_cpu,
        nats_rss_mb,
        own_rss_mb,
        channel: (percentile(&channel, 50.0), percentile(&channel, 99.0)),
        instance: (percentile(&instance, 50.0), percentile(&instance, 99.0)),
    }
}

/// `taskwire up --cluster` (the binary beside this one), once it says it is up.
fn start_cluster(state: &Path, database_url: &str) -> Child {
    let exe = std::env::current_exe().expect("exe");
    let taskwire: PathBuf = exe.with_file_name("taskwire");
    let mut child = Command::new(&taskwire)
        .args(["up", "--cluster", "--state-dir"])
        .arg(state)
        .args(["--database-url", database_url])
        .env_remove("TASKWIRE_NATS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(state.join("up.stderr")).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it: cargo build --release -p taskwire)",
                taskwire.display()
            )
        });
    let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if line.starts_with("A process that dies is started again") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(1800)).is_err() {
        let _ = child.kill();
        panic!(
            "the cluster did not come up: {}",
            std::fs::read_to_string(state.join("up.stderr")).unwrap_or_default()
        );
    }
    child
}

fn stop_cluster(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// CPU ticks (user + system) the processes used so far.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Cores the processes used over `window` (from now).
async fn cpu_over(pids: &[u32], window: Duration) -> f64 {
    let before = cpu_ticks(pids);
    tokio::time::sleep(window).await;
    cpu_since(pids, before, window)
}

fn cpu_since(pids: &[u32], before: u64, window: Duration) -> f64 {
    let hz = 100.0; // USER_HZ on Linux
    (cpu_ticks(pids).saturating_sub(before)) as f64 / hz / window.as_secs_f64()
}

/// Resident memory of a process in MB.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
