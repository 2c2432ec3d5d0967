//! The scheduler's test stack: nats-server, an executor, a gateway (restartable with another
//! configuration) with the test users of `taskwire_teststack`, and `taskwire-scheduler`
//! replicas as child processes.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use taskwire_core::topology::TopologyConfig;
use taskwire_gateway::GatewayConfig;
use taskwire_teststack::users;

pub use taskwire_teststack::token;

pub const CATALOG: &str = r#"
[commands.tick]
program = "/bin/true"

[commands.slow]
program = "/bin/sleep"
args = ["{secs}"]
[[commands.slow.params]]
name = "secs"
type = "string"
pattern = "[0-9.]{1,5}"
required = true
"#;

/// alice and erin (role ops) may run tick and slow; with `revoked`, ops may no longer run
/// `tick`.
pub fn gateway_config(revoked: bool) -> GatewayConfig {
    let mut cfg = users::gateway_config(&["slow"]);
    users::allow(&mut cfg, "tick", if revoked { &[] } else { &["ops"] });
    cfg
}

pub struct Stack {
    stack: taskwire_teststack::Stack,
    replicas: Vec<Option<Child>>,
}

impl Deref for Stack {
    type Target = taskwire_teststack::Stack;
    fn deref(&self) -> &Self::Target {
        &self.stack
    }
}

impl DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.stack
    }
}

impl Stack {
    pub async fn new() -> Self {
        Self::with_topology(TopologyConfig::default()).await
    }

    /// A stack whose streams and buckets all use `topology` (replicas get it too).
    pub async fn with_topology(topology: TopologyConfig) -> Self {
        let stack = taskwire_teststack::Stack::builder()
            .topology(topology)
            .executor_with(CATALOG, |c| c.slots = 64)
            .gateway(gateway_config(false))
            .start()
            .await;
        Self {
            stack,
            replicas: Vec::new(),
        }
    }

    /// (Re)starts the gateway; `revoked` takes `tick` away from role ops.
    pub async fn start_gateway(&mut self, revoked: bool) {
        self.stack.restart_gateway(gateway_config(revoked)).await;
    }

    /// Starts a scheduler replica process; returns its index.
    pub fn start_replica(&mut self, env: &[(&str, &str)]) -> usize {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire-scheduler"));
        cmd.env("TASKWIRE_NATS_URL", self.nats.url())
            .env(
                "TASKWIRE_NATS_CREDENTIALS",
                self.auth
                    .keys
                    .path(&taskwire_core::auth::roles::Role::Scheduler),
            )
            .env("TASKWIRE_SCHEDULER__TICK", "100ms")
            .env("TASKWIRE_SCHEDULER__CLAIM_TIMEOUT", "3s")
            .env("TASKWIRE_LOG", "warn")
            .env(
                "TASKWIRE_TOPOLOGY__FIRES_MAX_AGE",
                format!("{}ms", self.stack.topology.fires_max_age.as_millis()),
            )
            .env_remove("TASKWIRE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.replicas.push(Some(cmd.spawn().unwrap()));
        self.replicas.len() - 1
    }

    /// SIGKILLs replica `i`.
    pub fn kill_replica(&mut self, i: usize) {
        if let Some(mut c) = self.replicas[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Submits `tick` as alice, delayed until `at`: the answer's status and body.
    pub async fn delayed_tick(&self, at: chrono::DateTime<chrono::Utc>) -> (StatusCode, Value) {
        self.post(
            "alice",
            "/api/v1/jobs",
            json!({"command": "tick", "not_before": at}),
        )
        .await
    }

    /// Creates a schedule as `user`; panics unless it is accepted.
    pub async fn schedule(&self, user: &str, body: Value) -> Value {
        let (status, v) = self.post(user, "/api/v1/schedules", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    /// The schedule's fires since `since`.
    pub async fn history(&self, id: &str, since: &str) -> Vec<Value> {
        let (status, v) = self
            .get(
                "root",
                &format!(
                    "/api/v1/schedules/{id}/history?since={}&limit=1000",
                    urlenc(since)
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["fires"].as_array().unwrap().clone()
    }

    /// Waits until `ready` holds for the schedule's history.
    pub async fn history_until(
        &self,
        id: &str,
        within: Duration,
        ready: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let h = self.history(id, "2000-01-01T00:00:00Z").await;
            if ready(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "history of {id} never got there: {}",
                json!(h)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn urlenc(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in self.replicas.iter_mut().flatten() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// The states of a history, in order.
pub fn states(h: &[Value]) -> Vec<String> {
    h.iter()
        .map(|f| f["state"].as_str().unwrap().to_string())
        .collect()
}
