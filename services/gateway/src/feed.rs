//! Live output fan-out: one NATS consumer per job per gateway process, shared by every viewer
//! of that job.
//!
//! A feed reads the job's chunks from `TW_OUTPUT` from sequence 1, puts them in order by
//! `Tw-Seq` (dropping repeats), and keeps them in memory while anyone watches, so a late viewer
//! gets everything from its `from_seq` with no gap and no duplicate, then follows live. The
//! chunks are shared (reference-counted), so a thousand viewers cost one copy. A viewer reads
//! at its own pace from the shared list: a slow viewer never slows the job, the feed or other
//! viewers; one that falls too far behind is disconnected and can resume from its last
//! sequence. The feed ends with the job's final state once it holds every chunk up to the
//! `exited` event's `last_seq`.
//!
//! A finished job whose output the stream no longer holds from chunk 1 (it expired) is
//! replayed from the audit store instead, and ends with the state of its record.

use crate::store_client::StoreClient;
use async_nats::jetstream::consumer;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use taskwire_core::Namespace;
use taskwire_core::names::{HDR_SEQ, HDR_STREAM, Origin};
use taskwire_core::topology::Topology;
use taskwire_core::wire::api::{Frame, JobEnd};
use taskwire_core::wire::{EventKind, JobEvent, JobRecord, JobState, OutputStream};
use tokio::sync::watch;
use uuid::Uuid;

/// One output chunk as its frame, encoded once for every viewer.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub seq: u64,
    /// The chunk's [`Frame::Chunk`] as JSON text, shared by all viewers.
    pub frame: Utf8Bytes,
}

/// How the job ended, sent to viewers after its last chunk.
pub type Final = JobEnd;

/// The end of a finished job as its record tells it, after `last_seq` chunks.
fn end_of(record: &JobRecord, last_seq: u64) -> Final {
    JobEnd {
        state: record.state,
        exit_code: record.exit_code,
        signal: record.signal.clone(),
        result: None,
        error: record.error.clone(),
        last_seq,
    }
}

impl Chunk {
    fn new(job_id: &Uuid, seq: u64, stream: OutputStream, data: Bytes) -> Self {
        let frame = Frame::Chunk {
            job_id: *job_id,
            seq,
            stream,
            data,
        }
        .to_json();
        Self {
            seq,
            frame: Utf8Bytes::from(frame),
        }
    }
}

/// Where feeds read from: the output and event streams, and the audit store for output that
/// expired from the stream.
#[derive(Debug, Clone)]
pub struct FeedSource {
    pub topology: Topology,
    pub ns: Namespace,
    pub store: StoreClient,
}

