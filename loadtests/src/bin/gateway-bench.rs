//! Gateway and kill benchmarks, each beside a raw baseline measured in the same run:
//!
//! 1. HTTP submit -> first output byte at a WebSocket viewer, for `echo` (p50, p99), beside
//!    raw `tokio::process` spawn -> first stdout byte.
//! 2. One job's output to 1, 100 and 1000 viewers: MB/s per viewer and p99 chunk delay (from
//!    the chunk's arrival on NATS to its arrival at the viewer), beside a bare WebSocket
//!    fan-out of the same frames (an axum server broadcasting to N clients).
//! 3. Kill request at the API -> the job's tree reaped, and -> the reply (output flushed,
//!    record final), p50 and p99, for a job that exits at the first signal, beside a
//!    raw `killpg` + reap.
//!
//! 4. Jobs/s of `/bin/true` through `POST /api/v1/jobs`, 16 in flight (the executor's slots),
//!    with an audit writer (SQLite) storing every event and decision, from the first submit
//!    to the last `exited` event, beside raw `tokio::process` spawns of `/bin/true`, 16 in
//!    flight.
//!
//! Run: `cargo run --release -p taskwire-loadtests --bin gateway-bench`
//! (BENCH_TRIALS=200, BENCH_FANOUT_MB=4, BENCH_JOBS=2000 to change the sizes;
//! BENCH_ONLY=submit, fanout, kill or jobs runs one part). Everything binds to 127.0.0.1 and stops by itself.

use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskwire_core::Namespace;
use taskwire_core::auth::roles::Role;
use taskwire_core::topology::TopologyConfig;
use taskwire_loadtests::{BenchNats, env_usize, percentile};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "tw_benchmark_admin_token";

#[tokio::main]
async fn main() {
    raise_fd_limit();
    let trials = env_usize("BENCH_TRIALS", 200);
    let fan_mb = env_usize("BENCH_FANOUT_MB", 4);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    println!("gateway benchmark: {trials} trials; fan-out of a {fan_mb} MB job");

    let dir = tempfile::tempdir().expect("tempdir");
    let modes = taskwire_loadtests::auth_modes();
    for (n, auth) in modes.iter().copied().enumerate() {
        let Bench {
            nats,
            exec,
            broker,
            gw,
            base,
            http,
        } = start(auth, dir.path()).await;
        let dir = &dir;
        println!();
        println!("## NATS authentication {}", if auth { "on" } else { "off" });
        let last = n + 1 == modes.len();
        // 1. submit -> first byte.
        if part("submit") {
            let raw = raw_first_byte(trials).await;
            let tw = submit_first_byte(&http, &base, trials).await;
            println!();
            println!("| submit -> first output byte (echo), {trials} trials | p50 | p99 |");
            println!("| --- | ---: | ---: |");
            row("raw tokio::process spawn -> first stdout byte", &raw);
            row(
                "taskwire: HTTP submit -> first chunk at a WebSocket viewer",
                &tw,
            );
        }

        // 2. fan-out.
        if part("fanout") && last {
            println!();
            println!(
                "| fan-out of one job's output | viewers | MB/s per viewer | p99 chunk delay |"
            );
            println!("| --- | ---: | ---: | ---: |");
            for viewers in [1usize, 100, 1000] {
                let mb = if viewers >= 1000 {
                    fan_mb.div_ceil(4).max(1)
                } else {
                    fan_mb
                };
                let (bare_rate, bare_p99) = bare_fanout(viewers, mb).await;
                let flag = dir.path().join(format!("go-{viewers}"));
                let (rate, p99) = taskwire_fanout(&http, &base, &nats, viewers, mb, &flag).await;
                println!(
                    "| bare WebSocket broadcast ({mb} MB) | {viewers} | {bare_rate:.1} | {:.1} ms |",
                    ms(bare_p99)
                );
                println!(
                    "| taskwire gateway ({mb} MB) | {viewers} | {rate:.1} | {:.1} ms |",
                    ms(p99)
                );
            }
        }

        // 3. kill -> tree reaped.
        if part("kill") {
            let raw = raw_kill(trials).await;
            let (gone, tw) = api_kill(&http, &base, trials).await;
            println!();
            println!("| kill -> whole tree reaped, {trials} trials | p50 | p99 |");
            println!("| --- | ---: | ---: |");
            row("raw killpg + reap", &raw);
            row("taskwire: POST /kill -> the job's tree reaped", &gone);
            row(
                "taskwire: POST /kill -> reply (reaped, output flushed, record final)",
                &tw,
            );
        }

        // 4. jobs/s through the API.
        if part("jobs") {
            let jobs = env_usize("BENCH_JOBS", 2000);
            let writer = audit_writer(&nats, &dir.path().join(format!("audit-{n}"))).await;
            let raw = raw_true_rate(jobs, 16).await;
            let tw = api_true_rate(&http, &base, &nats, jobs, 16).await;
            println!();
            println!("| `/bin/true`, {jobs} jobs, 16 in flight, audit writer on | jobs/s |");
            println!("| --- | ---: |");
            println!("| raw tokio::process spawn | {raw:.0} |");
            println!(
                "| taskwire: HTTP submit -> `exited` event | {tw:.0} ({:.0}% of raw) |",
                100.0 * tw / raw
            );
            writer.stop().await;
        }

        gw.stop().await;
        exec.drain().await.expect("drain");
        broker.stop().await;
    }
}

