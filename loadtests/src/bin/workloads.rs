//! The four workloads of issue 16, run exactly as the issue defines them against a real
//! `taskwire up` (the release binary, started as a child process on a private nats-server, a
//! temp state dir and a free loopback port), through its public API only (HTTP submit and
//! kill, the WebSocket), each beside a raw baseline measured in the same run:
//!
//! - **W1**: 200 sequential `/bin/echo hi`: `POST /api/v1/jobs`, then `subscribe` on an
//!   already open `/api/v1/ws`, until the chunk holding `hi` arrives (p50/p90/p99). Raw:
//!   `tokio::process` spawn of `/bin/echo hi` until `hi` is read from its stdout.
//! - **W2**: 2,000 `/bin/true` with the executor's 16 slots: jobs/s from the first submit to
//!   the last job's end, learnt from `watch_jobs` on an open `/api/v1/ws` (no polling).
//!   Raw: a spawn loop with 16 in flight.
//! - **W3**: `head -c 200000000 /dev/zero | base64` (270,175,440 bytes) to 1 and to 100
//!   viewers: MB/s to the client, every viewer's byte count checked, peak RSS of the
//!   `taskwire up` process, its nats-server and this client. Raw: the same pipeline's stdout
//!   read through a pipe; for 100 viewers also a bare tokio-tungstenite server sending the
//!   same bytes in the same chunk sizes and frame format to 100 clients.
//! - **W4**: `sleep 1000` killed 20 times: from `POST /api/v1/jobs/{id}/kill` until the
//!   `sleep` process is dead (its `/proc/<pid>` entry gone or a zombie), polled every 0.2 ms.
//!   Raw: `killpg` + `waitpid` of the same command spawned here.
//! - **mem**: a job writing 1 GB (`head -c 1000000000 /dev/zero`) with 1 and with 100
//!   viewers, each on a fresh `taskwire up`: its resident memory idle before, peak during, and after
//!   the job (VmRSS of `/proc/<pid>/status` sampled every 10 ms by a thread). Every service
//!   lives in that one process, so its figure bounds each service's.
//!
//! Frames: the client offers `taskwire.binary, taskwire` and decodes binary chunk frames when
//! the gateway selects `taskwire.binary`, JSON text frames (base64 `data`) otherwise;
//! `BENCH_FRAMES=json` offers `taskwire` only. The output says which was used.
//!
//! Run: `cargo build --release -p taskwire -p taskwire-loadtests && target/release/workloads`
//! Knobs: `BENCH_ONLY=w1,w2,w3,w4,mem` (default: all), `BENCH_MEM=0` skips the memory part,
//! `BENCH_W1_TRIALS=200`, `BENCH_W1_GAP_MS=0` (a pause before each W1 trial, raw and taskwire
//! alike: how a job starts on a quiet machine), `BENCH_W2_JOBS=2000`, `BENCH_SLOTS=16`,
//! `BENCH_W3_BYTES=200000000`,
//! `BENCH_VIEWERS=100`, `BENCH_W4_TRIALS=20`, `BENCH_MEM_BYTES=1000000000`,
//! `BENCH_COMPRESSION=off` (the executor's `output_compression`; default the product's `lz4`),
//! `BENCH_CGROUP=off` (the executor's `cgroup`: process groups only; default `auto`),
//! `BENCH_TIMEOUT=3600` (seconds for the whole run), `TASKWIRE_BIN` (default: `taskwire`
//! beside this executable), `TASKWIRE_NATS_SERVER`. Loopback only; the child is killed when
//! the benchmark ends, panics or runs out of time.

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskwire_core::wire::api::binary::{WS_BINARY_PROTOCOL, decode_chunk, encode_chunk};
use taskwire_core::wire::api::frames::{Frame, JobEnd, WS_PROTOCOL};
use taskwire_core::wire::job::JobState;
use taskwire_core::wire::output::OutputStream;
use taskwire_loadtests::{
    RssSampler, base64_decoded_len, base64_wrapped_len, env_usize, percentile, proc_state,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// The `taskwire up` child's pid, for the panic hook and the watchdog.
static CHILD_PID: AtomicI32 = AtomicI32::new(0);
/// The frame formats the gateway chose, as seen by the client.
static FRAME_MODES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

const MIB: f64 = 1024.0 * 1024.0;
const MB: f64 = 1_000_000.0;
/// Every job state that ends a job.
const TERMINAL: [&str; 7] = [
    "succeeded",
    "failed",
    "stopped",
    "killed",
    "timed_out",
    "lost",
    "cancelled",
];

struct Cfg {
    only: Vec<String>,
    mem: bool,
    json_only: bool,
    w1_trials: usize,
    w1_gap: Duration,
    w2_jobs: usize,
    slots: usize,
    w3_bytes: u64,
    viewers: usize,
    w4_trials: usize,
    mem_bytes: u64,
    timeout: Duration,
}

impl Cfg {
    fn from_env() -> Self {
        let only: Vec<String> = std::env::var("BENCH_ONLY")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        Self {
            mem: std::env::var("BENCH_MEM").map_or(true, |v| v != "0"),
            only,
            json_only: std::env::var("BENCH_FRAMES").is_ok_and(|v| v == "json"),
            w1_trials: env_usize("BENCH_W1_TRIALS", 200),
            w1_gap: Duration::from_millis(env_usize("BENCH_W1_GAP_MS", 0) as u64),
            w2_jobs: env_usize("BENCH_W2_JOBS", 2000),
            slots: env_usize("BENCH_SLOTS", 16),
            w3_bytes: env_usize("BENCH_W3_BYTES", 200_000_000) as u64,
            viewers: env_usize("BENCH_VIEWERS", 100),
            w4_trials: env_usize("BENCH_W4_TRIALS", 20),
            mem_bytes: env_usize("BENCH_MEM_BYTES", 1_000_000_000) as u64,
            timeout: Duration::from_secs(env_usize("BENCH_TIMEOUT", 3600) as u64),
        }
    }

    fn part(&self, name: &str) -> bool {
        if name == "mem" && self.only.is_empty() {
            return self.mem;
        }
        self.only.is_empty() || self.only.iter().any(|p| p == name)
    }
}

/// One line of the final table.
struct Row {
    workload: String,
    raw: String,
    tw: String,
    ratio: String,
    target: String,
    met: String,
}

fn row(
    workload: &str,
    raw: String,
    tw: String,
    ratio: String,
    target: &str,
    met: Option<bool>,
) -> Row {
    let r = Row {
        workload: workload.into(),
        raw,
        tw,
        ratio,
        target: target.into(),
        met: match met {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "-".into(),
        },
    };
    println!(
        "  {} | raw {} | taskwire {} | {} | {} | {}",
        r.workload, r.raw, r.tw, r.ratio, r.target, r.met
    );
    r
}

fn main() {
    raise_fd_limit();
    let cfg = Cfg::from_env();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_child_now();
        default_hook(info);
    }));
    let deadline = cfg.timeout;
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!("workloads: BENCH_TIMEOUT ({deadline:?}) reached; killing taskwire and exiting");
        kill_child_now();
        std::process::exit(2);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let mut logs = Vec::new();
    // W1-W4 on one `taskwire up`; each memory run on a fresh one, so its idle figure is the
    // process's own and not what earlier workloads left behind. Each is started from the
    // main thread: its parent-death signal is tied to this thread, which lives as long as
    // the benchmark.
    if ["w1", "w2", "w3", "w4"].iter().any(|p| cfg.part(p)) {
        let tw = Taskwire::start(&cfg);
        rows.extend(rt.block_on(run(&cfg, &tw)));
        logs.push(tw.keep_log("w1-w4"));
    }
    if cfg.part("mem") {
        let bytes = cfg.mem_bytes;
        println!(
            "mem: head -c {bytes} /dev/zero with 1 and {} viewers, each on a fresh taskwire up; \
             VmRSS every 10 ms",
            cfg.viewers
        );
        for v in [1, cfg.viewers] {
            let tw = Taskwire::start(&cfg);
            rows.push(rt.block_on(async {
                let (api, sampler) = connect(&cfg, &tw).await;
                mem(&cfg, &api, &sampler, v).await
            }));
            logs.push(tw.keep_log(&format!("mem-{v}")));
        }
    }
    drop(rt);
    print_table(&cfg, &rows, &logs);
}

