//! taskwire-executor: runs commands from the instance's local catalog and streams their output.
//!
//! One executor runs per server. It owns:
//!
//! - [`identity`]: the instance GUID, created once in the state dir, never re-tagged.
//! - [`catalog`]: the local allow-list of commands with typed parameters and argv templates.
//! - [`puller`] and [`slots`]: pulling dispatched jobs from its channels and its own subject
//!   (long pulls), never more than it has free slots for; [`own_consumer`]: the consumer of
//!   its own subject, which it makes (and makes again after a node loss) itself.
//! - [`job`]: claim (compare-and-set) before spawn, then [`launch`] (run dir, environment,
//!   cgroup, spawn), [`supervise`] (wait, timeout, stop and kill ladders), [`reap`] (leftover
//!   processes, exit status, output to the end, result file) and [`report`] (events, final
//!   record); [`outcome`] decides the final state, a pure function.
//! - [`kill`]: answering `tw.exec.<guid>.kill` for the jobs running here.
//! - [`process`] and [`tree`]: spawning with pidfd, process groups and cgroups v2.
//! - [`output`]: the ordered, back-pressured output chunk stream.
//! - [`registry`]: the heartbeat in `tw_instances`.
//!
//! It never decides who may run what: that is the gateway's job. It refuses only what its own
//! catalog does not allow.

pub mod catalog;
pub mod clone3;
pub mod config;
pub mod error;
pub mod identity;
pub mod job;
pub mod kill;
pub mod launch;
pub mod outcome;
pub mod output;
pub mod own_consumer;
pub mod process;
pub mod puller;
pub mod reap;
pub mod registry;
pub mod report;
pub mod shared;
pub mod slots;
pub mod supervise;
pub mod tree;

use async_nats::jetstream::consumer::PullConsumer;
use catalog::Catalog;
pub use config::{CgroupMode, ExecutorConfig, OutputCompression};
pub use error::{ExecutorError, Result};
use shared::{EndReason, Shared, Termination};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use taskwire_core::Namespace;
use taskwire_core::config::Settings;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::{self, TopologyConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Everything an executor needs to start.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub nats_url: String,
    /// This service's NATS key file (`None`: connect without one).
    pub nats_credentials: Option<std::path::PathBuf>,
    pub namespace: Namespace,
    /// Holds the instance GUID and per-job run directories.
    pub state_dir: PathBuf,
    pub topology: TopologyConfig,
    pub config: ExecutorConfig,
}

impl ExecutorOptions {
    /// Reads the shared keys and the `[executor]` section. The executor's state lives in
    /// `<state_dir>/executor`.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let config: ExecutorConfig = settings.section("executor")?;
        Ok(Self {
            nats_url: settings.nats_url.clone(),
            nats_credentials: settings.nats_credentials.clone(),
            namespace: settings.namespace()?,
            state_dir: settings.state_dir.join("executor"),
            topology: settings.topology.clone(),
            config,
        })
    }
}

/// Runs an executor until `shutdown`, then drains and returns.
pub async fn run(opts: ExecutorOptions, shutdown: CancellationToken) -> Result<()> {
    let exec = Executor::start(opts).await?;
    shutdown.cancelled().await;
    exec.drain().await
}

/// A started executor.
#[derive(Debug)]
pub struct Executor {
    shared: Arc<Shared>,
    kill_stop: CancellationToken,
    killer: JoinHandle<()>,
    pull_stop: CancellationToken,
    draining: CancellationToken,
    heartbeat_stop: CancellationToken,
    pullers: Vec<JoinHandle<()>>,
    heartbeat: JoinHandle<()>,
    pidfile: Option<PathBuf>,
}

