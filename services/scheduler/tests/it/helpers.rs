//! The test stack: nats-server, an executor, a gateway (restartable with another
//! configuration), and `taskwire-scheduler` replicas as child processes.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use taskwire_core::Namespace;
use taskwire_core::topology::{self, Topology, TopologyConfig};
use taskwire_executor::{Executor, ExecutorConfig, ExecutorOptions};
use taskwire_gateway::acl::Permission;
use taskwire_gateway::auth::hash_hex;
use taskwire_gateway::config::{AllowedCommand, RoleConfig, TokenConfig};
use taskwire_gateway::{Gateway, GatewayConfig, GatewayOptions};
use taskwire_testkit::NatsServer;

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

pub fn token(user: &str) -> String {
    format!("tw_test_token_of_{user}")
}

/// alice and erin (role ops: run tick and slow, read and stop their own jobs, manage
/// schedules), dave (no role), root (super user).
/// With `revoked`, ops may no longer run `tick`.
pub fn gateway_config(revoked: bool) -> GatewayConfig {
    let mut cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        super_users: vec!["root".into()],
        ..GatewayConfig::default()
    };
    cfg.roles.insert(
        "ops".into(),
        RoleConfig {
            permissions: vec![
                Permission::Run,
                Permission::ReadOwn,
                Permission::StopOwn,
                Permission::ManageSchedules,
            ],
        },
    );
    for (user, roles) in [
        ("alice", vec!["ops"]),
        ("erin", vec!["ops"]),
        ("dave", vec![]),
        ("root", vec![]),
    ] {
        cfg.tokens.push(TokenConfig {
            user: user.into(),
            sha256: hash_hex(&token(user)),
            roles: roles.into_iter().map(String::from).collect(),
        });
    }
    let tick_roles = if revoked { vec![] } else { vec!["ops".into()] };
    cfg.commands
        .allowed
        .insert("tick".into(), AllowedCommand { roles: tick_roles });
    cfg.commands.allowed.insert(
        "slow".into(),
        AllowedCommand {
            roles: vec!["ops".into()],
        },
    );
    cfg
}

pub struct Stack {
    pub nats: NatsServer,
    gw: Option<Gateway>,
    _exec: Executor,
    pub base: String,
    pub http: reqwest::Client,
    pub topo: Topology,
    replicas: Vec<Option<Child>>,
    topology: TopologyConfig,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn new() -> Self {
        Self::with_topology(TopologyConfig::default()).await
    }

    /// A stack whose streams and buckets all use `topology` (replicas get it too).
    pub async fn with_topology(topology: TopologyConfig) -> Self {
        taskwire_core::telemetry::init_for_tests();
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("catalog.toml");
        std::fs::write(&catalog, CATALOG).unwrap();
        let exec = Executor::start(ExecutorOptions {
            nats_url: nats.url(),
            namespace: Namespace::root(),
            state_dir: dir.path().join("exec"),
            topology: topology.clone(),
            config: ExecutorConfig {
                catalog,
                slots: 64,
                heartbeat_interval: Duration::from_millis(300),
                ..ExecutorConfig::default()
            },
        })
        .await
        .unwrap();
        let client = taskwire_core::nats::connect(&nats.url(), "sched-test")
            .await
            .unwrap();
        let js = taskwire_core::nats::jetstream(client);
        let topo = topology::ensure(&js, &Namespace::root(), &topology)
            .await
            .unwrap();
        let mut s = Self {
            nats,
            gw: None,
            _exec: exec,
            base: String::new(),
            http: reqwest::Client::new(),
            topo,
            replicas: Vec::new(),
            topology,
            _dir: dir,
        };
        s.start_gateway(false).await;
        s.ready().await;
        s
    }

    /// (Re)starts the gateway; `revoked` takes `tick` away from role ops.
    pub async fn start_gateway(&mut self, revoked: bool) {
        if let Some(g) = self.gw.take() {
            g.stop().await;
        }
        let gw = Gateway::start(GatewayOptions {
            nats_url: self.nats.url(),
            namespace: Namespace::root(),
            topology: self.topology.clone(),
            config: gateway_config(revoked),
            admin_token: None,
        })
        .await
        .unwrap();
        self.base = format!("http://{}", gw.addr());
        self.gw = Some(gw);
    }

    /// Waits until the executor is registered.
    pub async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, v) = self.get("root", "/api/v1/instances").await;
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                return;
            }
            assert!(Instant::now() < deadline, "no executor registered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a scheduler replica process; returns its index.
    pub fn start_replica(&mut self, env: &[(&str, &str)]) -> usize {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire-scheduler"));
        cmd.env("TASKWIRE_NATS_URL", self.nats.url())
            .env("TASKWIRE_SCHEDULER__TICK", "100ms")
            .env("TASKWIRE_SCHEDULER__CLAIM_TIMEOUT", "3s")
            .env("TASKWIRE_LOG", "warn")
            .env(
                "TASKWIRE_TOPOLOGY__FIRES_MAX_AGE",
                format!("{}ms", self.topology.fires_max_age.as_millis()),
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        user: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token(user));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, user: &str, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, user, path, None).await
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, user, path, Some(body))
            .await
    }

    pub async fn patch(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, user, path, Some(body))
            .await
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