/// The client of `tw`, once it takes jobs, and a sampler of [taskwire up, its nats-server,
/// this client].
async fn connect(cfg: &Cfg, tw: &Taskwire) -> (Api, RssSampler) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let api = Api {
        http,
        base: tw.base.clone(),
        ws_url: format!("{}/api/v1/ws", tw.base.replace("http://", "ws://")),
        token: tw.token.clone(),
        json_only: cfg.json_only,
    };
    api.wait_ready().await;
    let nats_pid = child_named(tw.pid, "nats-server").unwrap_or(0);
    let me = std::process::id() as i32;
    let sampler = RssSampler::start(vec![tw.pid, nats_pid, me], Duration::from_millis(10));
    println!(
        "taskwire up: pid {} (nats-server pid {nats_pid}), {}, {} slots, state dir {}",
        tw.pid,
        tw.base,
        cfg.slots,
        tw.dir.path().display()
    );
    (api, sampler)
}

async fn run(cfg: &Cfg, tw: &Taskwire) -> Vec<Row> {
    let (api, sampler) = connect(cfg, tw).await;
    let mut rows = Vec::new();
    if cfg.part("w1") {
        rows.extend(w1(cfg, &api).await);
    }
    if cfg.part("w2") {
        rows.extend(w2(cfg, &api).await);
    }
    if cfg.part("w3") {
        rows.extend(w3(cfg, &api, &sampler).await);
    }
    if cfg.part("w4") {
        rows.extend(w4(cfg, &api).await);
    }
    rows
}

fn print_table(cfg: &Cfg, rows: &[Row], logs: &[std::path::PathBuf]) {
    let modes: Vec<&str> = FRAME_MODES.lock().expect("modes").iter().copied().collect();
    println!();
    println!(
        "## Issue 16 workloads ({} cores; frames: {}{})",
        taskwire_loadtests::cores(),
        if modes.is_empty() {
            "none".to_string()
        } else {
            modes.join(", ")
        },
        if cfg.json_only {
            ", BENCH_FRAMES=json"
        } else {
            ""
        }
    );
    println!();
    println!("| workload | raw | taskwire | ratio | target (issue 16) | met |");
    println!("| --- | ---: | ---: | ---: | --- | --- |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.workload, r.raw, r.tw, r.ratio, r.target, r.met
        );
    }
    println!();
    println!(
        "RSS is VmRSS of /proc/<pid>/status sampled every 10 ms by a thread of this benchmark; \
         every taskwire service runs in the one `taskwire up` process, so its figure bounds \
         each service's (its nats-server is a separate process, shown apart). \
         taskwire's logs (copied out of the removed state dirs): {}",
        logs.iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ---------------------------------------------------------------------------------------
// The taskwire up child

struct Taskwire {
    child: Option<std::process::Child>,
    pid: i32,
    base: String,
    token: String,
    log: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Taskwire {
    fn start(cfg: &Cfg) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new()
            .prefix("taskwire-workloads-")
            .tempdir()
            .expect("tempdir");
        let catalog = dir.path().join("catalog.toml");
        std::fs::write(&catalog, catalog_text(cfg)).expect("catalog");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let bin = std::env::var_os("TASKWIRE_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::env::current_exe()
                    .expect("current exe")
                    .with_file_name("taskwire")
            });
        assert!(
            bin.exists(),
            "{} not found: build it with cargo build --release -p taskwire (or set TASKWIRE_BIN)",
            bin.display()
        );
        let token = format!("tw_workloads_{}", Uuid::new_v4().simple());
        let log = dir.path().join("taskwire.log");
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg("up")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--catalog")
            .arg(&catalog)
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("TASKWIRE_") && k != "TASKWIRE_NATS_SERVER" && k != "TASKWIRE_LOG" {
                cmd.env_remove(k);
            }
        }
        if std::env::var_os("TASKWIRE_NATS_SERVER").is_none() {
            let near = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.taskwire/tools/bin/nats-server");
            let main = std::path::Path::new("/work/main/.taskwire/tools/bin/nats-server");
            if let Some(p) = [near.as_path(), main].into_iter().find(|p| p.exists()) {
                cmd.env("TASKWIRE_NATS_SERVER", p);
            }
        }
        // BENCH_COMPRESSION=off: output chunks cross NATS as written (what incompressible
        // output costs); unset, the product's default (lz4).
        if let Ok(c) = std::env::var("BENCH_COMPRESSION") {
            cmd.env("TASKWIRE_EXECUTOR__OUTPUT_COMPRESSION", c);
        }
        // BENCH_CGROUP=off: jobs in process groups only (what a cgroup per job costs).
        if let Ok(c) = std::env::var("BENCH_CGROUP") {
            cmd.env("TASKWIRE_EXECUTOR__CGROUP", c);
        }
        cmd.env("TASKWIRE_ADMIN_TOKEN", &token)
            .env("TASKWIRE_EXECUTOR__SLOTS", cfg.slots.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        // SAFETY: prctl with two integer arguments, allowed between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn taskwire up");
        let pid = child.id() as i32;
        CHILD_PID.store(pid, Ordering::SeqCst);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining its stdout so it never blocks on a full pipe.
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let tw = Self {
            child: Some(child),
            pid,
            base: format!("http://127.0.0.1:{port}"),
            token,
            log,
            dir,
        };
        let until = Instant::now() + Duration::from_secs(180);
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(l) if l.contains("taskwire is up") => break,
                Ok(_) => {}
                Err(_) => panic!(
                    "taskwire up did not come up within 180 s; see {}",
                    tw.log.display()
                ),
            }
        }
        tw
    }
}