impl Executor {
    /// Loads identity and catalog, connects, sets up consumers, and starts pulling jobs.
    pub async fn start(opts: ExecutorOptions) -> Result<Self> {
        let cfg = opts.config;
        cfg.validate().map_err(ExecutorError::Config)?;
        let verifier = cfg.dispatch_verifier().map_err(ExecutorError::Config)?;
        if cfg.allow_unsigned_dispatch {
            tracing::warn!(
                "allow_unsigned_dispatch is on: jobs without a trusted gateway signature run here (development only)"
            );
        }
        std::fs::create_dir_all(&opts.state_dir).map_err(|source| ExecutorError::StateDir {
            path: opts.state_dir.clone(),
            source,
        })?;
        let guid = identity::load_or_create_as(&opts.state_dir, cfg.guid)?;
        let pidfile = match &cfg.pidfile {
            Some(p) => Some(write_pidfile(p)?),
            None => None,
        };
        let catalog = Catalog::load(&cfg.catalog, &cfg.channels)?;
        let hostname = match &cfg.hostname {
            Some(h) => h.clone(),
            None => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into()),
        };
        let cgroups = match cfg.cgroup {
            CgroupMode::Off => {
                tracing::info!("cgroups disabled by configuration: job trees are process groups");
                None
            }
            CgroupMode::Auto => match tree::CgroupRoot::probe(&guid) {
                Ok(root) => {
                    tracing::info!(dir = %root.dir().display(), "job trees are contained by cgroup v2");
                    Some(root)
                }
                Err(why) => {
                    tracing::warn!(%why, "no usable cgroup v2: job trees are process groups, and a process that calls setsid escapes stop, kill and timeout");
                    None
                }
            },
        };
        let role = taskwire_core::auth::roles::Role::Executor {
            guid,
            channels: cfg.channels.clone(),
        };
        let client = taskwire_core::nats::connect_to(
            &taskwire_core::nats::Endpoint::new(
                opts.nats_url.clone(),
                opts.nats_credentials.clone(),
            )
            .with_inbox(role.inbox_prefix()),
            &format!("taskwire-executor {hostname} {guid}"),
        )
        .await?;
        let js = taskwire_core::nats::jetstream(client);
        let topo = topology::open(&js, &opts.namespace).await?;
        let store =
            JobStore::new(js.clone(), topo.jobs.clone(), opts.namespace.clone()).as_instance(guid);
        let shared = Arc::new(Shared {
            js: js.clone(),
            ns: opts.namespace.clone(),
            topology: topo,
            store,
            guid,
            hostname,
            catalog,
            slots: slots::Slots::new(cfg.slots, &cfg.channel_slots),
            floor: own_consumer::Floor::load(opts.state_dir.join("dispatch-floor")),
            cfg,
            verifier,
            state_dir: opts.state_dir.clone(),
            cgroups,
            running: std::sync::Mutex::new(BTreeMap::new()),
            starting: std::sync::Mutex::new(Default::default()),
            draining: Default::default(),
            jobs: tokio_util::task::TaskTracker::new(),
            started_at: chrono::Utc::now(),
        });
        let _ = std::fs::remove_dir_all(opts.state_dir.join("run"));

        let mut consumers: Vec<(PullConsumer, puller::Feed)> = Vec::new();
        for ch in &shared.cfg.channels {
            let name = shared.ns.consumer_channel(ch);
            let c = channel_consumer(&shared, &name).await?;
            consumers.push((c, puller::Feed::Channel(ch.clone())));
        }
        if let Some(c) = own_consumer::legacy(&shared).await {
            consumers.push((c, puller::Feed::Legacy));
        }

