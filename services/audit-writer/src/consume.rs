//! The durable consumers: one on `TW_EVENTS`, one on `TW_OUTPUT`, each shared by every audit
//! writer (JetStream hands each message to one of them). A batch is written in one
//! transaction and acknowledged only after it committed; while the database is down the batch
//! is retried with backoff and kept ours (progress acks), never acknowledged unwritten. On
//! PostgreSQL several batches are written at once; rows do not depend on the order batches
//! commit in (see [`crate::fold`]).

use crate::apply;
use crate::batch::{Item, Subjects};
use async_nats::jetstream::consumer::{self, pull};
use async_nats::jetstream::{AckKind, Message, stream};
use futures::{FutureExt, StreamExt};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::retry::Backoff;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a batch gathers after its first message.
const GATHER: Duration = Duration::from_millis(20);
/// Bytes of output gathered into one transaction at most; also what the pull asks the server
/// for at once, so a consumer holds at most about twice this whatever a job writes.
const BATCH_BYTES: usize = 1 << 20;
/// How long one pull request of the continuous pull waits on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// The server's idle heartbeat on a pull: two missed ones end the pull (its node is gone).
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);

/// What one consumer loop needs.
#[derive(Debug, Clone)]
pub struct Feed {
    pub stream: stream::Stream,
    pub durable: String,
    pub db: DatabaseConnection,
    pub subjects: Subjects,
    pub batch_max: usize,
    pub retry_max: Duration,
    /// Held around each transaction when the database takes one writer at a time (SQLite):
    /// the events and output consumers then queue here instead of failing with "busy".
    pub write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Batches written at once (each in its own transaction and connection).
    pub parallel: usize,
    /// The writer's audit hash chain, which the batches' audit entries extend.
    pub chain: crate::chain::AuditChain,
    /// Told of each commit when the store checkpoints beside the writes (SQLite).
    pub wal: Option<crate::wal::Checkpoints>,
}

/// Runs the consumer until `stop` (a transaction in flight is finished or rolled back).
pub async fn run(feed: Feed, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(200), feed.retry_max);
    let mut lost_at = None;
    while !stop.is_cancelled() {
        match serve(&feed, &stop, &mut lost_at).await {
            Ok(()) => return,
            Err(e) => {
                lost_at.get_or_insert_with(tokio::time::Instant::now);
                tracing::warn!(consumer = %feed.durable, error = %e, "consumer interrupted; resuming");
                if !backoff.wait_or_stop(&stop).await {
                    return;
                }
            }
        }
    }
}

async fn consumer(feed: &Feed) -> Result<consumer::Consumer<pull::Config>, String> {
    // The admin identity makes this durable consumer (`taskwire nats setup`); a writer only
    // binds to it, and waits (the loop above retries) while it does not exist yet.
    feed.stream.get_consumer(&feed.durable).await.map_err(|e| {
        format!(
            "cannot open consumer {} (made by `taskwire nats setup`): {e}",
            feed.durable
        )
    })
}

/// Serves the consumer until it fails or `stop`. `lost_at`: when an earlier attempt failed,
/// until this one pulls again (then the log says so).
async fn serve(
    feed: &Feed,
    stop: &CancellationToken,
    lost_at: &mut Option<tokio::time::Instant>,
) -> Result<(), String> {
    let parallel = feed.parallel.max(1);
    let permits = Arc::new(Semaphore::new(parallel));
    let batches = TaskTracker::new();
    let result = pull(feed, stop, &permits, &batches, lost_at).await;
    // Batches in flight finish (or, when stopping, stay unacknowledged) and stored batches
    // are acknowledged before returning.
    batches.close();
    batches.wait().await;
    result
}