struct Bench {
    nats: BenchNats,
    exec: taskwire_executor::Executor,
    broker: taskwire_kill_broker::KillBroker,
    gw: taskwire_gateway::GatewayServer,
    base: String,
    http: reqwest::Client,
}

/// The executor, kill broker and gateway on a NATS with authentication on or off.
async fn start(auth: bool, dir: &std::path::Path) -> Bench {
    let dir = dir.join(if auth { "auth-on" } else { "auth-off" });
    std::fs::create_dir_all(&dir).expect("dir");
    let dir = &dir;
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[commands.echo]\nprogram = \"/bin/echo\"\nargs = [\"hi\"]\n\n\
             [commands.blob]\nshell = true\nscript = 'while [ ! -e \"$2\" ]; do sleep 0.01; done; head -c \"$1\" /dev/urandom'\nargs = [\"{{bytes}}\", \"{{flag}}\"]\noutput_cap = \"1GiB\"\n\
             [[commands.blob.params]]\nname = \"bytes\"\ntype = \"integer\"\nmin = 1\nmax = {}\nrequired = true\n\
             [[commands.blob.params]]\nname = \"flag\"\ntype = \"string\"\nrequired = true\n\n\
             [commands.sleeper]\nprogram = \"/bin/sleep\"\nargs = [\"300\"]\n\n\
             [commands.true]\nprogram = \"/bin/true\"\n",
            1u64 << 30
        ),
    )
    .expect("catalog");
    let topo = TopologyConfig::default();
    let nats = BenchNats::start(auth, &topo, &[&dir.join("exec")]).await;
    let exec = taskwire_executor::Executor::start(taskwire_executor::ExecutorOptions {
        nats_url: nats.url(),
        nats_credentials: nats.credentials(&nats.executor(0)),
        namespace: Namespace::root(),
        state_dir: dir.join("exec"),
        topology: topo.clone(),
        config: taskwire_executor::ExecutorConfig {
            catalog,
            slots: 16,
            heartbeat_interval: Duration::from_millis(200),
            dispatch_trusted_keys: nats.trusted(),
            ..Default::default()
        },
    })
    .await
    .expect("executor");
    let broker = taskwire_kill_broker::KillBroker::start(taskwire_kill_broker::KillBrokerOptions {
        nats_url: nats.url(),
        nats_credentials: nats.credentials(&Role::KillBroker),
        namespace: Namespace::root(),
        topology: topo.clone(),
        config: Default::default(),
    })
    .await
    .expect("kill broker");
    let gw = taskwire_gateway::GatewayServer::start(taskwire_gateway::GatewayOptions {
        nats_url: nats.url(),
        nats_credentials: nats.credentials(&Role::Gateway),
        namespace: Namespace::root(),
        topology: topo,
        config: taskwire_gateway::GatewayConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            viewer_lag_chunks: 1 << 20,
            dispatch_signing_key: Some(nats.keys.signing_path()),
            ..Default::default()
        },
        admin_token: Some(TOKEN.into()),
    })
    .await
    .expect("gateway");
    let base = format!("http://{}", gw.addr());
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    Bench {
        nats,
        exec,
        broker,
        gw,
        base,
        http,
    }
}