        let kill_sub = shared
            .js
            .client()
            .subscribe(shared.ns.exec_kill(&guid))
            .await
            .map_err(|e| ExecutorError::Consumer {
                name: shared.ns.exec_kill(&guid),
                message: e.to_string(),
            })?;
        registry::beat(&shared).await;
        let pull_stop = CancellationToken::new();
        let draining = CancellationToken::new();
        let heartbeat_stop = CancellationToken::new();
        let mut pullers: Vec<_> = consumers
            .into_iter()
            .map(|(c, feed)| {
                tokio::spawn(puller::pull_loop(
                    shared.clone(),
                    c,
                    feed,
                    pull_stop.clone(),
                ))
            })
            .collect();
        // The instance's own consumer a kill broker makes: the channels are served meanwhile.
        pullers.push(tokio::spawn({
            let (shared, stop) = (shared.clone(), pull_stop.clone());
            async move {
                if let Some(c) = own_consumer::ensure(&shared, &stop).await {
                    puller::pull_loop(shared, c, puller::Feed::Own, stop).await;
                }
            }
        }));
        let kill_stop = CancellationToken::new();
        let killer = tokio::spawn(kill::serve(shared.clone(), kill_sub, kill_stop.clone()));
        let heartbeat = tokio::spawn(registry::heartbeat_loop(
            shared.clone(),
            draining.clone(),
            heartbeat_stop.clone(),
        ));
        tracing::info!(%guid, host = %shared.hostname, channels = ?shared.cfg.channels, slots = shared.cfg.slots, "executor serving");
        Ok(Self {
            shared,
            kill_stop,
            killer,
            pull_stop,
            draining,
            heartbeat_stop,
            pullers,
            heartbeat,
            pidfile,
        })
    }

    /// This instance's GUID.
    pub fn guid(&self) -> Uuid {
        self.shared.guid
    }

    /// Stops taking jobs, shows `draining`, lets running jobs finish up to the drain timeout,
    /// then stops the rest with their stop ladder. Queued jobs stay for other instances.
    pub async fn drain(self) -> Result<()> {
        let shared = &self.shared;
        tracing::info!(running = shared.jobs.len(), "draining");
        shared.draining.store(true, Ordering::SeqCst);
        self.draining.cancel();
        self.pull_stop.cancel();
        for p in self.pullers {
            let _ = p.await;
        }
        shared.jobs.close();
        if tokio::time::timeout(shared.cfg.drain_timeout, shared.jobs.wait())
            .await
            .is_err()
        {
            let entries: Vec<_> = shared
                .running
                .lock()
                .map(|m| {
                    m.values()
                        .map(|r| (r.terminate.clone(), r.stop_ladder.clone()))
                        .collect()
                })
                .unwrap_or_default();
            tracing::warn!(jobs = entries.len(), "drain timeout: stopping running jobs");
            for (tx, ladder) in entries {
                let _ = tx
                    .send(Termination {
                        reason: EndReason::Drain,
                        ladder,
                        reply: None,
                    })
                    .await;
            }
            shared.jobs.wait().await;
        }
        self.kill_stop.cancel();
        let _ = self.killer.await;
        self.heartbeat_stop.cancel();
        let _ = self.heartbeat.await;
        if let Some(root) = &shared.cgroups {
            root.remove();
        }
        if let Some(p) = &self.pidfile {
            let _ = std::fs::remove_file(p);
        }
        tracing::info!("executor stopped");
        Ok(())
    }
}

/// Binds to the durable consumer `name` the admin made for one of this executor's channels.
/// Waits, saying what is missing, while it does not exist.
async fn channel_consumer(shared: &Shared, name: &str) -> Result<PullConsumer> {
    let mut backoff =
        taskwire_core::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match shared.topology.jobs_stream.get_consumer(name).await {
            Ok(c) => return Ok(c),
            Err(e) if e.to_string().contains("not found") => {
                if backoff.failures().is_multiple_of(20) {
                    tracing::warn!(
                        consumer = name,
                        "waiting for dispatch consumer {name}: the admin makes it (`taskwire nats setup` with this executor's channels, or `taskwire up`)"
                    );
                }
                backoff.wait().await;
            }
            Err(e) => {
                return Err(ExecutorError::Consumer {
                    name: name.to_string(),
                    message: e.to_string(),
                });
            }
        }
    }
}

fn write_pidfile(path: &std::path::Path) -> Result<PathBuf> {
    let err = |message: String| ExecutorError::Pidfile {
        path: path.to_path_buf(),
        message,
    };
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(pid) = text.trim().parse::<i32>()
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && pid != std::process::id() as i32
    {
        return Err(err(format!(
            "another executor is running with pid {pid}; stop it or remove the pidfile"
        )));
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .map_err(|e| err(format!("cannot write it: {e}")))?;
    Ok(path.to_path_buf())
}
