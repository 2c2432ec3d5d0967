//! The builder and the stack: a private `nats-server` and the services a test asks for.

use crate::auth::NatsAuth;
use crate::executors::{ExecutorPlan, TestExecutor};
use async_nats::jetstream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use taskwire_audit_writer::{AuditConfig, AuditWriter, AuditWriterOptions};
use taskwire_core::Namespace;
use taskwire_core::auth::roles::Role;
use taskwire_core::jobs::JobStore;
use taskwire_core::sign::DispatchSigner;
use taskwire_core::topology::ExecutorEntry;
use taskwire_core::topology::{self, Topology, TopologyConfig};
use taskwire_executor::ExecutorConfig;
use taskwire_gateway::{GatewayConfig, GatewayOptions, GatewayServer};
use taskwire_kill_broker::{KillBroker, KillBrokerConfig, KillBrokerOptions};
use taskwire_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

/// The stack's dispatch signing key, in its directory.
const SIGNING_KEY_FILE: &str = "dispatch.seed";

type Tweak = Box<dyn FnOnce(&mut ExecutorConfig) + Send>;

/// What to start. Nothing but NATS and a kill broker (which makes the executors' own
/// consumers) unless asked.
#[must_use]
pub struct Builder {
    topology: TopologyConfig,
    executors: Vec<(String, Tweak)>,
    gateway: Option<GatewayConfig>,
    kill_broker: Option<KillBrokerConfig>,
    audit: Option<Option<String>>,
    callout: bool,
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

