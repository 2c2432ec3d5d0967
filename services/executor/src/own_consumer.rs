//! The instance's own consumer of its dispatch subject (`inst-<guid>` on `TW_INST`). The
//! executor makes it itself, at one replica in memory ([`topology::instance_consumer`]), so a
//! fleet costs the cluster no Raft group per instance. When its node is lost the consumer is
//! lost with it: the pull loop notices ([`recover`]) and makes it again on a live node,
//! starting after the [`Floor`]: the last stream sequence before which every job delivered
//! here was decided (kept in the state dir, so a consumer made after a restart does not start
//! from the stream's beginning). Its state is not the truth: a job's record in `tw_jobs` is,
//! and a claim is a compare-and-set, so a job delivered again is refused harmlessly.

use crate::error::{ExecutorError, Result};
use crate::shared::Shared;
use async_nats::jetstream::consumer::{PullConsumer, pull};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use taskwire_core::retry::Backoff;
use taskwire_core::topology;
use tokio_util::sync::CancellationToken;

/// How long one question to the server about the consumer may take before it counts as lost.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the executor's start keeps trying to make its consumer before it gives up.
const START_FOR: Duration = Duration::from_secs(60);

/// Binds to the instance's consumer, making it (or replacing one an older release made) first.
/// Retries for [`START_FOR`] through an outage or an election.
pub async fn ensure(shared: &Shared) -> Result<PullConsumer> {
    let name = shared.ns.consumer_instance(&shared.guid);
    let started = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match try_ensure(shared).await {
            Ok(c) => return Ok(c),
            Err(message) if started.elapsed() < START_FOR => {
                tracing::warn!(consumer = %name, error = %message, "cannot make the instance's consumer yet; retrying");
                backoff.wait().await;
            }
            Err(message) => return Err(ExecutorError::Consumer { name, message }),
        }
    }
}

async fn try_ensure(shared: &Shared) -> std::result::Result<PullConsumer, String> {
    let stream = &shared.topology.instance_jobs_stream;
    let name = shared.ns.consumer_instance(&shared.guid);
    match ask(stream.get_consumer::<pull::Config>(&name)).await {
        Ok(c) => Ok(c),
        Err(e) if e.contains("not found") => create(shared).await,
        Err(e) => Err(e),
    }
}

/// The durable consumer an older release made for this instance on `TW_JOBS`, while it exists
/// (the admin step removes it once it holds nothing): its jobs are taken like any other.
pub async fn legacy(shared: &Shared) -> Option<PullConsumer> {
    let name = shared.ns.consumer_instance(&shared.guid);
    let c = ask(shared
        .topology
        .jobs_stream
        .get_consumer::<pull::Config>(&name))
    .await
    .ok()?;
    tracing::info!(consumer = %name, "taking the jobs left on the instance's consumer of an older release");
    Some(c)
}

async fn create(shared: &Shared) -> std::result::Result<PullConsumer, String> {
    let config = topology::instance_consumer(&shared.ns, &shared.guid, shared.floor.value());
    ask(shared.topology.instance_jobs_stream.create_consumer(config)).await
}

async fn ask<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    match tokio::time::timeout(ASK_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer from JetStream within {}s",
            ASK_TIMEOUT.as_secs()
        )),
    }
}

/// What the pull loop of the instance's own subject does when its pulls go unanswered: asks
/// whether the consumer still answers; when it does not (its node is gone, or it was removed),
/// deletes what is left of it and makes it again, retrying with backoff until it is back or
/// `stop`. `None` when the consumer is fine as it is.
pub async fn recover(shared: &Shared, stop: &CancellationToken) -> Option<PullConsumer> {
    let stream = &shared.topology.instance_jobs_stream;
    let name = shared.ns.consumer_instance(&shared.guid);
    let why = match ask(stream.consumer_info(&name)).await {
        Ok(_) => return None,
        Err(e) => e,
    };
    tracing::warn!(consumer = %name, error = %why, "the instance's consumer does not answer; making it again");
    let lost_at = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        // The meta leader removes the assignment even when the consumer's node is away; that
        // node drops its copy when it comes back.
        let _ = ask(stream.delete_consumer(&name)).await;
        match create(shared).await {
            Ok(c) => {
                tracing::info!(consumer = %name, after_ms = lost_at.elapsed().as_millis() as u64, "the instance's consumer is back");
                return Some(c);
            }
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot make the instance's consumer again; retrying");
                if !backoff.wait_or_stop(stop).await {
                    return None;
                }
            }
        }
    }
}

/// The stream sequence up to which every job delivered through the instance's consumer was
/// decided (claimed, skipped or refused): a consumer made again starts after it. Jobs still
/// being decided hold it back.
#[derive(Debug)]
pub struct Floor {
    path: PathBuf,
    state: Mutex<FloorState>,
}

#[derive(Debug, Default)]
struct FloorState {
    /// Delivered, not yet decided.
    open: BTreeSet<u64>,
    /// The highest sequence delivered.
    highest: u64,
    saved: u64,
}

impl Floor {
    /// The floor kept in `path` (0 when there is none yet).
    pub fn load(path: PathBuf) -> Self {
        let saved = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Self {
            path,
            state: Mutex::new(FloorState {
                highest: saved,
                saved,
                ..Default::default()
            }),
        }
    }

    /// Sequence `seq` was delivered and is being decided.
    pub fn open(&self, seq: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.open.insert(seq);
            s.highest = s.highest.max(seq);
        }
    }

    /// Sequence `seq` was decided; the floor moves on (and is kept) when it can.
    pub fn close(&self, seq: u64) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.open.remove(&seq);
        let floor = s.floor();
        if floor > s.saved {
            let tmp = self.path.with_extension("tmp");
            let written = std::fs::write(&tmp, format!("{floor}\n"))
                .and_then(|()| std::fs::rename(&tmp, &self.path));
            match written {
                Ok(()) => s.saved = floor,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot keep the dispatch floor")
                }
            }
        }
    }

    /// The current floor.
    pub fn value(&self) -> u64 {
        self.state.lock().map(|s| s.floor()).unwrap_or(0)
    }
}

impl FloorState {
    fn floor(&self) -> u64 {
        match self.open.first() {
            Some(first) => first - 1,
            None => self.highest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_waits_for_the_oldest_undecided_job_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floor");
        let f = Floor::load(path.clone());
        assert_eq!(f.value(), 0);
        f.open(5);
        f.open(6);
        f.open(9);
        assert_eq!(f.value(), 4);
        f.close(6);
        assert_eq!(f.value(), 4);
        f.close(5);
        assert_eq!(f.value(), 8);
        assert_eq!(Floor::load(path.clone()).value(), 8);
        f.close(9);
        assert_eq!(f.value(), 9);
        assert_eq!(Floor::load(path).value(), 9);
    }
}
