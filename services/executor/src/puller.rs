//! Pulling dispatched jobs: one loop per consumer (each served channel, and the instance's own
//! subject). A loop keeps long pull requests open (each waits up to [`PULL_EXPIRES`] with the
//! server's idle heartbeat) for as many messages as there are free slots, and asks for more
//! when a slot frees. So an idle fleet costs the cluster one pull per consumer and 30 s, not
//! one a second.
//!
//! What the loop has asked for and not yet received (`asked`) is counted down by each message
//! and by the server's end-of-request notices (408, 409 with `Nats-Pending-Messages`). It starts
//! again from nothing, and asks again, when the pulls it had may have died: the connection was
//! made again, the consumer has a new leader (its advisory), or the server stayed silent for
//! longer than two heartbeats. Asking for too much is harmless: a message that arrives when no
//! slot is free is handed back at once (nak) for any instance to take.
//!
//! Once draining, nothing new is asked for and whatever arrives is handed back.

use crate::shared::Shared;
use async_nats::StatusCode;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::consumer::pull::BatchConfig;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use taskwire_core::retry::Backoff;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long one pull request waits on the server for messages.
pub const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// How often the server says a waiting pull is still there.
pub const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
/// Silence after which the loop's pulls count as lost.
const SILENCE: Duration = Duration::from_secs(2 * 5 + 1);
/// Most messages asked for in one pull.
const MAX_BATCH: usize = 64;

/// Which subject a loop pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The instance's own subject, through the consumer it makes itself on `TW_INST`.
    Own,
    /// The instance's own subject through the consumer an older release made on `TW_JOBS`,
    /// while that holds jobs.
    Legacy,
    /// A served channel, through the consumer the admin made.
    Channel(String),
}

impl Feed {
    fn channel(&self) -> Option<&str> {
        match self {
            Feed::Own | Feed::Legacy => None,
            Feed::Channel(c) => Some(c),
        }
    }
}

/// What one message on the loop's inbox means.
enum Notice {
    Job(async_nats::Message),
    /// A pull ended (expired, or ended by the server) with this many messages not delivered;
    /// `None`: the server did not say (all of them).
    Ended(Option<usize>, String),
    Heartbeat,
    /// The pull reached no consumer (no leader, node away, consumer gone).
    Unanswered(String),
}

fn notice(m: async_nats::Message) -> Notice {
    let pending = || {
        m.headers
            .as_ref()
            .and_then(|h| h.get("Nats-Pending-Messages"))
            .and_then(|v| v.as_str().parse().ok())
    };
    let why = || {
        format!(
            "{} {}",
            m.status.map(|s| s.as_u16()).unwrap_or(0),
            m.description.clone().unwrap_or_default()
        )
    };
    match m.status {
        None | Some(StatusCode::OK) => Notice::Job(m),
        Some(StatusCode::IDLE_HEARTBEAT) => Notice::Heartbeat,
        Some(StatusCode::NO_RESPONDERS) => Notice::Unanswered(why()),
        Some(StatusCode::REQUEST_TERMINATED)
            if m.description.as_deref() == Some("Consumer Deleted") =>
        {
            Notice::Unanswered(why())
        }
        Some(_) => Notice::Ended(pending(), why()),
    }
}

