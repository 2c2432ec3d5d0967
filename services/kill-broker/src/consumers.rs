//! The executors' own consumers of `TW_INST`, made on their request
//! (`tw.consumer.inst.<guid>`, which only executor `<guid>` may publish): kept when the
//! consumer answers, made when there is none, deleted and made again on a live node when it
//! does not answer (one replica in memory, it is lost with its node). An executor may not make
//! a consumer itself: the config is in the request body, which no NATS permission can check,
//! so the only config made is [`topology::instance_consumer`].

use crate::Broker;
use std::sync::Arc;
use std::time::Duration;
use taskwire_core::topology;
use taskwire_core::wire::{ConsumerOutcome, ConsumerReply, ConsumerRequest};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long one question to JetStream about a consumer may take before it counts as lost.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause before a consumer that did not answer is asked again.
const AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Answers the executors' consumer requests (the brokers' queue group) until `stop`.
pub async fn serve(
    b: Arc<Broker>,
    stop: CancellationToken,
) -> taskwire_core::Result<taskwire_core::serve::Responder> {
    let client = b.client.clone();
    let subject = b.ns.instance_consumer_request_all();
    taskwire_core::serve::respond(&client, subject, crate::QUEUE_GROUP, stop, move |msg| {
        let b = b.clone();
        async move {
            // The subject names the instance (only it may publish there).
            let guid = msg
                .subject
                .rsplit('.')
                .next()
                .and_then(|g| Uuid::parse_str(g).ok());
            let reply = match (
                guid,
                serde_json::from_slice::<ConsumerRequest>(&msg.payload),
            ) {
                (Some(guid), Ok(req)) => handle(&b, guid, req).await,
                (None, _) => failed("the subject names no instance GUID".into()),
                (_, Err(e)) => failed(format!("the request is not a ConsumerRequest: {e}")),
            };
            Some(serde_json::to_vec(&reply).unwrap_or_default().into())
        }
    })
    .await
}

fn failed(error: String) -> ConsumerReply {
    ConsumerReply {
        outcome: None,
        error: Some(error),
    }
}

async fn handle(b: &Broker, guid: Uuid, req: ConsumerRequest) -> ConsumerReply {
    let stream = &b.topology.instance_jobs_stream;
    let name = b.ns.consumer_instance(&guid);
    let mut info = ask(stream.consumer_info(&name)).await;
    if matches!(&info, Err(e) if !e.contains("not found")) {
        // One slow answer may be a loaded server or an election: ask once more before the
        // consumer counts as gone (making it again costs its pending deliveries).
        tokio::time::sleep(AGAIN_AFTER).await;
        info = ask(stream.consumer_info(&name)).await;
    }
    let outcome = match info {
        Ok(_) => return ok(ConsumerOutcome::Kept),
        Err(e) if e.contains("not found") => ConsumerOutcome::Made,
        Err(e) => {
            tracing::warn!(instance = %guid, consumer = %name, error = %e, "the instance's consumer does not answer; making it again");
            // The meta leader removes the assignment even while the consumer's node is away;
            // that node drops its copy when it comes back.
            let _ = ask(stream.delete_consumer(&name)).await;
            ConsumerOutcome::MadeAgain
        }
    };
    // A floor past the stream's end belongs to a stream made again since: start from its
    // beginning (the claim refuses what ran already).
    let mut after = req.after;
    let mut s = stream.clone();
    if let Ok(info) = ask(s.info()).await
        && after > info.state.last_sequence
    {
        after = 0;
    }
    match ask(stream.create_consumer(topology::instance_consumer(&b.ns, &guid, after))).await {
        Ok(_) => {
            tracing::info!(instance = %guid, consumer = %name, after, ?outcome, "instance consumer made");
            ok(outcome)
        }
        Err(e) => {
            tracing::warn!(instance = %guid, consumer = %name, error = %e, "cannot make the instance's consumer");
            failed(format!("cannot make consumer {name}: {e}"))
        }
    }
}

fn ok(outcome: ConsumerOutcome) -> ConsumerReply {
    ConsumerReply {
        outcome: Some(outcome),
        error: None,
    }
}

async fn ask<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, String> {
    taskwire_core::nats::ask_within(ASK_TIMEOUT, f).await
}