/// One table row: `label`, then the p50 and p99 of `samples` (sorted).
fn row(label: &str, samples: &[Duration]) {
    println!(
        "| {label} | {:.2} ms | {:.2} ms |",
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0))
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = http
            .get(format!("{base}/api/v1/commands"))
            .bearer_auth(TOKEN)
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && v.as_array().is_some_and(|a| a.len() == 4)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway never listed the commands");
}

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> String {
    let v: Value = http
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    v["job_id"].as_str().expect("job id").to_string()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_ws(url: String) -> Ws {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("taskwire, bearer.{TOKEN}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

async fn raw_first_byte(trials: usize) -> Vec<Duration> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    for _ in 0..trials {
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new("/bin/echo")
            .arg("hi")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut so = child.stdout.take().expect("stdout");
        let mut b = [0u8; 1];
        so.read_exact(&mut b).await.expect("read");
        out.push(t0.elapsed());
        child.wait().await.expect("wait");
    }
    out.sort();
    out
}

async fn submit_first_byte(http: &reqwest::Client, base: &str, trials: usize) -> Vec<Duration> {
    let mut ws = open_ws(format!("{}/api/v1/ws", base.replace("http://", "ws://"))).await;
    let mut out = Vec::new();
    for _ in 0..trials + 10 {
        let t0 = Instant::now();
        let id = submit(http, base, json!({"command": "echo"})).await;
        ws.send(Message::Text(
            json!({"op": "subscribe", "job_id": id}).to_string().into(),
        ))
        .await
        .expect("subscribe");
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                panic!("socket ended")
            };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "chunk" && v["job_id"] == json!(id) {
                out.push(t0.elapsed());
            }
            if v["type"] == "end" && v["job_id"] == json!(id) {
                break;
            }
        }
    }
    // The first runs warm connections and consumers up.
    let mut out = out.split_off(10);
    out.sort();
    out
}

/// Bare fan-out: the same 64 KiB chunk frames broadcast by a minimal axum server.
async fn bare_fanout(viewers: usize, mb: usize) -> (f64, Duration) {
    use base64::Engine;
    let (tx, _) = tokio::sync::broadcast::channel::<(u64, Arc<String>)>(1 << 16);
    let tx2 = tx.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move |ws: WebSocketUpgrade| {
            let mut rx = tx2.subscribe();
            async move {
                ws.on_upgrade(move |mut s| async move {
                    while let Ok((_, f)) = rx.recv().await {
                        if s.send(AxMessage::Text(f.as_str().into())).await.is_err() {
                            return;
                        }
                    }
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut clients = Vec::new();
    for _ in 0..viewers {
        clients.push(
            tokio_tungstenite::connect_async(format!("ws://{addr}/"))
                .await
                .expect("ws")
                .0,
        );
    }
    let chunks = mb * 16;
    let data = vec![7u8; 64 * 1024];
    let frame = Arc::new(json!({"type": "chunk", "seq": 0, "stream": "stdout", "data": base64::engine::general_purpose::STANDARD.encode(&data)}).to_string());
    let sent_at: Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut delays = Vec::new();
                let start = Instant::now();
                for i in 0..chunks {
                    let Some(Ok(_)) = c.next().await else { break };
                    let at = sent_at.lock().expect("lock").get(i).copied();
                    if let Some(at) = at {
                        delays.push(at.elapsed());
                    }
                }
                (start.elapsed(), delays)
            })
        })
        .collect();
    for i in 0..chunks {
        sent_at.lock().expect("lock").push(Instant::now());
        let _ = tx.send((i as u64, frame.clone()));
        tokio::task::yield_now().await;
    }
    summarize(readers, mb, server).await
}