impl Taskwire {
    /// Stops it and copies its log out of the state dir (removed next), as
    /// `<tmp>/taskwire-workloads-<name>.log`.
    fn keep_log(mut self, name: &str) -> std::path::PathBuf {
        let to = std::env::temp_dir().join(format!("taskwire-workloads-{name}.log"));
        self.stop();
        let _ = std::fs::copy(&self.log, &to);
        to
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(self.pid);
        // The first signal stops it cleanly (no job is left running), the second at once.
        for (sig, wait) in [
            (nix::sys::signal::Signal::SIGTERM, 10),
            (nix::sys::signal::Signal::SIGTERM, 3),
        ] {
            let _ = nix::sys::signal::kill(pid, sig);
            let until = Instant::now() + Duration::from_secs(wait);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    CHILD_PID.store(0, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        CHILD_PID.store(0, Ordering::SeqCst);
    }
}

impl Drop for Taskwire {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill_child_now() {
    let pid = CHILD_PID.swap(0, Ordering::SeqCst);
    if pid > 0 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn w3_pipeline(bytes: u64) -> String {
    format!("head -c {bytes} /dev/zero | base64")
}

fn catalog_text(cfg: &Cfg) -> String {
    let cap = (cfg.w3_bytes.max(cfg.mem_bytes) * 2).max(1 << 30);
    format!(
        "[commands.echo]\nprogram = \"/bin/echo\"\nargs = [\"hi\"]\n\n\
         [commands.noop]\nprogram = \"/bin/true\"\n\n\
         [commands.w3]\nprogram = \"/bin/sh\"\nargs = [\"-c\", \"{}\"]\noutput_cap = {cap}\n\n\
         [commands.sleeper]\nprogram = \"/bin/sleep\"\nargs = [\"1000\"]\n\n\
         [commands.gigabyte]\nprogram = \"/bin/sh\"\nargs = [\"-c\", \"head -c {} /dev/zero\"]\noutput_cap = {cap}\n",
        w3_pipeline(cfg.w3_bytes),
        cfg.mem_bytes
    )
}

/// A child of `parent` with this command name.
fn child_named(parent: i32, name: &str) -> Option<i32> {
    let parent = parent.to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("");
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if comm == name && ppid == parent {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// The process whose environment has `TASKWIRE_JOB_ID=<job>` and whose name is `name`.
fn process_of_job(job: &Uuid, name: &str) -> Option<i32> {
    let want = format!("TASKWIRE_JOB_ID={job}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

// ---------------------------------------------------------------------------------------
// The public API client

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    ws_url: String,
    token: String,
    json_only: bool,
}

impl Api {
    async fn wait_ready(&self) {
        // Ready once a job can be submitted (the executor is in the registry).
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self
                .http
                .post(format!("{}/api/v1/jobs", self.base))
                .bearer_auth(&self.token)
                .json(&json!({"command": "noop"}))
                .send()
                .await;
            if let Ok(r) = r
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < until, "taskwire never took a job");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn submit(&self, command: &str) -> Uuid {
        let r = self
            .http
            .post(format!("{}/api/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"command": command}))
            .send()
            .await
            .expect("submit");
        let status = r.status();
        let v: Value = r.json().await.expect("submit answer");
        assert!(status.is_success(), "submit {command}: {status} {v}");
        v["job_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no job_id in {v}"))
    }

    async fn get_job(&self, id: &Uuid) -> Value {
        self.http
            .get(format!("{}/api/v1/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get job")
            .json()
            .await
            .expect("job json")
    }

    async fn kill(&self, id: &Uuid) -> Value {
        let r = self
            .http
            .post(format!("{}/api/v1/jobs/{id}/kill", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("kill");
        let status = r.status();
        let v: Value = r.json().await.expect("kill answer");
        assert!(status.is_success(), "kill: {status} {v}");
        v
    }

    /// Opens `/api/v1/ws`, offering binary chunk frames unless told not to; true when the
    /// gateway chose them.
    async fn open_ws(&self) -> (Ws, bool) {
        let mut req = self.ws_url.as_str().into_client_request().expect("request");
        let offer = if self.json_only {
            WS_PROTOCOL.to_string()
        } else {
            format!("{WS_BINARY_PROTOCOL}, {WS_PROTOCOL}")
        };
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().expect("header"),
        );
        req.headers_mut()
            .insert("sec-websocket-protocol", offer.parse().expect("header"));
        let (ws, resp) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("WebSocket connect timed out")
        .expect("WebSocket connect");
        let chosen = resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let binary = chosen == WS_BINARY_PROTOCOL;
        FRAME_MODES.lock().expect("modes").insert(if binary {
            "binary chunk frames (taskwire.binary)"
        } else {
            "JSON chunk frames (taskwire)"
        });
        (ws, binary)
    }

    /// A socket watching job changes (after its `watching` frame).
    async fn watching_ws(&self) -> Ws {
        let (mut ws, _) = self.open_ws().await;
        send_op(&mut ws, json!({"op": "watch_jobs"})).await;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            match next_frame(&mut ws, until, false).await {
                Got::Json(v) if v["type"] == "watching" => return ws,
                Got::Json(v) if v["type"] == "error" => panic!("watch_jobs: {v}"),
                Got::Closed(r) => panic!("socket closed before watching: {r:?}"),
                _ => {}
            }
        }
    }
}

async fn send_op(ws: &mut Ws, op: Value) {
    ws.send(Message::Text(op.to_string().into()))
        .await
        .expect("send on the socket");
}

/// One frame as the client reads it.
enum Got {
    Chunk {
        job: Option<Uuid>,
        seq: u64,
        stdout: bool,
        len: usize,
        data: Option<Bytes>,
    },
    Json(Value),
    Closed(Option<String>),
    TimedOut,
    Skip,
}

async fn next_frame<S>(ws: &mut S, until: Instant, decode: bool) -> Got
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout_at(until.into(), ws.next()).await {
        Err(_) => Got::TimedOut,
        Ok(None) => Got::Closed(None),
        Ok(Some(Err(e))) => Got::Closed(Some(e.to_string())),
        Ok(Some(Ok(m))) => parse(m, decode),
    }
}

/// Reads a frame: binary chunk frames by their header; JSON chunk frames by their small
/// head only when `decode` is off (the byte count follows from the base64 text's length, so
/// 100 viewers in one client do not decode 100 copies), fully otherwise.
fn parse(m: Message, decode: bool) -> Got {
    match m {
        Message::Binary(b) => match decode_chunk(&b) {
            Ok(c) => Got::Chunk {
                job: Some(c.job_id),
                seq: c.seq,
                stdout: c.stream == OutputStream::Stdout,
                len: c.data.len(),
                data: decode.then_some(c.data),
            },
            Err(_) => Got::Skip,
        },
        Message::Text(t) => parse_text(t.as_str(), decode),
        Message::Close(f) => Got::Closed(f.map(|f| format!("{} {}", f.code, f.reason))),
        _ => Got::Skip,
    }
}

fn parse_text(t: &str, decode: bool) -> Got {
    const MARK: &[u8] = b"\"data\":\"";
    let bytes = t.as_bytes();
    if t.starts_with("{\"type\":\"chunk\"") && t.ends_with("\"}") {
        let head = &bytes[..bytes.len().min(400)];
        if let Some(p) = head.windows(MARK.len()).position(|w| w == MARK) {
            let start = p + MARK.len();
            let small = format!("{}\"}}", &t[..start]);
            if let Ok(v) = serde_json::from_str::<Value>(&small) {
                return chunk_of(&v, &bytes[start..bytes.len() - 2], decode);
            }
        }
    }
    match serde_json::from_str::<Value>(t) {
        Ok(v) if v["type"] == "chunk" => {
            let b64 = v["data"].as_str().unwrap_or("").as_bytes().to_vec();
            chunk_of(&v, &b64, decode)
        }
        Ok(v) => Got::Json(v),
        Err(_) => Got::Skip,
    }
}

fn chunk_of(v: &Value, b64: &[u8], decode: bool) -> Got {
    Got::Chunk {
        job: v["job_id"].as_str().and_then(|s| s.parse().ok()),
        seq: v["seq"].as_u64().unwrap_or(0),
        stdout: v["stream"] == "stdout",
        len: base64_decoded_len(b64),
        data: decode.then(|| {
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("chunk data is base64"),
            )
        }),
    }
}

/// What one viewer of one job received.
#[derive(Default)]
struct Follow {
    bytes: u64,
    sizes: Vec<usize>,
    first_chunk: Option<(Instant, Bytes)>,
    last_chunk_at: Option<Instant>,
    resubscribed: u32,
    end: Option<Value>,
    failure: Option<String>,
}

/// Subscribes to `job` on a multiplexed socket (or, `subscribe` off, reads a bare
/// broadcast) and takes its chunks strictly in `seq` order until its end frame, asking
/// again from the next chunk it needs after a `slow` frame or a gap.
async fn follow<S>(
    ws: &mut S,
    job: Uuid,
    subscribe: bool,
    decode: bool,
    keep_sizes: bool,
    until: Instant,
) -> Follow
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures::Sink<Message>
        + Unpin,
{
    let mut f = Follow::default();
    let mut next = 1u64;
    let mut asked = 0u64;
    let sub = |from: u64| {
        Message::Text(
            json!({"op": "subscribe", "job_id": job, "from_seq": from})
                .to_string()
                .into(),
        )
    };
    if subscribe && ws.send(sub(1)).await.is_err() {
        f.failure = Some("could not subscribe".into());
        return f;
    }
    loop {
        match next_frame(ws, until, decode).await {
            Got::Chunk {
                job: j,
                seq,
                stdout,
                len,
                data,
            } if j.is_none_or(|j| j == job) => {
                if seq < next {
                    continue;
                }
                if seq > next {
                    if subscribe && asked != next {
                        asked = next;
                        f.resubscribed += 1;
                        let _ = ws.send(sub(next)).await;
                    }
                    continue;
                }
                next = seq + 1;
                if stdout {
                    let now = Instant::now();
                    f.bytes += len as u64;
                    f.last_chunk_at = Some(now);
                    if f.first_chunk.is_none() {
                        f.first_chunk = Some((now, data.unwrap_or_default()));
                    }
                    if keep_sizes {
                        f.sizes.push(len);
                    }
                }
            }
            Got::Chunk { .. } | Got::Skip => {}
            Got::Json(v) => match v["type"].as_str() {
                Some("end") if v["job_id"] == json!(job) || v["job_id"].is_null() => {
                    let last = v["last_seq"].as_u64().unwrap_or(0);
                    if next > last {
                        f.end = Some(v);
                        return f;
                    }
                    // The end of a subscription that was replaced: the new one follows.
                    if subscribe && asked != next {
                        asked = next;
                        f.resubscribed += 1;
                        let _ = ws.send(sub(next)).await;
                    }
                }
                Some("slow") if v["job_id"] == json!(job) => {
                    let from = v["from_seq"].as_u64().unwrap_or(next).min(next);
                    asked = from;
                    f.resubscribed += 1;
                    let _ = ws.send(sub(from)).await;
                }
                Some("error") => {
                    f.failure = Some(v.to_string());
                    return f;
                }
                _ => {}
            },
            Got::Closed(r) => {
                f.failure = Some(format!("socket closed: {r:?}"));
                return f;
            }
            Got::TimedOut => {
                f.failure = Some("timed out".into());
                return f;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Formatting

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.2} ms", ms(d))
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:.0}%", a / b * 100.0)
    }
}

fn times(tw: Duration, raw: Duration) -> String {
    if raw.is_zero() {
        "-".into()
    } else {
        format!("{:.1}x raw", tw.as_secs_f64() / raw.as_secs_f64())
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / MIB)
}

// ---------------------------------------------------------------------------------------
// W1

async fn w1(cfg: &Cfg, api: &Api) -> Vec<Row> {
    const WARM: usize = 10;
    let n = cfg.w1_trials;
    println!(
        "W1: {n} sequential /bin/echo hi (after {WARM} unmeasured), {} ms before each",
        cfg.w1_gap.as_millis()
    );
    let mut raw = Vec::new();
    for i in 0..n + WARM {
        use tokio::io::AsyncReadExt;
        tokio::time::sleep(cfg.w1_gap).await;
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new("/bin/echo")
            .arg("hi")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn echo");
        let mut so = child.stdout.take().expect("stdout");
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while !got.windows(2).any(|w| w == b"hi") {
            let k = so.read(&mut buf).await.expect("read");
            assert!(k > 0, "echo ended without hi");
            got.extend_from_slice(&buf[..k]);
        }
        if i >= WARM {
            raw.push(t0.elapsed());
        }
        child.wait().await.expect("wait echo");
    }
    let (mut ws, _) = api.open_ws().await;
    let mut tw = Vec::new();
    for i in 0..n + WARM {
        tokio::time::sleep(cfg.w1_gap).await;
        let t0 = Instant::now();
        let id = api.submit("echo").await;
        let f = follow(
            &mut ws,
            id,
            true,
            true,
            false,
            Instant::now() + Duration::from_secs(30),
        )
        .await;
        if let Some(e) = &f.failure {
            panic!("W1 job {id}: {e}");
        }
        let (at, data) = f.first_chunk.expect("W1: no output");
        assert!(
            data.windows(2).any(|w| w == b"hi"),
            "W1: first chunk {data:?} is not hi"
        );
        if i >= WARM {
            tw.push(at.duration_since(t0));
        }
    }
    raw.sort();
    tw.sort();
    let p = |v: &[Duration], q| percentile(v, q);
    let (r50, t50) = (p(&raw, 50.0), p(&tw, 50.0));
    let (r99, t99) = (p(&raw, 99.0), p(&tw, 99.0));
    vec![
        row(
            "W1 echo hi, submit -> `hi` at the client, p50",
            fmt_ms(r50),
            fmt_ms(t50),
            times(t50, r50),
            "<= raw + 1.5 ms",
            Some(t50 <= r50 + Duration::from_micros(1500)),
        ),
        row(
            "W1 p90",
            fmt_ms(p(&raw, 90.0)),
            fmt_ms(p(&tw, 90.0)),
            times(p(&tw, 90.0), p(&raw, 90.0)),
            "-",
            None,
        ),
        row(
            "W1 p99",
            fmt_ms(r99),
            fmt_ms(t99),
            times(t99, r99),
            "< 5 ms",
            Some(t99 < Duration::from_millis(5)),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// W2

async fn w2(cfg: &Cfg, api: &Api) -> Vec<Row> {
    let n = cfg.w2_jobs;
    let slots = cfg.slots;
    println!("W2: {n} x /bin/true, {slots} slots");
    // Raw: a spawn loop with `slots` in flight.
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let loops: Vec<_> = (0..slots)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let s = tokio::process::Command::new("/bin/true")
                        .status()
                        .await
                        .expect("spawn true");
                    assert!(s.success());
                }
            })
        })
        .collect();
    for l in loops {
        l.await.expect("raw loop");
    }
    let raw_rate = n as f64 / t0.elapsed().as_secs_f64();

    // taskwire: the submitters keep 2 x slots jobs submitted and not ended, so the executor's
    // slots never wait for a submit; the ends come from watch_jobs.
    let mut ws = api.watching_ws().await;
    let window = Arc::new(tokio::sync::Semaphore::new(slots * 2));
    let until = Instant::now() + Duration::from_secs(600);
    let watcher = tokio::spawn({
        let window = window.clone();
        async move {
            let mut ended = HashSet::new();
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            while ended.len() < n {
                match next_frame(&mut ws, until, false).await {
                    Got::Json(v) if v["type"] == "job" => {
                        let job = &v["job"];
                        let state = job["state"].as_str().unwrap_or("");
                        if job["command"] == "noop"
                            && TERMINAL.contains(&state)
                            && ended.insert(job["job_id"].as_str().unwrap_or("").to_string())
                        {
                            *states.entry(state.to_string()).or_default() += 1;
                            window.add_permits(1);
                        }
                    }
                    Got::Json(v) if v["type"] == "error" => panic!("W2 watch: {v}"),
                    Got::Closed(r) => panic!("W2 watch closed: {r:?}"),
                    Got::TimedOut => panic!("W2: only {} of {n} jobs ended in time", ended.len()),
                    _ => {}
                }
            }
            (Instant::now(), states)
        }
    });
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let submitters: Vec<_> = (0..slots)
        .map(|_| {
            let (api, next, window) = (api.clone(), next.clone(), window.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    window.acquire().await.expect("window").forget();
                    api.submit("noop").await;
                }
            })
        })
        .collect();
    for s in submitters {
        s.await.expect("submitter");
    }
    let (last_end, states) = watcher.await.expect("watcher");
    let rate = n as f64 / last_end.duration_since(t0).as_secs_f64();
    let ok = states.get("succeeded").copied().unwrap_or(0) == n;
    println!("  W2 end states: {states:?}");
    vec![row(
        &format!("W2 {n} x /bin/true, first submit -> last end (watch_jobs), jobs/s"),
        format!("{raw_rate:.0}/s"),
        format!("{rate:.0}/s"),
        ratio(rate, raw_rate),
        ">= 1,000/s and >= 30% of raw",
        Some(ok && rate >= 1000.0 && rate >= 0.3 * raw_rate),
    )]
}

// ---------------------------------------------------------------------------------------
// W3 and mem: one job's output to N viewers

struct StreamRun {
    t0: Instant,
    done: Instant,
    elapsed: Vec<Duration>,
    bytes: Vec<u64>,
    resubscribed: u32,
    failures: Vec<String>,
    sizes: Vec<usize>,
    binary: bool,
}

impl StreamRun {
    /// Every viewer's bytes together per second, to the last viewer's last byte.
    fn aggregate_mb_s(&self) -> f64 {
        self.bytes.iter().sum::<u64>() as f64 / MB / self.done.duration_since(self.t0).as_secs_f64()
    }

    fn all_bytes_are(&self, expected: u64) -> bool {
        self.failures.is_empty() && self.bytes.iter().all(|b| *b == expected)
    }

    fn describe(&self, what: &str, expected: u64) {
        let wrong = self.bytes.iter().filter(|b| **b != expected).count();
        let per: Vec<f64> = self
            .elapsed
            .iter()
            .zip(&self.bytes)
            .map(|(e, b)| *b as f64 / MB / e.as_secs_f64())
            .collect();
        println!(
            "  {what}: {} viewer(s), {} frames, {:.1} MB/s together, per viewer {:.1}-{:.1} MB/s, \
             byte counts {} ({} expected each{}), {} re-subscriptions{}",
            self.bytes.len(),
            if self.binary { "binary" } else { "JSON" },
            self.aggregate_mb_s(),
            per.iter().copied().fold(f64::INFINITY, f64::min),
            per.iter().copied().fold(0.0, f64::max),
            if wrong == 0 { "all right" } else { "WRONG" },
            expected,
            if wrong == 0 {
                String::new()
            } else {
                format!(
                    ", {wrong} wrong, e.g. {:?}",
                    self.bytes.iter().find(|b| **b != expected)
                )
            },
            self.resubscribed,
            if self.failures.is_empty() {
                String::new()
            } else {
                format!(
                    ", failures: {:?}",
                    &self.failures[..self.failures.len().min(3)]
                )
            }
        );
    }
}

/// Opens `viewers` sockets, then submits `command` and has every socket follow it from
/// chunk 1; times from the submit to each viewer's last byte.
async fn stream_run(api: &Api, command: &str, viewers: usize, limit: Duration) -> StreamRun {
    let mut sockets = Vec::new();
    let mut binary = true;
    for _ in 0..viewers {
        let (ws, b) = api.open_ws().await;
        binary &= b;
        sockets.push(ws);
    }
    let t0 = Instant::now();
    let job = api.submit(command).await;
    let until = Instant::now() + limit;
    let readers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            tokio::spawn(async move {
                let f = follow(&mut ws, job, true, i == 0, i == 0, until).await;
                let _ = ws.close(None).await;
                f
            })
        })
        .collect();
    collect(readers, t0, binary).await
}

async fn collect(
    readers: Vec<tokio::task::JoinHandle<Follow>>,
    t0: Instant,
    binary: bool,
) -> StreamRun {
    let mut run = StreamRun {
        t0,
        done: t0,
        elapsed: Vec::new(),
        bytes: Vec::new(),
        resubscribed: 0,
        failures: Vec::new(),
        sizes: Vec::new(),
        binary,
    };
    for r in readers {
        let f = r.await.expect("viewer");
        let last = f.last_chunk_at.unwrap_or(t0);
        run.done = run.done.max(last);
        run.elapsed
            .push(last.duration_since(t0).max(Duration::from_micros(1)));
        run.bytes.push(f.bytes);
        run.resubscribed += f.resubscribed;
        if let Some(e) = f.failure {
            run.failures.push(e);
        } else if f.end.is_none() {
            run.failures.push("no end frame".into());
        }
        if !f.sizes.is_empty() {
            run.sizes = f.sizes;
        }
    }
    run
}

/// The raw pipe: the same pipeline's stdout read here, MB/s and bytes.
fn raw_pipe(script: &str) -> (f64, u64) {
    let t0 = Instant::now();
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pipeline");
    let mut so = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = so.read(&mut buf).expect("read pipe");
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let took = t0.elapsed();
    child.wait().expect("wait pipeline");
    (n as f64 / MB / took.as_secs_f64(), n)
}

/// `head -c n /dev/zero | base64` as bytes (GNU base64 wraps at 76 characters).
fn base64_of_zeros(n: u64) -> Vec<u8> {
    let enc = base64::engine::general_purpose::STANDARD.encode(vec![0u8; n as usize]);
    let mut out = Vec::with_capacity(base64_wrapped_len(n) as usize);
    for line in enc.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// A bare tokio-tungstenite server sending `content` cut in `sizes` (the chunk sizes the
/// gateway sent), in the same frame format, to `viewers` clients of this process at once;
/// the same client code counts the bytes.
async fn bare_broadcast(
    viewers: usize,
    content: &[u8],
    sizes: &[usize],
    binary: bool,
) -> StreamRun {
    let job = Uuid::new_v4();
    let mut cut = Vec::new();
    if sizes.iter().sum::<usize>() == content.len() && !sizes.is_empty() {
        let mut at = 0;
        for s in sizes {
            cut.push(&content[at..at + s]);
            at += s;
        }
    } else {
        cut.extend(content.chunks(64 * 1024));
    }
    let mut frames: Vec<Message> = cut
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let seq = i as u64 + 1;
            if binary {
                Message::Binary(encode_chunk(&job, seq, OutputStream::Stdout, c))
            } else {
                Message::Text(
                    Frame::Chunk {
                        job_id: job,
                        seq,
                        stream: OutputStream::Stdout,
                        data: Bytes::copy_from_slice(c),
                    }
                    .to_json()
                    .into(),
                )
            }
        })
        .collect();
    frames.push(Message::Text(
        Frame::End {
            job_id: Some(job),
            end: JobEnd {
                state: JobState::Succeeded,
                exit_code: Some(0),
                signal: None,
                result: None,
                error: None,
                last_seq: cut.len() as u64,
            },
        }
        .to_json()
        .into(),
    ));
    let frames = Arc::new(frames);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn({
        let frames = frames.clone();
        async move {
            let mut conns = Vec::new();
            for _ in 0..viewers {
                let (tcp, _) = listener.accept().await.expect("accept");
                let frames = frames.clone();
                let mut go = go_rx.clone();
                conns.push(tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp)
                        .await
                        .expect("accept ws");
                    let _ = go.wait_for(|g| *g).await;
                    for f in frames.iter() {
                        if ws.send(f.clone()).await.is_err() {
                            return;
                        }
                    }
                    let _ = ws.close(None).await;
                }));
            }
            for c in conns {
                let _ = c.await;
            }
        }
    });
    let mut clients = Vec::new();
    for _ in 0..viewers {
        clients.push(
            tokio_tungstenite::connect_async(format!("ws://{addr}/"))
                .await
                .expect("bare connect")
                .0,
        );
    }
    let until = Instant::now() + Duration::from_secs(900);
    let t0 = Instant::now();
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            tokio::spawn(async move { follow(&mut ws, job, false, i == 0, false, until).await })
        })
        .collect();
    go_tx.send(true).expect("go");
    let run = collect(readers, t0, binary).await;
    server.abort();
    run
}

