//! The local cluster of `taskwire up --cluster` for a test: the real binary, three real
//! nats-server nodes, two of each service, a fresh PostgreSQL database; its `cluster.json`
//! says where everything is.

#![allow(dead_code, clippy::unwrap_used)]

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Cluster {
    child: Child,
    pub state: PathBuf,
    /// Every line `taskwire up --cluster` printed.
    pub lines: Arc<Mutex<Vec<String>>>,
    pub nats_urls: Vec<String>,
    /// Each gateway's `http://host:port`.
    pub http: Vec<String>,
    pub token: String,
    pub key_dir: PathBuf,
}

impl Cluster {
    /// Starts the cluster in `state` on `database_url`; a process that dies is started again
    /// after `restart_after`. Returns once it says it is up.
    pub fn start(state: &Path, database_url: &str, restart_after: Duration) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskwire"))
            .arg("up")
            .arg("--cluster")
            .arg("--state-dir")
            .arg(state)
            .args(["--database-url", database_url])
            .arg("--restart-after")
            .arg(restart_after.as_secs_f64().to_string())
            .env_remove("TASKWIRE_NATS_URL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(state.join("up.stderr")).unwrap())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (up_tx, up_rx) = std::sync::mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in out.lines() {
                    let Ok(line) = line else { break };
                    let ready = line.starts_with("A process that dies is started again");
                    lines.lock().unwrap().push(line);
                    if ready {
                        let _ = up_tx.send(());
                    }
                }
            }
        });
        if up_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "taskwire up --cluster did not come up: {:?} {} (logs in {})",
                lines.lock().unwrap(),
                std::fs::read_to_string(state.join("up.stderr")).unwrap_or_default(),
                state.join("logs").display()
            );
        }
        let m = manifest(state);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(m["ready"], true, "{m}");
        Self {
            child,
            state: state.to_path_buf(),
            lines,
            nats_urls: strings(&m["nats_urls"]),
            http: strings(&m["http"]),
            token: m["admin_token"].as_str().unwrap().to_string(),
            key_dir: PathBuf::from(m["key_dir"].as_str().unwrap()),
        }
    }

    /// The process named `name` (`nats-2`, `gateway-1`, ...) as the manifest has it now.
    pub fn process(&self, name: &str) -> Value {
        manifest(&self.state)["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no process {name} in cluster.json"))
    }

    /// `kill -9` of `name`; returns how many times it had been started.
    pub fn kill9(&self, name: &str) -> u64 {
        let p = self.process(name);
        let pid = p["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is not running: {p}"));
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        p["starts"].as_u64().unwrap()
    }

    /// Waits until `name` was started again after the start `starts` (bounded).
    pub async fn restarted(&self, name: &str, starts: u64, within: Duration) {
        taskwire_testkit::eventually(
            &format!("{name} started again after start {starts}"),
            within,
            async || {
                let p = self.process(name);
                p["starts"].as_u64().unwrap() > starts && p["pid"].is_u64()
            },
        )
        .await;
    }

    /// An admin connection to the cluster (every node in its server list).
    pub async fn admin_client(&self, name: &str) -> async_nats::Client {
        let ep = taskwire_core::nats::Endpoint::new(
            self.nats_urls.join(","),
            Some(self.key_dir.join("admin.nk")),
        )
        .with_inbox("_INBOX.admin");
        taskwire_core::nats::connect_once_to(&ep, name)
            .await
            .unwrap()
    }

    /// The node (`nats-N`) leading stream `stream` now.
    pub async fn leader_of(&self, js: &async_nats::jetstream::Context, stream: &str) -> String {
        let mut s = js.get_stream(stream).await.unwrap();
        let info = s.info().await.unwrap();
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .unwrap_or_else(|| panic!("{stream} has no leader: {:?}", info.cluster))
    }

    /// The node holding consumer `consumer` of `stream` (its leader).
    pub async fn host_of(
        &self,
        js: &async_nats::jetstream::Context,
        stream: &str,
        consumer: &str,
    ) -> String {
        let s = js.get_stream(stream).await.unwrap();
        let info = s.consumer_info(consumer).await.unwrap();
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .unwrap_or_else(|| panic!("{consumer} has no leader: {:?}", info.cluster))
    }

    /// The last lines of process `name`'s log (for a failure's message).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.state.join("logs").join(format!("{name}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Ctrl-C, and waits (bounded) for everything to stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        super::interrupt_and_wait(
            &mut self.child,
            Duration::from_secs(90),
            "taskwire up --cluster",
        )
    }
}

/// `<state>/cluster.json`.
pub fn manifest(state: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(state.join("cluster.json")).unwrap()).unwrap()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        super::interrupt_then_kill(&mut self.child, Duration::from_secs(60));
    }
}