async fn summarize<T>(
    readers: Vec<tokio::task::JoinHandle<(Duration, Vec<Duration>)>>,
    mb: usize,
    server: tokio::task::JoinHandle<T>,
) -> (f64, Duration) {
    let mut rates = Vec::new();
    let mut delays = Vec::new();
    for r in readers {
        let (took, d) = r.await.expect("reader");
        rates.push(mb as f64 * 1.048576 / took.as_secs_f64());
        delays.extend(d);
    }
    server.abort();
    delays.sort();
    let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    (mean, percentile(&delays, 99.0))
}

/// taskwire fan-out: viewers on `/jobs/{id}/stream`; a chunk's delay is from its arrival on
/// NATS (a plain subscriber on `tw.out.*.<job>`) to its arrival at the viewer.
async fn taskwire_fanout(
    http: &reqwest::Client,
    base: &str,
    nats: &BenchNats,
    viewers: usize,
    mb: usize,
    flag: &std::path::Path,
) -> (f64, Duration) {
    // The job waits for the flag file: every viewer is connected before it writes.
    let client = taskwire_core::nats::connect_to(&nats.endpoint(&Role::Admin), "bench-tap")
        .await
        .expect("nats");
    let id = submit(
        http,
        base,
        json!({"command": "blob", "params": {"bytes": mb << 20, "flag": flag.display().to_string()}}),
    )
    .await;
    let ns = Namespace::root();
    let job: uuid::Uuid = id.parse().expect("uuid");
    let mut tap = client.subscribe(ns.output_any(&job)).await.expect("tap");
    let seen: Arc<std::sync::Mutex<std::collections::HashMap<u64, Instant>>> = Default::default();
    let seen2 = seen.clone();
    let tapper = tokio::spawn(async move {
        while let Some(m) = tap.next().await {
            if let Some(seq) = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Tw-Seq"))
                .and_then(|v| v.as_str().parse::<u64>().ok())
            {
                seen2
                    .lock()
                    .expect("lock")
                    .entry(seq)
                    .or_insert_with(Instant::now);
            }
        }
    });
    let url = format!(
        "{}/api/v1/jobs/{id}/stream",
        base.replace("http://", "ws://")
    );
    let mut conns = Vec::new();
    for _ in 0..viewers {
        conns.push(open_ws(url.clone()).await);
    }
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let seen = seen.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let mut delays = Vec::new();
                while let Some(Ok(m)) = c.next().await {
                    if let Message::Text(t) = m {
                        let v: Value = serde_json::from_str(&t).expect("json");
                        if v["type"] == "end" {
                            break;
                        }
                        let seq = v["seq"].as_u64().unwrap_or(0);
                        if let Some(at) = seen.lock().expect("lock").get(&seq).copied() {
                            delays.push(at.elapsed());
                        }
                    }
                }
                (start.elapsed(), delays)
            })
        })
        .collect();
    std::fs::write(flag, b"go").expect("flag");
    summarize(readers, mb, tapper).await
}

async fn raw_kill(trials: usize) -> Vec<Duration> {
    use std::os::unix::process::CommandExt;
    let mut out = Vec::new();
    for _ in 0..trials {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(2));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let t0 = Instant::now();
        nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT).expect("killpg");
        child.wait().expect("reap");
        out.push(t0.elapsed());
    }
    out.sort();
    out
}

