//! Live output fan-out: one NATS consumer per job per gateway process, shared by every viewer
//! of that job, with memory bounded per job and per viewer whatever the job writes.
//!
//! A feed reads the job's chunks from `TW_OUTPUT` from sequence 1, puts them in order by
//! `Tw-Seq` (dropping repeats), and keeps the most recent ones, at most `feed_window` bytes,
//! in a shared [`window::Window`]. Every viewer near the live edge reads from it (a thousand
//! viewers cost one copy); a viewer further back (a late one starting at chunk 1, or a slow
//! one) reads its own way through the stream ([`reader::ChunkReader`], a few chunks at a
//! time) until it reaches the window, so nothing held grows with the job's output. The feed
//! reads the stream at the pace of its fastest viewer: it stops while it holds an eighth of a
//! window that no viewer has read yet (the job is never slowed: it writes to the stream, not to the
//! feed). So viewers of a job that writes faster than they can take stay together in the
//! shared window instead of each reading the stream, and one that fell out catches up with
//! the window. A slow viewer never slows the job, the feed or other viewers; one that falls
//! more than `viewer_lag_chunks` behind the feed's edge is disconnected and can resume from
//! its last sequence. The feed ends with the job's final state once it holds every chunk up to the
//! `exited` event's `last_seq`.
//!
//! A finished job whose output the stream no longer holds from chunk 1 (it expired) is read
//! from the audit store instead, page by page, and ends with the state of its record.

mod follow;
pub mod reader;
pub mod window;

use crate::store_client::StoreClient;
use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
pub use follow::add_error;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use taskwire_core::Namespace;
use taskwire_core::names::HDR_SEQ;
use taskwire_core::topology::Topology;
use taskwire_core::wire::api::binary;
use taskwire_core::wire::api::{Frame, JobEnd};
use taskwire_core::wire::{JobRecord, OutputStream};
use tokio::sync::{Notify, watch};
use uuid::Uuid;
pub use window::Lookup;
use window::Window;

/// One output chunk, kept as its binary frame (the bytes after a 26-byte header); its JSON
/// frame is made once, on first use, and shared by every JSON viewer.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub seq: u64,
    pub stream: OutputStream,
    /// The chunk's binary frame (`wire::api::binary`).
    pub binary: Bytes,
    job_id: Uuid,
    json: Arc<OnceLock<Utf8Bytes>>,
}

impl Chunk {
    pub fn new(job_id: &Uuid, seq: u64, stream: OutputStream, data: &[u8]) -> Self {
        Self {
            seq,
            stream,
            binary: binary::encode_chunk(job_id, seq, stream, data),
            job_id: *job_id,
            json: Arc::new(OnceLock::new()),
        }
    }

    /// The chunk's bytes (shared with its binary frame).
    pub fn data(&self) -> Bytes {
        binary::data_of(&self.binary)
    }

    /// The chunk's [`Frame::Chunk`] as JSON text (base64 data), made once.
    pub fn json(&self) -> Utf8Bytes {
        self.json
            .get_or_init(|| {
                let frame = Frame::Chunk {
                    job_id: self.job_id,
                    seq: self.seq,
                    stream: self.stream,
                    data: self.data(),
                };
                Utf8Bytes::from(frame.to_json())
            })
            .clone()
    }

    /// The chunk as a WebSocket message: binary for a `taskwire.binary` socket, else JSON.
    pub fn message(&self, binary: bool) -> Message {
        if binary {
            Message::Binary(self.binary.clone())
        } else {
            Message::Text(self.json())
        }
    }

    /// What a window counts for it: its binary frame (a JSON frame, once made, adds at most
    /// 4/3 of that again).
    pub fn held_bytes(&self) -> usize {
        self.binary.len()
    }
}

/// The feed reads ahead of its fastest viewer by at most 1/READ_AHEAD of its window.
const READ_AHEAD: usize = 8;

/// How the job ended, sent to viewers after its last chunk.
pub type Final = JobEnd;