async fn w3(cfg: &Cfg, api: &Api, sampler: &RssSampler) -> Vec<Row> {
    let expected = base64_wrapped_len(cfg.w3_bytes);
    let script = w3_pipeline(cfg.w3_bytes);
    println!(
        "W3: {script} ({expected} bytes), 1 and {} viewers",
        cfg.viewers
    );
    let mut rows = Vec::new();
    let (raw_rate, raw_bytes) = tokio::task::spawn_blocking({
        let s = script.clone();
        move || raw_pipe(&s)
    })
    .await
    .expect("raw pipe");
    assert_eq!(raw_bytes, expected, "the raw pipe's byte count");
    println!("  raw pipe: {raw_rate:.1} MB/s, {raw_bytes} bytes");
    let limit = Duration::from_secs(900);

    // One viewer.
    let idle = sampler.median_between(Instant::now() - Duration::from_millis(500), Instant::now());
    let one = stream_run(api, "w3", 1, limit).await;
    one.describe("W3 taskwire", expected);
    let peak = sampler.peak_between(one.t0, one.done);
    let rate = one.aggregate_mb_s();
    rows.push(row(
        &format!("W3 {expected} bytes to 1 viewer, MB/s (bytes checked)"),
        format!("{raw_rate:.1} MB/s (pipe)"),
        format!("{rate:.1} MB/s"),
        ratio(rate, raw_rate),
        ">= 250 MB/s and >= 40% of raw",
        Some(one.all_bytes_are(expected) && rate >= 250.0 && rate >= 0.4 * raw_rate),
    ));
    rows.push(rss_row("W3 1 viewer", &idle, &peak));

    // 100 viewers, then the bare broadcast of the same bytes in the same chunk sizes.
    let v = cfg.viewers;
    let many = stream_run(api, "w3", v, limit).await;
    many.describe("W3 taskwire", expected);
    let peak = sampler.peak_between(many.t0, many.done);
    let content = base64_of_zeros(cfg.w3_bytes);
    assert_eq!(content.len() as u64, expected);
    let sizes = if many.sizes.is_empty() {
        one.sizes.clone()
    } else {
        many.sizes.clone()
    };
    let bare = bare_broadcast(v, &content, &sizes, many.binary).await;
    drop(content);
    bare.describe("W3 bare tokio-tungstenite broadcast", expected);
    let (b, t) = (bare.aggregate_mb_s(), many.aggregate_mb_s());
    rows.push(row(
        &format!("W3 {expected} bytes to {v} viewers, MB/s of all together (bytes checked)"),
        format!("{b:.1} MB/s (bare broadcast)"),
        format!("{t:.1} MB/s"),
        ratio(t, b),
        ">= 50% of bare broadcast",
        Some(many.all_bytes_are(expected) && bare.all_bytes_are(expected) && t >= 0.5 * b),
    ));
    rows.push(rss_row(&format!("W3 {v} viewers"), &idle, &peak));
    rows
}

