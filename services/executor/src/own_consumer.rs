//! The instance's own consumer of its dispatch subject (`inst-<guid>` on `TW_INST`), at one
//! replica in memory (`topology::instance_consumer`), so a fleet costs the cluster no Raft
//! group per instance. A kill broker makes it on the executor's request (an executor may not
//! make consumers: their config is in a body no permission can check). When its node is lost
//! the consumer is lost with it: the pull loop notices ([`recover`]) and asks for it again, and
//! the broker makes it on a live node, starting after the [`Floor`] (kept in the state dir, so
//! a consumer made after a restart does not start from the stream's beginning). Its state is
//! not the truth: a job's record in `tw_jobs` is, and a claim is a compare-and-set, so a job
//! delivered again is refused harmlessly.

use crate::shared::Shared;
use async_nats::jetstream::consumer::{PullConsumer, pull};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use taskwire_core::retry::Backoff;
use taskwire_core::wire::{ConsumerOutcome, ConsumerReply, ConsumerRequest};
use tokio_util::sync::CancellationToken;

/// How long one question to the server about the consumer may take before it counts as lost.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a kill broker may take to answer a consumer request (it may ask JetStream up to
/// five questions of 2 s each, with a pause of 1 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Asks the kill brokers for the instance's consumer (kept when it answers, made when there is
/// none, made again on a live node when it does not answer) and binds to it, retrying with
/// backoff until that works or `stop` (then `None`). The executor serves its channels
/// meanwhile; jobs sent to the instance wait in `TW_INST`.
pub async fn ensure(shared: &Shared, stop: &CancellationToken) -> Option<PullConsumer> {
    let name = shared.ns.consumer_instance(&shared.guid);
    let began = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        let failure = match request(shared).await {
            Ok(outcome) => match ask(shared
                .topology
                .instance_jobs_stream
                .get_consumer::<pull::Config>(&name))
            .await
            {
                Ok(c) => {
                    if outcome != ConsumerOutcome::Kept || backoff.failures() > 0 {
                        tracing::info!(consumer = %name, ?outcome, after_ms = began.elapsed().as_millis() as u64, "the instance's consumer is ready");
                    }
                    return Some(c);
                }
                Err(e) => format!("cannot bind to it: {e}"),
            },
            Err(e) => e,
        };
        if backoff.failures().is_multiple_of(10) {
            tracing::warn!(consumer = %name, error = %failure, "the instance's consumer is not ready (a kill broker makes it); retrying");
        }
        if !backoff.wait_or_stop(stop).await {
            return None;
        }
    }
}

/// Asks one kill broker to make sure the consumer is there; what it did.
async fn request(shared: &Shared) -> std::result::Result<ConsumerOutcome, String> {
    let body = serde_json::to_vec(&ConsumerRequest {
        after: shared.floor.value(),
    })
    .map_err(|e| e.to_string())?;
    let client = shared.js.client();
    let asked = client.request(
        shared.ns.instance_consumer_request(&shared.guid),
        body.into(),
    );
    let m = match tokio::time::timeout(REQUEST_TIMEOUT, asked).await {
        Err(_) => {
            return Err(format!(
                "no kill broker answered within {}s",
                REQUEST_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err("no kill broker is running".into());
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(m)) => m,
    };
    let reply: ConsumerReply = serde_json::from_slice(&m.payload)
        .map_err(|e| format!("the kill broker's answer is not a ConsumerReply: {e}"))?;
    match (reply.outcome, reply.error) {
        (Some(o), _) => Ok(o),
        (None, e) => Err(e.unwrap_or_else(|| "the kill broker said nothing".into())),
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

/// Whether the older release's consumer is gone (deleted by the admin step): `false` while it
/// exists or cannot be asked.
pub async fn legacy_gone(shared: &Shared) -> bool {
    let name = shared.ns.consumer_instance(&shared.guid);
    matches!(ask(shared.topology.jobs_stream.consumer_info(&name)).await, Err(e) if e.contains("not found"))
}

async fn ask<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    taskwire_core::nats::ask_within(ASK_TIMEOUT, f).await
}

/// What the pull loop of the instance's own subject does when its pulls go unanswered: asks a
/// kill broker to make sure the consumer is there (it asks JetStream about it, and makes it
/// again on a live node when it does not answer), then binds to it again.
pub async fn recover(shared: &Shared, stop: &CancellationToken) -> Option<PullConsumer> {
    tracing::warn!(consumer = %shared.ns.consumer_instance(&shared.guid), "the instance's consumer does not answer; asking a kill broker to make it again");
    ensure(shared, stop).await
}

/// How often at most the pull loop asks for the consumer's ack floor to keep it.
pub const FLOOR_EVERY: Duration = Duration::from_secs(10);
/// How long after the last job came the pull loop waits before it reads the ack floor (the
/// job is acknowledged at its claim, a moment after it came).
pub const FLOOR_SETTLE: Duration = Duration::from_secs(2);

/// Reads the consumer's ack floor (the stream sequence up to which every job delivered through
/// it was acknowledged or refused), for [`Floor::save`].
pub async fn ack_floor(consumer: &mut PullConsumer) -> Option<u64> {
    ask(consumer.info())
        .await
        .ok()
        .map(|i| i.ack_floor.stream_sequence)
}

/// The stream sequence up to which every job delivered through the instance's consumer was
/// acknowledged (claimed, skipped) or refused: the consumer's ack floor, as the server last
/// said it, kept in the state dir. A consumer made again (after a node loss, a restart past
/// its inactive threshold) starts after it. A job delivered and not acknowledged (handed back,
/// or lost on its way) holds the server's ack floor back, so it is never skipped.
#[derive(Debug)]
pub struct Floor {
    path: PathBuf,
    saved: Mutex<u64>,
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
            saved: Mutex::new(saved),
        }
    }

    /// Keeps `seq` when it is past the floor kept (written whole, then renamed into place).
    pub fn save(&self, seq: u64) {
        let Ok(mut saved) = self.saved.lock() else {
            return;
        };
        if seq <= *saved {
            return;
        }
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, format!("{seq}\n"))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        match written {
            Ok(()) => *saved = seq,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot keep the dispatch floor")
            }
        }
    }

    /// The floor kept.
    pub fn value(&self) -> u64 {
        self.saved.lock().map(|s| *s).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_only_moves_on_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floor");
        let f = Floor::load(path.clone());
        assert_eq!(f.value(), 0);
        f.save(8);
        assert_eq!(f.value(), 8);
        f.save(5);
        assert_eq!(f.value(), 8, "an older ack floor does not move it back");
        assert_eq!(Floor::load(path.clone()).value(), 8);
        f.save(9);
        assert_eq!(Floor::load(path).value(), 9);
    }
}
