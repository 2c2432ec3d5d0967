//! taskwire-kill-broker: stop, kill and cancel across instances, and no job stuck "running".
//!
//! - [`route`]: answers `tw.kill.request` (from gateways, which checked the ACL): cancels a
//!   queued job by compare-and-set, or forwards the request to `tw.exec.<guid>.kill`, the
//!   subject only the job's instance listens to, and relays its answer.
//! - [`reaper`]: marks `lost` the running jobs of instances that stopped heartbeating, and
//!   the jobs no instance claims, from watched copies of the unfinished jobs and of the
//!   instance registry.
//! - [`consumers`]: makes each executor's own consumer of `TW_INST` on its request, and makes
//!   it again when it was lost with its node.
//! - [`config`]: the `[kill_broker]` section; [`error`]: the crate's error.
//!
//! It never checks who may do what (the gateway did) and never signals a process itself.

pub mod config;
pub mod consumers;
pub mod error;
pub mod reaper;
pub mod route;

pub use config::KillBrokerConfig;
pub use error::{KillBrokerError, Result};

use std::sync::Arc;
use taskwire_core::Namespace;
use taskwire_core::config::Settings;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::{self, Topology, TopologyConfig};
use taskwire_core::wire::KillRequest;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Queue group of all kill brokers: each request is handled once.
pub const QUEUE_GROUP: &str = "taskwire-kill-broker";

#[derive(Debug, Clone)]
pub struct KillBrokerOptions {
    pub nats_url: String,
    /// This service's NATS key file (`None`: connect without one).
    pub nats_credentials: Option<std::path::PathBuf>,
    pub namespace: Namespace,
    pub topology: TopologyConfig,
    pub config: KillBrokerConfig,
}

impl KillBrokerOptions {
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        Ok(Self {
            nats_url: settings.nats_url.clone(),
            nats_credentials: settings.nats_credentials.clone(),
            namespace: settings.namespace()?,
            topology: settings.topology.clone(),
            config: settings.section("kill_broker")?,
        })
    }
}

/// What the broker's tasks share.
#[derive(Debug)]
pub struct Broker {
    pub client: async_nats::Client,
    pub ns: Namespace,
    pub topology: Topology,
    pub store: JobStore,
    pub cfg: KillBrokerConfig,
    /// Every queued or running job, kept current by a watch of `tw_jobs`, so the reaper does
    /// not read every record (finished ones stay for days) each round.
    pub active: taskwire_core::kv_copy::KvCopy<taskwire_core::wire::JobRecord>,
    /// The live instances, kept current by a watch of `tw_instances`, so a reaper round does
    /// not read every registry entry (a fleet of thousands beats every few seconds).
    pub instances: taskwire_core::registry::Registry,
    /// How long `tw_jobs` keeps a record after its last write (0: forever).
    pub jobs_max_age: std::time::Duration,
}

/// A started kill broker.
#[derive(Debug)]
pub struct KillBroker {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl KillBroker {
    pub async fn start(opts: KillBrokerOptions) -> Result<Self> {
        let client = taskwire_core::nats::connect_to(
            &taskwire_core::nats::Endpoint::new(
                opts.nats_url.clone(),
                opts.nats_credentials.clone(),
            )
            .with_inbox(taskwire_core::auth::roles::Role::KillBroker.inbox_prefix()),
            "taskwire-kill-broker",
        )
        .await?;
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::open(&js, &opts.namespace).await?;
        let store = JobStore::new(js, topo.jobs.clone(), opts.namespace.clone());
        let mut cfg = opts.config;
        // Past this, the job's dispatch message or its live record is gone: mark it before.
        // (0 means no limit)
        let gone = [opts.topology.dispatch_max_age, opts.topology.jobs_max_age]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min();
        if let Some(gone) = gone
            && cfg.unclaimed_after >= gone
        {
            let capped = gone.mul_f64(0.9);
            tracing::warn!(
                configured = ?cfg.unclaimed_after,
                used = ?capped,
                "[kill_broker] unclaimed_after must be shorter than dispatch_max_age and jobs_max_age"
            );
            cfg.unclaimed_after = capped;
        }
        let broker = Arc::new(Broker {
            client,
            ns: opts.namespace,
            topology: topo,
            store,
            cfg,
            active: Default::default(),
            instances: taskwire_core::registry::Registry::new(opts.topology.instance_ttl),
            jobs_max_age: opts.topology.jobs_max_age,
        });
        let stop = CancellationToken::new();
        let requests = serve(broker.clone(), stop.clone()).await?;
        let consumer_requests = consumers::serve(broker.clone(), stop.clone()).await?;
        let tasks = vec![
            tokio::spawn(requests.stopped()),
            tokio::spawn(consumer_requests.stopped()),
            tokio::spawn(reaper::follow_jobs(broker.clone(), stop.clone())),
            tokio::spawn(reaper::follow_instances(broker.clone(), stop.clone())),
            tokio::spawn(reaper::run(broker, stop.clone())),
        ];
        tracing::info!("kill broker serving");
        Ok(Self { stop, tasks })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Answers `tw.kill.request` (queue group: each request is handled by one broker) until
/// `stop`.
async fn serve(b: Arc<Broker>, stop: CancellationToken) -> Result<taskwire_core::serve::Responder> {
    let client = b.client.clone();
    let subject = b.ns.kill_request();
    Ok(
        taskwire_core::serve::respond(&client, subject, QUEUE_GROUP, stop, move |msg| {
            let b = b.clone();
            async move {
                let Ok(req) = serde_json::from_slice::<KillRequest>(&msg.payload) else {
                    tracing::warn!("malformed kill request ignored");
                    return None;
                };
                let reply = route::handle(&b, req).await;
                Some(serde_json::to_vec(&reply).unwrap_or_default().into())
            }
        })
        .await?,
    )
}

/// Runs a kill broker until `shutdown`.
pub async fn run(opts: KillBrokerOptions, shutdown: CancellationToken) -> Result<()> {
    let b = KillBroker::start(opts).await?;
    shutdown.cancelled().await;
    b.stop().await;
    Ok(())
}
