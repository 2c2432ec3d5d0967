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
    let own = own_inbox_prefix(&client);
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let tracker = TaskTracker::new();
            let answer = |msg: async_nats::Message| {
                let Some(reply) = msg.reply.clone() else {
                    return;
                };
                if !answerable(&reply, own.as_deref()) {
                    // A requester chooses the reply subject freely; an answer sent elsewhere
                    // would be published with this service's permissions, and one in this
                    // service's own inbox could pass for the answer to a request of its own.
                    tracing::warn!(%subject, %reply, "request with a reply subject that is no inbox, or this service's own: not answered");
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

/// `<prefix>.`, the inbox prefix of `client`'s own inboxes when it has one of its own (a
/// service identity's); `None` for the default `_INBOX`, which every client without an
/// identity shares.
fn own_inbox_prefix(client: &async_nats::Client) -> Option<String> {
    let inbox = client.new_inbox();
    let (prefix, _) = inbox.rsplit_once('.')?;
    (prefix != "_INBOX").then(|| format!("{prefix}."))
}

/// Whether a responder whose own inboxes start with `own` (`<prefix>.`) may answer to
/// `reply`: an inbox, and not one of its own.
fn answerable(reply: &str, own: Option<&str>) -> bool {
    is_inbox(reply) && own.is_none_or(|own| !reply.starts_with(own))
}

/// Whether `reply` is an inbox: the only place a responder sends answers to. A request may
/// name any subject as its reply, and the answer goes out with the responder's permissions,
/// so an answer to `tw.kill.request` or `$JS.API.STREAM.PURGE.…` would be a forged message.
pub fn is_inbox(reply: &str) -> bool {
    reply.starts_with("_INBOX.") || reply.starts_with("$SYS._INBOX.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_responder_answers_inboxes_only_and_never_its_own() {
        let own = Some("_INBOX.gateway.");
        assert!(answerable("_INBOX.abc.x", own));
        assert!(answerable("_INBOX.admin.x.y", own));
        assert!(answerable("$SYS._INBOX.x", own));
        assert!(!answerable("tw.kill.request", own));
        assert!(!answerable("_INBOX.gateway.x.y", own));
        assert!(!answerable("_INBOX.gateway.kill.1234.x", own));
        // Another role whose name starts like this one's is not this one.
        assert!(answerable("_INBOX.gateway-2.x", own));
        // A client without an identity of its own shares `_INBOX` with everyone.
        assert!(answerable("_INBOX.x.y", None));
        assert!(!answerable("tw.kill.request", None));
    }
}
