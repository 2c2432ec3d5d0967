//! State shared by the executor's tasks: connection handles, identity, catalog, slots, and the
//! jobs running right now.

use crate::catalog::{Catalog, LadderStep};
use crate::config::ExecutorConfig;
use crate::slots::Slots;
use crate::tree::CgroupRoot;
use chrono::{DateTime, Utc};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use taskwire_core::Namespace;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::Topology;
use taskwire_core::wire::TreeMode;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Why a job is being ended before it finished by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The command's timeout elapsed (final state `timed_out`).
    Timeout,
    /// The executor's drain timeout elapsed (final state `stopped`).
    Drain,
    /// Someone stopped it (final state `stopped`).
    Stop { by: String },
    /// Someone killed it (final state `killed`).
    Kill { by: String },
}

/// How a requested termination ended, for the requester.
#[derive(Debug, Clone)]
pub struct TerminationReport {
    pub state: taskwire_core::wire::JobState,
    pub signals: Vec<String>,
    pub survivors: u32,
}

/// A request to end a running job with a signal ladder.
#[derive(Debug)]
pub struct Termination {
    pub reason: EndReason,
    pub ladder: Vec<LadderStep>,
    /// Told how it ended, once the tree is gone.
    pub reply: Option<tokio::sync::oneshot::Sender<TerminationReport>>,
}

/// A job running on this instance.
#[derive(Debug)]
pub struct RunningEntry {
    pub command: String,
    pub pid: Pid,
    pub started_at: DateTime<Utc>,
    pub cgroup: Option<PathBuf>,
    pub stop_ladder: Vec<LadderStep>,
    pub kill_ladder: Vec<LadderStep>,
    /// Asks the job's task to end it.
    pub terminate: mpsc::Sender<Termination>,
}

impl RunningEntry {
    /// The pids of the job's tree, for memory accounting.
    pub fn pids(&self) -> Vec<Pid> {
        let mut v = vec![self.pid];
        if let Some(dir) = &self.cgroup
            && let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs"))
        {
            v.extend(
                text.lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                    .map(Pid::from_raw)
                    .filter(|p| *p != self.pid),
            );
        }
        v
    }
}

#[derive(Debug)]
pub struct Shared {
    pub js: async_nats::jetstream::Context,
    pub ns: Namespace,
    pub topology: Topology,
    pub store: JobStore,
    pub guid: Uuid,
    pub hostname: String,
    pub catalog: Catalog,
    pub cfg: ExecutorConfig,
    /// The gateway keys a dispatch message must be signed with (from `cfg`).
    pub verifier: taskwire_core::sign::DispatchVerifier,
    pub state_dir: PathBuf,
    pub cgroups: Option<CgroupRoot>,
    pub slots: Slots,
    /// Where a consumer of the instance's own subject made again starts.
    pub floor: crate::own_consumer::Floor,
    pub running: Mutex<BTreeMap<Uuid, RunningEntry>>,
    /// Jobs being claimed or spawned here, not yet in `running`: a kill that arrives in that
    /// moment waits for them instead of answering "not running here".
    pub starting: Mutex<std::collections::BTreeSet<Uuid>>,
    pub draining: AtomicBool,
    /// Every job task, so a drain can wait for them.
    pub jobs: TaskTracker,
    pub started_at: DateTime<Utc>,
}

/// Marks a job as starting on this instance until dropped.
#[derive(Debug)]
pub struct Starting<'a> {
    shared: &'a Shared,
    job: Uuid,
}

impl<'a> Starting<'a> {
    pub fn new(shared: &'a Shared, job: Uuid) -> Self {
        if let Ok(mut s) = shared.starting.lock() {
            s.insert(job);
        }
        Self { shared, job }
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.starting.lock() {
            s.remove(&self.job);
        }
    }
}

impl Shared {
    pub fn tree_mode(&self) -> TreeMode {
        if self.cgroups.is_some() {
            TreeMode::Cgroup
        } else {
            TreeMode::ProcessGroup
        }
    }
}
