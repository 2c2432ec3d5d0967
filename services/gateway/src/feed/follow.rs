//! The task behind one feed: the job's chunks and events from the streams, into the window in
//! order, until the job's end and its last chunk are in.

use super::{Chunk, Feed, FeedSource, Final, Progress, end_of};
use async_nats::jetstream::consumer;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use taskwire_core::names::Origin;
use taskwire_core::wire::{EventKind, JobEvent, JobRecord, JobState};
use uuid::Uuid;

/// Chunks the feed's consumer asks the server for at once: with the window, what bounds a
/// feed's memory.
const FOLLOW_BATCH: i64 = 16;

pub async fn run(feed: Weak<Feed>, src: Arc<FeedSource>) {
    let Some((job_id, finished, instance)) = feed
        .upgrade()
        .map(|f| (f.job_id, f.finished().cloned(), f.instance()))
    else {
        return;
    };
    if let Some(record) = finished {
        match src.holds_start(&job_id).await {
            Ok(true) => {}
            Ok(false) => {
                // Expired from the stream: every viewer reads the audit store.
                if let Some(f) = feed.upgrade() {
                    f.progress.send_replace(Progress {
                        replay: true,
                        ..Progress::default()
                    });
                }
                return;
            }
            Err(e) => {
                // neither the stream nor the store answered: say so and end, rather than
                // wait for output that no longer comes
                tracing::warn!(job = %job_id, error = %e, "reading stored output");
                if let Some(f) = feed.upgrade() {
                    let mut end = end_of(&record, 0);
                    add_error(
                        &mut end,
                        &format!("its output could not be read ({e}); open it again later"),
                    );
                    f.publish(0, &Some(end));
                }
                return;
            }
        }
    }
    let owner = Owner {
        jobs: src.topology.jobs.clone(),
        job_id,
        instance,
    };
    if let Err(e) = follow(&feed, &src, owner).await {
        tracing::warn!(job = %job_id, error = %e, "output feed stopped");
    }
}

/// Appends why a log is short to the job's own error, if it has one.
pub fn add_error(end: &mut Final, why: &str) {
    end.error = Some(match end.error.take() {
        Some(e) => format!("{e}; {why}"),
        None => why.to_string(),
    });
}

/// The instance that claimed a job, learnt from its record once it has one: the only one
/// whose output and events a feed takes (another instance's credentials can publish under
/// its own GUID only, so nothing it publishes passes for this job's).
struct Owner {
    jobs: async_nats::jetstream::kv::Store,
    job_id: Uuid,
    instance: Option<Uuid>,
}

impl Owner {
    /// Whether a message from `origin` may be taken as this job's.
    async fn accepts(&mut self, origin: Option<Origin>) -> bool {
        let Some(Origin::Instance(from)) = origin else {
            return origin == Some(Origin::Control);
        };
        if self.instance.is_none()
            && let Ok(Some(b)) = self.jobs.get(self.job_id.to_string()).await
            && let Ok(r) = serde_json::from_slice::<JobRecord>(&b)
        {
            self.instance = r.instance;
        }
        self.instance == Some(from)
    }
}

async fn follow(feed: &Weak<Feed>, src: &FeedSource, mut owner: Owner) -> Result<(), String> {
    let (topo, ns) = (&src.topology, &src.ns);
    let job_id = owner.job_id;
    // Both consumers at once: neither waits for the other's round trip to the server.
    let (out, evt) = futures::join!(
        async {
            let c = topo
                .output_stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: ns.output_any(&job_id),
                    max_batch: FOLLOW_BATCH,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            c.messages().await.map_err(|e| e.to_string())
        },
        async {
            let c = topo
                .events_stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: ns.event_any(&job_id),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            c.messages().await.map_err(|e| e.to_string())
        }
    );
    let (mut out, mut evt) = (out?, evt?);
    let mut have: u64 = 0;
    // Chunks that arrived ahead of a missing one (at most a republished window's worth).
    let mut early: BTreeMap<u64, Chunk> = BTreeMap::new();
    let mut ending: Option<Final> = None;
    loop {
        // Read on only while a viewer needs more (see `Feed::reads_on`); events always.
        let (more, demand) = match feed.upgrade() {
            Some(f) => (f.reads_on(), f.demand.clone()),
            None => return Ok(()),
        };
        tokio::select! {
            _ = demand.notified(), if !more => {}
            m = out.next(), if more => {
                let Some(m) = m else { return Err("output consumer ended".into()) };
                let m = m.map_err(|e| e.to_string())?;
                let origin = ns.origin_of(&m.message.subject);
                if origin == Some(Origin::Control) || !owner.accepts(origin).await {
                    continue;
                }
                let Some(chunk) = parse_chunk(&m.message, &job_id) else { continue };
                if chunk.seq > have {
                    early.insert(chunk.seq, chunk);
                }
                let Some(f) = feed.upgrade() else { return Ok(()) };
                if let Some(Origin::Instance(guid)) = origin
                    && f.instance().is_none()
                {
                    f.set_instance(guid);
                }
                if let Some(last) = f.extend(&mut early) {
                    have = last;
                    f.publish(have, &ending);
                }
            }
            m = evt.next() => {
                let Some(m) = m else { return Err("event consumer ended".into()) };
                let m = m.map_err(|e| e.to_string())?;
                let Ok(e) = serde_json::from_slice::<JobEvent>(&m.message.payload) else { continue };
                let origin = ns.origin_of(&m.message.subject);
                if !origin.is_some_and(|o| taskwire_core::jobs::genuine(o, &e))
                    || !owner.accepts(origin).await
                {
                    continue;
                }
                let Some(fin) = final_of(e.kind, have) else { continue };
                ending = Some(fin);
                let Some(f) = feed.upgrade() else { return Ok(()) };
                f.publish(have, &ending);
            }
        }
        if let Some(fin) = &ending
            && have >= fin.last_seq
        {
            // Everything is in; the feed stays in memory for viewers still reading.
            return Ok(());
        }
    }
}

/// How the job ended, from an event that ends it (`have`: chunks in so far).
fn final_of(kind: EventKind, have: u64) -> Option<Final> {
    let ended = |state, error: String, last_seq| Final {
        state,
        exit_code: None,
        signal: None,
        result: None,
        error: Some(error),
        last_seq,
    };
    Some(match kind {
        EventKind::Exited {
            state,
            exit_code,
            signal,
            result,
            error,
            last_seq,
            ..
        } => Final {
            state,
            exit_code,
            signal,
            result,
            error,
            last_seq,
        },
        EventKind::SpawnFailed { reason, .. } => {
            ended(JobState::Failed, format!("spawn failed: {reason}"), 0)
        }
        EventKind::Rejected { reason } => ended(JobState::Failed, reason, 0),
        EventKind::Cancelled { by } => ended(
            JobState::Cancelled,
            format!("cancelled by {by} before it started"),
            0,
        ),
        // The instance vanished: the log ends with what was stored.
        EventKind::Lost { reason } => ended(JobState::Lost, reason, have),
        _ => return None,
    })
}

fn parse_chunk(m: &async_nats::Message, job_id: &Uuid) -> Option<Chunk> {
    let p = super::reader::piece_of(job_id, m.headers.as_ref(), m.payload.clone())?;
    Some(Chunk::new(job_id, p.seq, p.stream, &p.data))
}