/// Peak RSS of [taskwire up, nats-server, this client] during a run, beside idle before.
fn rss_row(what: &str, idle: &[u64], peak: &[u64]) -> Row {
    let g = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    row(
        &format!("{what}: peak RSS of taskwire up / nats-server / client"),
        format!(
            "at W3 start {} / {} / {}",
            mib(g(idle, 0)),
            mib(g(idle, 1)),
            mib(g(idle, 2))
        ),
        format!(
            "peak {} / {} / {}",
            mib(g(peak, 0)),
            mib(g(peak, 1)),
            mib(g(peak, 2))
        ),
        format!("+{}", mib(g(peak, 0).saturating_sub(g(idle, 0)))),
        "- (the bound is checked by mem)",
        None,
    )
}

// ---------------------------------------------------------------------------------------
// W4

async fn w4(cfg: &Cfg, api: &Api) -> Vec<Row> {
    use std::os::unix::process::CommandExt;
    let n = cfg.w4_trials;
    println!("W4: sleep 1000 killed {n} times, /proc polled every 0.2 ms");
    let mut raw = Vec::new();
    for _ in 0..n {
        let mut command = std::process::Command::new("/bin/sleep");
        command.arg("1000").process_group(0);
        // A benchmark started in the background (`workloads &`) has SIGINT ignored, and the
        // sleep would inherit that; taskwire's executor resets it for its jobs, so does this.
        // SAFETY: signal(2) is async-signal-safe, and nothing else runs in the child.
        unsafe {
            command.pre_exec(|| {
                use nix::sys::signal::{SigHandler, Signal, signal};
                signal(Signal::SIGINT, SigHandler::SigDfl)
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().expect("spawn sleep");
        std::thread::sleep(Duration::from_millis(5));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let t0 = Instant::now();
        // SIGINT: the first rung of taskwire's default kill ladder.
        nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT).expect("killpg");
        child.wait().expect("waitpid");
        raw.push(t0.elapsed());
    }
    let mut ws = api.watching_ws().await;
    let mut tw = Vec::new();
    let mut from_api = 0;
    for _ in 0..n {
        let id = api.submit("sleeper").await;
        wait_state(&mut ws, &id, |s| s == "running").await;
        // The pid: the job record's `pid` (from the audit store), else the process whose
        // environment names the job.
        let mut pid = None;
        let until = Instant::now() + Duration::from_secs(2);
        while pid.is_none() && Instant::now() < until {
            if let Some(p) = api.get_job(&id).await["pid"].as_i64() {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                assert_eq!(comm.trim(), "sleep", "the API's pid {p} is not the sleep");
                pid = Some(p as i32);
                from_api += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let pid = pid
            .or_else(|| process_of_job(&id, "sleep"))
            .unwrap_or_else(|| panic!("W4: no sleep process for job {id}"));
        let t0 = Instant::now();
        let watcher = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until {
                match proc_state(pid) {
                    None | Some('Z') => return Some(Instant::now()),
                    _ => std::thread::sleep(Duration::from_micros(200)),
                }
            }
            None
        });
        let reply = api.kill(&id).await;
        let dead = tokio::task::spawn_blocking(move || watcher.join().expect("watcher"))
            .await
            .expect("watcher")
            .unwrap_or_else(|| panic!("W4: sleep {pid} still alive 30 s after the kill ({reply})"));
        tw.push(dead.duration_since(t0));
        wait_state(&mut ws, &id, |s| TERMINAL.contains(&s)).await;
    }
    println!(
        "  W4 pid from the API's job record: {from_api} of {n} (else found by its environment)"
    );
    raw.sort();
    tw.sort();
    let (r50, t50) = (percentile(&raw, 50.0), percentile(&tw, 50.0));
    let (r99, t99) = (percentile(&raw, 99.0), percentile(&tw, 99.0));
    vec![
        row(
            "W4 kill request -> sleep dead (gone or zombie), p50",
            fmt_ms(r50),
            fmt_ms(t50),
            times(t50, r50),
            "<= 1.0 ms",
            Some(t50 <= Duration::from_millis(1)),
        ),
        row(
            "W4 p99",
            fmt_ms(r99),
            fmt_ms(t99),
            times(t99, r99),
            "<= 3 ms",
            Some(t99 <= Duration::from_millis(3)),
        ),
    ]
}

async fn wait_state(ws: &mut Ws, id: &Uuid, want: impl Fn(&str) -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        match next_frame(ws, until, false).await {
            Got::Json(v)
                if v["type"] == "job"
                    && v["job"]["job_id"] == json!(id)
                    && want(v["job"]["state"].as_str().unwrap_or("")) =>
            {
                return;
            }
            Got::Json(v) if v["type"] == "error" => panic!("watch: {v}"),
            Got::Closed(r) => panic!("watch socket closed: {r:?}"),
            Got::TimedOut => panic!("job {id} did not reach the state in 30 s"),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Memory

/// One memory run on a fresh `taskwire up`: idle before, peak during, after.
async fn mem(cfg: &Cfg, api: &Api, sampler: &RssSampler, v: usize) -> Row {
    let bytes = cfg.mem_bytes;
    // Idle: the median over 1 s after 3 s of quiet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = Instant::now();
    let idle = sampler.median_between(now - Duration::from_secs(1), now);
    let run = stream_run(api, "gigabyte", v, Duration::from_secs(1200)).await;
    run.describe("mem taskwire", bytes);
    let peak = sampler.peak_between(run.t0, run.done);
    // After: the median over the 5th second after the last viewer's last byte.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = sampler.median_between(
        run.done + Duration::from_secs(4),
        run.done + Duration::from_secs(5),
    );
    let g = |x: &[u64]| x.first().copied().unwrap_or(0);
    let (i, p, a) = (g(&idle), g(&peak), g(&after));
    println!(
        "  mem {v} viewer(s): taskwire up idle {} peak {} after {}; nats-server idle {} peak {}; client peak {}",
        mib(i),
        mib(p),
        mib(a),
        mib(idle.get(1).copied().unwrap_or(0)),
        mib(peak.get(1).copied().unwrap_or(0)),
        mib(peak.get(2).copied().unwrap_or(0)),
    );
    row(
        &format!(
            "mem: {bytes}-byte job, {v} viewer(s), fresh taskwire up, RSS idle / peak / 5 s after ({:.0} MB/s together)",
            run.aggregate_mb_s()
        ),
        format!("idle {}", mib(i)),
        format!("peak {} / after {}", mib(p), mib(a)),
        format!(
            "+{} / +{}",
            mib(p.saturating_sub(i)),
            mib(a.saturating_sub(i))
        ),
        "peak <= idle + 64 MiB, after <= idle + 16 MiB",
        Some(run.all_bytes_are(bytes) && p <= i + 64 * 1024 * 1024 && a <= i + 16 * 1024 * 1024),
    )
}
