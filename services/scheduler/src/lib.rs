//! taskwire-scheduler: cron, one-shot and interval schedules, fired exactly once across any
//! number of replicas.
//!
//! The scheduler keeps no state of its own: schedules live in bucket `tw_schedules`, fires and
//! progress in `tw_schedule_fires`; each replica keeps a watched copy of both ([`KvCopy`]).
//! Every tick each replica looks at each enabled schedule's progress and takes the fires that
//! are due by advancing it with compare-and-set (so one replica takes each fire), records each fire under its own key, and asks a gateway to run
//! it (`tw.sched.fire`): the gateway checks the owner's permission again and submits the job
//! with an id derived from the schedule and the fire time, so a fire that a second replica
//! finishes after the first died still makes one job.
//!
//! - [`engine`]: the tick: due fires, misfire policy, take-over of abandoned fires; the pure
//!   `decide`/`upkeep` with a clock passed in; the schedules' copy.
//! - [`fire`]: one fire: overlap policy, the request to the gateway, the history entry.
//! - [`progress`]: the copy of every schedule's progress, and writing it by compare-and-set.

pub mod config;
pub mod engine;
pub mod error;
pub mod fire;
pub mod progress;

pub use config::SchedulerConfig;
pub use error::{Result, SchedulerError};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use taskwire_core::Namespace;
use taskwire_core::config::Settings;
use taskwire_core::jobs::JobStore;
use taskwire_core::kv_copy::KvCopy;
use taskwire_core::schedule::store::ScheduleStore;
use taskwire_core::topology::{self, TopologyConfig};
use taskwire_core::wire::Schedule;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub nats_url: String,
    /// This service's NATS key file (`None`: connect without one).
    pub nats_credentials: Option<std::path::PathBuf>,
    pub namespace: Namespace,
    pub topology: TopologyConfig,
    pub config: SchedulerConfig,
}

impl SchedulerOptions {
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        Ok(Self {
            nats_url: settings.nats_url.clone(),
            nats_credentials: settings.nats_credentials.clone(),
            namespace: settings.namespace()?,
            topology: settings.topology.clone(),
            config: settings.section("scheduler")?,
        })
    }
}

/// What the scheduler's tasks share.
#[derive(Debug)]
pub struct Shared {
    pub client: async_nats::Client,
    pub ns: Namespace,
    pub store: ScheduleStore,
    pub jobs: JobStore,
    pub cfg: SchedulerConfig,
    /// This replica's name in fire records.
    pub replica: String,
    /// Every schedule, kept current by a watch on `tw_schedules`.
    pub schedules: KvCopy<Schedule>,
    /// Fires this replica is carrying out right now (schedule, fire ms).
    pub active: Mutex<HashSet<(Uuid, i64)>>,
    /// How long `tw_schedule_fires` keeps a key after its last write.
    pub fires_max_age: std::time::Duration,
    /// Every schedule's progress and its revision, kept current by a watch, so a tick reads
    /// nothing from NATS for schedules that did not change.
    pub progress: progress::Cache,
}

/// A started scheduler replica.
#[derive(Debug)]
pub struct Scheduler {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Scheduler {
    pub async fn start(opts: SchedulerOptions) -> Result<Self> {
        let client = taskwire_core::nats::connect_to(
            &taskwire_core::nats::Endpoint::new(
                opts.nats_url.clone(),
                opts.nats_credentials.clone(),
            )
            .with_inbox(taskwire_core::auth::roles::Role::Scheduler.inbox_prefix()),
            "taskwire-scheduler",
        )
        .await?;
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::open(&js, &opts.namespace).await?;
        let store = ScheduleStore::new(client.clone(), topo.schedules.clone(), topo.fires.clone());
        let jobs = JobStore::new(js, topo.jobs.clone(), opts.namespace.clone());
        let host = nix_hostname();
        let replica = format!(
            "{host}/{}/{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..6]
        );
        let shared = Arc::new(Shared {
            client,
            ns: opts.namespace,
            store,
            jobs,
            cfg: opts.config,
            replica,
            schedules: KvCopy::default(),
            active: Mutex::new(HashSet::new()),
            fires_max_age: opts.topology.fires_max_age,
            progress: progress::Cache::default(),
        });
        let stop = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(progress::follow(shared.clone(), stop.clone())),
            tokio::spawn(engine::follow_schedules(shared.clone(), stop.clone())),
            tokio::spawn(engine::run(shared.clone(), stop.clone())),
        ];
        tracing::info!(replica = %shared.replica, "scheduler running");
        Ok(Self { stop, tasks })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "scheduler".into())
}

/// Runs a scheduler replica until `shutdown`.
pub async fn run(opts: SchedulerOptions, shutdown: CancellationToken) -> Result<()> {
    let s = Scheduler::start(opts).await?;
    shutdown.cancelled().await;
    s.stop().await;
    Ok(())
}
