//! The test stack: nats-server, one executor with a small catalog, a gateway with users of
//! several roles, and clients that talk to it as users would.

use async_nats::jetstream::consumer;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::topology::{self, Topology, TopologyConfig};
use taskwire_core::wire::{AuditEvent, audit};
use taskwire_executor::{Executor, ExecutorConfig, ExecutorOptions};
use taskwire_gateway::acl::Permission;
use taskwire_gateway::auth::hash_hex;
use taskwire_gateway::config::{AllowedCommand, RoleConfig, TokenConfig};
use taskwire_gateway::{Gateway, GatewayConfig, GatewayOptions};
use taskwire_testkit::NatsServer;

pub const CATALOG: &str = r#"
[commands.echo]
program = "/bin/echo"
args = ["{text}"]
[[commands.echo.params]]
name = "text"
type = "string"
required = true

[commands.lines]
shell = true
script = 'i=1; while [ $i -le $1 ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done; echo done >&2; printf "\377end"'
args = ["{n}"]
[[commands.lines.params]]
name = "n"
type = "integer"
min = 1
max = 5000
required = true

[commands.blob]
program = "/usr/bin/head"
args = ["-c", "{bytes}", "/dev/urandom"]
[[commands.blob.params]]
name = "bytes"
type = "integer"
min = 1
max = 100000000
required = true

[commands.drip]
shell = true
script = 'sleep 1; i=0; while [ $i -lt 64 ]; do head -c 16384 /dev/urandom; i=$((i+1)); sleep 0.05; done'

[commands.stubborn]
shell = true
script = 'trap "" INT TERM; (trap "" INT TERM; sleep 300) & echo $! > "$1/child"; setsid sh -c "trap \"\" INT TERM; sleep 300" & echo $! > "$1/escapee"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'
args = ["{dir}"]
kill = [{ signal = "SIGINT", wait = "300ms" }, { signal = "SIGTERM", wait = "300ms" }, { signal = "SIGKILL", wait = "2s" }]
stop = { signal = "SIGTERM", grace = "300ms" }
[[commands.stubborn.params]]
name = "dir"
type = "string"
required = true

[commands.secret]
program = "/bin/echo"
args = ["secret"]

[commands.unlisted]
program = "/bin/echo"
args = ["unlisted"]
"#;

pub struct Stack {
    // Held for their lifetime: the stack's server, gateway and executor live as long as it.
    _nats: NatsServer,
    _gw: Gateway,
    _exec: Executor,
    _broker: taskwire_kill_broker::KillBroker,
    _audit: Option<taskwire_audit_writer::AuditWriter>,
    pub base: String,
    pub nats_url: String,
    pub http: reqwest::Client,
    pub topo: Topology,
    pub ns: Namespace,
    _dir: tempfile::TempDir,
}

/// Users: alice and bob run echo/lines (ops), carol reads and kills anything but runs nothing
/// (lead), root is a super user, dave has no role.
pub fn token(user: &str) -> String {
    format!("tw_test_token_of_{user}")
}

pub fn gateway_config() -> GatewayConfig {
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
                Permission::KillOwn,
                Permission::Delete,
                Permission::ReadInstances,
            ],
        },
    );
    cfg.roles.insert(
        "lead".into(),
        RoleConfig {
            permissions: vec![
                Permission::ReadAny,
                Permission::KillAny,
                Permission::ReadAudit,
            ],
        },
    );
    for (user, roles) in [
        ("alice", vec!["ops"]),
        ("bob", vec!["ops"]),
        ("carol", vec!["lead"]),
        ("root", vec![]),
        ("dave", vec![]),
    ] {
        cfg.tokens.push(TokenConfig {
            user: user.into(),
            sha256: hash_hex(&token(user)),
            roles: roles.into_iter().map(String::from).collect(),
        });
    }
    for c in ["echo", "lines", "blob", "drip", "stubborn"] {
        cfg.commands.allowed.insert(
            c.into(),
            AllowedCommand {
                roles: vec!["ops".into()],
            },
        );
    }
    cfg.commands
        .allowed
        .insert("secret".into(), AllowedCommand { roles: vec![] });
    cfg
}

/// A kill broker on the server at `nats_url` (root namespace, default topology).
pub async fn start_broker(
    nats_url: &str,
    config: taskwire_kill_broker::KillBrokerConfig,
) -> taskwire_kill_broker::KillBroker {
    taskwire_kill_broker::KillBroker::start(taskwire_kill_broker::KillBrokerOptions {
        nats_url: nats_url.to_string(),
        namespace: Namespace::root(),
        topology: TopologyConfig::default(),
        config,
    })
    .await
    .unwrap()
}

impl Stack {
    pub async fn new() -> Self {
        Self::with(gateway_config()).await
    }

    pub async fn with(cfg: GatewayConfig) -> Self {
        Self::build(cfg, false).await
    }

