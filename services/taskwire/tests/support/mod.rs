//! Starting the real `taskwire up` binary for a test, and stopping it.

#![allow(dead_code, clippy::unwrap_used)]

pub mod client;
pub mod cluster;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Up {
    pub child: Child,
    pub nats_url: String,
    /// `http://host:port/api/v1`
    pub api: String,
    pub token: String,
    pub lines: Vec<String>,
    /// The state dir's NATS keys (`<state>/nats-auth`): admin.nk, dispatch-signing.nk, …
    pub keys: std::path::PathBuf,
}

impl Up {
    /// An admin connection to up's private NATS (its key from the state dir).
    pub async fn admin_client(&self, name: &str) -> async_nats::Client {
        let ep = taskwire_core::nats::Endpoint::new(
            self.nats_url.clone(),
            Some(self.keys.join("admin.nk")),
        )
        .with_inbox("_INBOX.admin");
        taskwire_core::nats::connect_once_to(&ep, name)
            .await
            .unwrap()
    }

    /// The key up's gateway signs dispatch messages with.
    pub fn signer(&self) -> std::sync::Arc<taskwire_core::sign::DispatchSigner> {
        std::sync::Arc::new(
            taskwire_core::sign::DispatchSigner::load_or_create(
                &self.keys.join("dispatch-signing.nk"),
            )
            .unwrap(),
        )
    }
}

pub fn start_up(state: &std::path::Path, env: &[(&str, &str)]) -> Up {
    start_up_with(state, &[], env)
}

/// `taskwire up` with extra arguments (`--catalog`, `--config`, ...).
pub fn start_up_with(state: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Up {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
    cmd.arg("up")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .args(["--http", "127.0.0.1:0"])
        .env_remove("TASKWIRE_NATS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "taskwire up exited early: {lines:?}"
        );
        lines.push(line.trim_end().to_string());
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let nats_url = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("NATS:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let field = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_string()
    };
    let api = field("API:");
    let token = field("admin token (super user 'admin'):");
    Up {
        child,
        nats_url,
        api,
        token,
        lines,
        keys: state.join("nats-auth"),
    }
}

pub fn stop(up: &mut Up) -> std::process::ExitStatus {
    interrupt_and_wait(&mut up.child, Duration::from_secs(30), "taskwire up")
}

/// Ctrl-C to `child`, then waits (bounded by `within`) for it to exit: its status.
pub fn interrupt_and_wait(
    child: &mut Child,
    within: Duration,
    what: &str,
) -> std::process::ExitStatus {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not stop within {within:?} after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// For a `Drop`: Ctrl-C to `child` if it still runs, then SIGKILL once `grace` has passed.
pub fn interrupt_then_kill(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        interrupt_then_kill(&mut self.child, Duration::from_secs(20));
    }
}