/// Pulls jobs for `feed` from `consumer` until `stop`.
pub async fn pull_loop(
    shared: Arc<Shared>,
    mut consumer: PullConsumer,
    feed: Feed,
    stop: CancellationToken,
) {
    let client = shared.js.client();
    let ch = feed.channel();
    let name = consumer.cached_info().name.clone();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    let inbox = client.new_inbox();
    let mut sub = loop {
        match client.subscribe(inbox.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot subscribe to the pull inbox; retrying");
                if !backoff.wait_or_stop(&stop).await {
                    return;
                }
            }
        }
    };
    // A new leader of a channel's consumer has none of the pulls the old one held: ask it at
    // once. (The instance's own consumer has one replica and no elections.)
    let mut elected = match &feed {
        Feed::Own | Feed::Legacy => None,
        Feed::Channel(_) => match client
            .subscribe(shared.ns.advisory_dispatch_leader(&name))
            .await
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "cannot follow the consumer's leader changes; a lost pull is noticed by its silence");
                None
            }
        },
    };
    let mut freed = shared.slots.changes();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let connects = || client.statistics().connects.load(Ordering::Relaxed);
    let mut seen_connects = connects();
    let mut asked = 0usize;
    let mut heard = Instant::now();
    let mut paused_until: Option<Instant> = None;
    let mut lost_logged = false;
    // The own consumer's ack floor is read now and then after jobs came (once the last of them
    // had time to be acknowledged), and kept.
    let mut floor_stale = false;
    let mut floor_read = Instant::now();
    let mut last_job = Instant::now();

    while !stop.is_cancelled() {
        // A pause that is over is forgotten (else its sleep, ready at once, would spin the
        // loop while no slot is free).
        if paused_until.is_some_and(|t| Instant::now() >= t) {
            paused_until = None;
        }
        let free = shared.slots.free(ch);
        if free > asked && paused_until.is_none() {
            let want = (free - asked).min(MAX_BATCH);
            let request = BatchConfig {
                batch: want,
                expires: Some(PULL_EXPIRES),
                idle_heartbeat: PULL_HEARTBEAT,
                ..Default::default()
            };
            match consumer.request_batch(request, inbox.clone().into()).await {
                Ok(()) => {
                    if asked == 0 {
                        heard = Instant::now();
                    }
                    asked += want;
                }
                Err(e) => {
                    tracing::warn!(consumer = %name, error = %e, "pull request failed; retrying");
                    paused_until = Some(Instant::now() + backoff.next_pause());
                }
            }
        }
        let unanswered: Option<String> = tokio::select! {
            m = sub.next() => {
                let Some(m) = m else { break };
                heard = Instant::now();
                match notice(m) {
                    Notice::Job(m) => {
                        asked = asked.saturating_sub(1);
                        floor_stale = true;
                        last_job = Instant::now();
                        backoff.reset();
                        if lost_logged {
                            tracing::info!(consumer = %name, "pulls answered again");
                            lost_logged = false;
                        }
                        take(&shared, &feed, m, stop.is_cancelled()).await;
                        None
                    }
                    Notice::Heartbeat => None,
                    Notice::Ended(pending, why) => {
                        asked = match pending {
                            Some(n) => asked.saturating_sub(n),
                            None => {
                                // A refused pull (too many waiting, say): asking again at once
                                // would be refused again.
                                tracing::warn!(consumer = %name, status = %why, "pull refused by the server; asking again shortly");
                                paused_until = Some(Instant::now() + backoff.next_pause());
                                0
                            }
                        };
                        None
                    }
                    Notice::Unanswered(why) => Some(why),
                }
            }
            _ = freed.changed() => None,
            _ = tokio::time::sleep_until(paused_until.unwrap_or_else(Instant::now)), if paused_until.is_some() => None,
            Some(_) = next_election(&mut elected) => {
                tracing::info!(consumer = %name, "consumer has a new leader; asking it for work");
                asked = 0;
                paused_until = None;
                backoff.reset();
                None
            }
            _ = tick.tick() => {
                if feed == Feed::Own
                    && floor_stale
                    && floor_read.elapsed() >= crate::own_consumer::FLOOR_EVERY
                    && last_job.elapsed() >= crate::own_consumer::FLOOR_SETTLE
                {
                    floor_read = Instant::now();
                    if let Some(seq) = crate::own_consumer::ack_floor(&mut consumer).await {
                        shared.floor.save(seq);
                        floor_stale = false;
                    }
                }
                let now = connects();
                if now != seen_connects {
                    seen_connects = now;
                    asked = 0;
                    None
                } else if asked > 0 && heard.elapsed() > SILENCE {
                    Some(format!("no word from the server for {}s", heard.elapsed().as_secs()))
                } else {
                    None
                }
            }
            _ = stop.cancelled() => None,
        };
        if let Some(why) = unanswered {
            if feed == Feed::Legacy && crate::own_consumer::legacy_gone(&shared).await {
                tracing::info!(consumer = %name, reason = %why, "the instance's consumer of an older release is gone");
                break;
            }
            asked = 0;
            if !lost_logged {
                tracing::warn!(consumer = %name, reason = %why, "pulls are not answered; asking again with backoff");
                lost_logged = true;
            }
            if feed == Feed::Own
                && let Some(c) = crate::own_consumer::recover(&shared, &stop).await
            {
                consumer = c;
                continue;
            }
            paused_until = Some(Instant::now() + backoff.next_pause());
        }
    }
    // Pulls still open may deliver until the server sees the inbox gone: hand back what came.
    let _ = sub.unsubscribe().await;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
        if let Notice::Job(m) = notice(m) {
            let msg = async_nats::jetstream::Message {
                message: m,
                context: shared.js.clone(),
            };
            let _ = msg.ack_with(AckKind::Nak(None)).await;
        }
    }
}

async fn next_election(sub: &mut Option<async_nats::Subscriber>) -> Option<()> {
    match sub {
        Some(s) => s.next().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// Starts the job in `m` if a slot is free (and the loop is not stopping), else hands it back
/// for another instance (or, on the instance's own consumer, for itself later).
async fn take(shared: &Arc<Shared>, feed: &Feed, m: async_nats::Message, stopping: bool) {
    let msg = async_nats::jetstream::Message {
        message: m,
        context: shared.js.clone(),
    };
    let permit = match stopping {
        true => None,
        false => shared.slots.try_acquire(feed.channel()),
    };
    match permit {
        Some(permit) => {
            let s = shared.clone();
            shared.jobs.spawn(async move {
                crate::job::handle(s, msg, permit).await;
            });
        }
        None if stopping => {
            let _ = msg.ack_with(AckKind::Nak(None)).await;
        }
        None => {
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_millis(50))))
                .await;
        }
    }
}