/// Kill requests at the API: (request -> the job's process reaped, request -> reply). The
/// process is watched through a pidfd until it ends, then until its /proc entry is gone (the
/// executor has waited for it); the reply comes once the executor has also flushed the output
/// and written the final record.
async fn api_kill(
    http: &reqwest::Client,
    base: &str,
    trials: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut gone = Vec::new();
    let mut replied = Vec::new();
    for _ in 0..trials {
        let id = submit(http, base, json!({"command": "sleeper"})).await;
        loop {
            let v: Value = http
                .get(format!("{base}/api/v1/jobs/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            if v["state"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Let the started event and the first heartbeat settle.
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The executor runs in this process, so the job is a child of ours.
        let pid = loop {
            if let Some(p) = child_named("sleep") {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        assert!(fd >= 0, "pidfd_open");
        let watcher = std::thread::spawn(move || {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, a bounded timeout.
            let n = unsafe { libc::poll(&mut p, 1, 10_000) };
            // SAFETY: fd is ours and closed once.
            unsafe { libc::close(fd) };
            if n != 1 {
                return None;
            }
            // Ended; reaped once its /proc entry is gone (a zombie keeps it until waited for).
            let proc_dir = format!("/proc/{pid}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::path::Path::new(&proc_dir).exists() && Instant::now() < deadline {
                std::thread::yield_now();
            }
            Some(Instant::now())
        });
        let t0 = Instant::now();
        let v: Value = http
            .post(format!("{base}/api/v1/jobs/{id}/kill"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("kill")
            .json()
            .await
            .expect("json");
        replied.push(t0.elapsed());
        assert_eq!(v["outcome"], "signalled", "{v}");
        let at = watcher
            .join()
            .expect("watcher")
            .expect("the job's process ended");
        gone.push(at.duration_since(t0));
    }
    gone.sort();
    replied.sort();
    (gone, replied)
}

/// A child process of this one with this command name.
fn child_named(name: &str) -> Option<i32> {
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("");
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if comm == name && ppid == me && rest.starts_with('S') {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// An audit writer on a SQLite file in `dir`, consuming every event and decision.
async fn audit_writer(
    nats: &BenchNats,
    dir: &std::path::Path,
) -> taskwire_audit_writer::AuditWriter {
    std::fs::create_dir_all(dir).expect("dir");
    taskwire_audit_writer::AuditWriter::start(
        taskwire_audit_writer::AuditWriterOptions {
            nats_url: nats.url(),
            nats_credentials: nats.credentials(&Role::AuditWriter),
            namespace: Namespace::root(),
            topology: TopologyConfig::default(),
            state_dir: dir.to_path_buf(),
            config: taskwire_audit_writer::AuditConfig::default(),
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("audit writer")
    .expect("audit writer started")
}

/// Raw spawns of `/bin/true`, `inflight` at a time: per second.
async fn raw_true_rate(jobs: usize, inflight: usize) -> f64 {
    let t0 = Instant::now();
    futures::stream::iter(0..jobs)
        .for_each_concurrent(inflight, |_| async {
            let st = tokio::process::Command::new("/bin/true")
                .status()
                .await
                .expect("spawn");
            assert!(st.success());
        })
        .await;
    jobs as f64 / t0.elapsed().as_secs_f64()
}

/// `jobs` submits of `true` through the API, `inflight` at a time (a slot is taken again once
/// its job's `exited` event is seen on NATS): per second, from the first submit to the last
/// `exited` event.
async fn api_true_rate(
    http: &reqwest::Client,
    base: &str,
    nats: &BenchNats,
    jobs: usize,
    inflight: usize,
) -> f64 {
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;
    use tokio::sync::oneshot;
    let client = taskwire_core::nats::connect_to(&nats.endpoint(&Role::Admin), "bench-events")
        .await
        .expect("connect");
    let ns = Namespace::root();
    let mut events = client.subscribe(ns.event_all()).await.expect("subscribe");
    client.flush().await.expect("flush");
    // Jobs waited for, and jobs whose end was seen before anyone waited for it.
    type Ends = (HashMap<String, oneshot::Sender<()>>, HashSet<String>);
    let ends: Arc<Mutex<Ends>> = Arc::default();
    let seen = ends.clone();
    let watcher = tokio::spawn(async move {
        while let Some(m) = events.next().await {
            let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else {
                continue;
            };
            if v["event"] != "exited" {
                continue;
            }
            let id = v["job_id"].as_str().unwrap_or_default().to_string();
            let mut e = seen.lock().expect("lock");
            match e.0.remove(&id) {
                Some(tx) => {
                    let _ = tx.send(());
                }
                None => {
                    e.1.insert(id);
                }
            }
        }
    });
    let t0 = Instant::now();
    futures::stream::iter(0..jobs)
        .for_each_concurrent(inflight, |_| {
            let ends = ends.clone();
            async move {
                let id = submit(http, base, json!({"command": "true"})).await;
                let (tx, rx) = oneshot::channel();
                {
                    let mut e = ends.lock().expect("lock");
                    if e.1.remove(&id) {
                        return;
                    }
                    e.0.insert(id, tx);
                }
                rx.await.expect("exited");
            }
        })
        .await;
    let rate = jobs as f64 / t0.elapsed().as_secs_f64();
    watcher.abort();
    rate
}
