//! The builder and the stack: a private `nats-server` and the services a test asks for.

use crate::executors::TestExecutor;
use async_nats::jetstream;
use std::path::Path;
use std::time::Duration;
use taskwire_audit_writer::{AuditConfig, AuditWriter, AuditWriterOptions};
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::{self, Topology, TopologyConfig};
use taskwire_executor::ExecutorConfig;
use taskwire_gateway::{GatewayConfig, GatewayOptions, GatewayServer};
use taskwire_kill_broker::{KillBroker, KillBrokerConfig, KillBrokerOptions};
use taskwire_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

type Tweak = Box<dyn FnOnce(&mut ExecutorConfig) + Send>;

/// What to start. Nothing but NATS unless asked.
#[must_use]
pub struct Builder {
    topology: TopologyConfig,
    executors: Vec<(String, Tweak)>,
    gateway: Option<GatewayConfig>,
    kill_broker: Option<KillBrokerConfig>,
    audit: Option<Option<String>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("executors", &self.executors.len())
            .field("gateway", &self.gateway.is_some())
            .field("kill_broker", &self.kill_broker)
            .field("audit", &self.audit)
            .finish()
    }
}

impl Builder {
    /// Every stream and bucket with this topology (the services get it too).
    pub fn topology(mut self, t: TopologyConfig) -> Self {
        self.topology = t;
        self
    }

    /// An executor with `catalog` (TOML text), serving the default channel.
    pub fn executor(self, catalog: &str) -> Self {
        self.executor_with(catalog, |_| {})
    }

    /// An executor with `catalog`, its configuration changed by `tweak`.
    pub fn executor_with(
        mut self,
        catalog: &str,
        tweak: impl FnOnce(&mut ExecutorConfig) + Send + 'static,
    ) -> Self {
        self.executors.push((catalog.to_string(), Box::new(tweak)));
        self
    }

    /// A gateway with `config` (see [`crate::users::gateway_config`]).
    pub fn gateway(mut self, config: GatewayConfig) -> Self {
        self.gateway = Some(config);
        self
    }

    /// A kill broker that marks a job lost 2 s after its instance vanished (checked every
    /// 300 ms), so tests of lost jobs are quick.
    pub fn kill_broker(self) -> Self {
        self.kill_broker_with(KillBrokerConfig {
            lost_after: Duration::from_secs(2),
            reap_interval: Duration::from_millis(300),
            ..KillBrokerConfig::default()
        })
    }

    pub fn kill_broker_with(mut self, config: KillBrokerConfig) -> Self {
        self.kill_broker = Some(config);
        self
    }

    /// An audit writer on a SQLite file in the stack's directory.
    pub fn audit_writer(mut self) -> Self {
        self.audit = Some(None);
        self
    }

    /// An audit writer on the database at `url` (e.g. a [`crate::PgDatabase`]).
    pub fn audit_writer_at(mut self, url: &str) -> Self {
        self.audit = Some(Some(url.to_string()));
        self
    }

    /// Starts everything asked for. With a gateway and executors, returns once the gateway
    /// sees every executor in its registry.
    pub async fn start(self) -> Stack {
        taskwire_core::telemetry::init_for_tests();
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary dir: {e}"));
        let ns = Namespace::root();
        let client = taskwire_core::nats::connect(&nats.url(), "test-stack")
            .await
            .unwrap_or_else(|e| panic!("the test cannot reach its nats-server: {e}"));
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::ensure(&js, &ns, &self.topology)
            .await
            .unwrap_or_else(|e| panic!("the streams and buckets were not made: {e}"));
        let jobs = JobStore::new(js.clone(), topo.jobs.clone(), ns.clone());
        let mut stack = Stack {
            base: String::new(),
            http: reqwest::Client::new(),
            executors: Vec::new(),
            gateway: None,
            broker: None,
            audit: None,
            db_url: None,
            ns,
            topology: self.topology,
            topo,
            jobs,
            js,
            client,
            nats,
            dir,
        };
        if let Some(url) = self.audit {
            let url = url.unwrap_or_else(|| {
                format!("sqlite://{}", stack.dir.path().join("audit.db").display())
            });
            stack.audit = Some(stack.audit_writer_on(&url).await);
            stack.db_url = Some(url);
        }
        if let Some(cfg) = self.kill_broker {
            stack.broker = Some(
                KillBroker::start(KillBrokerOptions {
                    nats_url: stack.nats.url(),
                    namespace: stack.ns.clone(),
                    topology: stack.topology.clone(),
                    config: cfg,
                })
                .await
                .unwrap_or_else(|e| panic!("the kill broker did not start: {e}")),
            );
        }
        for (i, (catalog, tweak)) in self.executors.into_iter().enumerate() {
            let e = stack.executor(&format!("exec-{i}"), &catalog, tweak).await;
            stack.executors.push(e);
        }
        if let Some(cfg) = self.gateway {
            stack.restart_gateway(cfg).await;
            if !stack.executors.is_empty() {
                stack.ready().await;
            }
        }
        stack
    }
}