    /// The stack plus an audit writer on a SQLite file.
    pub async fn with_audit_store() -> Self {
        Self::build(gateway_config(), true).await
    }

    async fn build(cfg: GatewayConfig, audit: bool) -> Self {
        taskwire_core::telemetry::init_for_tests();
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("catalog.toml");
        std::fs::write(&catalog, CATALOG).unwrap();
        let exec = Executor::start(ExecutorOptions {
            nats_url: nats.url(),
            namespace: Namespace::root(),
            state_dir: dir.path().join("exec"),
            topology: TopologyConfig::default(),
            config: ExecutorConfig {
                catalog,
                heartbeat_interval: Duration::from_millis(300),
                ..ExecutorConfig::default()
            },
        })
        .await
        .unwrap();
        let gw = Gateway::start(GatewayOptions {
            nats_url: nats.url(),
            namespace: Namespace::root(),
            topology: TopologyConfig::default(),
            config: cfg,
            admin_token: None,
        })
        .await
        .unwrap();
        let broker = start_broker(
            &nats.url(),
            taskwire_kill_broker::KillBrokerConfig {
                lost_after: Duration::from_secs(2),
                reap_interval: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .await;
        let audit = if audit {
            let opts = taskwire_audit_writer::AuditWriterOptions {
                nats_url: nats.url(),
                namespace: Namespace::root(),
                topology: TopologyConfig::default(),
                state_dir: dir.path().to_path_buf(),
                config: taskwire_audit_writer::AuditConfig::default(),
            };
            taskwire_audit_writer::AuditWriter::start(opts, Default::default())
                .await
                .unwrap()
        } else {
            None
        };
        let client = taskwire_core::nats::connect(&nats.url(), "gw-test")
            .await
            .unwrap();
        let js = taskwire_core::nats::jetstream(client);
        let topo = topology::ensure(&js, &Namespace::root(), &TopologyConfig::default())
            .await
            .unwrap();
        Self {
            base: format!("http://{}", gw.addr()),
            nats_url: nats.url(),
            _gw: gw,
            _exec: exec,
            _broker: broker,
            _audit: audit,
            _nats: nats,
            http: reqwest::Client::new(),
            topo,
            ns: Namespace::root(),
            _dir: dir,
        }
    }

    /// A client of its own and a job store on it, to write records as the services do.
    pub async fn job_store(
        &self,
        name: &str,
    ) -> (async_nats::Client, taskwire_core::jobs::JobStore) {
        let client = taskwire_core::nats::connect(&self.nats_url, name)
            .await
            .unwrap();
        let store = taskwire_core::jobs::JobStore::new(
            taskwire_core::nats::jetstream(client.clone()),
            self.topo.jobs.clone(),
            self.ns.clone(),
        );
        (client, store)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .delete(self.url(path))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token(user))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The body of a GET as bytes (output endpoints).
    pub async fn bytes(&self, user: &str, path: &str) -> bytes::Bytes {
        self.http
            .get(self.url(path))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    pub async fn submit(&self, user: &str, command: &str, params: Value) -> (StatusCode, Value) {
        self.post(
            user,
            "/api/v1/jobs",
            json!({"command": command, "params": params}),
        )
        .await
    }

    /// Submits as `user` and waits for the job to end; returns the final record.
    pub async fn run(&self, user: &str, command: &str, params: Value) -> Value {
        let (status, body) = self.submit(user, command, params).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        self.wait_final(user, body["job_id"].as_str().unwrap())
            .await
    }

    pub async fn wait_final(&self, user: &str, job: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(user, &format!("/api/v1/jobs/{job}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let state = body["state"].as_str().unwrap().to_string();
            if !["queued", "running"].contains(&state.as_str()) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} stuck in {state}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// The job's record once it is running or finished.
    pub async fn wait_final_or_running(&self, job: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get("root", &format!("/api/v1/jobs/{job}")).await;
            if body["state"] != "queued" {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} never started"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Waits until the executor is in the registry (the gateway reads it to route jobs).
    pub async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (s, body) = self.get("root", "/api/v1/instances").await;
            if s == StatusCode::OK && body.as_array().is_some_and(|a| !a.is_empty()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no instance registered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every audit decision stored so far (job deletion notices share the subject space).
    pub async fn audit(&self) -> Vec<AuditEvent> {
        let c = self
            .topo
            .events_stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.ns.audit_all(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut c = c;
        let pending = c.info().await.unwrap().num_pending;
        let mut msgs = c.messages().await.unwrap();
        let mut out = Vec::new();
        for _ in 0..pending {
            let m = msgs.next().await.unwrap().unwrap();
            if m.message.subject.as_str() == self.ns.audit(audit::KIND_JOB_DELETED) {
                continue;
            }
            out.push(serde_json::from_slice(&m.message.payload).unwrap());
        }
        out
    }
}