impl FeedSource {
    /// Whether `TW_OUTPUT` still holds the job's output from chunk 1 (else older chunks
    /// expired and only the audit store has them).
    pub async fn holds_start(&self, job_id: &Uuid) -> Result<bool, String> {
        match self
            .topology
            .output_stream
            .get_first_raw_message_by_subject(self.ns.output_any(job_id), 0)
            .await
        {
            Ok(m) => Ok(m.headers.get(HDR_SEQ).map(|v| v.as_str()) == Some("1")),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(false)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What viewers see: how many chunks are available, and the end once known.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub chunks: usize,
    pub done: Option<Final>,
}

/// The shared state of one job's output.
#[derive(Debug)]
pub struct Feed {
    pub job_id: Uuid,
    chunks: Mutex<Vec<Chunk>>,
    progress: watch::Sender<Progress>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Feed {
    /// Chunks with index in `from..` (index = seq - 1), up to `max`.
    pub fn chunks_from(&self, from: usize, max: usize) -> Vec<Chunk> {
        let c = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().skip(from).take(max).cloned().collect()
    }

    /// Watches progress.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

/// The feeds of this gateway process, one per watched job.
#[derive(Debug)]
pub struct FeedHub {
    source: Arc<FeedSource>,
    feeds: Mutex<HashMap<Uuid, Weak<Feed>>>,
}

impl FeedHub {
    pub fn new(source: FeedSource) -> Self {
        Self {
            source: Arc::new(source),
            feeds: Mutex::new(HashMap::new()),
        }
    }

    /// Where the feeds read from.
    pub fn source(&self) -> &FeedSource {
        &self.source
    }

    /// The feed of the job of `record`, started on first use. Dropped when its last viewer
    /// leaves.
    pub fn get(&self, record: &JobRecord) -> Arc<Feed> {
        let job_id = record.spec.job_id;
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.retain(|_, w| w.strong_count() > 0);
        if let Some(f) = feeds.get(&job_id).and_then(Weak::upgrade) {
            return f;
        }
        let (tx, _) = watch::channel(Progress::default());
        let feed = Arc::new(Feed {
            job_id,
            chunks: Mutex::new(Vec::new()),
            progress: tx,
            task: Mutex::new(None),
        });
        let finished = record.state.is_terminal().then(|| record.clone());
        let task = tokio::spawn(run_feed(
            Arc::downgrade(&feed),
            self.source.clone(),
            finished,
            record.instance,
        ));
        if let Ok(mut t) = feed.task.lock() {
            *t = Some(task);
        }
        feeds.insert(job_id, Arc::downgrade(&feed));
        feed
    }
}

async fn run_feed(
    feed: Weak<Feed>,
    src: Arc<FeedSource>,
    finished: Option<JobRecord>,
    instance: Option<Uuid>,
) {
    let Some(job_id) = feed.upgrade().map(|f| f.job_id) else {
        return;
    };
    if let Some(record) = finished {
        match replay_stored(&feed, &src, &record).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                // neither the stream nor the store answered: say so and end, rather than
                // wait for output that no longer comes
                tracing::warn!(job = %job_id, error = %e, "replaying stored output");
                if let Some(f) = feed.upgrade() {
                    let mut end = end_of(&record, 0);
                    add_error(
                        &mut end,
                        &format!("its output could not be read ({e}); open it again later"),
                    );
                    publish(&f, 0, &Some(end));
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
    if let Err(e) = follow(&feed, &src.topology, &src.ns, owner).await {
        tracing::warn!(job = %job_id, error = %e, "output feed stopped");
    }
}

/// A finished job whose first chunk the stream no longer holds: everything from the audit
/// store, then its end. `false` when the stream still has the job's output from chunk 1.
async fn replay_stored(
    feed: &Weak<Feed>,
    src: &FeedSource,
    record: &JobRecord,
) -> Result<bool, String> {
    let job_id = record.spec.job_id;
    if src.holds_start(&job_id).await? {
        return Ok(false);
    }
    let mut stored = BTreeMap::new();
    let known = src
        .store
        .stored_chunks(job_id, &mut stored)
        .await
        .map_err(|e| e.message)?;
    let Some(f) = feed.upgrade() else {
        return Ok(true);
    };
    let mut have = 0;
    let mut gap = false;
    {
        let mut c = f.chunks.lock().unwrap_or_else(|p| p.into_inner());
        for (seq, (stream, data)) in stored {
            if seq != have + 1 {
                gap = true;
                break;
            }
            c.push(Chunk::new(&job_id, seq, stream, data));
            have = seq;
        }
    }
    let mut end = end_of(record, have);
    if gap {
        let missing = have + 1;
        add_error(
            &mut end,
            &format!("its output stops at chunk {have}: the audit store lacks chunk {missing}"),
        );
    } else if !known && have == 0 && record.started_at.is_some() {
        add_error(
            &mut end,
            "no output is kept for it (it wrote none, or it expired and no audit store has it)",
        );
    }
    publish(&f, have, &Some(end));
    Ok(true)
}

/// Appends why the replay is short to the job's own error, if it has one.
fn add_error(end: &mut Final, why: &str) {
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

async fn follow(
    feed: &Weak<Feed>,
    topo: &Topology,
    ns: &Namespace,
    mut owner: Owner,
) -> Result<(), String> {
    let job_id = owner.job_id;
    let out = topo
        .output_stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: ns.output_any(&job_id),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let evt = topo
        .events_stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: ns.event_any(&job_id),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut out = out.messages().await.map_err(|e| e.to_string())?;
    let mut evt = evt.messages().await.map_err(|e| e.to_string())?;
    let mut next_seq: u64 = 1;
    let mut early: BTreeMap<u64, Chunk> = BTreeMap::new();
    let mut ending: Option<Final> = None;
    loop {
        tokio::select! {
            m = out.next() => {
                let Some(m) = m else { return Err("output consumer ended".into()) };
                let m = m.map_err(|e| e.to_string())?;
                let origin = ns.origin_of(&m.message.subject);
                if origin == Some(Origin::Control) || !owner.accepts(origin).await {
                    continue;
                }
                let Some(chunk) = parse_chunk(&m.message, &job_id) else { continue };
                if chunk.seq >= next_seq {
                    early.insert(chunk.seq, chunk);
                }
                let Some(f) = feed.upgrade() else { return Ok(()) };
                let mut added = false;
                {
                    let mut c = f.chunks.lock().unwrap_or_else(|p| p.into_inner());
                    while let Some(ch) = early.remove(&next_seq) {
                        c.push(ch);
                        next_seq += 1;
                        added = true;
                    }
                }
                if added {
                    publish(&f, next_seq - 1, &ending);
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
                let fin = match e.kind {
                    EventKind::Exited { state, exit_code, signal, result, error, last_seq, .. } => {
                        Final { state, exit_code, signal, result, error, last_seq }
                    }
                    EventKind::SpawnFailed { reason, .. } => Final {
                        state: JobState::Failed, exit_code: None, signal: None, result: None,
                        error: Some(format!("spawn failed: {reason}")), last_seq: 0,
                    },
                    EventKind::Rejected { reason } => Final {
                        state: JobState::Failed, exit_code: None, signal: None, result: None,
                        error: Some(reason), last_seq: 0,
                    },
                    EventKind::Cancelled { by } => Final {
                        state: JobState::Cancelled, exit_code: None, signal: None, result: None,
                        error: Some(format!("cancelled by {by} before it started")), last_seq: 0,
                    },
                    // The instance vanished: the log ends with what was stored.
                    EventKind::Lost { reason } => Final {
                        state: JobState::Lost, exit_code: None, signal: None, result: None,
                        error: Some(reason), last_seq: next_seq - 1,
                    },
                    _ => continue,
                };
                ending = Some(fin);
                let Some(f) = feed.upgrade() else { return Ok(()) };
                publish(&f, next_seq - 1, &ending);
            }
        }
        if let Some(fin) = &ending
            && next_seq > fin.last_seq
        {
            // Everything is in; the feed stays in memory for viewers still reading.
            return Ok(());
        }
    }
}

fn publish(feed: &Feed, have: u64, ending: &Option<Final>) {
    let done = ending.as_ref().filter(|f| have >= f.last_seq).cloned();
    feed.progress.send_replace(Progress {
        chunks: have as usize,
        done,
    });
}

fn parse_chunk(m: &async_nats::Message, job_id: &Uuid) -> Option<Chunk> {
    let h = m.headers.as_ref()?;
    let seq = h.get(HDR_SEQ)?.as_str().parse().ok()?;
    let stream = OutputStream::parse(h.get(HDR_STREAM)?.as_str())?;
    Some(Chunk::new(job_id, seq, stream, m.payload.clone()))
}