    /// NATS with the auth callout: clients that are no service sign in with a taskwire token
    /// through the gateway. Such a stack cannot add executors after it started.
    pub fn nats_callout(mut self) -> Self {
        self.callout = true;
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
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary dir: {e}"));
        let ns = Namespace::root();
        // The builder's executors are known before NATS starts (their state dirs made, their
        // GUIDs drawn), so that their identities are in the first config.
        let mut planned = Vec::new();
        let mut roles = Vec::new();
        for (i, (catalog, tweak)) in self.executors.into_iter().enumerate() {
            let plan = ExecutorPlan::new(dir.path(), &format!("exec-{i}"), &catalog, tweak);
            roles.push(plan.role());
            planned.push(plan);
        }
        let auth = NatsAuth::new(dir.path(), &ns, roles, self.callout);
        let nats = NatsServer::start_with(Some(&auth.config));
        let signer = Arc::new(
            DispatchSigner::load_or_create(&dir.path().join(SIGNING_KEY_FILE))
                .unwrap_or_else(|e| panic!("no dispatch signing key: {e}")),
        );
        let client = taskwire_core::nats::connect_to(
            &auth.endpoint(&nats.url(), &Role::Admin),
            "test-stack",
        )
        .await
        .unwrap_or_else(|e| panic!("the test cannot reach its nats-server: {e}"));
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::ensure(&js, &ns, &self.topology)
            .await
            .unwrap_or_else(|e| panic!("the streams and buckets were not made: {e}"));
        topology::ensure_consumers(&topo, &ns, &[])
            .await
            .unwrap_or_else(|e| panic!("the audit consumers were not made: {e}"));
        let jobs =
            JobStore::new(js.clone(), topo.jobs.clone(), ns.clone()).with_signer(signer.clone());
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
            signer,
            js,
            client,
            auth,
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
        // Always a kill broker: it makes each executor's own consumer (default settings
        // unless the test asked for others).
        {
            let cfg = self.kill_broker.unwrap_or_default();
            stack.broker = Some(
                KillBroker::start(KillBrokerOptions {
                    nats_url: stack.nats.url(),
                    nats_credentials: Some(stack.auth.keys.path(&Role::KillBroker)),
                    namespace: stack.ns.clone(),
                    topology: stack.topology.clone(),
                    config: cfg,
                })
                .await
                .unwrap_or_else(|e| panic!("the kill broker did not start: {e}")),
            );
        }
        for plan in planned {
            let e = stack.start_planned(plan).await;
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
    /// A job store on the test's own connection, to read and write as the services do; it
    /// signs its dispatch messages as the gateway does.
    pub jobs: JobStore,
    /// The stack's dispatch signing key (made at start): the gateway signs with it, every
    /// executor trusts its public key.
    pub signer: Arc<DispatchSigner>,
    pub js: jetstream::Context,
    pub client: async_nats::Client,
    /// The keys and config of the stack's NATS.
    pub auth: NatsAuth,
    // Last but the directory: the services above go before their server.
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
}

/// Every permission violation the server logged for a connection of one of the product's
/// services (named `taskwire-…`): a service that needs a subject its role does not allow.
pub fn service_violations(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Violation") && l.contains(":rust:taskwire-"))
        .map(str::to_string)
        .collect()
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Every test doubles as a check of the roles' allow-lists: a service refused on the
        // bus fails the test that made it try, naming the subject.
        if std::thread::panicking() {
            return;
        }
        let v = service_violations(&self.nats.log_path());
        assert!(
            v.is_empty(),
            "a service was refused by NATS (its role lacks a permission):\n{}",
            v.join("\n")
        );
    }
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
            callout: false,
        }
    }

    /// The stack's nats-server, `nats://127.0.0.1:<port>`.
    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// The file holding the stack's dispatch signing key (mode 0600).
    pub fn signing_key_file(&self) -> std::path::PathBuf {
        self.dir.path().join(SIGNING_KEY_FILE)
    }

    /// Stops the stack's kill broker (what a gateway and an executor do without one).
    pub async fn stop_kill_broker(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop().await;
        }
    }

    /// Starts (again) the gateway with `config` (signing with the stack's key unless it names
    /// another), stopping the one running.
    pub async fn restart_gateway(&mut self, mut config: GatewayConfig) {
        if config.dispatch_signing_key.is_none() {
            config.dispatch_signing_key = Some(self.signing_key_file());
        }
        if let Some(g) = self.gateway.take() {
            g.stop().await;
        }
        let gw = GatewayServer::start(GatewayOptions {
            nats_url: self.nats.url(),
            nats_credentials: Some(self.auth.keys.path(&Role::Gateway)),
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
        let plan = ExecutorPlan::new(self.dir.path(), name, catalog, tweak);
        self.start_planned(plan).await
    }

    /// An executor with state in `state_dir` and the catalog file `catalog` (to start one
    /// again where it ran before, keeping its GUID).
    pub async fn executor_in(
        &self,
        state_dir: &Path,
        catalog: &Path,
        tweak: impl FnOnce(&mut ExecutorConfig),
    ) -> TestExecutor {
        self.start_planned(ExecutorPlan::at(state_dir, catalog, tweak))
            .await
    }

    /// An admin connection of its own named `name` (an identity that may do anything, as the
    /// setup step's).
    pub async fn admin_client(&self, name: &str) -> async_nats::Client {
        taskwire_core::nats::connect_to(&self.auth.endpoint(&self.nats.url(), &Role::Admin), name)
            .await
            .unwrap_or_else(|e| panic!("the test cannot reach its nats-server: {e}"))
    }

    /// Where `role` connects to the stack's NATS.
    pub fn endpoint(&self, role: &Role) -> taskwire_core::nats::Endpoint {
        self.auth.endpoint(&self.nats.url(), role)
    }

    /// Readies an executor that a test starts itself (a binary) in `state_dir` serving
    /// `channels`: its GUID drawn there, its identity known to NATS, its consumers made.
    /// Returns its key file (for `TASKWIRE_NATS_CREDENTIALS`).
    pub async fn provision_executor(
        &self,
        state_dir: &Path,
        channels: &[&str],
    ) -> std::path::PathBuf {
        let guid = taskwire_executor::identity::load_or_create(state_dir)
            .unwrap_or_else(|e| panic!("no instance GUID: {e}"));
        let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let role = Role::Executor {
            guid,
            channels: channels.clone(),
        };
        let ep = self.endpoint(&role);
        if self.auth.add(role.clone()) {
            self.nats.reload();
            crate::auth::wait_accepted(&ep).await;
        }
        self.make_consumers(ExecutorEntry { guid, channels }).await;
        self.auth.keys.path(&role)
    }

    /// Makes the consumers of an executor. Just after a reload the server can answer a
    /// JetStream request with "no responders" for a moment (it re-imports the account's
    /// JetStream API): this asks again until it answers, within a bound.
    async fn make_consumers(&self, entry: ExecutorEntry) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut backoff = taskwire_core::retry::Backoff::new(
            std::time::Duration::from_millis(20),
            std::time::Duration::from_millis(500),
        );
        while let Err(e) =
            topology::ensure_consumers(&self.topo, &self.ns, std::slice::from_ref(&entry)).await
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the executor's consumers were not made: {e}"
            );
            backoff.wait().await;
        }
    }

    /// Gives the executor of `plan` its identity (reloading NATS when it is new) and its
    /// consumers, then starts it.
    async fn start_planned(&self, plan: ExecutorPlan) -> TestExecutor {
        let role = plan.role();
        let ep = self.endpoint(&role);
        if self.auth.add(role.clone()) {
            self.nats.reload();
            crate::auth::wait_accepted(&ep).await;
        }
        let entry = ExecutorEntry {
            guid: plan.guid,
            channels: plan.config.channels.clone(),
        };
        self.make_consumers(entry).await;
        let mut config = plan.config;
        if config.dispatch_trusted_keys.is_empty() {
            config.dispatch_trusted_keys = vec![self.signer.public_key()];
        }
        TestExecutor::start(ep, &self.ns, &self.topology, &plan.state_dir, config).await
    }

    /// The options of an audit writer on `url`, retrying its database every 500 ms at most.
    pub fn audit_options(&self, url: &str) -> AuditWriterOptions {
        AuditWriterOptions {
            nats_url: self.nats.url(),
            nats_credentials: Some(self.auth.keys.path(&Role::AuditWriter)),
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