/// A running stack. Dropped, it kills its nats-server and removes its files.
pub struct Stack {
    /// `http://<gateway address>` (empty without a gateway).
    pub base: String,
    pub http: reqwest::Client,
    /// The executors the builder started, in order.
    pub executors: Vec<TestExecutor>,
    gateway: Option<GatewayServer>,
    broker: Option<KillBroker>,
    audit: Option<AuditWriter>,
    /// The audit writer's database, when one runs.
    pub db_url: Option<String>,
    pub ns: Namespace,
    pub topology: TopologyConfig,
    pub topo: Topology,
    /// A job store on the test's own connection, to read and write as the services do.
    pub jobs: JobStore,
    pub js: jetstream::Context,
    pub client: async_nats::Client,
    // Last but the directory: the services above go before their server.
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("nats", &self.nats.url())
            .field("gateway", &self.base)
            .field("executors", &self.executors.len())
            .finish()
    }
}

impl Stack {
    pub fn builder() -> Builder {
        Builder {
            topology: TopologyConfig::default(),
            executors: Vec::new(),
            gateway: None,
            kill_broker: None,
            audit: None,
        }
    }

    /// The stack's nats-server, `nats://127.0.0.1:<port>`.
    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// Starts (again) the gateway with `config`, stopping the one running.
    pub async fn restart_gateway(&mut self, config: GatewayConfig) {
        if let Some(g) = self.gateway.take() {
            g.stop().await;
        }
        let gw = GatewayServer::start(GatewayOptions {
            nats_url: self.nats.url(),
            namespace: self.ns.clone(),
            topology: self.topology.clone(),
            config,
            admin_token: None,
        })
        .await
        .unwrap_or_else(|e| panic!("the gateway did not start: {e}"));
        self.base = format!("http://{}", gw.addr());
        self.gateway = Some(gw);
    }

    /// An executor named `name` (its state dir) with `catalog`, owned by the caller.
    pub async fn executor(
        &self,
        name: &str,
        catalog: &str,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> TestExecutor {
        let state_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&state_dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", state_dir.display()));
        let catalog_path = state_dir.join("catalog.toml");
        std::fs::write(&catalog_path, catalog)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", catalog_path.display()));
        self.executor_in(&state_dir, &catalog_path, tweak).await
    }

    /// An executor with state in `state_dir` and the catalog file `catalog` (to start one
    /// again where it ran before, keeping its GUID).
    pub async fn executor_in(
        &self,
        state_dir: &Path,
        catalog: &Path,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> TestExecutor {
        TestExecutor::start(
            &self.nats.url(),
            &self.ns,
            &self.topology,
            state_dir,
            catalog,
            tweak,
        )
        .await
    }

    /// The options of an audit writer on `url`, retrying its database every 500 ms at most.
    pub fn audit_options(&self, url: &str) -> AuditWriterOptions {
        AuditWriterOptions {
            nats_url: self.nats.url(),
            namespace: self.ns.clone(),
            topology: self.topology.clone(),
            state_dir: self.dir.path().to_path_buf(),
            config: AuditConfig {
                database_url: Some(url.to_string()),
                retry_max: Duration::from_millis(500),
                ..AuditConfig::default()
            },
        }
    }

    /// An audit writer in this process on the database at `url`, owned by the caller.
    pub async fn audit_writer_on(&self, url: &str) -> AuditWriter {
        AuditWriter::start(self.audit_options(url), CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("the audit writer did not start: {e}"))
            .unwrap_or_else(|| panic!("the audit writer stopped before it started"))
    }
}