/// The end of a finished job as its record tells it, after `last_seq` chunks.
pub fn end_of(record: &JobRecord, last_seq: u64) -> Final {
    JobEnd {
        state: record.state,
        exit_code: record.exit_code,
        signal: record.signal.clone(),
        result: None,
        error: record.error.clone(),
        last_seq,
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
    /// Every chunk up to this sequence has arrived.
    pub chunks: u64,
    pub done: Option<Final>,
    /// The stream no longer holds the (finished) job's start: every viewer reads it from the
    /// audit store, and it ends as its record says.
    pub replay: bool,
}

/// The shared state of one job's output.
#[derive(Debug)]
pub struct Feed {
    pub job_id: Uuid,
    window: Mutex<Window>,
    progress: watch::Sender<Progress>,
    /// The instance that claimed the job, once known: the only one whose output is read.
    instance: Mutex<Option<Uuid>>,
    /// The job's record when the feed started after it finished.
    finished: Option<JobRecord>,
    /// The furthest chunk a viewer reading the window needs next: the feed reads from the
    /// stream only while it holds less than an eighth of a window beyond it (see
    /// [`Feed::reads_on`]).
    wanted: AtomicU64,
    /// Woken when `wanted` moves on.
    demand: Arc<Notify>,
    source: Arc<FeedSource>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Feed {
    /// Where chunk `seq` is.
    pub fn lookup(&self, seq: u64) -> Lookup {
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(seq)
    }

    /// Watches progress.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The instance whose output this is, once known.
    pub fn instance(&self) -> Option<Uuid> {
        *self.instance.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job's record, when the feed started after the job finished.
    pub fn finished(&self) -> Option<&JobRecord> {
        self.finished.as_ref()
    }

    /// Where viewers further back than the window read from.
    pub fn source(&self) -> &FeedSource {
        &self.source
    }

    /// A viewer reading the window needs chunk `seq` next.
    pub fn want(&self, seq: u64) {
        if self.wanted.fetch_max(seq, Ordering::Relaxed) < seq {
            self.demand.notify_one();
        }
    }

    /// Whether the feed should take more chunks from the stream now: while the window holds
    /// less than an eighth of its size beyond the furthest viewer. So the feed moves at the
    /// pace of its fastest viewer, never of a slower one; the rest of the window is what the
    /// others may trail it by before they fall out (and read the stream themselves), and
    /// viewers that fell out catch up with a window that waits for them instead of one that
    /// runs on ahead with the job.
    fn reads_on(&self) -> bool {
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.bytes_from(self.wanted.load(Ordering::Relaxed)) < w.limit() / READ_AHEAD
    }

    fn set_instance(&self, guid: Uuid) {
        *self.instance.lock().unwrap_or_else(|p| p.into_inner()) = Some(guid);
    }

    /// Adds the chunks of `early` that follow the window in order; the new last sequence.
    fn extend(&self, early: &mut BTreeMap<u64, Chunk>) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let mut added = None;
        while let Some(c) = early.remove(&w.next_seq()) {
            added = Some(c.seq);
            w.push(c);
        }
        added
    }

    fn publish(&self, have: u64, ending: &Option<Final>) {
        let done = ending.as_ref().filter(|f| have >= f.last_seq).cloned();
        self.progress.send_replace(Progress {
            chunks: have,
            done,
            replay: false,
        });
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
    window_bytes: usize,
}

impl FeedHub {
    /// Feeds that each hold at most `window_bytes` of output.
    pub fn new(source: FeedSource, window_bytes: usize) -> Self {
        Self {
            source: Arc::new(source),
            feeds: Mutex::new(HashMap::new()),
            window_bytes,
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
            window: Mutex::new(Window::new(self.window_bytes)),
            progress: tx,
            instance: Mutex::new(record.instance),
            finished: record.state.is_terminal().then(|| record.clone()),
            wanted: AtomicU64::new(1),
            demand: Arc::new(Notify::new()),
            source: self.source.clone(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(follow::run(Arc::downgrade(&feed), self.source.clone()));
        if let Ok(mut t) = feed.task.lock() {
            *t = Some(task);
        }
        feeds.insert(job_id, Arc::downgrade(&feed));
        feed
    }
}
