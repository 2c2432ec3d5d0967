//! Serving a NATS request/reply subject: one queue group (each request is answered by one
//! member), one task per request, and a graceful stop (the member leaves the group; the
//! requests it had received and those under way are answered, for at most [`STOP_GRACE`]). Used by the gateway's NATS API and
//! schedule fires, the kill broker and the audit store's queries.

use bytes::Bytes;
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a stop waits for requests under way to be answered.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A subject being served; [`Responder::stop`] ends it (so does dropping it).
#[derive(Debug)]
pub struct Responder {
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

/// Subscribes to `subject` in `queue` (failing at once when the subscription is refused) and
/// answers every request that has a reply subject with what `handle` returns for it (`None`:
/// no answer). Requests without a reply subject are ignored. Serves until `stop` is cancelled
/// or [`Responder::stop`] is called.
pub async fn respond<H, Fut>(
    client: &async_nats::Client,
    subject: String,
    queue: &str,
    stop: CancellationToken,
    handle: H,
) -> crate::Result<Responder>
where
    H: Fn(async_nats::Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Bytes>> + Send + 'static,
{
    let mut sub = client
        .queue_subscribe(subject.clone(), queue.to_string())
        .await
        .map_err(|e| crate::Error::Subscribe {
            subject: subject.clone(),
            message: e.to_string(),
        })?;
    let stop = stop.child_token();
    let client = client.clone();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let tracker = TaskTracker::new();
            let answer = |msg: async_nats::Message| {
                let Some(reply) = msg.reply.clone() else {
                    return;
                };
                if !is_inbox(&reply) {
                    // A requester chooses the reply subject freely; an answer sent elsewhere
                    // would be published with this service's permissions.
                    tracing::warn!(%subject, %reply, "request with a reply subject that is no inbox: not answered");
                    return;
                }
                let answer = handle(msg);
                let client = client.clone();
                let subject = subject.clone();
                tracker.spawn(async move {
                    let Some(body) = answer.await else { return };
                    if let Err(e) = client.publish(reply, body).await {
                        tracing::warn!(%subject, error = %e, "cannot send an answer");
                    }
                });
            };
            let stopped = loop {
                tokio::select! {
                    m = sub.next() => match m {
                        Some(m) => answer(m),
                        None => break false,
                    },
                    _ = stop.cancelled() => break true,
                }
            };
            let grace = tokio::time::Instant::now() + STOP_GRACE;
            if stopped && sub.drain().await.is_ok() {
                // Requests that reached this member before it left the group are answered.
                while let Ok(Some(m)) = tokio::time::timeout_at(grace, sub.next()).await {
                    answer(m);
                }
            }
            tracker.close();
            if tokio::time::timeout_at(grace, tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!(%subject, "stopped with requests still unanswered");
            }
        }
    });
    Ok(Responder { task, stop })
}

impl Drop for Responder {
    /// A responder nobody will stop (a start that failed half-way dropped it) leaves its
    /// queue group rather than answer on unseen.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Responder {
    /// Takes no more requests, and waits for those it had to be answered.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }

    /// Waits until the responder ended (its `stop` token was cancelled).
    pub async fn stopped(mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Whether `reply` is an inbox: the only place a responder sends answers to. A request may
/// name any subject as its reply, and the answer goes out with the responder's permissions,
/// so an answer to `tw.kill.request` or `$JS.API.STREAM.PURGE.…` would be a forged message.
pub fn is_inbox(reply: &str) -> bool {
    reply.starts_with("_INBOX.") || reply.starts_with("$SYS._INBOX.")
}