async fn pull(
    feed: &Feed,
    stop: &CancellationToken,
    permits: &Arc<Semaphore>,
    batches: &TaskTracker,
    lost_at: &mut Option<tokio::time::Instant>,
) -> Result<(), String> {
    let c = consumer(feed).await?;
    // Heartbeats every PULL_HEARTBEAT: a pull whose node died is noticed within two of them,
    // and the consumer is opened again (on its new leader).
    let mut msgs = c
        .stream()
        .max_messages_per_batch(feed.batch_max.max(1))
        .max_bytes_per_batch(BATCH_BYTES)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(at) = lost_at.take() {
        tracing::info!(consumer = %feed.durable, after = ?at.elapsed(), "consumer pulling again");
    }
    loop {
        let first = tokio::select! {
            m = msgs.next() => m,
            _ = stop.cancelled() => return Ok(()),
        };
        let first = match first {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the message stream ended".into()),
        };
        // Gather for a moment after the first message: one transaction for many rows is
        // what makes a burst cheap, and the moment bounds the delay a lone event sees.
        let mut bytes = first.payload.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + GATHER;
        while batch.len() < feed.batch_max && bytes < BATCH_BYTES {
            let next = match msgs.next().now_or_never() {
                Some(m) => m,
                None => match tokio::time::timeout_at(deadline, msgs.next()).await {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(m)) => {
                    bytes += m.payload.len();
                    batch.push(m);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "pull interrupted while gathering a batch");
                    break;
                }
                None => break,
            }
        }
        let parse_at = tokio::time::Instant::now();
        let items: Vec<Item> = batch
            .iter()
            .map(|m| {
                let published = m
                    .info()
                    .map(|i| (i.published.unix_timestamp_nanos() / 1000) as i64)
                    .unwrap_or_else(|_| chrono::Utc::now().timestamp_micros());
                feed.subjects.parse(m.subject.as_str(), m, published)
            })
            .collect();
        for it in &items {
            if let Item::Unreadable(why) = it {
                tracing::error!(consumer = %feed.durable, %why, "message cannot be stored; skipped");
            }
        }
        let wait_at = tokio::time::Instant::now();
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.map_err(|e| e.to_string())?,
            _ = stop.cancelled() => return Ok(()),
        };
        let write_at = tokio::time::Instant::now();
        let (feed, stop) = (feed.clone(), stop.clone());
        batches.spawn(async move {
            let stored = store(&feed, &items, &batch, &stop).await;
            // The next batch may be written while this one is acknowledged (each message is
            // acknowledged after the commit of its own batch, whatever the others do).
            drop(permit);
            tracing::debug!(
                consumer = %feed.durable,
                messages = batch.len(),
                gather_us = (parse_at - (deadline - GATHER)).as_micros() as u64,
                parse_us = (wait_at - parse_at).as_micros() as u64,
                wait_us = (write_at - wait_at).as_micros() as u64,
                write_us = write_at.elapsed().as_micros() as u64,
                "batch written"
            );
            drop(items);
            if stored {
                for m in &batch {
                    if let Err(e) = m.ack().await {
                        // Redelivered later and stored again idempotently.
                        tracing::debug!(error = %e, "ack failed");
                    }
                }
            }
        });
    }
}

/// Writes the batch, retrying while the database fails. False when asked to stop first (the
/// batch is then left unacknowledged and will be delivered again).
async fn store(feed: &Feed, items: &[Item], batch: &[Message], stop: &CancellationToken) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(100), feed.retry_max);
    loop {
        let guard = match &feed.write_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let written = apply::write(&feed.db, &feed.chain, items).await;
        drop(guard);
        match written {
            Ok(()) => {
                if let Some(c) = &feed.wal {
                    c.committed();
                }
                let failures = backoff.failures();
                if failures > 0 {
                    tracing::info!(consumer = %feed.durable, failures, "the audit database is back; batch stored");
                }
                return true;
            }
            Err(e) => {
                let failures = backoff.failures() + 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(consumer = %feed.durable, error = %e, failures, "cannot store a batch; retrying (nothing is acknowledged until it is stored)");
                }
                for m in batch {
                    let _ = m.ack_with(AckKind::Progress).await;
                }
                if !backoff.wait_or_stop(stop).await {
                    return false;
                }
            }
        }
    }
}
