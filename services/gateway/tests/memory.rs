//! What a job writes never makes the services hold it: a job writing 256 MiB, watched live by
//! viewers of binary and JSON frames and by one that joins late from chunk 1 (and so reads
//! behind the feed's window), while the audit writer stores it. Every viewer gets every byte,
//! and this process (gateway, executor, kill broker, audit writer and the viewers themselves)
//! grows by far less than the job wrote. The bound asserted is generous: it is a property
//! (memory does not follow the output's size), not a figure; `docs/performance.md` has those.

// Test support code: a failed setup step should panic with its cause.
#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use taskwire_core::wire::api::binary;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const MIB: u64 = 1 << 20;
/// What the job writes.
const JOB_BYTES: u64 = 256 * MIB;
/// How much more than idle the process may hold at its peak: far under what the job writes.
const BOUND: u64 = 128 * MIB;

const CATALOG: &str = r#"
[commands.big]
program = "/usr/bin/head"
args = ["-c", "268435456", "/dev/zero"]
output_cap = "1GiB"

[commands.small]
program = "/bin/echo"
args = ["warm"]
"#;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The highest resident size seen while it runs.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss(), Ordering::Relaxed);
                // the sampling period of the measurement, not a wait for a state
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        Self {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(base: &str, job: &str, from: u64, protocols: &str) -> Ws {
    let url = format!(
        "{}/api/v1/jobs/{job}/stream?from_seq={from}",
        base.replace("http://", "ws://")
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!(
            "{protocols}, bearer.{}",
            taskwire_teststack::token("alice")
        ))
        .unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Reads `job` to its end frame, checking order, and resuming where it was told when it is
/// cut off as too slow (as every client does); the bytes received (not kept).
async fn drain(
    base: String,
    job: String,
    protocols: &'static str,
    got: Option<tokio::sync::watch::Sender<u64>>,
) -> (u64, Value) {
    let (mut bytes, mut expect) = (0u64, 1u64);
    loop {
        let mut ws = open(&base, &job, expect, protocols).await;
        loop {
            let Some(m) = ws.next().await else {
                panic!("the stream ended without an end frame");
            };
            match m.unwrap() {
                Message::Binary(b) => {
                    let c = binary::decode_chunk(&b).unwrap();
                    assert_eq!(c.seq, expect, "no gap, no duplicate");
                    bytes += c.data.len() as u64;
                }
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "end" {
                        return (bytes, v);
                    }
                    assert_eq!(v["seq"].as_u64().unwrap(), expect, "no gap, no duplicate");
                    use base64::Engine;
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(v["data"].as_str().unwrap())
                        .unwrap();
                    bytes += data.len() as u64;
                }
                Message::Close(Some(f)) if u16::from(f.code) == 4008 => {
                    let from: u64 = f.reason.rsplit('=').next().unwrap().parse().unwrap();
                    assert_eq!(from, expect, "told to resume where it stopped");
                    break;
                }
                Message::Close(f) => panic!("closed before the end: {f:?}"),
                _ => continue,
            }
            expect += 1;
            if let Some(g) = &got {
                g.send_replace(expect - 1);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_writing_256_mib_to_live_and_late_viewers_grows_no_service_by_its_size() {
    // Chunks cross NATS as written: the worst case for memory (zeros would compress 250-fold).
    let s = taskwire_teststack::Stack::builder()
        .executor_with(CATALOG, |c| {
            c.output_compression = taskwire_executor::OutputCompression::Off;
        })
        .kill_broker()
        .audit_writer()
        .gateway(taskwire_teststack::users::gateway_config(&["big", "small"]))
        .start()
        .await;
    s.ready().await;
    // Warm every path once, so idle includes what any job costs.
    let (_, warm) = s.submit("alice", "small", json!({})).await;
    let warm = warm["job_id"].as_str().unwrap().to_string();
    let (_, end) = drain(s.base.clone(), warm, "taskwire", None).await;
    assert_eq!(end["state"], "succeeded");
    let idle = rss();
    let sampler = Sampler::start();

    let (_, job) = s.submit("alice", "big", json!({})).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let (got, mut seen) = tokio::sync::watch::channel(0);
    let base = s.base.clone();
    let live = tokio::spawn(drain(
        base.clone(),
        id.clone(),
        "taskwire.binary",
        Some(got),
    ));
    let json = tokio::spawn(drain(base.clone(), id.clone(), "taskwire", None));
    // Joins once 256 chunks (16 MiB) are out: chunk 1 left the window long ago.
    seen.wait_for(|n| *n >= 256).await.unwrap();
    let late = tokio::spawn(drain(base, id.clone(), "taskwire.binary", None));
    for (name, viewer) in [("live", live), ("json", json), ("late", late)] {
        let (bytes, end) = viewer.await.unwrap();
        assert_eq!(end["state"], "succeeded", "{name}: {end}");
        assert_eq!(bytes, JOB_BYTES, "{name} viewer got every byte");
    }
    let peak = sampler.finish();
    let grew = peak.saturating_sub(idle);
    eprintln!(
        "resident: idle {} MiB, peak {} MiB (+{} MiB) for a job writing {} MiB",
        idle / MIB,
        peak / MIB,
        grew / MIB,
        JOB_BYTES / MIB
    );
    assert!(
        grew < BOUND,
        "the process grew by {} MiB while a job wrote {} MiB (bound {} MiB)",
        grew / MIB,
        JOB_BYTES / MIB,
        BOUND / MIB
    );
    // Nothing holds the output any more: once the heaps are trimmed (as every service does
    // every few seconds) the process is back near idle.
    let back = idle + 48 * MIB;
    taskwire_testkit::eventually(
        "the process back within 48 MiB of idle after the job",
        std::time::Duration::from_secs(60),
        async || {
            taskwire_core::memory::trim();
            rss() <= back
        },
    )
    .await;
    eprintln!("resident after the job: {} MiB", rss() / MIB);
}
