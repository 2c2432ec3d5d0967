//! Pulling dispatched jobs: one loop per consumer (each served channel, and the instance's own
//! subject). A loop fetches at most as many messages as there are free slots; a message that
//! arrives when another loop took the last slot is handed back at once (nak) for any instance
//! to take. Once draining, nothing new is taken and whatever arrives is handed back.

use crate::shared::Shared;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::retry::Backoff;
use tokio_util::sync::CancellationToken;

/// How long one pull request waits for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// Most messages asked for in one pull.
const MAX_BATCH: usize = 64;

pub async fn pull_loop(
    shared: Arc<Shared>,
    consumer: PullConsumer,
    channel: Option<String>,
    stop: CancellationToken,
) {
    let ch = channel.as_deref();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    while !stop.is_cancelled() {
        let free = shared.slots.free(ch);
        if free == 0 {
            tokio::select! {
                _ = shared.slots.wait_free(ch) => continue,
                _ = stop.cancelled() => break,
            }
        }
        let batch = consumer
            .batch()
            .max_messages(free.min(MAX_BATCH))
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => {
                backoff.reset();
                b
            }
            Err(e) => {
                tracing::warn!(channel = ?ch, error = %e, "pull request failed; retrying");
                if backoff.wait_or_stop(&stop).await {
                    continue;
                }
                break;
            }
        };
        // The batch ends by itself within PULL_EXPIRES, also after a drain started: messages
        // delivered to this pull are handed back rather than left to time out.
        while let Some(msg) = batch.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "pull batch ended with an error");
                    break;
                }
            };
            if stop.is_cancelled() {
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                continue;
            }
            match shared.slots.try_acquire(ch) {
                Some(permit) => {
                    let s = shared.clone();
                    shared.jobs.spawn(crate::job::handle(s, msg, permit));
                }
                None => {
                    let _ = msg
                        .ack_with(AckKind::Nak(Some(Duration::from_millis(50))))
                        .await;
                }
            }
        }
    }
}
